//! Signed envelopes: `{ "payload": bstr, "sig": bstr(65) }`, and the checks every receiver makes.
//!
//! [`Envelope::seal`] encodes and signs a [`Message`]; [`Validator::validate`] takes untrusted
//! bytes and, in order, caps the size before decoding anything, decodes the envelope, recovers
//! the signer, decodes the payload, checks the version, that the signer is `from`, the network,
//! and the timestamp window. Replay (sequence) checks are stateful and live in
//! [`crate::replay::ReplayGuard`].

use serde::{Deserialize, Serialize};

use crate::address::Address;
use crate::bytes::Bytes;
use crate::hash::Hash32;
use crate::keys::SecretKey;
use crate::message::{Body, Kind, Message, PROTOCOL_VERSION};
use crate::signature::{Signature, SignatureError};

/// The largest envelope any pocmesh receiver decodes (a wasm job offer with its module).
pub const MAX_ENVELOPE_BYTES: usize = 8 * 1024 * 1024;
/// The largest heartbeat (and other gossip message) accepted.
pub const MAX_GOSSIP_BYTES: usize = 4 * 1024;
/// Default allowed clock difference between author and receiver, milliseconds.
pub const DEFAULT_MAX_SKEW_MS: u64 = 30_000;

/// A signed message as it travels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// CBOR encoding of a [`Message`].
    pub payload: Bytes,
    /// Signature over the EIP-191 digest of keccak256(payload).
    pub sig: Signature,
}

/// Why an envelope was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    /// Larger than allowed for where it arrived; nothing was decoded.
    #[error("message is {size} bytes, over the {max}-byte limit")]
    TooLarge {
        /// Bytes received.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The outer envelope is not valid CBOR of the expected shape.
    #[error("envelope is not valid CBOR {{payload, sig}}: {reason}")]
    MalformedEnvelope {
        /// The decoder's complaint.
        reason: String,
    },
    /// The signature does not verify.
    #[error("bad signature: {0}")]
    BadSignature(#[from] SignatureError),
    /// The payload is not a valid CBOR message.
    #[error("payload is not a valid pocmesh message: {reason}")]
    MalformedPayload {
        /// The decoder's complaint.
        reason: String,
    },
    /// A protocol version this software does not speak.
    #[error(
        "protocol version {v} is not supported (this software speaks {supported}); upgrade pocmesh"
    )]
    UnsupportedVersion {
        /// The version found.
        v: u8,
        /// The version supported.
        supported: u8,
    },
    /// The signature is valid but made by someone other than `from`.
    #[error("signed by {signer}, but the message claims to be from {from}")]
    SignerMismatch {
        /// Who signed.
        signer: Address,
        /// Who the message claims.
        from: Address,
    },
    /// Meant for another network.
    #[error("message is for network {got:?}, this is {expected:?}")]
    WrongNetwork {
        /// This receiver's network.
        expected: String,
        /// The message's network.
        got: String,
    },
    /// The timestamp is outside the allowed window around the receiver's clock.
    #[error(
        "timestamp is {skew_ms} ms {direction} the receiver's clock, over the {max_ms} ms allowed; check the sender's clock (NTP)"
    )]
    StaleTimestamp {
        /// How far off, in milliseconds.
        skew_ms: u64,
        /// The allowed skew.
        max_ms: u64,
        /// "behind" (old or replayed) or "ahead of" (clock ahead).
        direction: &'static str,
    },
    /// A kind that does not belong where it arrived (e.g. a job offer on the heartbeat topic).
    #[error("a {kind} message is not accepted here")]
    UnexpectedKind {
        /// The kind found.
        kind: Kind,
    },
    /// A heartbeat or opt-out names the zero address as its wallet, which can never be credited.
    #[error(
        "a {kind} names the zero address as its wallet; run the node with a wallet you control"
    )]
    ZeroWallet {
        /// The kind found.
        kind: Kind,
    },
}

impl ValidationError {
    /// Short stable label for metrics and logs (`too_large`, `bad_signature`, …).
    pub fn label(&self) -> &'static str {
        match self {
            ValidationError::TooLarge { .. } => "too_large",
            ValidationError::MalformedEnvelope { .. } => "malformed_envelope",
            ValidationError::BadSignature(_) => "bad_signature",
            ValidationError::MalformedPayload { .. } => "malformed_payload",
            ValidationError::UnsupportedVersion { .. } => "unsupported_version",
            ValidationError::SignerMismatch { .. } => "signer_mismatch",
            ValidationError::WrongNetwork { .. } => "wrong_network",
            ValidationError::StaleTimestamp { .. } => "stale_timestamp",
            ValidationError::UnexpectedKind { .. } => "unexpected_kind",
            ValidationError::ZeroWallet { .. } => "zero_wallet",
        }
    }
}

/// A message whose signature has been checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    /// The decoded message.
    pub message: Message,
    /// The address the signature recovers to (equal to `message.from`).
    pub signer: Address,
    /// keccak256 of the payload: the 32-byte message an Ethereum tool signs or recovers.
    pub payload_hash: Hash32,
}

impl Envelope {
    /// Encodes `message` and signs it with `key`.
    ///
    /// The message's `from` must be the key's address; otherwise every receiver would reject it.
    pub fn seal(message: &Message, key: &SecretKey) -> Result<Envelope, SealError> {
        if message.from != key.address() {
            return Err(SealError::FromMismatch {
                from: message.from,
                key: key.address(),
            });
        }
        let payload = serde_cbor::to_vec(message).map_err(|e| SealError::Encode(e.to_string()))?;
        let sig = key.sign_payload(&payload);
        Ok(Envelope {
            payload: Bytes(payload),
            sig,
        })
    }

