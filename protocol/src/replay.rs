//! Replay guard: the highest sequence number seen per sender, in bounded memory.
//!
//! A message is fresh when its `seq` is above the last one accepted from its author. Memory stays
//! bounded two ways: a sender not heard from for `ttl_ms` is forgotten, and when `capacity`
//! senders are tracked the longest-silent one is evicted. Forgetting is safe because the
//! timestamp window ([`crate::envelope::check_skew`]) already refuses anything older than the
//! skew: `ttl_ms` must exceed twice the skew so that a forgotten sender's old messages are all
//! outside the window. An eviction under pressure raises a floor instead: an unknown sender's
//! message must then be newer than every message of the evicted senders.

use std::collections::{BTreeSet, HashMap};

use crate::address::Address;

/// Why a message was refused as a replay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// `seq` is not above the last accepted from this sender.
    #[error(
        "sequence {seq} from {from} is not above the last accepted ({last}): replayed or out of order"
    )]
    OldSequence {
        /// The sender.
        from: Address,
        /// The sequence received.
        seq: u64,
        /// The highest sequence accepted before.
        last: u64,
    },
    /// An unknown sender's message is not newer than what was forgotten under memory pressure.
    #[error(
        "message from {from} at {ts} ms is not newer than forgotten senders' messages ({floor} ms); it may be a replay"
    )]
    BelowEvictionFloor {
        /// The sender.
        from: Address,
        /// The message's timestamp.
        ts: u64,
        /// The floor.
        floor: u64,
    },
}

/// Settings of a [`ReplayGuard`].
#[derive(Debug, Clone, Copy)]
pub struct ReplayConfig {
    /// Most senders tracked at once.
    pub capacity: usize,
    /// A sender silent this long is forgotten, milliseconds; must exceed twice the skew window.
    pub ttl_ms: u64,
}

