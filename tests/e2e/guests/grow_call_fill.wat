;; The smallest http-wasm guest that takes Traefik 3.7 (wazero v1.8.0) down (tests/e2e/test_traefik_bulk_memory.py):
;; its memory grows, it calls the host, then memory.fill writes to memory. Without the host call, or with a plain
;; store instead of memory.fill, it runs; memory.copy fails the same way.
(module
 (import "http_handler" "log" (func $log (param i32 i32 i32)))
 (memory $memory 1)
 (export "memory" (memory $memory))
 (func (export "handle_request") (result i64)
   (drop (memory.grow (i32.const 1)))
   (call $log (i32.const 0) (i32.const 0) (i32.const 0))
   (memory.fill (i32.const 1024) (i32.const 1) (i32.const 4096))
   (i64.const 1))
 (func (export "handle_response") (param i32 i32))
)
