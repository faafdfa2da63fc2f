//! The processes of a local network: started detached (own process group, output to a log
//! file, so they outlive `testnet up --detach`), found again by PID, and stopped by PID —
//! SIGTERM first, SIGKILL if they do not exit — after checking the PID still names the same
//! program (PIDs are reused).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// A process this launcher started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proc {
    /// What it is (`anvil`, `dispatcher`, `node-1`, …).
    pub name: String,
    /// Its PID.
    pub pid: u32,
    /// A string its command line contains, to tell it from a reused PID.
    pub marker: String,
    /// Its log file.
    pub log: String,
}

/// Starts `program args` detached, output appended to `log`.
pub fn spawn(
    name: &str,
    program: &Path,
    args: &[String],
    log: &Path,
    marker: &str,
) -> std::io::Result<Proc> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        // Its own process group: Ctrl-C in the terminal reaches `testnet up`, which stops the
        // children in order, rather than every child at once.
        .process_group(0)
        .spawn()?;
    Ok(Proc {
        name: name.to_string(),
        pid: child.id(),
        marker: marker.to_string(),
        log: log.display().to_string(),
    })
}

/// Whether the process runs and is still the one we started.
pub fn alive(p: &Proc) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{}/cmdline", p.pid)) else {
        return false;
    };
    // A zombie (exited, not yet reaped by its parent) has an empty command line.
    if cmdline.is_empty() {
        return false;
    }
    let text = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    text.contains(&p.marker)
}

/// Stops `p`: SIGTERM, then SIGKILL after `grace`. Returns whether it is gone.
pub fn stop(p: &Proc, grace: Duration) -> bool {
    if !alive(p) {
        return true;
    }
    let pid = Pid::from_raw(p.pid as i32);
    let _ = kill(pid, Signal::SIGTERM);
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        reap(p.pid);
        if !alive(p) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = kill(pid, Signal::SIGKILL);
    for _ in 0..100 {
        reap(p.pid);
        if !alive(p) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Collects the exit status of our own child, so it does not linger as a zombie.
fn reap(pid: u32) {
    use nix::sys::wait::{WaitPidFlag, waitpid};
    let _ = waitpid(Pid::from_raw(pid as i32), Some(WaitPidFlag::WNOHANG));
}
