//! `GET /v1/wallets/{addr}`: one volunteer's view. Units read from the contract beside the
//! dispatcher's own figure (a difference is flagged, with why it can happen), the wallet's credit
//! history from the contract's `Transfer(0x0 → wallet)` logs joined with each transaction's
//! `BatchRecorded`, the nodes that earn for it and their standing, the credits set aside for it,
//! and the command that runs one more node for it.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use pocmesh_chain::{Credit as ChainCredit, ProofOfCompute};
use pocmesh_protocol::Address;
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState, QuarantineView};
use crate::job_index::JobFilter;
use crate::lifecycle::JobState;
use crate::registry::NodeView;

/// Jobs read at most to total a wallet's figure (pages of 1,000); past this the figure is a
/// lower bound and says so.
const MAX_JOBS_READ: usize = 200_000;

/// The dispatcher's side of a wallet, from its store.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct WalletFigures {
    /// Units this dispatcher recorded on chain for the wallet.
    pub units_recorded: u64,
    /// Units verified and waiting for (or riding) a batch.
    pub units_pending: u64,
    /// Jobs that credited the wallet.
    pub jobs: u64,
    /// Whether more jobs exist than were read (the figures are then lower bounds).
    pub truncated: bool,
    /// Credits for the wallet that can never be recorded, with why.
    pub quarantined: Vec<QuarantineView>,
    /// The newest jobs that credited it (at most [`RECENT_JOBS`]), newest first.
    #[serde(default)]
    pub recent: Vec<RecentJob>,
}

/// Jobs listed on a wallet's page.
pub const RECENT_JOBS: usize = 20;

/// One job that credited the wallet.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RecentJob {
    /// The job.
    pub job: pocmesh_protocol::JobId,
    /// Its state's name.
    pub state: String,
    /// Units it credits the wallet.
    pub units: u64,
    /// The transaction that recorded it, once recorded.
    pub tx: Option<pocmesh_protocol::Hash32>,
}

/// One wallet as `GET /v1/wallets/{addr}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WalletView {
    /// The wallet (0x form).
    pub wallet: Address,
    /// The same wallet in XDC form.
    pub wallet_xdc: String,
    /// Units the contract holds for it (`computeUnits`); `None` when the chain cannot be read.
    pub units_on_chain: Option<u128>,
    /// Why the chain could not be read, if it could not.
    pub chain_error: Option<String>,
    /// This dispatcher's figures.
    pub dispatcher: WalletFigures,
    /// Whether the contract's figure differs from what this dispatcher recorded (expected when
    /// other dispatchers credit the same wallet on the same contract).
    pub differs: bool,
    /// Every credit on chain from block [`WalletView::credits_from_block`] on, oldest first
    /// (empty when the chain cannot be read).
    pub credits: Vec<ChainCredit>,
    /// The first block searched for credits: `?from_block=`, else the configured
    /// `contract_block`, else this dispatcher's first recorded batch, else 0.
    #[serde(default)]
    pub credits_from_block: u64,
    /// Nodes that earn for this wallet, with their standing.
    pub nodes: Vec<NodeView>,
    /// The command that runs one more node for this wallet.
    pub run_a_node: String,
}

/// `GET /v1/wallets/{addr}` query.
#[derive(Debug, Deserialize)]
pub(super) struct WalletQuery {
    /// First block searched for credits [default: the configured `contract_block`, else this
    /// dispatcher's first recorded batch, else 0].
    pub(super) from_block: Option<u64>,
}

