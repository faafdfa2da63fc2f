//! The pocmesh host interface for wasm jobs: the only imports a module may have, the host
//! functions behind them, the import/export check made before a module runs, and the store's
//! memory cap. The interface itself is documented in [`super::wasm`].

use wasmtime::{Caller, Engine, Extern, ExternType, FuncType, Linker, Module, ResourceLimiter};

/// The import module name of the host interface.
pub(crate) const HOST_MODULE: &str = "pocmesh";
/// The allowed imports: name, number of i32 parameters, number of i32 results.
const HOST_FUNCTIONS: [(&str, usize, usize); 3] = [
    ("input_size", 0, 1),
    ("read_input", 2, 1),
    ("write_output", 2, 0),
];
const ALLOWED_IMPORTS: &str = "pocmesh.input_size, pocmesh.read_input, pocmesh.write_output";
/// Tables a module may have, and elements per table.
const MAX_TABLES: usize = 4;
const MAX_TABLE_ELEMENTS: usize = 10_000;

/// Refuses a module that imports anything outside the host interface or lacks `run`/`memory`.
pub(crate) fn check_interface(module: &Module) -> Result<(), String> {
    for import in module.imports() {
        let (module_name, name) = (import.module(), import.name());
        let expected = HOST_FUNCTIONS
            .iter()
            .find(|(host_name, _, _)| module_name == HOST_MODULE && name == *host_name);
        let Some(&(_, params, results)) = expected else {
            return Err(format!(
                "import `{module_name}.{name}` is outside the pocmesh interface (allowed: {ALLOWED_IMPORTS})"
            ));
        };
        let fits = matches!(import.ty(), ExternType::Func(ty) if all_i32(&ty, params, results));
        if !fits {
            return Err(format!(
                "import `{module_name}.{name}` has the wrong type and is outside the pocmesh interface \
                 (expected a function of {params} i32 parameters and {results} i32 results)"
            ));
        }
    }
    match module.get_export("run") {
        Some(ExternType::Func(ty)) if all_i32(&ty, 0, 1) => {}
        Some(_) => return Err("export `run` must be a function `run() -> i32`".to_string()),
        None => {
            return Err(
                "module exports no `run` function; a pocmesh module exports `run() -> i32` and `memory`"
                    .to_string(),
            );
        }
    }
    match module.get_export("memory") {
        Some(ExternType::Memory(_)) => Ok(()),
        _ => Err(
            "module exports no `memory`; a pocmesh module exports `run() -> i32` and `memory`"
                .to_string(),
        ),
    }
}

fn all_i32(ty: &FuncType, params: usize, results: usize) -> bool {
    ty.params().len() == params
        && ty.results().len() == results
        && ty.params().chain(ty.results()).all(|t| t.is_i32())
}

/// What a store carries: the job's input, the output so far and the memory cap.
pub(crate) struct HostState {
    pub(crate) input: Vec<u8>,
    pub(crate) output: Vec<u8>,
    pub(crate) max_output: u64,
    pub(crate) memory: MemoryCap,
}

/// Caps linear memory (and tables) and remembers whether it refused a growth.
pub(crate) struct MemoryCap {
    pub(crate) max_bytes: usize,
    pub(crate) refused: bool,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_bytes {
            self.refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        1
    }
}

/// Why a host function trapped the guest.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HostError {
    /// `write_output` would go over the job's output limit.
    #[error("output limit of {limit} bytes exceeded by write_output")]
    OutputLimit { limit: u64 },
    /// A pointer range outside guest memory.
    #[error("{call}: bytes {start}..{end} are outside guest memory of {size} bytes")]
    OutOfBounds {
        call: &'static str,
        start: usize,
        end: usize,
        size: usize,
    },
    /// A negative length.
    #[error("{call}: negative length {len}")]
    NegativeLength { call: &'static str, len: i32 },
    /// The guest has no `memory` export to read from or write to.
    #[error("{call}: the module exports no memory")]
    NoMemory { call: &'static str },
}

/// The linker with the three host functions and nothing else.
pub(crate) fn host_linker(engine: &Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::new(engine);
    linker.func_wrap(
        HOST_MODULE,
        "input_size",
        |caller: Caller<'_, HostState>| {
            i32::try_from(caller.data().input.len()).unwrap_or(i32::MAX)
        },
    )?;
    linker.func_wrap(
        HOST_MODULE,
        "read_input",
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> wasmtime::Result<i32> {
            const CALL: &str = "read_input";
            let len = guest_len(CALL, len)?;
            let memory = caller
                .get_export("memory")
                .and_then(Extern::into_memory)
                .ok_or(HostError::NoMemory { call: CALL })?;
            let (guest, state) = memory.data_and_store_mut(&mut caller);
            let count = len.min(state.input.len());
            let dest = guest_range(CALL, guest.len(), ptr, count)?;
            guest[dest].copy_from_slice(&state.input[..count]);
            Ok(i32::try_from(count).unwrap_or(i32::MAX))
        },
    )?;
    linker.func_wrap(
        HOST_MODULE,
        "write_output",
        |mut caller: Caller<'_, HostState>, ptr: i32, len: i32| -> wasmtime::Result<()> {
            const CALL: &str = "write_output";
            let len = guest_len(CALL, len)?;
            let memory = caller
                .get_export("memory")
                .and_then(Extern::into_memory)
                .ok_or(HostError::NoMemory { call: CALL })?;
            let (guest, state) = memory.data_and_store_mut(&mut caller);
            let total = u64::try_from(state.output.len().saturating_add(len)).unwrap_or(u64::MAX);
            if total > state.max_output {
                return Err(HostError::OutputLimit {
                    limit: state.max_output,
                }
                .into());
            }
            let src = guest_range(CALL, guest.len(), ptr, len)?;
            state.output.extend_from_slice(&guest[src]);
            Ok(())
        },
    )?;
    Ok(linker)
}

fn guest_len(call: &'static str, len: i32) -> Result<usize, HostError> {
    usize::try_from(len).map_err(|_| HostError::NegativeLength { call, len })
}

/// `ptr..ptr + len` if it lies inside guest memory of `size` bytes.
fn guest_range(
    call: &'static str,
    size: usize,
    ptr: i32,
    len: usize,
) -> Result<std::ops::Range<usize>, HostError> {
    // wasm32 addresses are unsigned: reinterpret the bits.
    let start = ptr.cast_unsigned() as usize;
    let end = start.saturating_add(len);
    if end > size {
        return Err(HostError::OutOfBounds {
            call,
            start,
            end,
            size,
        });
    }
    Ok(start..end)
}
