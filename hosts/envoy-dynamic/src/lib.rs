//! secure-headers as an Envoy dynamic module: the engine (the `secure-headers` crate) as a native shared
//! library loaded into Envoy's own process (`envoy.filters.http.dynamic_modules`), with no VM in between.
//! - `abi`: the Envoy callbacks this module calls, each beside its safe wrapper (mocked under `cfg(test)`);
//! - `hooks`: the entry points Envoy calls, each catching panics at the boundary;
//! - `filter`: the configuration (policy, counters) and each stream's phases;
//! - `exchange`: the request and response header maps as the engine sees them;
//! - `stream_pool`: the per-thread boxes that keep a stream off the heap;
//! - `unused_hooks`: the hooks Envoy requires for features this module does not use;
//! - `allocation_count` (test build): heap allocations per hook, as Envoy counters.

// A panic is caught at every entry point, but it still drops that stream's headers: outside tests, nothing
// here may unwrap, panic or index.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod abi;
#[cfg(feature = "alloc-count")]
mod allocation_count;
mod exchange;
mod filter;
mod hooks;
mod stream_pool;
#[cfg(feature = "trap-test")]
mod trap;
mod unused_hooks;

#[cfg(feature = "alloc-count")]
#[global_allocator]
static ALLOCATOR: allocation_count::CountingAllocator = allocation_count::CountingAllocator;
