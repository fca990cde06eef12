;; An http-wasm guest that reports in its answer whether Traefik 3.7's wazero (v1.8.0) kept its registers across a
;; memory.copy (tests/e2e/test_traefik_bulk_memory.py). wazero's amd64 compiler calls Go's runtime.memmove for
;; memory.copy and memory.fill and counts on it to keep RDX, which wazero's code saves across calls; since Go 1.24
;; memmove's REP MOVSQ path (a forward copy of 2 KiB or more to a 16-byte aligned address, taken where Go prefers
;; REP MOVS: Intel CPUs with ERMS and FSRM) writes RDX. The loop counter $i of $copy_keeps lives in RDX across the
;; copy (wazero v1.8.0's register allocation for this very module), so a lost RDX shows as $i != 1.
;; Response headers: x-guest-registers "kept" or "lost"; x-guest-copy "landed" or "missing" (the copied words read
;; back with i32.load). The memory grows and the guest calls the host first, as Rust's allocator and logging do.
(module
 (import "http_handler" "log" (func $log (param i32 i32 i32)))
 (import "http_handler" "set_header_value" (func $set_header_value (param i32 i32 i32 i32 i32)))
 (memory $memory 1)
 (export "memory" (memory $memory))
 (data (i32.const 0) "x-guest-registers")
 (data (i32.const 32) "kept")
 (data (i32.const 48) "lost")
 (data (i32.const 64) "x-guest-copy")
 (data (i32.const 80) "landed")
 (data (i32.const 96) "missing")
 ;; Copies `size` bytes from 1024 to 8192 once, in a loop, with the loop counter and five values live across the
 ;; copy and nothing after it but arithmetic: 1 when all of them are still what they were, else 0.
 (func $copy_keeps (param $size i32) (param $a i32) (param $b i32) (param $c i32) (param $d i32) (result i32)
   (local $i i32)
   (loop $again
     (memory.copy (i32.const 8192) (i32.const 1024) (local.get $size))
     (br_if $again (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1)))
                             (i32.sub (local.get $d) (i32.const 6)))))
   (i32.and
     (i32.and (i32.eq (local.get $size) (i32.const 4096)) (i32.eq (local.get $a) (i32.const 42)))
     (i32.and (i32.eq (local.get $b) (i32.const 1000))
              (i32.and (i32.eq (local.get $c) (i32.const 0x5a58))
                       (i32.and (i32.eq (local.get $d) (i32.const 7)) (i32.eq (local.get $i) (i32.const 1)))))))
 (func (export "handle_request") (result i64)
   (local $kept i32) (local $landed i32) (local $grown i32)
   ;; $grown is 1: the pages the grow added (an instance serves request after request, its memory growing each time)
   (local.set $grown (i32.sub (i32.const 0) (memory.grow (i32.const 1))))
   (local.set $grown (i32.add (local.get $grown) (memory.size)))
   (call $log (i32.const 0) (i32.const 0) (i32.const 0))
   (i32.store (i32.const 1024) (i32.const 0x11223344))
   (i32.store (i32.const 5116) (i32.const 0x55667788))
   ;; Not constants, so that the compiler keeps them in registers.
   (local.set $kept (call $copy_keeps (i32.shl (local.get $grown) (i32.const 12)) (i32.add (local.get $grown) (i32.const 41))
                      (i32.mul (local.get $grown) (i32.const 1000)) (i32.xor (local.get $grown) (i32.const 0x5a59))
                      (i32.add (local.get $grown) (i32.const 6))))
   (local.set $landed (i32.and (i32.eq (i32.load (i32.const 8192)) (i32.const 0x11223344))
                               (i32.eq (i32.load (i32.const 12284)) (i32.const 0x55667788))))
   ;; Response headers (kind 1); next = 1: the request goes on to the upstream.
   (call $set_header_value (i32.const 1) (i32.const 0) (i32.const 17)
     (select (i32.const 32) (i32.const 48) (local.get $kept)) (i32.const 4))
   (call $set_header_value (i32.const 1) (i32.const 64) (i32.const 12)
     (select (i32.const 80) (i32.const 96) (local.get $landed)) (select (i32.const 6) (i32.const 7) (local.get $landed)))
   (i64.const 1))
 (func (export "handle_response") (param i32 i32))
)
