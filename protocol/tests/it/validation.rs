//! Every receiver's checks: tampering, impersonation, replay, clocks, networks and size caps.

use pocmesh_protocol::*;
use proptest::prelude::*;

use crate::strategies::body;

const NET: &str = "devnet-551";
const NOW: u64 = 1_700_000_000_000;

fn key(n: u8) -> SecretKey {
    SecretKey::from_bytes(&[n; 32]).expect("key")
}

fn opt_out(k: &SecretKey, seq: u64, ts: u64) -> Message {
    Message::new(
        NET,
        k.address(),
        ts,
        Body::OptOut(OptOut {
            wallet: Address([9; 20]),
            seq,
        }),
    )
}

fn validator() -> Validator {
    Validator {
        net: NET.into(),
        max_bytes: MAX_ENVELOPE_BYTES,
        max_skew_ms: 30_000,
    }
}

#[test]
fn a_valid_envelope_passes() {
    let k = key(1);
    let bytes = Envelope::seal(&opt_out(&k, 1, NOW), &k)
        .expect("seal")
        .to_bytes();
    let v = validator().validate(&bytes, NOW + 10).expect("valid");
    assert_eq!(v.signer, k.address());
}

#[test]
fn a_message_signed_by_someone_else_is_refused_with_both_addresses() {
    let victim = key(1);
    let forger = key(2);
    // The forger claims to be the victim: seal refuses, so build the envelope by hand.
    assert!(matches!(
        Envelope::seal(&opt_out(&victim, 1, NOW), &forger),
        Err(SealError::FromMismatch { .. })
    ));
    let payload = serde_cbor::to_vec(&opt_out(&victim, 1, NOW)).expect("encode");
    let env = Envelope {
        sig: forger.sign_payload(&payload),
        payload: Bytes(payload),
    };
    let err = validator()
        .validate(&env.to_bytes(), NOW)
        .expect_err("forged");
    assert_eq!(
        err,
        ValidationError::SignerMismatch {
            signer: forger.address(),
            from: victim.address()
        }
    );
    assert!(err.to_string().contains(&victim.address().to_string()));
}

#[test]
fn a_zero_wallet_is_refused_in_heartbeats_and_opt_outs() {
    let k = key(1);
    let mut m = opt_out(&k, 1, NOW);
    m.body = Body::OptOut(OptOut {
        wallet: Address::ZERO,
        seq: 1,
    });
    let bytes = Envelope::seal(&m, &k).expect("seal").to_bytes();
    let err = validator().validate(&bytes, NOW).expect_err("zero wallet");
    assert_eq!(err, ValidationError::ZeroWallet { kind: Kind::OptOut });
    assert_eq!(err.label(), "zero_wallet");
    m.body = Body::Heartbeat(Heartbeat {
        seq: 2,
        wallet: Address::ZERO,
        peer: "12D3KooW".into(),
        caps: Capabilities::default(),
        policy: Hash32::ZERO,
        sw: "0".into(),
    });
    let bytes = Envelope::seal(&m, &k).expect("seal").to_bytes();
    assert!(matches!(
        validator().validate(&bytes, NOW),
        Err(ValidationError::ZeroWallet {
            kind: Kind::Heartbeat
        })
    ));
}

#[test]
fn wrong_network_is_refused() {
    let k = key(1);
    let mut m = opt_out(&k, 1, NOW);
    m.net = "xdc-apothem".into();
    let bytes = Envelope::seal(&m, &k).expect("seal").to_bytes();
    assert!(matches!(
        validator().validate(&bytes, NOW),
        Err(ValidationError::WrongNetwork { .. })
    ));
}

#[test]
fn timestamps_outside_the_window_are_refused_both_ways() {
    let k = key(1);
    let v = validator();
    let at = |ts| {
        Envelope::seal(&opt_out(&k, 1, ts), &k)
            .expect("seal")
            .to_bytes()
    };
    assert!(v.validate(&at(NOW - 30_000), NOW).is_ok());
    assert!(v.validate(&at(NOW + 30_000), NOW).is_ok());
    assert_eq!(
        v.validate(&at(NOW - 30_001), NOW).map(|_| ()),
        Err(ValidationError::StaleTimestamp {
            skew_ms: 30_001,
            max_ms: 30_000,
            direction: "behind"
        })
    );
    assert!(matches!(
        v.validate(&at(NOW + 60_000), NOW),
        Err(ValidationError::StaleTimestamp {
            direction: "ahead of",
            ..
        })
    ));
}

