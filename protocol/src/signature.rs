//! Ethereum-compatible signatures: EIP-191 `personal_sign` over a 32-byte digest, 65 bytes r‖s‖v.
//!
//! pocmesh signs `keccak256(payload)` the way `personal_sign` signs a 32-byte message, so any
//! Ethereum tool can check a pocmesh signature: recover the signer of the message
//! `keccak256(payload)` and compare it with the `from` field.

use std::fmt;

use k256::ecdsa::{RecoveryId, Signature as EcdsaSignature, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::address::Address;
use crate::bytes::fixed_bytes_visitor;
use crate::hash::{keccak256, keccak256_concat};

/// Length of a serialized signature: r (32) ‖ s (32) ‖ v (1).
pub const SIGNATURE_LEN: usize = 65;

/// The digest that is actually signed for a payload:
/// `keccak256("\x19Ethereum Signed Message:\n32" ‖ keccak256(payload))`.
pub fn eip191_digest(payload: &[u8]) -> [u8; 32] {
    personal_sign_digest(&keccak256(payload))
}

/// EIP-191 `personal_sign` digest of a 32-byte message.
pub fn personal_sign_digest(message: &[u8; 32]) -> [u8; 32] {
    keccak256_concat(&[b"\x19Ethereum Signed Message:\n32", message])
}

/// Why a signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The signature is not 65 bytes long.
    #[error("signature is {len} bytes; it must be 65 (r ‖ s ‖ v)")]
    WrongLength {
        /// The length found.
        len: usize,
    },
    /// `v` is not 27 or 28 (0 and 1 are accepted too, as some tools emit them).
    #[error("signature recovery byte v = {v}; it must be 27 or 28")]
    BadRecoveryByte {
        /// The byte found.
        v: u8,
    },
    /// `r` or `s` is zero or not below the curve order.
    #[error("signature r or s is out of range")]
    OutOfRange,
    /// `s` is in the upper half of the order: a malleated copy of a valid signature.
    #[error(
        "signature s is in the upper half of the curve order (malleable); re-sign with a standard signer"
    )]
    HighS,
    /// No public key can be recovered from this signature and digest.
    #[error("no public key can be recovered from this signature")]
    Unrecoverable,
}

/// A 65-byte recoverable secp256k1 signature, r ‖ s ‖ v with v = 27 or 28.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; SIGNATURE_LEN]);

impl Signature {
    /// Wraps bytes of the right length; checks nothing else (see [`Signature::recover_prehash`]).
    pub fn from_slice(bytes: &[u8]) -> Result<Self, SignatureError> {
        let arr: [u8; SIGNATURE_LEN] = bytes
            .try_into()
            .map_err(|_| SignatureError::WrongLength { len: bytes.len() })?;
        Ok(Signature(arr))
    }

    /// Builds the 65-byte form from a k256 signature and recovery id.
    pub(crate) fn from_parts(sig: &EcdsaSignature, recid: RecoveryId) -> Self {
        let mut out = [0u8; SIGNATURE_LEN];
        out[..64].copy_from_slice(&sig.to_bytes());
        out[64] = 27 + u8::from(recid.is_y_odd());
        Signature(out)
    }

    /// The raw 65 bytes.
    pub fn as_bytes(&self) -> &[u8; SIGNATURE_LEN] {
        &self.0
    }

    /// Recovers the address that signed the 32-byte `digest` (already EIP-191 hashed).
    pub fn recover_prehash(&self, digest: &[u8; 32]) -> Result<Address, SignatureError> {
        let v = self.0[64];
        let y_odd = match v {
            27 | 0 => false,
            28 | 1 => true,
            _ => return Err(SignatureError::BadRecoveryByte { v }),
        };
        let sig =
            EcdsaSignature::from_slice(&self.0[..64]).map_err(|_| SignatureError::OutOfRange)?;
        if sig.normalize_s() != sig {
            return Err(SignatureError::HighS);
        }
        let recid = RecoveryId::new(y_odd, false);
        let key = VerifyingKey::recover_from_prehash(digest, &sig, recid)
            .map_err(|_| SignatureError::Unrecoverable)?;
        Ok(address_of(&key))
    }

    /// Recovers the signer of `payload` under the pocmesh rule (EIP-191 over keccak256(payload)).
    pub fn recover_payload(&self, payload: &[u8]) -> Result<Address, SignatureError> {
        self.recover_prehash(&eip191_digest(payload))
    }
}

/// The address of a public key.
pub(crate) fn address_of(key: &VerifyingKey) -> Address {
    let point = key.to_sec1_point(false);
    let mut uncompressed = [0u8; 65];
    uncompressed.copy_from_slice(point.as_bytes());
    Address::from_uncompressed_pubkey(&uncompressed)
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::bytes::serialize_bytes_or_text(serializer, &self.0, self)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(fixed_bytes_visitor::<SIGNATURE_LEN>("a 65-byte signature"))
            .map(Signature)
    }
}
