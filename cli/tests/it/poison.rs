//! Credits that can never be recorded hold nothing back: a wallet the contract refuses is
//! stopped where it enters (the CLI, gossip validation), and one already in a dispatcher's
//! persisted outbox — left there by an earlier version — is quarantined with its reason while
//! the rest is recorded.

use std::time::Duration;

use pocmesh_chain::ProofOfCompute;
use pocmesh_dispatcher::lifecycle::{Credit, Job, JobState};
use pocmesh_dispatcher::store::{Changes, Counters, DispatcherStore};
use pocmesh_protocol::{Address, Hash32, JobId, JobParams, JobSpec, Limits};

use crate::network::{Mesh, hash_job};
use crate::rogue::{Lie, spawn};
use crate::support::eventually;

fn verified_job(n: u8, wallet: Address) -> (Job, Credit) {
    let id = JobId::from([n; 32]);
    let credit = Credit {
        job: id,
        node: Address([0x90 + n; 20]),
        peer: String::new(),
        wallet,
        units: 1,
        result_hash: Hash32([n; 32]),
    };
    let spec = JobSpec {
        params: JobParams::Hash {
            seed: Hash32::ZERO,
            iterations: 1_000,
        },
        limits: Limits {
            max_ms: 1_000,
            max_mem_mb: 16,
            max_output_bytes: 64,
            max_fuel: None,
        },
    };
    let mut job = Job::queued(id, spec, 1, pocmesh_protocol::unix_ms_now());
    job.state = JobState::Verified;
    job.result_hash = Some(Hash32([n; 32]));
    job.credits = vec![credit.clone()];
    (job, credit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_outbox_is_quarantined_and_a_zero_wallet_node_gets_no_work() {
    // The CLI refuses to run a node for a wallet that can never be credited.
    let dir = tempfile::tempdir().expect("tmp");
    let out = crate::pocmesh(
        &[
            "node",
            "run",
            "--wallet",
            "0x0000000000000000000000000000000000000000",
            "--data-dir",
            &dir.path().join("zero-node").display().to_string(),
            "--net",
            "devnet-551",
            "--no-mdns",
        ],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("wallet") && err.contains("zero"), "{err}");

    // An outbox written by an earlier version: a credit to the zero address ahead of a good one.
    let good_wallet = Address::from([0x55; 20]);
    {
        let store =
            DispatcherStore::open(&dir.path().join("dispatcher").join("store")).expect("store");
        let (poisoned, c1) = verified_job(1, Address::ZERO);
        let (fine, c2) = verified_job(2, good_wallet);
        store
            .commit(&Changes {
                jobs: vec![poisoned, fine],
                outbox_add: vec![(1, c1), (2, c2)],
                counters: Some(Counters {
                    job_seq: 2,
                    outbox_seq: 2,
                    ..Counters::default()
                }),
                ..Changes::default()
            })
            .expect("seed the store");
    }
    let mesh = Mesh::start(dir.path(), 1).await;
    let s = eventually(
        "the outbox drained",
        Duration::from_secs(60),
        || async {
            let s = mesh.get("/v1/status").await?;
            (s["outbox"] == 0 && s["units_recorded"] == 1 && s["batch_in_flight"].is_null())
                .then_some(s)
        },
        || mesh.logs(),
    )
    .await;
    assert_eq!(s["credits_quarantined"], 1, "{s}");
    let poc = ProofOfCompute::at(&mesh.chain.rpc, mesh.chain.contract)
        .await
        .expect("contract");
    assert_eq!(
        poc.units(good_wallet).await.expect("units"),
        1,
        "the good credit is on chain"
    );
    let poisoned = mesh
        .job(&JobId::from([1; 32]).to_string())
        .await
        .expect("job");
    assert_eq!(poisoned.state, "failed");
    assert_eq!(poisoned.quarantined.len(), 1);
    assert!(
        poisoned.quarantined[0].reason.contains("zero address"),
        "{:?}",
        poisoned.quarantined
    );
    let metrics = reqwest::get(format!("{}/metrics", mesh.api))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("pocmesh_dispatcher_credits_quarantined_total 1"),
        "{metrics}"
    );

    // A rogue that skips the CLI's check and announces the zero address is refused by gossip
    // validation: it never registers and never gets an offer, while honest work goes on.
    let rogue = spawn(Address::ZERO, &mesh.bootstrap, Lie::WrongOutput).await;
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(mesh.submit(&hash_job(i)).await);
    }
    let jobs = mesh.all_recorded(&ids, Duration::from_secs(120)).await;
    let nodes = mesh.get("/v1/nodes").await.expect("nodes");
    assert!(
        nodes
            .as_array()
            .expect("list")
            .iter()
            .all(|n| n["address"] != rogue.address.to_string()),
        "{nodes}"
    );
    assert_eq!(rogue.offers.load(std::sync::atomic::Ordering::SeqCst), 0);
    let mut all = jobs;
    all.extend(mesh.job(&JobId::from([2; 32]).to_string()).await);
    mesh.check_chain(&all, &[good_wallet]).await;
}
