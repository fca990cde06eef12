//! secure-headers: security response headers at the proxy edge.
//!
//! The policy engine (everything but the host adapters) is plain Rust with no host types, so the proxy-wasm
//! module, the http-wasm module and the native tests all run the same code.

// A panic in the VM takes traffic down: outside tests, the request path may not unwrap, panic or index.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod companion;
pub mod csp;
pub mod delivery;
pub mod document_fetch;
pub mod engine;
pub mod error;
pub mod header_syntax;
pub mod host;
pub mod identity;
pub mod inline_hashing;
pub mod inline_scripts;
pub mod matcher;
pub mod metrics;
pub mod observe;
pub mod policy;
pub mod presets;
pub mod report_collector;
pub mod rule;
pub mod schema;
pub mod traefik_options;

#[cfg(all(feature = "proxy-wasm", feature = "http-wasm"))]
compile_error!("build one host adapter at a time: each host refuses the other's imports");

#[cfg(feature = "proxy-wasm")]
mod guest_alloc;
#[cfg(feature = "http-wasm")]
mod http_wasm_filter;
#[cfg(feature = "proxy-wasm")]
mod proxy_wasm_filter;
#[cfg(feature = "proxy-wasm")]
mod proxy_wasm_host;
#[cfg(feature = "trap-test")]
mod trap_test;

pub use delivery::Delivery;
pub use engine::RequestFacts;
pub use error::ConfigError;
pub use host::{RequestView, ResponseHeaders};
pub use metrics::Metrics;
pub use policy::Policy;
