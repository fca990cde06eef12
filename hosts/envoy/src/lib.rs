//! secure-headers for Envoy and every proxy-wasm host: a thin adapter between the proxy-wasm ABI and the
//! engine (the `secure-headers` crate), which decides everything.
//! - `abi`: the host calls made through the raw ABI, each beside its safe wrapper (mocked under `cfg(test)`);
//! - `exchange`: the request and response header maps, read once per phase into scratch memory;
//! - `filter`: the root and stream contexts (configure, request, response, the held or fetched document, the
//!   collector);
//! - `document_path`: whether this Envoy lets the filter hold a document's headers while it reads the body;
//! - `guest_alloc`: the allocator that keeps the per-response path off the heap.

// A panic in the VM takes traffic down: outside tests, nothing here may unwrap, panic or index.
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
mod allocation_metric;
mod document_path;
mod exchange;
mod filter;
mod guest_alloc;

// Native unit tests run on many threads with the system allocator; the mock host calls the guest's allocator
// directly where a test needs it.
#[cfg(not(test))]
#[global_allocator]
static ALLOCATOR: guest_alloc::GuestAllocator = guest_alloc::GuestAllocator;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| filter::new_root());
}}
