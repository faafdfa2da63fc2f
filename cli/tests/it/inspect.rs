//! `pocmesh inspect` on envelopes made by an independent Ethereum library: ethers signs, and the
//! CBOR is assembled from generic CBOR values, not from pocmesh's own types.

use std::collections::BTreeMap;

use ethers_signers::{LocalWallet, Signer};
use serde_cbor::Value;

use crate::{json, pocmesh};

const SECRET: &str = "5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a";

fn text(s: &str) -> Value {
    Value::Text(s.into())
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

/// An `opt_out` message signed by ethers, as envelope bytes; also returns the signer.
fn independent_envelope() -> (Vec<u8>, String) {
    let wallet: LocalWallet = SECRET.parse().expect("wallet");
    let from = wallet.address().0.to_vec();
    let mut msg = BTreeMap::new();
    msg.insert(text("v"), Value::Integer(1));
    msg.insert(text("kind"), text("opt_out"));
    msg.insert(text("net"), text("devnet-551"));
    msg.insert(text("from"), Value::Bytes(from.clone()));
    msg.insert(text("ts"), Value::Integer(1_700_000_000_000));
    msg.insert(text("wallet"), Value::Bytes(from));
    msg.insert(text("seq"), Value::Integer(42));
    let payload = serde_cbor::to_vec(&Value::Map(msg)).expect("encode payload");
    let sig = block_on(wallet.sign_message(ethers_core::utils::keccak256(&payload))).expect("sign");
    let mut env = BTreeMap::new();
    env.insert(text("payload"), Value::Bytes(payload));
    env.insert(text("sig"), Value::Bytes(sig.to_vec()));
    let bytes = serde_cbor::to_vec(&Value::Map(env)).expect("encode envelope");
    (
        bytes,
        ethers_core::utils::to_checksum(&wallet.address(), None),
    )
}

#[test]
fn an_ethers_signed_envelope_is_valid_with_the_right_signer() {
    let (bytes, signer) = independent_envelope();
    let out = pocmesh(&["inspect", "--json", &hex::encode(&bytes)], None);
    assert!(out.status.success(), "exit {:?}", out.status);
    let j = json(&out);
    assert_eq!(j["valid"], true);
    assert_eq!(j["kind"], "opt_out");
    assert_eq!(j["signer"], signer.as_str());
    assert_eq!(j["from"], signer.as_str());
    assert_eq!(j["error"], serde_json::Value::Null);
    assert_eq!(j["message"]["seq"], 42);
    assert_eq!(j["message"]["wallet"], signer.as_str());
}

#[test]
fn raw_bytes_on_stdin_work_too() {
    let (bytes, signer) = independent_envelope();
    let out = pocmesh(&["inspect", "--json", "-"], Some(&bytes));
    let j = json(&out);
    assert_eq!(j["valid"], true);
    assert_eq!(j["signer"], signer.as_str());
}

#[test]
fn a_tampered_copy_is_invalid_with_a_reason() {
    let (mut bytes, signer) = independent_envelope();
    // Change the seq (42 = 0x18 0x2a in CBOR) to 43 inside the signed payload.
    let at = bytes
        .windows(2)
        .position(|w| w == [0x18, 0x2a])
        .expect("seq in payload");
    bytes[at + 1] = 0x2b;
    let out = pocmesh(&["inspect", "--json", &hex::encode(&bytes)], None);
    assert_eq!(out.status.code(), Some(1));
    let j = json(&out);
    assert_eq!(j["valid"], false);
    assert_eq!(j["error_code"], "signer_mismatch");
    assert_eq!(j["from"], signer.as_str());
    assert_ne!(j["signer"], signer.as_str());
    assert!(
        j["error"]
            .as_str()
            .expect("error text")
            .contains("claims to be from")
    );
    assert_eq!(j["message"]["seq"], 43);
}

#[test]
fn a_damaged_signature_is_invalid_with_a_reason() {
    let (mut bytes, _) = independent_envelope();
    // "sig" (text, 3) then a 65-byte byte string header; v is its last byte.
    let at = bytes
        .windows(6)
        .position(|w| w == [0x63, b's', b'i', b'g', 0x58, 0x41])
        .expect("sig field");
    bytes[at + 6 + 64] = 30;
    let j = json(&pocmesh(&["inspect", "--json", &hex::encode(&bytes)], None));
    assert_eq!(j["valid"], false);
    assert_eq!(j["error_code"], "bad_signature");
    assert!(j["error"].as_str().expect("text").contains("v = 30"));
}

#[test]
fn network_and_clock_checks_are_opt_in() {
    let (bytes, _) = independent_envelope();
    let h = hex::encode(&bytes);
    let j = json(&pocmesh(
        &["inspect", "--json", "--net", "xdc-apothem", &h],
        None,
    ));
    assert_eq!(j["error_code"], "wrong_network");
    let j = json(&pocmesh(
        &["inspect", "--json", "--max-skew", "30", &h],
        None,
    ));
    assert_eq!(j["error_code"], "stale_timestamp");
}

#[test]
fn non_hex_argument_is_a_usage_error() {
    let out = pocmesh(&["inspect", "not-hex"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be hex"));
}
