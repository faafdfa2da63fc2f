//! The bytes on the wire match DESIGN.md: CBOR maps with text keys, byte strings for bytes,
//! integers for integers; codecs round-trip; unknown fields are tolerated.

use std::collections::BTreeMap;

use pocmesh_protocol::*;
use proptest::prelude::*;
use serde_cbor::Value;

use crate::strategies::body;

fn key() -> SecretKey {
    SecretKey::from_hex("0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318")
        .expect("key")
}

fn as_map(v: &Value) -> &BTreeMap<Value, Value> {
    match v {
        Value::Map(m) => m,
        other => panic!("expected a CBOR map, got {other:?}"),
    }
}

fn field<'a>(m: &'a BTreeMap<Value, Value>, name: &str) -> &'a Value {
    m.get(&Value::Text(name.into()))
        .unwrap_or_else(|| panic!("field {name} missing"))
}

fn heartbeat(seq: u64, ts: u64) -> Message {
    let k = key();
    Message::new(
        "devnet-551",
        k.address(),
        ts,
        Body::Heartbeat(Heartbeat {
            seq,
            wallet: "xdc5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
                .parse()
                .expect("wallet"),
            peer: "16Uiu2HAm".into(),
            caps: Capabilities {
                cores: 2,
                mem_mb: 1024,
                gpu: None,
                job_types: vec![JobType::Hash, JobType::Wasm],
                slots_total: 2,
                slots_free: 1,
                receipts_batch: 0,
                jobs_batch: 0,
            },
            policy: Hash32::keccak(b"consent v1"),
            sw: "0.1.0".into(),
        }),
    )
}

#[test]
fn envelope_and_payload_have_the_locked_shape() {
    let env = Envelope::seal(&heartbeat(7, 1_700_000_000_123), &key()).expect("seal");
    let outer: Value = serde_cbor::from_slice(&env.to_bytes()).expect("cbor");
    let outer = as_map(&outer);
    assert_eq!(outer.len(), 2);
    let Value::Bytes(payload) = field(outer, "payload") else {
        panic!("payload must be a byte string")
    };
    let Value::Bytes(sig) = field(outer, "sig") else {
        panic!("sig must be a byte string")
    };
    assert_eq!(sig.len(), 65);
    assert!(sig[64] == 27 || sig[64] == 28);

    let msg: Value = serde_cbor::from_slice(payload).expect("payload cbor");
    let msg = as_map(&msg);
    assert_eq!(field(msg, "v"), &Value::Integer(1));
    assert_eq!(field(msg, "kind"), &Value::Text("heartbeat".into()));
    assert_eq!(field(msg, "net"), &Value::Text("devnet-551".into()));
    assert_eq!(field(msg, "ts"), &Value::Integer(1_700_000_000_123));
    assert_eq!(field(msg, "seq"), &Value::Integer(7));
    assert_eq!(
        field(msg, "from"),
        &Value::Bytes(key().address().0.to_vec())
    );
    let Value::Bytes(wallet) = field(msg, "wallet") else {
        panic!("wallet must be bytes")
    };
    assert_eq!(wallet.len(), 20);
    let Value::Bytes(policy) = field(msg, "policy") else {
        panic!("policy must be bytes")
    };
    assert_eq!(policy.len(), 32);
    let caps = as_map(field(msg, "caps"));
    assert_eq!(
        field(caps, "job_types"),
        &Value::Array(vec![Value::Text("hash".into()), Value::Text("wasm".into())])
    );
}

#[test]
fn a_heartbeat_fits_the_gossip_cap_with_room_to_spare() {
    let env = Envelope::seal(&heartbeat(u64::MAX, u64::MAX), &key()).expect("seal");
    assert!(
        env.to_bytes().len() < MAX_GOSSIP_BYTES / 4,
        "{} bytes",
        env.to_bytes().len()
    );
}

