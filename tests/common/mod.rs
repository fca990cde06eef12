//! Shared by the integration tests: the engine's in-memory request and response, counters, and one-line
//! helpers to run an exchange.
#![allow(dead_code)] // each test crate uses its own subset

use secure_headers::{InMemoryRequest, InMemoryResponse, Metrics, Policy};
use std::collections::BTreeMap;

pub type Request = InMemoryRequest;
pub type Response = InMemoryResponse;

/// The values of a header as text, and the one value a single-valued header must have.
pub trait ResponseValues {
    fn values(&self, name: &str) -> Vec<String>;
    fn one(&self, name: &str) -> Option<String>;
}

impl ResponseValues for Response {
    fn values(&self, name: &str) -> Vec<String> {
        self.header_values(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
    fn one(&self, name: &str) -> Option<String> {
        let values = self.values(name);
        assert!(
            values.len() <= 1,
            "{name} appears {} times: {values:?}",
            values.len()
        );
        values.into_iter().next()
    }
}

pub fn policy(json: &str) -> Policy {
    Policy::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"))
}

pub fn get(host: &str, url_path: &str, scheme: &str) -> Request {
    Request::new("GET", scheme, host, url_path)
}

pub fn html() -> Response {
    Response::new(
        200,
        &[
            ("content-type", b"text/html; charset=utf-8"),
            ("x-powered-by", b"Express"),
            ("cache-control", b"no-store"),
        ],
    )
}

/// Runs one exchange and returns the response as the browser would get it.
pub fn exchange(policy: &Policy, mut request: Request, mut response: Response) -> Response {
    let facts = policy.inspect_request(&mut request);
    policy.apply_response(&facts, &mut response, &mut Counts::default());
    response
}

/// Counters as a sorted map, for assertions.
#[derive(Default, Debug)]
pub struct Counts(pub BTreeMap<String, u64>);

impl Counts {
    pub fn get(&self, name: &str) -> u64 {
        self.0.get(name).copied().unwrap_or(0)
    }
}

impl Metrics for Counts {
    fn increment(&mut self, name: &str) {
        *self.0.entry(name.to_string()).or_default() += 1;
    }
}
