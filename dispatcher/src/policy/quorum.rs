//! What a job's results decide: who agrees with whom, whether that is enough, and when the
//! dispatcher must re-execute the job to settle it. Pure: [`decide`] looks at the results of
//! one job and returns one [`Decision`]; the engine carries it out and asks again.
//!
//! Rules:
//! - Results agree when they have the same [`ResultKey`] (result hash, and the metering the units
//!   rule compares).
//! - Only **independent** members count towards a quorum: distinct nodes, distinct wallets and,
//!   by default, distinct network origins (IPv4 /24, IPv6 /48) where known
//!   ([`IndependenceRule`]), so one operator cannot fill a quorum with free node keys.
//! - A quorum of agreeing independent results is accepted without a re-execution only when the
//!   keyed audit draw says so at the highest audit rate among its members, and nobody
//!   disagrees. Any disagreement, or every result in without a quorum, is settled by the
//!   dispatcher's own run: results that differ from it are proven wrong.
//! - When the dispatcher cannot run the job (timeout, crash, shed under load), nobody is blamed:
//!   another node breaks the tie, and two independent agreeing results decide — provided one of
//!   them comes from a trusted node (fresh keys on probation could all be one operator's).

use std::net::IpAddr;

use pocmesh_protocol::{Address, Hash32, JobId};
use serde::{Deserialize, Serialize};

use super::audit::AuditKey;

/// Where a node's connection comes from, as coarse as one operator's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "family", content = "net")]
pub enum Origin {
    /// An IPv4 /24.
    V4([u8; 3]),
    /// An IPv6 /48.
    V6([u8; 6]),
    /// A loopback address: the node runs on the dispatcher's own machine.
    Loopback,
}

impl Origin {
    /// The origin of a connection from `ip` (IPv4-mapped IPv6 counts as IPv4).
    pub fn of(ip: IpAddr) -> Origin {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
            v4 => v4,
        };
        if ip.is_loopback() {
            return Origin::Loopback;
        }
        match ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                Origin::V4([o[0], o[1], o[2]])
            }
            IpAddr::V6(v6) => {
                let o = v6.octets();
                Origin::V6([o[0], o[1], o[2], o[3], o[4], o[5]])
            }
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::V4([a, b, c]) => write!(f, "{a}.{b}.{c}.0/24"),
            Origin::V6(o) => write!(
                f,
                "{:x}:{:x}:{:x}::/48",
                u16::from_be_bytes([o[0], o[1]]),
                u16::from_be_bytes([o[2], o[3]]),
                u16::from_be_bytes([o[4], o[5]])
            ),
            Origin::Loopback => f.write_str("loopback"),
        }
    }
}

/// Who stands behind one result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// The attempt number.
    pub attempt: u32,
    /// The node's address.
    pub node: Address,
    /// The wallet it credits.
    pub wallet: Address,
    /// Where its connection came from, if known.
    pub origin: Option<Origin>,
}

/// When two results count as coming from one operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndependenceRule {
    /// Members must come from distinct origins where both are known.
    pub distinct_origins: bool,
    /// Loopback origins do not count as shared (a devnet on one machine).
    pub loopback_quorum: bool,
}

impl IndependenceRule {
    /// Whether `a` and `b` may be one operator: same node, same wallet, or (under the origin
    /// rule) the same known network.
    pub fn conflict(&self, a: &Member, b: &Member) -> bool {
        if a.node == b.node || a.wallet == b.wallet {
            return true;
        }
        if !self.distinct_origins {
            return false;
        }
        match (a.origin, b.origin) {
            (Some(Origin::Loopback), Some(Origin::Loopback)) => !self.loopback_quorum,
            (Some(x), Some(y)) => x == y,
            _ => false,
        }
    }

    /// The members that count, in order: each one kept unless it conflicts with one kept before.
    pub fn independent<'a>(&self, members: impl IntoIterator<Item = &'a Member>) -> Vec<Member> {
        let mut kept: Vec<Member> = Vec::new();
        for m in members {
            if !kept.iter().any(|k| self.conflict(k, m)) {
                kept.push(*m);
            }
        }
        kept
    }
}

