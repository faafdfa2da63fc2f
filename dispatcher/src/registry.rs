//! The node registry: what the dispatcher knows about each node — live facts from verified
//! heartbeats, and each node's durable standing with this dispatcher.
//!
//! It owns one [`NodeEntry`] per node address (the heartbeat's `from`): the last announcement,
//! liveness, consent state, network origin, in-flight assignments and the per-minute assignment
//! window; and, apart from those, one [`Standing`] per node that ever took work (trust, audit
//! rate, reliability, exclusion), plus the wallets of excluded nodes. Standings outlive the live
//! entries (pruning forgets who is online, never who cheated) and are written to the store by the
//! engine ([`NodeRegistry::take_dirty`]) and loaded back at start ([`NodeRegistry::load`]).
//!
//! It does not verify signatures (the mesh does that before anything gets here) and it does not
//! choose nodes (that is [`crate::scheduler`], working on [`NodeView`] snapshots). Every method
//! takes the time as `now_ms` (unix milliseconds); nothing reads a clock.
//!
//! The live map is fed by the network, so it is bounded: at most [`RegistryConfig::max_nodes`]
//! entries. A new node arriving when it is full evicts the longest-unseen offline entry, or is
//! dropped when every entry is online ([`RegistryChange::RegistryFull`]). Standings grow only
//! with nodes this dispatcher chose to give work.
//!
//! **Wallets that can never be credited** (the zero address, the contract's own address) are
//! refused where they enter: such a heartbeat registers nothing ([`RegistryChange::RefusedWallet`]).
//!
//! **Opt-out is sticky until a newer heartbeat.** An `opt_out` with seq `s` marks the node opted
//! out unless a heartbeat with a seq strictly above `s` was already seen; it stays opted out until
//! a heartbeat with a seq above every seq seen so far (so above `s`) arrives: the volunteer started
//! the node again and rejoined. An opt-out from a node never seen is kept as an opted-out entry so
//! an older heartbeat delivered late cannot register it.
//!
//! **Excluded wallets.** When a node is excluded, its wallet is marked: any node crediting that
//! wallet — a fresh key costs nothing — has every result checked.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use pocmesh_protocol::{Address, Capabilities, Hash32, Heartbeat, OptOut};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::policy::{Counters, Delivery, Exclusion, Origin, Standing, Trust, VerifySettings};

/// Length of the assignment rate-limit window, milliseconds.
pub const RATE_WINDOW_MS: u64 = 60_000;
/// Most assignment times remembered per node: the highest usable per-minute rate limit.
pub const MAX_RECENT_ASSIGNMENTS: usize = 100_000;
/// Default hard cap on the number of registry entries.
pub const DEFAULT_MAX_NODES: usize = 100_000;
/// Most concurrent job slots a node is believed to have (a node's own cap is 1024).
pub const MAX_SLOTS: u32 = 1024;

/// Settings of the node registry (the dispatcher config's `registry` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RegistryConfig {
    /// How often nodes send heartbeats, milliseconds.
    pub heartbeat_interval_ms: u64,
    /// Missed heartbeat intervals (K) after which a node counts as offline.
    pub offline_after_missed: u32,
    /// Most assignments one node may receive in any minute.
    pub rate_limit_per_minute: u32,
    /// Lowest reliability score (0..=1) a node may have and still be given work (below it, a
    /// node gets one probe job after `verify.cooldown_ms` without a fault).
    pub min_reliability: f64,
    /// Hard cap on the number of nodes remembered.
    pub max_nodes: usize,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            heartbeat_interval_ms: 5_000,
            offline_after_missed: 3,
            rate_limit_per_minute: 6_000,
            min_reliability: 0.5,
            max_nodes: DEFAULT_MAX_NODES,
        }
    }
}

impl RegistryConfig {
    /// Checks every field; the error names the field and what it needs.
    pub fn validate(&self) -> Result<(), String> {
        if self.heartbeat_interval_ms == 0 {
            return Err("registry.heartbeat_interval_ms must be greater than 0".into());
        }
        if self.offline_after_missed == 0 {
            return Err("registry.offline_after_missed must be at least 1".into());
        }
        if self.rate_limit_per_minute == 0
            || self.rate_limit_per_minute as usize > MAX_RECENT_ASSIGNMENTS
        {
            return Err(format!(
                "registry.rate_limit_per_minute must be between 1 and {MAX_RECENT_ASSIGNMENTS}, got {}",
                self.rate_limit_per_minute
            ));
        }
        if !(0.0..=1.0).contains(&self.min_reliability) {
            return Err(format!(
                "registry.min_reliability must be between 0 and 1, got {}",
                self.min_reliability
            ));
        }
        if self.max_nodes == 0 {
            return Err("registry.max_nodes must be at least 1".into());
        }
        Ok(())
    }

