//! The end-to-end test of the local network as a newcomer runs it: `testnet up --detach`, all
//! demo jobs recorded, every wallet's units read straight from the chain equal to the
//! dispatcher's records, one more job through `job submit --wait`, `testnet down` leaving no
//! process, and `up` again resuming the same contract and totals.

use std::collections::HashMap;
use std::process::{Command, Stdio};

use pocmesh_chain::ProofOfCompute;
use pocmesh_dispatcher::api::JobView;
use pocmesh_dispatcher::api::client::{ApiClient, JobsQuery};
use pocmesh_dispatcher::api::receipts::JobReceipts;
use pocmesh_protocol::Address;
use serde_json::Value;

use crate::{json, pocmesh};

fn up(dir: &str, extra: &[&str]) -> Value {
    let mut a = vec![
        "testnet",
        "up",
        "--detach",
        "--json",
        "--dir",
        dir,
        "--port",
        "0",
        "--api-port",
        "0",
    ];
    a.extend_from_slice(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_pocmesh"))
        .args(&a)
        .stdin(Stdio::null())
        .output()
        .expect("runs");
    if !out.status.success() {
        let logs: String = std::fs::read_dir(std::path::Path::new(dir).join("logs"))
            .map(|d| {
                d.flatten()
                    .map(|e| {
                        let t = std::fs::read_to_string(e.path()).unwrap_or_default();
                        let lines: Vec<&str> = t.lines().collect();
                        format!(
                            "--- {}\n{}\n",
                            e.path().display(),
                            lines[lines.len().saturating_sub(30)..].join("\n")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        panic!(
            "testnet up failed: {}\n{logs}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    json(&out)
}

fn pids(dir: &str) -> Vec<u32> {
    let state: Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(dir).join("testnet.json")).expect("state"),
    )
    .expect("json");
    state["procs"]
        .as_array()
        .expect("procs")
        .iter()
        .map(|p| p["pid"].as_u64().expect("pid") as u32)
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn testnet_up_records_demo_jobs_and_down_leaves_nothing_running() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("net").display().to_string();
    let report = up(&dir, &["--nodes", "4", "--jobs", "20"]);
    let rpc = report["rpc"].as_str().expect("rpc").to_string();
    let api = report["api"].as_str().expect("api").to_string();
    let contract: Address = report["contract"]
        .as_str()
        .expect("contract")
        .parse()
        .expect("address");
    assert_eq!(report["chain_id"], 551);
    assert_eq!(report["jobs"]["recorded"], 40, "{report}");
    let started = pids(&dir);
    assert_eq!(started.len(), 6, "anvil, the dispatcher and 4 nodes");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(std::path::Path::new(&dir).join("testnet.json")).expect("state"),
    )
    .expect("state json");
    let contract_block = state["contract_block"]
        .as_u64()
        .expect("contract_block kept");
    assert!(contract_block > 0, "the deployment block is known: {state}");

    // The dispatcher's records, straight from its API.
    let jobs: Vec<JobView> = ApiClient::new(&api)
        .all_jobs(&JobsQuery::default(), 100)
        .await
        .expect("api");
    assert_eq!(jobs.len(), 40);
    let mut verified: HashMap<Address, u128> = HashMap::new();
    for j in &jobs {
        assert_eq!(j.state, "recorded");
        for c in &j.credits {
            *verified.entry(c.wallet).or_default() += u128::from(c.units);
        }
    }
    // The chain, read independently of the launcher.
    let poc = ProofOfCompute::at(&rpc, contract).await.expect("contract");
    let mut sum = 0u128;
    for w in report["wallets"].as_array().expect("wallets") {
        let wallet: Address = w["wallet"]
            .as_str()
            .expect("wallet")
            .parse()
            .expect("address");
        let units = poc.units(wallet).await.expect("units");
        assert_eq!(u128::from(w["units"].as_u64().expect("units")), units);
        assert_eq!(
            verified.get(&wallet).copied().unwrap_or(0),
            units,
            "{wallet}"
        );
        // The wallet view agrees with the contract and with the jobs, credit by credit.
        let view = ApiClient::new(&api)
            .wallet(wallet)
            .await
            .expect("wallet view");
        assert_eq!(view.units_on_chain, Some(units), "{wallet}");
        assert_eq!(
            u128::from(view.dispatcher.units_recorded),
            units,
            "{wallet}"
        );
        assert!(!view.differs, "{wallet}");
        assert_eq!(
            view.credits_from_block, contract_block,
            "credits are searched from the contract's deployment block, not from 0"
        );
        assert_eq!(
            view.credits.iter().map(|c| c.units).sum::<u128>(),
            units,
            "the credit history adds up for {wallet}"
        );
        assert!(
            view.credits.iter().all(|c| c.batch.is_some()),
            "every credit came with its batch"
        );
        assert_eq!(view.nodes.len(), 1, "one node earns for {wallet}");
        assert!(view.run_a_node.contains(&wallet.to_string()));
        sum += units;
    }
    assert!(sum > 0);
    assert_eq!(poc.total_units().await.expect("total"), sum);
    // Every credit's receipt reached its node over the mesh (nodes take them in one `receipts`
    // message each) and the node checked it against the chain: its verified units are its
    // wallet's units on the contract.
    for n in state["nodes"].as_array().expect("nodes") {
        let wallet: Address = n["wallet"].as_str().expect("wallet").parse().expect("addr");
        let on_chain = poc.units(wallet).await.expect("units");
        let data_dir = n["data_dir"].as_str().expect("data dir");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let out = pocmesh(&["node", "status", "--data-dir", data_dir, "--json"], None);
            assert!(out.status.success(), "{out:?}");
            let status: Value = json(&out);
            let earned = u128::from(status["units_earned"].as_u64().expect("units_earned"));
            if earned == on_chain {
                assert_eq!(status["receipts"]["failed"], 0, "{status}");
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{}: {earned} units verified from receipts, {on_chain} on chain: {status}",
                n["name"]
            );
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }
    // The XDC form names the same wallet; a malformed address is a clear 400.
    let first: Address = report["wallets"][0]["wallet"]
        .as_str()
        .expect("wallet")
        .parse()
        .expect("address");
    let first_view = ApiClient::new(&api)
        .wallet(first)
        .await
        .expect("wallet view");
    // A recorded job's receipt: its proof leads to the batch root, and the contract agrees.
    let recorded = first_view
        .dispatcher
        .recent
        .iter()
        .find(|r| r.tx.is_some())
        .expect("a recorded job for the wallet");
    let receipts: JobReceipts = ApiClient::new(&api)
        .get(&format!("/v1/jobs/{}/receipts", recorded.job))
        .await
        .expect("receipts");
    assert!(!receipts.receipts.is_empty());
    for r in &receipts.receipts {
        assert_eq!(r.verified_on_chain, Some(true), "{r:?}");
        assert!(pocmesh_protocol::verify_proof(r.root, r.leaf, &r.proof));
        assert_eq!(
            poc.batch_root(r.batch).await.expect("root"),
            Some(r.root),
            "the contract holds the root the proof leads to"
        );
    }
    // Every batch carries the gas its transaction used, as the chain's receipt says, and the
    // recorded batches add up to the contract's total.
    let batches = ApiClient::new(&api)
        .batches(500, None)
        .await
        .expect("batches");
    assert!(
        batches.next.is_none(),
        "one page holds this testnet's batches"
    );
    let recorded_batches: Vec<_> = batches
        .items
        .iter()
        .filter(|b| b.state == "recorded")
        .collect();
    assert!(!recorded_batches.is_empty());
    for b in &recorded_batches {
        let tx = poc
            .transaction(b.tx.expect("a recorded batch has its tx"))
            .await
            .expect("tx")
            .expect("mined");
        assert!(b.gas_used.is_some(), "{b:?}");
        assert_eq!(b.gas_used, tx.gas_used, "{b:?}");
        assert_eq!(b.gas_per_credit, b.gas_used.map(|g| g / b.credits as u64));
    }
    assert_eq!(
        u128::from(recorded_batches.iter().map(|b| b.units).sum::<u64>()),
        sum,
        "the batches add up to totalUnits"
    );
    let full = ApiClient::new(&api)
        .batch(&recorded_batches[0].id)
        .await
        .expect("one batch");
    assert_eq!(
        full.entries.iter().map(|e| e.units).sum::<u64>(),
        full.units
    );
    assert!(!full.jobs.is_empty());
    let by_xdc: serde_json::Value = ApiClient::new(&api)
        .get(&format!("/v1/wallets/{}", first.to_xdc()))
        .await
        .expect("xdc form");
    assert_eq!(by_xdc["wallet"], first.to_string());
    let bad = ApiClient::new(&api)
        .get::<serde_json::Value>("/v1/wallets/0x1234")
        .await
        .expect_err("not an address");
    assert_eq!(bad.status(), Some(400), "{bad}");
    assert_eq!(bad.code(), Some("bad_wallet"), "{bad}");
    // The same in a browser: headless Chromium reads the wallet page in both address forms
    // against an eth_call of its own, and screenshots go to the test's artifacts.
    let artifacts = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-artifacts");
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/browser/wallet-pages.mjs");
    let browser = Command::new("node")
        .arg(&script)
        .args([
            api.as_str(),
            rpc.as_str(),
            &contract.to_string(),
            &first.to_string(),
            &first_view.credits[0].tx.to_string(),
            &artifacts.display().to_string(),
        ])
        .output()
        .expect("node runs");
    assert!(
        browser.status.success(),
        "browser test failed (scripts/test installs chromium and playwright-core):\n{}\n{}",
        String::from_utf8_lossy(&browser.stdout),
        String::from_utf8_lossy(&browser.stderr)
    );
    for shot in [
        "dashboard",
        "wallet",
        "explorer-tx",
        "explorer-address",
        "nodes",
        "jobs",
        "batches",
    ] {
        assert!(artifacts.join(format!("{shot}.png")).exists(), "{shot}.png");
    }
    let cli = pocmesh(
        &["wallet", &first.to_string(), "--api", &api, "--json"],
        None,
    );
    assert!(cli.status.success(), "{cli:?}");
    let cli: serde_json::Value = json(&cli);
    assert_eq!(cli["wallet"], first.to_string());

    // One more job through the CLI, followed to its transaction.
    let token_file = report["token_file"]
        .as_str()
        .expect("token file")
        .to_string();
    let out = pocmesh(
        &[
            "job",
            "submit",
            "--api",
            &api,
            "--token-file",
            &token_file,
            "--type",
            "hash",
            "--iterations",
            "2000000",
            "--wait",
            "--json",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let job = json(&out);
    assert_eq!(job["state"], "recorded", "{job}");
    assert!(job["tx"].as_str().is_some_and(|t| t.starts_with("0x")));
    let total_before_down = poc.total_units().await.expect("total");
    let job_units = u128::from(job["units"].as_u64().expect("units"));
    assert_eq!(
        total_before_down,
        sum + job_units + 1,
        "the CLI job's units landed too (and the browser's demo job's one unit)"
    );

    let out = pocmesh(&["testnet", "down", "--dir", &dir], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for pid in &started {
        assert!(!alive(*pid), "process {pid} is still running after down");
    }
    let status = pocmesh(&["testnet", "status", "--dir", &dir, "--json"], None);
    assert_eq!(json(&status)["running"], false);

    // Up again: the same chain, contract and totals (no new demo jobs on a resumed network).
    let again = up(&dir, &["--nodes", "4"]);
    assert_eq!(again["contract"], report["contract"]);
    assert_eq!(again["resumed"], true);
    assert_eq!(
        u128::from(again["total_units"].as_u64().expect("total")),
        total_before_down
    );
    let restarted = pids(&dir);
    let out = pocmesh(&["testnet", "down", "--dir", &dir], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for pid in restarted {
        assert!(
            !alive(pid),
            "process {pid} is still running after the second down"
        );
    }
}
