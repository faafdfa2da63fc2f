//! Byte strings on the wire: CBOR byte strings in binary formats, hex text in JSON.

use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A variable-length byte string: a CBOR byte string on the wire, `0x…` hex in JSON.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// Number of bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Bytes(v.to_vec())
    }
}

impl std::ops::Deref for Bytes {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for Bytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 64;
        if self.0.len() <= SHOWN {
            write!(f, "0x{}", hex::encode(&self.0))
        } else {
            write!(
                f,
                "0x{}…({} bytes)",
                hex::encode(&self.0[..SHOWN]),
                self.0.len()
            )
        }
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serialize_bytes_or_text(
            serializer,
            &self.0,
            format_args!("0x{}", hex::encode(&self.0)),
        )
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct BytesVisitor;
        impl<'de> Visitor<'de> for BytesVisitor {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a byte string or 0x-prefixed hex text")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes(v.to_vec()))
            }
            fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
                decode_hex(v).map(Bytes).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(BytesVisitor)
    }
}

/// Serializes `bytes` as a byte string in binary formats (CBOR) and as `text` in human-readable
/// ones (JSON): the one rule every byte-valued type of the protocol follows.
pub(crate) fn serialize_bytes_or_text<S: Serializer>(
    serializer: S,
    bytes: &[u8],
    text: impl fmt::Display,
) -> Result<S::Ok, S::Error> {
    if serializer.is_human_readable() {
        serializer.collect_str(&text)
    } else {
        serializer.serialize_bytes(bytes)
    }
}

/// Decodes hex text with an optional `0x`/`0X` prefix; the error says what was wrong.
pub fn decode_hex(text: &str) -> Result<Vec<u8>, String> {
    let t = text.trim();
    let t = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .unwrap_or(t);
    if !t.len().is_multiple_of(2) {
        return Err(format!("odd number of hex digits ({})", t.len()));
    }
    hex::decode(t).map_err(|e| format!("not hex: {e}"))
}

/// A serde visitor for exactly `N` bytes, given as a byte string or as hex text.
pub(crate) fn fixed_bytes_visitor<const N: usize>(what: &'static str) -> FixedBytesVisitor<N> {
    FixedBytesVisitor {
        what,
        _n: PhantomData,
    }
}

/// Visitor behind [`fixed_bytes_visitor`].
pub(crate) struct FixedBytesVisitor<const N: usize> {
    what: &'static str,
    _n: PhantomData<[u8; N]>,
}

impl<'de, const N: usize> Visitor<'de> for FixedBytesVisitor<N> {
    type Value = [u8; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (a byte string or hex text)", self.what)
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Self::Value, E> {
        v.try_into().map_err(|_| E::invalid_length(v.len(), &self))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        let bytes = decode_hex(v).map_err(E::custom)?;
        self.visit_bytes(&bytes)
    }
}