#[test]
fn oversized_input_is_refused_before_decoding() {
    let v = Validator::gossip(NET);
    // Garbage that would fail to decode: the size check must come first.
    let big = vec![0xffu8; MAX_GOSSIP_BYTES + 1];
    assert_eq!(
        v.validate(&big, NOW).map(|_| ()),
        Err(ValidationError::TooLarge {
            size: MAX_GOSSIP_BYTES + 1,
            max: MAX_GOSSIP_BYTES
        })
    );
    // A real, validly signed message that is merely too big is refused the same way.
    let k = key(1);
    let mut m = opt_out(&k, 1, NOW);
    m.net = NET.into();
    m.body = Body::JobResult(JobResult {
        job: JobId::default(),
        attempt: 1,
        status: ResultStatus::Ok,
        output: Some(Bytes(vec![7; MAX_GOSSIP_BYTES])),
        result_hash: Hash32::ZERO,
        metering: Metering::default(),
        error: None,
    });
    let bytes = Envelope::seal(&m, &k).expect("seal").to_bytes();
    assert!(matches!(
        v.validate(&bytes, NOW),
        Err(ValidationError::TooLarge { .. })
    ));
}

#[test]
fn garbage_and_truncation_give_errors_not_panics() {
    let k = key(1);
    let bytes = Envelope::seal(&opt_out(&k, 1, NOW), &k)
        .expect("seal")
        .to_bytes();
    for cut in 0..bytes.len() {
        assert!(
            validator().validate(&bytes[..cut], NOW).is_err(),
            "truncated at {cut}"
        );
    }
    for junk in [&b""[..], b"\x00", b"\xa2", b"\xbf\xff", b"hello world"] {
        assert!(validator().validate(junk, NOW).is_err());
    }
}

#[test]
fn replayed_sequence_is_refused_by_the_guard() {
    let k = key(1);
    let v = validator();
    let mut guard = ReplayGuard::new(ReplayConfig::default(), v.max_skew_ms).expect("guard");
    let accept = |guard: &mut ReplayGuard, seq, ts| -> Result<(), String> {
        let bytes = Envelope::seal(&opt_out(&k, seq, ts), &k)
            .expect("seal")
            .to_bytes();
        let verified = v.validate(&bytes, NOW).map_err(|e| e.to_string())?;
        let seq = verified.message.body.seq().expect("has seq");
        guard
            .check_and_record(&verified.signer, seq, verified.message.ts, NOW)
            .map_err(|e| e.to_string())
    };
    accept(&mut guard, 1, NOW).expect("first");
    accept(&mut guard, 2, NOW).expect("second");
    let err = accept(&mut guard, 2, NOW).expect_err("replay");
    assert!(err.contains("not above the last accepted (2)"), "{err}");
    assert!(accept(&mut guard, 1, NOW).is_err());
}

#[test]
fn high_s_malleated_signatures_are_refused() {
    // secp256k1 order n; s' = n - s gives a second valid signature for the same message.
    const N: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xfe, 0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36,
        0x41, 0x41,
    ];
    let k = key(1);
    let mut env = Envelope::seal(&opt_out(&k, 1, NOW), &k).expect("seal");
    let s = &env.sig.0[32..64];
    let mut neg = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = N[i] as i16 - s[i] as i16 - borrow;
        neg[i] = d.rem_euclid(256) as u8;
        borrow = i16::from(d < 0);
    }
    env.sig.0[32..64].copy_from_slice(&neg);
    env.sig.0[64] = 55 - env.sig.0[64]; // 27 <-> 28
    assert_eq!(
        env.open().map(|_| ()),
        Err(ValidationError::BadSignature(SignatureError::HighS))
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn any_flipped_byte_of_payload_or_signature_fails(b in body(), pos in any::<usize>(), mask in 1u8..=255) {
        let k = key(3);
        let mut env = Envelope::seal(&Message::new(NET, k.address(), NOW, b), &k).expect("seal");
        let total = env.payload.len() + 65;
        let i = pos % total;
        if i < env.payload.len() {
            env.payload.0[i] ^= mask;
        } else {
            env.sig.0[i - env.payload.len()] ^= mask;
        }
        prop_assert!(env.open().is_err());
    }

    #[test]
    fn any_flipped_byte_of_the_encoded_envelope_fails(b in body(), pos in any::<usize>(), mask in 1u8..=255) {
        let k = key(4);
        let mut bytes = Envelope::seal(&Message::new(NET, k.address(), NOW, b), &k).expect("seal").to_bytes();
        let i = pos % bytes.len();
        bytes[i] ^= mask;
        let v = Validator { net: NET.into(), max_bytes: MAX_ENVELOPE_BYTES, max_skew_ms: u64::MAX };
        prop_assert!(v.validate(&bytes, NOW).is_err());
    }
}
