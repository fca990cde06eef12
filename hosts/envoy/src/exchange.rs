//! The request and the response as the engine sees them in Envoy: each header map is copied once per phase
//! with a single host call (`proxy_get_header_map_pairs`) into a scratch slot, so every later read is a scan of
//! guest memory instead of another call into the host. Removals are remembered so the copy keeps answering as
//! the map now stands.

use crate::abi::{self, HeaderMapBytes};
use proxy_wasm::types::MapType;
use secure_headers::{same_bytes, status_code, RequestView, ResponseHeaders};
use std::ops::Range;

/// The scratch slot of each header map (two are alive at once: the request's and the response's).
const REQUEST_SLOT: usize = 0;
const RESPONSE_SLOT: usize = 1;

/// A copy of one header map, read where it lies: no per-pair index is built, since a read is a walk of the map's
/// length table, most names asked for are absent (the length filter answers those), and the ones present
/// (pseudo-headers, Content-Type) sit near the front.
struct HeaderSnapshot {
    bytes: HeaderMapBytes,
    /// `bytes.bytes()`'s start and length, taken once: every read needs them.
    map: (*const u8, usize),
    /// One bit per name length (modulo 64) in the map, from its length table alone: a name whose length bit is
    /// clear is not there and is not searched for.
    name_lengths: u64,
    /// The pairs removed, by position: a bit each for the first 64, a list for the rest (a map that long is rare).
    removed: u64,
    removed_beyond: Vec<usize>,
}

impl HeaderSnapshot {
    fn take(map: MapType, slot: usize) -> Self {
        Self::over(abi::read_header_map(map, slot))
    }

    /// The map's bytes, as `bytes.bytes()` gives them.
    #[inline(always)]
    fn map(&self) -> &[u8] {
        // SAFETY: `map` was taken from `bytes.bytes()`, which `self` owns and never changes: an owned map's heap
        // buffer does not move with the snapshot, and a scratch slot is rewritten only by the next read of that
        // slot, after this snapshot is gone (HeaderMapBytes::bytes).
        unsafe { std::slice::from_raw_parts(self.map.0, self.map.1) }
    }

    fn over(bytes: HeaderMapBytes) -> Self {
        let map = bytes.bytes();
        let mut name_lengths = 0;
        // A plain loop over the table's words: eight bytes a pair, the name's length first.
        let table = abi::length_table(map);
        let mut at = 0;
        while let Some(name_length) = table.get(at..at + 4) {
            name_lengths |= length_bit(
                name_length
                    .iter()
                    .rev()
                    .fold(0, |n, b| n << 8 | usize::from(*b)),
            );
            at += 8;
        }
        let map = (map.as_ptr(), map.len());
        HeaderSnapshot {
            bytes,
            map,
            name_lengths,
            removed: 0,
            removed_beyond: Vec::new(),
        }
    }

    fn is_removed(&self, position: usize) -> bool {
        if position < 64 {
            self.removed >> position & 1 != 0
        } else {
            self.removed_beyond.contains(&position)
        }
    }

    #[inline(always)]
    fn get(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        if self.name_lengths & length_bit(name.len()) == 0 {
            return None;
        }
        let map = self.map();
        // A plain loop rather than `find`, whose closure the size-leaning build may leave as a call per pair.
        for (position, (pair_name, value)) in abi::map_pair_ranges(map).enumerate() {
            if is_named(map, pair_name, name) && !self.is_removed(position) {
                return map.get(value);
            }
        }
        None
    }

    fn mark_removed(&mut self, name: &str) -> bool {
        let name = name.as_bytes();
        if self.name_lengths & length_bit(name.len()) == 0 {
            return false;
        }
        let mut found = false;
        let map = self.bytes.bytes();
        for (position, (pair_name, _)) in abi::map_pair_ranges(map).enumerate() {
            if !is_named(map, pair_name, name) || self.is_removed(position) {
                continue;
            }
            found = true;
            if position < 64 {
                self.removed |= 1 << position;
            } else {
                self.removed_beyond.push(position);
            }
        }
        found
    }

    /// Every pair not removed, as text; None when one is not UTF-8 (the SDK's calls take text).
    fn text_pairs(&self) -> Option<Vec<(&str, &str)>> {
        let map = self.bytes.bytes();
        abi::map_pair_ranges(map)
            .enumerate()
            .filter(|(position, _)| !self.is_removed(*position))
            .map(|(_, (name, value))| {
                Some((
                    std::str::from_utf8(map.get(name)?).ok()?,
                    std::str::from_utf8(map.get(value)?).ok()?,
                ))
            })
            .collect()
    }
}

/// Whether the pair's name (at `range` in `map`) is `name`; the length first, since most names differ in it.
#[inline(always)]
fn is_named(map: &[u8], range: Range<usize>, name: &[u8]) -> bool {
    range.len() == name.len() && map.get(range).is_some_and(|n| same_bytes(n, name))
}

