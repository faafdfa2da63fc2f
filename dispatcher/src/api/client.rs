//! The typed client of this API, used by the CLI, the testnet launcher and the tests: one place
//! that knows the paths, the bearer token, the paging header and the error body, so a change to
//! the API is a change here and in the server, nowhere else.

use std::time::Duration;

use pocmesh_protocol::Address;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::error::ErrorBody;
use super::wallet::WalletView;
use super::{JobView, NEXT_CURSOR, SubmitRequest, Submitted};
use crate::allowlist::AllowEntry;
use crate::engine::StatusView;
use crate::health::HealthView;
use crate::registry::NodeView;

/// How long one request may take before it counts as unanswered.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request to the API did not give the answer asked for.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered (connection refused, timeout, DNS).
    #[error(
        "no dispatcher answers at {url} ({reason}); is `pocmesh dispatcher run` (or `pocmesh testnet up`) running? Pass --api URL"
    )]
    Unreachable {
        /// The URL asked.
        url: String,
        /// The transport's error.
        reason: String,
    },
    /// The dispatcher answered with an error status.
    #[error("{url}: {status}: {message}")]
    Refused {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The error's stable code (empty if the body was not an API error).
        code: String,
        /// The error's message (or the body's text).
        message: String,
        /// The whole body, for answers that carry more (an import's refused lines).
        body: Vec<u8>,
    },
    /// An answer that is not what this version of the API sends.
    #[error("{url}: unexpected answer: {reason}")]
    Unexpected {
        /// The URL asked.
        url: String,
        /// What did not fit.
        reason: String,
    },
}

impl ClientError {
    /// The HTTP status of a refusal.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Refused { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The stable code of a refusal (`rate_limited`, `not_found`, …).
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Which jobs `GET /v1/jobs` lists (see the API docs for the state names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobsQuery {
    /// Only jobs in this state.
    pub state: Option<String>,
    /// Only jobs that credited this wallet.
    pub wallet: Option<Address>,
    /// Jobs per page (1..=1000; the server's default is 100).
    pub limit: Option<usize>,
    /// Where the page starts: the previous page's [`Page::next`].
    pub cursor: Option<String>,
}

impl JobsQuery {
    fn path(&self) -> String {
        let mut params = Vec::new();
        if let Some(s) = &self.state {
            params.push(format!("state={s}"));
        }
        if let Some(w) = &self.wallet {
            params.push(format!("wallet={w}"));
        }
        if let Some(l) = self.limit {
            params.push(format!("limit={l}"));
        }
        if let Some(c) = &self.cursor {
            params.push(format!("cursor={c}"));
        }
        if params.is_empty() {
            "/v1/jobs".into()
        } else {
            format!("/v1/jobs?{}", params.join("&"))
        }
    }
}

/// One page of a listing, with the cursor of the next one when there may be more.
#[derive(Debug, Clone)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as [`JobsQuery::cursor`] for the next page.
    pub next: Option<String>,
}

/// A client of one dispatcher's API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl ApiClient {
    /// A client of the API at `base` (e.g. `http://127.0.0.1:8645`), for reads.
    pub fn new(base: impl AsRef<str>) -> Self {
        ApiClient {
            base: base.as_ref().trim_end_matches('/').to_string(),
            token: None,
            http: reqwest::Client::new(),
        }
    }

    /// The same client, sending `token` with its writes.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// The API's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// `path` on this API.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `GET /v1/status`.
    pub async fn status(&self) -> Result<StatusView, ClientError> {
        self.get("/v1/status").await
    }

    /// `GET /v1/nodes`.
    pub async fn nodes(&self) -> Result<Vec<NodeView>, ClientError> {
        self.get("/v1/nodes").await
    }

    /// `GET /v1/jobs/{id}`.
    pub async fn job(&self, id: &str) -> Result<JobView, ClientError> {
        self.get(&format!("/v1/jobs/{id}")).await
    }

    /// One page of `GET /v1/jobs`.
    pub async fn jobs(&self, query: &JobsQuery) -> Result<Page<JobView>, ClientError> {
        self.get_page(&query.path()).await
    }