#[test]
fn unknown_fields_and_job_types_are_tolerated() {
    let env = Envelope::seal(&heartbeat(1, 5), &key()).expect("seal");
    let mut msg: BTreeMap<Value, Value> = serde_cbor::from_slice(&env.payload).expect("cbor");
    msg.insert(Value::Text("future_field".into()), Value::Integer(42));
    let caps = msg.get_mut(&Value::Text("caps".into())).expect("caps");
    if let Value::Map(c) = caps {
        c.insert(
            Value::Text("job_types".into()),
            Value::Array(vec![Value::Text("quantum".into())]),
        );
        c.insert(Value::Text("tpu".into()), Value::Bool(true));
    }
    let payload = serde_cbor::to_vec(&msg).expect("encode");
    let decoded = pocmesh_protocol::envelope::decode_message(&payload).expect("still decodes");
    let Body::Heartbeat(h) = decoded.body else {
        panic!("heartbeat")
    };
    assert_eq!(h.caps.job_types, vec![JobType::Unknown]);
}

#[test]
fn receipts_batch_is_announced_only_when_set_and_receipts_travel_as_one_list() {
    // 0 (and older nodes) leave it out: the pinned heartbeat below is unchanged by it.
    let env = Envelope::seal(&heartbeat(1, 5), &key()).expect("seal");
    let msg: Value = serde_cbor::from_slice(&env.payload).expect("cbor");
    let caps = as_map(field(as_map(&msg), "caps"));
    assert!(!caps.contains_key(&Value::Text("receipts_batch".into())));
    let mut m = heartbeat(2, 6);
    if let Body::Heartbeat(h) = &mut m.body {
        h.caps.receipts_batch = 64;
    }
    let env = Envelope::seal(&m, &key()).expect("seal");
    let msg: Value = serde_cbor::from_slice(&env.payload).expect("cbor");
    let caps = as_map(field(as_map(&msg), "caps"));
    assert_eq!(
        field(caps, "receipts_batch"),
        &Value::Integer(64),
        "announced as a plain integer"
    );

    let receipt = pocmesh_protocol::Receipt {
        job: pocmesh_protocol::JobId::from([1; 32]),
        batch: pocmesh_protocol::BatchId::from([2; 32]),
        tx: Hash32([3; 32]),
        block: 4,
        units: 5,
        provider: key().address(),
        result_hash: Hash32([6; 32]),
        proof: vec![Hash32([7; 32])],
    };
    let m = Message::new(
        "devnet-551",
        key().address(),
        9,
        Body::Receipts(pocmesh_protocol::Receipts {
            receipts: vec![receipt.clone(), receipt],
        }),
    );
    let env = Envelope::seal(&m, &key()).expect("seal");
    let msg: Value = serde_cbor::from_slice(&env.payload).expect("cbor");
    let msg = as_map(&msg);
    assert_eq!(field(msg, "kind"), &Value::Text("receipts".into()));
    let Value::Array(items) = field(msg, "receipts") else {
        panic!("receipts must be an array")
    };
    assert_eq!(items.len(), 2);
    assert_eq!(
        field(as_map(&items[0]), "job"),
        &Value::Bytes(vec![1; 32]),
        "each item is a receipt as the single kind carries it"
    );
}

