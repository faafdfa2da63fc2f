//! Tests of the `pocmesh` binary as a user runs it.

mod bench;
mod chain;
mod community;
mod consent;
mod flood;
mod inspect;
mod keys;
mod network;
mod node;
mod poison;
mod rogue;
mod support;
mod testnet;

use std::process::{Command, Output, Stdio};

/// Runs the test build of `pocmesh` with `args` and optional stdin.
pub(crate) fn pocmesh(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pocmesh"));
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("pocmesh starts");
    if let Some(input) = stdin {
        use std::io::Write;
        let mut pipe = child.stdin.take().expect("stdin piped");
        pipe.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("pocmesh finishes")
}

/// Parses stdout as JSON, with the whole output in the panic message if it is not.
pub(crate) fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}
