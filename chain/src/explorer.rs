//! Reads for a built-in block explorer (for devnets and any chain without a public one): a
//! transaction with its `ProofOfCompute` call and events decoded, and a block with its
//! transactions. Only public chain data; nothing here signs.

use ethers::abi::RawLog;
use ethers::contract::EthLogDecode;
use ethers::core::abi::AbiDecode;
use ethers::providers::Middleware;
use ethers::types::{BlockId, H256, U256};
use pocmesh_protocol::{Address, BatchId, Hash32};
use serde::{Deserialize, Serialize};

use crate::bindings::{ProofOfComputeContractCalls, ProofOfComputeContractEvents};
use crate::client::{from_h160, from_h256, map_provider_error, with_retry};
use crate::{ChainError, ProofOfCompute};

/// A `ProofOfCompute` call, decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "function", rename_all = "camelCase")]
pub enum DecodedCall {
    /// `recordBatch(batchId, receiptsRoot, providers, units)`.
    RecordBatch {
        /// The batch id.
        batch_id: BatchId,
        /// The Merkle root of the batch's receipts.
        receipts_root: Hash32,
        /// The wallets credited, one entry each.
        providers: Vec<Address>,
        /// Units per wallet, in the same order (decimal strings: they are uint256).
        units: Vec<String>,
    },
    /// Another function of the contract, by name.
    Other {
        /// The function's name.
        name: String,
    },
}

/// A log, decoded when it is one of the contract's events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event")]
pub enum DecodedEvent {
    /// One recorded batch.
    BatchRecorded {
        /// The batch id.
        batch_id: BatchId,
        /// Who recorded it.
        dispatcher: Address,
        /// The receipts root.
        receipts_root: Hash32,
        /// Receipts committed to.
        entries: String,
        /// Units credited in total.
        units: String,
    },
    /// A credit (`from` = 0x0) or any other ERC-20 transfer.
    Transfer {
        /// From.
        from: Address,
        /// To.
        to: Address,
        /// Units.
        value: String,
    },
    /// A single credit by `recordCompute`.
    ComputeRecorded {
        /// The wallet.
        provider: Address,
        /// Units.
        units: String,
        /// The wallet's total after it.
        total: String,
    },
    /// Any other log (another contract's, or an event not shown here).
    Other {
        /// The emitting contract.
        address: Address,
        /// The first topic (the event's signature hash), if any.
        topic0: Option<Hash32>,
    },
}

/// A transaction as the explorer shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TxView {
    /// Its hash.
    pub hash: Hash32,
    /// The block it is in (`None` while pending).
    pub block: Option<u64>,
    /// Whether it succeeded (`None` while pending).
    pub success: Option<bool>,
    /// Sender.
    pub from: Address,
    /// Recipient (`None` for a contract creation).
    pub to: Option<Address>,
    /// Gas used (`None` while pending).
    pub gas_used: Option<u64>,
    /// The call, decoded when it is to the `ProofOfCompute` contract.
    pub call: Option<DecodedCall>,
    /// Its logs, decoded where they are the contract's events.
    pub events: Vec<DecodedEvent>,
}

/// A block as the explorer shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BlockView {
    /// Its number.
    pub number: u64,
    /// Its hash.
    pub hash: Hash32,
    /// Its timestamp, unix seconds.
    pub timestamp: u64,
    /// Gas used by its transactions.
    pub gas_used: u64,
    /// Its transactions' hashes.
    pub transactions: Vec<Hash32>,
}

fn dec(v: U256) -> String {
    v.to_string()
}

