//! The dispatcher with real node processes on loopback and a real anvil: jobs end `recorded`,
//! the chain's units equal the dispatcher's verified units per wallet, and crashes of the
//! dispatcher (SIGKILL at several points), of a node mid-job, and an RPC outage of 30 s lose
//! nothing and credit nothing twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use pocmesh_chain::ProofOfCompute;
use pocmesh_dispatcher::api::client::{ApiClient, JobsQuery};
use pocmesh_dispatcher::api::{JobView, SubmitRequest};
use pocmesh_protocol::{Address, Bytes};
use serde_json::Value;

use crate::support::{Chain, Daemon, args, eventually, free_port};

const NET: &str = "devnet-551";
pub(crate) const TOKEN: &str = "test-token-0123456789";

/// A dispatcher and its nodes as processes.
pub(crate) struct Mesh {
    pub(crate) chain: Chain,
    pub(crate) dir: PathBuf,
    dispatcher: Daemon,
    nodes: Vec<Daemon>,
    pub(crate) wallets: Vec<Address>,
    pub(crate) api: String,
    pub(crate) bootstrap: String,
    /// Raw HTTP, for requests the typed client cannot make (malformed ones).
    pub(crate) http: reqwest::Client,
    /// The dispatcher's typed API client, with the write token.
    pub(crate) client: ApiClient,
    /// Extra flags every node started from now on gets.
    pub(crate) node_args: Vec<String>,
}

impl Mesh {
    /// A chain, a dispatcher and `n` nodes.
    pub(crate) async fn start(dir: &Path, n: usize) -> Mesh {
        Mesh::start_with_args(dir, n, &[]).await
    }

    /// As [`Mesh::start`], with `extra` flags for `dispatcher run`.
    pub(crate) async fn start_with_args(dir: &Path, n: usize, extra: &[&str]) -> Mesh {
        let chain = Chain::start(dir).await;
        let rpc = chain.rpc.clone();
        Mesh::start_with_chain(dir, chain, n, rpc, extra).await
    }

    /// A dispatcher recording through `rpc` (the chain's own URL, or a proxy in front) and
    /// `n` nodes, on `chain`.
    async fn start_with_chain(
        dir: &Path,
        chain: Chain,
        n: usize,
        rpc: String,
        extra: &[&str],
    ) -> Mesh {
        let api_port = free_port();
        // A fixed mesh port: a restarted dispatcher comes back where the nodes look for it.
        let mesh_port = free_port();
        let data = dir.join("dispatcher");
        let dispatcher = Daemon::start(
            "dispatcher",
            &args(&[
                "dispatcher",
                "run",
                "--rpc",
                &rpc,
                "--contract",
                &chain.contract.to_string(),
                "--key",
                &chain.dispatcher_key.display().to_string(),
                "--data-dir",
                &data.display().to_string(),
                "--api",
                &format!("127.0.0.1:{api_port}"),
                "--api-token",
                TOKEN,
                "--net",
                NET,
                "--listen",
                &format!("/ip4/127.0.0.1/tcp/{mesh_port}"),
                "--no-mdns",
                "--heartbeat-ms",
                "1000",
                "--batch-age-ms",
                "1000",
                "--batch-max",
                "64",
                // Every node of the test runs on this machine.
                "--loopback-quorum",
            ])
            .into_iter()
            .chain(args(extra))
            .collect::<Vec<_>>(),
            dir,
        );
        let info = pocmesh_dispatcher::daemon::info_path(&data);
        let log = dispatcher.log.clone();
        let bootstrap: String = eventually(
            "the dispatcher describes itself",
            Duration::from_secs(60),
            || async {
                let v: Value = serde_json::from_str(&std::fs::read_to_string(&info).ok()?).ok()?;
                v["listen"][0].as_str().map(String::from)
            },
            || std::fs::read_to_string(&log).unwrap_or_default(),
        )
        .await;
        let mut mesh = Mesh {
            chain,
            dir: dir.to_path_buf(),
            dispatcher,
            nodes: Vec::new(),
            wallets: Vec::new(),
            api: format!("http://127.0.0.1:{api_port}"),
            bootstrap,
            http: reqwest::Client::new(),
            client: ApiClient::new(format!("http://127.0.0.1:{api_port}")).with_token(TOKEN),
            node_args: Vec::new(),
        };
        mesh.add_nodes(n).await;
        mesh
    }

