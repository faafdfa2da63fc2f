//! The wasm sandbox and the hash executor against hostile and ordinary jobs, with real wasmtime.

use std::time::{Duration, Instant};

use pocmesh_executor::{
    Execution, Executor, HashExecutor, KERNEL_WAT, WasmExecutor, kernel_input, kernel_native,
};
use pocmesh_protocol::{Hash32, JobParams, Limits, ResultStatus, keccak256};

fn limits(max_ms: u64, max_fuel: Option<u64>) -> Limits {
    Limits {
        max_ms,
        max_mem_mb: 16,
        max_output_bytes: 1024,
        max_fuel,
    }
}

fn executor() -> WasmExecutor {
    WasmExecutor::new().expect("wasm engine")
}

#[track_caller]
fn assert_failed_with(run: &Execution, expected: &str) {
    assert_eq!(
        run.status,
        ResultStatus::Failed,
        "expected a failure: {run:?}"
    );
    let error = run.error.as_deref().unwrap_or_default();
    assert!(
        error.contains(expected),
        "error {error:?} does not contain {expected:?}"
    );
    assert!(run.output.is_empty());
}

const INFINITE_LOOP: &str = r#"(module
  (memory (export "memory") 1)
  (func (export "run") (result i32)
    (loop $forever (br $forever))
    (i32.const 0)))"#;

#[test]
fn infinite_loop_is_stopped_by_fuel() {
    let run = executor().run(
        INFINITE_LOOP.as_bytes(),
        b"",
        &limits(60_000, Some(100_000)),
    );
    assert_failed_with(&run, "fuel limit of 100000 reached");
    assert_eq!(run.metering.fuel, 100_000);
}

#[test]
fn infinite_loop_is_stopped_by_the_wall_clock() {
    let started = Instant::now();
    let run = executor().run(INFINITE_LOOP.as_bytes(), b"", &limits(200, Some(u64::MAX)));
    let took = started.elapsed();
    assert_failed_with(&run, "wall-clock limit of 200 ms reached");
    assert!(
        took >= Duration::from_millis(190),
        "stopped too early: {took:?}"
    );
    assert!(took < Duration::from_secs(3), "stopped too late: {took:?}");
    assert!(run.metering.ms >= 190, "{:?}", run.metering);
    // No fuel assertion: wasmtime does not flush the fuel counter when an epoch interrupt traps,
    // so fuel after a wall-clock stop undercounts (often 0). Such results are nondeterministic
    // anyway.
}

#[test]
fn memory_bomb_stops_at_the_cap() {
    // Grows one page at a time until refused, then traps.
    let bomb = r#"(module
      (memory (export "memory") 1)
      (func (export "run") (result i32)
        (loop $grow
          (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
        unreachable))"#;
    let run = executor().run(bomb.as_bytes(), b"", &limits(10_000, Some(10_000_000)));
    assert_failed_with(&run, "memory limit of 16 MiB reached");

    // Asks for more than the cap up front: refused at instantiation.
    let greedy = r#"(module (memory (export "memory") 1024)
      (func (export "run") (result i32) (i32.const 0)))"#;
    let run = executor().run(greedy.as_bytes(), b"", &limits(10_000, None));
    assert_failed_with(&run, "memory limit of 16 MiB reached");
}

#[test]
fn memory_bomb_that_checks_the_result_reports_the_cap() {
    let polite = r#"(module
      (memory (export "memory") 1)
      (func (export "run") (result i32)
        (loop $grow
          (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
        (i32.const 9)))"#;
    let run = executor().run(polite.as_bytes(), b"", &limits(10_000, Some(10_000_000)));
    assert_failed_with(
        &run,
        "module returned code 9 after reaching the memory limit of 16 MiB",
    );
}

#[test]
fn imports_outside_the_interface_are_refused_before_running() {
    let cases = [
        ("env", "foo", "(func (param i32))"),
        (
            "wasi_snapshot_preview1",
            "fd_write",
            "(func (param i32 i32 i32 i32) (result i32))",
        ),
    ];
    for (module_name, name, ty) in cases {
        // The module would loop forever if it ran: being refused quickly proves it did not.
        let module = format!(
            r#"(module (import "{module_name}" "{name}" {ty})
              (memory (export "memory") 1)
              (func (export "run") (result i32) (loop $l (br $l)) (i32.const 0)))"#
        );
        let run = executor().run(module.as_bytes(), b"", &limits(60_000, Some(u64::MAX)));
        assert_failed_with(
            &run,
            &format!(
                "import `{module_name}.{name}` is outside the pocmesh interface (allowed: \
                 pocmesh.input_size, pocmesh.read_input, pocmesh.write_output)"
            ),
        );
        assert_eq!(run.metering.fuel, 0);
    }
}

