//! Quick, self-contained measurements for `pocmesh bench`: the sandbox's cost over native code
//! on the bundled kernel, and how many signed envelopes one core can check per second.
//!
//! Pure functions (no I/O, no global state); each takes a sample count and reports medians so one
//! slow sample (a page fault, a context switch) does not skew the result.

use std::time::{Duration, Instant};

use pocmesh_protocol::{Body, Envelope, Limits, Message, OptOut, SecretKey};
use serde::Serialize;

use super::kernel::{kernel_input, kernel_native};
use super::{ExecutorError, KERNEL_WAT, WasmExecutor};

/// Signature checks per timed sample in [`k256_verify_per_sec`].
const VERIFY_BATCH: u32 = 200;

/// The bundled kernel run natively and through the wasm executor on the same input.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KernelBench {
    /// Median native time, milliseconds.
    pub native_ms_median: f64,
    /// Median wasm time through [`WasmExecutor::run`], milliseconds (compile excluded).
    pub wasm_ms_median: f64,
    /// `wasm_ms_median / native_ms_median`: how many times slower the sandbox is.
    pub ratio: f64,
    /// Fuel one wasm run consumed (the same on every run and every machine).
    pub fuel: u64,
    /// Timed runs per side.
    pub samples: usize,
    /// Kernel rounds per run.
    pub rounds: u64,
}

/// Why a benchmark could not produce a number.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The wasm executor could not be created.
    #[error(transparent)]
    Executor(#[from] ExecutorError),
    /// The kernel failed inside the sandbox (e.g. too many rounds for the fuel cap).
    #[error("the kernel failed in the wasm executor: {reason}; try fewer rounds or less data")]
    KernelFailed {
        /// The execution's error.
        reason: String,
    },
    /// Wasm and native gave different outputs: the kernel's two versions have drifted apart.
    #[error(
        "wasm and native kernels disagree on the output; keep kernel.wat and kernel.rs in step"
    )]
    OutputMismatch,
    /// A key or an envelope for the signature benchmark could not be made.
    #[error("could not prepare a signed envelope: {reason}")]
    Signing {
        /// What failed.
        reason: String,
    },
    /// An envelope this benchmark signed did not verify.
    #[error("a freshly signed envelope failed to verify: {reason}")]
    Verify {
        /// The validation error.
        reason: String,
    },
}

/// Times the kernel over `data_len` bytes for `rounds` rounds: `samples` native runs against
/// `samples` runs of the wasm executor path (store, instantiation, fuel and epoch metering
/// included). The module is compiled once before timing and served from the executor's cache, so
/// compile time is excluded. Also checks both outputs agree.
pub fn wasm_vs_native(
    rounds: u64,
    data_len: usize,
    samples: usize,
) -> Result<KernelBench, BenchError> {
    let samples = samples.max(1);
    let input = kernel_input(rounds, &pseudo_random_bytes(data_len));
    let executor = WasmExecutor::with_default_fuel(u64::MAX)?;
    let limits = Limits {
        max_ms: u64::MAX / 2,
        max_mem_mb: 4096,
        max_output_bytes: 64,
        max_fuel: None,
    };
    // Warm-up: compiles and caches the module, and gives the reference outputs.
    let reference = executor.run(KERNEL_WAT.as_bytes(), &input, &limits);
    if let Some(reason) = reference.error {
        return Err(BenchError::KernelFailed { reason });
    }
    if reference.output != kernel_native(&input) {
        return Err(BenchError::OutputMismatch);
    }

    let mut native = Vec::with_capacity(samples);
    let mut wasm = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        let output = std::hint::black_box(kernel_native(std::hint::black_box(&input)));
        native.push(start.elapsed());
        drop(output);

        let start = Instant::now();
        let run = executor.run(KERNEL_WAT.as_bytes(), &input, &limits);
        wasm.push(start.elapsed());
        if let Some(reason) = run.error {
            return Err(BenchError::KernelFailed { reason });
        }
    }
    let native_ms_median = median(&mut native).as_secs_f64() * 1e3;
    let wasm_ms_median = median(&mut wasm).as_secs_f64() * 1e3;
    Ok(KernelBench {
        native_ms_median,
        wasm_ms_median,
        ratio: if native_ms_median > 0.0 {
            wasm_ms_median / native_ms_median
        } else {
            f64::INFINITY
        },
        fuel: reference.metering.fuel,
        samples,
        rounds,
    })
}

/// Envelope signature checks (`Envelope::open`: recover the signer, decode, compare with `from`)
/// per second on one core: the median of `samples` batches of 200 checks of one envelope.
pub fn k256_verify_per_sec(samples: usize) -> Result<f64, BenchError> {
    let samples = samples.max(1);
    let key = SecretKey::generate().map_err(|e| BenchError::Signing {
        reason: e.to_string(),
    })?;
    let body = Body::OptOut(OptOut {
        wallet: key.address(),
        seq: 1,
    });
    let message = Message::new("bench", key.address(), 1, body);
    let envelope = Envelope::seal(&message, &key).map_err(|e| BenchError::Signing {
        reason: e.to_string(),
    })?;
    let mut per_check = Vec::with_capacity(samples);
    for _ in 0..samples {
        let start = Instant::now();
        for _ in 0..VERIFY_BATCH {
            std::hint::black_box(&envelope)
                .open()
                .map_err(|e| BenchError::Verify {
                    reason: e.to_string(),
                })?;
        }
        per_check.push(start.elapsed() / VERIFY_BATCH);
    }
    let median = median(&mut per_check).as_secs_f64();
    Ok(if median > 0.0 {
        1.0 / median
    } else {
        f64::INFINITY
    })
}

/// The median of `samples` (the upper one for an even count); zero for none.
fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// Deterministic filler data (a 64-bit LCG), so every run times the same work.
fn pseudo_random_bytes(len: usize) -> Vec<u8> {
    let mut state: u64 = 0x853c_49e6_748f_ea9b;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 56) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_bench_reports_consistent_numbers() {
        let bench = wasm_vs_native(2, 1024, 3).expect("bench");
        assert_eq!(bench.samples, 3);
        assert_eq!(bench.rounds, 2);
        assert!(bench.fuel > 0);
        assert!(bench.wasm_ms_median >= 0.0 && bench.native_ms_median >= 0.0);
    }

    #[test]
    fn verify_rate_is_positive() {
        let rate = k256_verify_per_sec(2).expect("bench");
        assert!(rate > 0.0, "{rate}");
    }

    #[test]
    fn median_picks_the_middle() {
        let ms = Duration::from_millis;
        assert_eq!(median(&mut [ms(3), ms(1), ms(2)]), ms(2));
        assert_eq!(median(&mut []), Duration::ZERO);
    }
}
