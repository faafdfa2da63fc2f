//! The `wasm` job type: a WebAssembly module run in wasmtime under fuel, wall-clock and memory
//! limits, seeing nothing of the host but its input.
//!
//! # The pocmesh host interface
//!
//! A module may import only these functions, from the import module `pocmesh`:
//!
//! - `input_size() -> i32`: the input's length in bytes.
//! - `read_input(ptr: i32, len: i32) -> i32`: copies `min(len, input_size)` bytes of the input to
//!   guest memory at `ptr` and returns that count; a negative `len` or a range outside guest memory
//!   traps.
//! - `write_output(ptr: i32, len: i32)`: appends `len` bytes of guest memory at `ptr` to the output;
//!   going over the job's output limit traps.
//!
//! It must export `memory` and `run() -> i32`; `run` returning 0 means success (the output is what
//! was written), anything else is a failure ("module returned code N"). Any other import is refused
//! before the module runs. Modules are accepted as binary wasm or as WAT text.
//!
//! # Limits and determinism
//!
//! Fuel counts executed instructions, so the same module and input give the same output and the
//! same fuel on every node; that fuel is what a quorum compares and what earns units. The wall
//! clock is enforced by epoch interruption: a ticker thread advances the engine's epoch every
//! [`EPOCH_TICK`], and each store gets a deadline of enough ticks to cover `max_ms`. Memory is
//! capped by a `ResourceLimiter` that refuses growth past `max_mem_mb` (the guest's
//! `memory.grow` returns -1) and remembers that it did, so the failure can say so. NaNs are
//! canonicalised, relaxed SIMD, threads and multiple memories are off.
//!
//! The fuel reported for a run stopped by the wall clock undercounts (often 0): wasmtime does not
//! write the fuel counter back to the store when an epoch interrupt traps. Only completed runs
//! and fuel-limited runs have exact, comparable fuel.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pocmesh_protocol::{JobParams, JobType, Limits, Metering, keccak256};
use wasmtime::{Config, Engine, Linker, Module, Store, Trap};

use super::host::{HostError, HostState, MemoryCap, check_interface, host_linker};
use super::{Execution, Executor, ExecutorCaps, ExecutorError, elapsed_ms};

/// How often the epoch ticker advances the engine's epoch (the wall-clock granularity).
pub const EPOCH_TICK: Duration = Duration::from_millis(10);
/// How many compiled modules are kept; the oldest is evicted first.
pub const MODULE_CACHE_ENTRIES: usize = 32;

/// Guest call-stack cap, so deep recursion traps the same way on every node.
const MAX_WASM_STACK: usize = 512 * 1024;

/// Runs `wasm` jobs on one shared wasmtime engine with a cache of compiled modules.
pub struct WasmExecutor {
    engine: Engine,
    linker: Linker<HostState>,
    cache: Mutex<ModuleCache>,
    default_fuel: u64,
    _ticker: EpochTicker,
}

impl std::fmt::Debug for WasmExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmExecutor")
            .field("default_fuel", &self.default_fuel)
            .field("cached_modules", &self.cached_modules())
            .finish_non_exhaustive()
    }
}

impl WasmExecutor {
    /// An executor giving jobs without a fuel limit the default cap's fuel.
    pub fn new() -> Result<Self, ExecutorError> {
        Self::with_default_fuel(ExecutorCaps::default().max_fuel)
    }

    /// An executor giving jobs without a fuel limit `default_fuel`.
    pub fn with_default_fuel(default_fuel: u64) -> Result<Self, ExecutorError> {
        let mut config = Config::new();
        config
            .consume_fuel(true)
            .epoch_interruption(true)
            .cranelift_nan_canonicalization(true)
            .wasm_relaxed_simd(false)
            .wasm_multi_memory(false)
            .wasm_memory64(false)
            .max_wasm_stack(MAX_WASM_STACK)
            // Traps are reported by kind; backtraces would only cost time.
            .wasm_backtrace_max_frames(None);
        let engine = Engine::new(&config).map_err(|e| ExecutorError::Engine {
            reason: format!("{e:#}"),
        })?;
        let linker = host_linker(&engine).map_err(|e| ExecutorError::Linker {
            reason: format!("{e:#}"),
        })?;
        let ticker = EpochTicker::start(engine.clone())?;
        Ok(WasmExecutor {
            engine,
            linker,
            cache: Mutex::new(ModuleCache::default()),
            default_fuel,
            _ticker: ticker,
        })
    }