/// What results must agree on: the output's hash and the metering the units rule compares
/// (fuel and output size for `hash` and `wasm`; zero where a type does not compare it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ResultKey {
    /// keccak256 of the output.
    pub result_hash: Hash32,
    /// Fuel (or iterations), when compared.
    pub fuel: u64,
    /// Output bytes.
    pub bytes: u64,
}

/// One submitted result of a job.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim {
    /// Who sent it.
    pub member: Member,
    /// What it says.
    pub key: ResultKey,
    /// Its node's audit rate now (1 on probation).
    pub audit_rate: f64,
}

/// The dispatcher's own run of a job, as far as verification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuditState {
    /// Not run.
    NotRun,
    /// Running now.
    Running,
    /// Ran; this is the right answer.
    Done(ResultKey),
    /// Could not run (timeout, crash, shed): no verdict from it.
    Unavailable,
}

/// Everything [`decide`] looks at for one job.
#[derive(Debug, Clone, Copy)]
pub struct JobFacts<'a> {
    /// The job.
    pub job: JobId,
    /// Nodes that must agree (its redundancy now).
    pub redundancy: u32,
    /// Highest redundancy a tie-break may raise it to.
    pub max_redundancy: u32,
    /// Attempts offered or running.
    pub outstanding: usize,
    /// The dispatcher's own run.
    pub audit: AuditState,
    /// Reopened after a member was caught elsewhere: accepted only after a re-execution.
    pub reverify: bool,
    /// Whether the dispatcher can run the job itself (deterministic types); the others are
    /// checked by replication only.
    pub reexecutable: bool,
    /// The submitted results.
    pub claims: &'a [Claim],
}

/// Why an agreeing result is not credited (no blame on the node).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetAside {
    /// Another attempt of the same operator (node, wallet or network) is credited.
    SameOperator {
        /// That attempt.
        as_attempt: u32,
    },
    /// Outvoted by independent nodes while the dispatcher could not settle it.
    Outvoted,
}

/// What to do next with a job.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Wait for outstanding results or the dispatcher's run.
    Wait,
    /// Run the job here to settle it.
    Audit,
    /// These attempts differ from the dispatcher's run: proven wrong. Ask again afterwards.
    Wrong {
        /// The attempts.
        attempts: Vec<u32>,
    },
    /// More attempts are needed (every result so far was wrong): assign up to the redundancy.
    Reassign,
    /// Raise the redundancy by one: another node breaks the tie.
    TieBreak,
    /// The verified result.
    Accept {
        /// What was agreed.
        key: ResultKey,
        /// The attempts credited.
        members: Vec<u32>,
        /// Whether the result was checked (re-executed, or agreed by independent nodes), which
        /// is what builds trust.
        checked: bool,
        /// Whether the dispatcher's run confirmed it.
        audited: bool,
        /// Agreeing attempts not credited, and why.
        set_aside: Vec<(u32, SetAside)>,
    },
    /// No verdict can be had.
    GiveUp {
        /// Why.
        reason: String,
    },
}

