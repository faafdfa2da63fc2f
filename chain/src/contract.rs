//! The `ProofOfCompute` contract: deploy, roles, and reads.

use std::sync::Arc;

use ethers::abi::AbiDecode;
use ethers::providers::{Http, Middleware, Provider};
use ethers::types::{Filter, H256, U256};
use pocmesh_protocol::{Address, BatchId, BatchPlan, Hash32, keccak256};
use serde::Serialize;

use crate::artifact::Artifact;
use crate::bindings::{ProofOfComputeContract, ProofOfComputeContractErrors};
use crate::client::{
    ChainClient, Mined, RetryPolicy, from_h160, from_h256, map_provider_error, provider, to_h160,
    with_retry,
};
use crate::error::ChainError;

/// `keccak256("DISPATCHER_ROLE")`.
pub fn dispatcher_role() -> [u8; 32] {
    keccak256(b"DISPATCHER_ROLE")
}

/// Turns revert data of this contract into words (`BatchAlreadyRecorded(0x…)`, …).
pub fn decode_revert(data: &[u8]) -> String {
    use ProofOfComputeContractErrors as E;
    match E::decode(data) {
        Ok(E::BatchAlreadyRecorded(e)) => format!("BatchAlreadyRecorded({})", Hash32(e.batch_id)),
        Ok(E::AccessControlUnauthorizedAccount(e)) => format!(
            "AccessControlUnauthorizedAccount({}, {}): the sender lacks the role",
            from_h160(e.account),
            Hash32(e.needed_role)
        ),
        Ok(E::LengthMismatch(e)) => format!(
            "LengthMismatch(providers {}, units {})",
            e.providers, e.units
        ),
        Ok(E::ZeroProvider(e)) => format!("ZeroProvider(index {})", e.index),
        Ok(E::ZeroUnits(e)) => format!("ZeroUnits(index {})", e.index),
        Ok(E::RevertString(s)) => s,
        Ok(other) => format!("{other:?}"),
        Err(_) if data.is_empty() => "reverted without data".into(),
        Err(_) => format!("unknown revert data 0x{}", hex::encode(data)),
    }
}

/// The entry of a `recordBatch` call that the revert `data` blames, with the reason, when the
/// contract refused one entry (`ZeroProvider(i)`, `ZeroUnits(i)`): a refusal no retry changes.
pub fn refused_entry(data: &[u8]) -> Option<(usize, &'static str)> {
    use ProofOfComputeContractErrors as E;
    let (index, reason) = match E::decode(data).ok()? {
        E::ZeroProvider(e) => (e.index, "the provider is the zero address"),
        E::ZeroUnits(e) => (e.index, "the entry credits zero units"),
        _ => return None,
    };
    Some((usize::try_from(index).ok()?, reason))
}

/// A deployed contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    /// Contract address.
    pub address: Address,
    /// Creation transaction.
    pub tx: Hash32,
    /// Block it was created in.
    pub block: u64,
    /// Chain id.
    pub chain_id: u64,
    /// Gas the creation used.
    pub gas_used: u64,
    /// Accounts granted DISPATCHER_ROLE at deployment, with their grant transactions.
    pub granted: Vec<Grant>,
}

/// A role grant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// The account.
    pub account: Address,
    /// The transaction, or `None` when it already held the role.
    pub tx: Option<Hash32>,
}

/// Public facts about a deployed contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ContractInfo {
    /// Contract address.
    pub address: Address,
    /// Chain id.
    pub chain_id: u64,
    /// ERC-20 name.
    pub name: String,
    /// ERC-20 symbol.
    pub symbol: String,
    /// ERC-20 decimals (0).
    pub decimals: u8,
    /// Units credited in all.
    pub total_units: u128,
    /// Whether the deployed code is byte-for-byte the committed artifact.
    pub code_matches_artifact: bool,
}

/// One credit to a wallet: a `Transfer(0x0, wallet, units)` log, with its batch if batched.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Credit {
    /// Block.
    pub block: u64,
    /// Transaction.
    pub tx: Hash32,
    /// Units credited.
    pub units: u128,
    /// The batch (from `BatchRecorded` in the same transaction), or `None` for `recordCompute`.
    pub batch: Option<BatchId>,
}

