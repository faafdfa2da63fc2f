//! The HTTP API (axum), 127.0.0.1 by default: submit jobs (bearer token, per-token rate limit),
//! read jobs, nodes and network status, Prometheus metrics; the allow-list and link health live
//! in [`community`]. Every request counts against a per-client-address rate limit. Errors are
//! one type, [`ApiError`] ([`error`]): JSON `{"error": "...", "code": "..."}` with a status code
//! that says whose fault it was. [`client`] is the typed client the CLI, the testnet launcher and
//! the tests use.

pub mod batches;
pub mod client;
pub mod community;
pub mod error;
mod network;
mod pages;
pub mod receipts;
pub mod stats;
pub mod wallet;

pub use error::{ApiError, ErrorBody};

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use pocmesh_protocol::{
    Address, BatchId, Bytes, Hash32, JobId, JobParams, JobSpec, JobType, Limits, Metering,
};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use crate::engine::{Input, StatusView, SubmitError};
use crate::lifecycle::{AttemptState, AuditRecord, Job, JobState};
use crate::metrics::DispatcherMetrics;
use crate::registry::NodeView;
use crate::store::DispatcherStore;

/// A job submission (`POST /v1/jobs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRequest {
    /// `hash`, `wasm`, `link_health` or `robots_recheck`.
    #[serde(rename = "type")]
    pub job_type: String,
    /// link_health: the URL (its domain must be on the allow-list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// link_health: the status expected (any 2xx when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_status: Option<u16>,
    /// robots_recheck: the domain (on the allow-list).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// robots_recheck: paths to ask about.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub paths: Vec<String>,
    /// hash: iterations of keccak256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<u64>,
    /// hash: the starting value (random when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<Hash32>,
    /// wasm: the module, hex (binary wasm or WAT text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<Bytes>,
    /// wasm: the input, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Bytes>,
    /// Independent nodes that must agree (default 1; the dispatcher checks by re-execution or,
    /// for HTTP checks, by asking another node).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redundancy: Option<u32>,
    /// Limits (default: the dispatcher's `[jobs] default_limits`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
}

impl SubmitRequest {
    /// The job spec this request asks for.
    pub fn to_spec(&self, default_limits: Limits) -> Result<JobSpec, String> {
        let job_type = JobType::from_name(&self.job_type).map_err(|e| e.to_string())?;
        let params = match job_type {
            JobType::Hash => JobParams::Hash {
                seed: self.seed.unwrap_or_else(|| Hash32(rand::random())),
                iterations: self.iterations.ok_or("hash jobs need `iterations`")?,
            },
            JobType::Wasm => JobParams::Wasm {
                module: self.module.clone().ok_or("wasm jobs need `module` (hex)")?,
                input: self.input.clone().unwrap_or_default(),
            },
            JobType::LinkHealth => JobParams::LinkHealth {
                url: self.url.clone().ok_or("link_health jobs need `url`")?,
                expected_status: self.expected_status,
            },
            JobType::RobotsRecheck => JobParams::RobotsRecheck {
                domain: self
                    .domain
                    .clone()
                    .ok_or("robots_recheck jobs need `domain`")?,
                paths: self.paths.clone(),
            },
            // `from_name` never gives it; listed so a new type cannot be forgotten here.
            JobType::Unknown => {
                return Err(pocmesh_protocol::UnknownJobType(self.job_type.clone()).to_string());
            }
        };
        Ok(JobSpec {
            params,
            limits: self.limits.unwrap_or(default_limits),
        })
    }
}

/// `POST /v1/jobs` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submitted {
    /// The job's id.
    pub id: JobId,
    /// `queued`.
    pub state: String,
}

/// One attempt in a [`JobView`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AttemptView {
    /// Attempt number.
    pub n: u32,
    /// The node.
    pub node: Address,
    /// The wallet it credits.
    pub wallet: Address,
    /// Its state.
    pub state: String,
    /// Why it ended, when it ended badly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// When it was offered, unix ms.
    pub offered_ms: u64,
    /// Its result hash, if it delivered one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result_hash: Option<Hash32>,
    /// The metering it reported, if it delivered a result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metering: Option<Metering>,
}