impl Default for ReplayConfig {
    fn default() -> Self {
        ReplayConfig {
            capacity: 100_000,
            ttl_ms: 10 * 60 * 1000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    seq: u64,
    max_ts: u64,
    last_seen_ms: u64,
}

/// Per-sender highest sequence, bounded in memory. Not thread-safe: one owner, or wrap it.
#[derive(Debug)]
pub struct ReplayGuard {
    config: ReplayConfig,
    entries: HashMap<Address, Entry>,
    by_last_seen: BTreeSet<(u64, Address)>,
    /// Newest timestamp among senders evicted under pressure; none evicted yet: `None`.
    floor_ts: Option<u64>,
}

impl ReplayGuard {
    /// A guard; `skew_ms` is the validator's timestamp window, checked against the ttl.
    pub fn new(config: ReplayConfig, skew_ms: u64) -> Result<Self, String> {
        if config.capacity == 0 {
            return Err("replay guard capacity must be at least 1".into());
        }
        if config.ttl_ms <= skew_ms.saturating_mul(2) {
            return Err(format!(
                "replay guard ttl ({} ms) must exceed twice the timestamp skew window ({} ms)",
                config.ttl_ms, skew_ms
            ));
        }
        Ok(ReplayGuard {
            config,
            entries: HashMap::new(),
            by_last_seen: BTreeSet::new(),
            floor_ts: None,
        })
    }

    /// Number of senders tracked.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no sender is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The highest sequence accepted from `from`, if it is tracked.
    pub fn last_seq(&self, from: &Address) -> Option<u64> {
        self.entries.get(from).map(|e| e.seq)
    }

    /// Checks `seq` from `from` (message time `ts`) without recording it.
    pub fn check(&self, from: &Address, seq: u64, ts: u64) -> Result<(), ReplayError> {
        match self.entries.get(from) {
            Some(e) if seq <= e.seq => Err(ReplayError::OldSequence {
                from: *from,
                seq,
                last: e.seq,
            }),
            Some(_) => Ok(()),
            None => match self.floor_ts {
                Some(floor) if ts <= floor => Err(ReplayError::BelowEvictionFloor {
                    from: *from,
                    ts,
                    floor,
                }),
                _ => Ok(()),
            },
        }
    }

    /// Checks and, if fresh, records `seq` as the latest from `from`.
    pub fn check_and_record(
        &mut self,
        from: &Address,
        seq: u64,
        ts: u64,
        now_ms: u64,
    ) -> Result<(), ReplayError> {
        self.expire(now_ms);
        self.check(from, seq, ts)?;
        if let Some(old) = self.entries.get(from) {
            self.by_last_seen.remove(&(old.last_seen_ms, *from));
        } else if self.entries.len() >= self.config.capacity {
            self.evict_oldest();
        }
        let max_ts = self.entries.get(from).map_or(ts, |e| e.max_ts.max(ts));
        self.entries.insert(
            *from,
            Entry {
                seq,
                max_ts,
                last_seen_ms: now_ms,
            },
        );
        self.by_last_seen.insert((now_ms, *from));
        Ok(())
    }

    /// Forgets senders silent for longer than the ttl.
    pub fn expire(&mut self, now_ms: u64) {
        let cutoff = now_ms.saturating_sub(self.config.ttl_ms);
        while let Some(&(seen, addr)) = self.by_last_seen.first() {
            if seen >= cutoff {
                break;
            }
            self.by_last_seen.pop_first();
            self.entries.remove(&addr);
        }
    }

    fn evict_oldest(&mut self) {
        if let Some((_, addr)) = self.by_last_seen.pop_first()
            && let Some(e) = self.entries.remove(&addr)
        {
            self.floor_ts = Some(self.floor_ts.map_or(e.max_ts, |f| f.max(e.max_ts)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn addr(n: u8) -> Address {
        Address([n; 20])
    }

    fn guard(capacity: usize) -> ReplayGuard {
        ReplayGuard::new(
            ReplayConfig {
                capacity,
                ttl_ms: 70_000,
            },
            30_000,
        )
        .expect("valid config")
    }

    #[test]
    fn accepts_increasing_and_refuses_equal_or_lower() {
        let mut g = guard(10);
        g.check_and_record(&addr(1), 5, 1_000, 1_000)
            .expect("first");
        g.check_and_record(&addr(1), 6, 1_100, 1_100)
            .expect("higher");
        assert!(matches!(
            g.check_and_record(&addr(1), 6, 1_200, 1_200),
            Err(ReplayError::OldSequence {
                seq: 6,
                last: 6,
                ..
            })
        ));
        assert!(matches!(
            g.check_and_record(&addr(1), 2, 1_200, 1_200),
            Err(ReplayError::OldSequence { .. })
        ));
        // Other senders are independent.
        g.check_and_record(&addr(2), 1, 1_200, 1_200)
            .expect("other sender");
    }

    #[test]
    fn refuses_a_ttl_that_does_not_cover_the_skew_window() {
        assert!(
            ReplayGuard::new(
                ReplayConfig {
                    capacity: 1,
                    ttl_ms: 60_000
                },
                30_000
            )
            .is_err()
        );
        assert!(
            ReplayGuard::new(
                ReplayConfig {
                    capacity: 0,
                    ttl_ms: 90_000
                },
                30_000
            )
            .is_err()
        );
    }

    #[test]
    fn silent_senders_expire() {
        let mut g = guard(10);
        g.check_and_record(&addr(1), 5, 0, 0).expect("first");
        g.check_and_record(&addr(2), 5, 50_000, 50_000)
            .expect("second");
        g.expire(80_000);
        assert_eq!(g.last_seq(&addr(1)), None);
        assert_eq!(g.last_seq(&addr(2)), Some(5));
    }

    #[test]
    fn eviction_raises_a_floor_against_replays_of_forgotten_senders() {
        let mut g = guard(2);
        g.check_and_record(&addr(1), 9, 1_000, 1_000).expect("a");
        g.check_and_record(&addr(2), 9, 2_000, 2_000).expect("b");
        g.check_and_record(&addr(3), 9, 3_000, 3_000)
            .expect("c evicts a");
        assert_eq!(g.len(), 2);
        assert_eq!(g.last_seq(&addr(1)), None);
        // A replay of a's old message is refused though a is forgotten.
        assert!(matches!(
            g.check_and_record(&addr(1), 9, 1_000, 3_100),
            Err(ReplayError::BelowEvictionFloor { floor: 1_000, .. })
        ));
        // A newer message from a is fine.
        g.check_and_record(&addr(1), 10, 3_200, 3_200)
            .expect("newer");
    }

    proptest! {
        #[test]
        fn never_accepts_a_seq_twice_for_a_tracked_sender(seqs in proptest::collection::vec(0u64..50, 1..200)) {
            let mut g = guard(1000);
            let mut best: Option<u64> = None;
            for (i, seq) in seqs.into_iter().enumerate() {
                let now = i as u64;
                let fresh = best.is_none_or(|b| seq > b);
                prop_assert_eq!(g.check_and_record(&addr(7), seq, now, now).is_ok(), fresh);
                if fresh { best = Some(seq); }
            }
        }

        #[test]
        fn memory_stays_within_capacity(n in 1usize..300, cap in 1usize..50) {
            let mut g = guard(cap);
            for i in 0..n {
                let a = Address((i as u32).to_be_bytes().repeat(5).try_into().expect("20 bytes"));
                let _ = g.check_and_record(&a, 1, 10 + i as u64, 10 + i as u64);
                prop_assert!(g.len() <= cap);
            }
        }
    }
}
