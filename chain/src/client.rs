//! A connection to an EVM JSON-RPC endpoint with a signing key: legacy transactions (XDC takes
//! no EIP-1559), gas estimates with a margin, nonces read from the chain's pending state before
//! every send (so a restart never reuses or skips one), retries with backoff on transport
//! errors, and waiting for N confirmations.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ethers::providers::{Http, Middleware, Provider, ProviderError};
use ethers::signers::{LocalWallet, Signer};
use ethers::types::{
    BlockId, BlockNumber, Bytes as EthBytes, H160, H256, NameOrAddress, TransactionReceipt,
    TransactionRequest, U256, transaction::eip2718::TypedTransaction,
};
use pocmesh_protocol::{Address, Hash32, SecretKey};
use tracing::{debug, info, warn};

use crate::error::ChainError;

/// How transactions are priced, retried and confirmed.
#[derive(Debug, Clone)]
pub struct TxPolicy {
    /// Confirmations to wait for (1 = mined).
    pub confirmations: u64,
    /// Gas limit = estimate × (100 + this) / 100.
    pub gas_margin_percent: u64,
    /// How long to wait for a receipt before giving up (the tx may still land).
    pub receipt_timeout: Duration,
    /// How often to poll for receipts.
    pub poll_interval: Duration,
    /// Retries of an RPC call that failed in transport.
    pub retry: RetryPolicy,
}

impl Default for TxPolicy {
    fn default() -> Self {
        TxPolicy {
            confirmations: 1,
            gas_margin_percent: 25,
            receipt_timeout: Duration::from_secs(120),
            poll_interval: Duration::from_millis(250),
            retry: RetryPolicy::default(),
        }
    }
}

/// Exponential backoff for transport errors.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in all (1 = no retry).
    pub attempts: u32,
    /// First delay.
    pub initial: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            initial: Duration::from_millis(200),
            max: Duration::from_secs(5),
        }
    }
}

/// Converts our address to ethers'.
pub fn to_h160(a: Address) -> H160 {
    H160(a.0)
}

/// Converts ethers' address to ours.
pub fn from_h160(a: H160) -> Address {
    Address(a.0)
}

/// Converts ethers' 32-byte hash to ours.
pub fn from_h256(h: H256) -> Hash32 {
    Hash32(h.0)
}

/// A mined transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mined {
    /// Its hash.
    pub tx: Hash32,
    /// The block it is in.
    pub block: u64,
    /// Gas it used.
    pub gas_used: u64,
    /// The contract it created, for a deployment.
    pub contract: Option<Address>,
}

/// An RPC endpoint plus the key that signs.
#[derive(Clone)]
pub struct ChainClient {
    provider: Arc<Provider<Http>>,
    wallet: LocalWallet,
    url: String,
    chain_id: u64,
    policy: TxPolicy,
}

impl std::fmt::Debug for ChainClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainClient")
            .field("url", &self.url)
            .field("chain_id", &self.chain_id)
            .field("sender", &self.address())
            .finish_non_exhaustive()
    }
}

/// A read-only provider for `url`, with a clear error for a malformed URL.
pub fn provider(url: &str) -> Result<Provider<Http>, ChainError> {
    Provider::<Http>::try_from(url)
        .map(|p| p.interval(Duration::from_millis(250)))
        .map_err(|e| ChainError::Invalid(format!("RPC URL {url:?} is invalid: {e}")))
}

/// Maps an ethers provider error to ours, separating transport trouble from node answers.
pub fn map_provider_error(url: &str, e: &ProviderError) -> ChainError {
    if let ProviderError::JsonRpcClientError(inner) = e
        && let Some(resp) = inner.as_error_response()
    {
        let msg = resp.message.to_lowercase();
        if msg.contains("insufficient funds") {
            return ChainError::InsufficientFunds {
                account: Address::ZERO,
                reason: resp.message.clone(),
            };
        }
        return ChainError::RpcRefused {
            url: url.to_string(),
            reason: resp.message.clone(),
        };
    }
    ChainError::Rpc {
        url: url.to_string(),
        reason: e.to_string(),
    }
}