    /// Starts `n` more honest nodes (wallets 0x40…, 0x41…, in order) and waits until the
    /// dispatcher sees all nodes started so far online.
    pub(crate) async fn add_nodes(&mut self, n: usize) {
        for _ in 0..n {
            let i = self.nodes.len();
            let wallet = Address::from([0x40 + i as u8; 20]);
            self.wallets.push(wallet);
            let name = format!("node-{}", i + 1);
            let mut node_args = args(&[
                "node",
                "run",
                "--wallet",
                &wallet.to_string(),
                "--data-dir",
                &self.dir.join(&name).display().to_string(),
                "--net",
                NET,
                "--bootstrap",
                &self.bootstrap,
                "--listen",
                "/ip4/127.0.0.1/tcp/0",
                "--no-mdns",
                "--status",
                "127.0.0.1:0",
                "--rpc",
                &self.chain.rpc,
                "--contract",
                &self.chain.contract.to_string(),
                "--heartbeat-ms",
                "1000",
                "--max-jobs",
                "4",
                "--accept-policy",
                &pocmesh_protocol::consent::consent_hash().to_string(),
            ]);
            node_args.extend(self.node_args.iter().cloned());
            self.nodes.push(Daemon::start(&name, &node_args, &self.dir));
        }
        self.wait_online(self.nodes.len()).await;
    }

    /// Kills the dispatcher (SIGKILL) and starts it again on the same data.
    pub(crate) async fn restart_dispatcher(&mut self) {
        self.dispatcher.restart();
        eventually(
            "the dispatcher answers again",
            Duration::from_secs(60),
            || async { self.get("/v1/status").await.map(|_| ()) },
            || self.logs(),
        )
        .await;
    }

    pub(crate) fn logs(&self) -> String {
        let mut out = format!("--- dispatcher\n{}", tail(&self.dispatcher.log_text()));
        for n in &self.nodes {
            out.push_str(&format!("--- {}\n{}", n.name, tail(&n.log_text())));
        }
        out
    }

    pub(crate) async fn get(&self, path: &str) -> Option<Value> {
        self.client.get(path).await.ok()
    }

    pub(crate) async fn wait_online(&self, n: usize) {
        eventually(
            &format!("{n} nodes online at the dispatcher"),
            Duration::from_secs(90),
            || async {
                let s = self.get("/v1/status").await?;
                (s["nodes_online"].as_u64()? >= n as u64).then_some(())
            },
            || self.logs(),
        )
        .await;
    }

    pub(crate) async fn submit(&self, request: &SubmitRequest) -> String {
        let submitted = self
            .client
            .submit(request)
            .await
            .expect("submission accepted");
        submitted.id.to_string()
    }

    pub(crate) async fn job(&self, id: &str) -> Option<JobView> {
        self.client.job(id).await.ok()
    }

    /// Every job `query` lists, following the next-page cursor page by page (at most 1,000
    /// pages).
    pub(crate) async fn list_all(&self, query: JobsQuery) -> Vec<JobView> {
        self.client
            .all_jobs(&query, 1_000)
            .await
            .expect("listing answers")
    }