/// A credit set aside in a [`JobView`]: it can never be recorded.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct QuarantineView {
    /// The node that did the work.
    pub node: Address,
    /// The wallet it would credit.
    pub wallet: Address,
    /// Units.
    pub units: u64,
    /// Why it cannot be recorded.
    pub reason: String,
}

/// One credit in a [`JobView`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreditView {
    /// The node that did the work.
    pub node: Address,
    /// The wallet credited.
    pub wallet: Address,
    /// Units.
    pub units: u64,
}

/// The verified result in a [`JobView`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResultView {
    /// keccak256 of the output.
    pub result_hash: Hash32,
    /// The output, hex.
    pub output: Bytes,
    /// Resources used.
    pub metering: Metering,
}

/// A job as `GET /v1/jobs/{id}` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobView {
    /// Id.
    pub id: JobId,
    /// Lifecycle state.
    pub state: String,
    /// Why it failed or was rejected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Job type.
    #[serde(rename = "type")]
    pub job_type: String,
    /// Nodes that must agree.
    pub redundancy: u32,
    /// Submitted, unix ms.
    pub submitted_ms: u64,
    /// Last change, unix ms.
    pub updated_ms: u64,
    /// Every attempt.
    pub attempts: Vec<AttemptView>,
    /// Nodes credited.
    pub nodes: Vec<Address>,
    /// Each credit: node, wallet, units.
    pub credits: Vec<CreditView>,
    /// The verified result.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<ResultView>,
    /// Units credited in all.
    pub units: u64,
    /// The batch that recorded it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<BatchId>,
    /// The recording transaction.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx: Option<Hash32>,
    /// Its block.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub block: Option<u64>,
    /// Whether the dispatcher re-executed it, and what came of that: `match`, `mismatch` (some
    /// results proven wrong) or `unavailable` (no verdict; other nodes decided).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit: Option<String>,
    /// Credits set aside because they can never be recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quarantined: Vec<QuarantineView>,
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> Self {
        let (error, batch, tx, block) = match &job.state {
            JobState::Failed { reason } | JobState::Rejected { reason } => {
                (Some(reason.clone()), None, None, None)
            }
            JobState::Recording { batch } => (None, Some(*batch), None, None),
            JobState::Recorded { batch, tx, block } => {
                (None, Some(*batch), Some(*tx), Some(*block))
            }
            _ => (None, None, None, None),
        };
        let result = job
            .attempts
            .iter()
            .find_map(|a| match (&a.state, &a.result) {
                (AttemptState::Accepted, Some(r)) => Some(ResultView {
                    result_hash: r.result_hash,
                    output: Bytes(r.output.clone()),
                    metering: r.metering,
                }),
                _ => None,
            });
        JobView {
            id: job.id,
            state: job.state.name().to_string(),
            error,
            job_type: job.spec.params.job_type().as_str().to_string(),
            redundancy: job.redundancy,
            submitted_ms: job.submitted_ms,
            updated_ms: job.updated_ms,
            attempts: job
                .attempts
                .iter()
                .map(|a| AttemptView {
                    n: a.n,
                    node: a.node,
                    wallet: a.wallet,
                    state: a.state.name().to_string(),
                    detail: match &a.state {
                        AttemptState::Declined { reason } => Some(format!("{reason:?}")),
                        AttemptState::Failed { error } => Some(error.clone()),
                        AttemptState::Rejected { reason } => Some(reason.clone()),
                        AttemptState::NotCredited { reason } => Some(reason.clone()),
                        _ => None,
                    },
                    offered_ms: a.offered_ms,
                    result_hash: a.result.as_ref().map(|r| r.result_hash),
                    metering: a.result.as_ref().map(|r| r.metering),
                })
                .collect(),
            nodes: job.credits.iter().map(|c| c.node).collect(),
            credits: job
                .credits
                .iter()
                .map(|c| CreditView {
                    node: c.node,
                    wallet: c.wallet,
                    units: c.units,
                })
                .collect(),
            result,
            units: job.credits.iter().map(|c| c.units).sum(),
            batch,
            tx,
            block,
            audit: job.audit.as_ref().map(|a| match a {
                AuditRecord::Done { key, .. } => {
                    let wrong = job
                        .attempts
                        .iter()
                        .any(|a| matches!(a.state, AttemptState::Rejected { .. }));
                    let matched = job.result_hash == Some(key.result_hash);
                    if matched && !wrong {
                        "match"
                    } else {
                        "mismatch"
                    }
                    .to_string()
                }
                AuditRecord::Unavailable { .. } => "unavailable".to_string(),
            }),
            quarantined: job
                .quarantined
                .iter()
                .map(|q| QuarantineView {
                    node: q.credit.node,
                    wallet: q.credit.wallet,
                    units: q.credit.units,
                    reason: q.reason.clone(),
                })
                .collect(),
        }
    }
}

