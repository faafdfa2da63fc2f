//! `pocmesh units WALLET`: a wallet's compute units, read straight from the contract.

use std::process::ExitCode;

use clap::Args;
use pocmesh_chain::{Credit, ProofOfCompute};
use pocmesh_protocol::Address;
use serde::Serialize;

use super::chain_args::{ContractArgs, RpcArgs, runtime};
use crate::output::print_json;

#[derive(Debug, Args)]
pub(crate) struct UnitsArgs {
    /// The wallet (0x… or xdc…).
    wallet: Address,
    #[command(flatten)]
    rpc: RpcArgs,
    #[command(flatten)]
    contract: ContractArgs,
    /// Also list every credit (Transfer logs from 0x0, with their batch).
    #[arg(long)]
    history: bool,
    /// First block to search for history (the contract's deployment block saves time on real chains).
    #[arg(long, default_value_t = 0)]
    from_block: u64,
    /// Print JSON: {"wallet":"0x…","units":N} (+ "history" with --history).
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct UnitsOut {
    wallet: Address,
    units: u128,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<Vec<Credit>>,
}

pub(crate) fn run(a: UnitsArgs) -> anyhow::Result<ExitCode> {
    runtime()?.block_on(async move {
        let poc = ProofOfCompute::at(&a.rpc.rpc, a.contract.contract).await?;
        let units = poc.units(a.wallet).await?;
        let history = if a.history {
            Some(
                poc.credit_history(a.wallet, a.from_block, None, 10_000)
                    .await?,
            )
        } else {
            None
        };
        let out = UnitsOut {
            wallet: a.wallet,
            units,
            history,
        };
        if a.json {
            return print_json(&out);
        }
        println!(
            "{} ({}) has {} compute units",
            out.wallet,
            out.wallet.to_xdc(),
            out.units
        );
        print_credits(out.history.as_deref().unwrap_or_default());
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// One line per credit: block, units, transaction and batch (or `recordCompute`).
pub(crate) fn print_credits(credits: &[Credit]) {
    for c in credits {
        match c.batch {
            Some(b) => println!(
                "  block {:>8}  +{:<6} tx {}  batch {b}",
                c.block, c.units, c.tx
            ),
            None => println!(
                "  block {:>8}  +{:<6} tx {}  recordCompute",
                c.block, c.units, c.tx
            ),
        }
    }
}
