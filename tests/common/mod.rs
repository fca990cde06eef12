//! Shared by the integration tests: a request and a response header map with proxy semantics, counters, and
//! one-line helpers to run an exchange.
#![allow(dead_code)] // each test crate uses its own subset

use secure_headers::{Metrics, Policy, RequestView, ResponseHeaders};
use std::collections::BTreeMap;

/// A request as a proxy would present it.
pub struct Request {
    pub authority: &'static str,
    pub path: &'static str,
    pub scheme: &'static str,
    pub method: &'static str,
    pub headers: Vec<(&'static str, &'static str)>,
}

impl RequestView for Request {
    fn host_and_path(&mut self) -> (Option<&[u8]>, Option<&[u8]>) {
        (Some(self.authority.as_bytes()), Some(self.path.as_bytes()))
    }
    fn method(&mut self) -> Option<&[u8]> {
        Some(self.method.as_bytes())
    }
    fn scheme(&mut self) -> Option<&[u8]> {
        Some(self.scheme.as_bytes())
    }
    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_bytes())
    }
}

/// A response header map with proxy semantics: names compared without case, set replaces every copy.
#[derive(Default, Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Response {
    pub fn new(status: u16, headers: &[(&str, &[u8])]) -> Self {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_vec()))
                .collect(),
        }
    }
    pub fn values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }
    pub fn one(&self, name: &str) -> Option<String> {
        let values = self.values(name);
        assert!(
            values.len() <= 1,
            "{name} appears {} times: {values:?}",
            values.len()
        );
        values.into_iter().next()
    }
}

impl ResponseHeaders for Response {
    fn status(&mut self) -> Option<u16> {
        Some(self.status)
    }
    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
    fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.append(name, value);
    }
    fn append(&mut self, name: &str, value: &str) {
        self.headers
            .push((name.to_string(), value.as_bytes().to_vec()));
    }
    fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

pub fn policy(json: &str) -> Policy {
    Policy::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"))
}

pub fn get(host: &'static str, path: &'static str, scheme: &'static str) -> Request {
    Request {
        authority: host,
        path,
        scheme,
        method: "GET",
        headers: vec![],
    }
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