/// The next step for one job (rules in the module header).
pub fn decide(f: &JobFacts<'_>, rule: &IndependenceRule, key: &AuditKey) -> Decision {
    if !f.reexecutable {
        return decide_by_replication(f, rule, key);
    }
    let quorum = (f.redundancy / 2 + 1) as usize;
    match f.audit {
        AuditState::Running => Decision::Wait,
        AuditState::Done(right) => {
            let wrong: Vec<u32> = f
                .claims
                .iter()
                .filter(|c| c.key != right)
                .map(|c| c.member.attempt)
                .collect();
            if !wrong.is_empty() {
                return Decision::Wrong { attempts: wrong };
            }
            let members: Vec<Member> = f.claims.iter().map(|c| c.member).collect();
            let indep = rule.independent(&members);
            if indep.len() >= quorum || (f.outstanding == 0 && !indep.is_empty()) {
                accept(right, &members, &indep, rule, true, true, &[])
            } else if f.outstanding == 0 {
                Decision::Reassign
            } else {
                Decision::Wait
            }
        }
        AuditState::Unavailable => {
            let Some((right, members, indep)) = best_group(f.claims, rule) else {
                return if f.outstanding == 0 {
                    Decision::Reassign
                } else {
                    Decision::Wait
                };
            };
            // Without the dispatcher's run, agreement counts only if a trusted member vouches
            // for it: nodes on probation could be one operator's fresh keys on several networks.
            let vouched = indep.iter().any(|m| rate_of(f.claims, m) < 1.0);
            if indep.len() >= quorum.max(2) && vouched {
                let outvoted: Vec<u32> = f
                    .claims
                    .iter()
                    .filter(|c| c.key != right)
                    .map(|c| c.member.attempt)
                    .collect();
                // Not checked: a vote builds no trust.
                return accept(right, &members, &indep, rule, false, false, &outvoted);
            }
            if f.outstanding > 0 {
                Decision::Wait
            } else if f.redundancy < f.max_redundancy {
                Decision::TieBreak
            } else {
                Decision::GiveUp {
                    reason: format!(
                        "results of {} nodes disagree and the dispatcher could not re-execute the job",
                        f.claims.len()
                    ),
                }
            }
        }
        AuditState::NotRun => {
            let Some((right, members, indep)) = best_group(f.claims, rule) else {
                return if f.outstanding == 0 {
                    Decision::Reassign
                } else {
                    Decision::Wait
                };
            };
            let disagreement = f.claims.iter().any(|c| c.key != right);
            if disagreement {
                // Someone is wrong; only the dispatcher's own run can say who.
                return if f.outstanding == 0 || indep.len() >= quorum {
                    Decision::Audit
                } else {
                    Decision::Wait
                };
            }
            if indep.len() < quorum {
                return if f.outstanding == 0 {
                    Decision::Audit
                } else {
                    Decision::Wait
                };
            }
            if drawn_for_check(f, &indep, key) {
                Decision::Audit
            } else {
                accept(right, &members, &indep, rule, indep.len() >= 2, false, &[])
            }
        }
    }
}

/// For job types the dispatcher cannot run (HTTP checks): a check is another independent node.
/// Agreement of two independent nodes is a checked result; a single node's result is checked
/// (replicated) at its audit rate; a disagreement goes to one more node and the independent
/// majority wins — outvoted results are not credited, but nobody is proven wrong, because two
/// honest fetches can differ (a site changed, a network failed).
fn decide_by_replication(f: &JobFacts<'_>, rule: &IndependenceRule, key: &AuditKey) -> Decision {
    let quorum = (f.redundancy / 2 + 1) as usize;
    let Some((right, members, indep)) = best_group(f.claims, rule) else {
        return if f.outstanding == 0 {
            Decision::Reassign
        } else {
            Decision::Wait
        };
    };
    let more = |f: &JobFacts<'_>| {
        if f.redundancy < f.max_redundancy {
            Decision::TieBreak
        } else {
            Decision::GiveUp {
                reason: format!(
                    "{} independent checks did not agree on the answer",
                    f.claims.len()
                ),
            }
        }
    };
    let dissent: Vec<u32> = f
        .claims
        .iter()
        .filter(|c| c.key != right)
        .map(|c| c.member.attempt)
        .collect();
    if !dissent.is_empty() {
        if f.outstanding > 0 {
            return Decision::Wait;
        }
        // A clear independent majority of at least two decides; otherwise ask another node.
        let runner_up = f
            .claims
            .iter()
            .filter(|c| c.key != right)
            .map(|c| c.key)
            .map(|k| {
                let m: Vec<Member> = f
                    .claims
                    .iter()
                    .filter(|c| c.key == k)
                    .map(|c| c.member)
                    .collect();
                rule.independent(&m).len()
            })
            .max()
            .unwrap_or(0);
        if indep.len() >= quorum.max(2) && indep.len() > runner_up {
            return accept(right, &members, &indep, rule, true, false, &dissent);
        }
        return more(f);
    }
    if indep.len() >= 2 {
        return accept(right, &members, &indep, rule, true, false, &[]);
    }
    if indep.len() < quorum {
        return if f.outstanding == 0 {
            more(f)
        } else {
            Decision::Wait
        };
    }
    // One result: checked by a second node at its audit rate.
    if drawn_for_check(f, &indep, key) {
        if f.outstanding > 0 {
            Decision::Wait
        } else {
            more(f)
        }
    } else {
        accept(right, &members, &indep, rule, false, false, &[])
    }
}

