//! The bundled compute kernel: a WebAssembly module for demos and benchmarks, and the same
//! algorithm in plain Rust so wasm and native speed (and output) can be compared.
//!
//! Input: the first 8 bytes are a little-endian u64 `rounds`, the rest is `data`; an input shorter
//! than 8 bytes is all data, with [`DEFAULT_ROUNDS`] rounds. Each round walks the data through an
//! FNV-1a / xorshift64 mix, scrambling every byte in place so rounds depend on each other. Output:
//! 32 bytes, four 64-bit lanes little-endian.

/// The kernel's WebAssembly text, using only the pocmesh host interface.
pub const KERNEL_WAT: &str = include_str!("../modules/kernel.wat");

/// Rounds run when the input is too short to carry a round count.
pub const DEFAULT_ROUNDS: u64 = 64;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The kernel's input for `rounds` rounds over `data`.
pub fn kernel_input(rounds: u64, data: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(8 + data.len());
    input.extend_from_slice(&rounds.to_le_bytes());
    input.extend_from_slice(data);
    input
}

/// [`KERNEL_WAT`]'s algorithm in Rust: byte-identical output for the same input.
///
/// Runs however many rounds the input asks for (there is no fuel here); only feed it inputs you
/// chose yourself.
pub fn kernel_native(input: &[u8]) -> Vec<u8> {
    let (rounds, mut data) = match input.split_first_chunk::<8>() {
        Some((header, rest)) => (u64::from_le_bytes(*header), rest.to_vec()),
        None => (DEFAULT_ROUNDS, input.to_vec()),
    };
    let mut a = FNV_OFFSET;
    let mut b = GOLDEN;
    let mut c = rounds;
    let mut d = data.len() as u64;
    for _ in 0..rounds {
        for byte in data.iter_mut() {
            let v = u64::from(*byte);
            a = (a ^ v).wrapping_mul(FNV_PRIME);
            b ^= a;
            b ^= b << 13;
            b ^= b >> 7;
            b ^= b << 17;
            // Truncation to the low byte is the algorithm (wasm's i64.store8).
            *byte = (v ^ (b >> 56)) as u8;
        }
        c = c.wrapping_add(a).rotate_left(17);
        d = (d ^ b).wrapping_mul(GOLDEN);
    }
    let mut out = Vec::with_capacity(32);
    for lane in [a, b, c, d] {
        out.extend_from_slice(&lane.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_little_endian_rounds_and_short_inputs_use_the_default() {
        let input = kernel_input(3, b"abc");
        assert_eq!(&input[..8], &[3, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(kernel_native(b"abc").len(), 32);
        assert_ne!(
            kernel_native(b"abc"),
            kernel_native(&kernel_input(3, b"abc"))
        );
        // Seven bytes are all data with the default rounds, not a truncated header.
        assert_eq!(
            kernel_native(b"1234567"),
            kernel_native(&kernel_input(DEFAULT_ROUNDS, b"1234567"))
        );
    }

    #[test]
    fn rounds_and_data_change_the_digest() {
        let base = kernel_native(&kernel_input(4, b"hello world"));
        assert_ne!(base, kernel_native(&kernel_input(5, b"hello world")));
        assert_ne!(base, kernel_native(&kernel_input(4, b"hello worle")));
    }
}