    /// Waits until every job in `ids` is `recorded`, and returns them.
    pub(crate) async fn all_recorded(&self, ids: &[String], timeout: Duration) -> Vec<JobView> {
        eventually(
            &format!("all {} jobs recorded", ids.len()),
            timeout,
            || async {
                // One cheap status read per poll; each job is read only once the counts say
                // they can all be recorded (reading 200 jobs every 200 ms would exceed the
                // API's per-client request budget and be refused with 429).
                let s = self.get("/v1/status").await?;
                if s["jobs"]["recorded"].as_u64()? < ids.len() as u64 {
                    return None;
                }
                let mut out = Vec::new();
                for id in ids {
                    let j = self.job(id).await?;
                    if j.state != "recorded" {
                        return None;
                    }
                    out.push(j);
                }
                Some(out)
            },
            || self.logs(),
        )
        .await
    }

    /// Units on chain equal the dispatcher's verified units, per wallet (the honest nodes' and
    /// `others`) and in total; nothing is left in the outbox.
    pub(crate) async fn check_chain(&self, jobs: &[JobView], others: &[Address]) {
        let mut verified: HashMap<Address, u128> = HashMap::new();
        for j in jobs {
            assert!(j.tx.is_some(), "recorded jobs name their transaction");
            for c in &j.credits {
                *verified.entry(c.wallet).or_default() += u128::from(c.units);
            }
        }
        let poc = ProofOfCompute::at(&self.chain.rpc, self.chain.contract)
            .await
            .expect("contract");
        let mut sum = 0u128;
        let mut wallets = self.wallets.clone();
        wallets.extend(others.iter().filter(|w| !self.wallets.contains(w)));
        for wallet in &wallets {
            let on_chain = poc.units(*wallet).await.expect("units");
            assert_eq!(
                on_chain,
                verified.get(wallet).copied().unwrap_or(0),
                "computeUnits({wallet}) equals the dispatcher's verified units"
            );
            sum += on_chain;
        }
        assert_eq!(
            poc.total_units().await.expect("total"),
            sum,
            "totalUnits equals the sum over wallets"
        );
        let s = eventually(
            "every verified credit recorded",
            Duration::from_secs(60),
            || async {
                let s = self.get("/v1/status").await?;
                (s["outbox"] == 0 && s["batch_in_flight"].is_null()).then_some(s)
            },
            || self.logs(),
        )
        .await;
        assert_eq!(
            s["units_recorded"].as_u64().map(u128::from),
            Some(sum),
            "the dispatcher's units_recorded equals totalUnits: {s}"
        );
    }
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n") + "\n"
}

pub(crate) fn hash_job(i: u64) -> SubmitRequest {
    SubmitRequest {
        job_type: "hash".into(),
        iterations: Some(1_000 + i),
        ..SubmitRequest::default()
    }
}

