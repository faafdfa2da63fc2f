//! Envelope hot paths: sign, recover, and a heartbeat's encode + decode.
//!
//! Run: `cargo bench -p pocmesh-protocol --bench envelope`; medians go to docs/benchmarks.md.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use pocmesh_protocol::*;

fn heartbeat(key: &SecretKey) -> Message {
    Message::new(
        "devnet-551",
        key.address(),
        1_700_000_000_000,
        Body::Heartbeat(Heartbeat {
            seq: 1234,
            wallet: key.address(),
            peer: "16Uiu2HAmXbW3k7ngnHwrZ3tEVyxBBa1Hs2xY2TF47cMUiTGBQ5Wv".into(),
            caps: Capabilities {
                cores: 8,
                mem_mb: 16_384,
                gpu: None,
                job_types: vec![JobType::Hash, JobType::Wasm, JobType::LinkHealth],
                slots_total: 4,
                slots_free: 3,
                receipts_batch: 64,
                jobs_batch: 64,
            },
            policy: Hash32::keccak(b"consent v1"),
            sw: "0.1.0".into(),
        }),
    )
}

fn benches(c: &mut Criterion) {
    let key = SecretKey::from_bytes(&[7; 32]).expect("key");
    let msg = heartbeat(&key);
    let env = Envelope::seal(&msg, &key).expect("seal");
    let bytes = env.to_bytes();
    let digest = pocmesh_protocol::signature::eip191_digest(&env.payload);
    let validator = Validator {
        net: "devnet-551".into(),
        max_bytes: MAX_GOSSIP_BYTES,
        max_skew_ms: u64::MAX,
    };

    c.bench_function("sign (personal_sign of a 32-byte digest)", |b| {
        b.iter(|| key.sign_prehash(black_box(&digest)))
    });
    c.bench_function("verify (recover signer)", |b| {
        b.iter(|| env.sig.recover_prehash(black_box(&digest)))
    });
    c.bench_function("heartbeat encode+decode (CBOR, no crypto)", |b| {
        b.iter(|| {
            let payload = serde_cbor::to_vec(black_box(&msg)).expect("encode");
            pocmesh_protocol::envelope::decode_message(&payload).expect("decode")
        })
    });
    c.bench_function("heartbeat seal (encode + sign)", |b| {
        b.iter(|| {
            Envelope::seal(black_box(&msg), &key)
                .expect("seal")
                .to_bytes()
        })
    });
    c.bench_function("heartbeat validate (decode + recover + checks)", |b| {
        b.iter(|| {
            validator
                .validate(black_box(&bytes), 1_700_000_000_000)
                .expect("valid")
        })
    });
}

criterion_group!(envelope, benches);
criterion_main!(envelope);