#[test]
fn jobs_batch_is_announced_only_when_set_and_offers_and_results_travel_as_lists() {
    let env = Envelope::seal(&heartbeat(1, 5), &key()).expect("seal");
    let msg: Value = serde_cbor::from_slice(&env.payload).expect("cbor");
    let caps = as_map(field(as_map(&msg), "caps"));
    assert!(!caps.contains_key(&Value::Text("jobs_batch".into())));
    let mut m = heartbeat(2, 6);
    if let Body::Heartbeat(h) = &mut m.body {
        h.caps.jobs_batch = 64;
    }
    let env = Envelope::seal(&m, &key()).expect("seal");
    let msg: Value = serde_cbor::from_slice(&env.payload).expect("cbor");
    let caps = as_map(field(as_map(&msg), "caps"));
    assert_eq!(field(caps, "jobs_batch"), &Value::Integer(64));

    let offer = pocmesh_protocol::JobOffer {
        job: pocmesh_protocol::JobId::from([1; 32]),
        spec: pocmesh_protocol::JobSpec {
            params: pocmesh_protocol::JobParams::Hash {
                seed: Hash32([2; 32]),
                iterations: 3,
            },
            limits: pocmesh_protocol::Limits {
                max_ms: 1_000,
                max_mem_mb: 16,
                max_output_bytes: 64,
                max_fuel: None,
            },
        },
        lease_ms: 30_000,
        attempt: 1,
    };
    let m = Message::new(
        "devnet-551",
        key().address(),
        9,
        Body::JobOffers(pocmesh_protocol::JobOffers {
            offers: vec![offer.clone(), offer],
        }),
    );
    let env = Envelope::seal(&m, &key()).expect("seal");
    let msg: Value = serde_cbor::from_slice(&env.payload).expect("cbor");
    let msg = as_map(&msg);
    assert_eq!(field(msg, "kind"), &Value::Text("job_offers".into()));
    let Value::Array(items) = field(msg, "offers") else {
        panic!("offers must be an array")
    };
    assert_eq!(items.len(), 2);
    let item = as_map(&items[0]);
    assert_eq!(field(item, "job"), &Value::Bytes(vec![1; 32]));
    assert_eq!(
        field(as_map(field(item, "spec")), "type"),
        &Value::Text("hash".into()),
        "each item is an offer as the single kind carries it"
    );

    let result = pocmesh_protocol::JobResult {
        job: pocmesh_protocol::JobId::from([4; 32]),
        attempt: 2,
        status: pocmesh_protocol::ResultStatus::Ok,
        output: Some(pocmesh_protocol::Bytes(vec![5; 4])),
        result_hash: Hash32([6; 32]),
        metering: Default::default(),
        error: None,
    };
    let m = Message::new(
        "devnet-551",
        key().address(),
        9,
        Body::JobResults(pocmesh_protocol::JobResults {
            results: vec![result],
        }),
    );
    let env = Envelope::seal(&m, &key()).expect("seal");
    let msg: Value = serde_cbor::from_slice(&env.payload).expect("cbor");
    let msg = as_map(&msg);
    assert_eq!(field(msg, "kind"), &Value::Text("job_results".into()));
    let Value::Array(items) = field(msg, "results") else {
        panic!("results must be an array")
    };
    assert_eq!(field(as_map(&items[0]), "attempt"), &Value::Integer(2));
}

#[test]
fn another_protocol_version_is_refused_by_name() {
    let env = Envelope::seal(&heartbeat(1, 5), &key()).expect("seal");
    let mut msg: BTreeMap<Value, Value> = serde_cbor::from_slice(&env.payload).expect("cbor");
    msg.insert(Value::Text("v".into()), Value::Integer(2));
    let payload = serde_cbor::to_vec(&msg).expect("encode");
    assert_eq!(
        pocmesh_protocol::envelope::decode_message(&payload),
        Err(ValidationError::UnsupportedVersion { v: 2, supported: 1 })
    );
}

#[test]
fn signing_is_deterministic_and_pinned() {
    // RFC 6979 signatures are deterministic, so this envelope is a fixed vector: if it changes,
    // the wire format changed and needs a version bump.
    let env = Envelope::seal(&heartbeat(7, 1_700_000_000_123), &key()).expect("seal");
    let again = Envelope::seal(&heartbeat(7, 1_700_000_000_123), &key()).expect("seal");
    assert_eq!(env, again);
    let hex_bytes = hex::encode(env.to_bytes());
    assert_eq!(
        hex_bytes,
        include_str!("vectors/heartbeat.envelope.hex").trim(),
        "the encoded heartbeat changed: the wire format changed"
    );
}

proptest! {
    #[test]
    fn every_message_round_trips(b in body(), ts in any::<u64>(), net in "[a-z0-9-]{1,20}") {
        let k = key();
        let m = Message::new(net, k.address(), ts, b);
        let env = Envelope::seal(&m, &k).expect("seal");
        let bytes = env.to_bytes();
        let back = Envelope::from_bytes(&bytes, MAX_ENVELOPE_BYTES).expect("decode");
        prop_assert_eq!(&back, &env);
        let verified = back.open().expect("opens");
        prop_assert_eq!(verified.signer, k.address());
        prop_assert_eq!(verified.message, m.clone());
        // JSON (what `inspect --json` prints) round-trips too.
        let json = serde_json::to_string(&m).expect("json");
        let from_json: Message = serde_json::from_str(&json).expect("json back");
        prop_assert_eq!(from_json, m);
    }
}
