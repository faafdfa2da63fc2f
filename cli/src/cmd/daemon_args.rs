//! What the daemon commands share: job-type parsing, the network flags, and running a daemon
//! until Ctrl-C or SIGTERM.

use std::future::Future;

use anyhow::Context;
use clap::Args;
use pocmesh_mesh::NetSettings;
use pocmesh_protocol::JobType;
use tokio_util::sync::CancellationToken;

/// Parses a job type's wire name (`hash`, `wasm`, …).
pub(crate) fn parse_job_type(s: &str) -> Result<JobType, String> {
    JobType::from_name(s).map_err(|e| e.to_string())
}

/// A clap parser for job types whose `--help` lists the registry's names.
pub(crate) fn job_type_parser() -> impl clap::builder::TypedValueParser<Value = JobType> {
    use clap::builder::TypedValueParser;
    clap::builder::PossibleValuesParser::new(pocmesh_protocol::job_types::NAMES)
        .try_map(|name: String| parse_job_type(&name))
}

/// How a daemon joins the mesh (each flag overrides the config file's `[network]`).
#[derive(Debug, Clone, Args)]
pub(crate) struct NetArgs {
    /// Network name: `devnet-<chain id>` for a local chain, `xdc-apothem` for Apothem.
    #[arg(long, env = "POCMESH_NET", value_name = "NAME")]
    pub(crate) net: Option<String>,
    /// Peer to join through, e.g. /ip4/203.0.113.5/tcp/4001/p2p/16Uiu2…; repeat or comma-separate.
    #[arg(
        long = "bootstrap",
        env = "POCMESH_BOOTSTRAP",
        value_name = "MULTIADDR",
        value_delimiter = ','
    )]
    pub(crate) bootstrap: Vec<String>,
    /// Address to listen on, e.g. /ip4/0.0.0.0/tcp/4001 (default: TCP and QUIC on a free port).
    #[arg(long = "listen", value_name = "MULTIADDR", value_delimiter = ',')]
    pub(crate) listen: Vec<String>,
    /// Do not look for peers on the local network (mDNS).
    #[arg(long)]
    pub(crate) no_mdns: bool,
    /// Most inbound connections from one IP address (default 64); more are refused and counted.
    #[arg(long, value_name = "N")]
    pub(crate) max_connections_per_ip: Option<u32>,
}

impl NetArgs {
    /// Applies the flags over `settings`.
    pub(crate) fn apply(&self, settings: &mut NetSettings) {
        if let Some(net) = &self.net {
            settings.net = net.clone();
        }
        if !self.bootstrap.is_empty() {
            settings.bootstrap = self.bootstrap.clone();
        }
        if !self.listen.is_empty() {
            settings.listen = self.listen.clone();
        }
        if self.no_mdns {
            settings.mdns = false;
        }
        if let Some(n) = self.max_connections_per_ip {
            settings.max_connections_per_ip = n;
        }
    }
}

/// Runs a daemon future until it ends or Ctrl-C / SIGTERM asks it to stop gracefully.
pub(crate) fn run_until_signal<F, Fut, E>(start: F) -> anyhow::Result<()>
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + Send + Sync + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let result = runtime.block_on(async move {
        let shutdown = CancellationToken::new();
        let signals = shutdown.clone();
        tokio::spawn(async move {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(s) => s,
                    Err(_) => {
                        let _ = tokio::signal::ctrl_c().await;
                        signals.cancel();
                        return;
                    }
                };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            eprintln!("stopping (running work gets a grace period; press Ctrl-C again to force)");
            signals.cancel();
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(130);
        });
        start(shutdown).await.map_err(anyhow::Error::from)
    });
    // A sandboxed job still running after the grace period was handed back already; its
    // thread ends at its own time limit, and the process does not wait for it.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}
