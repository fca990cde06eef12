//! secure-headers: security response headers at the proxy edge.
//!
//! This crate is the policy engine: plain Rust with no host types (each host adapter is a crate of its own under
//! `hosts/`, so it cannot be otherwise). It works in phases, one folder each:
//! - `config`: the policy document (schema, presets, CSP grammar, validation) compiled into rules whose header
//!   names and values are rendered once, at configure time;
//! - `decision`: per request and response, which rule applies and which headers it writes, removes or counts
//!   (observe mode), and whether a host that cannot edit a streaming response must hold it;
//! - `inline_script_hashes`: the HTML scan that finds the inline scripts a browser runs and the CSP that allows
//!   exactly those;
//! - `report_collector`: the CSP violation reports a policy may collect.
//!
//! A host implements [`RequestView`], [`ResponseHeaders`] and [`Metrics`] over its ABI and calls the methods of
//! [`Policy`]; everything else a host, the CLI, the tests and the fuzz targets use is re-exported below.

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

mod config;
mod decision;
mod error;
mod host;
mod http_bytes;
mod identity;
mod in_memory;
mod inline_script_hashes;
mod json_tree;
mod report_collector;
mod telemetry;
#[cfg(feature = "trap-test")]
pub mod trap_test;

pub use config::companion::{Companion, Hsts};
pub use config::policy::Policy;
pub use config::rule::{Rule, SchemeScope, Write, WriteMode};
pub use config::traefik_options::{
    policy_from_options, policy_text, traefik_options, OnInvalidPolicy, TraefikOptions,
};
pub use decision::delivery::{is_document_navigation, Delivery};
pub use decision::request_facts::{RequestFacts, RuleSet};
pub use error::ConfigError;
pub use host::{RequestView, ResponseHeaders};
pub use http_bytes::{same_bytes, status_code};
pub use identity::load_identity;
pub use in_memory::{InMemoryRequest, InMemoryResponse};
pub use inline_script_hashes::document::{DocumentHold, HoldLimits};
pub use inline_script_hashes::fetched_document::{fetch_headers, fetched_response, reply_headers};
pub use inline_script_hashes::hashed_csp::{Fallback, DOCUMENT_REQUEST_EDITS};
pub use inline_script_hashes::{
    document_scripts, script_hashes, DocumentScript, ScriptType, Unhashable,
};
pub use report_collector::reply::CollectorReply;
pub use report_collector::{Admission, OriginBook, Rejection, ReportCollector};
pub use telemetry::{CounterBook, Metrics, Telemetry};