impl ProofOfCompute {
    /// The transaction `hash` with its call and events decoded; `None` if the chain does not
    /// know it.
    pub async fn transaction(&self, hash: Hash32) -> Result<Option<TxView>, ChainError> {
        let client = self.binding().client();
        let url = self.url();
        let h = H256(*hash.as_bytes());
        let tx = with_retry(self.retry(), "eth_getTransactionByHash", || async {
            client
                .get_transaction(h)
                .await
                .map_err(|e| map_provider_error(url, &e))
        })
        .await?;
        let Some(tx) = tx else { return Ok(None) };
        let receipt = with_retry(self.retry(), "eth_getTransactionReceipt", || async {
            client
                .get_transaction_receipt(h)
                .await
                .map_err(|e| map_provider_error(url, &e))
        })
        .await?;
        let to = tx.to.map(from_h160);
        let call = (to == Some(self.address())).then(|| decode_call(&tx.input));
        let events = receipt
            .as_ref()
            .map(|r| r.logs.iter().map(|l| self.decode_log(l)).collect())
            .unwrap_or_default();
        Ok(Some(TxView {
            hash,
            block: tx.block_number.map(|b| b.as_u64()),
            success: receipt
                .as_ref()
                .and_then(|r| r.status)
                .map(|s| s.as_u64() == 1),
            from: from_h160(tx.from),
            to,
            gas_used: receipt
                .as_ref()
                .and_then(|r| r.gas_used)
                .map(|g| g.as_u64()),
            call,
            events,
        }))
    }

    /// Block `number`; `None` past the chain's head.
    pub async fn block(&self, number: u64) -> Result<Option<BlockView>, ChainError> {
        let client = self.binding().client();
        let url = self.url();
        let block = with_retry(self.retry(), "eth_getBlockByNumber", || async {
            client
                .get_block(BlockId::from(number))
                .await
                .map_err(|e| map_provider_error(url, &e))
        })
        .await?;
        Ok(block.map(|b| BlockView {
            number,
            hash: b.hash.map(from_h256).unwrap_or_default(),
            timestamp: b.timestamp.as_u64(),
            gas_used: b.gas_used.as_u64(),
            transactions: b.transactions.into_iter().map(from_h256).collect(),
        }))
    }

    fn decode_log(&self, log: &ethers::types::Log) -> DecodedEvent {
        let other = || DecodedEvent::Other {
            address: from_h160(log.address),
            topic0: log.topics.first().map(|t| from_h256(*t)),
        };
        if from_h160(log.address) != self.address() {
            return other();
        }
        let raw = RawLog {
            topics: log.topics.clone(),
            data: log.data.to_vec(),
        };
        match ProofOfComputeContractEvents::decode_log(&raw) {
            Ok(ProofOfComputeContractEvents::BatchRecordedFilter(e)) => {
                DecodedEvent::BatchRecorded {
                    batch_id: BatchId::from(e.batch_id),
                    dispatcher: from_h160(e.dispatcher),
                    receipts_root: Hash32(e.receipts_root),
                    entries: dec(e.entries),
                    units: dec(e.units),
                }
            }
            Ok(ProofOfComputeContractEvents::TransferFilter(e)) => DecodedEvent::Transfer {
                from: from_h160(e.from),
                to: from_h160(e.to),
                value: dec(e.value),
            },
            Ok(ProofOfComputeContractEvents::ComputeRecordedFilter(e)) => {
                DecodedEvent::ComputeRecorded {
                    provider: from_h160(e.provider),
                    units: dec(e.units),
                    total: dec(e.total),
                }
            }
            _ => other(),
        }
    }
}

/// Decodes calldata to the contract.
fn decode_call(input: &[u8]) -> DecodedCall {
    match ProofOfComputeContractCalls::decode(input) {
        Ok(ProofOfComputeContractCalls::RecordBatch(c)) => DecodedCall::RecordBatch {
            batch_id: BatchId::from(c.batch_id),
            receipts_root: Hash32(c.receipts_root),
            providers: c.providers.into_iter().map(from_h160).collect(),
            units: c.units.into_iter().map(dec).collect(),
        },
        Ok(other) => DecodedCall::Other {
            name: format!("{other:?}")
                .split(['(', ' ', '{'])
                .next()
                .unwrap_or("unknown")
                .to_string(),
        },
        Err(_) => DecodedCall::Other {
            name: "unknown".into(),
        },
    }
}
