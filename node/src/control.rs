//! The node's local control API, served beside `/status`: `POST /opt-out` and `POST /opt-in`,
//! and the typed client `pocmesh node opt-out|opt-in` uses.
//!
//! Owns the request and reply types and the HTTP edge: a control request is accepted only from
//! a loopback peer, with a local `Host` (a web page on the same machine cannot reach it through
//! DNS rebinding) and a JSON body (a page cannot send one without a CORS preflight, which this
//! endpoint never answers). Each accepted request becomes a [`ControlCommand`] on a bounded
//! channel to the node's participation task (`crate::participation`), which does the work and
//! answers on a oneshot.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::{ConnectInfo, Json, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use pocmesh_protocol::Hash32;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};

/// Control requests waiting for the participation task at most.
pub const CONTROL_QUEUE: usize = 8;

/// What the volunteer asks of the running node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlRequest {
    /// Withdraw: announce an `opt_out`, stop heartbeats, decline offers, hand jobs back.
    OptOut,
    /// Take part again, accepting the consent text whose hash is `policy`.
    OptIn {
        /// The hash of the consent text accepted.
        policy: Hash32,
    },
}

/// A request with the channel its answer goes back on.
#[derive(Debug)]
pub struct ControlCommand {
    /// The request.
    pub request: ControlRequest,
    /// Where the answer goes.
    pub reply: oneshot::Sender<Result<ParticipationReply, ControlFailure>>,
}

/// Why a control request did not go through.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(rename_all = "snake_case", tag = "kind", content = "message")]
pub enum ControlFailure {
    /// The request itself is refused (a hash that is not the node's consent text's).
    #[error("{0}")]
    Refused(String),
    /// The node could not carry it out (store or disk trouble, the node stopping).
    #[error("{0}")]
    Failed(String),
}

/// `POST /opt-out` body (an empty JSON object).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OptOutRequest {}

/// `POST /opt-in` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OptInRequest {
    /// The hash of the consent text the volunteer accepts (`--accept-policy`).
    pub policy: Hash32,
}

/// What `/opt-out` and `/opt-in` answer: the node's standing afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipationReply {
    /// Whether this request changed anything (false: it was already so).
    pub changed: bool,
    /// Whether the node is opted out now.
    pub opted_out: bool,
    /// Since when, unix ms, when opted out.
    pub since_ms: Option<u64>,
    /// The sequence number of the `opt_out` message, when opted out.
    pub seq: Option<u64>,
    /// Whether the `opt_out` reached at least one peer (otherwise it goes out again when one
    /// connects).
    pub announced: bool,
    /// Running jobs handed back to their dispatchers as failed ("opted out").
    pub handed_back: u64,
    /// The consent text accepted (its hash), when the node takes part.
    pub policy: Option<Hash32>,
    /// Its version.
    pub policy_version: Option<u32>,
}

#[derive(Clone)]
struct ControlState {
    commands: mpsc::Sender<ControlCommand>,
}

/// The control routes, sending their commands on `commands`.
pub fn router(commands: mpsc::Sender<ControlCommand>) -> Router {
    Router::new()
        .route("/opt-out", post(opt_out))
        .route("/opt-in", post(opt_in))
        .with_state(ControlState { commands })
}

async fn opt_out(
    State(state): State<ControlState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(_): Json<OptOutRequest>,
) -> Response {
    if let Err(reason) = local_only(peer, &headers) {
        return forbidden(reason);
    }
    command(&state, ControlRequest::OptOut).await
}

async fn opt_in(
    State(state): State<ControlState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Json(body): Json<OptInRequest>,
) -> Response {
    if let Err(reason) = local_only(peer, &headers) {
        return forbidden(reason);
    }
    command(
        &state,
        ControlRequest::OptIn {
            policy: body.policy,
        },
    )
    .await
}

fn forbidden(reason: String) -> Response {
    (StatusCode::FORBIDDEN, Json(ControlFailure::Refused(reason))).into_response()
}

/// Refuses anything but a loopback peer naming a local host; the error says why.
fn local_only(peer: SocketAddr, headers: &HeaderMap) -> Result<(), String> {
    if !peer.ip().to_canonical().is_loopback() {
        return Err(format!(
            "control requests are accepted from this machine only, not from {}",
            peer.ip()
        ));
    }
    if let Some(host) = headers.get(header::HOST) {
        let host = host.to_str().unwrap_or_default();
        if !is_local_host(host) {
            return Err(format!(
                "Host {host:?} refused: control requests must name 127.0.0.1, [::1] or localhost"
            ));
        }
    }
    Ok(())
}

