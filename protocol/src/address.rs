//! Ethereum-style 20-byte addresses: EIP-55 display, `0x…` and XDC `xdc…` input.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::hash::keccak256;

/// A 20-byte account address: the identity of a node, a dispatcher or a wallet.
///
/// Displays as an EIP-55 checksummed `0x…` string; [`Address::to_xdc`] gives XDC's `xdc…` form of
/// the same 20 bytes. Parses both forms. Travels as a 20-byte CBOR byte string.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(pub [u8; 20]);

/// Why a text is not an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The text starts with neither `0x` nor `xdc`.
    #[error("address {input:?} must start with 0x or xdc, followed by 40 hex digits")]
    MissingPrefix {
        /// The text as given.
        input: String,
    },
    /// Wrong number of hex digits after the prefix.
    #[error("address {input:?} has {digits} hex digits after the prefix; it needs exactly 40")]
    WrongLength {
        /// The text as given.
        input: String,
        /// How many characters followed the prefix.
        digits: usize,
    },
    /// A character that is not a hex digit.
    #[error("address {input:?} contains {bad:?}, which is not a hex digit")]
    NotHex {
        /// The text as given.
        input: String,
        /// The first offending character.
        bad: char,
    },
    /// Mixed-case text whose case does not match the EIP-55 checksum: most likely a typo.
    #[error(
        "address {input:?} fails its EIP-55 checksum (mixed case must match {expected}); \
         check for a typo, or give it in all lower case to skip the check"
    )]
    BadChecksum {
        /// The text as given.
        input: String,
        /// The correctly checksummed form of the same bytes.
        expected: String,
    },
}

impl Address {
    /// The zero address.
    pub const ZERO: Address = Address([0u8; 20]);

    /// The address of an uncompressed secp256k1 public key (65 bytes, leading 0x04):
    /// the last 20 bytes of keccak256 of its 64-byte body.
    pub fn from_uncompressed_pubkey(pubkey: &[u8; 65]) -> Self {
        let hash = keccak256(&pubkey[1..]);
        let mut out = [0u8; 20];
        out.copy_from_slice(&hash[12..]);
        Address(out)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    /// EIP-55 checksummed `0x…` form.
    pub fn to_checksum(&self) -> String {
        let lower = hex::encode(self.0);
        let hash = keccak256(lower.as_bytes());
        let mut out = String::with_capacity(42);
        out.push_str("0x");
        for (i, c) in lower.chars().enumerate() {
            let nibble = (hash[i / 2] >> (if i % 2 == 0 { 4 } else { 0 })) & 0x0f;
            if c.is_ascii_alphabetic() && nibble >= 8 {
                out.push(c.to_ascii_uppercase());
            } else {
                out.push(c);
            }
        }
        out
    }

    /// XDC form: `xdc` followed by the same checksummed hex digits.
    pub fn to_xdc(&self) -> String {
        format!("xdc{}", &self.to_checksum()[2..])
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_checksum())
    }
}

impl FromStr for Address {
    type Err = AddressError;

    /// Accepts `0x…` or `xdc…` (prefix case-insensitive) with 40 hex digits. All-lower or
    /// all-upper digits are taken as they are; mixed case must match the EIP-55 checksum.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        let has_prefix = |p: &str| s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p));
        let digits = if has_prefix("0x") {
            &s[2..]
        } else if has_prefix("xdc") {
            &s[3..]
        } else {
            return Err(AddressError::MissingPrefix {
                input: input.to_string(),
            });
        };
        if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
            return Err(AddressError::NotHex {
                input: input.to_string(),
                bad,
            });
        }
        if digits.len() != 40 {
            return Err(AddressError::WrongLength {
                input: input.to_string(),
                digits: digits.chars().count(),
            });
        }
        let mut bytes = [0u8; 20];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| AddressError::NotHex {
            input: input.to_string(),
            bad: '?',
        })?;
        let address = Address(bytes);
        let has_lower = digits.chars().any(|c| c.is_ascii_lowercase());
        let has_upper = digits.chars().any(|c| c.is_ascii_uppercase());
        if has_lower && has_upper {
            let expected = address.to_checksum();
            if expected[2..] != *digits {
                return Err(AddressError::BadChecksum {
                    input: input.to_string(),
                    expected,
                });
            }
        }
        Ok(address)
    }
}

impl From<[u8; 20]> for Address {
    fn from(bytes: [u8; 20]) -> Self {
        Address(bytes)
    }
}

impl Serialize for Address {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        crate::bytes::serialize_bytes_or_text(serializer, &self.0, self)
    }
}