pub(super) async fn wallet(
    State(s): State<Arc<ApiState>>,
    Path(addr): Path<String>,
    Query(q): Query<WalletQuery>,
) -> Response {
    match view(&s, &addr, q.from_block).await {
        Ok(v) => Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// Builds the view of the wallet named `addr` (0x… or xdc…).
pub(super) async fn view(
    s: &ApiState,
    addr: &str,
    from_block: Option<u64>,
) -> Result<WalletView, ApiError> {
    let wallet = addr
        .parse::<Address>()
        .map_err(|e| ApiError::bad_request("bad_wallet", e.to_string()))?;
    let store = s.store.clone();
    let configured = from_block
        .or(s.contract_block)
        .or(s.first_batch_block.get().copied());
    let (figures, from_block, first_batch) = tokio::task::spawn_blocking(move || {
        // On a long chain a search from block 0 is thousands of log pages; no credit of this
        // dispatcher's own is older than its first batch.
        let first_batch = match configured {
            Some(_) => None,
            None => store.first_recorded_block()?,
        };
        let from = configured.or(first_batch).unwrap_or(0);
        Ok::<_, crate::job_index::ListError>((figures(&store, wallet)?, from, first_batch))
    })
    .await
    .map_err(ApiError::unavailable)?
    .map_err(ApiError::unavailable)?;
    if let Some(b) = first_batch {
        let _ = s.first_batch_block.set(b);
    }
    let nodes = s
        .engine
        .nodes()
        .await
        .map_err(ApiError::unavailable)?
        .into_iter()
        .filter(|n| n.wallet == wallet)
        .collect();
    let (units_on_chain, credits, chain_error) = match chain_view(s, wallet, from_block).await {
        Ok((units, credits)) => (Some(units), credits, None),
        Err(e) => (None, Vec::new(), Some(e)),
    };
    let differs = units_on_chain.is_some_and(|u| u != u128::from(figures.units_recorded));
    Ok(WalletView {
        wallet,
        wallet_xdc: wallet.to_xdc(),
        units_on_chain,
        chain_error,
        dispatcher: figures,
        differs,
        credits,
        credits_from_block: from_block,
        nodes,
        run_a_node: run_a_node(&s.info, wallet),
    })
}

/// Totals the wallet's jobs from the store's wallet index.
pub fn figures(
    store: &crate::store::DispatcherStore,
    wallet: Address,
) -> Result<WalletFigures, crate::job_index::ListError> {
    let filter = JobFilter {
        wallet: Some(wallet),
        ..JobFilter::default()
    };
    let mut out = WalletFigures::default();
    let mut cursor: Option<String> = None;
    let mut read = 0usize;
    loop {
        let (jobs, next) = store.list_jobs(&filter, 1_000, cursor.as_deref())?;
        read += jobs.len();
        for job in &jobs {
            let units: u64 = job
                .credits
                .iter()
                .filter(|c| c.wallet == wallet)
                .map(|c| c.units)
                .sum();
            if out.recent.len() < RECENT_JOBS {
                out.recent.push(RecentJob {
                    job: job.id,
                    state: job.state.name().to_string(),
                    units,
                    tx: match job.state {
                        JobState::Recorded { tx, .. } => Some(tx),
                        _ => None,
                    },
                });
            }
            match job.state {
                JobState::Recorded { .. } => out.units_recorded += units,
                JobState::Verified | JobState::Recording { .. } => out.units_pending += units,
                _ => {}
            }
            out.jobs += 1;
            out.quarantined.extend(
                job.quarantined
                    .iter()
                    .filter(|q| q.credit.wallet == wallet)
                    .map(|q| QuarantineView {
                        node: q.credit.node,
                        wallet: q.credit.wallet,
                        units: q.credit.units,
                        reason: q.reason.clone(),
                    }),
            );
        }
        match next {
            Some(c) if read < MAX_JOBS_READ => cursor = Some(c),
            Some(_) => {
                out.truncated = true;
                return Ok(out);
            }
            None => return Ok(out),
        }
    }
}

/// Units and credit history from the contract, through a reader made on first use.
async fn chain_view(
    s: &ApiState,
    wallet: Address,
    from_block: u64,
) -> Result<(u128, Vec<ChainCredit>), String> {
    let poc = reader(s).await?;
    let units = poc.units(wallet).await.map_err(|e| e.to_string())?;
    let credits = poc
        .credit_history(wallet, from_block, None, 10_000)
        .await
        .map_err(|e| e.to_string())?;
    Ok((units, credits))
}

/// The contract reader, made on first use.
pub(super) async fn reader(s: &ApiState) -> Result<&ProofOfCompute, String> {
    let Some((rpc, contract)) = &s.chain else {
        return Err("this dispatcher has no chain configured (--rpc, --contract)".into());
    };
    s.chain_reader
        .get_or_try_init(|| ProofOfCompute::at(rpc, *contract))
        .await
        .map_err(|e| e.to_string())
}

/// `pocmesh node run` for this wallet on this dispatcher's network and contract.
fn run_a_node(info: &serde_json::Value, wallet: Address) -> String {
    let mut cmd = format!("pocmesh node run --wallet {wallet}");
    if let Some(net) = info["net"].as_str() {
        cmd.push_str(&format!(" --net {net}"));
    }
    if let Some(d) = info["address"].as_str() {
        cmd.push_str(&format!(" --trust-dispatcher {d}"));
    }
    if let Some(rpc) = info["rpc"].as_str() {
        cmd.push_str(&format!(" --rpc {rpc}"));
    }
    if let Some(c) = info["contract"].as_str() {
        cmd.push_str(&format!(" --contract {c}"));
    }
    cmd.push_str(" --bootstrap <this dispatcher's multiaddr>");
    cmd
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_command_names_the_wallet_network_and_dispatcher() {
        let info = serde_json::json!({
            "net": "devnet-551",
            "address": "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
            "rpc": null,
            "contract": "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        });
        let w: Address = "0x2020202020202020202020202020202020202020"
            .parse()
            .expect("address");
        let cmd = run_a_node(&info, w);
        assert!(cmd.starts_with(&format!("pocmesh node run --wallet {w} --net devnet-551")));
        assert!(cmd.contains("--trust-dispatcher 0x70997970C51812dc3A010C7d01b50e0d17dc79C8"));
        assert!(!cmd.contains("--rpc"), "no public RPC, no flag: {cmd}");
        assert!(cmd.contains("--contract 0x5FbDB2315678afecb367f032d93F642f64180aa3"));
    }
}