    /// The envelope's CBOR bytes, as sent.
    pub fn to_bytes(&self) -> Vec<u8> {
        // Encoding two byte strings into a map cannot fail.
        serde_cbor::to_vec(self).unwrap_or_default()
    }

    /// Decodes envelope bytes after checking their size; checks no signature.
    pub fn from_bytes(bytes: &[u8], max_bytes: usize) -> Result<Envelope, ValidationError> {
        if bytes.len() > max_bytes {
            return Err(ValidationError::TooLarge {
                size: bytes.len(),
                max: max_bytes,
            });
        }
        serde_cbor::from_slice(bytes).map_err(|e| ValidationError::MalformedEnvelope {
            reason: e.to_string(),
        })
    }

    /// keccak256 of the payload.
    pub fn payload_hash(&self) -> Hash32 {
        Hash32::keccak(&self.payload)
    }

    /// Recovers the signer and decodes the payload; checks version and `from`, not network or
    /// time (see [`Validator`]).
    pub fn open(&self) -> Result<Verified, ValidationError> {
        let signer = self.sig.recover_payload(&self.payload)?;
        let message = decode_message(&self.payload)?;
        if message.from != signer {
            return Err(ValidationError::SignerMismatch {
                signer,
                from: message.from,
            });
        }
        Ok(Verified {
            message,
            signer,
            payload_hash: self.payload_hash(),
        })
    }
}

/// Decodes a payload into a [`Message`] and checks its version.
pub fn decode_message(payload: &[u8]) -> Result<Message, ValidationError> {
    // Peek at `v` first so a future version gets a clear error rather than a decode failure.
    #[derive(Deserialize)]
    struct Header {
        v: u8,
    }
    let header: Header =
        serde_cbor::from_slice(payload).map_err(|e| ValidationError::MalformedPayload {
            reason: e.to_string(),
        })?;
    if header.v != PROTOCOL_VERSION {
        return Err(ValidationError::UnsupportedVersion {
            v: header.v,
            supported: PROTOCOL_VERSION,
        });
    }
    serde_cbor::from_slice(payload).map_err(|e| ValidationError::MalformedPayload {
        reason: e.to_string(),
    })
}

/// Why a message could not be sealed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    /// `from` is not the signing key's address.
    #[error("message from {from} cannot be signed by the key of {key}")]
    FromMismatch {
        /// The message's `from`.
        from: Address,
        /// The key's address.
        key: Address,
    },
    /// CBOR encoding failed.
    #[error("encoding the message failed: {0}")]
    Encode(String),
}

/// The stateless checks a receiver applies to every envelope, configured once.
#[derive(Debug, Clone)]
pub struct Validator {
    /// The receiver's network name.
    pub net: String,
    /// Size cap, checked before decoding.
    pub max_bytes: usize,
    /// Allowed |ts − now|, milliseconds.
    pub max_skew_ms: u64,
}

impl Validator {
    /// A validator for `net` with the gossip size cap and the default skew window.
    pub fn gossip(net: impl Into<String>) -> Self {
        Validator {
            net: net.into(),
            max_bytes: MAX_GOSSIP_BYTES,
            max_skew_ms: DEFAULT_MAX_SKEW_MS,
        }
    }

    /// Runs every stateless check on `bytes` received at `now_ms` (unix milliseconds).
    pub fn validate(&self, bytes: &[u8], now_ms: u64) -> Result<Verified, ValidationError> {
        let envelope = Envelope::from_bytes(bytes, self.max_bytes)?;
        let verified = envelope.open()?;
        self.check_message(&verified.message, now_ms)?;
        Ok(verified)
    }

    /// Network, timestamp and content checks of an already decoded message.
    pub fn check_message(&self, message: &Message, now_ms: u64) -> Result<(), ValidationError> {
        if message.net != self.net {
            return Err(ValidationError::WrongNetwork {
                expected: self.net.clone(),
                got: message.net.clone(),
            });
        }
        check_skew(message.ts, now_ms, self.max_skew_ms)?;
        check_body(&message.body)
    }
}

/// Content rules every receiver enforces, whatever the transport: a heartbeat or opt-out must
/// name a wallet that can be credited (the contract refuses the zero address, and one such
/// credit must never reach a batch).
pub fn check_body(body: &Body) -> Result<(), ValidationError> {
    let wallet = match body {
        Body::Heartbeat(h) => Some(h.wallet),
        Body::OptOut(o) => Some(o.wallet),
        _ => None,
    };
    if wallet == Some(Address::ZERO) {
        return Err(ValidationError::ZeroWallet { kind: body.kind() });
    }
    Ok(())
}

/// Checks `|ts − now| ≤ max_ms`.
pub fn check_skew(ts: u64, now_ms: u64, max_ms: u64) -> Result<(), ValidationError> {
    let (skew_ms, direction) = if ts <= now_ms {
        (now_ms - ts, "behind")
    } else {
        (ts - now_ms, "ahead of")
    };
    if skew_ms > max_ms {
        return Err(ValidationError::StaleTimestamp {
            skew_ms,
            max_ms,
            direction,
        });
    }
    Ok(())
}

/// The current time in unix milliseconds (0 if the clock is before 1970).
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