    /// Runs `module` (binary wasm or WAT text) on `input` within `limits`.
    pub fn run(&self, module: &[u8], input: &[u8], limits: &Limits) -> Execution {
        let start = Instant::now();
        let metering = |fuel| Metering {
            fuel,
            ms: elapsed_ms(start),
            bytes: 0,
        };
        let module = match self
            .module(module)
            .and_then(|m| check_interface(&m).map(|()| m))
        {
            Ok(module) => module,
            Err(reason) => return Execution::failed(reason, metering(0)),
        };
        // Compiling counts against the wall clock; what is left becomes the epoch deadline.
        let Some(remaining_ms) = limits.max_ms.checked_sub(elapsed_ms(start)) else {
            return Execution::timed_out(limits, metering(0));
        };
        let fuel = limits.max_fuel.unwrap_or(self.default_fuel);
        let mem_bytes = limits.max_mem_mb.saturating_mul(1024 * 1024);
        let state = HostState {
            input: input.to_vec(),
            output: Vec::new(),
            max_output: limits.max_output_bytes,
            memory: MemoryCap {
                max_bytes: usize::try_from(mem_bytes).unwrap_or(usize::MAX),
                refused: false,
            },
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|state| &mut state.memory);
        if let Err(e) = store.set_fuel(fuel) {
            return Execution::failed_locally(format!("could not set fuel: {e:#}"), metering(0));
        }
        store.set_epoch_deadline(remaining_ms.div_ceil(tick_ms()).saturating_add(1));

        let outcome = self.instantiate_and_call(&mut store, &module);
        let used = fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let state = store.into_data();
        match outcome {
            Ok(0) => Execution::finished(state.output, metering(used), limits),
            Ok(code) if state.memory.refused => Execution::failed(
                format!(
                    "module returned code {code} after reaching the memory limit of {} MiB",
                    limits.max_mem_mb
                ),
                metering(used),
            ),
            Ok(code) => Execution::failed(format!("module returned code {code}"), metering(used)),
            Err(e) if matches!(e.downcast_ref::<Trap>(), Some(Trap::Interrupt)) => {
                Execution::timed_out(limits, metering(used))
            }
            Err(e) => Execution::failed(describe_failure(&e, &state, limits, fuel), metering(used)),
        }
    }

    /// How many compiled modules are cached right now.
    pub fn cached_modules(&self) -> usize {
        lock(&self.cache).order.len()
    }

    fn instantiate_and_call(
        &self,
        store: &mut Store<HostState>,
        module: &Module,
    ) -> wasmtime::Result<i32> {
        let instance = self.linker.instantiate(&mut *store, module)?;
        let run = instance.get_typed_func::<(), i32>(&mut *store, "run")?;
        run.call(&mut *store, ())
    }

    /// The compiled module for `bytes`, from the cache or freshly compiled (outside the lock).
    fn module(&self, bytes: &[u8]) -> Result<Module, String> {
        let key = keccak256(bytes);
        if let Some(module) = lock(&self.cache).get(&key) {
            return Ok(module);
        }
        let module = Module::new(&self.engine, bytes)
            .map_err(|e| format!("module is not valid WebAssembly (binary or text): {e:#}"))?;
        lock(&self.cache).insert(key, module.clone());
        Ok(module)
    }
}

impl Executor for WasmExecutor {
    fn job_type(&self) -> JobType {
        JobType::Wasm
    }

    fn execute(&self, params: &JobParams, limits: &Limits) -> Execution {
        match params {
            JobParams::Wasm { module, input } => self.run(module, input, limits),
            other => Execution::failed(
                format!(
                    "the wasm executor cannot run a {} job",
                    other.job_type().as_str()
                ),
                Metering::default(),
            ),
        }
    }
}

