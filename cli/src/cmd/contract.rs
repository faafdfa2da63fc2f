//! `pocmesh contract deploy|grant|info|record-batch`: the ProofOfCompute contract.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use pocmesh_chain::{ChainClient, ProofOfCompute, RecordOutcome, Recorder, TxPolicy};
use pocmesh_protocol::{Address, BatchPlan, ReceiptLeaf};
use serde::Serialize;

use super::chain_args::{ContractArgs, RpcArgs, SignerArgs, runtime};
use crate::output::print_json;

#[derive(Debug, Subcommand)]
pub(crate) enum ContractCommand {
    /// Deploy ProofOfCompute from the given key (which becomes its admin).
    Deploy(DeployArgs),
    /// Grant DISPATCHER_ROLE to accounts (needs the admin key).
    Grant(GrantArgs),
    /// Show a deployed contract: name, symbol, totals, and whether its code is this build's.
    Info(InfoArgs),
    /// Record a batch of receipts from a JSON file (exactly once: a repeat is reported, not re-credited).
    RecordBatch(RecordBatchArgs),
}

#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    #[command(flatten)]
    rpc: RpcArgs,
    #[command(flatten)]
    signer: SignerArgs,
    /// Grant DISPATCHER_ROLE to this account after deploying (repeatable).
    #[arg(long, value_name = "ADDR")]
    grant: Vec<Address>,
    /// Confirmations to wait for.
    #[arg(long, default_value_t = 1)]
    confirmations: u64,
    /// Print JSON: {"address","tx","block","chain_id",…}.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct GrantArgs {
    #[command(flatten)]
    rpc: RpcArgs,
    #[command(flatten)]
    contract: ContractArgs,
    #[command(flatten)]
    signer: SignerArgs,
    /// Accounts to make dispatchers.
    #[arg(required = true, value_name = "ADDR")]
    accounts: Vec<Address>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
