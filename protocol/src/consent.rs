//! The consent text a volunteer accepts to run a node, its version and its hash: wire values.
//! Nodes carry the hash in every heartbeat; dispatchers announce the one they require and assign
//! only to nodes on it. Where the acceptance is kept is the node's business (`pocmesh-node`).

use crate::Hash32;

/// Version of [`CONSENT_TEXT`].
pub const CONSENT_VERSION: u32 = 2;

/// What running a pocmesh node means, shown by `pocmesh node run --show-consent`, on a node's
/// first run, and in docs/run-a-node.md.
pub const CONSENT_TEXT: &str = "\
pocmesh node consent, version 2.
By running this node you let dispatchers you trust send it jobs of the types you enable (by
default only hash and wasm).
The node WILL: run `hash` jobs (iterated keccak256) and `wasm` jobs (WebAssembly modules) inside a
sandbox with no access to your files, network, clock or devices, each within hard limits on time,
memory, fuel and output size that you set; publish signed heartbeats (your wallet address, CPU
cores, memory, GPU model if any, enabled job types, free slots, the hash of this text) to the
peer-to-peer mesh; keep a small database of jobs and receipts in its data directory.
Only if you enable the `link_health` or `robots_recheck` job types, the node ALSO makes HTTP checks
from your internet connection: one GET request per job, to a URL (or a site's /robots.txt) that the
dispatcher has allow-listed and that is not on your own deny-list, sent with the user agent
\"pocmesh/<version> (community link checker; +<link to docs/ethical-crawling.md>)\", following at
most 5 redirects, reading at most 1 MiB of the answer (512 KiB for robots.txt) and giving up after
10 seconds (you may set lower limits). It never connects to private, loopback, link-local,
multicast or other non-public addresses: every DNS answer and every redirect is checked first. It
reports the status, the final URL, the time taken and the size (for robots.txt: its hash and
whether pocmesh may fetch the paths asked about), not the pages themselves.
The node will NOT: run native code from the network, read or write files outside its data
directory, open network connections for hash or wasm jobs, send anything but plain GET requests
(no cookies, no credentials, no forms) for HTTP checks, or run anything for a dispatcher you do not
trust.
Compute units for verified work are credited to your wallet on chain. Stop the node (Ctrl-C) at any
time; a node that stops sending heartbeats gets no new work. `pocmesh node opt-out` withdraws a
running node at once: it tells the mesh, hands its running jobs back and takes no new ones until
`pocmesh node opt-in`.";

/// keccak256 of [`CONSENT_TEXT`]: what `--accept-policy` must name and heartbeats carry.
pub fn consent_hash() -> Hash32 {
    Hash32::keccak(CONSENT_TEXT.as_bytes())
}
