//! anvil for the local chain: found in pocmesh's tools folders or on PATH, or installed once
//! from the pinned npm package into `~/.cache/pocmesh/tools`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pocmesh_chain::ChainError;
use pocmesh_chain::anvil::{default_tool_dirs, locate_anvil};

use crate::TestnetError;

/// The npm package and version pinned in `tools/package.json`.
pub const ANVIL_PACKAGE: &str = "@foundry-rs/anvil-linux-amd64@1.7.1";

/// The anvil executable: `explicit`, the tools folders, PATH — or, if none has it, installed
/// from npm into the first tools folder (reporting through `progress`).
pub fn ensure_anvil(
    explicit: Option<&Path>,
    progress: &mut dyn FnMut(&str),
) -> Result<PathBuf, TestnetError> {
    let dirs = default_tool_dirs();
    match locate_anvil(explicit, &dirs) {
        Ok(p) => return Ok(p),
        Err(ChainError::AnvilNotFound { .. }) if explicit.is_none() => {}
        Err(e) => return Err(e.into()),
    }
    let Some(target) = dirs.first() else {
        return Err(TestnetError::Io(
            "no cache folder for tools (set HOME); install anvil and pass --anvil FILE".into(),
        ));
    };
    progress(&format!(
        "installing anvil ({ANVIL_PACKAGE}) into {} — one time",
        target.display()
    ));
    std::fs::create_dir_all(target)
        .map_err(|e| TestnetError::Io(format!("{}: {e}", target.display())))?;
    let output = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--prefix"])
        .arg(target)
        .arg(ANVIL_PACKAGE)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            TestnetError::Io(format!(
                "cannot run npm ({e}); install Node.js/npm, or install Foundry's anvil and pass --anvil FILE"
            ))
        })?;
    if !output.status.success() {
        return Err(TestnetError::Io(format!(
            "npm install {ANVIL_PACKAGE} failed: {}; install Foundry's anvil and pass --anvil FILE",
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    locate_anvil(None, &dirs).map_err(TestnetError::from)
}
