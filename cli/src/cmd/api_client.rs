//! The dispatcher's HTTP API as the commands use it: where it is (`--api`), the write token
//! (`--token`, `--token-file`), and JSON answers with the dispatcher's errors turned into
//! messages that say what to do.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use serde::de::DeserializeOwned;

/// Where the dispatcher's API is.
#[derive(Debug, Clone, Args)]
pub(crate) struct ApiArgs {
    /// The dispatcher's API URL.
    #[arg(
        long,
        env = "POCMESH_API",
        default_value = "http://127.0.0.1:8645",
        value_name = "URL"
    )]
    pub(crate) api: String,
}

impl ApiArgs {
    /// `path` on this API.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api.trim_end_matches('/'))
    }
}

/// The API's write token.
#[derive(Debug, Clone, Args)]
pub(crate) struct TokenArgs {
    /// API bearer token (the dispatcher writes it to <data-dir>/api.token).
    #[arg(
        long,
        env = "POCMESH_API_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// Read the token from this file instead.
    #[arg(long, value_name = "FILE", conflicts_with = "token")]
    token_file: Option<PathBuf>,
}

impl TokenArgs {
    /// The token, from the flag, the file or the environment.
    pub(crate) fn resolve(&self) -> anyhow::Result<String> {
        match (&self.token, &self.token_file) {
            (Some(t), _) => Ok(t.clone()),
            (None, Some(f)) => Ok(std::fs::read_to_string(f)
                .with_context(|| format!("reading the token file {}", f.display()))?
                .trim()
                .to_string()),
            (None, None) => bail!(
                "a token is needed: --token TOKEN, --token-file FILE or POCMESH_API_TOKEN (the dispatcher writes it to <data-dir>/api.token)"
            ),
        }
    }
}

/// Reads an API answer, turning the dispatcher's JSON errors into messages.
pub(crate) async fn read<T: DeserializeOwned>(
    resp: reqwest::Response,
    url: &str,
) -> anyhow::Result<T> {
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .with_context(|| format!("reading {url}"))?;
    if !status.is_success() {
        let msg = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(String::from))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        bail!("{url}: {status}: {msg}");
    }
    serde_json::from_slice(&body).with_context(|| format!("{url}: unexpected answer"))
}

/// GETs `url` and reads its JSON answer.
pub(crate) async fn get<T: DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
) -> anyhow::Result<T> {
    let resp = client
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .with_context(|| unreachable(url))?;
    read(resp, url).await
}

/// The error when no dispatcher answers.
pub(crate) fn unreachable(url: &str) -> String {
    format!(
        "no dispatcher answers at {url}; is `pocmesh dispatcher run` (or `pocmesh testnet up`) running? Pass --api URL"
    )
}
