//! `pocmesh wallet ADDR`: one volunteer's view through a dispatcher — units on chain beside the
//! dispatcher's figure, the credit history, the nodes earning for the wallet, quarantined credits.

use std::process::ExitCode;

use clap::Args;
use pocmesh_protocol::Address;

use super::api_client::ApiArgs;
use super::chain_args::runtime;
use crate::output::print_json;

#[derive(Debug, Args)]
pub(crate) struct WalletArgs {
    /// The wallet (0x… or xdc…).
    wallet: Address,
    #[command(flatten)]
    api: ApiArgs,
    /// Print JSON (the `GET /v1/wallets/{addr}` answer).
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(a: WalletArgs) -> anyhow::Result<ExitCode> {
    let view = runtime()?.block_on(a.api.client().wallet(a.wallet))?;
    if a.json {
        print_json(&view)?;
        return Ok(ExitCode::SUCCESS);
    }
    println!("wallet    {} ({})", view.wallet, view.wallet_xdc);
    match (view.units_on_chain, &view.chain_error) {
        (Some(u), _) => println!("on chain  {u} units"),
        (None, Some(e)) => println!("on chain  unknown: {e}"),
        (None, None) => println!("on chain  unknown"),
    }
    let d = &view.dispatcher;
    println!(
        "here      {} units recorded, {} pending, over {} jobs{}",
        d.units_recorded,
        d.units_pending,
        d.jobs,
        if d.truncated { " (at least)" } else { "" }
    );
    if view.differs {
        println!(
            "          the chain's figure differs from this dispatcher's: other dispatchers may credit this wallet too"
        );
    }
    super::units::print_credits(&view.credits);
    for n in &view.nodes {
        println!(
            "node      {} {} slots {}/{} reliability {:.2}{}",
            n.address,
            if n.online { "online" } else { "offline" },
            n.caps.slots_free,
            n.caps.slots_total,
            n.reliability,
            if n.excluded { " EXCLUDED" } else { "" }
        );
    }
    for q in &d.quarantined {
        println!(
            "quarantined {} units (node {}): {}",
            q.units, q.node, q.reason
        );
    }
    println!("run a node for it: {}", view.run_a_node);
    Ok(ExitCode::SUCCESS)
}