impl<'de> Deserialize<'de> for Address {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct AddressVisitor;
        impl<'de> Visitor<'de> for AddressVisitor {
            type Value = Address;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a 20-byte address (byte string, 0x… or xdc… text)")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Address, E> {
                let arr: [u8; 20] = v
                    .try_into()
                    .map_err(|_| E::invalid_length(v.len(), &self))?;
                Ok(Address(arr))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Address, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(AddressVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // The four reference addresses of the EIP-55 specification.
    const EIP55: [&str; 4] = [
        "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
        "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
        "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
        "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
    ];

    #[test]
    fn checksums_match_the_eip55_vectors() {
        for s in EIP55 {
            let a: Address = s.to_lowercase().parse().expect("lower case parses");
            assert_eq!(a.to_checksum(), s);
            assert_eq!(s.parse::<Address>(), Ok(a));
        }
    }

    #[test]
    fn xdc_form_is_the_same_bytes() {
        let a: Address = EIP55[0].parse().expect("valid");
        assert_eq!(a.to_xdc(), "xdc5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed");
        assert_eq!(a.to_xdc().parse::<Address>(), Ok(a));
        assert_eq!(
            "XDC5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED".parse::<Address>(),
            Ok(a)
        );
        assert_eq!(
            "xdc5aaeb6053f3e94c9b9a09f33669435e7ef1beaed".parse::<Address>(),
            Ok(a)
        );
    }

    #[test]
    fn rejects_bad_input_with_the_reason() {
        let bad_checksum = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD";
        assert!(matches!(
            bad_checksum.parse::<Address>(),
            Err(AddressError::BadChecksum { .. })
        ));
        assert!(matches!(
            "5aaeb6053f3e94c9b9a09f33669435e7ef1beaed".parse::<Address>(),
            Err(AddressError::MissingPrefix { .. })
        ));
        assert!(matches!(
            "0x5aaeb6053f3e94c9b9a09f33669435e7ef1bea".parse::<Address>(),
            Err(AddressError::WrongLength { digits: 38, .. })
        ));
        assert!(matches!(
            "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaeg".parse::<Address>(),
            Err(AddressError::NotHex { bad: 'g', .. })
        ));
        assert!("".parse::<Address>().is_err());
        assert!("xdc".parse::<Address>().is_err());
        assert!("0xé".parse::<Address>().is_err());
        assert!("xdé0000".parse::<Address>().is_err());
        assert!("aé".parse::<Address>().is_err());
    }

    #[test]
    fn error_messages_say_what_to_do() {
        let e = "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"
            .parse::<Address>()
            .expect_err("bad checksum");
        assert!(
            e.to_string()
                .contains("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
        );
    }

    proptest! {
        #[test]
        fn any_address_round_trips_in_every_form(bytes in any::<[u8; 20]>()) {
            let a = Address(bytes);
            prop_assert_eq!(a.to_checksum().parse::<Address>(), Ok(a));
            prop_assert_eq!(a.to_xdc().parse::<Address>(), Ok(a));
            prop_assert_eq!(a.to_checksum().to_lowercase().parse::<Address>(), Ok(a));
            prop_assert_eq!(a.to_checksum().to_uppercase().replacen("0X", "0x", 1).parse::<Address>(), Ok(a));
            let cbor = serde_cbor::to_vec(&a).expect("encodes");
            prop_assert_eq!(cbor.len(), 21); // 0x54 header + 20 bytes
            prop_assert_eq!(serde_cbor::from_slice::<Address>(&cbor).expect("decodes"), a);
        }

        #[test]
        fn flipping_the_case_of_one_letter_breaks_the_checksum(bytes in any::<[u8; 20]>(), pick in any::<usize>()) {
            let good = Address(bytes).to_checksum();
            let letters: Vec<usize> = good.char_indices().skip(2).filter(|(_, c)| c.is_ascii_alphabetic()).map(|(i, _)| i).collect();
            prop_assume!(letters.len() >= 2);
            let i = letters[pick % letters.len()];
            let mut flipped: Vec<char> = good.chars().collect();
            flipped[i] = if flipped[i].is_ascii_uppercase() { flipped[i].to_ascii_lowercase() } else { flipped[i].to_ascii_uppercase() };
            let text: String = flipped.into_iter().collect();
            let all_same_case = text[2..].chars().all(|c| !c.is_ascii_uppercase()) || text[2..].chars().all(|c| !c.is_ascii_lowercase());
            prop_assume!(!all_same_case);
            let is_bad_checksum = matches!(text.parse::<Address>(), Err(AddressError::BadChecksum { .. }));
            prop_assert!(is_bad_checksum);
        }
    }
}
