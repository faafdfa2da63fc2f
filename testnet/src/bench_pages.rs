//! `pocmesh bench pages`: how long each Provider Hub page and API read takes over HTTP with a
//! realistic network behind it — N real `pocmesh node run` processes heartbeating to a dispatcher
//! in this process, J jobs run by them, verified as deployed and recorded on a real anvil — so
//! the store, the node registry and the chain hold what a busy devnet holds.
//!
//! Each path is fetched once cold (the first request: caches empty) and then R times in a row
//! over one keep-alive connection on 127.0.0.1; the report gives the cold time and the median,
//! p90 and worst of the rest, in milliseconds, beside the 300 ms target. Times are the client's
//! (request written to last byte read), so they include the loopback round trip (~0.1 ms).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pocmesh_dispatcher::api::client::{ApiClient, JobsQuery};
use serde::Serialize;

use crate::bench::{LaunchShape, Launched, Scratch, bench_wallet, launch, run_jobs};
use crate::procs::Proc;

/// What to run.
#[derive(Debug, Clone)]
pub struct PagesBenchConfig {
    /// The anvil executable.
    pub anvil: PathBuf,
    /// The `pocmesh` executable the nodes run as.
    pub pocmesh: PathBuf,
    /// Node processes.
    pub nodes: usize,
    /// Jobs run before the pages are measured.
    pub jobs: usize,
    /// Timed requests per path (after one cold request).
    pub requests: usize,
}

/// One path's times.
#[derive(Debug, Clone, Serialize)]
pub struct PageTime {
    /// What was fetched.
    pub path: String,
    /// `html` or `json`.
    pub kind: &'static str,
    /// The first request (caches empty), ms.
    pub cold_ms: f64,
    /// Median of the timed requests, ms.
    pub median_ms: f64,
    /// 90th percentile, ms.
    pub p90_ms: f64,
    /// Slowest, ms.
    pub max_ms: f64,
    /// Body size, bytes.
    pub bytes: usize,
}

/// What was measured.
#[derive(Debug, Clone, Serialize)]
pub struct PagesBenchReport {
    /// Node processes started.
    pub nodes: usize,
    /// Nodes online when the pages were measured.
    pub nodes_online: usize,
    /// Jobs in the store.
    pub jobs: u64,
    /// Batches recorded on chain.
    pub batches: u64,
    /// Units recorded on chain.
    pub units_recorded: u64,
    /// Seconds the jobs took to be recorded (not the point here; for scale).
    pub fill_s: f64,
    /// Seconds after that until every receipt had reached its node (then the pages were timed).
    pub settle_s: f64,
    /// Timed requests per path.
    pub requests: usize,
    /// Every path.
    pub pages: Vec<PageTime>,
    /// The target: every page under this (server time, median).
    pub target_ms: f64,
    /// The slowest median among the pages.
    pub slowest_median_ms: f64,
    /// Whether every median and every cold request is under the target.
    pub all_under_target: bool,
}

/// The value of the first sample of the metric whose name contains `name` (Prometheus text).
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|n| n.contains(name))
        })
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Runs the benchmark; `progress` hears what happens.
pub async fn run(
    config: &PagesBenchConfig,
    progress: &mut dyn FnMut(String),
) -> Result<PagesBenchReport, String> {
    if config.nodes == 0 || config.jobs == 0 || config.requests == 0 {
        return Err("nodes, jobs and requests must be above 0".into());
    }
    let mut scratch = Scratch::new("pocmesh-bench-pages")?;
    run_in(config, &scratch.dir, &mut scratch.nodes, progress).await
}

