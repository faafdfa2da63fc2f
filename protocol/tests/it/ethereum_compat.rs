//! Signatures interoperate with an independent Ethereum implementation (ethers): theirs verify
//! here, ours verify there, over keccak256 of the same CBOR payload (EIP-191 personal_sign).

use ethers_core::types::{H160, RecoveryMessage, Signature as EthSignature};
use ethers_signers::{LocalWallet, Signer};
use pocmesh_protocol::*;

const NET: &str = "devnet-551";
const SECRET: &str = "59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";

fn message(from: Address) -> Message {
    Message::new(
        NET,
        from,
        1_700_000_000_000,
        Body::OptOut(OptOut {
            wallet: from,
            seq: 3,
        }),
    )
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    // LocalWallet's signing future completes on first poll; a minimal executor is enough.
    let mut f = std::pin::pin!(f);
    let waker = std::task::Waker::noop();
    let mut cx = std::task::Context::from_waker(waker);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
}

#[test]
fn addresses_agree_with_ethers() {
    let ours = SecretKey::from_hex(SECRET).expect("key");
    let theirs: LocalWallet = SECRET.parse().expect("wallet");
    assert_eq!(ours.address().0, theirs.address().0);
    assert_eq!(
        ours.address().to_string(),
        ethers_core::utils::to_checksum(&theirs.address(), None)
    );
}

#[test]
fn an_ethers_signature_verifies_here() {
    let wallet: LocalWallet = SECRET.parse().expect("wallet");
    let from = Address(wallet.address().0);
    let payload = serde_cbor::to_vec(&message(from)).expect("encode");
    // personal_sign of the 32-byte message keccak256(payload), as any wallet would do it.
    let digest = ethers_core::utils::keccak256(&payload);
    let sig = block_on(wallet.sign_message(digest)).expect("sign");
    let env = Envelope {
        payload: Bytes(payload),
        sig: Signature::from_slice(&sig.to_vec()).expect("65 bytes"),
    };
    let verified = Validator {
        net: NET.into(),
        max_bytes: MAX_ENVELOPE_BYTES,
        max_skew_ms: u64::MAX,
    }
    .validate(&env.to_bytes(), 1_700_000_000_000)
    .expect("ethers-made envelope is valid");
    assert_eq!(verified.signer, from);
}

#[test]
fn our_signature_verifies_in_ethers() {
    let key = SecretKey::from_hex(SECRET).expect("key");
    let env = Envelope::seal(&message(key.address()), &key).expect("seal");
    let sig = EthSignature::try_from(&env.sig.0[..]).expect("ethers parses 65 bytes");
    let digest = ethers_core::utils::keccak256(&env.payload);
    let recovered = sig
        .recover(RecoveryMessage::Data(digest.to_vec()))
        .expect("recovers");
    assert_eq!(recovered, H160(key.address().0));
    sig.verify(
        RecoveryMessage::Data(digest.to_vec()),
        H160(key.address().0),
    )
    .expect("verifies");
    // Same key, same digest: RFC 6979 makes both libraries produce the very same bytes.
    let wallet: LocalWallet = SECRET.parse().expect("wallet");
    let theirs = block_on(wallet.sign_message(digest)).expect("sign");
    assert_eq!(theirs.to_vec(), env.sig.0.to_vec());
}

#[test]
fn eip191_digest_matches_ethers_hash_message() {
    for payload in [&b""[..], b"x", &[0u8; 1000]] {
        let digest = ethers_core::utils::keccak256(payload);
        assert_eq!(
            pocmesh_protocol::signature::eip191_digest(payload),
            ethers_core::utils::hash_message(digest).0
        );
    }
}
