//! Untrusted bytes through every check a gossip receiver makes, then the replay guard:
//! never a panic, and anything accepted really is signed by its `from`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pocmesh_protocol::{ReplayConfig, ReplayGuard, Validator};

fuzz_target!(|data: &[u8]| {
    let validator = Validator { net: "devnet-551".into(), max_bytes: 4096, max_skew_ms: u64::MAX };
    if let Ok(v) = validator.validate(data, 1_700_000_000_000) {
        assert_eq!(v.signer, v.message.from);
        let mut guard = ReplayGuard::new(ReplayConfig { capacity: 4, ttl_ms: 120_000 }, 30_000).expect("guard");
        if let Some(seq) = v.message.body.seq() {
            assert!(guard.check_and_record(&v.signer, seq, v.message.ts, 0).is_ok());
            assert!(guard.check_and_record(&v.signer, seq, v.message.ts, 0).is_err());
        }
    }
});
