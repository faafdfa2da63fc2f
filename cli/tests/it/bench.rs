//! `pocmesh bench dispatch` runs end to end at a small size: node processes of this very
//! binary, the warm-up that earns them their standing, measured rounds, credits on a real anvil,
//! and a JSON report whose figures agree with each other.

use crate::{json, pocmesh};

#[test]
fn bench_dispatch_runs_node_processes_and_reports_its_rounds() {
    let dir = tempfile::tempdir().expect("tmp");
    let out_file = dir.path().join("dispatch.json");
    let out = pocmesh(
        &[
            "bench",
            "dispatch",
            "--nodes",
            "2",
            "--jobs",
            "40",
            "--slots",
            "4",
            "--rounds",
            "2",
            "--warmup-per-node",
            "10",
            "--batch-max",
            "32",
            "--json",
            "--out",
            &out_file.display().to_string(),
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&out);
    assert_eq!(r["nodes"], 2);
    assert_eq!(r["warmup_jobs"], 20);
    let rounds = r["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2);
    for round in rounds {
        let per_s = round["verified_per_s"].as_f64().expect("rate");
        let s = round["verified_s"].as_f64().expect("seconds");
        assert!(per_s > 0.0 && (per_s * s - 40.0).abs() < 0.5, "{round}");
        assert!(
            round["recorded_s"].as_f64().expect("recorded") >= s,
            "{round}"
        );
    }
    // Every job of the warm-up and the rounds ended on chain, one unit each.
    assert_eq!(r["units_recorded"], 20 + 2 * 40, "{r}");
    assert!(r["ratio"].is_null(), "no ratio without rrbench");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out_file).expect("report file"))
            .expect("json");
    assert_eq!(written["units_recorded"], r["units_recorded"]);
}
