//! Pure assignment choice: which nodes may take a job ([`eligible`]), which of them should
//! ([`pick`]), and on how many nodes a job runs ([`redundancy_for`]).
//!
//! Works only on [`NodeView`] snapshots from the registry; it keeps no state, reads no clock and
//! sends nothing. Ranking, best first: reliability (in steps of 1/20, so nodes whose scores differ
//! by a rounding share work instead of the marginally better one taking everything), then most
//! free slots, then fewest assignments in the last minute, then a pseudo-random order derived from
//! the caller's `tiebreak` so equal nodes share the load, and last the address, so the result is a
//! function of its inputs alone.
//!
//! Nodes picked for one job are independent of each other and of the job's other attempts
//! (distinct wallets and, by default, networks: [`IndependenceRule`]), so a quorum is never
//! handed to one operator.

use std::cmp::Reverse;
use std::collections::HashSet;

use pocmesh_protocol::{Address, Hash32, JobSpec, JobType};

use crate::policy::{IndependenceRule, Member, Trust};
use crate::registry::{NodeView, RegistryConfig};

/// Highest redundancy a job may ask for.
pub const MAX_REDUNDANCY: u32 = 5;

/// Reliability steps per unit when ranking.
const RELIABILITY_STEPS: f64 = 20.0;

/// The rules a node must meet to be given work.
#[derive(Debug, Clone, PartialEq)]
pub struct SchedulerPolicy {
    /// The consent-text hash nodes must have accepted; `None` accepts any.
    pub required_policy: Option<Hash32>,
    /// Most assignments per node in the last minute; 0 blocks every assignment.
    pub rate_limit_per_minute: u32,
    /// When two nodes count as one operator (never both on one job).
    pub independence: IndependenceRule,
    /// Most jobs a node on probation may hold or have waiting for a verdict.
    pub probation_outstanding: u32,
}

impl SchedulerPolicy {
    /// The policy of a registry config, with the consent hash the dispatcher requires.
    pub fn from_registry(
        config: &RegistryConfig,
        required_policy: Option<Hash32>,
        independence: IndependenceRule,
    ) -> Self {
        SchedulerPolicy {
            required_policy,
            rate_limit_per_minute: config.rate_limit_per_minute,
            independence,
            probation_outstanding: crate::policy::VerifySettings::default().probation_outstanding,
        }
    }
}

/// Why a node may not be given a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Ineligible {
    /// No heartbeat within the offline threshold.
    #[error("offline")]
    Offline,
    /// The volunteer has opted out.
    #[error("opted out")]
    OptedOut,
    /// Excluded for results proven wrong.
    #[error("excluded after results proven wrong")]
    Excluded,
    /// Has not accepted the consent text this dispatcher requires.
    #[error("has not accepted the required consent policy")]
    WrongPolicy,
    /// The job's type is not enabled on the node.
    #[error("job type not enabled on the node")]
    JobTypeDisabled,
    /// No slot free after counting the assignments it holds.
    #[error("no free slot")]
    NoFreeSlot,
    /// Reached its per-minute assignment limit.
    #[error("assignment rate limit reached")]
    RateLimited,
    /// Reliability below the minimum, and its cool-down is not over.
    #[error("reliability below the minimum (cooling down)")]
    LowReliability,
    /// Offers less memory than the job's memory limit.
    #[error("less memory than the job's limit")]
    TooSmall,
    /// On probation, with as many jobs held or awaiting a verdict as it may have.
    #[error("on probation with its results still being checked")]
    ProbationLimit,
}

impl Ineligible {
    /// A short snake_case name, for metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Ineligible::Offline => "offline",
            Ineligible::OptedOut => "opted_out",
            Ineligible::Excluded => "excluded",
            Ineligible::WrongPolicy => "wrong_policy",
            Ineligible::JobTypeDisabled => "job_type_disabled",
            Ineligible::NoFreeSlot => "no_free_slot",
            Ineligible::RateLimited => "rate_limited",
            Ineligible::LowReliability => "low_reliability",
            Ineligible::TooSmall => "too_small",
            Ineligible::ProbationLimit => "probation_limit",
        }
    }
}

