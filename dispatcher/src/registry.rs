//! The node registry: what the dispatcher knows about each node, built from verified heartbeats.
//!
//! It owns one [`NodeEntry`] per node address (the heartbeat's `from`): the last announcement,
//! liveness, consent state, reliability counters, in-flight assignments and the per-minute
//! assignment window. It does not verify signatures (the mesh does that before anything gets
//! here) and it does not choose nodes (that is [`crate::scheduler`], working on [`NodeView`]
//! snapshots). Every method takes the time as `now_ms` (unix milliseconds); nothing reads a clock.
//!
//! The map is fed by the network, so it is bounded: at most [`RegistryConfig::max_nodes`]
//! entries. A new node arriving when it is full evicts the longest-unseen offline entry, or is
//! dropped when every entry is online ([`RegistryChange::RegistryFull`]).
//!
//! **Opt-out is sticky until a newer heartbeat.** An `opt_out` with seq `s` marks the node opted
//! out unless a heartbeat with a seq strictly above `s` was already seen; it stays opted out until
//! a heartbeat with a seq above every seq seen so far (so above `s`) arrives: the volunteer started
//! the node again and rejoined. An opt-out from a node never seen is kept as an opted-out entry so
//! an older heartbeat delivered late cannot register it.
//!
//! **Reliability** is a smoothed success ratio with a prior of two successes in three trials:
//! `(successes + 2) / (successes + failures + timeouts + 4·rejected + declines/4 + 3)`.
//! A new node scores 0.67; a rejected result weighs four times a failure, because it means a wrong
//! answer rather than a missing one; a decline weighs a quarter, because declining is the
//! volunteer's right but a node that advertises capacity and keeps declining wastes offers.

use std::collections::{BTreeMap, VecDeque};

use pocmesh_protocol::{Address, Capabilities, Hash32, Heartbeat, OptOut};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// Length of the assignment rate-limit window, milliseconds.
pub const RATE_WINDOW_MS: u64 = 60_000;
/// Most assignment times remembered per node: the highest usable per-minute rate limit.
pub const MAX_RECENT_ASSIGNMENTS: usize = 100_000;
/// Default hard cap on the number of registry entries.
pub const DEFAULT_MAX_NODES: usize = 100_000;

const PRIOR_SUCCESSES: f64 = 2.0;
const PRIOR_TRIALS: f64 = 3.0;
const REJECTED_WEIGHT: f64 = 4.0;
const DECLINE_WEIGHT: f64 = 0.25;

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
    /// Rejected results after which a node is excluded from all further work.
    pub exclude_after_rejections: u32,
    /// Lowest reliability score (0..=1) a node may have and still be given work.
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
            exclude_after_rejections: 3,
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
        if self.exclude_after_rejections == 0 {
            return Err("registry.exclude_after_rejections must be at least 1".into());
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

/// How a node's assignments have ended so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Results verified and accepted.
    pub successes: u64,
    /// Attempts the node reported as failed.
    pub failures: u64,
    /// Leases that ran out without a result.
    pub timeouts: u64,
    /// Offers the node declined.
    pub declines: u64,
    /// Results rejected as wrong (quorum disagreement, failed re-execution, bad binding).
    pub rejected: u64,
}

impl Counters {
    /// The smoothed reliability score in (0, 1]; formula in the module header.
    pub fn reliability(&self) -> f64 {
        let n = |v: u64| v as f64;
        let good = n(self.successes) + PRIOR_SUCCESSES;
        let trials = n(self.successes)
            + n(self.failures)
            + n(self.timeouts)
            + REJECTED_WEIGHT * n(self.rejected)
            + DECLINE_WEIGHT * n(self.declines)
            + PRIOR_TRIALS;
        good / trials
    }
}

/// How one assignment ended, as reported to [`NodeRegistry::record_outcome`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The result was verified.
    Success,
    /// The node reported the attempt as failed.
    Failure,
    /// The lease ran out without a result.
    Timeout,
    /// The node declined the offer.
    Declined,
    /// The result was rejected as wrong.
    Rejected,
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

/// Everything the registry remembers about one node.
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
    /// How its assignments have ended.
    pub counters: Counters,
    /// Assignments it currently holds.
    pub in_flight: u32,
    /// Whether it is excluded for too many rejected results; permanent while remembered.
    pub excluded: bool,
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
            counters: Counters::default(),
            in_flight: 0,
            excluded: false,
            recent: VecDeque::new(),
        }
    }

    fn apply_heartbeat(&mut self, hb: &Heartbeat, now_ms: u64) {
        self.wallet = hb.wallet;
        self.peer.clone_from(&hb.peer);
        self.caps = hb.caps.clone();
        self.policy = hb.policy;
        self.sw.clone_from(&hb.sw);
        self.last_seq = hb.seq;
        self.last_seen_ms = now_ms;
        self.opted_out = false;
    }

    /// Its reliability score; formula in the module header.
    pub fn reliability(&self) -> f64 {
        self.counters.reliability()
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
    /// Its software version.
    pub sw: String,
    /// Whether the volunteer has opted out.
    pub opted_out: bool,
    /// Whether it is excluded for rejected results.
    pub excluded: bool,
    /// Its reliability score.
    pub reliability: f64,
    /// Assignments it currently holds.
    pub in_flight: u32,
    /// Slots it can take now.
    pub free_slots: u32,
    /// Assignments given to it in the last minute.
    pub assignments_last_minute: u32,
    /// How its assignments have ended.
    pub counters: Counters,
}

