//! The lifecycle of a receipt on this node, as data and pure transitions (no I/O, the clock is
//! an argument): a receipt is stored [`ReceiptState::Pending`] (or `Unchecked` when the node has
//! no chain to ask), and a check against the batch root on chain settles it as `Verified` or
//! `Failed`. The retry rule for checks that settle nothing is [`RecheckPolicy`].

use pocmesh_protocol::{Address, BatchId, Hash32, JobId, Receipt};
use serde::{Deserialize, Serialize};

use crate::config::ReceiptSettings;

/// Why a receipt does not count. Settled: a failed receipt is never checked again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReceiptFailure {
    /// The chain does not know the batch, after the [`RecheckPolicy`] ran out.
    #[error(
        "batch {batch} is not recorded on chain (asked {answers} times over {waited_s} s); \
         the dispatcher sent a receipt for a batch the contract does not hold"
    )]
    NotRecorded {
        /// The batch the receipt names.
        batch: BatchId,
        /// "Not recorded" answers received.
        answers: u32,
        /// Seconds between the receipt starting to wait and the last answer.
        waited_s: u64,
    },
    /// The proof does not link the receipt's leaf to the batch root on chain.
    #[error(
        "the proof does not link this receipt to root {root} of batch {batch} on chain: \
         its units, result hash or proof differ from what the dispatcher recorded"
    )]
    ProofMismatch {
        /// The batch.
        batch: BatchId,
        /// The root recorded on chain.
        root: Hash32,
    },
    /// The receipt credits another wallet than this node's.
    #[error("the receipt credits {provider}, not this node's wallet {wallet}")]
    WrongProvider {
        /// The wallet the receipt names.
        provider: Address,
        /// This node's wallet.
        wallet: Address,
    },
}

/// Where a stored receipt stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ReceiptState {
    /// Stored, not yet settled by a check against the chain; its units count nowhere yet.
    Pending {
        /// When it began waiting, unix ms (the "not recorded" grace counts from here).
        since_ms: u64,
        /// Checks so far that settled nothing (the retry delay grows with them).
        checks: u32,
        /// Of those, the answers "the batch is not recorded".
        not_recorded: u32,
        /// Not checked again before this time, unix ms.
        next_check_ms: u64,
    },
    /// The proof links the receipt to the batch root on chain: its units are earned.
    Verified {
        /// When it was checked, unix ms.
        at_ms: u64,
    },
    /// The receipt does not check out: flagged, never counted.
    Failed {
        /// Why.
        reason: ReceiptFailure,
        /// When it was settled, unix ms.
        at_ms: u64,
    },
    /// The node has no chain to ask (no `--rpc`/`--contract`): its units are claimed by the
    /// dispatcher but unconfirmed.
    Unchecked,
}

/// An illegal change of a receipt's state.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a receipt in state {from} cannot become {to}")]
pub struct ReceiptTransitionError {
    /// The state it is in.
    pub from: &'static str,
    /// The state asked for.
    pub to: &'static str,
}

/// What one check of a receipt against the chain found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckOutcome {
    /// The proof links the leaf to the batch root on chain.
    Verified,
    /// The receipt does not check out (settled).
    Failed(ReceiptFailure),
    /// The chain answered that the batch is not recorded (perhaps not yet visible to our RPC).
    NotRecorded,
    /// No answer (RPC unreachable or failing): try again later.
    Unavailable {
        /// What went wrong, for the log.
        reason: String,
    },
}

impl CheckOutcome {
    /// The outcome's name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            CheckOutcome::Verified => "verified",
            CheckOutcome::Failed(_) => "failed",
            CheckOutcome::NotRecorded => "not_recorded",
            CheckOutcome::Unavailable { .. } => "unavailable",
        }
    }
}

