//! Benchmark baseline: the cost of Traefik calling into an http-wasm guest on every request and response, and
//! nothing else. No imports are used; the two exports are the whole ABI a guest must offer.

/// `handle_request`'s answer: call the next handler, no request context.
const NEXT: i64 = 1;

#[no_mangle]
pub extern "C" fn handle_request() -> i64 {
    NEXT
}

#[no_mangle]
pub extern "C" fn handle_response(_req_ctx: i32, _is_error: i32) {}
