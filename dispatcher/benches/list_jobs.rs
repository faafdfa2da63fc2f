//! What `GET /v1/jobs` costs with 100,000 jobs in the store: one page read from the indexes and
//! turned into the JSON the API sends (the handler's whole work, without the socket).
//!
//! Then the store-side work of the Provider Hub's pages with 10,000 jobs submitted over the last
//! day across 100 wallets: the dashboard's 24-hour charts (`/v1/stats`) and one wallet's figures
//! (`/v1/wallets/{addr}`, `/wallet/{addr}`; chain reads excluded).
//!
//! Run: `cargo bench -p pocmesh-dispatcher --bench list_jobs`; medians go to docs/benchmarks.md.
//! Filling the stores takes a few seconds; set `POCMESH_BENCH_JOBS` for another size.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pocmesh_dispatcher::api::JobView;
use pocmesh_dispatcher::api::stats::read_hours;
use pocmesh_dispatcher::api::wallet::figures;
use pocmesh_dispatcher::job_index::JobFilter;
use pocmesh_dispatcher::lifecycle::{
    Attempt, AttemptState, Credit, Job, JobState, SubmittedResult,
};
use pocmesh_dispatcher::store::{Changes, DispatcherStore};
use pocmesh_protocol::{
    Address, BatchId, Bytes, Hash32, JobId, JobParams, JobSpec, Limits, Metering,
};

/// Wallets the credits are spread over.
const WALLETS: u64 = 100;
/// One job in this many is a wasm job carrying a module (the rows that made full scans slow).
const WASM_EVERY: u64 = 100;
/// One job in this many is still queued; the rest are recorded.
const QUEUED_EVERY: u64 = 10;

fn bytes32(n: u64, tag: u8) -> [u8; 32] {
    let mut b = [tag; 32];
    b[..8].copy_from_slice(&n.to_be_bytes());
    b
}

fn wallet(n: u64) -> Address {
    let mut b = [0x77; 20];
    b[..8].copy_from_slice(&(n % WALLETS + 1).to_be_bytes());
    Address::from(b)
}

/// A job as the store holds it after a normal life: recorded with one accepted attempt and its
/// credit, or still queued.
fn job(n: u64) -> Job {
    let params = if n.is_multiple_of(WASM_EVERY) {
        JobParams::Wasm {
            module: Bytes(vec![0x5a; 16 * 1024]),
            input: Bytes(n.to_be_bytes().to_vec()),
        }
    } else {
        JobParams::Hash {
            seed: Hash32(bytes32(n, 1)),
            iterations: 1_000,
        }
    };
    let id = JobId::from(bytes32(n, 2));
    let submitted_ms = 1_700_000_000_000 + n * 10;
    let spec = JobSpec {
        params,
        limits: Limits {
            max_ms: 10_000,
            max_mem_mb: 64,
            max_output_bytes: 4_096,
            max_fuel: None,
        },
    };
    let mut job = Job::queued(id, spec, 1, submitted_ms);
    if n.is_multiple_of(QUEUED_EVERY) {
        return job;
    }
    let result_hash = Hash32(bytes32(n, 3));
    let node = Address::from([0x11; 20]);
    job.attempts.push(Attempt {
        n: 1,
        node,
        wallet: wallet(n),
        peer: "16Uiu2HAmXbW3k7ngnHwrZ3tEVyxBBa1Hs2xY2TF47cMUiTGBQ5Wv".into(),
        origin: None,
        state: AttemptState::Accepted,
        offered_ms: submitted_ms + 1,
        result: Some(SubmittedResult {
            result_hash,
            metering: Metering {
                fuel: 1_000,
                ms: 1,
                bytes: 32,
            },
            output: bytes32(n, 4).to_vec(),
            received_ms: submitted_ms + 3,
        }),
    });
    job.result_hash = Some(result_hash);
    job.credits.push(Credit {
        job: id,
        node,
        peer: String::new(),
        wallet: wallet(n),
        units: 1,
        result_hash,
    });
    job.state = JobState::Recorded {
        batch: BatchId::from(bytes32(n / 1_000, 5)),
        tx: Hash32(bytes32(n / 1_000, 6)),
        block: n / 1_000,
    };
    job.updated_ms = submitted_ms + 500;
    job
}