/// A cheap handle to the engine for the API (and for in-process callers such as benchmarks).
#[derive(Clone, Debug)]
pub struct EngineHandle {
    pub(crate) inputs: crate::engine::Lanes,
}

/// The engine is gone.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the dispatcher engine has stopped")]
pub struct EngineStopped;

impl EngineHandle {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Input,
    ) -> Result<T, EngineStopped> {
        let (tx, rx) = oneshot::channel();
        self.inputs
            .send(make(tx))
            .await
            .map_err(|_| EngineStopped)?;
        rx.await.map_err(|_| EngineStopped)
    }

    /// Submits a job; the id comes back once the job is durable.
    pub async fn submit(
        &self,
        spec: JobSpec,
        redundancy: Option<u32>,
    ) -> Result<JobId, SubmitError> {
        self.ask(|reply| Input::Submit {
            spec,
            redundancy,
            reply,
        })
        .await
        .map_err(|_| SubmitError::ShuttingDown)?
    }

    /// One job.
    pub async fn job(&self, id: JobId) -> Result<Option<Job>, String> {
        self.ask(|reply| Input::GetJob { id, reply })
            .await
            .map_err(|e| e.to_string())?
    }

    /// The node registry.
    pub async fn nodes(&self) -> Result<Vec<NodeView>, EngineStopped> {
        self.ask(|reply| Input::Nodes { reply }).await
    }

    /// Network status.
    pub async fn status(&self) -> Result<StatusView, EngineStopped> {
        self.ask(|reply| Input::Status { reply }).await
    }
}

