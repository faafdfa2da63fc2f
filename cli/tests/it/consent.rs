//! Consent and opt-out with real processes: a node on another consent text gets no work; a node
//! whose volunteer opts out gets no new offers after one heartbeat interval and its running job
//! goes to another node; opting in again (accepting the policy) brings it back.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use pocmesh_protocol::{Address, Hash32};
use serde_json::Value;

use crate::network::{Mesh, hash_job};
use crate::rogue::{Lie, spawn_with_policy};
use crate::support::eventually;

async fn node_view(mesh: &Mesh, address: &str) -> Option<Value> {
    mesh.get("/v1/nodes")
        .await?
        .as_array()?
        .iter()
        .find(|n| n["address"] == address)
        .cloned()
}

fn address_of(dir: &std::path::Path) -> String {
    let v: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("node.json")).expect("node.json"))
            .expect("json");
    v["address"].as_str().expect("address").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_is_required_and_an_opted_out_node_hands_its_work_back() {
    let dir = tempfile::tempdir().expect("tmp");
    let mesh = Mesh::start(dir.path(), 2).await;

    // A peer announcing an older consent text: known, online, never given work.
    let old = spawn_with_policy(
        Address::from([0x99; 20]),
        &mesh.bootstrap,
        Lie::WrongOutput,
        Hash32::keccak(b"pocmesh node consent, version 1"),
    )
    .await;
    mesh.wait_online(3).await;
    let view = node_view(&mesh, &old.address.to_string())
        .await
        .expect("known");
    assert_eq!(view["policy_current"], false, "{view}");
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(mesh.submit(&hash_job(i)).await);
    }
    mesh.all_recorded(&ids, Duration::from_secs(120)).await;
    assert_eq!(
        old.offers.load(Ordering::SeqCst),
        0,
        "no work without consent"
    );

    // Long jobs; node 1 holds one of them (a node on probation holds at most two, so three
    // jobs on two nodes put at least one on each) when its volunteer opts out.
    let node1 = dir.path().join("node-1");
    let node1_address = address_of(&node1);
    let mut long_ids = Vec::new();
    for i in 0..3 {
        let mut long = hash_job(1_000 + i);
        long.iterations = Some(8_000_000);
        long_ids.push(mesh.submit(&long).await);
    }
    let held: String = eventually(
        "node 1 running a long job",
        Duration::from_secs(60),
        || async {
            for id in &long_ids {
                let j = mesh.job(id).await?;
                if j.attempts
                    .iter()
                    .any(|a| a.node.to_string() == node1_address && a.state == "running")
                {
                    return Some(id.clone());
                }
            }
            None
        },
        || mesh.logs(),
    )
    .await;
    let asked = Instant::now();
    let out = crate::pocmesh(
        &[
            "node",
            "opt-out",
            "--data-dir",
            &node1.display().to_string(),
            "--json",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "opt-out: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(
        "the dispatcher sees node 1 opted out",
        Duration::from_secs(10),
        || async {
            let v = node_view(&mesh, &node1_address).await?;
            (v["opted_out"] == true).then_some(())
        },
        || mesh.logs(),
    )
    .await;
    assert!(
        asked.elapsed() < Duration::from_secs(3),
        "opt-out took effect within a heartbeat interval (1 s here), took {:?}",
        asked.elapsed()
    );
    let long_jobs = mesh.all_recorded(&long_ids, Duration::from_secs(240)).await;
    let job = long_jobs
        .iter()
        .find(|j| j.id.to_string() == held)
        .expect("the held job");
    let handed_back = job.attempts.iter().any(|a| {
        a.node.to_string() == node1_address
            && a.detail.as_deref().is_some_and(|d| d.contains("opted out"))
    });
    assert!(handed_back, "node 1's attempt was handed back: {job:?}");
    assert!(
        job.credits
            .iter()
            .all(|c| c.node.to_string() != node1_address),
        "the job was finished elsewhere: {job:?}"
    );
    // No new offers for the opted-out node.
    let mut more = Vec::new();
    for i in 10..16 {
        more.push(mesh.submit(&hash_job(i)).await);
    }
    let more = mesh.all_recorded(&more, Duration::from_secs(120)).await;
    assert!(
        more.iter()
            .flat_map(|j| &j.attempts)
            .all(|a| a.node.to_string() != node1_address),
        "an opted-out node got an offer"
    );

    // Opting in again takes the policy again; then the node is back.
    let hash = pocmesh_protocol::consent::consent_hash().to_string();
    let out = crate::pocmesh(
        &[
            "node",
            "opt-in",
            "--data-dir",
            &node1.display().to_string(),
            "--accept-policy",
            &hash,
            "--json",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "opt-in: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    eventually(
        "node 1 back",
        Duration::from_secs(15),
        || async {
            let v = node_view(&mesh, &node1_address).await?;
            (v["opted_out"] == false && v["online"] == true).then_some(())
        },
        || mesh.logs(),
    )
    .await;
    let mut all = mesh.all_recorded(&ids, Duration::from_secs(30)).await;
    all.extend(long_jobs);
    all.extend(more);
    mesh.check_chain(&all, &[]).await;
}
