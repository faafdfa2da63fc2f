//! Gossip validation: what decides whether a gossiped message is accepted, forwarded, or
//! rejected with a penalty for the peer that sent it.
//!
//! Split in two so the expensive part never blocks the swarm's task: [`check_envelope`] is
//! stateless (size cap, decode, signature, `from`, network, clock, kind-for-topic, PeerId-for-
//! address) and runs on a blocking worker; [`ReplayFilter::check`] is the per-sender sequence
//! check and runs in order on the network task.

use pocmesh_protocol::{
    Address, Body, ReplayConfig, ReplayError, ReplayGuard, Topic, ValidationError, Validator,
    Verified,
};

use crate::identity::peer_address;

/// What to do with a gossiped message.
#[derive(Debug)]
pub enum Verdict {
    /// Valid and fresh: deliver and forward.
    Accept(Box<Verified>),
    /// Invalid: drop, do not forward, penalise the peer that sent it.
    Reject(Rejection),
    /// Harmless but useless (an exact repeat): drop quietly.
    Ignore(Rejection),
}

/// Why a message was not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// Short stable label (`bad_signature`, `replay`, …) for metrics.
    pub label: &'static str,
    /// The full reason.
    pub detail: String,
}

impl From<ValidationError> for Rejection {
    fn from(e: ValidationError) -> Self {
        Rejection {
            label: e.label(),
            detail: e.to_string(),
        }
    }
}

/// The stateless checks of a message that arrived on `topic`: `Ok` to go on to the replay
/// check, otherwise the verdict. A heartbeat or opt-out naming one of `refused_wallets` is
/// ignored, not rejected: it is a policy of this receiver on a validly signed message, and
/// honest peers that do not know the contract relay it (the zero address, which every receiver
/// refuses, is rejected by the validator itself).
pub fn check_envelope(
    validator: &Validator,
    refused_wallets: &[Address],
    topic: Topic,
    bytes: &[u8],
    now_ms: u64,
) -> Result<Verified, Verdict> {
    let reject = |e: Rejection| Verdict::Reject(e);
    let verified = validator
        .validate(bytes, now_ms)
        .map_err(|e| reject(e.into()))?;
    let allowed = matches!(
        (&verified.message.body, topic),
        (Body::Heartbeat(_) | Body::OptOut(_), Topic::Heartbeat)
            | (Body::Dispatcher(_), Topic::Dispatcher)
    );
    if !allowed {
        return Err(reject(
            ValidationError::UnexpectedKind {
                kind: verified.message.kind(),
            }
            .into(),
        ));
    }
    let claimed_peer = match &verified.message.body {
        Body::Heartbeat(h) => Some(&h.peer),
        Body::Dispatcher(d) => Some(&d.peer),
        _ => None,
    };
    if let Some(text) = claimed_peer {
        let owner = text
            .parse::<libp2p::PeerId>()
            .ok()
            .and_then(|p| peer_address(&p));
        if owner != Some(verified.signer) {
            return Err(reject(Rejection {
                label: "peer_mismatch",
                detail: format!(
                    "peer {text:?} is not the libp2p identity of {}",
                    verified.signer
                ),
            }));
        }
    }
    let wallet = match &verified.message.body {
        Body::Heartbeat(h) => Some(h.wallet),
        Body::OptOut(o) => Some(o.wallet),
        _ => None,
    };
    if let Some(w) = wallet.filter(|w| refused_wallets.contains(w)) {
        return Err(Verdict::Ignore(Rejection {
            label: "refused_wallet",
            detail: format!("wallet {w} can never be credited (it is the contract's address)"),
        }));
    }
    Ok(verified)
}

/// How far behind the newest accepted sequence an author's own message may arrive and still
/// count as reordered rather than replayed (see [`ReplayFilter::check`]).
pub const REORDER_WINDOW: u64 = 16;

/// Most senders whose last heartbeat time is remembered.
const PACE_ENTRIES: usize = 100_000;

