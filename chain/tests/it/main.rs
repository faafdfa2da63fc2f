//! Chain tests against a real anvil (EVM paris, legacy transactions): roles, batches,
//! Merkle receipts checked by the contract, the ERC-20 view, and reads.

mod batches;
mod erc20;
mod merkle;
mod support;