/// The chain id the node at `url` reports (with retries).
pub async fn chain_id(
    provider: &Provider<Http>,
    url: &str,
    retry: RetryPolicy,
) -> Result<u64, ChainError> {
    let id = with_retry(retry, "eth_chainId", || async {
        provider
            .get_chainid()
            .await
            .map_err(|e| map_provider_error(url, &e))
    })
    .await?;
    Ok(id.as_u64())
}

/// Runs `op` until it succeeds, fails with a non-retryable error, or attempts run out.
pub async fn with_retry<T, F, Fut>(
    policy: RetryPolicy,
    what: &str,
    mut op: F,
) -> Result<T, ChainError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, ChainError>>,
{
    let mut delay = policy.initial;
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_retryable() && attempt < policy.attempts.max(1) => {
                warn!(what, attempt, error = %e, "chain call failed; retrying in {:?}", delay);
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(policy.max);
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

impl ChainClient {
    /// Connects to `url` with `key`, reading the chain id from the node (with retries).
    pub async fn connect(url: &str, key: &SecretKey, policy: TxPolicy) -> Result<Self, ChainError> {
        let provider = Arc::new(provider(url)?);
        let chain_id = chain_id(&provider, url, policy.retry).await?;
        let wallet = LocalWallet::from_bytes(key.to_bytes().as_slice())
            .map_err(|e| ChainError::Invalid(format!("signing key: {e}")))?
            .with_chain_id(chain_id);
        Ok(ChainClient {
            provider,
            wallet,
            url: url.to_string(),
            chain_id,
            policy,
        })
    }

    /// The provider, for reads.
    pub fn provider(&self) -> Arc<Provider<Http>> {
        self.provider.clone()
    }

    /// The RPC URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The chain id reported by the node.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The sending account.
    pub fn address(&self) -> Address {
        from_h160(self.wallet.address())
    }

    /// The transaction policy.
    pub fn policy(&self) -> &TxPolicy {
        &self.policy
    }

    fn err(&self, e: &ProviderError) -> ChainError {
        match map_provider_error(&self.url, e) {
            ChainError::InsufficientFunds { reason, .. } => ChainError::InsufficientFunds {
                account: self.address(),
                reason,
            },
            other => other,
        }
    }

    /// The sender's balance in wei.
    pub async fn balance(&self) -> Result<U256, ChainError> {
        with_retry(self.policy.retry, "eth_getBalance", || async {
            self.provider
                .get_balance(self.wallet.address(), None)
                .await
                .map_err(|e| self.err(&e))
        })
        .await
    }

    /// Estimates, signs and sends a legacy transaction calling `to` (or creating a contract when
    /// `to` is `None`) with `data`, then waits for its receipt and the configured confirmations.
    /// `call` names the operation in errors; `decode_revert` turns revert data into words.
    pub async fn send(
        &self,
        call: &'static str,
        to: Option<Address>,
        data: Vec<u8>,
        decode_revert: fn(&[u8]) -> String,
    ) -> Result<Mined, ChainError> {
        let hash = self.broadcast(call, to, data, decode_revert).await?;
        self.wait_mined(call, hash, decode_revert).await
    }

    /// Estimates, signs and sends a legacy transaction; returns its hash once the node took it.
    pub async fn broadcast(
        &self,
        call: &'static str,
        to: Option<Address>,
        data: Vec<u8>,
        decode_revert: fn(&[u8]) -> String,
    ) -> Result<Hash32, ChainError> {
        self.broadcast_value(call, to, data, U256::zero(), decode_revert)
            .await
    }

    /// Sends `wei` of the chain's coin to `to` (a legacy transaction) and waits until mined.
    pub async fn transfer(&self, to: Address, wei: U256) -> Result<Mined, ChainError> {
        let hash = self
            .broadcast_value("transfer", Some(to), Vec::new(), wei, |_| String::new())
            .await?;
        self.wait_mined("transfer", hash, |_| String::new()).await
    }

    /// As [`ChainClient::broadcast`], with `value` wei attached.
    pub async fn broadcast_value(
        &self,
        call: &'static str,
        to: Option<Address>,
        data: Vec<u8>,
        value: U256,
        decode_revert: fn(&[u8]) -> String,
    ) -> Result<Hash32, ChainError> {
        let from = self.wallet.address();
        let mut req = TransactionRequest::new()
            .from(from)
            .data(EthBytes::from(data))
            .value(value)
            .chain_id(self.chain_id);
        if let Some(to) = to {
            req = req.to(NameOrAddress::Address(to_h160(to)));
        }
        let mut tx: TypedTransaction = req.into();

        let estimate = with_retry(self.policy.retry, "eth_estimateGas", || async {
            match self.provider.estimate_gas(&tx, None).await {
                Ok(g) => Ok(g),
                Err(e) => Err(self.revert_or_err(call, &e, decode_revert)),
            }
        })
        .await?;
        let gas = estimate * U256::from(100 + self.policy.gas_margin_percent) / U256::from(100);
        let gas_price = with_retry(self.policy.retry, "eth_gasPrice", || async {
            self.provider
                .get_gas_price()
                .await
                .map_err(|e| self.err(&e))
        })
        .await?;
        let nonce = with_retry(self.policy.retry, "eth_getTransactionCount", || async {
            self.provider
                .get_transaction_count(from, Some(BlockId::Number(BlockNumber::Pending)))
                .await
                .map_err(|e| self.err(&e))
        })
        .await?;
        tx.set_gas(gas);
        tx.set_gas_price(gas_price);
        tx.set_nonce(nonce);
        let sig = self
            .wallet
            .sign_transaction_sync(&tx)
            .map_err(|e| ChainError::Invalid(format!("signing the transaction: {e}")))?;
        let raw = tx.rlp_signed(&sig);
        let hash = Hash32::keccak(&raw);
        debug!(call, tx = %hash, nonce = %nonce, gas = %gas, gas_price = %gas_price, "sending");
        with_retry(self.policy.retry, "eth_sendRawTransaction", || {
            let raw = raw.clone();
            async move {
                match self.provider.send_raw_transaction(raw).await {
                    Ok(_) => Ok(()),
                    Err(e) => {
                        let mapped = self.err(&e);
                        // A retry after a lost answer finds the node already has it: that's success.
                        if let ChainError::RpcRefused { reason, .. } = &mapped
                            && reason.to_lowercase().contains("already known")
                        {
                            return Ok(());
                        }
                        Err(mapped)
                    }
                }
            }
        })
        .await?;
        info!(call, tx = %hash, "transaction sent");
        Ok(hash)
    }

    /// Waits until `tx` is mined with the configured confirmations; a reverted receipt becomes
    /// [`ChainError::Reverted`] with the reason found by replaying the call.
    pub async fn wait_mined(
        &self,
        call: &'static str,
        tx: Hash32,
        decode_revert: fn(&[u8]) -> String,
    ) -> Result<Mined, ChainError> {
        let started = Instant::now();
        loop {
            if let Some(receipt) = self.receipt(tx).await? {
                let block = receipt.block_number.map_or(0, |b| b.as_u64());
                let latest = self.block_number().await?;
                if latest + 1 >= block + self.policy.confirmations {
                    return self.finish(call, tx, receipt, decode_revert).await;
                }
            }
            if started.elapsed() > self.policy.receipt_timeout {
                return Err(ChainError::Timeout {
                    tx,
                    waited_s: started.elapsed().as_secs(),
                });
            }
            tokio::time::sleep(self.policy.poll_interval).await;
        }
    }

    async fn finish(
        &self,
        call: &'static str,
        tx: Hash32,
        receipt: TransactionReceipt,
        decode_revert: fn(&[u8]) -> String,
    ) -> Result<Mined, ChainError> {
        let block = receipt.block_number.map_or(0, |b| b.as_u64());
        if receipt.status.is_some_and(|s| s.as_u64() == 1) {
            return Ok(Mined {
                tx,
                block,
                gas_used: receipt.gas_used.map_or(0, |g| g.as_u64()),
                contract: receipt.contract_address.map(from_h160),
            });
        }
        // Replay the call at the block before to learn why it reverted.
        let reason = match self.provider.get_transaction(H256(tx.0)).await {
            Ok(Some(t)) => {
                let replay: TypedTransaction = TransactionRequest {
                    from: Some(t.from),
                    to: t.to.map(NameOrAddress::Address),
                    data: Some(t.input.clone()),
                    gas: Some(t.gas),
                    ..Default::default()
                }
                .into();
                let at = BlockId::Number(BlockNumber::Number(block.saturating_sub(1).into()));
                match self.provider.call(&replay, Some(at)).await {
                    Err(e) => revert_data(&e).map_or_else(|| e.to_string(), |d| decode_revert(&d)),
                    Ok(_) => {
                        "reverted (the replayed call succeeds; the state changed in between)".into()
                    }
                }
            }
            _ => "reverted".into(),
        };
        Err(ChainError::Reverted {
            call,
            reason,
            tx: Some(tx),
        })
    }

    /// The receipt of `tx`, if mined.
    pub async fn receipt(&self, tx: Hash32) -> Result<Option<TransactionReceipt>, ChainError> {
        with_retry(self.policy.retry, "eth_getTransactionReceipt", || async {
            self.provider
                .get_transaction_receipt(H256(tx.0))
                .await
                .map_err(|e| self.err(&e))
        })
        .await
    }

    /// Runs a call from this account against the latest state without sending anything
    /// (`eth_call`): `Ok(Ok(return data))`, or `Ok(Err(revert data))` when it reverts (empty
    /// when the node gave no data); transport trouble is an error.
    pub async fn simulate(
        &self,
        to: Address,
        data: Vec<u8>,
    ) -> Result<Result<Vec<u8>, Vec<u8>>, ChainError> {
        let tx: TypedTransaction = TransactionRequest::new()
            .from(self.wallet.address())
            .to(NameOrAddress::Address(to_h160(to)))
            .data(EthBytes::from(data))
            .chain_id(self.chain_id)
            .into();
        with_retry(self.policy.retry, "eth_call", || async {
            match self.provider.call(&tx, None).await {
                Ok(out) => Ok(Ok(out.to_vec())),
                Err(e) => {
                    if let Some(data) = revert_data(&e) {
                        return Ok(Err(data));
                    }
                    match self.err(&e) {
                        ChainError::RpcRefused { reason, .. }
                            if reason.to_lowercase().contains("revert") =>
                        {
                            Ok(Err(Vec::new()))
                        }
                        other => Err(other),
                    }
                }
            }
        })
        .await
    }

    /// The latest block number.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        with_retry(self.policy.retry, "eth_blockNumber", || async {
            self.provider
                .get_block_number()
                .await
                .map(|b| b.as_u64())
                .map_err(|e| self.err(&e))
        })
        .await
    }

    fn revert_or_err(
        &self,
        call: &'static str,
        e: &ProviderError,
        decode_revert: fn(&[u8]) -> String,
    ) -> ChainError {
        if let Some(data) = revert_data(e) {
            return ChainError::Reverted {
                call,
                reason: decode_revert(&data),
                tx: None,
            };
        }
        match self.err(e) {
            ChainError::RpcRefused { reason, .. } if reason.to_lowercase().contains("revert") => {
                ChainError::Reverted {
                    call,
                    reason,
                    tx: None,
                }
            }
            other => other,
        }
    }
}

/// The revert data carried by a JSON-RPC error, if any.
pub fn revert_data(e: &ProviderError) -> Option<Vec<u8>> {
    let ProviderError::JsonRpcClientError(inner) = e else {
        return None;
    };
    let resp = inner.as_error_response()?;
    let data = resp.data.as_ref()?;
    let text = data
        .as_str()
        .or_else(|| data.get("data").and_then(|d| d.as_str()))?;
    pocmesh_protocol::bytes::decode_hex(text).ok()
}
