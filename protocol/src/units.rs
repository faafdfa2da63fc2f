//! The units rule (DESIGN.md, "Job lifecycle"): how many compute units a verified result earns,
//! and which metering claims a result may make at all. Units are the dispatcher's figure, never a
//! node's unchecked claim: every job type declares a [`UnitsRule`] saying where its units come
//! from and how a node's reported metering is checked against the job it was given.
//!
//! - `hash` ([`UnitsRule::Iterations`]): the work is fixed by the job: `iterations / 1e6`, at
//!   least 1. A successful result must report exactly the job's iterations as its fuel; any other
//!   figure is a wrong result, whatever its output.
//! - `wasm` ([`UnitsRule::AgreedFuel`]): fuel is deterministic, so it is part of what a quorum and
//!   the dispatcher's re-execution compare; a result may not claim more fuel than the job's fuel
//!   limit. Units are `fuel / 1e6`, at least 1, and never more than the limit allows.
//! - `link_health`, `robots_recheck` ([`UnitsRule::PerRequest`]): one unit per request, whatever
//!   is reported.
//!
//! In every case the credit is bounded by [`max_units`] of the spec. A node runs the same code,
//! so its expectation and the on-chain credit agree.

use crate::message::{JobParams, JobSpec, JobType, Metering};

/// Work per unit for metered job types: one unit per million iterations (hash) or fuel (wasm).
pub const WORK_PER_UNIT: u64 = 1_000_000;

/// Length of a `hash` job's output: one keccak256 digest.
pub const HASH_OUTPUT_BYTES: u64 = 32;

/// Where a job type's units come from and what a result's metering is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitsRule {
    /// Fixed by the job's iteration count; the reported fuel must equal it exactly.
    Iterations,
    /// The fuel a quorum (or the dispatcher's re-execution) agreed on, within the job's limit.
    AgreedFuel,
    /// A fixed amount per request.
    PerRequest {
        /// Units per request.
        units: u64,
    },
    /// A job type this version does not know: never credited.
    NotCredited,
}

impl UnitsRule {
    /// The rule of `job_type`, from the registry ([`crate::job_types`]); unknown types are never
    /// credited.
    pub fn of(job_type: JobType) -> Self {
        job_type
            .info()
            .map_or(UnitsRule::NotCredited, |info| info.units)
    }

    /// The rule in words, for people (`pocmesh job types`, the docs).
    pub fn describe(self) -> String {
        match self {
            UnitsRule::Iterations => "the job's iterations / 1e6, at least 1".into(),
            UnitsRule::AgreedFuel => {
                "the agreed fuel / 1e6, at least 1, within the fuel limit".into()
            }
            UnitsRule::PerRequest { units } => format!("{units} per request"),
            UnitsRule::NotCredited => "never credited".into(),
        }
    }

    /// Whether the reported fuel is part of what independent results must agree on.
    pub fn fuel_is_compared(self) -> bool {
        matches!(self, UnitsRule::Iterations | UnitsRule::AgreedFuel)
    }
}

/// A successful result's metering contradicts the job it answers: the result is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeteringError {
    /// A `hash` result reports other than the job's iterations.
    #[error("reports {claimed} iterations for a job of {expected}")]
    IterationsMismatch {
        /// What the job asked.
        expected: u64,
        /// What the result claims.
        claimed: u64,
    },
    /// A result claims more fuel than the job's limit allows.
    #[error("reports {claimed} fuel, over the job's fuel limit of {limit}")]
    FuelOverLimit {
        /// The job's limit.
        limit: u64,
        /// What the result claims.
        claimed: u64,
    },
    /// A `wasm` job without a fuel limit: its fuel cannot be bounded, so it cannot be credited.
    #[error("the job has no fuel limit, so its fuel cannot be checked")]
    NoFuelLimit,
    /// The reported output size differs from the output delivered.
    #[error("reports {claimed} output bytes but delivered {actual}")]
    BytesMismatch {
        /// Bytes delivered.
        actual: u64,
        /// Bytes claimed.
        claimed: u64,
    },
    /// A `hash` output that is not one digest.
    #[error("a hash result must be {HASH_OUTPUT_BYTES} bytes, got {actual}")]
    HashOutputSize {
        /// Bytes delivered.
        actual: u64,
    },
    /// The job type is not credited by this version.
    #[error("job type {job_type} is not credited by this version")]
    NotCredited {
        /// The job type.
        job_type: &'static str,
    },
}

