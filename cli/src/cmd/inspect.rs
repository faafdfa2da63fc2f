//! `pocmesh inspect`: decode a signed envelope, recover its signer and say whether it is valid.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use pocmesh_protocol::{InspectOptions, InspectReport, MAX_ENVELOPE_BYTES, inspect, unix_ms_now};

use crate::output::print_json;

#[derive(Debug, Args)]
#[command(
    after_help = "Exit status: 0 valid, 1 invalid, 2 usage or I/O error.\n\
Example: pocmesh inspect --json a2677061…   or   pocmesh inspect < captured.bin"
)]
pub(crate) struct InspectArgs {
    /// The envelope as hex (0x optional); `-` or nothing reads stdin (hex text or raw bytes).
    input: Option<String>,
    /// Also require this network name (e.g. devnet-551, xdc-apothem).
    #[arg(long)]
    net: Option<String>,
    /// Also require the timestamp within this many seconds of this machine's clock.
    #[arg(long, value_name = "SECONDS")]
    max_skew: Option<u64>,
    /// Print JSON: {"kind","from","signer","valid","error","message",…}.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(args: InspectArgs) -> anyhow::Result<ExitCode> {
    let bytes = match args.input.as_deref() {
        None | Some("-") => {
            let mut buf = Vec::new();
            std::io::stdin()
                .take(2 * MAX_ENVELOPE_BYTES as u64 + 16)
                .read_to_end(&mut buf)
                .context("reading the envelope from stdin")?;
            pocmesh_protocol::inspect::input_bytes(&buf)
        }
        Some(text) => pocmesh_protocol::bytes::decode_hex(text).map_err(|e| {
            anyhow::anyhow!(
                "the envelope argument must be hex ({e}); pass raw bytes on stdin instead"
            )
        })?,
    };
    let options = InspectOptions {
        net: args.net,
        max_skew_ms: args.max_skew.map(|s| s.saturating_mul(1000)),
        now_ms: unix_ms_now(),
    };
    let report = inspect(&bytes, &options);
    if args.json {
        print_json(&report)?;
    } else {
        print_human(&report)?;
    }
    Ok(if report.valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn print_human(r: &InspectReport) -> anyhow::Result<()> {
    let show = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    println!("valid   {}", if r.valid { "yes" } else { "NO" });
    if let Some(e) = &r.error {
        println!("error   {e}");
    }
    println!("kind    {}", show(r.kind.clone()));
    println!("from    {}", show(r.from.map(|a| a.to_string())));
    println!("signer  {}", show(r.signer.map(|a| a.to_string())));
    println!("size    {} bytes", r.size);
    if let Some(h) = r.payload_hash {
        println!("payload keccak256 {h}");
    }
    if let Some(m) = &r.message {
        println!("message");
        println!("{}", serde_json::to_string_pretty(m)?);
    }
    Ok(())
}
