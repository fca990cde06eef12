//! How Envoy hashes a document's inline scripts. A Wasm filter there never gets the body of a response whose
//! headers it holds, so for a document navigation the filter fetches the document itself (the same request, sent
//! to the route's cluster), applies the policy to the complete response and answers with it, body unchanged.
//! This module is the host-free part: the headers of that fetch, and the fetched response as a header list the
//! engine edits like any other response.

use crate::host::ResponseHeaders;
use crate::inline_hashing::VALIDATORS;

/// Request headers left off the fetch (besides VALIDATORS): the filter needs the whole document, uncompressed,
/// and Envoy frames the request itself.
const NOT_FORWARDED: &[&str] = &[
    "accept-encoding",
    "if-range",
    "range",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "upgrade",
];

/// The fetch's headers: the browser's request as the filter saw it, asking for the body uncompressed.
pub fn fetch_headers<'a>(
    request: impl Iterator<Item = (&'a str, &'a str)>,
) -> Vec<(&'a str, &'a str)> {
    request
        .filter(|(name, _)| !NOT_FORWARDED.contains(name) && !VALIDATORS.contains(name))
        .chain([("accept-encoding", "identity")])
        .collect()
}

/// Response headers the reply does not copy: the status travels apart, and the host frames the body itself.
const NOT_REPLAYED: &[&str] = &[
    ":status",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "trailer",
    "te",
];

/// The fetched response's status and headers (lower-case names, in the upstream's order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedResponse {
    status: u16,
    headers: Vec<(String, String)>,
}

impl FetchedResponse {
    /// None without a valid `:status` (the fetch failed).
    pub fn new(headers: Vec<(String, String)>) -> Option<Self> {
        let status = headers
            .iter()
            .find(|(name, _)| name == ":status")
            .and_then(|(_, value)| value.parse().ok())?;
        Some(FetchedResponse { status, headers })
    }

    pub fn status_code(&self) -> u16 {
        self.status
    }

    /// The headers of the reply made from this response.
    pub fn reply_headers(&self) -> Vec<(&str, &str)> {
        self.headers
            .iter()
            .filter(|(name, _)| !NOT_REPLAYED.contains(&name.as_str()))
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect()
    }
}

impl ResponseHeaders for FetchedResponse {
    fn status(&mut self) -> Option<u16> {
        Some(self.status)
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, value)| value.as_bytes())
    }

    fn set(&mut self, name: &str, value: &str) {
        self.remove(name);
        self.append(name, value);
    }

    fn append(&mut self, name: &str, value: &str) {
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| n != name);
    }
}
