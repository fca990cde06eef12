//! The proxy-wasm host calls the adapter uses, made through the raw ABI so that an unexpected status reads as
//! "absent" or "not done" instead of trapping the VM (the SDK's wrappers panic on those), with reads landing in
//! the allocator's scratch slots.

use crate::guest_alloc;
use crate::host::{RequestView, ResponseHeaders};

pub const REQUEST_HEADERS: u32 = 0;
pub const RESPONSE_HEADERS: u32 = 2;
const HTTP_CALL_RESPONSE_HEADERS: u32 = 6;
const REQUEST_BODY: u32 = 0;
const HTTP_CALL_RESPONSE_BODY: u32 = 4;
const STREAM_REQUEST: u32 = 0;
const STATUS_OK: u32 = 0;
const METRIC_COUNTER: u32 = 0;
#[cfg(feature = "alloc-count")]
const METRIC_GAUGE: u32 = 1;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_replace_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map: u32,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
    fn proxy_get_header_map_pairs(map: u32, pairs: *mut *mut u8, pairs_size: *mut usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer: u32,
        start: usize,
        max_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_define_metric(kind: u32, name: *const u8, name_size: usize, id: *mut u32) -> u32;
    fn proxy_increment_metric(id: u32, offset: i64) -> u32;
    #[cfg(feature = "alloc-count")]
    fn proxy_record_metric(id: u32, value: u64) -> u32;
    fn proxy_get_log_level(level: *mut u32) -> u32;
    fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
    fn proxy_continue_stream(stream: u32) -> u32;
}

/// A counter named `name` (Envoy shows it as `wasmcustom.<name>`).
pub fn define_counter(name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: the host reads `name` from a live &str and writes one u32.
    let status = unsafe { proxy_define_metric(METRIC_COUNTER, name.as_ptr(), name.len(), &mut id) };
    (status == STATUS_OK).then_some(id)
}

/// A gauge named `name`, for the test build's memory figures.
#[cfg(feature = "alloc-count")]
pub fn define_gauge(name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: the host reads `name` from a live &str and writes one u32.
    let status = unsafe { proxy_define_metric(METRIC_GAUGE, name.as_ptr(), name.len(), &mut id) };
    (status == STATUS_OK).then_some(id)
}

#[cfg(feature = "alloc-count")]
pub fn record_gauge(id: u32, value: u64) {
    // SAFETY: a plain host call.
    unsafe { proxy_record_metric(id, value) };
}

pub fn increment_counter(id: u32, by: i64) {
    // SAFETY: a plain host call.
    unsafe { proxy_increment_metric(id, by) };
}

/// The host's log level for this plugin (0 trace ... 5 critical), so the guest formats only what is printed.
pub fn host_log_level() -> Option<u32> {
    let mut level = 0u32;
    // SAFETY: the host writes one u32.
    let status = unsafe { proxy_get_log_level(&mut level) };
    (status == STATUS_OK).then_some(level)
}

/// The signature of the ABI's two response-header writes (replace, add).
type HeaderWrite = unsafe extern "C" fn(u32, *const u8, usize, *const u8, usize) -> u32;

/// A write the host refuses (a header map it no longer lets us touch) leaves the response as it was.
fn write_header(write: HeaderWrite, name: &str, value: &str) {
    // SAFETY: the host copies `name` and `value` from live &strs.
    unsafe {
        write(
            RESPONSE_HEADERS,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    };
}

/// The request body buffered so far (at most `max` bytes); empty when the host has none.
pub fn request_body(max: usize) -> Vec<u8> {
    buffer_bytes(REQUEST_BODY, max)
}

/// The body of the filter's own HTTP call (at most `max` bytes).
pub fn http_call_response_body(max: usize) -> Vec<u8> {
    buffer_bytes(HTTP_CALL_RESPONSE_BODY, max)
}

fn buffer_bytes(buffer: u32, max: usize) -> Vec<u8> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer to a buffer it got from proxy_on_memory_allocate, and its size.
    let status = unsafe { proxy_get_buffer_bytes(buffer, 0, max, &mut data, &mut size) };
    host_buffer(status, data, size).unwrap_or_default()
}