/// Per-sender freshness of gossiped messages. Heartbeats and opt-outs carry a `seq`;
/// dispatcher announcements use their timestamp as their sequence. Heartbeats are also paced:
/// one sender's heartbeats closer together than `min_heartbeat_gap_ms` are dropped (ignored,
/// not forwarded), whatever their sequence numbers.
#[derive(Debug)]
pub struct ReplayFilter {
    guard: ReplayGuard,
    min_heartbeat_gap_ms: u64,
    last_heartbeat: std::collections::HashMap<Address, u64>,
}

impl ReplayFilter {
    /// A filter for messages validated with a clock window of `max_skew_ms`, taking one
    /// heartbeat per sender per `min_heartbeat_gap_ms` at most.
    pub fn new(
        config: ReplayConfig,
        max_skew_ms: u64,
        min_heartbeat_gap_ms: u64,
    ) -> Result<Self, String> {
        Ok(ReplayFilter {
            guard: ReplayGuard::new(config, max_skew_ms)?,
            min_heartbeat_gap_ms,
            last_heartbeat: std::collections::HashMap::new(),
        })
    }

    /// Accepts a fresh message (and remembers it), ignores an exact repeat of the newest and a
    /// heartbeat that comes too soon after the last.
    ///
    /// An older message is a *late copy* — ignored (not acted on, not forwarded) without a
    /// penalty — when another peer relays it (`relayed`), or when it is at most
    /// [`REORDER_WINDOW`] sequence numbers behind: gossip keeps no order across paths, and
    /// envelopes are checked on parallel workers, so under load an honest peer's beat 6 is
    /// often seen after its beat 7. Rejecting those graylisted honest relays within seconds on
    /// a busy 100-node network, and their own heartbeats were lost with them. Only an older
    /// message from its own author beyond the window is a replay (rejected: the author's score
    /// pays).
    pub fn check(&mut self, verified: Verified, relayed: bool, now_ms: u64) -> Verdict {
        let m = &verified.message;
        let seq = m.body.seq().unwrap_or(m.ts);
        match self
            .guard
            .check_and_record(&verified.signer, seq, m.ts, now_ms)
        {
            Ok(()) => {
                // Fresh by its sequence, but too soon after the sender's last one.
                if matches!(m.body, Body::Heartbeat(_))
                    && let Some(last) = self.last_heartbeat.get(&verified.signer)
                    && now_ms.saturating_sub(*last) < self.min_heartbeat_gap_ms
                {
                    return Verdict::Ignore(Rejection {
                        label: "rate_limited",
                        detail: format!(
                            "heartbeats from {} come faster than one per {} ms",
                            verified.signer, self.min_heartbeat_gap_ms
                        ),
                    });
                }
                if matches!(m.body, Body::Heartbeat(_)) {
                    if self.last_heartbeat.len() >= PACE_ENTRIES {
                        let gap = self.min_heartbeat_gap_ms;
                        self.last_heartbeat
                            .retain(|_, t| now_ms.saturating_sub(*t) < gap);
                    }
                    self.last_heartbeat.insert(verified.signer, now_ms);
                }
                Verdict::Accept(Box::new(verified))
            }
            Err(ReplayError::OldSequence { seq, last, .. }) if seq == last => {
                Verdict::Ignore(Rejection {
                    label: "duplicate",
                    detail: format!("sequence {seq} already seen"),
                })
            }
            Err(ReplayError::OldSequence { seq, last, .. })
                if relayed || last - seq <= REORDER_WINDOW =>
            {
                Verdict::Ignore(Rejection {
                    label: "stale",
                    detail: format!(
                        "sequence {seq} arrived after {last}: a late copy{}",
                        if relayed {
                            ", relayed by another peer"
                        } else {
                            ""
                        }
                    ),
                })
            }
            Err(e @ ReplayError::BelowEvictionFloor { .. }) if relayed => {
                Verdict::Ignore(Rejection {
                    label: "stale",
                    detail: format!("{e} (relayed by another peer)"),
                })
            }
            Err(e) => Verdict::Reject(Rejection {
                label: "replay",
                detail: e.to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pocmesh_protocol::{Capabilities, Envelope, Hash32, Heartbeat, Message, SecretKey};

    const NET: &str = "devnet-1";

    fn heartbeat(key: &SecretKey, seq: u64, ts: u64) -> Verified {
        let hb = Heartbeat {
            seq,
            wallet: Address([7; 20]),
            peer: String::new(),
            caps: Capabilities::default(),
            policy: Hash32::ZERO,
            sw: "t".into(),
        };
        let bytes = Envelope::seal(
            &Message::new(NET, key.address(), ts, Body::Heartbeat(hb)),
            key,
        )
        .expect("seal")
        .to_bytes();
        Validator {
            net: NET.into(),
            max_bytes: 4096,
            max_skew_ms: 30_000,
        }
        .validate(&bytes, ts)
        .expect("valid")
    }

    #[test]
    fn heartbeats_faster_than_the_gap_are_dropped_with_a_reason() {
        let key = SecretKey::from_bytes(&[3; 32]).expect("key");
        let other = SecretKey::from_bytes(&[4; 32]).expect("key");
        let mut f = ReplayFilter::new(ReplayConfig::default(), 30_000, 250).expect("filter");
        let t = 1_000_000;
        assert!(matches!(
            f.check(heartbeat(&key, 20, t), false, t),
            Verdict::Accept(_)
        ));
        match f.check(heartbeat(&key, 21, t + 100), false, t + 100) {
            Verdict::Ignore(r) => {
                assert_eq!(r.label, "rate_limited");
                assert!(r.detail.contains("250 ms"), "{}", r.detail);
            }
            other => panic!("{other:?}"),
        }
        // A replay (far behind, from its author) is still a replay (rejected, not merely paced); another sender is not
        // affected, and the first one is welcome again after the gap.
        assert!(matches!(
            f.check(heartbeat(&key, 1, t + 150), false, t + 150),
            Verdict::Reject(_)
        ));
        assert!(matches!(
            f.check(heartbeat(&other, 1, t + 100), false, t + 100),
            Verdict::Accept(_)
        ));
        assert!(matches!(
            f.check(heartbeat(&key, 22, t + 250), false, t + 250),
            Verdict::Accept(_)
        ));
    }

    #[test]
    fn an_older_beat_is_a_late_copy_when_relayed_or_just_behind_and_a_replay_otherwise() {
        let key = SecretKey::from_bytes(&[5; 32]).expect("key");
        let mut f = ReplayFilter::new(ReplayConfig::default(), 30_000, 0).expect("filter");
        let t = 2_000_000;
        assert!(matches!(
            f.check(heartbeat(&key, 30, t), true, t),
            Verdict::Accept(_)
        ));
        // Beat 29 arrives after beat 30 through another peer: not that peer's fault.
        match f.check(heartbeat(&key, 29, t - 1_000), true, t + 10) {
            Verdict::Ignore(r) => {
                assert_eq!(r.label, "stale");
                assert!(r.detail.contains("relayed"), "{}", r.detail);
            }
            other => panic!("{other:?}"),
        }
        // From the author itself, a little behind: checked out of order here, ignored.
        let late = 30 - REORDER_WINDOW;
        match f.check(heartbeat(&key, late, t - 2_000), false, t + 20) {
            Verdict::Ignore(r) => assert_eq!(r.label, "stale"),
            other => panic!("{other:?}"),
        }
        // From the author, far behind: a replay, penalised. Relayed, the same beat is ignored.
        let old = late - 1;
        match f.check(heartbeat(&key, old, t - 3_000), false, t + 30) {
            Verdict::Reject(r) => assert_eq!(r.label, "replay"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            f.check(heartbeat(&key, old, t - 3_000), true, t + 40),
            Verdict::Ignore(_)
        ));
        // None of them moved the sender's sequence: beat 31 is still welcome.
        assert!(matches!(
            f.check(heartbeat(&key, 31, t + 1_000), true, t + 1_000),
            Verdict::Accept(_)
        ));
    }
}