/// When a receipt whose check settled nothing is checked again, and when "batch not recorded"
/// becomes final. See [`ReceiptSettings`] for the rule in words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecheckPolicy {
    /// Delay after the first unsettled check, ms; doubles per check.
    pub retry_base_ms: u64,
    /// Longest delay, ms.
    pub retry_max_ms: u64,
    /// "Not recorded" answers needed to fail a receipt.
    pub not_recorded_tries: u32,
    /// Time waited since the receipt became pending needed to fail it, ms.
    pub not_recorded_grace_ms: u64,
}

impl Default for RecheckPolicy {
    fn default() -> Self {
        RecheckPolicy::from(&ReceiptSettings::default())
    }
}

impl From<&ReceiptSettings> for RecheckPolicy {
    fn from(s: &ReceiptSettings) -> Self {
        RecheckPolicy {
            retry_base_ms: s.retry_base_ms,
            retry_max_ms: s.retry_max_ms,
            not_recorded_tries: s.not_recorded_tries,
            not_recorded_grace_ms: s.not_recorded_grace_ms,
        }
    }
}

impl RecheckPolicy {
    /// The delay after unsettled check number `checks` (1-based): base × 2^(checks − 1),
    /// capped. No jitter: receipts arrive spread out already, and tests can name the times.
    pub fn delay_ms(&self, checks: u32) -> u64 {
        let doublings = checks.saturating_sub(1).min(30);
        self.retry_base_ms
            .saturating_mul(1u64 << doublings)
            .min(self.retry_max_ms)
    }
}

/// A receipt as the node stores it: the dispatcher's message plus where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredReceipt {
    /// The receipt as the dispatcher sent it.
    pub receipt: Receipt,
    /// When it arrived, unix ms.
    pub received_ms: u64,
    /// Where it stands.
    pub state: ReceiptState,
}

/// A failed receipt, as `/status` lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedReceipt {
    /// The job.
    pub job: JobId,
    /// The batch the receipt named.
    pub batch: BatchId,
    /// The units it claimed (not counted).
    pub units: u64,
    /// Why it failed.
    pub reason: ReceiptFailure,
    /// When, unix ms.
    pub at_ms: u64,
}

/// The state a receipt is stored in when it arrives at `now_ms`: failed at once if it credits
/// another wallet than `wallet`, else pending when the node can check it on chain
/// (`checking`), else unchecked.
pub fn arrival_state(
    receipt: &Receipt,
    wallet: Address,
    checking: bool,
    now_ms: u64,
) -> ReceiptState {
    if receipt.provider != wallet {
        ReceiptState::Failed {
            reason: ReceiptFailure::WrongProvider {
                provider: receipt.provider,
                wallet,
            },
            at_ms: now_ms,
        }
    } else if checking {
        ReceiptState::pending(now_ms)
    } else {
        ReceiptState::Unchecked
    }
}

impl ReceiptState {
    /// A receipt that starts waiting at `now_ms`, due at once.
    pub fn pending(now_ms: u64) -> Self {
        ReceiptState::Pending {
            since_ms: now_ms,
            checks: 0,
            not_recorded: 0,
            next_check_ms: now_ms,
        }
    }

