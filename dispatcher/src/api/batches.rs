//! `GET /v1/batches` and `GET /v1/batches/{id}`: the batches this dispatcher built, newest first
//! from the store's time order (one page read, never a scan), each with where it stands, its
//! transaction and the gas that transaction used.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use pocmesh_protocol::{Address, BatchId, Hash32, JobId};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState, NEXT_CURSOR};
use crate::job_index::ListError;
use crate::store::{BatchRow, BatchStatus};

/// One wallet's share of a batch.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchEntry {
    /// The wallet credited.
    pub wallet: Address,
    /// Units for it in this batch.
    pub units: u64,
    /// Its credits (receipt leaves) in this batch.
    pub credits: usize,
}

/// A batch as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BatchView {
    /// Content-derived id (the contract's `batchId`).
    pub id: BatchId,
    /// Receipts root (the contract's `batchRoot` once recorded).
    pub root: Hash32,
    /// `pending`, `recorded` or `refused`.
    pub state: String,
    /// Why the contract would refuse it, when refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When it was built, unix ms.
    pub created_ms: u64,
    /// Credits (receipt leaves).
    pub credits: usize,
    /// Distinct wallets credited (entries of the `recordBatch` call).
    pub wallets: usize,
    /// Units in all.
    pub units: u64,
    /// The recording transaction.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tx: Option<Hash32>,
    /// Its block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<u64>,
    /// Gas the transaction used (unknown when the batch was found on chain after a restart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gas_used: Option<u64>,
    /// `gas_used / credits`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gas_per_credit: Option<u64>,
    /// Per wallet (only in `GET /v1/batches/{id}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entries: Vec<BatchEntry>,
    /// The jobs it credits (only in `GET /v1/batches/{id}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<JobId>,
}

impl BatchView {
    /// The summary of `row` (without its entries and jobs).
    pub fn of(row: &BatchRow) -> Self {
        let (state, reason, tx, block, gas_used) = match &row.status {
            BatchStatus::Pending => ("pending", None, None, None, None),
            BatchStatus::Recorded {
                tx,
                block,
                gas_used,
            } => ("recorded", None, Some(*tx), Some(*block), *gas_used),
            BatchStatus::Refused { reason } => ("refused", Some(reason.clone()), None, None, None),
        };
        let credits = row.credits.len();
        let wallets: std::collections::HashSet<Address> =
            row.credits.iter().map(|c| c.wallet).collect();
        BatchView {
            id: row.id,
            root: row.root,
            state: state.into(),
            reason,
            created_ms: row.created_ms,
            credits,
            wallets: wallets.len(),
            units: row.credits.iter().map(|c| c.units).sum(),
            tx,
            block,
            gas_used,
            gas_per_credit: gas_used.filter(|_| credits > 0).map(|g| g / credits as u64),
            entries: Vec::new(),
            jobs: Vec::new(),
        }
    }

    /// The whole view of `row`: the summary, each wallet's share and the jobs.
    pub fn full(row: &BatchRow) -> Self {
        let mut v = Self::of(row);
        let mut per: BTreeMap<Address, (u64, usize)> = BTreeMap::new();
        for c in &row.credits {
            let e = per.entry(c.wallet).or_default();
            e.0 += c.units;
            e.1 += 1;
        }
        v.entries = per
            .into_iter()
            .map(|(wallet, (units, credits))| BatchEntry {
                wallet,
                units,
                credits,
            })
            .collect();
        // A job with several credits (redundancy) is listed once, wherever its credits stand.
        let mut seen = std::collections::HashSet::new();
        v.jobs = row
            .credits
            .iter()
            .map(|c| c.job)
            .filter(|j| seen.insert(*j))
            .collect();
        v
    }
}

/// Query of `GET /v1/batches`.
#[derive(Debug, Default, Deserialize)]
pub struct BatchQuery {
    /// Page size (1 to 500, default 50).
    pub limit: Option<usize>,
    /// The `x-next-cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One page of batches, newest first, and the next page's cursor (read on a blocking thread).
pub(super) async fn page(
    s: &ApiState,
    q: BatchQuery,
) -> Result<(Vec<BatchView>, Option<String>), ApiError> {
    let limit = q.limit.unwrap_or(50).clamp(1, 500);
    let store = s.store.clone();
    let read =
        tokio::task::spawn_blocking(move || store.list_batches(limit, q.cursor.as_deref())).await;
    match read {
        Ok(Ok((rows, next))) => Ok((rows.iter().map(BatchView::of).collect(), next)),
        Ok(Err(e @ ListError::BadCursor(_))) => {
            Err(ApiError::bad_request("bad_query", e.to_string()))
        }
        Ok(Err(e)) => Err(ApiError::unavailable(e)),
        Err(e) => Err(ApiError::unavailable(e)),
    }
}

/// `GET /v1/batches?limit=&cursor=`.
pub(super) async fn list_batches(
    State(s): State<Arc<ApiState>>,
    Query(q): Query<BatchQuery>,
) -> Response {
    match page(&s, q).await {
        Ok((rows, Some(next))) => ([(NEXT_CURSOR, next)], Json(rows)).into_response(),
        Ok((rows, None)) => Json(rows).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /v1/batches/{id}`.
pub(super) async fn get_batch(State(s): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<BatchId>() else {
        return ApiError::bad_request("bad_id", "a batch id is 0x + 64 hex digits").into_response();
    };
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.batch(&id)).await {
        Ok(Ok(Some(row))) => Json(BatchView::full(&row)).into_response(),
        Ok(Ok(None)) => ApiError::not_found(
            "not_found",
            format!("no batch {id} here; GET /v1/batches lists them"),
        )
        .into_response(),
        Ok(Err(e)) => ApiError::unavailable(e).into_response(),
        Err(e) => ApiError::unavailable(e).into_response(),
    }
}