/// Whether the keyed draw picks these agreeing members' result for a check, at the highest
/// audit rate among them (always, for a reopened job).
fn drawn_for_check(f: &JobFacts<'_>, indep: &[Member], key: &AuditKey) -> bool {
    let rate = if f.reverify {
        1.0
    } else {
        indep
            .iter()
            .map(|m| rate_of(f.claims, m))
            .fold(0.0, f64::max)
    };
    let first = indep.iter().map(|m| m.attempt).min().unwrap_or(0);
    key.selects(&f.job, first, rate)
}

fn rate_of(claims: &[Claim], m: &Member) -> f64 {
    claims
        .iter()
        .find(|c| c.member.attempt == m.attempt)
        .map_or(1.0, |c| {
            if c.audit_rate.is_nan() {
                1.0
            } else {
                c.audit_rate.clamp(0.0, 1.0)
            }
        })
}

/// The group of agreeing claims with the most independent members (ties: the earliest).
fn best_group(
    claims: &[Claim],
    rule: &IndependenceRule,
) -> Option<(ResultKey, Vec<Member>, Vec<Member>)> {
    let mut keys: Vec<ResultKey> = Vec::new();
    for c in claims {
        if !keys.contains(&c.key) {
            keys.push(c.key);
        }
    }
    let mut best: Option<(ResultKey, Vec<Member>, Vec<Member>)> = None;
    for k in keys {
        let members: Vec<Member> = claims
            .iter()
            .filter(|c| c.key == k)
            .map(|c| c.member)
            .collect();
        let indep = rule.independent(&members);
        if best.as_ref().is_none_or(|b| indep.len() > b.2.len()) {
            best = Some((k, members, indep));
        }
    }
    best
}