/// Checks what a successful result claims against the job it answers: `output_len` is the size
/// of the output actually delivered. Runs before any comparison with other results, so an
/// impossible claim is rejected on its own.
pub fn check_metering(
    spec: &JobSpec,
    output_len: u64,
    metering: &Metering,
) -> Result<(), MeteringError> {
    if metering.bytes != output_len {
        return Err(MeteringError::BytesMismatch {
            actual: output_len,
            claimed: metering.bytes,
        });
    }
    match (&spec.params, UnitsRule::of(spec.params.job_type())) {
        (JobParams::Hash { iterations, .. }, _) => {
            if metering.fuel != *iterations {
                return Err(MeteringError::IterationsMismatch {
                    expected: *iterations,
                    claimed: metering.fuel,
                });
            }
            if output_len != HASH_OUTPUT_BYTES {
                return Err(MeteringError::HashOutputSize { actual: output_len });
            }
            Ok(())
        }
        (_, UnitsRule::AgreedFuel) => {
            let limit = spec.limits.max_fuel.ok_or(MeteringError::NoFuelLimit)?;
            if metering.fuel > limit {
                return Err(MeteringError::FuelOverLimit {
                    limit,
                    claimed: metering.fuel,
                });
            }
            Ok(())
        }
        (_, UnitsRule::NotCredited) => Err(MeteringError::NotCredited {
            job_type: spec.params.job_type().as_str(),
        }),
        _ => Ok(()),
    }
}

/// The most units a job with this spec can ever earn (per crediting node); 0 when the spec
/// cannot be credited (unknown type, or `wasm` without a fuel limit).
pub fn max_units(spec: &JobSpec) -> u64 {
    match (&spec.params, UnitsRule::of(spec.params.job_type())) {
        (JobParams::Hash { iterations, .. }, _) => per_million(*iterations),
        (_, UnitsRule::AgreedFuel) => spec.limits.max_fuel.map_or(0, per_million),
        (_, UnitsRule::PerRequest { units }) => units,
        _ => 0,
    }
}

/// Units earned by one verified result of `spec` whose agreed metering is `verified`.
///
/// `verified` must already have passed [`check_metering`] and agreement (quorum or re-execution);
/// the result is clamped to [`max_units`] all the same, so a credit never exceeds what the spec
/// allows.
pub fn credited_units(spec: &JobSpec, verified: &Metering) -> u64 {
    let units = match UnitsRule::of(spec.params.job_type()) {
        // Never the node's figure: the job's own.
        UnitsRule::Iterations => max_units(spec),
        UnitsRule::AgreedFuel => per_million(verified.fuel),
        UnitsRule::PerRequest { units } => units,
        UnitsRule::NotCredited => 0,
    };
    units.min(max_units(spec))
}

