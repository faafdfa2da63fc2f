//! # pocmesh-executor
//!
//! Job executors: the code that actually runs a job, under its limits. The node runs accepted
//! offers with it; the dispatcher re-executes results with the same code for its audits.
//!
//! Owns the [`Executor`] trait, the per-node registry [`Executors`] (which job types this build
//! and this node's configuration can run), the node-side caps an offer must stay within
//! ([`ExecutorCaps`]) and the built-in executors: iterated keccak ([`HashExecutor`]), sandboxed
//! WebAssembly ([`WasmExecutor`], host interface documented in [`wasm`]) and the bounded HTTP
//! checks `link_health` and `robots_recheck` ([`HttpExecutor`], limits and target rules in
//! [`http`]).
//!
//! It does not decide whether to accept an offer (trust, slots, opt-out) nor keep results: the
//! node's job intake does, calling [`ExecutorCaps::admits`] and then [`Executors::run`] on a blocking
//! thread (`spawn_blocking`), because every execution here is blocking code (CPU-bound, or an
//! HTTP check driven to its end on that thread).

pub mod bench;
pub mod hash;
mod host;
pub mod http;
pub mod kernel;
pub mod wasm;

use pocmesh_protocol::{Hash32, JobParams, JobSpec, JobType, Limits, Metering, ResultStatus};

use std::sync::Arc;

pub use self::hash::HashExecutor;
pub use self::http::{HttpExecutor, HttpPolicy};
pub use self::kernel::{KERNEL_WAT, kernel_input, kernel_native};
pub use self::wasm::WasmExecutor;

/// Hash jobs up to this many rounds run inline on a node (see [`Executors::is_quick`]).
pub const QUICK_HASH_ITERATIONS: u64 = 256;

/// What one execution produced (blocking code; callers run it on `spawn_blocking`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// Ok, or failed with `error` saying why.
    pub status: ResultStatus,
    /// The output bytes (empty when failed).
    pub output: Vec<u8>,
    /// Resources used: fuel or iterations (deterministic), wall-clock ms (not), output bytes.
    pub metering: Metering,
    /// Why it failed, when it did; lower case, meant for the operator and the dispatcher.
    pub error: Option<String>,
    /// Whether the failure came from this machine rather than from the job — the wall clock ran
    /// out, the engine could not be set up — so another machine may well succeed. Every other
    /// failure (a trap, fuel or memory exhausted, an invalid module, output over its limit) is
    /// deterministic: any machine running the job fails the same way.
    pub local_cause: bool,
}

impl Execution {
    /// A successful execution, unless `output` is over `limits.max_output_bytes` (then failed).
    pub fn finished(output: Vec<u8>, mut metering: Metering, limits: &Limits) -> Self {
        let len = u64::try_from(output.len()).unwrap_or(u64::MAX);
        if len > limits.max_output_bytes {
            metering.bytes = 0;
            return Execution::failed(
                format!(
                    "output of {len} bytes is over the output limit of {} bytes",
                    limits.max_output_bytes
                ),
                metering,
            );
        }
        metering.bytes = len;
        Execution {
            status: ResultStatus::Ok,
            output,
            metering,
            error: None,
            local_cause: false,
        }
    }

    /// A failed execution with its reason and whatever was metered before it stopped.
    pub fn failed(reason: impl Into<String>, metering: Metering) -> Self {
        Execution {
            status: ResultStatus::Failed,
            output: Vec::new(),
            metering: Metering {
                bytes: 0,
                ..metering
            },
            error: Some(reason.into()),
            local_cause: false,
        }
    }

    /// A failure caused by this machine, not the job (see [`Execution::local_cause`]).
    pub fn failed_locally(reason: impl Into<String>, metering: Metering) -> Self {
        Execution {
            local_cause: true,
            ..Execution::failed(reason, metering)
        }
    }

    /// Stopped by the wall-clock limit in `limits` (a local cause).
    pub fn timed_out(limits: &Limits, metering: Metering) -> Self {
        Execution::failed_locally(
            format!("wall-clock limit of {} ms reached", limits.max_ms),
            metering,
        )
    }

    /// Whether it ran to completion.
    pub fn is_ok(&self) -> bool {
        self.status == ResultStatus::Ok
    }

    /// The hash a quorum compares: keccak256 of the output, or of the error text when failed.
    pub fn result_hash(&self) -> Hash32 {
        match (self.status, &self.error) {
            (ResultStatus::Failed, Some(error)) => Hash32::keccak(error.as_bytes()),
            _ => Hash32::keccak(&self.output),
        }
    }
}

