//! The `hash` job type: keccak256 iterated over a seed, for demos and benchmarks.
//!
//! `x = seed; repeat iterations times: x = keccak256(x)`; the output is the final 32 bytes and the
//! metered fuel is the number of iterations done. Deterministic, so a quorum or a spot check can
//! compare results byte for byte.

use std::time::Instant;

use pocmesh_protocol::{JobParams, JobType, Limits, Metering, keccak256};

use super::{Execution, Executor, elapsed_ms};

/// How many iterations run between two looks at the wall clock (a keccak is ~1 µs).
const CLOCK_CHECK_INTERVAL: u64 = 4096;

/// Runs `hash` jobs.
#[derive(Debug, Clone, Copy, Default)]
pub struct HashExecutor;

impl HashExecutor {
    /// Hashes `seed` `iterations` times within `limits`.
    pub fn run(&self, seed: [u8; 32], iterations: u64, limits: &Limits) -> Execution {
        let start = Instant::now();
        if iterations == 0 {
            return Execution::failed(
                "hash job asks for 0 iterations; at least 1 is required",
                Metering::default(),
            );
        }
        if let Some(max_fuel) = limits.max_fuel
            && iterations > max_fuel
        {
            return Execution::failed(
                format!(
                    "hash job asks for {iterations} iterations, over its fuel limit of {max_fuel}"
                ),
                Metering::default(),
            );
        }
        let mut x = seed;
        let mut done = 0u64;
        while done < iterations {
            let batch = (iterations - done).min(CLOCK_CHECK_INTERVAL);
            for _ in 0..batch {
                x = keccak256(x);
            }
            done += batch;
            let ms = elapsed_ms(start);
            if done < iterations && ms > limits.max_ms {
                return Execution::timed_out(
                    limits,
                    Metering {
                        fuel: done,
                        ms,
                        bytes: 0,
                    },
                );
            }
        }
        let metering = Metering {
            fuel: done,
            ms: elapsed_ms(start),
            bytes: 0,
        };
        Execution::finished(x.to_vec(), metering, limits)
    }
}

impl Executor for HashExecutor {
    fn job_type(&self) -> JobType {
        JobType::Hash
    }

    fn execute(&self, params: &JobParams, limits: &Limits) -> Execution {
        match params {
            JobParams::Hash { seed, iterations } => self.run(seed.0, *iterations, limits),
            other => Execution::failed(
                format!(
                    "the hash executor cannot run a {} job",
                    other.job_type().as_str()
                ),
                Metering::default(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use pocmesh_protocol::{Hash32, ResultStatus};

    use super::*;

    fn limits(max_fuel: Option<u64>) -> Limits {
        Limits {
            max_ms: 10_000,
            max_mem_mb: 1,
            max_output_bytes: 32,
            max_fuel,
        }
    }

    #[test]
    fn iterates_keccak_and_meters_iterations() {
        let seed = Hash32::keccak(b"seed");
        let mut expected = seed.0;
        for _ in 0..5000 {
            expected = keccak256(expected);
        }
        let run = HashExecutor.run(seed.0, 5000, &limits(None));
        assert_eq!(run.status, ResultStatus::Ok);
        assert_eq!(run.output, expected.to_vec());
        assert_eq!(run.metering.fuel, 5000);
        assert_eq!(run.metering.bytes, 32);
    }

    #[test]
    fn refuses_zero_iterations_and_iterations_over_fuel() {
        let zero = HashExecutor.run([0; 32], 0, &limits(None));
        assert!(
            zero.error
                .as_deref()
                .is_some_and(|e| e.contains("0 iterations"))
        );
        let over = HashExecutor.run([0; 32], 11, &limits(Some(10)));
        assert!(
            over.error
                .as_deref()
                .is_some_and(|e| e.contains("over its fuel limit of 10")),
            "{over:?}"
        );
        assert_eq!(
            HashExecutor
                .run([0; 32], 10, &limits(Some(10)))
                .metering
                .fuel,
            10
        );
    }

    #[test]
    fn output_limit_below_a_digest_fails() {
        let small = Limits {
            max_output_bytes: 31,
            ..limits(None)
        };
        assert_eq!(
            HashExecutor.run([0; 32], 1, &small).status,
            ResultStatus::Failed
        );
    }
}
