//! The `alloc-count` build reports the guest's heap allocations as the Envoy counter
//! `wasmcustom.secure_headers.heap_allocations` and the size of its linear memory as the gauge
//! `wasmcustom.secure_headers.linear_memory_bytes` (for the allocation test and `make soak`).

use crate::abi::{define_counter, define_gauge, increment_counter, record_gauge};
use crate::guest_alloc::heap_allocations;
use std::cell::Cell;

const WASM_PAGE: u64 = 65_536;

thread_local! {
    static METRICS: Cell<Option<(u32, u32)>> = const { Cell::new(None) };
    static REPORTED: Cell<usize> = const { Cell::new(0) };
}

pub fn define() {
    let ids = define_counter("secure_headers.heap_allocations")
        .zip(define_gauge("secure_headers.linear_memory_bytes"));
    METRICS.with(|m| m.set(ids));
}

/// Adds the allocations made since the last report (so the counter sums over every VM).
pub fn report() {
    let Some((allocations, memory)) = METRICS.with(Cell::get) else {
        return;
    };
    let now = heap_allocations();
    let delta = now.saturating_sub(REPORTED.with(|r| r.replace(now)));
    if delta > 0 {
        increment_counter(allocations, i64::try_from(delta).unwrap_or(i64::MAX));
    }
    record_gauge(
        memory,
        core::arch::wasm32::memory_size(0) as u64 * WASM_PAGE,
    );
}
