//! The consent text a volunteer accepts by running a node, and its hash (the heartbeat's
//! `policy`). Dispatchers may require a given hash; a change of text is a new version.

use pocmesh_protocol::Hash32;

/// Version of [`CONSENT_TEXT`].
pub const CONSENT_VERSION: u32 = 1;

/// What running a pocmesh node means, shown by `pocmesh node run --show-consent` and in
/// docs/run-a-node.md.
pub const CONSENT_TEXT: &str = "\
pocmesh node consent, version 1.
By running this node you let dispatchers you trust send it compute jobs.
The node WILL: run `hash` jobs (iterated keccak256) and `wasm` jobs (WebAssembly modules) inside a
sandbox with no access to your files, network, clock or devices, each within hard limits on time,
memory, fuel and output size that you set; publish signed heartbeats (your wallet address, CPU
cores, memory, GPU model if any, enabled job types, free slots) to the peer-to-peer mesh; keep a
small database of jobs and receipts in its data directory.
The node will NOT: run native code from the network, read or write files outside its data
directory, open network connections for jobs, or run anything for a dispatcher you do not trust.
Compute units for verified work are credited to your wallet on chain. Stop the node (Ctrl-C) at any
time; a node that stops sending heartbeats gets no new work.";

/// keccak256 of [`CONSENT_TEXT`]: the `policy` of every heartbeat.
pub fn consent_hash() -> Hash32 {
    Hash32::keccak(CONSENT_TEXT.as_bytes())
}