fn accept(
    key: ResultKey,
    members: &[Member],
    indep: &[Member],
    rule: &IndependenceRule,
    checked: bool,
    audited: bool,
    outvoted: &[u32],
) -> Decision {
    let mut set_aside: Vec<(u32, SetAside)> = members
        .iter()
        .filter(|m| !indep.iter().any(|i| i.attempt == m.attempt))
        .map(|m| {
            let as_attempt = indep
                .iter()
                .find(|i| rule.conflict(i, m))
                .map_or(0, |i| i.attempt);
            (m.attempt, SetAside::SameOperator { as_attempt })
        })
        .collect();
    set_aside.extend(outvoted.iter().map(|a| (*a, SetAside::Outvoted)));
    Decision::Accept {
        key,
        members: indep.iter().map(|m| m.attempt).collect(),
        checked,
        audited,
        set_aside,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const STRICT: IndependenceRule = IndependenceRule {
        distinct_origins: true,
        loopback_quorum: false,
    };
    const DEVNET: IndependenceRule = IndependenceRule {
        distinct_origins: true,
        loopback_quorum: true,
    };

    fn key() -> AuditKey {
        AuditKey::from_bytes([3; 32])
    }

    fn rk(h: u8) -> ResultKey {
        ResultKey {
            result_hash: Hash32([h; 32]),
            fuel: 1_000,
            bytes: 32,
        }
    }

    fn member(attempt: u32, wallet: u8, net: u8) -> Member {
        Member {
            attempt,
            node: Address([attempt as u8; 20]),
            wallet: Address([wallet; 20]),
            origin: Some(Origin::of(IpAddr::V4(Ipv4Addr::new(10, 0, net, 1)))),
        }
    }

    fn claim(m: Member, h: u8, rate: f64) -> Claim {
        Claim {
            member: m,
            key: rk(h),
            audit_rate: rate,
        }
    }

    fn facts<'a>(
        redundancy: u32,
        outstanding: usize,
        audit: AuditState,
        claims: &'a [Claim],
    ) -> JobFacts<'a> {
        JobFacts {
            job: JobId::from([9; 32]),
            redundancy,
            max_redundancy: 5,
            outstanding,
            audit,
            reverify: false,
            reexecutable: true,
            claims,
        }
    }

    #[test]
    fn origins_are_one_operators_network() {
        let a = Origin::of("203.0.113.7".parse().expect("ip"));
        assert_eq!(a, Origin::of("203.0.113.200".parse().expect("ip")));
        assert_ne!(a, Origin::of("203.0.114.7".parse().expect("ip")));
        assert_eq!(a.to_string(), "203.0.113.0/24");
        let v6 = Origin::of("2001:db8:1:2::5".parse().expect("ip"));
        assert_eq!(v6, Origin::of("2001:db8:1:ffff::1".parse().expect("ip")));
        assert_ne!(v6, Origin::of("2001:db8:2::1".parse().expect("ip")));
        assert_eq!(v6.to_string(), "2001:db8:1::/48");
        assert_eq!(Origin::of("::ffff:203.0.113.9".parse().expect("ip")), a);
        assert_eq!(
            Origin::of("127.0.0.1".parse().expect("ip")),
            Origin::Loopback
        );
        assert_eq!(Origin::of("::1".parse().expect("ip")), Origin::Loopback);
    }

    #[test]
    fn one_operator_cannot_fill_a_quorum() {
        let a = member(1, 1, 1);
        let same_wallet = member(2, 1, 2);
        let same_net = member(3, 2, 1);
        let other = member(4, 3, 3);
        assert!(STRICT.conflict(&a, &same_wallet));
        assert!(STRICT.conflict(&a, &same_net));
        assert!(!STRICT.conflict(&a, &other));
        let no_origin_rule = IndependenceRule {
            distinct_origins: false,
            ..STRICT
        };
        assert!(!no_origin_rule.conflict(&a, &same_net));
        let attempts: Vec<u32> = STRICT
            .independent(&[a, same_wallet, same_net, other])
            .iter()
            .map(|m| m.attempt)
            .collect();
        assert_eq!(attempts, vec![1, 4]);
        // Unknown origins never conflict; loopback does, unless the devnet rule says otherwise.
        let mut u = member(5, 5, 0);
        u.origin = None;
        assert!(!STRICT.conflict(&a, &u));
        let (mut l1, mut l2) = (member(6, 6, 0), member(7, 7, 0));
        l1.origin = Some(Origin::Loopback);
        l2.origin = Some(Origin::Loopback);
        assert!(STRICT.conflict(&l1, &l2));
        assert!(!DEVNET.conflict(&l1, &l2));
    }

    #[test]
    fn two_keys_of_one_wallet_agreeing_are_checked_by_the_dispatcher() {
        let claims = [
            claim(member(1, 7, 1), 0xee, 0.05),
            claim(member(2, 7, 2), 0xee, 0.05),
        ];
        // Redundancy 2 needs two independent members; one wallet is one member.
        assert_eq!(
            decide(&facts(2, 0, AuditState::NotRun, &claims), &STRICT, &key()),
            Decision::Audit
        );
        // The dispatcher's run differs: both are proven wrong.
        assert_eq!(
            decide(
                &facts(2, 0, AuditState::Done(rk(0x11)), &claims),
                &STRICT,
                &key()
            ),
            Decision::Wrong {
                attempts: vec![1, 2]
            }
        );
        // With their results gone, the job needs new nodes.
        assert_eq!(
            decide(
                &facts(2, 0, AuditState::Done(rk(0x11)), &[]),
                &STRICT,
                &key()
            ),
            Decision::Reassign
        );
    }

    #[test]
    fn a_node_on_probation_is_always_audited_a_trusted_one_sampled() {
        let probation = [claim(member(1, 1, 1), 0xaa, 1.0)];
        assert_eq!(
            decide(
                &facts(1, 0, AuditState::NotRun, &probation),
                &STRICT,
                &key()
            ),
            Decision::Audit
        );
        let mut audited = 0;
        for j in 0..2000u32 {
            let claims = [claim(member(1, 1, 1), 0xaa, 0.1)];
            let mut f = facts(1, 0, AuditState::NotRun, &claims);
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&j.to_be_bytes());
            f.job = JobId::from(id);
            match decide(&f, &STRICT, &key()) {
                Decision::Audit => audited += 1,
                Decision::Accept {
                    checked,
                    audited: a,
                    members,
                    ..
                } => {
                    assert!(!checked && !a);
                    assert_eq!(members, vec![1]);
                }
                other => panic!("{other:?}"),
            }
        }
        assert!((150..250).contains(&audited), "{audited} of 2000 at 0.1");
        // Reopened jobs are always audited.
        let claims = [claim(member(1, 1, 1), 0xaa, 0.0)];
        let mut f = facts(1, 0, AuditState::NotRun, &claims);
        f.reverify = true;
        assert_eq!(decide(&f, &STRICT, &key()), Decision::Audit);
    }

    #[test]
    fn the_highest_member_rate_decides_a_quorums_audit() {
        let claims = [
            claim(member(1, 1, 1), 0xaa, 0.0),
            claim(member(2, 2, 2), 0xaa, 1.0),
        ];
        assert_eq!(
            decide(&facts(2, 0, AuditState::NotRun, &claims), &STRICT, &key()),
            Decision::Audit
        );
        let trusted = [
            claim(member(1, 1, 1), 0xaa, 0.0),
            claim(member(2, 2, 2), 0xaa, 0.0),
        ];
        match decide(&facts(2, 0, AuditState::NotRun, &trusted), &STRICT, &key()) {
            Decision::Accept {
                members,
                checked,
                audited,
                set_aside,
                ..
            } => {
                assert_eq!(members, vec![1, 2]);
                assert!(checked && !audited && set_aside.is_empty());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn disagreement_is_settled_by_the_dispatcher_and_only_the_wrong_are_blamed() {
        let claims = [
            claim(member(1, 1, 1), 0xaa, 0.0),
            claim(member(2, 2, 2), 0xbb, 0.0),
            claim(member(3, 3, 3), 0xaa, 0.0),
        ];
        // A majority is not proof: audit.
        assert_eq!(
            decide(&facts(3, 0, AuditState::NotRun, &claims), &STRICT, &key()),
            Decision::Audit
        );
        assert_eq!(
            decide(
                &facts(3, 0, AuditState::Done(rk(0xaa)), &claims),
                &STRICT,
                &key()
            ),
            Decision::Wrong { attempts: vec![2] }
        );
        let rest = [claims[0], claims[2]];
        match decide(
            &facts(3, 0, AuditState::Done(rk(0xaa)), &rest),
            &STRICT,
            &key(),
        ) {
            Decision::Accept {
                members,
                checked,
                audited,
                ..
            } => {
                assert_eq!(members, vec![1, 3]);
                assert!(checked && audited);
            }
            other => panic!("{other:?}"),
        }
        // Waiting for the third while two disagree.
        let two = [claims[0], claims[1]];
        assert_eq!(
            decide(&facts(3, 1, AuditState::NotRun, &two), &STRICT, &key()),
            Decision::Wait
        );
    }

    #[test]
    fn the_dispatchers_failure_blames_nobody_and_asks_another_node() {
        let one = [claim(member(1, 1, 1), 0xaa, 1.0)];
        assert_eq!(
            decide(&facts(1, 0, AuditState::Unavailable, &one), &STRICT, &key()),
            Decision::TieBreak
        );
        // Two nodes on probation agreeing are not enough without the dispatcher's run...
        let two = [
            claim(member(1, 1, 1), 0xaa, 1.0),
            claim(member(2, 2, 2), 0xaa, 1.0),
        ];
        assert_eq!(
            decide(&facts(2, 0, AuditState::Unavailable, &two), &STRICT, &key()),
            Decision::TieBreak
        );
        // ...one trusted member vouching is.
        let two = [
            claim(member(1, 1, 1), 0xaa, 1.0),
            claim(member(2, 2, 2), 0xaa, 0.05),
        ];
        match decide(&facts(2, 0, AuditState::Unavailable, &two), &STRICT, &key()) {
            Decision::Accept {
                members,
                audited,
                checked,
                ..
            } => {
                assert_eq!(members, vec![1, 2]);
                assert!(!audited && !checked, "a vote builds no trust");
            }
            other => panic!("{other:?}"),
        }
        let split = [
            claim(member(1, 1, 1), 0xaa, 1.0),
            claim(member(2, 2, 2), 0xbb, 1.0),
        ];
        assert_eq!(
            decide(
                &facts(2, 0, AuditState::Unavailable, &split),
                &STRICT,
                &key()
            ),
            Decision::TieBreak
        );
        let mut capped = facts(5, 0, AuditState::Unavailable, &split);
        capped.max_redundancy = 5;
        assert!(matches!(
            decide(&capped, &STRICT, &key()),
            Decision::GiveUp { .. }
        ));
        let three = [split[0], split[1], claim(member(3, 3, 3), 0xaa, 0.05)];
        match decide(
            &facts(3, 0, AuditState::Unavailable, &three),
            &STRICT,
            &key(),
        ) {
            Decision::Accept {
                members, set_aside, ..
            } => {
                assert_eq!(members, vec![1, 3]);
                assert_eq!(set_aside, vec![(2, SetAside::Outvoted)]);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            decide(&facts(1, 0, AuditState::Running, &one), &STRICT, &key()),
            Decision::Wait
        );
    }

    #[test]
    fn http_checks_are_checked_by_replication_and_never_proven_wrong() {
        let http = |redundancy, outstanding, claims: &[Claim]| {
            let mut f = facts(redundancy, outstanding, AuditState::NotRun, claims);
            f.reexecutable = false;
            decide(&f, &STRICT, &key())
        };
        // A node on probation: its single result goes to a second node, never to an audit.
        let one = [claim(member(1, 1, 1), 0xaa, 1.0)];
        assert_eq!(http(1, 0, &one), Decision::TieBreak);
        // Two independent agreeing checks are a checked result.
        let two = [
            claim(member(1, 1, 1), 0xaa, 1.0),
            claim(member(2, 2, 2), 0xaa, 1.0),
        ];
        match http(2, 0, &two) {
            Decision::Accept {
                checked,
                audited,
                members,
                ..
            } => {
                assert!(checked && !audited);
                assert_eq!(members, vec![1, 2]);
            }
            other => panic!("{other:?}"),
        }
        // Disagreement: another node; then the independent majority wins, nobody blamed.
        let split = [
            claim(member(1, 1, 1), 0xaa, 1.0),
            claim(member(2, 2, 2), 0xbb, 1.0),
        ];
        assert_eq!(http(2, 0, &split), Decision::TieBreak);
        let three = [split[0], split[1], claim(member(3, 3, 3), 0xaa, 1.0)];
        match http(3, 0, &three) {
            Decision::Accept {
                members, set_aside, ..
            } => {
                assert_eq!(members, vec![1, 3]);
                assert_eq!(set_aside, vec![(2, SetAside::Outvoted)]);
            }
            other => panic!("{other:?}"),
        }
        // Same operator twice is one voice.
        let sybil = [
            claim(member(1, 7, 1), 0xaa, 1.0),
            claim(member(2, 7, 2), 0xaa, 1.0),
        ];
        assert_eq!(http(2, 0, &sybil), Decision::TieBreak);
        let mut capped = facts(5, 0, AuditState::NotRun, &split);
        capped.reexecutable = false;
        assert!(matches!(
            decide(&capped, &STRICT, &key()),
            Decision::GiveUp { .. }
        ));
        // A trusted node's single result is mostly accepted as is.
        let accepted = (0..1000u32)
            .filter(|j| {
                let c = [claim(member(1, 1, 1), 0xaa, 0.05)];
                let mut f = facts(1, 0, AuditState::NotRun, &c);
                f.reexecutable = false;
                let mut id = [0u8; 32];
                id[..4].copy_from_slice(&j.to_be_bytes());
                f.job = JobId::from(id);
                matches!(decide(&f, &STRICT, &key()), Decision::Accept { .. })
            })
            .count();
        assert!((900..990).contains(&accepted), "{accepted}");
    }

    #[test]
    fn an_audited_match_credits_independent_members_and_sets_aside_the_rest() {
        let claims = [
            claim(member(1, 1, 1), 0xaa, 1.0),
            claim(member(2, 1, 2), 0xaa, 1.0),
        ];
        match decide(
            &facts(2, 0, AuditState::Done(rk(0xaa)), &claims),
            &STRICT,
            &key(),
        ) {
            Decision::Accept {
                members,
                set_aside,
                checked,
                audited,
                ..
            } => {
                assert_eq!(members, vec![1]);
                assert_eq!(
                    set_aside,
                    vec![(2, SetAside::SameOperator { as_attempt: 1 })]
                );
                assert!(checked && audited);
            }
            other => panic!("{other:?}"),
        }
        // A second independent node still running: wait for it to be credited too.
        let one = [claims[0]];
        assert_eq!(
            decide(
                &facts(2, 1, AuditState::Done(rk(0xaa)), &one),
                &STRICT,
                &key()
            ),
            Decision::Wait
        );
    }
}
