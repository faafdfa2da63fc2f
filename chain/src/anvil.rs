//! A local anvil (Foundry's EVM node) with XDC-like settings, run as a child process.
//!
//! Used by the tests, the gas benchmark and the local testnet. anvil is looked up in an explicit
//! path, then the given tool folders, then `PATH`; it listens on 127.0.0.1 on a port the OS picks
//! (read back from its "Listening on" line), with `--hardfork paris` (no PUSH0, like XDC). The
//! process is killed by PID when the [`Anvil`] value is dropped.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::ChainError;

/// The first of anvil's well-known development keys (public test key; never use it for value).
pub const DEV_KEY_0: &str = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80";
/// The second development key.
pub const DEV_KEY_1: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
/// The third development key.
pub const DEV_KEY_2: &str = "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

/// The default devnet chain id (an XDC-like local chain).
pub const DEVNET_CHAIN_ID: u64 = 551;

/// How to start anvil.
#[derive(Debug, Clone)]
pub struct AnvilConfig {
    /// Chain id.
    pub chain_id: u64,
    /// Port; 0 lets the OS pick.
    pub port: u16,
    /// Mine each transaction at once (false: only on `evm_mine`, for crash tests).
    pub automine: bool,
    /// Keep chain state in this file across restarts.
    pub state_file: Option<PathBuf>,
    /// Where anvil's output goes; `None` discards it.
    pub log_file: Option<PathBuf>,
    /// How long to wait for it to listen.
    pub start_timeout: Duration,
}

impl Default for AnvilConfig {
    fn default() -> Self {
        AnvilConfig {
            chain_id: DEVNET_CHAIN_ID,
            port: 0,
            automine: true,
            state_file: None,
            log_file: None,
            start_timeout: Duration::from_secs(30),
        }
    }
}

/// Folders searched for anvil by default: pocmesh's tools folder in the user's cache
/// (`~/.cache/pocmesh/tools`, where `pocmesh testnet` installs it) and the `tools/` folder of the
/// source checkout this binary was built from (`npm ci --prefix tools`).
pub fn default_tool_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
    if let Some(cache) = cache {
        dirs.push(cache.join("pocmesh/tools"));
    }
    dirs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools"));
    dirs
}

/// Finds the anvil executable: `explicit`, then `tool_dirs` (each searched as is and under
/// `node_modules/.bin`), then `PATH`.
pub fn locate_anvil(explicit: Option<&Path>, tool_dirs: &[PathBuf]) -> Result<PathBuf, ChainError> {
    if let Some(p) = explicit {
        return if p.is_file() {
            Ok(p.to_path_buf())
        } else {
            Err(ChainError::Anvil(format!(
                "anvil executable {} does not exist",
                p.display()
            )))
        };
    }
    for dir in tool_dirs {
        for candidate in [dir.join("anvil"), dir.join("node_modules/.bin/anvil")] {
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join("anvil");
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    Err(ChainError::AnvilNotFound {
        searched: tool_dirs.to_vec(),
    })
}

/// A running anvil; killed when dropped.
#[derive(Debug)]
pub struct Anvil {
    child: Child,
    port: u16,
    chain_id: u64,
}

impl Anvil {
    /// Starts anvil from `binary` and waits until it listens.
    pub fn spawn(binary: &Path, config: &AnvilConfig) -> Result<Anvil, ChainError> {
        let mut cmd = Command::new(binary);
        cmd.args(["--host", "127.0.0.1", "--port", &config.port.to_string()])
            .args(["--chain-id", &config.chain_id.to_string()])
            .args(["--hardfork", "paris"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if !config.automine {
            cmd.arg("--no-mining");
        }
        if let Some(state) = &config.state_file {
            cmd.arg("--state").arg(state);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| ChainError::Anvil(format!("starting {}: {e}", binary.display())))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| ChainError::Anvil("anvil stdout not captured".into()))?;
        let (tx, rx) = std::sync::mpsc::channel();
        let log_file = config.log_file.clone();
        // Read anvil's output on a thread: report the port, then keep draining (to the log file
        // if one is given) so anvil never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut log = log_file.and_then(|p| std::fs::File::create(p).ok());
            let mut sent = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(f) = log.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
                if !sent && let Some(addr) = line.trim().strip_prefix("Listening on ") {
                    let port = addr.rsplit(':').next().and_then(|p| p.parse::<u16>().ok());
                    let _ = tx.send(port);
                    sent = true;
                }
            }
        });
        let deadline = Instant::now() + config.start_timeout;
        let port = loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(ChainError::Anvil(format!(
                    "anvil exited at start ({status}); is the port or state file in use?"
                )));
            }
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Some(port)) => break port,
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ChainError::Anvil(
                        "could not read anvil's listening port".into(),
                    ));
                }
                Err(_) if Instant::now() > deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ChainError::Anvil(format!(
                        "anvil did not listen within {} s",
                        config.start_timeout.as_secs()
                    )));
                }
                Err(_) => {}
            }
        };
        Ok(Anvil {
            child,
            port,
            chain_id: config.chain_id,
        })
    }

    /// The JSON-RPC URL.
    pub fn rpc_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The chain id it runs.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops anvil (SIGKILL) and waits for it.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Anvil {
    fn drop(&mut self) {
        self.kill();
    }
}