    /// The state's name, for the status API and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            ReceiptState::Pending { .. } => "pending",
            ReceiptState::Verified { .. } => "verified",
            ReceiptState::Failed { .. } => "failed",
            ReceiptState::Unchecked => "unchecked",
        }
    }

    /// When a pending receipt is due for its next check.
    pub fn next_check_ms(&self) -> Option<u64> {
        match self {
            ReceiptState::Pending { next_check_ms, .. } => Some(*next_check_ms),
            _ => None,
        }
    }

    /// The state after a check of `receipt` found `outcome` at `now_ms`. Only a pending
    /// receipt is checked.
    pub fn after_check(
        &self,
        receipt: &Receipt,
        outcome: &CheckOutcome,
        policy: &RecheckPolicy,
        now_ms: u64,
    ) -> Result<ReceiptState, ReceiptTransitionError> {
        let ReceiptState::Pending {
            since_ms,
            checks,
            not_recorded,
            ..
        } = *self
        else {
            return Err(ReceiptTransitionError {
                from: self.name(),
                to: outcome.name(),
            });
        };
        let checks = checks.saturating_add(1);
        let retry = |not_recorded| ReceiptState::Pending {
            since_ms,
            checks,
            not_recorded,
            next_check_ms: now_ms.saturating_add(policy.delay_ms(checks)),
        };
        Ok(match outcome {
            CheckOutcome::Verified => ReceiptState::Verified { at_ms: now_ms },
            CheckOutcome::Failed(reason) => ReceiptState::Failed {
                reason: reason.clone(),
                at_ms: now_ms,
            },
            CheckOutcome::Unavailable { .. } => retry(not_recorded),
            CheckOutcome::NotRecorded => {
                let answers = not_recorded.saturating_add(1);
                let waited_ms = now_ms.saturating_sub(since_ms);
                if answers >= policy.not_recorded_tries && waited_ms >= policy.not_recorded_grace_ms
                {
                    ReceiptState::Failed {
                        reason: ReceiptFailure::NotRecorded {
                            batch: receipt.batch,
                            answers,
                            waited_s: waited_ms / 1000,
                        },
                        at_ms: now_ms,
                    }
                } else {
                    retry(answers)
                }
            }
        })
    }

    /// An unchecked receipt queued for a check (the node now has a chain to ask).
    pub fn requeued(&self, now_ms: u64) -> Result<ReceiptState, ReceiptTransitionError> {
        match self {
            ReceiptState::Unchecked => Ok(ReceiptState::pending(now_ms)),
            other => Err(ReceiptTransitionError {
                from: other.name(),
                to: "pending",
            }),
        }
    }

    /// A pending receipt the node can no longer check (it runs without a chain now).
    pub fn unqueued(&self) -> Result<ReceiptState, ReceiptTransitionError> {
        match self {
            ReceiptState::Pending { .. } => Ok(ReceiptState::Unchecked),
            other => Err(ReceiptTransitionError {
                from: other.name(),
                to: "unchecked",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt() -> Receipt {
        Receipt {
            job: JobId::from([1u8; 32]),
            batch: BatchId::from([2u8; 32]),
            tx: Hash32([3u8; 32]),
            block: 7,
            units: 5,
            provider: Address::from([4u8; 20]),
            result_hash: Hash32([5u8; 32]),
            proof: vec![Hash32([6u8; 32])],
        }
    }

    const POLICY: RecheckPolicy = RecheckPolicy {
        retry_base_ms: 1_000,
        retry_max_ms: 5_000,
        not_recorded_tries: 3,
        not_recorded_grace_ms: 10_000,
    };

    #[test]
    fn the_delay_doubles_up_to_the_cap() {
        let d: Vec<u64> = (1..=6).map(|c| POLICY.delay_ms(c)).collect();
        assert_eq!(d, vec![1_000, 2_000, 4_000, 5_000, 5_000, 5_000]);
        assert_eq!(POLICY.delay_ms(u32::MAX), 5_000, "no overflow");
    }

    #[test]
    fn an_unavailable_chain_keeps_it_pending_with_backoff_and_never_fails_it() {
        let r = receipt();
        let mut s = ReceiptState::pending(0);
        let mut now = 0;
        for checks in 1..=20u32 {
            let next = s
                .after_check(
                    &r,
                    &CheckOutcome::Unavailable {
                        reason: "down".into(),
                    },
                    &POLICY,
                    now,
                )
                .expect("pending is checked");
            let ReceiptState::Pending {
                checks: c,
                not_recorded,
                next_check_ms,
                since_ms,
            } = next
            else {
                panic!("an unreachable RPC settled a receipt: {next:?}");
            };
            assert_eq!((c, not_recorded, since_ms), (checks, 0, 0));
            assert_eq!(next_check_ms, now + POLICY.delay_ms(checks));
            now = next_check_ms;
            s = next;
        }
    }

    #[test]
    fn not_recorded_fails_only_after_enough_answers_and_enough_time() {
        let r = receipt();
        let nr = CheckOutcome::NotRecorded;
        // Three quick answers: enough answers, not enough time.
        let mut s = ReceiptState::pending(100);
        for now in [100, 200, 300] {
            s = s.after_check(&r, &nr, &POLICY, now).expect("check");
            assert_eq!(s.name(), "pending", "failed too early at {now}: {s:?}");
        }
        // Time alone, without the answers, does not fail it either.
        let mut slow = ReceiptState::pending(0);
        slow = slow.after_check(&r, &nr, &POLICY, 50_000).expect("check");
        assert_eq!(slow.name(), "pending");
        // Both: the fourth answer after the grace fails it, naming the batch.
        let s = s.after_check(&r, &nr, &POLICY, 10_100).expect("check");
        let ReceiptState::Failed { reason, at_ms } = s else {
            panic!("still {s:?}");
        };
        assert_eq!(at_ms, 10_100);
        assert_eq!(
            reason,
            ReceiptFailure::NotRecorded {
                batch: r.batch,
                answers: 4,
                waited_s: 10
            }
        );
        assert!(
            reason.to_string().contains("is not recorded on chain"),
            "{reason}"
        );
    }

    #[test]
    fn verified_and_failed_are_final() {
        let r = receipt();
        let p = ReceiptState::pending(0);
        let v = p
            .after_check(&r, &CheckOutcome::Verified, &POLICY, 5)
            .expect("check");
        assert_eq!(v, ReceiptState::Verified { at_ms: 5 });
        let bad = ReceiptFailure::ProofMismatch {
            batch: r.batch,
            root: Hash32([9u8; 32]),
        };
        let f = p
            .after_check(&r, &CheckOutcome::Failed(bad.clone()), &POLICY, 6)
            .expect("check");
        assert_eq!(
            f,
            ReceiptState::Failed {
                reason: bad,
                at_ms: 6
            }
        );
        for settled in [&v, &f, &ReceiptState::Unchecked] {
            let e = settled
                .after_check(&r, &CheckOutcome::Verified, &POLICY, 7)
                .expect_err("only pending receipts are checked");
            assert_eq!(e.from, settled.name());
            assert!(settled.unqueued().is_err());
        }
        assert!(v.requeued(8).is_err() && f.requeued(8).is_err());
        assert_eq!(
            ReceiptState::Unchecked.requeued(8),
            Ok(ReceiptState::pending(8))
        );
        assert_eq!(p.unqueued(), Ok(ReceiptState::Unchecked));
    }

    #[test]
    fn arrival_depends_on_the_wallet_and_on_having_a_chain() {
        let r = receipt();
        let mine = r.provider;
        assert_eq!(arrival_state(&r, mine, true, 3), ReceiptState::pending(3));
        assert_eq!(arrival_state(&r, mine, false, 3), ReceiptState::Unchecked);
        let other = Address::from([9u8; 20]);
        for checking in [true, false] {
            assert_eq!(
                arrival_state(&r, other, checking, 3),
                ReceiptState::Failed {
                    reason: ReceiptFailure::WrongProvider {
                        provider: mine,
                        wallet: other
                    },
                    at_ms: 3
                }
            );
        }
    }

    #[test]
    fn states_round_trip_through_the_store_encoding() {
        let row = StoredReceipt {
            receipt: receipt(),
            received_ms: 1,
            state: ReceiptState::Failed {
                reason: ReceiptFailure::WrongProvider {
                    provider: Address::from([1u8; 20]),
                    wallet: Address::from([2u8; 20]),
                },
                at_ms: 2,
            },
        };
        let bytes = serde_cbor::to_vec(&row).expect("encode");
        let back: StoredReceipt = serde_cbor::from_slice(&bytes).expect("decode");
        assert_eq!(back, row);
        // An old row (a bare receipt) is not mistaken for a new one.
        let old = serde_cbor::to_vec(&receipt()).expect("encode");
        assert!(serde_cbor::from_slice::<StoredReceipt>(&old).is_err());
    }
}
