//! The API's one error type. Every refusal has an HTTP status (whose fault it was), a stable
//! machine-readable code and a message that says what to do next; it travels as
//! `{"error": message, "code": code}`. The server renders [`ApiError`]; the client
//! ([`super::client`]) reads the same [`ErrorBody`] back.

use std::borrow::Cow;

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

/// The JSON body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong and what to do next, for people.
    pub error: String,
    /// A stable code for scripts (`bad_token`, `rate_limited`, `unavailable`, …).
    pub code: String,
}

/// A refused or failed API request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} ({code}): {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// The stable code.
    pub code: Cow<'static, str>,
    /// The message.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            code: code.into(),
            message: message.into(),
        }
    }

    /// `400`: the request itself is wrong; `code` names what.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// `404`: nothing by that name.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// `503`: the engine stopped or the store could not be read — says where to look.
    pub fn unavailable(cause: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            format!("{cause}; the dispatcher may be shutting down — see its log, then retry"),
        )
    }

    /// The body this error is sent with.
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: self.message.clone(),
            code: self.code.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_error_is_its_status_and_a_json_body_with_message_and_code() {
        let response = ApiError::bad_request("bad_wallet", "not an address").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        let body: ErrorBody = serde_json::from_slice(&bytes).expect("json");
        assert_eq!(
            body,
            ErrorBody {
                error: "not an address".into(),
                code: "bad_wallet".into()
            }
        );
    }

    #[test]
    fn unavailable_says_where_to_look() {
        let e = ApiError::unavailable("the dispatcher engine has stopped");
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.message.contains("see its log"), "{}", e.message);
    }
}