/// Token buckets per key (a token, a client address), bounded in number.
#[derive(Debug)]
struct RateLimiter {
    per_minute: f64,
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

/// Most keys a limiter remembers; when full, keys whose bucket has refilled are forgotten.
const LIMITER_KEYS: usize = 100_000;

impl RateLimiter {
    fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute: f64::from(per_minute),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    fn allow(&self, token: &str) -> bool {
        let Ok(mut buckets) = self.buckets.lock() else {
            return false;
        };
        let now = Instant::now();
        let capacity = self.per_minute.max(1.0);
        if buckets.len() >= LIMITER_KEYS && !buckets.contains_key(token) {
            let per_s = self.per_minute / 60.0;
            buckets.retain(|_, (level, at)| {
                *level + now.duration_since(*at).as_secs_f64() * per_s < capacity
            });
            if buckets.len() >= LIMITER_KEYS {
                return false;
            }
        }
        let entry = buckets.entry(token.to_string()).or_insert((capacity, now));
        let refill = now.duration_since(entry.1).as_secs_f64() * self.per_minute / 60.0;
        entry.0 = (entry.0 + refill).min(capacity);
        entry.1 = now;
        if entry.0 >= 1.0 {
            entry.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

struct ApiState {
    engine: EngineHandle,
    store: DispatcherStore,
    /// The chain to read wallets from (RPC URL, contract), if configured.
    chain: Option<(String, Address)>,
    /// A reader of that contract, made on first use (an unreachable RPC never delays startup).
    chain_reader: tokio::sync::OnceCell<pocmesh_chain::ProofOfCompute>,
    /// The contract's deployment block, if configured: where log searches start.
    contract_block: Option<u64>,
    /// The block of this dispatcher's first recorded batch, once there is one (it never
    /// changes: batches are never removed).
    first_batch_block: std::sync::OnceLock<u64>,
    /// The demo-job quota, if demo jobs are on.
    demo: Option<RateLimiter>,
    /// Its size, for messages.
    demo_per_hour: u32,
    /// The last `/v1/stats` answer and when it was made.
    stats_cache: Mutex<Option<(Instant, stats::StatsView)>>,
    tokens: Vec<String>,
    limiter: RateLimiter,
    clients: RateLimiter,
    default_limits: Limits,
    metrics: Arc<DispatcherMetrics>,
    info: serde_json::Value,
}

/// Every request counts against its client address's bucket.
async fn per_client(
    State(s): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    if !s.clients.allow(&peer.ip().to_string()) {
        DispatcherMetrics::count(&s.metrics.api_refused, "client_rate_limited");
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "too many requests from {}; at most {:.0} a minute per client address, slow down",
                peer.ip(),
                s.clients.per_minute
            ),
        )
        .into_response();
    }
    next.run(request).await
}

/// The answer refusing a write request without one of our tokens (or over its rate), if any.
fn refusal(s: &ApiState, headers: &HeaderMap) -> Option<Response> {
    let Some(token) = bearer(headers) else {
        return Some(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_token",
            "send `Authorization: Bearer <token>` (the token is in the dispatcher's data dir, api.token)",
        ).into_response());
    };
    if !s.tokens.iter().any(|t| same(t, token)) {
        return Some(
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "bad_token",
                "the bearer token is not valid",
            )
            .into_response(),
        );
    }
    if !s.limiter.allow(token) {
        DispatcherMetrics::count(&s.metrics.api_refused, "token_rate_limited");
        return Some(
            ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "too many requests for this token; slow down and retry",
            )
            .into_response(),
        );
    }
    None
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Compares without an early exit, so the time taken says nothing about the token.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

async fn submit(
    State(s): State<Arc<ApiState>>,
    headers: HeaderMap,
    body: Result<Json<SubmitRequest>, JsonRejection>,
) -> Response {
    if let Some(refused) = refusal(&s, &headers) {
        return refused;
    }
    let req = match body {
        Ok(Json(r)) => r,
        Err(e) => return ApiError::new(e.status(), "bad_request", e.body_text()).into_response(),
    };
    let spec = match req.to_spec(s.default_limits) {
        Ok(spec) => spec,
        Err(e) => return ApiError::new(StatusCode::BAD_REQUEST, "invalid_job", e).into_response(),
    };
    accepted(s.engine.submit(spec, req.redundancy).await)
}

/// The answer to a submission: `202` with the job's id once it is durable, or why not.
fn accepted(submitted: Result<JobId, SubmitError>) -> Response {
    match submitted {
        Ok(id) => (
            StatusCode::ACCEPTED,
            Json(Submitted {
                id,
                state: "queued".into(),
            }),
        )
            .into_response(),
        Err(SubmitError::Invalid(e)) => {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_job", e).into_response()
        }
        Err(e) => ApiError::unavailable(e).into_response(),
    }
}

/// Iterations of a demo `hash` job: one unit's worth.
const DEMO_ITERATIONS: u64 = 1_000_000;

/// `POST /v1/demo`: one small `hash` job without a token, within the demo quota (the
/// dashboard's "Request a compute task").
async fn demo(State(s): State<Arc<ApiState>>) -> Response {
    let Some(quota) = &s.demo else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "demo_off",
            "demo jobs are off on this dispatcher (they are on by default only on a local devnet; \
             an operator turns them on with [api] demo_jobs_per_hour); submit with a token instead: \
             `pocmesh job submit`",
        )
        .into_response();
    };
    if !quota.allow("demo") {
        DispatcherMetrics::count(&s.metrics.api_refused, "demo_quota");
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!(
                "the demo quota ({} jobs an hour for everyone) is used up; try again in a minute",
                s.demo_per_hour
            ),
        )
        .into_response();
    }
    let spec = JobSpec {
        params: JobParams::Hash {
            seed: Hash32(rand::random()),
            iterations: DEMO_ITERATIONS,
        },
        limits: s.default_limits,
    };
    accepted(s.engine.submit(spec, None).await)
}