    /// How long after its last message a node counts as offline: interval × K, milliseconds.
    pub fn offline_after_ms(&self) -> u64 {
        self.heartbeat_interval_ms
            .saturating_mul(u64::from(self.offline_after_missed))
    }
}

/// What a heartbeat or opt-out did to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistryChange {
    /// A node not known before was added.
    Registered,
    /// A known node's entry was refreshed.
    Refreshed,
    /// An opted-out node sent a newer heartbeat and takes work again.
    Rejoined,
    /// The node is now opted out.
    OptedOut,
    /// Ignored: its seq was not above the last one seen from this node.
    Stale {
        /// The highest seq seen from this node.
        last_seq: u64,
    },
    /// Ignored: the registry is full and no entry is offline to make room.
    RegistryFull,
    /// Ignored: the wallet can never be credited (zero address, the contract's address).
    RefusedWallet,
}

/// A node that the registry does not hold (never seen, pruned or evicted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "node {node} is not in the registry (never seen, pruned or evicted); drop what refers to it"
)]
pub struct UnknownNode {
    /// The address asked about.
    pub node: Address,
}

/// What the registry remembers about one node from its messages.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeEntry {
    /// The node's address (its heartbeats' `from`).
    pub address: Address,
    /// The wallet credited for its work.
    pub wallet: Address,
    /// Its libp2p PeerId, as announced.
    pub peer: String,
    /// Its last announced capabilities.
    pub caps: Capabilities,
    /// Hash of the consent text it accepted.
    pub policy: Hash32,
    /// Its software version.
    pub sw: String,
    /// Highest seq seen from it (heartbeat or opt-out).
    pub last_seq: u64,
    /// When it was first seen, unix ms.
    pub first_seen_ms: u64,
    /// When its last accepted message arrived, unix ms.
    pub last_seen_ms: u64,
    /// Whether the volunteer has opted out (see the module header for the rejoin rule).
    pub opted_out: bool,
    /// Assignments it currently holds.
    pub in_flight: u32,
    recent: VecDeque<u64>,
}

impl NodeEntry {
    fn new(address: Address, wallet: Address, now_ms: u64) -> Self {
        NodeEntry {
            address,
            wallet,
            peer: String::new(),
            caps: Capabilities::default(),
            policy: Hash32::ZERO,
            sw: String::new(),
            last_seq: 0,
            first_seen_ms: now_ms,
            last_seen_ms: now_ms,
            opted_out: false,
            in_flight: 0,
            recent: VecDeque::new(),
        }
    }

    fn apply_heartbeat(&mut self, hb: &Heartbeat, now_ms: u64) {
        self.wallet = hb.wallet;
        self.peer.clone_from(&hb.peer);
        self.caps = hb.caps.clone();
        // A claim, not a fact: no node runs more jobs at once than this.
        self.caps.slots_total = self.caps.slots_total.min(MAX_SLOTS);
        self.policy = hb.policy;
        self.sw.clone_from(&hb.sw);
        self.last_seq = hb.seq;
        self.last_seen_ms = now_ms;
        self.opted_out = false;
    }

    /// Slots it can take now: its total less what this dispatcher gave it.
    pub fn free_slots(&self) -> u32 {
        // Our own count, not the heartbeat's `slots_free`: that one is up to an interval old
        // and already counts the jobs we gave it. Work from other dispatchers shows up as
        // `busy` declines, which cost nothing.
        self.caps.slots_total.saturating_sub(self.in_flight)
    }

    /// Assignments given to it in the [`RATE_WINDOW_MS`] before `now_ms`.
    pub fn assignments_in_window(&self, now_ms: u64) -> u32 {
        // Times are pushed in order, so the ones still in the window are a suffix.
        let old = self
            .recent
            .partition_point(|&t| now_ms.saturating_sub(t) >= RATE_WINDOW_MS);
        let n = self.recent.len() - old;
        u32::try_from(n).unwrap_or(u32::MAX)
    }
}

