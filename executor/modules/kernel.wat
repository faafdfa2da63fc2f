;; pocmesh demo and benchmark kernel.
;;
;; Uses only the pocmesh host interface (pocmesh.input_size, pocmesh.read_input,
;; pocmesh.write_output). Input: the first 8 bytes are a little-endian u64 `rounds`, the rest is
;; `data`; an input shorter than 8 bytes is all data, with 64 rounds. Every round walks the data
;; byte by byte through an FNV-1a / xorshift64 mix and writes each byte back scrambled, so later
;; rounds depend on earlier ones. Output: the four 64-bit lanes a, b, c, d, little-endian
;; (32 bytes). `kernel_native` in node/src/executor/kernel.rs is the same algorithm in Rust;
;; keep the two in step.
(module
  (import "pocmesh" "input_size" (func $input_size (result i32)))
  (import "pocmesh" "read_input" (func $read_input (param i32 i32) (result i32)))
  (import "pocmesh" "write_output" (func $write_output (param i32 i32)))
  (memory (export "memory") 1)

  (func (export "run") (result i32)
    (local $size i32) (local $pages i32) (local $start i32) (local $p i32)
    (local $rounds i64) (local $r i64) (local $v i64)
    (local $a i64) (local $b i64) (local $c i64) (local $d i64)

    ;; Make room for the whole input at address 0.
    (local.set $size (call $input_size))
    (local.set $pages
      (i32.shr_u (i32.add (local.get $size) (i32.const 65535)) (i32.const 16)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 2))))))
    (if (i32.ne (call $read_input (i32.const 0) (local.get $size)) (local.get $size))
      (then (return (i32.const 3))))

    ;; Header: rounds, or the default when the input is too short to carry one.
    (if (i32.ge_u (local.get $size) (i32.const 8))
      (then
        (local.set $rounds (i64.load (i32.const 0)))
        (local.set $start (i32.const 8)))
      (else
        (local.set $rounds (i64.const 64))
        (local.set $start (i32.const 0))))

    (local.set $a (i64.const 0xcbf29ce484222325))
    (local.set $b (i64.const 0x9e3779b97f4a7c15))
    (local.set $c (local.get $rounds))
    (local.set $d (i64.extend_i32_u (i32.sub (local.get $size) (local.get $start))))

    (block $rounds_done
      (loop $round
        (br_if $rounds_done (i64.ge_u (local.get $r) (local.get $rounds)))
        (local.set $p (local.get $start))
        (block $bytes_done
          (loop $byte
            (br_if $bytes_done (i32.ge_u (local.get $p) (local.get $size)))
            (local.set $v (i64.load8_u (local.get $p)))
            ;; a = (a ^ v) * FNV prime
            (local.set $a
              (i64.mul (i64.xor (local.get $a) (local.get $v)) (i64.const 0x100000001b3)))
            ;; b = xorshift64(b ^ a)
            (local.set $b (i64.xor (local.get $b) (local.get $a)))
            (local.set $b (i64.xor (local.get $b) (i64.shl (local.get $b) (i64.const 13))))
            (local.set $b (i64.xor (local.get $b) (i64.shr_u (local.get $b) (i64.const 7))))
            (local.set $b (i64.xor (local.get $b) (i64.shl (local.get $b) (i64.const 17))))
            ;; data[p] = v ^ (b >> 56)
            (i64.store8 (local.get $p)
              (i64.xor (local.get $v) (i64.shr_u (local.get $b) (i64.const 56))))
            (local.set $p (i32.add (local.get $p) (i32.const 1)))
            (br $byte)))
        ;; c = rotl(c + a, 17); d = (d ^ b) * golden ratio
        (local.set $c (i64.rotl (i64.add (local.get $c) (local.get $a)) (i64.const 17)))
        (local.set $d
          (i64.mul (i64.xor (local.get $d) (local.get $b)) (i64.const 0x9e3779b97f4a7c15)))
        (local.set $r (i64.add (local.get $r) (i64.const 1)))
        (br $round)))

    (i64.store (i32.const 0) (local.get $a))
    (i64.store (i32.const 8) (local.get $b))
    (i64.store (i32.const 16) (local.get $c))
    (i64.store (i32.const 24) (local.get $d))
    (call $write_output (i32.const 0) (i32.const 32))
    (i32.const 0))
)
