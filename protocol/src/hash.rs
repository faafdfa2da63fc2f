//! Keccak-256 and the 32-byte hash type used for ids, roots and result hashes.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tiny_keccak::{Hasher, Keccak};

use crate::bytes::{decode_hex, fixed_bytes_visitor};

/// Keccak-256 of `data` (the Ethereum hash, not NIST SHA3-256).
pub fn keccak256(data: impl AsRef<[u8]>) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut hasher = Keccak::v256();
    hasher.update(data.as_ref());
    hasher.finalize(&mut out);
    out
}

/// Keccak-256 over several slices, as if they were concatenated.
pub fn keccak256_concat(parts: &[&[u8]]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut hasher = Keccak::v256();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize(&mut out);
    out
}

/// A 32-byte value: a keccak digest, a job or batch id, a Merkle root, a transaction hash.
///
/// Travels as a CBOR byte string; shows (and parses) as `0x`-prefixed lower-case hex.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// The all-zero value (the contract treats it as "none").
    pub const ZERO: Hash32 = Hash32([0u8; 32]);

    /// Keccak-256 of `data`.
    pub fn keccak(data: impl AsRef<[u8]>) -> Self {
        Hash32(keccak256(data))
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether every byte is zero.
    pub fn is_zero(&self) -> bool {
        self.0 == [0u8; 32]
    }
}

impl From<[u8; 32]> for Hash32 {
    fn from(bytes: [u8; 32]) -> Self {
        Hash32(bytes)
    }
}

impl AsRef<[u8]> for Hash32 {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a text is not a 32-byte hex value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected 32 bytes as 64 hex digits (optionally 0x-prefixed): {reason}")]
pub struct ParseHashError {
    /// What was wrong with the text.
    pub reason: String,
}

impl FromStr for Hash32 {
    type Err = ParseHashError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = decode_hex(s).map_err(|reason| ParseHashError { reason })?;
        let arr: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| ParseHashError {
            reason: format!("got {} bytes", b.len()),
        })?;
        Ok(Hash32(arr))
    }
}

impl Serialize for Hash32 {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::bytes::serialize_bytes_or_text(serializer, &self.0, self)
    }
}

impl<'de> Deserialize<'de> for Hash32 {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(fixed_bytes_visitor::<32>("32 bytes"))
            .map(Hash32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keccak_of_empty_matches_the_ethereum_constant() {
        assert_eq!(
            Hash32::keccak([]).to_string(),
            "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }

    #[test]
    fn concat_equals_hash_of_concatenation() {
        assert_eq!(keccak256_concat(&[b"ab", b"cd"]), keccak256(b"abcd"));
    }

    #[test]
    fn parses_its_own_display() {
        let h = Hash32::keccak(b"x");
        assert_eq!(h.to_string().parse::<Hash32>(), Ok(h));
        assert!("0x1234".parse::<Hash32>().is_err());
    }
}