async fn get_job(State(s): State<Arc<ApiState>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<JobId>() else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_id",
            "a job id is 0x + 64 hex digits",
        )
        .into_response();
    };
    // From the store (what has been committed and acknowledged), not the engine: a read never
    // waits behind the engine's work.
    let store = s.store.clone();
    match tokio::task::spawn_blocking(move || store.job(&id)).await {
        Ok(Ok(Some(job))) => Json(JobView::from(&job)).into_response(),
        Ok(Ok(None)) => ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no job {id}"))
            .into_response(),
        Ok(Err(e)) => ApiError::unavailable(e).into_response(),
        Err(e) => ApiError::unavailable(e).into_response(),
    }
}

/// `GET /v1/jobs` query.
#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    state: Option<String>,
    wallet: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
}

/// The response header naming the cursor of the next page of a job listing.
pub const NEXT_CURSOR: &str = "x-next-cursor";

/// One page of jobs under `q`, newest first, from the store's indexes on a blocking thread,
/// with the next page's cursor when there may be more.
async fn read_jobs(s: &ApiState, q: ListQuery) -> Result<(Vec<Job>, Option<String>), ApiError> {
    use crate::job_index::{JobFilter, ListError};
    let limit = q.limit.unwrap_or(100).clamp(1, 1_000);
    let wallet = match q.wallet.as_deref().map(str::parse::<Address>) {
        None => None,
        Some(Ok(w)) => Some(w),
        Some(Err(e)) => return Err(ApiError::bad_request("bad_wallet", e.to_string())),
    };
    let store = s.store.clone();
    let read = tokio::task::spawn_blocking(move || {
        let filter = JobFilter {
            state: q.state.as_deref(),
            wallet,
        };
        store.list_jobs(&filter, limit, q.cursor.as_deref())
    })
    .await;
    match read {
        Ok(Ok(page)) => Ok(page),
        Ok(Err(e @ ListError::UnknownState(_))) => {
            Err(ApiError::bad_request("bad_state", e.to_string()))
        }
        Ok(Err(e @ (ListError::BadCursor(_) | ListError::TwoFilters))) => {
            Err(ApiError::bad_request("bad_query", e.to_string()))
        }
        Ok(Err(e @ ListError::Store(_))) => Err(ApiError::unavailable(e)),
        Err(e) => Err(ApiError::unavailable(e)),
    }
}

/// Newest first, from the store's indexes (never the engine, never a scan): one page of at
/// most `limit` jobs, with the next page's cursor in [`NEXT_CURSOR`] when there may be more.
async fn list_jobs(State(s): State<Arc<ApiState>>, Query(q): Query<ListQuery>) -> Response {
    match read_jobs(&s, q).await {
        Ok((jobs, next)) => {
            let body = Json(jobs.iter().map(JobView::from).collect::<Vec<_>>());
            match next {
                Some(c) => ([(NEXT_CURSOR, c)], body).into_response(),
                None => body.into_response(),
            }
        }
        Err(e) => e.into_response(),
    }
}

async fn nodes(State(s): State<Arc<ApiState>>) -> Response {
    match s.engine.nodes().await {
        Ok(n) => Json(n).into_response(),
        Err(e) => ApiError::unavailable(e).into_response(),
    }
}

async fn status(State(s): State<Arc<ApiState>>) -> Response {
    match s.engine.status().await {
        Ok(v) => Json(v).into_response(),
        Err(e) => ApiError::unavailable(e).into_response(),
    }
}