/// One of 64 bits for a header name's length: the names a response is given mostly differ in length from the
/// ones it has.
#[inline(always)]
fn length_bit(length: usize) -> u64 {
    1 << (length % 64)
}

pub struct EnvoyRequest {
    headers: HeaderSnapshot,
}

impl EnvoyRequest {
    pub fn read() -> Self {
        EnvoyRequest {
            headers: HeaderSnapshot::take(MapType::HttpRequestHeaders, REQUEST_SLOT),
        }
    }

    /// A request header (or pseudo-header) by lower-case name, without needing `&mut`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }

    /// Every header and pseudo-header as text; None when one is not UTF-8.
    pub fn text_pairs(&self) -> Option<Vec<(&str, &str)>> {
        self.headers.text_pairs()
    }
}

impl RequestView for EnvoyRequest {
    fn host_and_path(&mut self) -> (Option<&[u8]>, Option<&[u8]>) {
        (self.headers.get(":authority"), self.headers.get(":path"))
    }

    fn method(&mut self) -> Option<&[u8]> {
        self.headers.get(":method")
    }

    fn scheme(&mut self) -> Option<&[u8]> {
        self.headers.get(":scheme")
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }
}

pub struct EnvoyResponse {
    headers: HeaderSnapshot,
}

impl EnvoyResponse {
    pub fn read() -> Self {
        EnvoyResponse {
            headers: HeaderSnapshot::take(MapType::HttpResponseHeaders, RESPONSE_SLOT),
        }
    }

    /// The header map's bytes as read (to keep while the response is held: the scratch slot is reused).
    pub fn map_bytes(&self) -> &[u8] {
        self.headers.bytes.bytes()
    }

    /// The response over a header map kept from an earlier read of it (`map_bytes`), unchanged since.
    pub fn from_held(bytes: Vec<u8>) -> Self {
        EnvoyResponse {
            headers: HeaderSnapshot::over(HeaderMapBytes::Owned(bytes)),
        }
    }
}

impl ResponseHeaders for EnvoyResponse {
    fn status(&mut self) -> Option<u16> {
        status_code(self.headers.get(":status")?)
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }

    /// Envoy's replace, which also adds a header the response lacks.
    fn set(&mut self, name: &str, value: &str) {
        abi::replace_response_header(name, value);
    }

    /// Adds a header the upstream did not send (Envoy's cheaper call, which does not look the name up first),
    /// replaces one it did: no earlier write named it, so the snapshot alone tells.
    fn set_first(&mut self, name: &str, value: &str) {
        if self.headers.get(name).is_none() {
            abi::add_response_header(name, value);
        } else {
            abi::replace_response_header(name, value);
        }
    }

    fn append(&mut self, name: &str, value: &str) {
        abi::add_response_header(name, value);
    }

    /// Only a header that is there costs a host call.
    fn remove(&mut self, name: &str) {
        if self.headers.mark_removed(name) {
            abi::remove_response_header(name);
        }
    }
}