/// Whether `node` may take `spec` under `policy`; the first failed rule otherwise.
///
/// Consent and standing are checked before capacity, so the reason given is the most lasting one.
pub fn eligible(
    node: &NodeView,
    spec: &JobSpec,
    policy: &SchedulerPolicy,
) -> Result<(), Ineligible> {
    if node.opted_out {
        return Err(Ineligible::OptedOut);
    }
    if node.excluded {
        return Err(Ineligible::Excluded);
    }
    if !node.online {
        return Err(Ineligible::Offline);
    }
    if policy.required_policy.is_some_and(|p| p != node.policy) {
        return Err(Ineligible::WrongPolicy);
    }
    if !node.caps.job_types.contains(&spec.params.job_type()) {
        return Err(Ineligible::JobTypeDisabled);
    }
    if node.caps.mem_mb < spec.limits.max_mem_mb {
        return Err(Ineligible::TooSmall);
    }
    if !node.may_take_work {
        return Err(Ineligible::LowReliability);
    }
    if node.free_slots == 0 {
        return Err(Ineligible::NoFreeSlot);
    }
    if matches!(node.trust, Trust::Probation { .. })
        && node.in_flight.saturating_add(node.unverified) >= policy.probation_outstanding
    {
        return Err(Ineligible::ProbationLimit);
    }
    if node.assignments_last_minute >= policy.rate_limit_per_minute {
        return Err(Ineligible::RateLimited);
    }
    Ok(())
}

/// How many nodes of `snapshot` may take `spec` (the input of [`redundancy_for`]).
pub fn count_eligible(snapshot: &[NodeView], spec: &JobSpec, policy: &SchedulerPolicy) -> usize {
    let distinct: HashSet<Address> = snapshot
        .iter()
        .filter(|n| eligible(n, spec, policy).is_ok())
        .map(|n| n.address)
        .collect();
    distinct.len()
}

/// Up to `count` eligible nodes not in `exclude`, best first (order in the module header), each
/// independent of the others picked and of `members` (the job's attempts that still count).
///
/// May return fewer than `count`; the caller decides whether that is enough. The same inputs
/// always give the same answer; a different `tiebreak` reorders nodes that rank equal.
pub fn pick(
    snapshot: &[NodeView],
    spec: &JobSpec,
    count: usize,
    exclude: &[Address],
    members: &[Member],
    policy: &SchedulerPolicy,
    tiebreak: u64,
) -> Vec<Address> {
    if count == 0 {
        return Vec::new();
    }
    let mut ranked: Vec<_> = snapshot
        .iter()
        .filter(|n| !exclude.contains(&n.address) && eligible(n, spec, policy).is_ok())
        .map(|n| (rank_key(n, tiebreak), n))
        .collect();
    ranked.sort_unstable_by_key(|a| a.0);
    let mut taken: Vec<Member> = members.to_vec();
    let mut out = Vec::new();
    for (_, n) in ranked {
        if out.len() == count {
            break;
        }
        let candidate = member_of(n);
        if taken
            .iter()
            .any(|m| policy.independence.conflict(m, &candidate))
        {
            continue;
        }
        taken.push(candidate);
        out.push(n.address);
    }
    out
}

/// A node as a would-be quorum member.
pub fn member_of(node: &NodeView) -> Member {
    Member {
        attempt: 0,
        node: node.address,
        wallet: node.wallet,
        origin: node.origin,
    }
}

/// On how many independent nodes a job runs: an explicit request clamped to
/// 1..=[`MAX_REDUNDANCY`]; otherwise 1. Deterministic results are checked by the dispatcher's
/// adaptive audits rather than by running every job twice: a new node's results are all
/// re-executed, a trusted node's sampled (see [`crate::policy::standing`]). Disagreements and
/// the dispatcher's own failures raise a job's redundancy as it runs.
pub fn redundancy_for(requested: Option<u32>, _job_type: JobType) -> u32 {
    requested.map_or(1, |k| k.clamp(1, MAX_REDUNDANCY))
}

