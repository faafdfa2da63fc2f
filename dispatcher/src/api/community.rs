//! The community-compute part of the API: the allow-list (read it as JSON or CSV; import a
//! policy or robots-audit CSV, whole or not at all) and link/robots health per domain. Reads
//! come from the store, not the engine; imports go through the engine like every write.
//!
//! | route | who | what |
//! | --- | --- | --- |
//! | `GET /v1/allowlist[?format=csv]` | anyone | every domain with its policy |
//! | `POST /v1/allowlist/import?kind=policy\|robots-audit` | token | a CSV file in the body |
//! | `GET /v1/health?domain=D[&limit=N]` | anyone | the domain's robots.txt and URLs |

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ApiError, ApiState, EngineHandle, EngineStopped, refusal};
use crate::allowlist::{AllowEntry, AllowList, CsvKind, ImportSummary, LineError};
use crate::community::ImportError;
use crate::engine::Input;
use crate::health;

/// Most URLs `GET /v1/health` returns.
const MAX_HEALTH_URLS: usize = 10_000;

impl EngineHandle {
    /// Imports one allow-list file; the summary comes back once it is stored.
    pub async fn import_allowlist(
        &self,
        kind: CsvKind,
        text: String,
    ) -> Result<Result<ImportSummary, ImportError>, EngineStopped> {
        self.ask(|reply| Input::AllowlistImport { kind, text, reply })
            .await
    }
}

/// The answer to a refused import.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportRefused {
    /// What went wrong.
    pub error: String,
    /// `invalid_csv`.
    pub code: String,
    /// Every bad line.
    pub lines: Vec<LineError>,
}

/// `POST /v1/allowlist/import` query.
#[derive(Debug, Deserialize)]
struct ImportQuery {
    kind: Option<String>,
}

/// `GET /v1/allowlist` query.
#[derive(Debug, Deserialize)]
struct ListQuery {
    format: Option<String>,
}

/// `GET /v1/health` query.
#[derive(Debug, Deserialize)]
struct HealthQuery {
    domain: Option<String>,
    limit: Option<usize>,
}

pub(super) fn routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/allowlist", get(list))
        .route("/v1/allowlist/import", post(import))
        .route("/v1/health", get(health_of))
}

async fn list(State(s): State<Arc<ApiState>>, Query(q): Query<ListQuery>) -> Response {
    let entries: Vec<AllowEntry> = match s.store.allowlist() {
        Ok(e) => e,
        Err(e) => return ApiError::unavailable(e).into_response(),
    };
    match q.format.as_deref() {
        None | Some("json") => Json(entries).into_response(),
        Some("csv") => (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            AllowList::from_entries(entries).to_csv(),
        )
            .into_response(),
        Some(other) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_format",
            format!("format `{other}` is not json or csv"),
        )
        .into_response(),
    }
}

async fn import(
    State(s): State<Arc<ApiState>>,
    headers: HeaderMap,
    Query(q): Query<ImportQuery>,
    body: String,
) -> Response {
    if let Some(refused) = refusal(&s, &headers) {
        return refused;
    }
    let kind: CsvKind = match q.kind.as_deref().unwrap_or("policy").parse() {
        Ok(k) => k,
        Err(e) => return ApiError::new(StatusCode::BAD_REQUEST, "bad_kind", e).into_response(),
    };
    match s.engine.import_allowlist(kind, body).await {
        Ok(Ok(summary)) => Json(summary).into_response(),
        Ok(Err(ImportError::Invalid(lines))) => (
            StatusCode::BAD_REQUEST,
            Json(ImportRefused {
                error: format!(
                    "the file has {} bad line(s); nothing was imported",
                    lines.len()
                ),
                code: "invalid_csv".into(),
                lines,
            }),
        )
            .into_response(),
        Ok(Err(e)) => ApiError::unavailable(e).into_response(),
        Err(e) => ApiError::unavailable(e).into_response(),
    }
}

async fn health_of(State(s): State<Arc<ApiState>>, Query(q): Query<HealthQuery>) -> Response {
    let Some(raw) = q.domain else {
        return ApiError::new(
            StatusCode::BAD_REQUEST,
            "missing_domain",
            "ask for one domain: /v1/health?domain=example.org",
        )
        .into_response();
    };
    let domain = match crate::allowlist::normalise_domain(&raw) {
        Ok(d) => d,
        Err(e) => return ApiError::new(StatusCode::BAD_REQUEST, "bad_domain", e).into_response(),
    };
    let limit = q.limit.unwrap_or(1_000).min(MAX_HEALTH_URLS);
    let urls = match s.store.urls_of(&domain, limit) {
        Ok(u) => u,
        Err(e) => return ApiError::unavailable(e).into_response(),
    };
    let robots = match s.store.domain_health(&domain) {
        Ok(r) => r,
        Err(e) => return ApiError::unavailable(e).into_response(),
    };
    Json(health::view(&domain, robots, urls)).into_response()
}