/// A plain copy of one node's state at one moment, for the scheduler and the HTTP API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NodeView {
    /// The node's address.
    pub address: Address,
    /// The wallet credited for its work.
    pub wallet: Address,
    /// Its libp2p PeerId.
    pub peer: String,
    /// Whether it is online (recent message, not opted out).
    pub online: bool,
    /// When it was first seen, unix ms.
    pub first_seen_ms: u64,
    /// When its last accepted message arrived, unix ms.
    pub last_seen_ms: u64,
    /// Its last announced capabilities.
    pub caps: Capabilities,
    /// Hash of the consent text it accepted.
    pub policy: Hash32,
    /// Whether that is the consent text this dispatcher requires (filled in by the engine).
    #[serde(default)]
    pub policy_current: bool,
    /// Its software version.
    pub sw: String,
    /// Where its connection comes from (IPv4 /24, IPv6 /48), if known.
    #[serde(default)]
    pub origin: Option<Origin>,
    /// Whether the volunteer has opted out.
    pub opted_out: bool,
    /// Whether it is excluded for results proven wrong.
    pub excluded: bool,
    /// Why it was excluded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusion: Option<Exclusion>,
    /// Where it stands in the trust scheme (probation, trusted, excluded).
    #[serde(flatten)]
    pub trust: Trust,
    /// Share of its results the dispatcher re-executes now.
    pub audit_rate: f64,
    /// Whether its wallet belongs to an excluded node (every result checked).
    #[serde(default)]
    pub wallet_flagged: bool,
    /// Its reliability score (delivery, 0 to 1).
    pub reliability: f64,
    /// Whether its reliability lets it take work now (at the minimum, or a probe is due).
    pub may_take_work: bool,
    /// Assignments it currently holds.
    pub in_flight: u32,
    /// Its results waiting for a verdict (filled in by the engine).
    #[serde(default)]
    pub unverified: u32,
    /// Slots it can take now.
    pub free_slots: u32,
    /// Assignments given to it in the last minute.
    pub assignments_last_minute: u32,
    /// How its assignments have ended.
    pub counters: Counters,
}

/// Standings and wallet marks changed since the last [`NodeRegistry::take_dirty`].
#[derive(Debug, Default)]
pub struct DirtyStandings {
    /// Node standings to write.
    pub nodes: Vec<(Address, Standing)>,
    /// Wallets newly marked.
    pub wallets: Vec<(Address, Exclusion)>,
}

/// The dispatcher's table of nodes, keyed by node address.
#[derive(Debug, Clone)]
pub struct NodeRegistry {
    config: RegistryConfig,
    verify: VerifySettings,
    /// Wallets no heartbeat may name besides the zero address (the contract's own).
    refused_wallets: Vec<Address>,
    nodes: BTreeMap<Address, NodeEntry>,
    standings: HashMap<Address, Standing>,
    flagged_wallets: HashMap<Address, Exclusion>,
    origins: HashMap<Address, Origin>,
    dirty_nodes: HashSet<Address>,
    dirty_wallets: Vec<(Address, Exclusion)>,
}

impl NodeRegistry {
    /// An empty registry; `config` should have passed [`RegistryConfig::validate`].
    pub fn new(config: RegistryConfig) -> Self {
        Self::with_policy(config, VerifySettings::default(), Vec::new())
    }