fn wasm_job(i: u64) -> SubmitRequest {
    SubmitRequest {
        job_type: "wasm".into(),
        module: Some(Bytes(pocmesh_executor::KERNEL_WAT.as_bytes().to_vec())),
        input: Some(Bytes(pocmesh_executor::kernel_input(
            2,
            format!("input {i}").as_bytes(),
        ))),
        ..SubmitRequest::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_jobs_survive_dispatcher_and_node_crashes_and_are_credited_once() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut mesh = Mesh::start(dir.path(), 5).await;
    let mut ids = Vec::new();
    for i in 0..95 {
        ids.push(mesh.submit(&hash_job(i)).await);
        ids.push(mesh.submit(&wasm_job(i)).await);
    }
    // Crash 1: right after the submissions were acknowledged.
    mesh.dispatcher.restart();
    mesh.wait_online(5).await;
    // Ten jobs long enough (a few seconds each) that a node can be caught holding one.
    for i in 0..10 {
        let mut long = hash_job(1_000_000 + i);
        long.iterations = Some(3_000_000 + i);
        long.redundancy = Some(1);
        ids.push(mesh.submit(&long).await);
    }

    // A node dies holding work: its leases are taken back and the jobs finish elsewhere.
    // Whichever node is first seen running one of the long jobs is the victim.
    let http = mesh.http.clone();
    let dirs: Vec<PathBuf> = (1..=5)
        .map(|i| mesh.dir.join(format!("node-{i}")))
        .collect();
    let victim: usize = eventually(
        "a node running a job",
        Duration::from_secs(60),
        || {
            let http = http.clone();
            let dirs = dirs.clone();
            async move {
                for (i, d) in dirs.iter().enumerate() {
                    let Ok(addr) = std::fs::read_to_string(d.join("status.addr")) else {
                        continue;
                    };
                    let Ok(resp) = http
                        .get(format!("http://{}/status", addr.trim()))
                        .send()
                        .await
                    else {
                        continue;
                    };
                    let Ok(v) = resp.json::<Value>().await else {
                        continue;
                    };
                    if v["jobs"]["running"].as_u64().is_some_and(|n| n > 0) {
                        return Some(i);
                    }
                }
                None
            }
        },
        || mesh.logs(),
    )
    .await;
    let victim_address: String = {
        let v: Value = serde_json::from_str(
            &std::fs::read_to_string(dirs[victim].join("node.json")).expect("node.json"),
        )
        .expect("json");
        v["address"].as_str().expect("address").to_string()
    };
    mesh.nodes[victim].sigkill();

    // Crash 2: once the first batch is on chain.
    eventually(
        "a first batch on chain",
        Duration::from_secs(120),
        || async {
            let s = mesh.get("/v1/status").await?;
            (s["batches_recorded"].as_u64()? > 0).then_some(())
        },
        || mesh.logs(),
    )
    .await;
    mesh.dispatcher.restart();
    // Crash 3: with about half of the jobs recorded.
    eventually(
        "half of the jobs recorded",
        Duration::from_secs(180),
        || async {
            let s = mesh.get("/v1/status").await?;
            (s["jobs"]["recorded"].as_u64()? >= 100).then_some(())
        },
        || mesh.logs(),
    )
    .await;
    mesh.dispatcher.restart();

    let jobs = mesh.all_recorded(&ids, Duration::from_secs(300)).await;
    assert_eq!(jobs.len(), 200, "no job lost");
    mesh.check_chain(&jobs, &[]).await;
    let reassigned = jobs.iter().any(|j| {
        j.attempts.iter().any(|a| {
            a.node.to_string() == victim_address
                && matches!(a.state.as_str(), "timed_out" | "unreachable")
        })
    });
    assert!(
        reassigned,
        "a job held by the killed node was taken back and finished elsewhere"
    );
    let s = mesh.get("/v1/status").await.expect("status");
    assert_eq!(s["jobs"]["recorded"], 200, "{s}");
    assert_eq!(s["jobs_last_24h"], 200, "{s}");
    // The listing pages through all of them, newest first, from the store's indexes; by
    // wallet it lists exactly the jobs that credited the wallet.
    let listed = mesh
        .list_all(JobsQuery {
            limit: Some(37),
            ..JobsQuery::default()
        })
        .await;
    assert_eq!(listed.len(), 200, "every job once across the pages");
    assert!(
        listed
            .windows(2)
            .all(|w| w[0].submitted_ms >= w[1].submitted_ms),
        "newest first"
    );
    let recorded = mesh
        .list_all(JobsQuery {
            state: Some("recorded".into()),
            limit: Some(64),
            ..JobsQuery::default()
        })
        .await;
    assert_eq!(recorded.len(), 200);
    for wallet in &mesh.wallets {
        let credited = jobs
            .iter()
            .filter(|j| j.credits.iter().any(|c| c.wallet == *wallet))
            .count();
        let by_wallet = mesh
            .list_all(JobsQuery {
                wallet: Some(*wallet),
                limit: Some(50),
                ..JobsQuery::default()
            })
            .await;
        assert_eq!(by_wallet.len(), credited, "jobs that credited {wallet}");
    }
    let metrics = mesh
        .http
        .get(format!("{}/metrics", mesh.api))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("pocmesh_dispatcher_batches_recorded_total"),
        "{metrics}"
    );
}