/// A handle to a `ProofOfCompute` contract, for reads.
#[derive(Debug, Clone)]
pub struct ProofOfCompute {
    address: Address,
    url: String,
    chain_id: u64,
    retry: RetryPolicy,
    contract: ProofOfComputeContract<Provider<Http>>,
}

fn u256_to_u128(v: U256, what: &str) -> Result<u128, ChainError> {
    if v > U256::from(u128::MAX) {
        return Err(ChainError::Invalid(format!(
            "{what} {v} does not fit in 128 bits"
        )));
    }
    Ok(v.as_u128())
}

impl ProofOfCompute {
    /// Connects to the contract at `address` over `url`, checking that a ProofOfCompute is there.
    pub async fn at(url: &str, address: Address) -> Result<Self, ChainError> {
        let provider = Arc::new(provider(url)?);
        let retry = RetryPolicy::default();
        let chain_id = crate::client::chain_id(&provider, url, retry).await?;
        let code = with_retry(retry, "eth_getCode", || {
            let p = provider.clone();
            async move {
                p.get_code(to_h160(address), None)
                    .await
                    .map_err(|e| map_provider_error(url, &e))
            }
        })
        .await?;
        if code.is_empty() {
            return Err(ChainError::NotProofOfCompute {
                address,
                chain_id,
                reason: "no contract code there".into(),
            });
        }
        let contract = ProofOfComputeContract::new(to_h160(address), provider);
        let this = ProofOfCompute {
            address,
            url: url.to_string(),
            chain_id,
            retry,
            contract,
        };
        let role = this
            .view("DISPATCHER_ROLE", || this.contract.dispatcher_role())
            .await
            .map_err(|e| ChainError::NotProofOfCompute {
                address,
                chain_id,
                reason: format!("DISPATCHER_ROLE() failed: {e}"),
            })?;
        if role != dispatcher_role() {
            return Err(ChainError::NotProofOfCompute {
                address,
                chain_id,
                reason: "DISPATCHER_ROLE() has an unexpected value".into(),
            });
        }
        Ok(this)
    }

    /// The contract's address.
    pub fn address(&self) -> Address {
        self.address
    }