fn tick_ms() -> u64 {
    u64::try_from(EPOCH_TICK.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

fn wall_clock_error(limits: &Limits) -> String {
    format!("wall-clock limit of {} ms reached", limits.max_ms)
}

/// The error text for a run that ended in a trap or host error.
fn describe_failure(
    err: &wasmtime::Error,
    state: &HostState,
    limits: &Limits,
    fuel: u64,
) -> String {
    if let Some(host) = err.downcast_ref::<HostError>() {
        return host.to_string();
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => format!("fuel limit of {fuel} reached"),
        Some(Trap::Interrupt) => wall_clock_error(limits),
        // A refused memory.grow is usually followed by a trap (or a refused initial memory fails
        // instantiation): the cap is the cause worth reporting.
        _ if state.memory.refused => format!("memory limit of {} MiB reached", limits.max_mem_mb),
        Some(trap) => format!("module trapped: {trap}"),
        None => format!("module failed: {err:#}"),
    }
}

/// Compiled modules by keccak256 of their bytes, oldest evicted first.
#[derive(Default)]
struct ModuleCache {
    modules: HashMap<[u8; 32], Module>,
    order: VecDeque<[u8; 32]>,
}

impl ModuleCache {
    fn get(&self, key: &[u8; 32]) -> Option<Module> {
        self.modules.get(key).cloned()
    }

    fn insert(&mut self, key: [u8; 32], module: Module) {
        if self.modules.contains_key(&key) {
            return;
        }
        while self.order.len() >= MODULE_CACHE_ENTRIES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.modules.remove(&oldest);
        }
        self.modules.insert(key, module);
        self.order.push_back(key);
    }
}

/// A poisoned cache lock only means another job panicked mid-insert; the map is still usable.
fn lock(cache: &Mutex<ModuleCache>) -> std::sync::MutexGuard<'_, ModuleCache> {
    cache
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The thread advancing the engine's epoch every [`EPOCH_TICK`]; stopped and joined on drop.
struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    fn start(engine: Engine) -> Result<Self, ExecutorError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("pocmesh-wasm-epoch".to_string())
            .spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                }
            })
            .map_err(|e| ExecutorError::Ticker {
                reason: e.to_string(),
            })?;
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            // The thread wakes within one tick; a panic there has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use pocmesh_protocol::ResultStatus;

    use super::*;

    fn limits() -> Limits {
        Limits {
            max_ms: 5_000,
            max_mem_mb: 16,
            max_output_bytes: 1024,
            max_fuel: Some(1_000_000),
        }
    }

    const ECHO: &str = r#"(module
      (import "pocmesh" "input_size" (func $size (result i32)))
      (import "pocmesh" "read_input" (func $read (param i32 i32) (result i32)))
      (import "pocmesh" "write_output" (func $write (param i32 i32)))
      (memory (export "memory") 1)
      (func (export "run") (result i32)
        (call $write (i32.const 0) (call $read (i32.const 0) (call $size)))
        (i32.const 0)))"#;

    #[test]
    fn echoes_input_and_caches_the_module() {
        let executor = WasmExecutor::new().expect("engine");
        let first = executor.run(ECHO.as_bytes(), b"hello", &limits());
        assert_eq!(first.status, ResultStatus::Ok, "{:?}", first.error);
        assert_eq!(first.output, b"hello");
        assert!(first.metering.fuel > 0);
        let second = executor.run(ECHO.as_bytes(), b"hello", &limits());
        assert_eq!(second.metering.fuel, first.metering.fuel);
        assert_eq!(executor.cached_modules(), 1);
    }

    #[test]
    fn nonzero_return_code_fails_with_the_code() {
        let executor = WasmExecutor::new().expect("engine");
        let module = r#"(module (memory (export "memory") 1)
            (func (export "run") (result i32) (i32.const 7)))"#;
        let run = executor.run(module.as_bytes(), b"", &limits());
        assert_eq!(run.error.as_deref(), Some("module returned code 7"));
    }

    #[test]
    fn missing_exports_and_bad_signatures_are_refused() {
        let executor = WasmExecutor::new().expect("engine");
        let no_memory = r#"(module (func (export "run") (result i32) (i32.const 0)))"#;
        let run = executor.run(no_memory.as_bytes(), b"", &limits());
        assert!(
            run.error
                .as_deref()
                .is_some_and(|e| e.contains("no `memory`")),
            "{run:?}"
        );
        let bad_sig = r#"(module (import "pocmesh" "input_size" (func (param i32) (result i32)))
            (memory (export "memory") 1) (func (export "run") (result i32) (i32.const 0)))"#;
        let run = executor.run(bad_sig.as_bytes(), b"", &limits());
        assert!(
            run.error
                .as_deref()
                .is_some_and(|e| e.contains("wrong type")),
            "{run:?}"
        );
        let garbage = executor.run(b"\0asm garbage", b"", &limits());
        assert!(
            garbage
                .error
                .as_deref()
                .is_some_and(|e| e.contains("not valid WebAssembly"))
        );
    }

    #[test]
    fn out_of_bounds_read_traps_with_the_range() {
        let executor = WasmExecutor::new().expect("engine");
        let module = r#"(module
          (import "pocmesh" "read_input" (func $read (param i32 i32) (result i32)))
          (memory (export "memory") 1)
          (func (export "run") (result i32) (call $read (i32.const 65535) (i32.const 8))))"#;
        let run = executor.run(module.as_bytes(), b"12345678", &limits());
        assert!(
            run.error
                .as_deref()
                .is_some_and(|e| e.contains("read_input: bytes 65535..65543 are outside")),
            "{run:?}"
        );
    }

    #[test]
    fn cache_evicts_the_oldest_module() {
        let executor = WasmExecutor::new().expect("engine");
        for code in 0..=MODULE_CACHE_ENTRIES {
            let module = format!(
                r#"(module (memory (export "memory") 1) (func (export "run") (result i32) (i32.const {code})))"#
            );
            executor.run(module.as_bytes(), b"", &limits());
        }
        assert_eq!(executor.cached_modules(), MODULE_CACHE_ENTRIES);
    }
}