/// One unit per [`WORK_PER_UNIT`] of work, at least one.
fn per_million(work: u64) -> u64 {
    (work / WORK_PER_UNIT).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bytes::Bytes;
    use crate::hash::Hash32;
    use crate::message::Limits;

    fn limits(max_fuel: Option<u64>) -> Limits {
        Limits {
            max_ms: 1_000,
            max_mem_mb: 64,
            max_output_bytes: 1024,
            max_fuel,
        }
    }

    fn hash(iterations: u64) -> JobSpec {
        JobSpec {
            params: JobParams::Hash {
                seed: Hash32::ZERO,
                iterations,
            },
            limits: limits(None),
        }
    }

    fn wasm(max_fuel: Option<u64>) -> JobSpec {
        JobSpec {
            params: JobParams::Wasm {
                module: Bytes(vec![0]),
                input: Bytes(vec![]),
            },
            limits: limits(max_fuel),
        }
    }

    fn m(fuel: u64, bytes: u64) -> Metering {
        Metering { fuel, ms: 5, bytes }
    }

    #[test]
    fn hash_units_come_from_the_job_not_the_claim() {
        let spec = hash(2_500_000);
        assert_eq!(check_metering(&spec, 32, &m(2_500_000, 32)), Ok(()));
        assert_eq!(credited_units(&spec, &m(2_500_000, 32)), 2);
        // A node that claims a million times the work is wrong, and even if the claim slipped
        // through, the credit would be the job's.
        assert_eq!(
            check_metering(&spec, 32, &m(2_500_000_000_000, 32)),
            Err(MeteringError::IterationsMismatch {
                expected: 2_500_000,
                claimed: 2_500_000_000_000
            })
        );
        assert_eq!(credited_units(&spec, &m(2_500_000_000_000, 32)), 2);
        assert!(check_metering(&spec, 32, &m(2_499_999, 32)).is_err());
        assert_eq!(credited_units(&hash(1_000), &m(1_000, 32)), 1, "floor of 1");
        assert_eq!(max_units(&hash(999_999)), 1);
    }

    #[test]
    fn hash_output_must_be_one_digest_and_bytes_must_match() {
        let spec = hash(10);
        assert_eq!(
            check_metering(&spec, 31, &m(10, 31)),
            Err(MeteringError::HashOutputSize { actual: 31 })
        );
        assert_eq!(
            check_metering(&spec, 32, &m(10, 64)),
            Err(MeteringError::BytesMismatch {
                actual: 32,
                claimed: 64
            })
        );
    }

    #[test]
    fn wasm_fuel_is_bounded_by_the_limit_and_needs_one() {
        let spec = wasm(Some(7_500_000));
        assert_eq!(check_metering(&spec, 4, &m(7_000_000, 4)), Ok(()));
        assert_eq!(credited_units(&spec, &m(7_000_000, 4)), 7);
        assert_eq!(
            check_metering(&spec, 4, &m(7_500_001, 4)),
            Err(MeteringError::FuelOverLimit {
                limit: 7_500_000,
                claimed: 7_500_001
            })
        );
        // Clamped all the same.
        assert_eq!(credited_units(&spec, &m(u64::MAX, 4)), 7);
        assert_eq!(credited_units(&spec, &m(10, 4)), 1);
        assert_eq!(
            check_metering(&wasm(None), 4, &m(1, 4)),
            Err(MeteringError::NoFuelLimit)
        );
        assert_eq!(max_units(&wasm(None)), 0);
        assert_eq!(credited_units(&wasm(None), &m(9_000_000, 4)), 0);
    }

    #[test]
    fn http_checks_earn_one_unit_per_request() {
        let spec = JobSpec {
            params: JobParams::LinkHealth {
                url: "https://example.org/".into(),
                expected_status: None,
            },
            limits: limits(None),
        };
        assert_eq!(
            UnitsRule::of(JobType::LinkHealth),
            UnitsRule::PerRequest { units: 1 }
        );
        assert_eq!(check_metering(&spec, 3, &m(9_000_000, 3)), Ok(()));
        assert_eq!(credited_units(&spec, &m(9_000_000, 3)), 1);
        assert!(!UnitsRule::of(JobType::LinkHealth).fuel_is_compared());
        assert!(UnitsRule::of(JobType::Wasm).fuel_is_compared());
        assert_eq!(UnitsRule::of(JobType::Unknown), UnitsRule::NotCredited);
    }
}