/// One API page: the indexed read and the JSON the handler sends.
fn page(store: &DispatcherStore, filter: &JobFilter<'_>, cursor: Option<&str>) -> (usize, usize) {
    let (jobs, _) = store.list_jobs(filter, 50, cursor).expect("list");
    let body =
        serde_json::to_vec(&jobs.iter().map(JobView::from).collect::<Vec<_>>()).expect("json");
    (jobs.len(), body.len())
}

fn benches(c: &mut Criterion) {
    let total: u64 = std::env::var("POCMESH_BENCH_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let dir = tempfile::tempdir().expect("tmp");
    let store = DispatcherStore::open(dir.path()).expect("open");
    let started = std::time::Instant::now();
    for chunk in (0..total).collect::<Vec<_>>().chunks(2_000) {
        store
            .commit(&Changes {
                jobs: chunk.iter().map(|&n| job(n)).collect(),
                ..Changes::default()
            })
            .expect("commit");
    }
    eprintln!(
        "filled {total} jobs in {:.1} s",
        started.elapsed().as_secs_f64()
    );

    let all = JobFilter::default();
    // A cursor half-way down the history: paging deep costs what the first page costs.
    let mut cursor = None;
    for _ in 0..(total / 2 / 1_000).max(1) {
        let (_, next) = store
            .list_jobs(&all, 1_000, cursor.as_deref())
            .expect("list");
        cursor = next;
    }
    let deep = cursor.expect("a deep cursor");
    let recorded = JobFilter::in_state("recorded");
    // Listed from memory (a state that is not final), kept by the commits above.
    let queued = JobFilter::in_state("queued");
    let by_wallet = JobFilter::of_wallet(wallet(7));
    for filter in [&all, &recorded, &queued, &by_wallet] {
        assert_eq!(page(&store, filter, None).0, 50, "{filter:?}");
    }

    let mut group = c.benchmark_group(format!("GET /v1/jobs, {total} jobs stored"));
    group.bench_function("limit=50 (newest)", |b| {
        b.iter(|| page(&store, black_box(&all), None))
    });
    group.bench_function("limit=50, cursor half-way down", |b| {
        b.iter(|| page(&store, black_box(&all), Some(&deep)))
    });
    group.bench_function("state=recorded&limit=50", |b| {
        b.iter(|| page(&store, black_box(&recorded), None))
    });
    group.bench_function("state=queued&limit=50", |b| {
        b.iter(|| page(&store, black_box(&queued), None))
    });
    group.bench_function("wallet=…&limit=50", |b| {
        b.iter(|| page(&store, black_box(&by_wallet), None))
    });
    group.finish();
}

/// A day's 10,000 jobs, newest now, one every 8.2 s (all inside the 24-hour window).
fn pages(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tmp");
    let store = DispatcherStore::open(dir.path()).expect("open");
    let now = pocmesh_protocol::unix_ms_now();
    for chunk in (0..10_000u64).collect::<Vec<_>>().chunks(2_000) {
        store
            .commit(&Changes {
                jobs: chunk
                    .iter()
                    .map(|&n| {
                        let mut j = job(n);
                        j.submitted_ms = now - n * 8_200;
                        j.updated_ms = j.submitted_ms;
                        j
                    })
                    .collect(),
                ..Changes::default()
            })
            .expect("commit");
    }
    let (hours, truncated) = read_hours(&store, now).expect("hours");
    assert!(!truncated);
    assert_eq!(hours.iter().map(|h| h.jobs).sum::<u64>(), 10_000);
    let mut group = c.benchmark_group("Provider Hub pages, 10,000 jobs in the last day");
    group.bench_function("GET /v1/stats (24 hourly buckets, uncached)", |b| {
        b.iter(|| read_hours(&store, black_box(now)).expect("hours"))
    });
    group.bench_function("wallet figures (100 of its jobs among 10,000)", |b| {
        b.iter(|| figures(&store, black_box(wallet(7))).expect("figures"))
    });
    group.finish();
}

criterion_group! {
    name = list_jobs;
    config = Criterion::default().sample_size(30);
    targets = benches, pages
}
criterion_main!(list_jobs);
