//! Envelope inspection for operators: decode whatever can be decoded and say exactly what is wrong.
//!
//! Unlike [`crate::envelope::Validator`], inspection does not stop at the first failure: it
//! reports the kind, fields and recovered signer even of an envelope that fails, because that is
//! what someone debugging the mesh needs to see.

use serde::Serialize;

use crate::address::Address;
use crate::envelope::{Envelope, MAX_ENVELOPE_BYTES, ValidationError, check_skew, decode_message};
use crate::hash::Hash32;
use crate::message::Message;
use crate::signature::Signature;

/// Optional checks beyond the signature.
#[derive(Debug, Clone, Default)]
pub struct InspectOptions {
    /// Also require this network name.
    pub net: Option<String>,
    /// Also require the timestamp within this many ms of `now_ms`.
    pub max_skew_ms: Option<u64>,
    /// The receiver's clock, unix ms (used with `max_skew_ms`).
    pub now_ms: u64,
}

/// What inspection found. Serializes to the `pocmesh inspect --json` shape.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    /// The message kind, if the payload decoded.
    pub kind: Option<String>,
    /// The `from` field, if the payload decoded.
    pub from: Option<Address>,
    /// The address the signature recovers to, if it recovers.
    pub signer: Option<Address>,
    /// Whether every check passed.
    pub valid: bool,
    /// The first failed check, in words.
    pub error: Option<String>,
    /// A short stable label of that failure (`bad_signature`, `signer_mismatch`, …).
    pub error_code: Option<&'static str>,
    /// keccak256 of the payload: the 32-byte message an Ethereum tool signs.
    pub payload_hash: Option<Hash32>,
    /// The signature.
    pub sig: Option<Signature>,
    /// Size of the envelope, bytes.
    pub size: usize,
    /// The decoded message.
    pub message: Option<Message>,
}

/// Turns user input into envelope bytes: hex text (optionally `0x`, whitespace ignored) is
/// decoded; anything else is taken as raw bytes.
pub fn input_bytes(raw: &[u8]) -> Vec<u8> {
    if let Ok(text) = std::str::from_utf8(raw) {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if let Ok(bytes) = crate::bytes::decode_hex(&compact)
            && !bytes.is_empty()
        {
            return bytes;
        }
    }
    raw.to_vec()
}

/// Inspects envelope bytes.
pub fn inspect(bytes: &[u8], options: &InspectOptions) -> InspectReport {
    let mut report = InspectReport {
        kind: None,
        from: None,
        signer: None,
        valid: false,
        error: None,
        error_code: None,
        payload_hash: None,
        sig: None,
        size: bytes.len(),
        message: None,
    };
    let mut first_error: Option<ValidationError> = None;
    let mut fail = |e: ValidationError| {
        if first_error.is_none() {
            first_error = Some(e);
        }
    };

    match Envelope::from_bytes(bytes, MAX_ENVELOPE_BYTES) {
        Err(e) => fail(e),
        Ok(envelope) => {
            report.payload_hash = Some(envelope.payload_hash());
            report.sig = Some(envelope.sig);
            match envelope.sig.recover_payload(&envelope.payload) {
                Ok(signer) => report.signer = Some(signer),
                Err(e) => fail(e.into()),
            }
            match decode_message(&envelope.payload) {
                Err(e) => fail(e),
                Ok(message) => {
                    report.kind = Some(message.kind().to_string());
                    report.from = Some(message.from);
                    if let Some(signer) = report.signer
                        && signer != message.from
                    {
                        fail(ValidationError::SignerMismatch {
                            signer,
                            from: message.from,
                        });
                    }
                    if let Some(net) = &options.net
                        && &message.net != net
                    {
                        fail(ValidationError::WrongNetwork {
                            expected: net.clone(),
                            got: message.net.clone(),
                        });
                    }
                    if let Some(max) = options.max_skew_ms
                        && let Err(e) = check_skew(message.ts, options.now_ms, max)
                    {
                        fail(e);
                    }
                    report.message = Some(message);
                }
            }
        }
    }
    report.valid = first_error.is_none();
    report.error_code = first_error.as_ref().map(ValidationError::label);
    report.error = first_error.map(|e| e.to_string());
    report
}