    /// An empty registry with the verification policy's settings and the wallets to refuse.
    pub fn with_policy(
        config: RegistryConfig,
        verify: VerifySettings,
        refused_wallets: Vec<Address>,
    ) -> Self {
        NodeRegistry {
            config,
            verify,
            refused_wallets,
            nodes: BTreeMap::new(),
            standings: HashMap::new(),
            flagged_wallets: HashMap::new(),
            origins: HashMap::new(),
            dirty_nodes: HashSet::new(),
            dirty_wallets: Vec::new(),
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Loads stored standings and wallet marks (at start).
    pub fn load(
        &mut self,
        standings: impl IntoIterator<Item = (Address, Standing)>,
        wallets: impl IntoIterator<Item = (Address, Exclusion)>,
    ) {
        self.standings.extend(standings);
        self.flagged_wallets.extend(wallets);
    }

    /// Whether a wallet can be credited at all.
    pub fn wallet_refused(&self, wallet: &Address) -> bool {
        *wallet == Address::ZERO || self.refused_wallets.contains(wallet)
    }

    /// Applies a verified heartbeat from `from`; ignores any seq not above the last one seen.
    pub fn on_heartbeat(&mut self, from: Address, hb: &Heartbeat, now_ms: u64) -> RegistryChange {
        if self.wallet_refused(&hb.wallet) {
            return RegistryChange::RefusedWallet;
        }
        if let Some(entry) = self.nodes.get_mut(&from) {
            if hb.seq <= entry.last_seq {
                return RegistryChange::Stale {
                    last_seq: entry.last_seq,
                };
            }
            let was_opted_out = entry.opted_out;
            entry.apply_heartbeat(hb, now_ms);
            if was_opted_out {
                info!(node = %from, seq = hb.seq, "opted-out node rejoined");
                return RegistryChange::Rejoined;
            }
            return RegistryChange::Refreshed;
        }
        if !self.make_room(now_ms) {
            return RegistryChange::RegistryFull;
        }
        let mut entry = NodeEntry::new(from, hb.wallet, now_ms);
        entry.apply_heartbeat(hb, now_ms);
        self.nodes.insert(from, entry);
        RegistryChange::Registered
    }

    /// Applies a verified opt-out from `from`; honoured unless a newer heartbeat was already seen.
    pub fn on_opt_out(&mut self, from: Address, opt_out: &OptOut, now_ms: u64) -> RegistryChange {
        if let Some(entry) = self.nodes.get_mut(&from) {
            // Equal seq is honoured: erring towards "no work" is the safe side for a volunteer.
            if opt_out.seq < entry.last_seq {
                return RegistryChange::Stale {
                    last_seq: entry.last_seq,
                };
            }
            entry.last_seq = opt_out.seq;
            entry.last_seen_ms = now_ms;
            entry.opted_out = true;
        } else {
            if !self.make_room(now_ms) {
                return RegistryChange::RegistryFull;
            }
            let mut entry = NodeEntry::new(from, opt_out.wallet, now_ms);
            entry.last_seq = opt_out.seq;
            entry.opted_out = true;
            self.nodes.insert(from, entry);
        }
        info!(node = %from, seq = opt_out.seq, "node opted out");
        RegistryChange::OptedOut
    }

    /// Notes where `node`'s connection comes from.
    pub fn on_origin(&mut self, node: Address, origin: Origin) {
        if self.origins.len() >= self.config.max_nodes.max(1) && !self.origins.contains_key(&node) {
            // Fed by every connection: keep the live nodes' origins and drop the rest.
            let nodes = &self.nodes;
            self.origins.retain(|a, _| nodes.contains_key(a));
            if self.origins.len() >= self.config.max_nodes.max(1) {
                return;
            }
        }
        self.origins.insert(node, origin);
    }

    /// Notes that `node` was given an assignment: one more in flight and in the rate window.
    pub fn record_assignment(&mut self, node: Address, now_ms: u64) -> Result<(), UnknownNode> {
        let entry = self.entry_mut(node)?;
        entry.in_flight = entry.in_flight.saturating_add(1);
        while entry
            .recent
            .front()
            .is_some_and(|&t| now_ms.saturating_sub(t) >= RATE_WINDOW_MS)
        {
            entry.recent.pop_front();
        }
        if entry.recent.len() >= MAX_RECENT_ASSIGNMENTS {
            entry.recent.pop_front();
        }
        entry.recent.push_back(now_ms);
        Ok(())
    }

    /// Notes that `node` no longer holds one assignment (finished, declined, lease lost).
    pub fn release(&mut self, node: Address) -> Result<(), UnknownNode> {
        let entry = self.entry_mut(node)?;
        entry.in_flight = entry.in_flight.saturating_sub(1);
        Ok(())
    }

    /// A node's standing (the default for a node that never took work).
    pub fn standing(&self, node: &Address) -> Standing {
        self.standings.get(node).cloned().unwrap_or_default()
    }

    fn standing_mut(&mut self, node: Address, now_ms: u64) -> &mut Standing {
        self.dirty_nodes.insert(node);
        self.standings.entry(node).or_insert_with(|| Standing {
            since_ms: now_ms,
            ..Standing::default()
        })
    }

    /// How one delivery of `node` ended.
    pub fn record_delivery(&mut self, node: Address, delivery: Delivery, now_ms: u64) {
        self.standing_mut(node, now_ms)
            .on_delivery(delivery, now_ms);
    }

    /// One of `node`'s results, worth `units`, was accepted (`checked`: re-executed or
    /// independently agreed; `audited`: re-executed).
    pub fn record_accepted(
        &mut self,
        node: Address,
        checked: bool,
        audited: bool,
        units: u64,
        now_ms: u64,
    ) {
        let s = self.standing_mut(node, now_ms);
        s.on_accepted(checked, units);
        if audited {
            s.counters.audited = s.counters.audited.saturating_add(1);
        }
    }

    /// One of `node`'s results was proven wrong; returns true when this excluded it (its
    /// wallet is then flagged too: nodes of that wallet that start working afterwards stay
    /// fully checked, so a fresh key buys the cheater nothing; nodes already working for it are
    /// left alone, so naming someone else's wallet cannot make their nodes suspect).
    pub fn record_wrong(
        &mut self,
        node: Address,
        wallet: Address,
        reason: &str,
        now_ms: u64,
    ) -> bool {
        let verify = self.verify.clone();
        let excluded = self
            .standing_mut(node, now_ms)
            .on_wrong(reason, now_ms, &verify);
        if excluded {
            warn!(%node, %wallet, reason, "node excluded: result proven wrong");
            if wallet != Address::ZERO && !self.flagged_wallets.contains_key(&wallet) {
                let mark = Exclusion {
                    reason: format!("node {node} was excluded: {reason}"),
                    at_ms: now_ms,
                };
                self.flagged_wallets.insert(wallet, mark.clone());
                self.dirty_wallets.push((wallet, mark));
            }
        }
        excluded
    }

    /// The share of results worth `units` of `node` (crediting `wallet`) the dispatcher
    /// re-executes now.
    pub fn audit_rate(&self, node: &Address, wallet: &Address, units: u64) -> f64 {
        let Some(standing) = self.standings.get(node) else {
            return 1.0;
        };
        let flagged_before = self
            .flagged_wallets
            .get(wallet)
            .is_some_and(|flag| flag.at_ms <= standing.since_ms);
        if flagged_before {
            return 1.0;
        }
        standing.audit_rate(units, &self.verify)
    }

    /// Whether `node` is excluded.
    pub fn is_excluded(&self, node: &Address) -> bool {
        self.standings
            .get(node)
            .is_some_and(|s| s.excluded.is_some())
    }

    /// Where `node`'s connection comes from, if known.
    pub fn origin(&self, node: &Address) -> Option<Origin> {
        self.origins.get(node).copied()
    }

    /// Standings and wallet marks changed since the last call, for the store.
    pub fn take_dirty(&mut self) -> DirtyStandings {
        let nodes = self
            .dirty_nodes
            .drain()
            .filter_map(|a| self.standings.get(&a).map(|s| (a, s.clone())))
            .collect();
        DirtyStandings {
            nodes,
            wallets: std::mem::take(&mut self.dirty_wallets),
        }
    }

    /// Whether `entry` is online: not opted out, and heard from within K heartbeat intervals.
    pub fn is_online(&self, entry: &NodeEntry, now_ms: u64) -> bool {
        !entry.opted_out
            && now_ms.saturating_sub(entry.last_seen_ms) <= self.config.offline_after_ms()
    }

    /// A view of every node, in address order.
    pub fn snapshot(&self, now_ms: u64) -> Vec<NodeView> {
        self.nodes.values().map(|e| self.view(e, now_ms)).collect()
    }

    /// A view of one node, if known.
    pub fn view_of(&self, node: &Address, now_ms: u64) -> Option<NodeView> {
        self.nodes.get(node).map(|e| self.view(e, now_ms))
    }

    /// The entry of one node, if known.
    pub fn get(&self, node: &Address) -> Option<&NodeEntry> {
        self.nodes.get(node)
    }

    /// Number of nodes remembered.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node is remembered.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Number of nodes online at `now_ms`.
    pub fn online_count(&self, now_ms: u64) -> usize {
        self.nodes
            .values()
            .filter(|e| self.is_online(e, now_ms))
            .count()
    }

    /// Number of nodes excluded (all time).
    pub fn excluded_count(&self) -> usize {
        self.standings
            .values()
            .filter(|s| s.excluded.is_some())
            .count()
    }

    /// Forgets offline nodes not heard from for more than `forget_after_ms`; returns how many.
    /// Their standings stay.
    pub fn prune(&mut self, now_ms: u64, forget_after_ms: u64) -> usize {
        let before = self.nodes.len();
        let offline_after = self.config.offline_after_ms();
        self.nodes.retain(|_, e| {
            let quiet = now_ms.saturating_sub(e.last_seen_ms);
            let online = !e.opted_out && quiet <= offline_after;
            online || quiet <= forget_after_ms
        });
        let nodes = &self.nodes;
        self.origins.retain(|a, _| nodes.contains_key(a));
        before - self.nodes.len()
    }

    fn view(&self, e: &NodeEntry, now_ms: u64) -> NodeView {
        let standing = self.standing(&e.address);
        NodeView {
            address: e.address,
            wallet: e.wallet,
            peer: e.peer.clone(),
            online: self.is_online(e, now_ms),
            first_seen_ms: e.first_seen_ms,
            last_seen_ms: e.last_seen_ms,
            caps: e.caps.clone(),
            policy: e.policy,
            policy_current: false,
            sw: e.sw.clone(),
            origin: self.origin(&e.address),
            opted_out: e.opted_out,
            excluded: standing.excluded.is_some(),
            exclusion: standing.excluded.clone(),
            trust: standing.trust(&self.verify),
            audit_rate: self.audit_rate(&e.address, &e.wallet, standing.max_checked_units),
            wallet_flagged: self.flagged_wallets.contains_key(&e.wallet),
            reliability: standing.reliability,
            may_take_work: standing.may_take_work(
                self.config.min_reliability,
                now_ms,
                &self.verify,
            ),
            in_flight: e.in_flight,
            unverified: 0,
            free_slots: e.free_slots(),
            assignments_last_minute: e.assignments_in_window(now_ms),
            counters: standing.counters,
        }
    }

    fn entry_mut(&mut self, node: Address) -> Result<&mut NodeEntry, UnknownNode> {
        self.nodes.get_mut(&node).ok_or(UnknownNode { node })
    }

    /// Makes room for one new entry; false when full and every entry is online.
    fn make_room(&mut self, now_ms: u64) -> bool {
        if self.nodes.len() < self.config.max_nodes.max(1) {
            return true;
        }
        // A linear scan, only when full: cheaper overall than keeping a second index current.
        let victim = self
            .nodes
            .values()
            .filter(|e| !self.is_online(e, now_ms))
            .min_by_key(|e| (e.last_seen_ms, e.address))
            .map(|e| e.address);
        match victim {
            Some(addr) => {
                self.nodes.remove(&addr);
                true
            }
            None => {
                warn!(
                    max_nodes = self.config.max_nodes,
                    "node registry full of online nodes; new node ignored"
                );
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RegistryChange::{
        OptedOut, Refreshed, RefusedWallet, Registered, RegistryFull, Rejoined, Stale,
    };
    use super::*;
    use pocmesh_protocol::JobType;

    const K_MS: u64 = 15_000; // default interval 5 s × K = 3

    fn addr(n: u8) -> Address {
        Address([n; 20])
    }

    fn hb(seq: u64) -> Heartbeat {
        let caps = Capabilities {
            cores: 4,
            mem_mb: 2048,
            gpu: None,
            job_types: vec![JobType::Hash],
            slots_total: 4,
            slots_free: 3,
            receipts_batch: 0,
            jobs_batch: 0,
        };
        let (peer, policy, sw) = ("12D3KooW".into(), Hash32::keccak(b"v1"), "0.1.0".into());
        Heartbeat {
            seq,
            wallet: addr(200),
            peer,
            caps,
            policy,
            sw,
        }
    }

    fn beat(r: &mut NodeRegistry, node: u8, seq: u64, now_ms: u64) -> RegistryChange {
        r.on_heartbeat(addr(node), &hb(seq), now_ms)
    }

    fn opt_out(r: &mut NodeRegistry, node: u8, seq: u64, now_ms: u64) -> RegistryChange {
        r.on_opt_out(
            addr(node),
            &OptOut {
                wallet: addr(200),
                seq,
            },
            now_ms,
        )
    }

    fn entry(r: &NodeRegistry, node: u8) -> &NodeEntry {
        r.get(&addr(node)).expect("node is registered")
    }

    fn registry() -> NodeRegistry {
        NodeRegistry::new(RegistryConfig::default())
    }

    #[test]
    fn online_until_k_intervals_are_missed() {
        let mut r = registry();
        assert_eq!(beat(&mut r, 1, 1, 1_000), Registered);
        assert!(r.is_online(entry(&r, 1), 1_000));
        assert!(r.is_online(entry(&r, 1), 1_000 + K_MS));
        assert!(!r.is_online(entry(&r, 1), 1_000 + K_MS + 1));
        assert_eq!(r.online_count(1_000 + K_MS), 1);
        assert_eq!(r.online_count(1_000 + K_MS + 1), 0);
        assert!(!r.snapshot(1_000 + K_MS + 1)[0].online);
    }

    #[test]
    fn heartbeats_move_last_seen_and_keep_first_seen() {
        let mut r = registry();
        beat(&mut r, 1, 1, 1_000);
        assert_eq!(beat(&mut r, 1, 2, 4_000), Refreshed);
        let e = entry(&r, 1);
        assert_eq!(
            (e.first_seen_ms, e.last_seen_ms, e.last_seq),
            (1_000, 4_000, 2)
        );
        assert!(r.is_online(e, 4_000 + K_MS));
    }

    #[test]
    fn old_or_repeated_seq_changes_nothing() {
        let mut r = registry();
        beat(&mut r, 1, 5, 1_000);
        let mut changed = hb(5);
        changed.caps.slots_free = 0;
        assert_eq!(
            r.on_heartbeat(addr(1), &changed, 2_000),
            Stale { last_seq: 5 }
        );
        changed.seq = 3;
        assert_eq!(
            r.on_heartbeat(addr(1), &changed, 2_000),
            Stale { last_seq: 5 }
        );
        assert_eq!(
            (entry(&r, 1).last_seen_ms, entry(&r, 1).caps.slots_free),
            (1_000, 3)
        );
        changed.seq = 6;
        assert_eq!(r.on_heartbeat(addr(1), &changed, 3_000), Refreshed);
        assert_eq!(entry(&r, 1).caps.slots_free, 0);
    }

    #[test]
    fn opt_out_sticks_until_a_newer_heartbeat() {
        let mut r = registry();
        beat(&mut r, 1, 1, 1_000);
        assert_eq!(opt_out(&mut r, 1, 2, 2_000), OptedOut);
        assert!(entry(&r, 1).opted_out);
        assert_eq!(r.online_count(2_000), 0);
        // A heartbeat at or below the opt-out's seq (delayed, replayed) does not bring it back.
        assert_eq!(beat(&mut r, 1, 2, 2_500), Stale { last_seq: 2 });
        assert!(r.snapshot(2_500)[0].opted_out);
        assert_eq!(beat(&mut r, 1, 3, 3_000), Rejoined);
        assert!(!entry(&r, 1).opted_out);
        assert_eq!(r.online_count(3_000), 1);
    }

    #[test]
    fn opt_out_older_than_the_last_heartbeat_is_ignored_equal_is_honoured() {
        let mut r = registry();
        beat(&mut r, 1, 5, 1_000);
        assert_eq!(opt_out(&mut r, 1, 4, 2_000), Stale { last_seq: 5 });
        assert!(!entry(&r, 1).opted_out);
        assert_eq!(opt_out(&mut r, 1, 5, 2_000), OptedOut);
        assert!(entry(&r, 1).opted_out);
    }

    #[test]
    fn opt_out_from_an_unknown_node_blocks_its_older_heartbeats() {
        let mut r = registry();
        assert_eq!(opt_out(&mut r, 1, 10, 1_000), OptedOut);
        assert_eq!(beat(&mut r, 1, 9, 1_100), Stale { last_seq: 10 });
        assert!(entry(&r, 1).opted_out);
        assert_eq!(r.online_count(1_100), 0);
    }

    #[test]
    fn a_wrong_result_excludes_and_flags_the_wallet_and_standings_survive_pruning() {
        let mut r = registry();
        beat(&mut r, 1, 1, 0);
        beat(&mut r, 2, 1, 0);
        assert_eq!(r.snapshot(0)[0].trust, Trust::Probation { remaining: 50 });
        assert_eq!(r.audit_rate(&addr(1), &addr(200), 1), 1.0);
        for t in 0..50 {
            r.record_accepted(addr(1), true, true, 1, t);
            r.record_accepted(addr(2), true, true, 1, t);
        }
        for t in 50..2_000 {
            r.record_accepted(addr(2), false, false, 1, t);
        }
        assert_eq!(r.snapshot(0)[0].trust, Trust::Trusted);
        assert!(!r.snapshot(0)[0].excluded);
        assert!(r.record_wrong(addr(1), addr(200), "differs from the re-execution", 5_000));
        let v = &r.snapshot(0)[0];
        assert!(v.excluded && v.wallet_flagged);
        assert_eq!(v.counters.rejected, 1);
        assert_eq!(v.exclusion.as_ref().map(|e| e.at_ms), Some(5_000));
        // A node of that wallet already working before the flag keeps its standing (naming a
        // victim's wallet makes no suspect of the victim's nodes)...
        assert_eq!(r.audit_rate(&addr(2), &addr(200), 1), 0.05);
        // ...a key that starts working for it afterwards is checked on every result.
        for t in 6_000..8_000 {
            r.record_accepted(addr(3), true, true, 1, t);
        }
        assert_eq!(r.audit_rate(&addr(3), &addr(200), 1), 1.0);
        assert_eq!(r.audit_rate(&addr(3), &addr(201), 1), 0.05);
        let dirty = r.take_dirty();
        assert_eq!(dirty.nodes.len(), 3);
        assert_eq!(dirty.wallets.len(), 1);
        assert!(r.take_dirty().nodes.is_empty(), "taken once");
        // Forgetting the live entry keeps the standing.
        assert_eq!(r.prune(100_000_000, 1_000), 2);
        assert!(r.is_excluded(&addr(1)));
        // And a registry loaded from the store knows it.
        let mut fresh = registry();
        fresh.load(dirty.nodes, dirty.wallets);
        beat(&mut fresh, 1, 9, 0);
        assert!(fresh.snapshot(0)[0].excluded);
        assert_eq!(fresh.audit_rate(&addr(3), &addr(200), 1), 1.0);
    }

    #[test]
    fn a_claimed_slot_count_is_capped() {
        let mut r = registry();
        let mut greedy = hb(1);
        greedy.caps.slots_total = u32::MAX;
        r.on_heartbeat(addr(1), &greedy, 0);
        assert_eq!(r.snapshot(0)[0].caps.slots_total, MAX_SLOTS);
    }

    #[test]
    fn wallets_that_can_never_be_credited_register_nothing() {
        let contract = addr(77);
        let mut r = NodeRegistry::with_policy(
            RegistryConfig::default(),
            VerifySettings::default(),
            vec![contract],
        );
        let mut zero = hb(1);
        zero.wallet = Address::ZERO;
        assert_eq!(r.on_heartbeat(addr(1), &zero, 0), RefusedWallet);
        let mut own = hb(1);
        own.wallet = contract;
        assert_eq!(r.on_heartbeat(addr(1), &own, 0), RefusedWallet);
        assert!(r.is_empty());
        assert_eq!(r.on_heartbeat(addr(1), &hb(1), 0), Registered);
    }

    #[test]
    fn delivery_outcomes_move_reliability_and_a_probe_follows_the_cooldown() {
        let mut r = registry();
        beat(&mut r, 1, 1, 0);
        for t in 1..=8 {
            r.record_delivery(addr(1), Delivery::Timeout, t);
        }
        let v = &r.snapshot(8)[0];
        assert!(v.reliability < 0.5 && !v.may_take_work, "{}", v.reliability);
        assert_eq!(v.counters.timeouts, 8);
        assert!(r.snapshot(8 + 60_000)[0].may_take_work);
    }

    #[test]
    fn origins_are_remembered_for_live_nodes() {
        let mut r = registry();
        beat(&mut r, 1, 1, 0);
        let o = Origin::of("203.0.113.4".parse().expect("ip"));
        r.on_origin(addr(1), o);
        assert_eq!(r.snapshot(0)[0].origin, Some(o));
        r.prune(100_000_000, 1_000);
        assert_eq!(r.origin(&addr(1)), None);
    }

    #[test]
    fn rate_window_counts_the_last_minute_and_in_flight_is_tracked() {
        let mut r = registry();
        beat(&mut r, 1, 1, 0);
        for t in [0, 10_000, 59_999] {
            r.record_assignment(addr(1), t).expect("known");
        }
        let count_at = |now| r.snapshot(now)[0].assignments_last_minute;
        assert_eq!(count_at(59_999), 3);
        assert_eq!(count_at(60_000), 2); // t = 0 left the window
        assert_eq!(count_at(70_000), 1);
        assert_eq!(count_at(119_999), 0);
        let v = &r.snapshot(0)[0];
        assert_eq!((v.in_flight, v.free_slots), (3, 1)); // 4 total - 3 held
        for _ in 0..5 {
            r.release(addr(1)).expect("known");
        }
        let v = &r.snapshot(0)[0];
        // All 4: the heartbeat's stale `slots_free` (3) is not used.
        assert_eq!((v.in_flight, v.free_slots), (0, 4));
        assert!(r.record_assignment(addr(9), 0).is_err());
    }

    #[test]
    fn rate_window_memory_is_bounded() {
        let mut r = registry();
        beat(&mut r, 1, 1, 0);
        for _ in 0..MAX_RECENT_ASSIGNMENTS + 10 {
            r.record_assignment(addr(1), 5).expect("known");
        }
        assert_eq!(entry(&r, 1).recent.len(), MAX_RECENT_ASSIGNMENTS);
        assert_eq!(
            entry(&r, 1).assignments_in_window(5) as usize,
            MAX_RECENT_ASSIGNMENTS
        );
    }

    #[test]
    fn a_full_registry_evicts_the_longest_unseen_offline_node() {
        let mut r = NodeRegistry::new(RegistryConfig {
            max_nodes: 2,
            ..Default::default()
        });
        beat(&mut r, 1, 1, 0);
        beat(&mut r, 2, 1, 1_000);
        assert_eq!(beat(&mut r, 3, 1, 2_000), RegistryFull);
        assert_eq!(r.len(), 2);
        // Both went offline; node 2 was seen later, so node 1 goes.
        assert_eq!(beat(&mut r, 3, 1, 1_000 + K_MS + 1), Registered);
        assert_eq!(r.len(), 2);
        assert!(r.get(&addr(1)).is_none());
        assert!(r.get(&addr(2)).is_some() && r.get(&addr(3)).is_some());
    }

    #[test]
    fn prune_forgets_long_unseen_nodes_only() {
        let mut r = registry();
        beat(&mut r, 1, 1, 0);
        beat(&mut r, 2, 1, 500_000);
        assert_eq!(r.prune(600_000, 300_000), 1);
        assert!(r.get(&addr(1)).is_none() && r.get(&addr(2)).is_some());
    }

    #[test]
    fn config_defaults_parse_and_validate() {
        let c: RegistryConfig =
            serde_json::from_str(r#"{"offline_after_missed": 5}"#).expect("parses");
        assert_eq!(
            (c.offline_after_missed, c.heartbeat_interval_ms),
            (5, 5_000)
        );
        assert!(c.validate().is_ok());
        assert!(serde_json::from_str::<RegistryConfig>(r#"{"ofline_after_missed": 5}"#).is_err());
        let nan = RegistryConfig {
            min_reliability: f64::NAN,
            ..Default::default()
        };
        assert!(nan.validate().expect_err("nan").contains("min_reliability"));
        let zero = RegistryConfig {
            rate_limit_per_minute: 0,
            ..Default::default()
        };
        assert!(zero.validate().is_err());
    }

    #[test]
    fn node_view_serializes_addresses_as_text() {
        let mut r = registry();
        r.on_heartbeat(addr(0xab), &hb(1), 0);
        let json = serde_json::to_value(&r.snapshot(0)[0]).expect("serializes");
        assert_eq!(json["address"], addr(0xab).to_string());
        assert_eq!(json["caps"]["job_types"][0], "hash");
        assert_eq!(json["counters"]["rejected"], 0);
    }
}
