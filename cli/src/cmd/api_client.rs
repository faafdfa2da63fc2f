//! Where the dispatcher's HTTP API is (`--api`) and its write token (`--token`,
//! `--token-file`); the requests themselves go through the dispatcher's typed client
//! ([`pocmesh_dispatcher::api::client::ApiClient`]).

use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use pocmesh_dispatcher::api::client::ApiClient;

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
    /// A client of this API, for reads.
    pub(crate) fn client(&self) -> ApiClient {
        ApiClient::new(&self.api)
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