/// Milliseconds since `start`, saturating.
pub(crate) fn elapsed_ms(start: std::time::Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Runs one job type. Implementations are blocking and must enforce `limits` themselves.
pub trait Executor: Send + Sync {
    /// The job type this executor runs.
    fn job_type(&self) -> JobType;

    /// Runs `params` within `limits`; never panics on bad input, reports it as a failed execution.
    fn execute(&self, params: &JobParams, limits: &Limits) -> Execution;
}

/// Node-side caps an offer's limits must stay within; offers above them are declined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ExecutorCaps {
    /// Largest wall-clock limit accepted, milliseconds.
    pub max_ms: u64,
    /// Largest memory limit accepted, MiB.
    pub max_mem_mb: u64,
    /// Largest output limit accepted, bytes.
    pub max_output_bytes: u64,
    /// Largest fuel limit accepted; also the fuel a wasm job gets when its offer names none.
    pub max_fuel: u64,
}

impl Default for ExecutorCaps {
    fn default() -> Self {
        ExecutorCaps {
            max_ms: 60_000,
            max_mem_mb: 256,
            max_output_bytes: 1024 * 1024,
            max_fuel: 10_000_000_000,
        }
    }
}

impl ExecutorCaps {
    /// Whether every limit of an offer is within these caps (an absent fuel limit always is).
    pub fn admits(&self, limits: &Limits) -> bool {
        limits.max_ms <= self.max_ms
            && limits.max_mem_mb <= self.max_mem_mb
            && limits.max_output_bytes <= self.max_output_bytes
            && limits.max_fuel.is_none_or(|fuel| fuel <= self.max_fuel)
    }
}

/// Why the executors could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum ExecutorError {
    /// The job type is known to the protocol but this build has no executor for it.
    #[error(
        "job type {} has no executor in this build; remove it from the node's enabled job types",
        job_type.as_str()
    )]
    NoExecutor {
        /// The job type asked for.
        job_type: JobType,
    },
    /// The WebAssembly engine rejected its configuration.
    #[error("could not create the wasm engine: {reason}")]
    Engine {
        /// Wasmtime's complaint.
        reason: String,
    },
    /// The thread that enforces wasm wall-clock limits could not be started.
    #[error(
        "could not start the wasm epoch ticker thread: {reason}; check the process thread limit"
    )]
    Ticker {
        /// The operating system's complaint.
        reason: String,
    },
    /// The host functions could not be registered with the wasm linker.
    #[error("could not define the pocmesh host interface: {reason}")]
    Linker {
        /// Wasmtime's complaint.
        reason: String,
    },
}

/// How the executors of one node are set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorOptions {
    /// The fuel a wasm job gets when its offer names no fuel limit.
    pub default_fuel: u64,
    /// The limits and target rules of HTTP checks.
    pub http: HttpPolicy,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        ExecutorOptions {
            default_fuel: ExecutorCaps::default().max_fuel,
            http: HttpPolicy::default(),
        }
    }
}

/// The executors enabled on this node, one per job type.
pub struct Executors {
    executors: Vec<Box<dyn Executor>>,
}

impl std::fmt::Debug for Executors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executors")
            .field("enabled", &self.enabled())
            .finish()
    }
}

impl Executors {
    /// Builds one executor per job type in `enabled` (duplicates ignored); an error names the
    /// first type this build cannot run.
    pub fn new(enabled: &[JobType]) -> Result<Self, ExecutorError> {
        Self::with_default_fuel(enabled, ExecutorCaps::default().max_fuel)
    }

    /// As [`Executors::new`]; a wasm job whose offer names no fuel limit gets `default_fuel`.
    pub fn with_default_fuel(
        enabled: &[JobType],
        default_fuel: u64,
    ) -> Result<Self, ExecutorError> {
        Self::with_options(
            enabled,
            &ExecutorOptions {
                default_fuel,
                ..ExecutorOptions::default()
            },
        )
    }

    /// As [`Executors::new`], set up with `options`.
    pub fn with_options(
        enabled: &[JobType],
        options: &ExecutorOptions,
    ) -> Result<Self, ExecutorError> {
        let mut types = enabled.to_vec();
        types.sort();
        types.dedup();
        let http = Arc::new(options.http.clone());
        let mut executors: Vec<Box<dyn Executor>> = Vec::with_capacity(types.len());
        for job_type in types {
            match job_type {
                JobType::Hash => executors.push(Box::new(HashExecutor)),
                JobType::Wasm => executors.push(Box::new(WasmExecutor::with_default_fuel(
                    options.default_fuel,
                )?)),
                JobType::LinkHealth => {
                    executors.push(Box::new(HttpExecutor::link_health(http.clone())))
                }
                JobType::RobotsRecheck => {
                    executors.push(Box::new(HttpExecutor::robots_recheck(http.clone())))
                }
                JobType::Unknown => return Err(ExecutorError::NoExecutor { job_type }),
            }
        }
        Ok(Executors { executors })
    }