/// The dispatcher's bounded table of nodes, keyed by node address.
#[derive(Debug, Clone)]
pub struct NodeRegistry {
    config: RegistryConfig,
    nodes: BTreeMap<Address, NodeEntry>,
}

impl NodeRegistry {
    /// An empty registry; `config` should have passed [`RegistryConfig::validate`].
    pub fn new(config: RegistryConfig) -> Self {
        NodeRegistry {
            config,
            nodes: BTreeMap::new(),
        }
    }

    /// The settings in use.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// Applies a verified heartbeat from `from`; ignores any seq not above the last one seen.
    pub fn on_heartbeat(&mut self, from: Address, hb: &Heartbeat, now_ms: u64) -> RegistryChange {
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

    /// Counts how an assignment ended; enough rejected results exclude the node.
    pub fn record_outcome(&mut self, node: Address, outcome: Outcome) -> Result<(), UnknownNode> {
        let threshold = u64::from(self.config.exclude_after_rejections);
        let entry = self.entry_mut(node)?;
        let c = &mut entry.counters;
        let counter = match outcome {
            Outcome::Success => &mut c.successes,
            Outcome::Failure => &mut c.failures,
            Outcome::Timeout => &mut c.timeouts,
            Outcome::Declined => &mut c.declines,
            Outcome::Rejected => &mut c.rejected,
        };
        *counter = counter.saturating_add(1);
        if !entry.excluded && entry.counters.rejected >= threshold {
            entry.excluded = true;
            warn!(node = %node, rejected = entry.counters.rejected, "node excluded after rejected results");
        }
        Ok(())
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

    /// Forgets offline nodes not heard from for more than `forget_after_ms`; returns how many.
    pub fn prune(&mut self, now_ms: u64, forget_after_ms: u64) -> usize {
        let before = self.nodes.len();
        let offline_after = self.config.offline_after_ms();
        self.nodes.retain(|_, e| {
            let quiet = now_ms.saturating_sub(e.last_seen_ms);
            let online = !e.opted_out && quiet <= offline_after;
            online || quiet <= forget_after_ms
        });
        before - self.nodes.len()
    }

    fn view(&self, e: &NodeEntry, now_ms: u64) -> NodeView {
        NodeView {
            address: e.address,
            wallet: e.wallet,
            peer: e.peer.clone(),
            online: self.is_online(e, now_ms),
            first_seen_ms: e.first_seen_ms,
            last_seen_ms: e.last_seen_ms,
            caps: e.caps.clone(),
            policy: e.policy,
            sw: e.sw.clone(),
            opted_out: e.opted_out,
            excluded: e.excluded,
            reliability: e.reliability(),
            in_flight: e.in_flight,
            free_slots: e.free_slots(),
            assignments_last_minute: e.assignments_in_window(now_ms),
            counters: e.counters,
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
    use super::RegistryChange::{OptedOut, Refreshed, Registered, RegistryFull, Rejoined, Stale};
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
    fn rejected_results_exclude_and_hurt_reliability() {
        let mut r = registry();
        beat(&mut r, 1, 1, 0);
        assert!((entry(&r, 1).reliability() - 2.0 / 3.0).abs() < 1e-12);
        for o in [Outcome::Success, Outcome::Rejected, Outcome::Rejected] {
            r.record_outcome(addr(1), o).expect("known");
        }
        assert!(!entry(&r, 1).excluded);
        // (1 + 2) / (1 + 4·2 + 3)
        assert!((entry(&r, 1).reliability() - 3.0 / 12.0).abs() < 1e-12);
        r.record_outcome(addr(1), Outcome::Rejected).expect("known");
        assert!(entry(&r, 1).excluded);
        assert!(r.snapshot(0)[0].excluded);
        assert!(r.record_outcome(addr(9), Outcome::Success).is_err());
    }

    #[test]
    fn declines_weigh_less_than_failures() {
        let only = |declines, failures, timeouts| Counters {
            declines,
            failures,
            timeouts,
            ..Counters::default()
        };
        assert!((only(4, 0, 0).reliability() - only(0, 1, 0).reliability()).abs() < 1e-12);
        assert!(only(0, 0, 1).reliability() >= RegistryConfig::default().min_reliability);
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