/// The headers of the filter's own HTTP call, owned: empty when the call failed, None when a header is not
/// UTF-8.
pub fn http_call_response_headers() -> Option<Vec<(String, String)>> {
    let snapshot = HeaderSnapshot::take(MapType::HttpCallResponseHeaders, RESPONSE_SLOT);
    snapshot.text_pairs().map(|pairs| {
        pairs
            .into_iter()
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::mock_host::with_host;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn the_request_answers_from_one_snapshot() {
        let ((), _) = with_host(
            |host| {
                host.request_headers = pairs(&[
                    (":authority", "photos.example"),
                    (":path", "/a?b"),
                    (":method", "GET"),
                    (":scheme", "https"),
                    ("accept", "text/html"),
                    ("accept", "*/*"),
                ])
            },
            || {
                let mut request = EnvoyRequest::read();
                // Later changes to the host's map are not seen: the snapshot answers.
                crate::abi::mock_host::HOST.with(|h| h.borrow_mut().request_headers.clear());
                assert_eq!(
                    request.host_and_path(),
                    (Some(&b"photos.example"[..]), Some(&b"/a?b"[..]))
                );
                assert_eq!(request.method(), Some(&b"GET"[..]));
                assert_eq!(request.scheme(), Some(&b"https"[..]));
                assert_eq!(
                    request.header("accept"),
                    Some(&b"text/html"[..]),
                    "the first value"
                );
                assert_eq!(request.header("cookie"), None);
                assert_eq!(request.text_pairs().map(|p| p.len()), Some(6));
            },
        );
    }

    #[test]
    fn the_response_writes_through_and_removes_only_what_is_there() {
        let ((), host) = with_host(
            |host| {
                host.response_headers = pairs(&[
                    (":status", "200"),
                    ("x-powered-by", "Express"),
                    ("x-powered-by", "again"),
                ])
            },
            || {
                let mut response = EnvoyResponse::read();
                assert_eq!(response.status(), Some(200));
                response.remove("x-powered-by");
                assert_eq!(
                    response.header("x-powered-by"),
                    None,
                    "read as the map now stands"
                );
                response.remove("server");
                response.set("x-frame-options", "DENY");
                response.append("vary", "a");
                response.append("vary", "b");
            },
        );
        assert_eq!(
            host.response_headers,
            pairs(&[
                (":status", "200"),
                ("x-frame-options", "DENY"),
                ("vary", "a"),
                ("vary", "b")
            ])
        );
    }

    #[test]
    fn a_first_set_adds_what_the_upstream_lacks_and_replaces_what_it_sent() {
        let ((), host) = with_host(
            |host| {
                host.response_headers = pairs(&[(":status", "200"), ("cache-control", "private")])
            },
            || {
                let mut response = EnvoyResponse::read();
                response.set_first("x-frame-options", "DENY");
                response.set_first("cache-control", "no-store");
                response.set("x-frame-options", "SAMEORIGIN");
                response.append("vary", "a");
                response.set("vary", "b");
            },
        );
        assert_eq!(
            host.header_writes,
            [
                ("add", "x-frame-options"),
                ("replace", "cache-control"),
                ("replace", "x-frame-options"),
                ("add", "vary"),
                ("replace", "vary")
            ]
            .map(|(call, name)| (call, name.to_owned()))
        );
        assert_eq!(
            host.response_headers,
            pairs(&[
                (":status", "200"),
                ("cache-control", "no-store"),
                ("x-frame-options", "SAMEORIGIN"),
                ("vary", "b")
            ])
        );
    }

    #[test]
    fn a_name_whose_length_bit_another_name_shares_is_still_compared() {
        // "y-a" has the length of "x-a"; the long name's length is 64 more, so it has the same bit too.
        let long = format!("y-{}", "a".repeat(65));
        let (found, host) = with_host(
            |host| host.response_headers = pairs(&[(":status", "200"), ("x-a", "1")]),
            || {
                let mut response = EnvoyResponse::read();
                let found = (
                    response.header("y-a").is_some(),
                    response.header(&long).is_some(),
                    response.header("x-a").is_some(),
                );
                response.set_first("y-a", "2");
                response.remove("y-b");
                found
            },
        );
        assert_eq!(found, (false, false, true));
        assert_eq!(host.header_writes, [("add", "y-a".to_owned())]);
    }

    #[test]
    fn a_header_removed_twice_costs_one_host_call_and_pairs_past_the_64th_are_removed_too() {
        let many: Vec<(String, String)> = (0..200)
            .map(|i| (format!("x-{i}"), i.to_string()))
            .collect();
        let ((), host) = with_host(
            |host| {
                host.response_headers =
                    pairs(&[(":status", "200"), ("server", "a"), ("server", "b")]);
                host.response_headers.extend(many.iter().cloned());
            },
            || {
                let mut response = EnvoyResponse::read();
                response.remove("server");
                response.remove("server");
                assert_eq!(response.header("server"), None);
                // Pairs past the 64th are read and removed like the others.
                assert_eq!(response.header("x-199"), Some(&b"199"[..]));
                response.remove("x-150");
                assert_eq!(response.header("x-150"), None);
                assert_eq!(response.header("x-151"), Some(&b"151"[..]));
            },
        );
        assert_eq!(
            host.header_writes,
            [("remove", "server"), ("remove", "x-150")].map(|(call, name)| (call, name.to_owned()))
        );
    }

    #[test]
    fn the_next_map_sees_only_its_own_pairs() {
        let ((), _) = with_host(
            |host| {
                host.response_headers = pairs(&[(":status", "200"), ("etag", "1"), ("vary", "a")])
            },
            || {
                drop(EnvoyResponse::read());
                crate::abi::mock_host::HOST
                    .with(|h| h.borrow_mut().response_headers = pairs(&[(":status", "304")]));
                let mut response = EnvoyResponse::read();
                assert_eq!(response.status(), Some(304));
                assert_eq!(response.header("etag"), None);
            },
        );
    }

    #[test]
    fn a_held_response_answers_from_its_kept_bytes() {
        let (kept, _) = with_host(
            |host| host.response_headers = pairs(&[(":status", "200"), ("etag", "\"1\"")]),
            || EnvoyResponse::read().map_bytes().to_vec(),
        );
        let mut held = EnvoyResponse::from_held(kept);
        assert_eq!(held.header("etag"), Some(&b"\"1\""[..]));
        assert_eq!(held.header("vary"), None);
    }

    #[test]
    fn a_status_that_is_not_a_number_is_absent() {
        let (status, _) = with_host(
            |host| host.response_headers = pairs(&[(":status", "2OO")]),
            || EnvoyResponse::read().status(),
        );
        assert_eq!(status, None);
    }

    #[test]
    fn the_fetched_documents_headers_are_owned_text() {
        let (headers, _) = with_host(
            |host| host.http_call_response_headers = pairs(&[(":status", "200"), ("a", "b")]),
            http_call_response_headers,
        );
        assert_eq!(headers, Some(pairs(&[(":status", "200"), ("a", "b")])));
    }
}
