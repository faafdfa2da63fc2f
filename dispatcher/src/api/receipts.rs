//! `GET /v1/jobs/{id}/receipts`: what proves a recorded job's credits — for each, its receipt
//! leaf, the Merkle proof up to its batch's receipts root, the transaction that recorded the
//! batch, and the contract's own answer to `verifyReceipt(batch, leaf, proof)`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pocmesh_protocol::{Address, BatchId, BatchPlan, Hash32, JobId};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState};
use crate::lifecycle::JobState;

/// One credit of a recorded job, with what proves it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReceiptProof {
    /// The wallet credited.
    pub wallet: Address,
    /// The node that did the work.
    pub node: Address,
    /// Units.
    pub units: u64,
    /// The batch that recorded it.
    pub batch: BatchId,
    /// The batch's receipts root (what the contract stores as `batchRoot`).
    pub root: Hash32,
    /// The transaction that recorded the batch.
    pub tx: Hash32,
    /// Its block.
    pub block: u64,
    /// The receipt leaf: `keccak256(keccak256(abi.encode(job, wallet, node, units, resultHash)))`.
    pub leaf: Hash32,
    /// Sibling hashes from the leaf up to the root (sorted-pair hashing).
    pub proof: Vec<Hash32>,
    /// The contract's `verifyReceipt(batch, leaf, proof)`; `None` when the chain cannot be read.
    pub verified_on_chain: Option<bool>,
    /// Why the chain could not be read, if it could not.
    pub chain_error: Option<String>,
}

/// A job's receipts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobReceipts {
    /// The job.
    pub job: JobId,
    /// One per credit.
    pub receipts: Vec<ReceiptProof>,
}

pub(super) async fn job_receipts(
    State(s): State<Arc<ApiState>>,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<JobId>() else {
        return ApiError::bad_request("bad_id", "a job id is 0x + 64 hex digits").into_response();
    };
    let store = s.store.clone();
    let read = tokio::task::spawn_blocking(move || -> Result<_, String> {
        let Some(job) = store.job(&id).map_err(|e| e.to_string())? else {
            return Ok(None);
        };
        let batch = match &job.state {
            JobState::Recorded { batch, tx, block } => {
                let row = store.batch(batch).map_err(|e| e.to_string())?;
                Some((row, *tx, *block))
            }
            _ => None,
        };
        Ok(Some((job, batch)))
    })
    .await;
    let (job, batch) = match read {
        Ok(Ok(Some(found))) => found,
        Ok(Ok(None)) => {
            return ApiError::not_found("not_found", format!("no job {id}")).into_response();
        }
        Ok(Err(e)) => return ApiError::unavailable(e).into_response(),
        Err(e) => return ApiError::unavailable(e).into_response(),
    };
    let Some((Some(row), tx, block)) = batch else {
        return ApiError::new(
            StatusCode::CONFLICT,
            "not_recorded",
            format!(
                "job {id} is `{}`: it has receipts once its batch is recorded on chain",
                job.state.name()
            ),
        )
        .into_response();
    };
    let leaves: Vec<_> = row.credits.iter().map(crate::net::leaf_of).collect();
    let plan = match BatchPlan::new(leaves) {
        Ok(p) => p,
        Err(e) => return ApiError::unavailable(e).into_response(),
    };
    let reader = super::wallet::reader(&s).await;
    let mut receipts = Vec::new();
    for (index, leaf) in plan.receipts.iter().enumerate() {
        if leaf.job != id {
            continue;
        }
        let proof = match plan.proof(index) {
            Ok(p) => p,
            Err(e) => return ApiError::unavailable(e).into_response(),
        };
        let hash = leaf.hash();
        let (verified_on_chain, chain_error) = match &reader {
            Ok(poc) => match poc.verify_receipt(row.id, hash, &proof).await {
                Ok(v) => (Some(v), None),
                Err(e) => (None, Some(e.to_string())),
            },
            Err(e) => (None, Some(e.clone())),
        };
        receipts.push(ReceiptProof {
            wallet: leaf.provider,
            node: leaf.node,
            units: leaf.units,
            batch: row.id,
            root: plan.root,
            tx,
            block,
            leaf: hash,
            proof,
            verified_on_chain,
            chain_error,
        });
    }
    Json(JobReceipts { job: id, receipts }).into_response()
}