async fn info(State(s): State<Arc<ApiState>>) -> Response {
    Json(s.info.clone()).into_response()
}

async fn metrics(State(s): State<Arc<ApiState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

/// The Provider Hub: one static page over this API and the chain's RPC.
const DASHBOARD: &str = include_str!("../../assets/dashboard.html");

/// The dashboard's placeholders the server fills in: the element's id and its empty content.
const DASHBOARD_FIGURES: [(&str, &str); 5] = [
    ("online", "–"),
    ("total", "–"),
    ("day", "–"),
    ("units", "–"),
    ("states", ""),
];

/// The dashboard with the network's figures in place of its placeholders.
fn dashboard_with(v: &StatusView) -> String {
    let states: Vec<String> = v
        .jobs
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(st, n)| format!("{n} {st}"))
        .collect();
    // Job state names are the engine's own words; nothing a peer wrote.
    let values = [
        v.nodes_online.to_string(),
        v.nodes_total.to_string(),
        v.jobs_last_24h.to_string(),
        v.units_recorded.to_string(),
        states.join(" · "),
    ];
    let mut page = DASHBOARD.to_string();
    for ((id, empty), value) in DASHBOARD_FIGURES.iter().zip(values) {
        page = page.replacen(
            &format!("id=\"{id}\">{empty}<"),
            &format!("id=\"{id}\">{value}<"),
            1,
        );
    }
    page
}

/// The dashboard with the network's figures filled in on the server, so the page says something
/// without JavaScript too (its script then keeps them live, with the charts and tables).
async fn dashboard(State(s): State<Arc<ApiState>>) -> Response {
    let page = match s.engine.status().await {
        Ok(v) => dashboard_with(&v),
        // The static page still works: its script says what it cannot reach.
        Err(_) => DASHBOARD.to_string(),
    };
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        page,
    )
        .into_response()
}

async fn not_found() -> Response {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such endpoint; see docs/run-a-dispatcher.md for the API",
    )
    .into_response()
}

/// What the API serves with.
pub(crate) struct ApiParts {
    pub(crate) engine: EngineHandle,
    pub(crate) store: DispatcherStore,
    pub(crate) chain: Option<(String, Address)>,
    pub(crate) contract_block: Option<u64>,
    pub(crate) demo_jobs_per_hour: u32,
    pub(crate) tokens: Vec<String>,
    pub(crate) rate_limit_per_minute: u32,
    pub(crate) client_rate_limit_per_minute: u32,
    pub(crate) max_body_bytes: usize,
    pub(crate) default_limits: Limits,
    pub(crate) metrics: Arc<DispatcherMetrics>,
    pub(crate) info: serde_json::Value,
}

