//! Shared pieces of the multi-process tests: daemons started from the test build of `pocmesh`
//! (killed by PID when dropped), a chain with the contract and a dispatcher key holding the
//! role, and waiting for conditions with a deadline and a message saying what never happened.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pocmesh_chain::Devnet;
use pocmesh_chain::anvil::AnvilConfig;
use pocmesh_protocol::Address;

/// A `pocmesh` daemon process; killed (SIGKILL) when dropped.
pub(crate) struct Daemon {
    pub(crate) name: String,
    pub(crate) args: Vec<String>,
    pub(crate) log: PathBuf,
    child: Option<Child>,
}

impl Daemon {
    /// Starts `pocmesh args…`, output to `<log_dir>/<name>.log` (appended across restarts).
    pub(crate) fn start(name: &str, args: &[String], log_dir: &Path) -> Daemon {
        let mut d = Daemon {
            name: name.to_string(),
            args: args.to_vec(),
            log: log_dir.join(format!("{name}.log")),
            child: None,
        };
        d.spawn();
        d
    }

    fn spawn(&mut self) {
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_pocmesh"))
            .args(&self.args)
            .env("POCMESH_LOG", "info,pocmesh_mesh=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("pocmesh starts");
        self.child = Some(child);
    }

    /// SIGKILL, as a crash.
    pub(crate) fn sigkill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again with the same arguments.
    pub(crate) fn restart(&mut self) {
        self.sigkill();
        self.spawn();
    }

    /// SIGTERM and wait for a graceful exit (SIGKILL after `grace`); returns whether it exited
    /// on its own.
    pub(crate) fn terminate(&mut self, grace: Duration) -> bool {
        let Some(mut c) = self.child.take() else {
            return true;
        };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        let _ = c.wait();
        false
    }

    /// Whether it still runs.
    pub(crate) fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// The log so far.
    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.sigkill();
    }
}

/// Polls `probe` until it returns `Some`, or panics with `what` and `context()` after `timeout`.
pub(crate) async fn eventually<T, F, Fut>(
    what: &str,
    timeout: Duration,
    mut probe: F,
    context: impl Fn() -> String,
) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "never happened within {} s: {what}\n{}",
                timeout.as_secs(),
                context()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A local chain with the contract and a dispatcher key holding DISPATCHER_ROLE.
pub(crate) struct Chain {
    /// Kept so anvil runs as long as the chain is in use (killed on drop).
    pub(crate) _devnet: Devnet,
    pub(crate) rpc: String,
    pub(crate) contract: Address,
    pub(crate) dispatcher_key: PathBuf,
}

impl Chain {
    /// Starts anvil, deploys, writes a dispatcher key into `dir` and grants it (the key is anvil
    /// development account 1, funded).
    pub(crate) async fn start(dir: &Path) -> Chain {
        let devnet = Devnet::start(None, &AnvilConfig::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let dispatcher_key = dir.join("dispatcher.key");
        devnet
            .dispatcher
            .save(&dispatcher_key, true)
            .expect("save key");
        Chain {
            rpc: devnet.rpc(),
            contract: devnet.contract(),
            _devnet: devnet,
            dispatcher_key,
        }
    }
}

/// A free TCP port on 127.0.0.1.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Strings from string slices.
pub(crate) fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}
