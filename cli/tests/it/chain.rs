//! Contract commands against a real anvil, and the crash test: the recording process is killed
//! between sending its transaction and its bookkeeping, then run again — nothing is credited twice.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ethers::providers::{Http, Provider};
use pocmesh_chain::anvil::{Anvil, AnvilConfig, DEV_KEY_0, default_tool_dirs, locate_anvil};
use pocmesh_protocol::{Address, BatchPlan, Hash32, JobId, ReceiptLeaf, keccak256};

use crate::{json, pocmesh};

fn anvil() -> Anvil {
    let bin = locate_anvil(None, &default_tool_dirs()).unwrap_or_else(|e| panic!("{e}"));
    Anvil::spawn(&bin, &AnvilConfig::default()).expect("anvil starts")
}

fn deploy(rpc: &str) -> String {
    let out = pocmesh(
        &[
            "contract",
            "deploy",
            "--rpc",
            rpc,
            "--private-key",
            DEV_KEY_0,
            "--grant",
            "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
            "--json",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "deploy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j = json(&out);
    j["address"].as_str().expect("address").to_string()
}

fn receipts_file(dir: &std::path::Path, seed: u64, n: u64) -> (std::path::PathBuf, BatchPlan) {
    let receipts: Vec<ReceiptLeaf> = (0..n)
        .map(|j| ReceiptLeaf {
            job: JobId::from(keccak256([seed, j].map(u64::to_be_bytes).concat())),
            provider: Address([1 + (j % 3) as u8; 20]),
            node: Address([50; 20]),
            units: 1 + j % 4,
            result_hash: Hash32::keccak(j.to_be_bytes()),
        })
        .collect();
    let path = dir.join(format!("receipts-{seed}.json"));
    std::fs::write(&path, serde_json::to_string(&receipts).expect("json")).expect("write");
    (path, BatchPlan::new(receipts).expect("plan"))
}

#[test]
fn deploy_info_units_round_trip_with_xdc_addresses() {
    let chain = anvil();
    let rpc = chain.rpc_url();
    let contract = deploy(&rpc);
    let j = json(&pocmesh(
        &[
            "contract",
            "info",
            "--rpc",
            &rpc,
            "--contract",
            &contract,
            "--dispatcher",
            "xdcf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
            "--json",
        ],
        None,
    ));
    assert_eq!(j["decimals"], 0);
    assert_eq!(j["total_units"], 0);
    assert_eq!(j["code_matches_artifact"], true);
    assert_eq!(j["dispatcher"]["has_role"], true);

    let dir = tempfile::tempdir().expect("dir");
    let (file, plan) = receipts_file(dir.path(), 1, 10);
    let out = pocmesh(
        &[
            "contract",
            "record-batch",
            "--rpc",
            &rpc,
            "--contract",
            &contract,
            "--private-key",
            DEV_KEY_0,
            "--receipts",
            file.to_str().expect("utf-8"),
            "--json",
        ],
        None,
    );
    let j = json(&out);
    assert_eq!(j["outcome"], "recorded", "{j}");
    assert_eq!(j["batch"], plan.batch_id.to_string());

    let wallet = plan.providers[0];
    let j = json(&pocmesh(
        &[
            "units",
            &wallet.to_xdc(),
            "--rpc",
            &rpc,
            "--contract",
            &contract.replacen("0x", "xdc", 1),
            "--json",
            "--history",
        ],
        None,
    ));
    assert_eq!(j["wallet"], wallet.to_string());
    assert_eq!(j["units"], plan.units[0]);
    assert_eq!(j["history"][0]["batch"], plan.batch_id.to_string());
}

#[test]
fn bad_inputs_get_clear_errors() {
    let out = pocmesh(
        &[
            "units",
            "0x1234",
            "--rpc",
            "http://127.0.0.1:9",
            "--contract",
            "0x0000000000000000000000000000000000000001",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("needs exactly 40"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = pocmesh(
        &[
            "units",
            "0x0000000000000000000000000000000000000002",
            "--rpc",
            "http://127.0.0.1:9",
            "--contract",
            "0x0000000000000000000000000000000000000001",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("127.0.0.1:9") && err.contains("unreachable"),
        "{err}"
    );

    let chain = anvil();
    let out = pocmesh(
        &[
            "units",
            "0x0000000000000000000000000000000000000002",
            "--rpc",
            &chain.rpc_url(),
            "--contract",
            "0x0000000000000000000000000000000000000001",
        ],
        None,
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no ProofOfCompute contract"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = pocmesh(&["contract", "deploy", "--rpc", &chain.rpc_url()], None);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--key FILE"));
}

async fn rpc_call(
    p: &Provider<Http>,
    method: &str,
    params: serde_json::Value,
) -> serde_json::Value {
    p.request(method, params)
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"))
}

async fn pending_count(p: &Provider<Http>) -> u64 {
    let status = rpc_call(p, "txpool_status", serde_json::json!([])).await;
    let pending = &status["pending"];
    pending
        .as_u64()
        .or_else(|| {
            pending
                .as_str()
                .and_then(|s| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
        })
        .unwrap_or(0)
}

async fn wait_pending(p: &Provider<Http>, n: u64, run: &mut Recording) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while pending_count(p).await < n {
        if let Ok(Some(status)) = run.0.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = run.0.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            panic!(
                "the recorder exited ({status}) before its transaction reached the mempool: {err}"
            );
        }
        assert!(
            Instant::now() < deadline,
            "the recorder never put its transaction in the mempool"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts `record-batch` as a child process (killed on drop).
struct Recording(std::process::Child);

impl Recording {
    fn start(rpc: &str, contract: &str, file: &std::path::Path) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_pocmesh"))
            .args([
                "--log",
                "pocmesh_chain=info",
                "contract",
                "record-batch",
                "--rpc",
                rpc,
                "--contract",
                contract,
                "--private-key",
                DEV_KEY_0,
                "--json",
                "--receipts",
            ])
            .arg(file)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("record-batch starts");
        Recording(child)
    }

    /// Reads its log until a line contains `needle` (bounded by the child's life and 60 s).
    fn wait_log(&mut self, needle: &str) {
        use std::io::BufRead;
        let stderr = self.0.stderr.take().expect("stderr piped");
        let (tx, rx) = std::sync::mpsc::channel();
        let needle = needle.to_string();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains(&needle) {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(Duration::from_secs(60))
            .expect("the expected log line never appeared");
    }

    fn sigkill(mut self) {
        self.0.kill().expect("SIGKILL");
        self.0.wait().expect("reaped");
    }

    fn finish(mut self) -> std::process::Output {
        let child = std::mem::replace(&mut self.0, Command::new("true").spawn().expect("true"));
        child.wait_with_output().expect("finishes")
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn killed_between_send_and_bookkeeping_then_restarted_credits_once() {
    let chain = anvil();
    let rpc = chain.rpc_url();
    let contract = deploy(&rpc);
    let p = Provider::<Http>::try_from(rpc.as_str()).expect("provider");
    rpc_call(&p, "evm_setAutomine", serde_json::json!([false])).await;
    let dir = tempfile::tempdir().expect("dir");

    // Case 1: killed while its transaction waits in the mempool; the block lands; restart.
    let (file1, plan1) = receipts_file(dir.path(), 11, 25);
    let mut run = Recording::start(&rpc, &contract, &file1);
    wait_pending(&p, 1, &mut run).await;
    run.sigkill();
    rpc_call(&p, "evm_mine", serde_json::json!([])).await;
    let out = Recording::start(&rpc, &contract, &file1).finish();
    let j = json(&out);
    assert_eq!(j["outcome"], "already_recorded", "{j}");
    assert!(j["tx"].is_string(), "the earlier transaction is found: {j}");

    // Case 2: killed while pending, restarted while still pending: the restart sees the batch in
    // the node's pending state, waits for the first transaction instead of sending a second one,
    // and reports it once mined.
    let (file2, plan2) = receipts_file(dir.path(), 12, 40);
    let mut run = Recording::start(&rpc, &contract, &file2);
    wait_pending(&p, 1, &mut run).await;
    run.sigkill();
    let mut rerun = Recording::start(&rpc, &contract, &file2);
    rerun.wait_log("pending in another transaction");
    assert_eq!(
        pending_count(&p).await,
        1,
        "the restart must not pay for a second transaction"
    );
    rpc_call(&p, "evm_mine", serde_json::json!([])).await;
    let j = json(&rerun.finish());
    assert_eq!(j["outcome"], "already_recorded", "{j}");

    // Case 3: killed before anything was sent (at once), then run to completion.
    rpc_call(&p, "evm_setAutomine", serde_json::json!([true])).await;
    let (file3, plan3) = receipts_file(dir.path(), 13, 7);
    Recording::start(&rpc, &contract, &file3).sigkill();
    let j = json(&Recording::start(&rpc, &contract, &file3).finish());
    assert!(
        j["outcome"] == "recorded" || j["outcome"] == "already_recorded",
        "{j}"
    );

    // On chain: every wallet holds exactly the units of the three batches, once.
    let poc = pocmesh_chain::ProofOfCompute::at(&rpc, contract.parse().expect("address"))
        .await
        .expect("contract");
    let mut expected = std::collections::BTreeMap::<Address, u128>::new();
    for plan in [&plan1, &plan2, &plan3] {
        for (w, u) in plan.providers.iter().zip(&plan.units) {
            *expected.entry(*w).or_default() += u128::from(*u);
        }
    }
    for (w, u) in &expected {
        assert_eq!(poc.units(*w).await.expect("units"), *u, "wallet {w}");
    }
    assert_eq!(
        poc.total_units().await.expect("total"),
        expected.values().sum::<u128>()
    );
}
