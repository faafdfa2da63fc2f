//! Group commit for the node's store: callers that wrote while a flush was on its way to the
//! disk share the next flush instead of each paying for its own.
//!
//! A node with 16 job slots takes offers in bursts; each acceptance must be on disk before it
//! is answered. One `fsync` per acceptance made the disk the node's busiest part
//! (docs/benchmarks.md); with this, a burst of acceptances costs about two.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Shares flushes between writers; see the module header.
#[derive(Debug, Default)]
pub(crate) struct GroupFlush {
    /// Tickets handed out, one per caller, each taken after that caller's write.
    issued: AtomicU64,
    /// The highest ticket known to be on disk; held while a flush runs.
    durable: Mutex<u64>,
}

impl GroupFlush {
    /// Returns once everything the caller wrote before calling is on disk, running `flush`
    /// only if no flush that started after the caller's write has covered it already.
    pub(crate) fn after_write<E>(&self, flush: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        let ticket = self.issued.fetch_add(1, Ordering::AcqRel) + 1;
        let mut durable = self.durable.lock().unwrap_or_else(|p| p.into_inner());
        if *durable >= ticket {
            return Ok(());
        }
        // Every ticket up to here was taken after its write, so this flush covers them all.
        let covered = self.issued.load(Ordering::Acquire);
        flush()?;
        *durable = covered;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn a_lone_writer_flushes_every_time() {
        let group = GroupFlush::default();
        let flushes = AtomicUsize::new(0);
        for _ in 0..3 {
            group
                .after_write(|| {
                    flushes.fetch_add(1, Ordering::SeqCst);
                    Ok::<_, ()>(())
                })
                .expect("flush");
        }
        assert_eq!(flushes.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn writers_waiting_behind_a_flush_share_the_next_one() {
        let group = Arc::new(GroupFlush::default());
        let flushes = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..16)
            .map(|_| {
                let (group, flushes) = (group.clone(), flushes.clone());
                std::thread::spawn(move || {
                    group.after_write(|| {
                        flushes.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        Ok::<_, ()>(())
                    })
                })
            })
            .collect();
        for t in threads {
            t.join().expect("thread").expect("flush");
        }
        let n = flushes.load(Ordering::SeqCst);
        assert!((1..16).contains(&n), "16 writers ran {n} flushes");
    }

    #[test]
    fn a_failed_flush_covers_nobody() {
        let group = GroupFlush::default();
        assert_eq!(group.after_write(|| Err("disk full")), Err("disk full"));
        let mut ran = false;
        group
            .after_write(|| {
                ran = true;
                Ok::<_, ()>(())
            })
            .expect("flush");
        assert!(ran, "the next writer must flush again");
    }
}
