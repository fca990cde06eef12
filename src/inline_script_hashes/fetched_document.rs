//! How Envoy hashes a document's inline scripts. A Wasm filter there never gets the body of a response whose
//! headers it holds, so for a document navigation the filter fetches the document itself (the same request, sent
//! to the route's cluster), applies the policy to the complete response and answers with it, body unchanged.
//! This module is the host-free part: the headers of that fetch, and the fetched response as an in-memory
//! response the engine edits like any other.

use crate::in_memory::InMemoryResponse;
use crate::inline_script_hashes::hashed_csp::DOCUMENT_REQUEST_EDITS;

/// Request headers left off the fetch (besides those DOCUMENT_REQUEST_EDITS sets or removes): the filter needs
/// the whole document, and Envoy frames the request itself.
const NOT_FORWARDED: &[&str] = &[
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
        .filter(|(name, _)| {
            !NOT_FORWARDED.contains(name)
                && !DOCUMENT_REQUEST_EDITS.remove.contains(name)
                && !DOCUMENT_REQUEST_EDITS
                    .set
                    .iter()
                    .any(|(set, _)| set == name)
        })
        .chain(DOCUMENT_REQUEST_EDITS.set.iter().copied())
        .collect()
}

/// Response headers the reply does not copy: the host frames the body itself.
const NOT_REPLAYED: &[&str] = &[
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "upgrade",
    "trailer",
    "te",
];

/// The fetched response, from the header list the host returns (`:status` among them); None without a valid
/// status (the fetch failed).
pub fn fetched_response(headers: Vec<(String, String)>) -> Option<InMemoryResponse> {
    let status = headers
        .iter()
        .find(|(name, _)| name == ":status")
        .and_then(|(_, value)| value.parse().ok())?;
    Some(InMemoryResponse {
        status,
        headers: headers
            .into_iter()
            .filter(|(name, _)| name != ":status")
            .map(|(name, value)| (name, value.into_bytes()))
            .collect(),
    })
}

/// The headers of the reply made from a fetched response (every value came in, or was written, as text).
pub fn reply_headers(response: &InMemoryResponse) -> Vec<(&str, &str)> {
    response
        .headers
        .iter()
        .filter(|(name, _)| !NOT_REPLAYED.contains(&name.as_str()))
        .filter_map(|(name, value)| Some((name.as_str(), std::str::from_utf8(value).ok()?)))
        .collect()
}