    /// The RPC URL it reads through.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The retry policy of its reads.
    pub(crate) fn retry(&self) -> RetryPolicy {
        self.retry
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The generated binding, for calls this type does not wrap.
    pub fn binding(&self) -> &ProofOfComputeContract<Provider<Http>> {
        &self.contract
    }

    async fn view<T, F>(&self, what: &'static str, make: F) -> Result<T, ChainError>
    where
        T: ethers::abi::Detokenize,
        F: Fn() -> ethers::contract::builders::ContractCall<Provider<Http>, T>,
    {
        with_retry(self.retry, what, || {
            let call = make();
            async move {
                call.call().await.map_err(|e| match e {
                    ethers::contract::ContractError::ProviderError { e } => {
                        map_provider_error(&self.url, &e)
                    }
                    ethers::contract::ContractError::MiddlewareError { e } => {
                        map_provider_error(&self.url, &e)
                    }
                    other => ChainError::Reverted {
                        call: what,
                        reason: other
                            .as_revert()
                            .map_or_else(|| other.to_string(), |d| decode_revert(d)),
                        tx: None,
                    },
                })
            }
        })
        .await
    }

    /// Calldata of `recordBatch` for `plan`.
    pub fn record_batch_calldata(&self, plan: &BatchPlan) -> Result<Vec<u8>, ChainError> {
        self.contract
            .record_batch(
                *plan.batch_id.as_bytes(),
                plan.root.0,
                plan.providers.iter().map(|a| to_h160(*a)).collect(),
                plan.units.iter().map(|u| (*u).into()).collect(),
            )
            .calldata()
            .map(|d| d.to_vec())
            .ok_or_else(|| ChainError::Invalid("encoding recordBatch".into()))
    }

    /// Units credited to `wallet`.
    pub async fn units(&self, wallet: Address) -> Result<u128, ChainError> {
        let v = self
            .view("computeUnits", || {
                self.contract.compute_units(to_h160(wallet))
            })
            .await?;
        u256_to_u128(v, "computeUnits")
    }

    /// ERC-20 `balanceOf` (equal to [`ProofOfCompute::units`]).
    pub async fn balance_of(&self, wallet: Address) -> Result<u128, ChainError> {
        let v = self
            .view("balanceOf", || self.contract.balance_of(to_h160(wallet)))
            .await?;
        u256_to_u128(v, "balanceOf")
    }

    /// Units credited in all.
    pub async fn total_units(&self) -> Result<u128, ChainError> {
        let v = self
            .view("totalUnits", || self.contract.total_units())
            .await?;
        u256_to_u128(v, "totalUnits")
    }

    /// The receipts root of `batch`, or `None` if it was never recorded.
    pub async fn batch_root(&self, batch: BatchId) -> Result<Option<Hash32>, ChainError> {
        let root = self
            .view("batchRoot", || self.contract.batch_root(*batch.as_bytes()))
            .await?;
        Ok(Some(Hash32(root)).filter(|r| !r.is_zero()))
    }

    /// The contract's own check of a receipt leaf against a recorded batch.
    pub async fn verify_receipt(
        &self,
        batch: BatchId,
        leaf: Hash32,
        proof: &[Hash32],
    ) -> Result<bool, ChainError> {
        let proof: Vec<[u8; 32]> = proof.iter().map(|h| h.0).collect();
        self.view("verifyReceipt", || {
            self.contract
                .verify_receipt(*batch.as_bytes(), leaf.0, proof.clone())
        })
        .await
    }

    /// Whether `account` holds DISPATCHER_ROLE.
    pub async fn is_dispatcher(&self, account: Address) -> Result<bool, ChainError> {
        self.view("hasRole", || {
            self.contract.has_role(dispatcher_role(), to_h160(account))
        })
        .await
    }

    /// Whether `account` holds the admin role (may grant dispatchers).
    pub async fn is_admin(&self, account: Address) -> Result<bool, ChainError> {
        self.view("hasRole", || {
            self.contract.has_role([0u8; 32], to_h160(account))
        })
        .await
    }

    /// Name, symbol, totals and whether the code is the committed artifact's.
    pub async fn info(&self) -> Result<ContractInfo, ChainError> {
        let name = self.view("name", || self.contract.name()).await?;
        let symbol = self.view("symbol", || self.contract.symbol()).await?;
        let decimals = self.view("decimals", || self.contract.decimals()).await?;
        let total_units = self.total_units().await?;
        let code = self
            .contract
            .client()
            .get_code(to_h160(self.address), None)
            .await
            .map_err(|e| map_provider_error(&self.url, &e))?;
        let code_matches_artifact = Artifact::embedded()?.runtime_code()? == code.to_vec();
        Ok(ContractInfo {
            address: self.address,
            chain_id: self.chain_id,
            name,
            symbol,
            decimals,
            total_units,
            code_matches_artifact,
        })
    }

    /// The logs of `filter` between `from` and `to` (inclusive), fetched in pages of `page` blocks
    /// so public RPCs with range limits answer.
    async fn logs_paged(
        &self,
        filter: Filter,
        from: u64,
        to: u64,
        page: u64,
    ) -> Result<Vec<ethers::types::Log>, ChainError> {
        let page = page.max(1);
        let mut out = Vec::new();
        let mut start = from;
        while start <= to {
            let end = to.min(start.saturating_add(page - 1));
            let f = filter.clone().from_block(start).to_block(end);
            let client = self.contract.client();
            let logs = with_retry(self.retry, "eth_getLogs", || {
                let f = f.clone();
                let client = client.clone();
                async move {
                    client
                        .get_logs(&f)
                        .await
                        .map_err(|e| map_provider_error(&self.url, &e))
                }
            })
            .await?;
            out.extend(logs);
            if end == u64::MAX {
                break;
            }
            start = end + 1;
        }
        Ok(out)
    }

    /// Every credit to `wallet` between blocks `from` and `to` (`None` = latest), oldest first:
    /// its `Transfer(0x0, wallet, units)` logs, each joined with the `BatchRecorded` log of the
    /// same transaction.
    pub async fn credit_history(
        &self,
        wallet: Address,
        from: u64,
        to: Option<u64>,
        page: u64,
    ) -> Result<Vec<Credit>, ChainError> {
        let to = match to {
            Some(t) => t,
            None => self.latest_block().await?,
        };
        let transfer = self
            .contract
            .transfer_filter()
            .filter
            .topic1(H256::zero())
            .topic2(H256::from(to_h160(wallet)));
        let logs = self.logs_paged(transfer, from, to, page).await?;
        let block_of = |l: &ethers::types::Log| l.block_number.map_or(0, |b| b.as_u64());
        // One BatchRecorded query over the blocks that hold credits, joined by transaction,
        // instead of a receipt lookup per credit.
        let mut batch_of_tx = std::collections::HashMap::new();
        if let (Some(first), Some(last)) = (logs.first().map(block_of), logs.last().map(block_of)) {
            let batches = self.contract.batch_recorded_filter().filter;
            for l in self.logs_paged(batches, first, last, page).await? {
                if let (Some(tx), Some(id)) = (l.transaction_hash, l.topics.get(1)) {
                    batch_of_tx.insert(tx, BatchId(from_h256(*id)));
                }
            }
        }
        logs.iter()
            .map(|log| {
                Ok(Credit {
                    block: block_of(log),
                    tx: log.transaction_hash.map(from_h256).unwrap_or_default(),
                    units: u256_to_u128(U256::from_big_endian(&log.data), "Transfer value")?,
                    batch: log
                        .transaction_hash
                        .and_then(|tx| batch_of_tx.get(&tx).copied()),
                })
            })
            .collect()
    }

    async fn latest_block(&self) -> Result<u64, ChainError> {
        let client = self.contract.client();
        with_retry(self.retry, "eth_blockNumber", || async {
            client
                .get_block_number()
                .await
                .map_err(|e| map_provider_error(&self.url, &e))
        })
        .await
        .map(|b| b.as_u64())
    }

    /// The transaction and block that recorded `batch`, from its `BatchRecorded` log.
    pub async fn find_batch_tx(
        &self,
        batch: BatchId,
        from_block: u64,
        page: u64,
    ) -> Result<Option<(Hash32, u64)>, ChainError> {
        let latest = self.latest_block().await?;
        let filter = self
            .contract
            .batch_recorded_filter()
            .filter
            .topic1(H256(*batch.as_bytes()));
        let logs = self.logs_paged(filter, from_block, latest, page).await?;
        Ok(logs.first().map(|l| {
            (
                l.transaction_hash.map(from_h256).unwrap_or_default(),
                l.block_number.map_or(0, |b| b.as_u64()),
            )
        }))
    }
}

/// Deploys the committed artifact from `client`'s account (which becomes admin) and grants
/// DISPATCHER_ROLE to each of `grants`.
pub async fn deploy(client: &ChainClient, grants: &[Address]) -> Result<Deployment, ChainError> {
    let code = Artifact::embedded()?.creation_code()?;
    let mined: Mined = client.send("deploy", None, code, decode_revert).await?;
    let address = mined.contract.ok_or_else(|| ChainError::Reverted {
        call: "deploy",
        reason: "the receipt names no contract address".into(),
        tx: Some(mined.tx),
    })?;
    let mut granted = Vec::with_capacity(grants.len());
    for account in grants {
        granted.push(grant_dispatcher(client, address, *account).await?);
    }
    Ok(Deployment {
        address,
        tx: mined.tx,
        block: mined.block,
        chain_id: client.chain_id(),
        gas_used: mined.gas_used,
        granted,
    })
}

/// Grants DISPATCHER_ROLE on `contract` to `account` (no transaction if it already holds it).
/// `client`'s account must hold the admin role.
pub async fn grant_dispatcher(
    client: &ChainClient,
    contract: Address,
    account: Address,
) -> Result<Grant, ChainError> {
    let poc = ProofOfCompute::at(client.url(), contract).await?;
    if poc.is_dispatcher(account).await? {
        return Ok(Grant { account, tx: None });
    }
    if !poc.is_admin(client.address()).await? {
        return Err(ChainError::MissingRole {
            account: client.address(),
            role: "DEFAULT_ADMIN_ROLE",
            contract,
        });
    }
    let data = poc
        .binding()
        .grant_role(dispatcher_role(), to_h160(account))
        .calldata()
        .ok_or_else(|| ChainError::Invalid("encoding grantRole".into()))?;
    let mined = client
        .send("grantRole", Some(contract), data.to_vec(), decode_revert)
        .await?;
    Ok(Grant {
        account,
        tx: Some(mined.tx),
    })
}