    /// The enabled job types, sorted.
    pub fn enabled(&self) -> Vec<JobType> {
        self.executors.iter().map(|e| e.job_type()).collect()
    }

    /// Whether `job_type` can run here.
    pub fn supports(&self, job_type: JobType) -> bool {
        self.executor(job_type).is_some()
    }

    /// Whether `spec` is so cheap (≤ [`QUICK_HASH_ITERATIONS`] hash rounds, about 0.1 ms) that
    /// handing it to a blocking worker would cost more than running it where it arrived.
    pub fn is_quick(spec: &JobSpec) -> bool {
        matches!(spec.params, JobParams::Hash { iterations, .. } if iterations <= QUICK_HASH_ITERATIONS)
    }

    /// Runs `spec` on its executor; a failed execution if its type is not enabled.
    pub fn run(&self, spec: &JobSpec) -> Execution {
        let job_type = spec.params.job_type();
        match self.executor(job_type) {
            Some(executor) => executor.execute(&spec.params, &spec.limits),
            None => Execution::failed(
                format!("job type {} is not enabled on this node", job_type.as_str()),
                Metering::default(),
            ),
        }
    }

    fn executor(&self, job_type: JobType) -> Option<&dyn Executor> {
        self.executors
            .iter()
            .find(|e| e.job_type() == job_type)
            .map(|e| e.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_ms: 1_000,
            max_mem_mb: 16,
            max_output_bytes: 64,
            max_fuel: None,
        }
    }

    #[test]
    fn http_job_types_have_executors_and_unknown_types_are_refused_by_name() {
        let executors =
            Executors::new(&[JobType::RobotsRecheck, JobType::Hash, JobType::LinkHealth])
                .expect("http executors");
        assert_eq!(
            executors.enabled(),
            vec![JobType::Hash, JobType::LinkHealth, JobType::RobotsRecheck]
        );
        let err = Executors::new(&[JobType::Hash, JobType::Unknown]).expect_err("no executor");
        assert!(
            err.to_string()
                .starts_with("job type unknown has no executor in this build"),
            "{err}"
        );
    }

    #[test]
    fn registry_runs_enabled_types_and_fails_others() {
        let executors = Executors::new(&[JobType::Hash, JobType::Hash]).expect("hash only");
        assert_eq!(executors.enabled(), vec![JobType::Hash]);
        assert!(executors.supports(JobType::Hash));
        assert!(!executors.supports(JobType::Wasm));
        let hash = JobSpec {
            params: JobParams::Hash {
                seed: Hash32::ZERO,
                iterations: 2,
            },
            limits: limits(),
        };
        assert!(executors.run(&hash).is_ok());
        let wasm = JobSpec {
            params: JobParams::Wasm {
                module: Vec::new().into(),
                input: Vec::new().into(),
            },
            limits: limits(),
        };
        let failed = executors.run(&wasm);
        assert_eq!(failed.status, ResultStatus::Failed);
        assert_eq!(
            failed.error.as_deref(),
            Some("job type wasm is not enabled on this node")
        );
    }

    #[test]
    fn result_hash_covers_output_or_error() {
        let ok = Execution::finished(b"abc".to_vec(), Metering::default(), &limits());
        assert_eq!(ok.result_hash(), Hash32::keccak(b"abc"));
        assert_eq!(ok.metering.bytes, 3);
        let failed = Execution::failed("boom", Metering::default());
        assert_eq!(failed.result_hash(), Hash32::keccak(b"boom"));
        let too_big = Execution::finished(vec![0; 65], Metering::default(), &limits());
        assert_eq!(too_big.status, ResultStatus::Failed);
        assert!(too_big.output.is_empty());
    }

    #[test]
    fn caps_admit_only_limits_within_them() {
        let caps = ExecutorCaps::default();
        assert!(caps.admits(&limits()));
        assert!(caps.admits(&Limits {
            max_fuel: Some(caps.max_fuel),
            ..limits()
        }));
        assert!(!caps.admits(&Limits {
            max_fuel: Some(caps.max_fuel + 1),
            ..limits()
        }));
        assert!(!caps.admits(&Limits {
            max_ms: caps.max_ms + 1,
            ..limits()
        }));
        assert!(!caps.admits(&Limits {
            max_mem_mb: caps.max_mem_mb + 1,
            ..limits()
        }));
        assert!(!caps.admits(&Limits {
            max_output_bytes: caps.max_output_bytes + 1,
            ..limits()
        }));
    }
}
