//! Gas benchmark: gas per credited completion, one `recordCompute` per completion versus
//! `recordBatch` at several batch sizes, first credit and steady state, on a real EVM.
//!
//! Every number is `gasUsed` from a mined receipt, so it includes the 21,000 base, calldata and
//! every storage write and log. Each scenario runs on a freshly deployed contract; a warm-up
//! credit to an unrelated wallet first makes `totalUnits` non-zero, as it is on any live
//! contract, so "first credit" means "first credit of these providers", not "first ever".

use pocmesh_protocol::{Address, BatchPlan, Hash32, JobId, ReceiptLeaf, SecretKey, keccak256};
use serde::Serialize;

use crate::client::ChainClient;
use crate::contract::deploy;
use crate::error::ChainError;
use crate::recorder::{RecordOutcome, Recorder};

/// Whether the credited providers had units before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditState {
    /// The providers had zero units (new storage slots).
    FirstCredit,
    /// The providers were credited before (warm slots).
    Steady,
}

/// One measured transaction.
#[derive(Debug, Clone, Serialize)]
pub struct GasRow {
    /// `recordCompute` or `recordBatch`.
    pub method: &'static str,
    /// Completions credited by the transaction.
    pub completions: u64,
    /// Distinct providers credited.
    pub providers: usize,
    /// First credit or steady state.
    pub state: CreditState,
    /// `gasUsed` of the receipt.
    pub gas_used: u64,
    /// `gas_used / completions`.
    pub gas_per_completion: f64,
}

/// The whole benchmark.
#[derive(Debug, Clone, Serialize)]
pub struct GasReport {
    /// What it ran on.
    pub chain: String,
    /// Chain id.
    pub chain_id: u64,
    /// Compiler of the contract.
    pub compiler: String,
    /// Every measurement.
    pub rows: Vec<GasRow>,
    /// The design target at 100 completions over 10 credited providers.
    pub target_gas_per_completion: u64,
    /// The measured value for that case.
    pub batch_100_steady_gas_per_completion: f64,
    /// Whether it meets the target.
    pub meets_target: bool,
}

/// Design target: gas per completion for 100 completions over 10 already-credited providers.
pub const TARGET_GAS_PER_COMPLETION: u64 = 1_500;

fn wallet(scenario: u64, i: usize) -> Address {
    let h = keccak256(
        [
            scenario.to_be_bytes().as_slice(),
            (i as u64).to_be_bytes().as_slice(),
        ]
        .concat(),
    );
    let mut a = [0u8; 20];
    a.copy_from_slice(&h[12..]);
    Address(a)
}

/// `completions` receipts spread round-robin over `providers` wallets, one unit each.
fn receipts(scenario: u64, round: u64, completions: u64, providers: usize) -> Vec<ReceiptLeaf> {
    (0..completions)
        .map(|j| ReceiptLeaf {
            job: JobId::from(keccak256(
                [scenario, round, j].map(u64::to_be_bytes).concat(),
            )),
            provider: wallet(scenario, (j as usize) % providers),
            node: wallet(scenario + 1_000, (j as usize) % providers),
            units: 1,
            result_hash: Hash32::keccak(j.to_be_bytes()),
        })
        .collect()
}

async fn fresh_recorder(client: &ChainClient) -> Result<Recorder, ChainError> {
    let d = deploy(client, &[client.address()]).await?;
    let recorder = Recorder::new(client.clone(), d.address).await?;
    // Warm-up: make totalUnits non-zero, as on any contract in use.
    recorder.record_compute(Address([0xee; 20])).await?;
    Ok(recorder)
}

fn gas_of(outcome: &RecordOutcome) -> Result<u64, ChainError> {
    match outcome {
        RecordOutcome::Recorded { gas_used, .. } => Ok(*gas_used),
        RecordOutcome::AlreadyRecorded { .. } => Err(ChainError::Invalid(
            "benchmark batch was already recorded".into(),
        )),
    }
}

/// Runs every scenario against `rpc_url` with `key` (which deploys fresh contracts).
/// `progress` is called with a short label before each scenario.
pub async fn run(
    rpc_url: &str,
    key: &SecretKey,
    batch_sizes: &[u64],
    progress: &mut dyn FnMut(&str),
) -> Result<GasReport, ChainError> {
    let client = ChainClient::connect(rpc_url, key, crate::client::TxPolicy::default()).await?;
    let mut rows = Vec::new();

    progress("recordCompute");
    let r = fresh_recorder(&client).await?;
    let first = r.record_compute(wallet(1, 0)).await?;
    let steady = r.record_compute(wallet(1, 0)).await?;
    for (state, gas) in [
        (CreditState::FirstCredit, first.gas_used),
        (CreditState::Steady, steady.gas_used),
    ] {
        rows.push(GasRow {
            method: "recordCompute",
            completions: 1,
            providers: 1,
            state,
            gas_used: gas,
            gas_per_completion: gas as f64,
        });
    }

    const PROVIDERS: usize = 10;
    for (k, &n) in batch_sizes.iter().enumerate() {
        progress(&format!("recordBatch {n} completions"));
        let scenario = 100 + k as u64;
        let r = fresh_recorder(&client).await?;
        for (round, state) in [(0, CreditState::FirstCredit), (1, CreditState::Steady)] {
            let plan = BatchPlan::new(receipts(scenario, round, n, PROVIDERS))
                .map_err(|e| ChainError::Invalid(e.to_string()))?;
            let gas = gas_of(&r.record(&plan).await?)?;
            rows.push(GasRow {
                method: "recordBatch",
                completions: n,
                providers: plan.providers.len(),
                state,
                gas_used: gas,
                gas_per_completion: gas as f64 / n as f64,
            });
        }
    }

    let batch_100 = rows
        .iter()
        .find(|r| {
            r.method == "recordBatch" && r.completions == 100 && r.state == CreditState::Steady
        })
        .map_or(f64::NAN, |r| r.gas_per_completion);
    Ok(GasReport {
        chain: "anvil (EVM paris, legacy transactions)".into(),
        chain_id: client.chain_id(),
        compiler: crate::artifact::Artifact::embedded()?.compiler,
        rows,
        target_gas_per_completion: TARGET_GAS_PER_COMPLETION,
        batch_100_steady_gas_per_completion: batch_100,
        meets_target: batch_100 <= TARGET_GAS_PER_COMPLETION as f64,
    })
}
