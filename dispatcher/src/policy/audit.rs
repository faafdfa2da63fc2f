//! Which results the dispatcher re-executes: a keyed draw a node cannot predict.
//!
//! The decision is made after a result arrives, from `keccak256(tag ‖ secret ‖ job ‖ attempt)`
//! where the 32-byte secret lives only in the dispatcher's store. Nothing in an offer depends on
//! it, so a node cannot tell which of its answers will be checked; the draw is still a pure
//! function of its inputs, so a restarted dispatcher decides the same way.

use pocmesh_protocol::{JobId, keccak256};

/// Domain tag of audit draws.
const AUDIT_TAG: &[u8] = b"pocmesh/audit/1";

/// The dispatcher's audit secret. Never logged: its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct AuditKey([u8; 32]);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(…)")
    }
}

impl AuditKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        AuditKey(bytes)
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        AuditKey(rand::random())
    }

    /// The key's bytes, for storing it.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }

    /// A uniform draw in [0, 1) for attempt `attempt` of `job`.
    pub fn draw(&self, job: &JobId, attempt: u32) -> f64 {
        let mut input = Vec::with_capacity(AUDIT_TAG.len() + 32 + 32 + 4);
        input.extend_from_slice(AUDIT_TAG);
        input.extend_from_slice(&self.0);
        input.extend_from_slice(job.as_bytes());
        input.extend_from_slice(&attempt.to_be_bytes());
        let h = keccak256(&input);
        let mut word = [0u8; 8];
        word.copy_from_slice(&h[..8]);
        // 53 random bits give every representable step of [0, 1).
        (u64::from_be_bytes(word) >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Whether attempt `attempt` of `job` is audited at `rate` (0 never, 1 always).
    pub fn selects(&self, job: &JobId, attempt: u32, rate: f64) -> bool {
        self.draw(job, attempt) < rate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(n: u64) -> JobId {
        JobId::from(keccak256(n.to_be_bytes()))
    }

    #[test]
    fn draws_are_uniform_and_follow_the_rate() {
        let key = AuditKey::from_bytes([7; 32]);
        let n = 20_000u64;
        let hits = (0..n).filter(|i| key.selects(&job(*i), 1, 0.1)).count() as f64;
        let share = hits / n as f64;
        // 20 000 draws at 0.1: the standard deviation is 0.002.
        assert!((share - 0.1).abs() < 0.01, "{share}");
        assert!((0..1000).all(|i| key.selects(&job(i), 1, 1.0)));
        assert!((0..1000).all(|i| !key.selects(&job(i), 1, 0.0)));
        let mean = (0..n).map(|i| key.draw(&job(i), 2)).sum::<f64>() / n as f64;
        assert!((mean - 0.5).abs() < 0.01, "{mean}");
    }

    #[test]
    fn the_draw_depends_on_the_secret_and_the_attempt_and_is_repeatable() {
        let a = AuditKey::from_bytes([1; 32]);
        let b = AuditKey::from_bytes([2; 32]);
        let j = job(1);
        assert_eq!(a.draw(&j, 1), a.draw(&j, 1), "the same after a restart");
        assert_ne!(a.draw(&j, 1), b.draw(&j, 1), "another secret, another draw");
        assert_ne!(
            a.draw(&j, 1),
            a.draw(&j, 2),
            "another attempt, another draw"
        );
        // Without the secret the job id says nothing: the draws of two keys are unrelated.
        let agree = (0..2000)
            .filter(|i| a.selects(&job(*i), 1, 0.5) == b.selects(&job(*i), 1, 0.5))
            .count();
        assert!((900..1100).contains(&agree), "{agree}");
    }

    #[test]
    fn the_secret_is_not_printed() {
        let k = AuditKey::from_bytes([0xab; 32]);
        assert!(!format!("{k:?}").contains("ab"));
    }
}