/// Sort key, smaller is better: reliability step, free slots, recent load, spread, address.
type RankKey = (Reverse<u32>, Reverse<u32>, u32, u64, Address);

fn rank_key(node: &NodeView, tiebreak: u64) -> RankKey {
    // `as` saturates and maps NaN to 0; the clamp keeps the step in 0..=20.
    let step = (node.reliability.clamp(0.0, 1.0) * RELIABILITY_STEPS).floor() as u32;
    (
        Reverse(step),
        Reverse(node.free_slots),
        node.assignments_last_minute,
        spread(&node.address, tiebreak),
        node.address,
    )
}

/// A well-mixed 64-bit value of the address and the tiebreak: equal nodes order differently
/// for different tiebreaks, and nobody can grind an address that wins without knowing it.
fn spread(address: &Address, tiebreak: u64) -> u64 {
    let mut h = mix(tiebreak);
    for chunk in address.as_bytes().chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h = mix(h ^ u64::from_le_bytes(word));
    }
    h
}

/// The SplitMix64 finaliser: a bijection on u64 with good avalanche.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::policy::{Counters, Origin, Trust};
    use pocmesh_protocol::{Capabilities, JobParams, Limits};

    fn addr(n: u8) -> Address {
        Address([n; 20])
    }

    fn consent() -> Hash32 {
        Hash32::keccak(b"consent v1")
    }

    /// A trusted, online node `n` with 4 free slots (also used by the page tests).
    pub(crate) fn node(n: u8) -> NodeView {
        NodeView {
            address: addr(n),
            wallet: addr(100 + n),
            peer: format!("peer-{n}"),
            online: true,
            first_seen_ms: 0,
            last_seen_ms: 0,
            caps: Capabilities {
                cores: 2,
                mem_mb: 1024,
                gpu: None,
                job_types: vec![JobType::Hash, JobType::LinkHealth],
                slots_total: 4,
                slots_free: 4,
                receipts_batch: 0,
                jobs_batch: 0,
            },
            policy: consent(),
            policy_current: true,
            sw: "0.1.0".into(),
            origin: Some(Origin::V4([10, 0, n])),
            opted_out: false,
            excluded: false,
            exclusion: None,
            trust: Trust::Trusted,
            audit_rate: 0.05,
            wallet_flagged: false,
            reliability: 0.75,
            may_take_work: true,
            in_flight: 0,
            unverified: 0,
            free_slots: 4,
            assignments_last_minute: 0,
            counters: Counters::default(),
        }
    }

    fn hash_job(max_mem_mb: u64) -> JobSpec {
        JobSpec {
            params: JobParams::Hash {
                seed: Hash32::ZERO,
                iterations: 1_000,
            },
            limits: Limits {
                max_ms: 1_000,
                max_mem_mb,
                max_output_bytes: 64,
                max_fuel: None,
            },
        }
    }

    fn policy() -> SchedulerPolicy {
        SchedulerPolicy {
            required_policy: Some(consent()),
            rate_limit_per_minute: 10,
            independence: IndependenceRule {
                distinct_origins: true,
                loopback_quorum: false,
            },
            probation_outstanding: 2,
        }
    }

    #[test]
    fn capabilities_must_match_the_job() {
        let (spec, p) = (hash_job(512), policy());
        assert_eq!(eligible(&node(1), &spec, &p), Ok(()));
        let mut no_hash = node(1);
        no_hash.caps.job_types = vec![JobType::Wasm];
        assert_eq!(
            eligible(&no_hash, &spec, &p),
            Err(Ineligible::JobTypeDisabled)
        );
        assert_eq!(eligible(&node(1), &hash_job(1024), &p), Ok(()));
        assert_eq!(
            eligible(&node(1), &hash_job(1025), &p),
            Err(Ineligible::TooSmall)
        );
    }

    #[test]
    fn free_slots_rate_limit_and_reliability_gate() {
        let (spec, p) = (hash_job(512), policy());
        let mut full = node(1);
        full.free_slots = 0;
        assert_eq!(eligible(&full, &spec, &p), Err(Ineligible::NoFreeSlot));
        let mut busy = node(1);
        busy.assignments_last_minute = 9;
        assert_eq!(eligible(&busy, &spec, &p), Ok(()));
        busy.assignments_last_minute = 10;
        assert_eq!(eligible(&busy, &spec, &p), Err(Ineligible::RateLimited));
        let mut shaky = node(1);
        shaky.reliability = 0.49;
        assert_eq!(eligible(&shaky, &spec, &p), Ok(()), "cooled down: a probe");
        shaky.may_take_work = false;
        assert_eq!(eligible(&shaky, &spec, &p), Err(Ineligible::LowReliability));
        assert_eq!(
            pick(&[full, busy, shaky], &spec, 3, &[], &[], &p, 0),
            Vec::<Address>::new()
        );
    }

    #[test]
    fn opted_out_wrong_policy_excluded_and_offline_are_never_picked() {
        let (spec, p) = (hash_job(512), policy());
        let mut opted = node(1);
        opted.opted_out = true;
        let mut wrong = node(2);
        wrong.policy = Hash32::keccak(b"consent v0");
        let mut excluded = node(3);
        excluded.excluded = true;
        let mut offline = node(4);
        offline.online = false;
        assert_eq!(eligible(&opted, &spec, &p), Err(Ineligible::OptedOut));
        assert_eq!(eligible(&wrong, &spec, &p), Err(Ineligible::WrongPolicy));
        assert_eq!(eligible(&excluded, &spec, &p), Err(Ineligible::Excluded));
        assert_eq!(eligible(&offline, &spec, &p), Err(Ineligible::Offline));
        let snapshot = [opted, wrong.clone(), excluded, offline, node(5)];
        for tiebreak in 0..50 {
            assert_eq!(
                pick(&snapshot, &spec, 5, &[], &[], &p, tiebreak),
                vec![addr(5)]
            );
        }
        let any_policy = SchedulerPolicy {
            required_policy: None,
            ..p
        };
        assert_eq!(eligible(&wrong, &spec, &any_policy), Ok(()));
    }

    #[test]
    fn picks_distinct_nodes_and_honours_the_exclude_list() {
        let (spec, p) = (hash_job(512), policy());
        let snapshot = [node(1), node(1), node(2), node(3)];
        let picked = pick(&snapshot, &spec, 10, &[], &[], &p, 7);
        assert_eq!(picked.len(), 3);
        let distinct: HashSet<_> = picked.iter().collect();
        assert_eq!(distinct.len(), 3);
        let picked = pick(&snapshot, &spec, 10, &[addr(1), addr(3)], &[], &p, 7);
        assert_eq!(picked, vec![addr(2)]);
        assert_eq!(pick(&snapshot, &spec, 2, &[], &[], &p, 7).len(), 2);
        assert!(pick(&snapshot, &spec, 0, &[], &[], &p, 7).is_empty());
        assert_eq!(count_eligible(&snapshot, &spec, &p), 3);
    }

    #[test]
    fn ranks_by_reliability_then_free_slots_then_recent_load() {
        let (spec, p) = (hash_job(512), policy());
        let mut steady = node(1);
        steady.reliability = 0.96;
        steady.free_slots = 1;
        let mut roomy = node(2);
        roomy.free_slots = 4;
        let mut loaded = node(3);
        loaded.free_slots = 4;
        loaded.assignments_last_minute = 5;
        let mut tight = node(4);
        tight.free_slots = 2;
        let snapshot = [loaded, tight, roomy, steady];
        for tiebreak in 0..20 {
            let order = pick(&snapshot, &spec, 4, &[], &[], &p, tiebreak);
            assert_eq!(order, vec![addr(1), addr(2), addr(3), addr(4)]);
        }
    }

    #[test]
    fn tiebreak_spreads_load_over_equal_nodes() {
        let (spec, p) = (hash_job(512), policy());
        let snapshot: Vec<NodeView> = (1..=10).map(node).collect();
        let firsts: HashSet<Address> = (0..200)
            .map(|t| pick(&snapshot, &spec, 1, &[], &[], &p, t)[0])
            .collect();
        assert!(
            firsts.len() >= 8,
            "only {} of 10 equal nodes ever came first",
            firsts.len()
        );
        assert_eq!(
            pick(&snapshot, &spec, 3, &[], &[], &p, 42),
            pick(&snapshot, &spec, 3, &[], &[], &p, 42)
        );
        let mut reversed = snapshot.clone();
        reversed.reverse();
        assert_eq!(
            pick(&reversed, &spec, 3, &[], &[], &p, 42),
            pick(&snapshot, &spec, 3, &[], &[], &p, 42)
        );
    }

    #[test]
    fn redundancy_defaults_and_clamps() {
        assert_eq!(redundancy_for(None, JobType::Hash), 1);
        assert_eq!(redundancy_for(None, JobType::Wasm), 1);
        assert_eq!(redundancy_for(Some(3), JobType::LinkHealth), 3);
        assert_eq!(redundancy_for(Some(0), JobType::Hash), 1);
        assert_eq!(redundancy_for(Some(99), JobType::Hash), MAX_REDUNDANCY);
    }

    #[test]
    fn a_node_on_probation_holds_few_jobs_at_once() {
        let (spec, p) = (hash_job(512), policy());
        let mut new = node(1);
        new.trust = Trust::Probation { remaining: 50 };
        assert_eq!(eligible(&new, &spec, &p), Ok(()));
        new.in_flight = 1;
        assert_eq!(eligible(&new, &spec, &p), Ok(()));
        new.unverified = 1;
        assert_eq!(eligible(&new, &spec, &p), Err(Ineligible::ProbationLimit));
        new.in_flight = 0;
        new.unverified = 2;
        assert_eq!(eligible(&new, &spec, &p), Err(Ineligible::ProbationLimit));
        // A trusted node is limited by its slots only.
        let mut trusted = node(2);
        trusted.unverified = 50;
        assert_eq!(eligible(&trusted, &spec, &p), Ok(()));
    }

    #[test]
    fn nodes_of_one_operator_never_share_a_job() {
        let (spec, p) = (hash_job(512), policy());
        let a = node(1);
        let mut same_wallet = node(2);
        same_wallet.wallet = a.wallet;
        let mut same_net = node(3);
        same_net.origin = a.origin;
        let other = node(4);
        let snapshot = [a.clone(), same_wallet, same_net, other];
        let as_member = |x: &Address| {
            member_of(
                snapshot
                    .iter()
                    .find(|v| v.address == *x)
                    .expect("picked from snapshot"),
            )
        };
        for t in 0..20 {
            let picked = pick(&snapshot, &spec, 4, &[], &[], &p, t);
            // Either node 1 and node 4, or nodes 2, 3 and 4 (2 and 3 only conflict with 1).
            assert!(picked.len() == 2 || picked.len() == 3, "{picked:?}");
            assert!(picked.contains(&addr(4)));
            for (i, x) in picked.iter().enumerate() {
                for y in &picked[i + 1..] {
                    assert!(
                        !p.independence.conflict(&as_member(x), &as_member(y)),
                        "{picked:?}"
                    );
                }
            }
        }
        // Against an attempt already held by node 1's operator: 2 and 3 are out.
        let held = [member_of(&a)];
        let picked = pick(&snapshot, &spec, 4, &[addr(1)], &held, &p, 0);
        assert_eq!(picked, vec![addr(4)]);
    }

    #[test]
    fn reasons_display_in_lower_case() {
        assert_eq!(Ineligible::NoFreeSlot.to_string(), "no free slot");
        assert_eq!(Ineligible::TooSmall.as_str(), "too_small");
    }
}