/// Whether a `Host` header names this machine (loopback address or `localhost`), any port.
fn is_local_host(host: &str) -> bool {
    let name = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

async fn command(state: &ControlState, request: ControlRequest) -> Response {
    let (reply, answer) = oneshot::channel();
    let stopped = || {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(ControlFailure::Failed(
                "the node is stopping; try again once it runs".into(),
            )),
        )
            .into_response()
    };
    if state
        .commands
        .send(ControlCommand { request, reply })
        .await
        .is_err()
    {
        return stopped();
    }
    match answer.await {
        Ok(Ok(reply)) => Json(reply).into_response(),
        Ok(Err(failure @ ControlFailure::Refused(_))) => {
            (StatusCode::BAD_REQUEST, Json(failure)).into_response()
        }
        Ok(Err(failure @ ControlFailure::Failed(_))) => {
            (StatusCode::INTERNAL_SERVER_ERROR, Json(failure)).into_response()
        }
        Err(_) => stopped(),
    }
}

/// Why the client got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ControlClientError {
    /// Nothing answered at the address.
    #[error(
        "no node answers at {addr} ({reason}); is `pocmesh node run` running with this data \
         directory? (pass --data-dir or --status)"
    )]
    Unreachable {
        /// The status address.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The node answered with a refusal or a failure.
    #[error("the node says: {0}")]
    Node(ControlFailure),
    /// The node answered something this version does not understand.
    #[error("unexpected answer from the node at {addr}: {reason}")]
    Protocol {
        /// The status address.
        addr: SocketAddr,
        /// What was wrong.
        reason: String,
    },
}

/// Asks the node whose status endpoint is `addr` to opt out.
pub async fn request_opt_out(addr: SocketAddr) -> Result<ParticipationReply, ControlClientError> {
    send(addr, "opt-out", &serde_json::json!(OptOutRequest {})).await
}

/// Asks the node whose status endpoint is `addr` to opt back in, accepting `policy`.
pub async fn request_opt_in(
    addr: SocketAddr,
    policy: Hash32,
) -> Result<ParticipationReply, ControlClientError> {
    send(addr, "opt-in", &serde_json::json!(OptInRequest { policy })).await
}

async fn send(
    addr: SocketAddr,
    path: &str,
    body: &serde_json::Value,
) -> Result<ParticipationReply, ControlClientError> {
    let url = format!("http://{addr}/{path}");
    let response = reqwest::Client::builder()
        .no_proxy()
        .build()
        .map_err(|e| ControlClientError::Protocol {
            addr,
            reason: e.to_string(),
        })?
        .post(&url)
        .json(body)
        // Opting out hands jobs back and flushes: seconds on a slow disk, not minutes.
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .map_err(|e| ControlClientError::Unreachable {
            addr,
            reason: e.to_string(),
        })?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ControlClientError::Protocol {
            addr,
            reason: e.to_string(),
        })?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| ControlClientError::Protocol {
            addr,
            reason: e.to_string(),
        });
    }
    match serde_json::from_slice::<ControlFailure>(&bytes) {
        Ok(failure) => Err(ControlClientError::Node(failure)),
        Err(_) => Err(ControlClientError::Protocol {
            addr,
            reason: format!(
                "HTTP {status}: {}; is this node older than `node opt-out`? (upgrade it)",
                String::from_utf8_lossy(&bytes)
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_host_names_pass() {
        for ok in [
            "127.0.0.1:9187",
            "127.0.0.1",
            "localhost:1",
            "LOCALHOST",
            "[::1]:9187",
            "127.8.9.1:80",
        ] {
            assert!(is_local_host(ok), "{ok}");
        }
        for bad in [
            "evil.example:9187",
            "10.0.0.1:9187",
            "[fe80::1]:1",
            "",
            "localhost.evil",
        ] {
            assert!(!is_local_host(bad), "{bad}");
        }
    }

    #[test]
    fn requests_from_other_machines_or_hosts_are_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, "127.0.0.1:9".parse().expect("header"));
        let lan: SocketAddr = "192.168.1.20:5000".parse().expect("addr");
        let local: SocketAddr = "127.0.0.1:5000".parse().expect("addr");
        assert!(local_only(local, &headers).is_ok());
        let refused = local_only(lan, &headers).expect_err("not loopback");
        assert!(refused.contains("192.168.1.20"), "{refused}");
        headers.insert(header::HOST, "attacker.example".parse().expect("header"));
        let refused = local_only(local, &headers).expect_err("rebinding");
        assert!(refused.contains("attacker.example"), "{refused}");
        assert_eq!(forbidden(refused).status(), StatusCode::FORBIDDEN);
    }
}