/// A TCP forwarder in front of the RPC that can be switched off (connections refused and
/// dropped) and on again.
struct Proxy {
    url: String,
    up: Arc<AtomicBool>,
    _task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let up = Arc::new(AtomicBool::new(true));
        let flag = up.clone();
        let target = target.trim_start_matches("http://").to_string();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                if !flag.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees the connection closed
                }
                let target = target.clone();
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await else {
                        return;
                    };
                    let copy = tokio::io::copy_bidirectional(&mut inbound, &mut outbound);
                    tokio::pin!(copy);
                    loop {
                        tokio::select! {
                            _ = &mut copy => return,
                            _ = tokio::time::sleep(Duration::from_millis(100)) => {
                                if !flag.load(Ordering::SeqCst) {
                                    return; // cut open connections too
                                }
                            }
                        }
                    }
                });
            }
        });
        Proxy {
            url,
            up,
            _task: task,
        }
    }

    fn set(&self, up: bool) {
        self.up.store(up, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_rpc_outage_of_thirty_seconds_delays_recording_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let chain = Chain::start(dir.path()).await;
    let proxy = Proxy::start(chain.rpc.clone()).await;
    let url = proxy.url.clone();
    let mesh = Mesh::start_with_chain(dir.path(), chain, 3, url, &[]).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(mesh.submit(&hash_job(i)).await);
    }
    let first = mesh.all_recorded(&ids, Duration::from_secs(120)).await;
    proxy.set(false);
    let before = mesh.get("/v1/status").await.expect("status");
    let mut more = Vec::new();
    for i in 20..60 {
        more.push(mesh.submit(&hash_job(i)).await);
    }
    // Jobs keep verifying while the chain is unreachable; nothing lands.
    eventually(
        "the new jobs verified while the RPC is down",
        Duration::from_secs(60),
        || async {
            let mut n = 0;
            for id in &more {
                let j = mesh.job(id).await?;
                if matches!(j.state.as_str(), "verified" | "recording") {
                    n += 1;
                }
            }
            (n == more.len()).then_some(())
        },
        || mesh.logs(),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let during = mesh.get("/v1/status").await.expect("status");
    assert_eq!(
        during["units_recorded"], before["units_recorded"],
        "nothing recorded while down"
    );
    proxy.set(true);
    let later = mesh.all_recorded(&more, Duration::from_secs(120)).await;
    let all: Vec<JobView> = first.into_iter().chain(later).collect();
    mesh.check_chain(&all, &[]).await;
    assert!(
        mesh.dispatcher
            .log_text()
            .contains("batch not recorded yet; will retry"),
        "the outage was seen and retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dispatcher_refuses_to_start_without_its_rpc_or_its_role() {
    let dir = tempfile::tempdir().expect("tmp");
    let chain = Chain::start(dir.path()).await;
    let run = |rpc: &str, key: &Path| {
        let out = crate::pocmesh(
            &[
                "dispatcher",
                "run",
                "--rpc",
                rpc,
                "--contract",
                &chain.contract.to_string(),
                "--key",
                &key.display().to_string(),
                "--data-dir",
                &dir.path().join("d").display().to_string(),
                "--api",
                "127.0.0.1:0",
                "--no-mdns",
            ],
            None,
        );
        assert!(!out.status.success(), "it must not start");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let unreachable = run("http://127.0.0.1:1", &chain.dispatcher_key);
    assert!(unreachable.contains("127.0.0.1:1"), "{unreachable}");
    let stranger = dir.path().join("stranger.key");
    pocmesh_protocol::SecretKey::generate()
        .expect("key")
        .save(&stranger, false)
        .expect("save");
    let no_role = run(&chain.rpc, &stranger);
    assert!(no_role.contains("DISPATCHER_ROLE"), "{no_role}");
    assert!(
        no_role.contains("grant"),
        "the error says how to fix it: {no_role}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_answers_bad_requests_with_clear_json_errors() {
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(dir.path(), 1).await;
    let url = format!("{}/v1/jobs", mesh.api);
    let check = |resp: reqwest::Response, status: u16, code: &'static str| async move {
        assert_eq!(resp.status().as_u16(), status);
        let v: Value = resp.json().await.expect("a JSON error body");
        assert_eq!(v["code"], code, "{v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    };
    let body = serde_json::json!({"type": "hash", "iterations": 10});
    check(
        mesh.http
            .post(&url)
            .json(&body)
            .send()
            .await
            .expect("answer"),
        401,
        "missing_token",
    )
    .await;
    check(
        mesh.http
            .post(&url)
            .bearer_auth("wrong")
            .json(&body)
            .send()
            .await
            .expect("answer"),
        401,
        "bad_token",
    )
    .await;
    check(
        mesh.http
            .post(&url)
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body("{not json")
            .send()
            .await
            .expect("answer"),
        400,
        "bad_request",
    )
    .await;
    for bad in [
        serde_json::json!({"type": "hash"}),
        serde_json::json!({"type": "hash", "iterations": 0}),
        serde_json::json!({"type": "teleport"}),
        serde_json::json!({"type": "hash", "iterations": 5, "redundancy": 9}),
    ] {
        check(
            mesh.http
                .post(&url)
                .bearer_auth(TOKEN)
                .json(&bad)
                .send()
                .await
                .expect("answer"),
            400,
            "invalid_job",
        )
        .await;
    }
    // A body over the limit is refused once the server has read past the limit; it may close
    // the connection before the client is done writing, so write and read on separate halves
    // and ignore a write cut short.
    let len = 10 * 1024 * 1024;
    let head = format!(
        "POST /v1/jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\r\n"
    );
    let addr = mesh.api.trim_start_matches("http://").to_string();
    let conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (mut rx, mut tx) = conn.into_split();
    let writer = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        tx.write_all(head.as_bytes()).await?;
        let chunk = vec![b'0'; 64 * 1024];
        for _ in 0..len / chunk.len() {
            tx.write_all(&chunk).await?;
        }
        Ok::<(), std::io::Error>(())
    });
    let mut answer = vec![0u8; 64];
    let n = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::io::AsyncReadExt::read(&mut rx, &mut answer),
    )
    .await
    .expect("an answer")
    .expect("read");
    writer.abort();
    let status_line = String::from_utf8_lossy(&answer[..n]).to_string();
    assert!(
        status_line.starts_with("HTTP/1.1 413"),
        "bodies over the limit are refused: {status_line}"
    );
    check(
        mesh.http
            .get(format!("{url}/0x1234"))
            .send()
            .await
            .expect("answer"),
        400,
        "bad_id",
    )
    .await;
    check(
        mesh.http
            .get(format!("{url}/0x{}", "ab".repeat(32)))
            .send()
            .await
            .expect("answer"),
        404,
        "not_found",
    )
    .await;
    check(
        mesh.http
            .get(format!("{url}?state=dancing"))
            .send()
            .await
            .expect("answer"),
        400,
        "bad_state",
    )
    .await;
    check(
        mesh.http
            .get(format!("{url}?wallet=0x12"))
            .send()
            .await
            .expect("answer"),
        400,
        "bad_wallet",
    )
    .await;
    check(
        mesh.http
            .get(format!("{url}?cursor=notacursor"))
            .send()
            .await
            .expect("answer"),
        400,
        "bad_query",
    )
    .await;
    // Nothing of that became a job.
    let s = mesh.get("/v1/status").await.expect("status");
    assert_eq!(s["jobs"]["queued"], 0, "{s}");
    let page = mesh
        .http
        .get(format!("{}/", mesh.api))
        .send()
        .await
        .expect("dashboard");
    assert!(
        page.text()
            .await
            .expect("html")
            .contains("pocmesh Provider Hub")
    );
}