pub(crate) struct InfoArgs {
    #[command(flatten)]
    rpc: RpcArgs,
    #[command(flatten)]
    contract: ContractArgs,
    /// Also say whether this account holds DISPATCHER_ROLE.
    #[arg(long, value_name = "ADDR")]
    dispatcher: Option<Address>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "The file is a JSON array of receipts:\n  \
[{\"job\":\"0x…32 bytes\",\"provider\":\"0x…|xdc…\",\"node\":\"0x…\",\"units\":3,\"result_hash\":\"0x…32 bytes\"}, …]\n\
The batch id is derived from the receipts, so running the same file twice credits once.")]
pub(crate) struct RecordBatchArgs {
    #[command(flatten)]
    rpc: RpcArgs,
    #[command(flatten)]
    contract: ContractArgs,
    #[command(flatten)]
    signer: SignerArgs,
    /// The receipts file.
    #[arg(long, value_name = "FILE")]
    receipts: PathBuf,
    /// Confirmations to wait for.
    #[arg(long, default_value_t = 1)]
    confirmations: u64,
    /// Give up waiting for the receipt after this many seconds (the batch may still land; rerun to check).
    #[arg(long, default_value_t = 120)]
    timeout: u64,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

fn policy(confirmations: u64) -> TxPolicy {
    TxPolicy {
        confirmations: confirmations.max(1),
        ..TxPolicy::default()
    }
}

pub(crate) fn run(cmd: ContractCommand) -> anyhow::Result<ExitCode> {
    let rt = runtime()?;
    rt.block_on(async move {
        match cmd {
            ContractCommand::Deploy(a) => deploy(a).await,
            ContractCommand::Grant(a) => grant(a).await,
            ContractCommand::Info(a) => info(a).await,
            ContractCommand::RecordBatch(a) => record_batch(a).await,
        }
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn deploy(a: DeployArgs) -> anyhow::Result<()> {
    let key = a.signer.load()?;
    let client = ChainClient::connect(&a.rpc.rpc, &key, policy(a.confirmations)).await?;
    let d = pocmesh_chain::deploy(&client, &a.grant).await?;
    if a.json {
        return print_json(&d);
    }
    println!(
        "deployed ProofOfCompute at {} ({})",
        d.address,
        d.address.to_xdc()
    );
    println!("tx       {}", d.tx);
    println!(
        "block    {}  chain id {}  gas {}",
        d.block, d.chain_id, d.gas_used
    );
    println!("admin    {}", client.address());
    for g in &d.granted {
        println!("granted  DISPATCHER_ROLE to {}", g.account);
    }
    if d.granted.is_empty() {
        println!(
            "next: pocmesh contract grant --rpc {} --contract {} <DISPATCHER_ADDR>",
            a.rpc.rpc, d.address
        );
    }
    Ok(())
}

async fn grant(a: GrantArgs) -> anyhow::Result<()> {
    let key = a.signer.load()?;
    let client = ChainClient::connect(&a.rpc.rpc, &key, TxPolicy::default()).await?;
    let mut grants = Vec::new();
    for account in &a.accounts {
        grants.push(pocmesh_chain::grant_dispatcher(&client, a.contract.contract, *account).await?);
    }
    if a.json {
        return print_json(&grants);
    }
    for g in grants {
        match g.tx {
            Some(tx) => println!("granted DISPATCHER_ROLE to {} (tx {tx})", g.account),
            None => println!("{} already holds DISPATCHER_ROLE", g.account),
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct InfoOut {
    #[serde(flatten)]
    info: pocmesh_chain::ContractInfo,
    #[serde(skip_serializing_if = "Option::is_none")]
    dispatcher: Option<RoleOut>,
}

#[derive(Serialize)]
struct RoleOut {
    account: Address,
    has_role: bool,
}

async fn info(a: InfoArgs) -> anyhow::Result<()> {
    let poc = ProofOfCompute::at(&a.rpc.rpc, a.contract.contract).await?;
    let info = poc.info().await?;
    let dispatcher = match a.dispatcher {
        Some(account) => Some(RoleOut {
            account,
            has_role: poc.is_dispatcher(account).await?,
        }),
        None => None,
    };
    if a.json {
        return print_json(&InfoOut { info, dispatcher });
    }
    println!("contract    {} ({})", info.address, info.address.to_xdc());
    println!("chain id    {}", info.chain_id);
    println!(
        "token       {} ({}), decimals {}",
        info.name, info.symbol, info.decimals
    );
    println!("total units {}", info.total_units);
    println!(
        "code        {}",
        if info.code_matches_artifact {
            "matches this build's artifact"
        } else {
            "differs from this build's artifact (another version?)"
        }
    );
    if let Some(d) = dispatcher {
        println!(
            "{} {} DISPATCHER_ROLE",
            d.account,
            if d.has_role { "holds" } else { "does not hold" }
        );
    }
    Ok(())
}

#[derive(Serialize)]
struct RecordOut {
    batch: pocmesh_protocol::BatchId,
    root: pocmesh_protocol::Hash32,
    receipts: usize,
    units: u64,
    providers: Vec<Address>,
    #[serde(flatten)]
    outcome: RecordOutcome,
}

async fn record_batch(a: RecordBatchArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&a.receipts)
        .with_context(|| format!("reading {}", a.receipts.display()))?;
    let receipts: Vec<ReceiptLeaf> = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a JSON array of receipts (see --help)",
            a.receipts.display()
        )
    })?;
    let plan = BatchPlan::new(receipts)
        .with_context(|| format!("receipts in {}", a.receipts.display()))?;
    let key = a.signer.load()?;
    let mut p = policy(a.confirmations);
    p.receipt_timeout = std::time::Duration::from_secs(a.timeout);
    let client = ChainClient::connect(&a.rpc.rpc, &key, p).await?;
    let recorder = Recorder::new(client, a.contract.contract).await?;
    let json = a.json;
    let outcome = recorder
        .record_observed(&plan, &mut |tx| {
            if !json {
                println!("sent {tx}; waiting for it to be mined…");
            }
        })
        .await?;
    let out = RecordOut {
        batch: plan.batch_id,
        root: plan.root,
        receipts: plan.receipts.len(),
        units: plan.total_units(),
        providers: plan.providers.clone(),
        outcome,
    };
    if json {
        return print_json(&out);
    }
    match &out.outcome {
        RecordOutcome::Recorded {
            tx,
            block,
            gas_used,
        } => {
            println!(
                "recorded batch {} ({} receipts, {} units) in tx {tx}, block {block}, gas {gas_used}",
                out.batch, out.receipts, out.units
            )
        }
        RecordOutcome::AlreadyRecorded { tx, .. } => println!(
            "batch {} was already on chain{}; nothing credited again",
            out.batch,
            tx.map(|t| format!(" (tx {t})")).unwrap_or_default()
        ),
    }
    Ok(())
}
