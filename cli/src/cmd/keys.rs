//! `pocmesh keys new|show`: identity keys in files with owner-only permissions.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use pocmesh_protocol::SecretKey;
use serde::Serialize;

use crate::output::print_json;

/// Key file used when none is named.
const DEFAULT_KEY_FILE: &str = "pocmesh.key";

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Create a new random key and save it (mode 0600). Prints its address, never the secret.
    New(NewArgs),
    /// Show the address of a key file in 0x and xdc forms.
    Show(ShowArgs),
}

#[derive(Debug, Args)]
pub(crate) struct NewArgs {
    /// Where to save the key.
    #[arg(long, short, default_value = DEFAULT_KEY_FILE)]
    out: PathBuf,
    /// Replace an existing key file (its key is lost).
    #[arg(long)]
    force: bool,
    /// Print JSON: {"address":…,"xdc":…,"file":…}.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ShowArgs {
    /// The key file.
    #[arg(default_value = DEFAULT_KEY_FILE)]
    file: PathBuf,
    /// Print JSON: {"address":…,"xdc":…,"file":…}.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct KeyInfo {
    address: String,
    xdc: String,
    file: String,
}

fn info(key: &SecretKey, file: &std::path::Path) -> KeyInfo {
    KeyInfo {
        address: key.address().to_string(),
        xdc: key.address().to_xdc(),
        file: file.display().to_string(),
    }
}

pub(crate) fn run(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        KeysCommand::New(a) => {
            let key = SecretKey::generate().context("generating a key")?;
            key.save(&a.out, a.force)?;
            let info = info(&key, &a.out);
            if a.json {
                print_json(&info)?;
            } else {
                println!("created {}", info.file);
                println!("address {}", info.address);
                println!("xdc     {}", info.xdc);
                println!("Keep this file private: whoever has it can act as this identity.");
            }
        }
        KeysCommand::Show(a) => {
            let key = SecretKey::load(&a.file)?;
            let info = info(&key, &a.file);
            if a.json {
                print_json(&info)?;
            } else {
                println!("address {}", info.address);
                println!("xdc     {}", info.xdc);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
