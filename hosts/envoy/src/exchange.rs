//! The request and the response as the engine sees them in Envoy: each header map is copied once per phase
//! with a single host call (`proxy_get_header_map_pairs`) into a scratch slot, so every later read is a scan of
//! guest memory instead of another call into the host. Removals are remembered so the copy keeps answering as
//! the map now stands.

use crate::abi::{self, HeaderMapBytes};
use proxy_wasm::types::MapType;
use secure_headers::{same_bytes, status_code, RequestView, ResponseHeaders};
use std::cell::Cell;
use std::ops::Range;

/// The scratch slot of each header map (two are alive at once: the request's and the response's).
const REQUEST_SLOT: usize = 0;
const RESPONSE_SLOT: usize = 1;

/// Where one pair is in the map's bytes. A removed pair's name range is emptied: no name asked for is empty,
/// so reads skip it without a flag to test.
struct PairAt {
    name: Range<usize>,
    value: Range<usize>,
}

impl PairAt {
    #[inline(always)]
    fn is_named(&self, map: &[u8], name: &[u8]) -> bool {
        // The length first: most names differ from the one asked for in length.
        self.name.len() == name.len()
            && map
                .get(self.name.clone())
                .is_some_and(|n| same_bytes(n, name))
    }
}

thread_local! {
    /// Each slot's pair index, kept between requests so that indexing a map allocates nothing after the first.
    static KEPT_INDEXES: [Cell<Option<Vec<PairAt>>>; 2] = const { [const { Cell::new(None) }; 2] };
}

/// A copy of one header map, indexed once: every read is then a walk of the index, not a parse of the map.
struct HeaderSnapshot {
    bytes: HeaderMapBytes,
    /// `bytes.bytes()`'s start and length, taken once: every read needs them.
    map: (*const u8, usize),
    pairs: Vec<PairAt>,
    /// The `name_bit` of every name in the map: a name whose bit is clear is not there, and is not searched for
    /// (most of the names a response gets are new to it).
    names: u64,
    slot: usize,
}

impl HeaderSnapshot {
    fn take(map: MapType, slot: usize) -> Self {
        Self::over(abi::read_header_map(map, slot), slot)
    }

    /// The map's bytes, as `bytes.bytes()` gives them.
    #[inline(always)]
    fn map(&self) -> &[u8] {
        // SAFETY: `map` was taken from `bytes.bytes()`, which `self` owns and never changes: an owned map's heap
        // buffer does not move with the snapshot, and a scratch slot is rewritten only by the next read of that
        // slot, after this snapshot is gone (HeaderMapBytes::bytes).
        unsafe { std::slice::from_raw_parts(self.map.0, self.map.1) }
    }

    fn over(bytes: HeaderMapBytes, slot: usize) -> Self {
        let mut pairs = KEPT_INDEXES
            .with(|kept| kept.get(slot).and_then(Cell::take))
            .unwrap_or_default();
        pairs.clear();
        let mut names = 0;
        let map = bytes.bytes();
        for (name, value) in abi::map_pair_ranges(map) {
            names |= map.get(name.clone()).map_or(0, name_bit);
            pairs.push(PairAt { name, value });
        }
        let map = (map.as_ptr(), map.len());
        HeaderSnapshot {
            bytes,
            map,
            pairs,
            names,
            slot,
        }
    }

    #[inline(always)]
    fn get(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        if self.names & name_bit(name) == 0 {
            return None;
        }
        let map = self.map();
        // A plain loop rather than `find`, whose closure the size-leaning build may leave as a call per pair.
        for pair in &self.pairs {
            if pair.is_named(map, name) {
                return map.get(pair.value.clone());
            }
        }
        None
    }

    fn mark_removed(&mut self, name: &str) -> bool {
        let name = name.as_bytes();
        if self.names & name_bit(name) == 0 {
            return false;
        }
        let map = self.bytes.bytes();
        let mut found = false;
        for pair in &mut self.pairs {
            if pair.is_named(map, name) {
                found = true;
                pair.name.end = pair.name.start;
            }
        }
        found
    }

    /// Every pair not removed, as text; None when one is not UTF-8 (the SDK's calls take text).
    fn text_pairs(&self) -> Option<Vec<(&str, &str)>> {
        let map = self.bytes.bytes();
        self.pairs
            .iter()
            .filter(|pair| !pair.name.is_empty())
            .map(|pair| {
                Some((
                    std::str::from_utf8(map.get(pair.name.clone())?).ok()?,
                    std::str::from_utf8(map.get(pair.value.clone())?).ok()?,
                ))
            })
            .collect()
    }
}

impl Drop for HeaderSnapshot {
    fn drop(&mut self) {
        let pairs = std::mem::take(&mut self.pairs);
        KEPT_INDEXES.with(|kept| {
            if let Some(slot) = kept.get(self.slot) {
                slot.set(Some(pairs));
            }
        });
    }
}

/// One of 64 bits for a header name, from its length and its last byte: cheap, and the names of one map
/// mostly differ in one of the two.
fn name_bit(name: &[u8]) -> u64 {
    let last = name.last().copied().unwrap_or_default();
    1 << ((name.len() * 7 + usize::from(last)) % 64)
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
            headers: HeaderSnapshot::over(HeaderMapBytes::Owned(bytes), RESPONSE_SLOT),
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
    fn a_name_whose_bit_another_name_shares_is_still_searched() {
        // Same length, same last byte: one bit for both.
        assert_eq!(name_bit(b"x-a"), name_bit(b"y-a"));
        let (found, host) = with_host(
            |host| host.response_headers = pairs(&[(":status", "200"), ("x-a", "1")]),
            || {
                let mut response = EnvoyResponse::read();
                let found = (
                    response.header("y-a").is_some(),
                    response.header("x-a").is_some(),
                );
                response.set_first("y-a", "2");
                response.remove("y-b");
                found
            },
        );
        assert_eq!(found, (false, true));
        assert_eq!(host.header_writes, [("add", "y-a".to_owned())]);
    }

    #[test]
    fn a_header_removed_twice_costs_one_host_call_and_every_pair_is_indexed() {
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
                // Pairs past the 128th are read and removed like the others.
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
    fn the_next_map_reuses_the_index_and_sees_only_its_own_pairs() {
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