async fn run_in(
    config: &PagesBenchConfig,
    dir: &Path,
    nodes: &mut Vec<Proc>,
    progress: &mut dyn FnMut(String),
) -> Result<PagesBenchReport, String> {
    let err = |e: &dyn std::fmt::Display| e.to_string();
    let shape = LaunchShape {
        anvil: &config.anvil,
        pocmesh: &config.pocmesh,
        nodes: config.nodes,
        slots: 4,
        batch_max: 256,
        // A volunteer's default beat: 100 nodes at 1 s would spend a core on gossip alone here
        // (every beat checked by every peer), which is not what a dispatcher's pages face.
        heartbeat_ms: 5_000,
    };
    let Launched { devnet, dispatcher } = launch(&shape, dir, nodes, progress).await?;
    let handle = dispatcher.handle.clone();
    let mut seq = 0;
    let fill = run_jobs(&handle, &mut seq, config.jobs, progress, "filling").await?;

    let api = format!("http://{}", dispatcher.api);
    let client = ApiClient::new(&api);
    // Recorded is not yet quiet: the receipts still go out to the nodes. Measure after.
    let settle = Instant::now();
    loop {
        let metrics = client.get_text("/metrics").await.map_err(|e| err(&e))?;
        let sent = metric(&metrics, "receipts_sent").unwrap_or(0.0);
        progress(format!("receipts delivered: {sent}/{}", config.jobs));
        if sent >= config.jobs as f64 {
            break;
        }
        if settle.elapsed() > Duration::from_secs(300) {
            return Err(format!(
                "only {sent} of {} receipts delivered after 300 s",
                config.jobs
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let settle_s = settle.elapsed().as_secs_f64();
    // The samples the pages are asked about: a wallet that earned, a recorded job, a batch's
    // transaction and block.
    let wallet = bench_wallet(0);
    let job = client
        .jobs(&JobsQuery {
            state: Some("recorded".into()),
            limit: Some(1),
            ..JobsQuery::default()
        })
        .await
        .map_err(|e| err(&e))?
        .items
        .into_iter()
        .next()
        .ok_or("no recorded job to ask about")?;
    let batch = client
        .batches(1, None)
        .await
        .map_err(|e| err(&e))?
        .items
        .into_iter()
        .next()
        .ok_or("no batch to ask about")?;
    let (tx, block) = batch
        .tx
        .zip(batch.block)
        .ok_or("the newest batch is not recorded")?;
    let contract = devnet.contract();
    let paths: Vec<(String, &'static str)> = vec![
        ("/".into(), "html"),
        ("/nodes".into(), "html"),
        ("/jobs".into(), "html"),
        ("/jobs?state=recorded".into(), "html"),
        (format!("/jobs?wallet={wallet}"), "html"),
        ("/batches".into(), "html"),
        (format!("/wallet/{wallet}"), "html"),
        (format!("/wallet/{}", wallet.to_xdc()), "html"),
        (format!("/explorer/tx/{tx}"), "html"),
        (format!("/explorer/block/{block}"), "html"),
        (format!("/explorer/address/{contract}"), "html"),
        ("/v1/status".into(), "json"),
        ("/v1/nodes".into(), "json"),
        ("/v1/jobs?limit=50".into(), "json"),
        ("/v1/jobs?limit=20".into(), "json"),
        (format!("/v1/jobs/{}", job.id), "json"),
        (format!("/v1/jobs/{}/receipts", job.id), "json"),
        ("/v1/stats".into(), "json"),
        (format!("/v1/wallets/{wallet}"), "json"),
        ("/v1/batches".into(), "json"),
        (format!("/v1/batches/{}", batch.id), "json"),
        ("/v1/info".into(), "json"),
        ("/metrics".into(), "text"),
    ];
    let mut pages = Vec::new();
    for (i, (path, kind)) in paths.iter().enumerate() {
        progress(format!("measuring {path} ({}/{})", i + 1, paths.len()));
        let timed = || async {
            let t = Instant::now();
            let body = client
                .get_text(path)
                .await
                .map_err(|e| format!("{path}: {e}"))?;
            Ok::<_, String>((t.elapsed().as_secs_f64() * 1_000.0, body.len()))
        };
        let (cold_ms, bytes) = timed().await?;
        let mut times = Vec::with_capacity(config.requests);
        for _ in 0..config.requests {
            times.push(timed().await?.0);
        }
        times.sort_by(f64::total_cmp);
        pages.push(PageTime {
            path: path.clone(),
            kind,
            cold_ms,
            median_ms: percentile(&times, 0.5),
            p90_ms: percentile(&times, 0.9),
            max_ms: times.last().copied().unwrap_or(0.0),
            bytes,
        });
    }
    let status = handle.status().await.map_err(|e| err(&e))?;
    dispatcher.stop().await;
    drop(devnet);
    let target_ms = 300.0;
    let slowest_median_ms = pages.iter().map(|p| p.median_ms).fold(0.0, f64::max);
    Ok(PagesBenchReport {
        nodes: config.nodes,
        nodes_online: status.nodes_online,
        jobs: status.jobs.values().sum(),
        batches: status.batches_recorded,
        units_recorded: status.units_recorded,
        fill_s: fill.recorded_s,
        settle_s,
        requests: config.requests,
        all_under_target: pages
            .iter()
            .all(|p| p.median_ms < target_ms && p.cold_ms < target_ms),
        pages,
        target_ms,
        slowest_median_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_sorted_sample() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 6.0);
        assert_eq!(percentile(&v, 0.9), 9.0);
        assert_eq!(percentile(&v, 1.0), 10.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn a_metric_is_read_from_prometheus_text() {
        let text = "# HELP pocmesh_receipts_sent Receipts.\n# TYPE pocmesh_receipts_sent counter\npocmesh_receipts_sent_total 42\npocmesh_other 1\n";
        assert_eq!(metric(text, "receipts_sent"), Some(42.0));
        assert_eq!(metric(text, "missing"), None);
    }
}