    /// One page of batches, newest first (`GET /v1/batches`), after `cursor`.
    pub async fn batches(
        &self,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<super::batches::BatchView>, ClientError> {
        let mut path = format!("/v1/batches?limit={limit}");
        if let Some(c) = cursor {
            path.push_str("&cursor=");
            path.push_str(c);
        }
        self.get_page(&path).await
    }

    /// One batch with each wallet's share and its jobs (`GET /v1/batches/{id}`).
    pub async fn batch(
        &self,
        id: &pocmesh_protocol::BatchId,
    ) -> Result<super::batches::BatchView, ClientError> {
        self.get(&format!("/v1/batches/{id}")).await
    }

    /// Every job `query` lists, page after page (at most `max_pages` pages).
    pub async fn all_jobs(
        &self,
        query: &JobsQuery,
        max_pages: usize,
    ) -> Result<Vec<JobView>, ClientError> {
        let mut query = query.clone();
        let mut all = Vec::new();
        for _ in 0..max_pages {
            let page = self.jobs(&query).await?;
            all.extend(page.items);
            match page.next {
                Some(next) => query.cursor = Some(next),
                None => break,
            }
        }
        Ok(all)
    }

    /// `POST /v1/jobs` (needs the token).
    pub async fn submit(&self, request: &SubmitRequest) -> Result<Submitted, ClientError> {
        self.post_json("/v1/jobs", request).await
    }

    /// `GET /v1/wallets/{wallet}`.
    pub async fn wallet(&self, wallet: Address) -> Result<WalletView, ClientError> {
        self.get(&format!("/v1/wallets/{wallet}")).await
    }

    /// `GET /v1/allowlist`.
    pub async fn allowlist(&self) -> Result<Vec<AllowEntry>, ClientError> {
        self.get("/v1/allowlist").await
    }

    /// `GET /v1/health?domain=…`.
    pub async fn health(&self, domain: &str) -> Result<HealthView, ClientError> {
        self.get(&format!("/v1/health?domain={}", domain.trim()))
            .await
    }

    /// `GET path`, its JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        Ok(self.get_with_headers(path).await?.0)
    }

    /// `GET path`, its text answer (CSV exports).
    pub async fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let url = self.url(path);
        let (bytes, _) = self.send(self.http.get(&url), &url).await?;
        String::from_utf8(bytes).map_err(|e| ClientError::Unexpected {
            url,
            reason: e.to_string(),
        })
    }

    /// `POST path` with a JSON body and the token; its JSON answer.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let request = self.authorized(self.http.post(&url)).json(body);
        let (bytes, _) = self.send(request, &url).await?;
        decode(&bytes, &url)
    }

    /// `POST path` with a raw body of `content_type` and the token; its JSON answer.
    pub async fn post_body<T: DeserializeOwned>(
        &self,
        path: &str,
        content_type: &str,
        body: String,
    ) -> Result<T, ClientError> {
        let url = self.url(path);
        let request = self
            .authorized(self.http.post(&url))
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        let (bytes, _) = self.send(request, &url).await?;
        decode(&bytes, &url)
    }

    /// A listing page: its items and the next page's cursor from [`NEXT_CURSOR`].
    async fn get_page<T: DeserializeOwned>(&self, path: &str) -> Result<Page<T>, ClientError> {
        let (items, headers) = self.get_with_headers(path).await?;
        let next = headers
            .get(NEXT_CURSOR)
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        Ok(Page { items, next })
    }

    async fn get_with_headers<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<(T, reqwest::header::HeaderMap), ClientError> {
        let url = self.url(path);
        let (bytes, headers) = self.send(self.http.get(&url), &url).await?;
        Ok((decode(&bytes, &url)?, headers))
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(t) => request.bearer_auth(t),
            None => request,
        }
    }

    /// Sends `request`; a success's body and headers, or the refusal read from its error body.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<(Vec<u8>, reqwest::header::HeaderMap), ClientError> {
        let resp = request.timeout(REQUEST_TIMEOUT).send().await.map_err(|e| {
            ClientError::Unreachable {
                url: url.to_string(),
                reason: e.to_string(),
            }
        })?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: url.to_string(),
                reason: format!("the answer broke off: {e}"),
            })?
            .to_vec();
        if status.is_success() {
            return Ok((body, headers));
        }
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(e) => (e.code, e.error),
            Err(_) => (String::new(), String::from_utf8_lossy(&body).into_owned()),
        };
        Err(ClientError::Refused {
            url: url.to_string(),
            status: status.as_u16(),
            code,
            message,
            body,
        })
    }
}

fn decode<T: DeserializeOwned>(bytes: &[u8], url: &str) -> Result<T, ClientError> {
    serde_json::from_slice(bytes).map_err(|e| ClientError::Unexpected {
        url: url.to_string(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_queries_become_the_documented_paths() {
        assert_eq!(JobsQuery::default().path(), "/v1/jobs");
        let q = JobsQuery {
            state: Some("recorded".into()),
            limit: Some(50),
            cursor: Some("abc".into()),
            ..JobsQuery::default()
        };
        assert_eq!(q.path(), "/v1/jobs?state=recorded&limit=50&cursor=abc");
    }

    #[tokio::test]
    async fn nothing_listening_is_unreachable_and_says_what_to_run() {
        // A port that was free a moment ago: nothing answers there.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let client = ApiClient::new(format!("http://127.0.0.1:{port}/"));
        let err = client.status().await.expect_err("nobody listens");
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
        assert!(err.to_string().contains("pocmesh dispatcher run"), "{err}");
    }
}