/// Takes ownership of what a host call wrote through its pointer and size out-parameters; None when the call
/// failed or wrote nothing. Only for calls made while no scratch slot is armed (the buffer is then heap memory).
fn host_buffer(status: u32, data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if status != STATUS_OK || data.is_null() || size == 0 {
        return None;
    }
    // SAFETY: a heap buffer of exactly `size` bytes from proxy_on_memory_allocate (no scratch slot is armed).
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// A host property by path (`["xds", "cluster_name"]`), when the host has it.
pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    // The ABI's path: the segments, each followed by a NUL.
    let path: Vec<u8> = path
        .iter()
        .flat_map(|segment| segment.bytes().chain([0]))
        .collect();
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host reads the path from a live buffer and writes a pointer to a buffer it got from
    // proxy_on_memory_allocate, and its size.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    host_buffer(status, data, size)
}

/// The headers of the filter's own HTTP call, owned: empty when the call failed, None when a header is not
/// UTF-8.
pub fn http_call_response_headers() -> Option<Vec<(String, String)>> {
    let snapshot = HeaderSnapshot::take(HTTP_CALL_RESPONSE_HEADERS, 1);
    snapshot
        .pairs()
        .map(|(_, name, value)| {
            Some((
                String::from_utf8(name.to_vec()).ok()?,
                String::from_utf8(value.to_vec()).ok()?,
            ))
        })
        .collect()
}

/// Lets a paused request go on to the upstream.
pub fn continue_request() {
    // SAFETY: a plain host call.
    unsafe { proxy_continue_stream(STREAM_REQUEST) };
}

/// Answers the request from the filter; the upstream never sees it. `details` names the reply in Envoy's
/// access log (%RESPONSE_CODE_DETAILS%).
pub fn send_reply(status: u16, headers: &[(&str, &str)], body: &[u8], details: &str) {
    // The ABI's map layout: count, (name length, value length) per pair, then each name and value + NUL.
    let mut map = Vec::new();
    let word = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    map.extend_from_slice(&word(headers.len()));
    for (name, value) in headers {
        map.extend_from_slice(&word(name.len()));
        map.extend_from_slice(&word(value.len()));
    }
    for (name, value) in headers {
        for part in [name, value] {
            map.extend_from_slice(part.as_bytes());
            map.push(0);
        }
    }
    // SAFETY: the host copies the body and the serialized map from live buffers.
    unsafe {
        proxy_send_local_response(
            u32::from(status),
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            map.as_ptr(),
            map.len(),
            -1,
        )
    };
}

/// A copy of one header map, taken with a single host call (`proxy_get_header_map_pairs`) into a scratch slot,
/// so that every later read is a scan of guest memory instead of another call into the host. Removals are
/// remembered so the copy keeps answering as the map now stands.
struct HeaderSnapshot {
    slot: usize,
    len: usize,
    oversized: Vec<u8>,
    /// Bit i: pair i was removed (pairs past the 128th are never marked; removals of those are rare and the
    /// engine never reads a header it removed).
    removed: u128,
}

impl HeaderSnapshot {
    fn take(map: u32, slot: usize) -> Self {
        let mut snapshot = HeaderSnapshot {
            slot,
            len: 0,
            oversized: Vec::new(),
            removed: 0,
        };
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size: usize = 0;
        // SAFETY: the host writes a pointer to a buffer it got from proxy_on_memory_allocate, and its size.
        let status = guest_alloc::with_slot(slot, || unsafe {
            proxy_get_header_map_pairs(map, &mut data, &mut size)
        });
        if status != STATUS_OK || data.is_null() || size == 0 {
            return snapshot;
        }
        snapshot.len = size;
        if !guest_alloc::is_scratch(data) {
            // SAFETY: a heap buffer of exactly `size` bytes from proxy_on_memory_allocate (a boxed slice).
            snapshot.oversized = unsafe { Vec::from_raw_parts(data, size, size) };
        }
        snapshot
    }