/// Binds the API on `addr`; returns the bound address and the serving task.
pub(crate) async fn serve(
    addr: SocketAddr,
    parts: ApiParts,
    shutdown: CancellationToken,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let state = Arc::new(ApiState {
        engine: parts.engine,
        store: parts.store,
        chain: parts.chain,
        chain_reader: tokio::sync::OnceCell::new(),
        contract_block: parts.contract_block,
        first_batch_block: std::sync::OnceLock::new(),
        demo: (parts.demo_jobs_per_hour > 0).then(|| RateLimiter {
            per_minute: f64::from(parts.demo_jobs_per_hour) / 60.0,
            buckets: Mutex::new(HashMap::new()),
        }),
        demo_per_hour: parts.demo_jobs_per_hour,
        stats_cache: Mutex::new(None),
        tokens: parts.tokens,
        limiter: RateLimiter::new(parts.rate_limit_per_minute),
        clients: RateLimiter::new(parts.client_rate_limit_per_minute),
        default_limits: parts.default_limits,
        metrics: parts.metrics,
        info: parts.info,
    });
    let app = Router::new()
        .route("/", get(dashboard))
        .route("/v1/jobs", get(list_jobs).post(submit))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/receipts", get(receipts::job_receipts))
        .route("/v1/demo", axum::routing::post(demo))
        .route("/v1/nodes", get(nodes))
        .route("/v1/batches", get(batches::list_batches))
        .route("/v1/batches/{id}", get(batches::get_batch))
        .route("/nodes", get(network::nodes_page))
        .route("/jobs", get(network::jobs_page))
        .route("/batches", get(network::batches_page))
        .route("/v1/wallets/{addr}", get(wallet::wallet))
        .route("/wallet/{addr}", get(pages::wallet_page))
        .route("/explorer/tx/{hash}", get(pages::explorer_tx))
        .route("/explorer/block/{n}", get(pages::explorer_block))
        .route("/explorer/address/{addr}", get(pages::explorer_address))
        .route("/v1/status", get(status))
        .route("/v1/stats", get(stats::stats))
        .route("/v1/info", get(info))
        .route("/metrics", get(metrics))
        .merge(community::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(parts.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            per_client,
        ))
        .with_state(state);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        if let Err(e) = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
        {
            warn!(error = %e, "API stopped");
        }
    });
    Ok((bound, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dashboard_gets_every_figure_filled_in_by_the_server() {
        for (id, empty) in DASHBOARD_FIGURES {
            assert_eq!(
                DASHBOARD.matches(&format!("id=\"{id}\">{empty}<")).count(),
                1,
                "the dashboard's placeholder for {id} moved: the server would leave it empty"
            );
        }
        let v: StatusView = serde_json::from_value(serde_json::json!({
            "nodes_online": 3, "nodes_total": 4, "jobs": {"recorded": 7, "queued": 0},
            "jobs_last_24h": 9, "units_recorded": 11, "batches_recorded": 2, "outbox": 0,
            "batch_in_flight": null
        }))
        .expect("status");
        let page = dashboard_with(&v);
        for want in [
            "id=\"online\">3<",
            "id=\"total\">4<",
            "id=\"day\">9<",
            "id=\"units\">11<",
            "id=\"states\">7 recorded<",
        ] {
            assert!(page.contains(want), "{want}");
        }
    }

    #[tokio::test]
    async fn each_client_address_has_a_request_budget_and_hears_why_when_over_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let (inputs, _engine) = crate::engine::Lanes::new(8);
        let metrics = Arc::new(DispatcherMetrics::new());
        let stop = CancellationToken::new();
        let (addr, task) = serve(
            "127.0.0.1:0".parse().expect("addr"),
            ApiParts {
                engine: EngineHandle { inputs },
                store: DispatcherStore::open(dir.path()).expect("store"),
                chain: None,
                contract_block: None,
                demo_jobs_per_hour: 0,
                tokens: vec!["t".into()],
                rate_limit_per_minute: 100,
                client_rate_limit_per_minute: 3,
                max_body_bytes: 4096,
                default_limits: Limits {
                    max_ms: 1_000,
                    max_mem_mb: 16,
                    max_output_bytes: 64,
                    max_fuel: Some(1_000),
                },
                metrics: metrics.clone(),
                info: serde_json::json!({"net": "devnet-1"}),
            },
            stop.clone(),
        )
        .await
        .expect("serve");
        let client = reqwest::Client::new();
        let url = format!("http://{addr}/v1/info");
        let mut codes = Vec::new();
        for _ in 0..5 {
            codes.push(
                client
                    .get(&url)
                    .send()
                    .await
                    .expect("answer")
                    .status()
                    .as_u16(),
            );
        }
        assert_eq!(codes, vec![200, 200, 200, 429, 429]);
        let refused = client.get(&url).send().await.expect("answer");
        let body: serde_json::Value = refused.json().await.expect("json");
        assert_eq!(body["code"], "rate_limited");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("127.0.0.1")),
            "{body}"
        );
        assert!(metrics.encode().contains("client_rate_limited"));
        stop.cancel();
        let _ = task.await;
    }

    /// Serves the API over `inputs` with a demo quota; everything else as in production.
    async fn serve_demo(
        inputs: crate::engine::Lanes,
        dir: &std::path::Path,
        demo_jobs_per_hour: u32,
        stop: &CancellationToken,
    ) -> SocketAddr {
        let (addr, _task) = serve(
            "127.0.0.1:0".parse().expect("addr"),
            ApiParts {
                engine: EngineHandle { inputs },
                store: DispatcherStore::open(dir).expect("store"),
                chain: None,
                contract_block: None,
                demo_jobs_per_hour,
                tokens: vec!["t".into()],
                rate_limit_per_minute: 100,
                client_rate_limit_per_minute: 100,
                max_body_bytes: 4096,
                default_limits: Limits {
                    max_ms: 1_000,
                    max_mem_mb: 16,
                    max_output_bytes: 64,
                    max_fuel: Some(1_000),
                },
                metrics: Arc::new(DispatcherMetrics::new()),
                info: serde_json::json!({"net": "devnet-1"}),
            },
            stop.clone(),
        )
        .await
        .expect("serve");
        addr
    }

    #[tokio::test]
    async fn demo_jobs_are_refused_when_off_and_past_the_shared_quota() {
        let client = reqwest::Client::new();
        let stop = CancellationToken::new();

        // Off: a clear 403 that says how to turn it on, and nothing reaches the engine.
        let dir = tempfile::tempdir().expect("tmp");
        let (inputs, mut engine) = crate::engine::Lanes::new(8);
        let off = serve_demo(inputs, dir.path(), 0, &stop).await;
        let r = client
            .post(format!("http://{off}/v1/demo"))
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), 403);
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["code"], "demo_off");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("demo_jobs_per_hour"))
        );
        assert!(
            tokio::time::timeout(
                std::time::Duration::from_millis(100),
                engine.next_submission()
            )
            .await
            .is_err(),
            "a refused demo job never reaches the engine"
        );

        // 60 an hour: the first is submitted (a one-unit hash job), the next is over the quota.
        let dir = tempfile::tempdir().expect("tmp");
        let (inputs, mut engine) = crate::engine::Lanes::new(8);
        let on = serve_demo(inputs, dir.path(), 60, &stop).await;
        let (seen_tx, mut seen) = tokio::sync::mpsc::unbounded_channel();
        let fake_engine = tokio::spawn(async move {
            while let Some(Input::Submit { spec, reply, .. }) = engine.next_submission().await {
                let _ = seen_tx.send(spec);
                let _ = reply.send(Ok(JobId::from([7; 32])));
            }
        });
        let first = client
            .post(format!("http://{on}/v1/demo"))
            .send()
            .await
            .expect("answer");
        assert_eq!(first.status(), 202);
        let second = client
            .post(format!("http://{on}/v1/demo"))
            .send()
            .await
            .expect("answer");
        assert_eq!(second.status(), 429);
        let body: serde_json::Value = second.json().await.expect("json");
        assert_eq!(body["code"], "rate_limited");
        assert!(
            body["error"]
                .as_str()
                .is_some_and(|e| e.contains("60 jobs an hour"))
        );
        let spec = seen.try_recv().expect("the first reached the engine");
        assert!(
            matches!(spec.params, JobParams::Hash { iterations, .. } if iterations == DEMO_ITERATIONS),
            "{spec:?}"
        );
        assert!(seen.try_recv().is_err(), "the refused one did not");
        stop.cancel();
        fake_engine.abort();
    }

    #[test]
    fn each_token_gets_its_own_bucket_and_it_refills() {
        let limiter = RateLimiter {
            per_minute: 3.0,
            buckets: Mutex::new(HashMap::new()),
        };
        assert!((0..3).all(|_| limiter.allow("a")), "a full bucket at first");
        assert!(
            !limiter.allow("a"),
            "the fourth in the same instant is refused"
        );
        assert!(limiter.allow("b"), "another token is not affected");
        if let Ok(mut b) = limiter.buckets.lock()
            && let Some(entry) = b.get_mut("a")
        {
            entry.1 -= std::time::Duration::from_secs(20);
        }
        assert!(limiter.allow("a"), "20 s later one more is allowed");
        assert!(!limiter.allow("a"));
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }
}