#[test]
fn kernel_is_deterministic_and_matches_native() {
    let executor = executor();
    let input = kernel_input(3, &(0..=255u8).cycle().take(4096).collect::<Vec<_>>());
    let params = JobParams::Wasm {
        module: KERNEL_WAT.as_bytes().to_vec().into(),
        input: input.clone().into(),
    };
    let limits = limits(60_000, Some(1_000_000_000));
    let first = executor.execute(&params, &limits);
    assert_eq!(first.status, ResultStatus::Ok, "{:?}", first.error);
    assert_eq!(first.output, kernel_native(&input));
    assert_eq!(first.metering.bytes, 32);
    for attempt in 1..100 {
        let run = executor.execute(&params, &limits);
        assert_eq!(run.output, first.output, "output differs on run {attempt}");
        assert_eq!(
            run.metering.fuel, first.metering.fuel,
            "fuel differs on run {attempt}"
        );
        assert_eq!(run.result_hash(), first.result_hash());
    }
    assert_eq!(executor.cached_modules(), 1);
}

#[test]
fn kernel_matches_native_on_short_and_empty_inputs() {
    let executor = executor();
    let inputs = [
        b"".to_vec(),
        b"abc".to_vec(),
        b"1234567".to_vec(),
        kernel_input(0, b""),
        kernel_input(0, b"data"),
        kernel_input(5, b""),
        kernel_input(2, b"x"),
    ];
    for input in inputs {
        let run = executor.run(KERNEL_WAT.as_bytes(), &input, &limits(60_000, None));
        assert_eq!(run.status, ResultStatus::Ok, "{input:?}: {:?}", run.error);
        assert_eq!(run.output, kernel_native(&input), "input {input:?}");
    }
}

#[test]
fn output_over_the_limit_fails() {
    let chatty = r#"(module
      (import "pocmesh" "write_output" (func $write (param i32 i32)))
      (memory (export "memory") 1)
      (func (export "run") (result i32)
        (call $write (i32.const 0) (i32.const 600))
        (call $write (i32.const 0) (i32.const 600))
        (i32.const 0)))"#;
    let run = executor().run(chatty.as_bytes(), b"", &limits(10_000, None));
    assert_failed_with(&run, "output limit of 1024 bytes exceeded");

    let within = Limits {
        max_output_bytes: 1200,
        ..limits(10_000, None)
    };
    let run = executor().run(chatty.as_bytes(), b"", &within);
    assert_eq!(run.status, ResultStatus::Ok, "{:?}", run.error);
    assert_eq!(run.output.len(), 1200);
}

#[test]
fn hash_executor_matches_a_manual_keccak_loop() {
    let seed = Hash32::keccak(b"pocmesh");
    let expected = keccak256(keccak256(keccak256(seed.0)));
    let params = JobParams::Hash {
        seed,
        iterations: 3,
    };
    let run = HashExecutor.execute(&params, &limits(1_000, None));
    assert_eq!(run.status, ResultStatus::Ok);
    assert_eq!(run.output, expected.to_vec());
    assert_eq!(run.metering.fuel, 3);
    assert_eq!(run.result_hash(), Hash32::keccak(expected));
}

#[test]
fn hash_over_the_wall_clock_fails() {
    let params = JobParams::Hash {
        seed: Hash32::ZERO,
        iterations: u64::MAX,
    };
    let started = Instant::now();
    let run = HashExecutor.execute(&params, &limits(50, None));
    assert_failed_with(&run, "wall-clock limit of 50 ms reached");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(run.metering.fuel > 0 && run.metering.fuel.is_multiple_of(4096));
}