    fn bytes(&self) -> &[u8] {
        if !self.oversized.is_empty() {
            return &self.oversized;
        }
        // SAFETY: the slot holds `len` bytes written by the host; each live snapshot owns a distinct slot, and it
        // is rewritten only by the next `take` of that slot, after this snapshot is gone.
        unsafe { std::slice::from_raw_parts(guest_alloc::slot_ptr(self.slot), self.len) }
    }

    /// Pairs in the ABI's layout: count, then (name length, value length) per pair, then each name and value
    /// followed by a NUL.
    fn pairs(&self) -> impl Iterator<Item = (usize, &[u8], &[u8])> {
        let bytes = self.bytes();
        let word = |at: usize| -> usize {
            bytes
                .get(at..at + 4)
                .and_then(|w| w.try_into().ok())
                .map_or(0, |w: [u8; 4]| u32::from_le_bytes(w) as usize)
        };
        let count = word(0);
        let mut data = 4 + count.saturating_mul(8);
        (0..count).map_while(move |i| {
            let (name_len, value_len) = (word(4 + i * 8), word(8 + i * 8));
            let name = bytes.get(data..data + name_len)?;
            let value = bytes.get(data + name_len + 1..data + name_len + 1 + value_len)?;
            data += name_len + value_len + 2;
            Some((i, name, value))
        })
    }

    fn get(&self, name: &str) -> Option<&[u8]> {
        self.pairs()
            .find(|(i, n, _)| *n == name.as_bytes() && (*i >= 128 || self.removed & (1 << i) == 0))
            .map(|(_, _, value)| value)
    }

    fn mark_removed(&mut self, name: &str) -> bool {
        let mut found = false;
        let mut removed = self.removed;
        for (i, n, _) in self.pairs() {
            if n == name.as_bytes() {
                found = true;
                if i < 128 {
                    removed |= 1 << i;
                }
            }
        }
        self.removed = removed;
        found
    }
}

pub struct EnvoyRequest {
    headers: HeaderSnapshot,
}

impl EnvoyRequest {
    pub fn read() -> Self {
        EnvoyRequest {
            headers: HeaderSnapshot::take(REQUEST_HEADERS, 0),
        }
    }
}

impl EnvoyRequest {
    /// A request header (or pseudo-header) by lower-case name, without needing `&mut`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }

    /// Every header and pseudo-header as text; None when one is not UTF-8 (the SDK's calls take text).
    pub fn text_pairs(&self) -> Option<Vec<(&str, &str)>> {
        self.headers
            .pairs()
            .map(|(_, name, value)| {
                Some((
                    std::str::from_utf8(name).ok()?,
                    std::str::from_utf8(value).ok()?,
                ))
            })
            .collect()
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
            headers: HeaderSnapshot::take(RESPONSE_HEADERS, 1),
        }
    }
}

impl ResponseHeaders for EnvoyResponse {
    fn status(&mut self) -> Option<u16> {
        std::str::from_utf8(self.headers.get(":status")?)
            .ok()?
            .parse()
            .ok()
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.headers.get(name)
    }

    fn set(&mut self, name: &str, value: &str) {
        write_header(proxy_replace_header_map_value, name, value);
    }

    fn append(&mut self, name: &str, value: &str) {
        write_header(proxy_add_header_map_value, name, value);
    }

    /// Only a header that is there costs a host call.
    fn remove(&mut self, name: &str) {
        if self.headers.mark_removed(name) {
            // SAFETY: the host reads `name` from a live &str.
            unsafe { proxy_remove_header_map_value(RESPONSE_HEADERS, name.as_ptr(), name.len()) };
        }
    }
}
