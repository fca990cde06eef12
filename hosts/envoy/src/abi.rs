//! The proxy-wasm host calls this adapter makes itself, each import beside its safe wrapper, named by the
//! proxy-wasm crate's own enums (`MapType`, `BufferType`, `StreamType`, `MetricType`, `Status`). They are made
//! through the raw ABI so that an unexpected status reads as "absent" or "not done" instead of trapping the VM
//! (the SDK's wrappers panic on those), with header reads landing in the allocator's scratch slots. The header
//! map's wire layout (`encode_map`, `MapPairs`) is pure and tested natively; under `cfg(test)` the imports are a
//! mock host (`mock_host`), so the wrappers are too.

use crate::guest_alloc;
use proxy_wasm::types::{BufferType, MapType, MetricType, Status, StreamType};
use std::ops::Range;

/// Host calls return a status as a bare u32: a value outside `Status` must not become an enum.
const OK: u32 = Status::Ok as u32;

#[cfg(not(test))]
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_replace_header_map_value(
        map: MapType,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map: MapType,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map: MapType, key: *const u8, key_size: usize) -> u32;
    fn proxy_get_header_map_pairs(map: MapType, pairs: *mut *mut u8, pairs_size: *mut usize)
        -> u32;
    fn proxy_get_buffer_bytes(
        buffer: BufferType,
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
    fn proxy_define_metric(
        kind: MetricType,
        name: *const u8,
        name_size: usize,
        id: *mut u32,
    ) -> u32;
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
    fn proxy_continue_stream(stream: StreamType) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
}

#[cfg(test)]
use mock_host::*;

/// A counter named `name` (Envoy shows it as `wasmcustom.<name>`).
pub fn define_counter(name: &str) -> Option<u32> {
    define_metric(MetricType::Counter, name)
}

/// A gauge named `name`, for the test build's memory figures.
#[cfg(feature = "alloc-count")]
pub fn define_gauge(name: &str) -> Option<u32> {
    define_metric(MetricType::Gauge, name)
}

fn define_metric(kind: MetricType, name: &str) -> Option<u32> {
    let mut id = 0u32;
    // SAFETY: the host reads `name` from a live &str and writes one u32.
    let status = unsafe { proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) };
    (status == OK).then_some(id)
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
    (status == OK).then_some(level)
}

/// The signature of the ABI's two header writes (replace, add).
type HeaderWrite = unsafe extern "C" fn(MapType, *const u8, usize, *const u8, usize) -> u32;

/// Replaces every value of a response header with `value`.
pub fn replace_response_header(name: &str, value: &str) {
    write_header(
        proxy_replace_header_map_value,
        MapType::HttpResponseHeaders,
        name,
        value,
    );
}

/// Adds one more value of a response header.
pub fn add_response_header(name: &str, value: &str) {
    write_header(
        proxy_add_header_map_value,
        MapType::HttpResponseHeaders,
        name,
        value,
    );
}

/// Replaces every value of a request header (before the request goes on to the upstream).
pub fn replace_request_header(name: &str, value: &str) {
    write_header(
        proxy_replace_header_map_value,
        MapType::HttpRequestHeaders,
        name,
        value,
    );
}

/// A write the host refuses (a header map it no longer lets us touch) leaves the map as it was.
fn write_header(write: HeaderWrite, map: MapType, name: &str, value: &str) {
    // SAFETY: the host copies `name` and `value` from live &strs.
    unsafe { write(map, name.as_ptr(), name.len(), value.as_ptr(), value.len()) };
}

pub fn remove_response_header(name: &str) {
    remove_header(MapType::HttpResponseHeaders, name);
}

pub fn remove_request_header(name: &str) {
    remove_header(MapType::HttpRequestHeaders, name);
}

fn remove_header(map: MapType, name: &str) {
    // SAFETY: the host reads `name` from a live &str.
    unsafe { proxy_remove_header_map_value(map, name.as_ptr(), name.len()) };
}

/// The request body buffered so far (at most `max` bytes); empty when the host has none.
pub fn request_body(max: usize) -> Vec<u8> {
    buffer_bytes(BufferType::HttpRequestBody, max)
}

/// The response body buffered so far (at most `max` bytes); empty when the host has none.
pub fn response_body(max: usize) -> Vec<u8> {
    buffer_bytes(BufferType::HttpResponseBody, max)
}

/// The body of the filter's own HTTP call (at most `max` bytes).
pub fn http_call_response_body(max: usize) -> Vec<u8> {
    buffer_bytes(BufferType::HttpCallResponseBody, max)
}

fn buffer_bytes(buffer: BufferType, max: usize) -> Vec<u8> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer to a buffer it got from proxy_on_memory_allocate, and its size.
    let status = unsafe { proxy_get_buffer_bytes(buffer, 0, max, &mut data, &mut size) };
    host_buffer(status, data, size).unwrap_or_default()
}

/// Takes ownership of what a host call wrote through its pointer and size out-parameters; None when the call
/// failed or wrote nothing. Only for calls made while no scratch slot is armed (the buffer is then heap memory).
fn host_buffer(status: u32, data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if status != OK || data.is_null() || size == 0 {
        return None;
    }
    // SAFETY: a heap buffer of exactly `size` bytes from proxy_on_memory_allocate (no scratch slot is armed).
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// A host property by path (`["xds", "cluster_name"]`), when the host has it.
pub fn property(path: &[&str]) -> Option<Vec<u8>> {
    // The ABI's property path: the segments, each followed by a NUL.
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

/// Lets a paused request go on to the upstream.
pub fn continue_request() {
    // SAFETY: a plain host call.
    unsafe { proxy_continue_stream(StreamType::HttpRequest) };
}

/// Lets a paused response go on to the client.
pub fn continue_response() {
    // SAFETY: a plain host call.
    unsafe { proxy_continue_stream(StreamType::HttpResponse) };
}

/// Makes the following host calls act on the stream `context_id` (from the root context's timer); false when
/// the host no longer has that stream.
pub fn act_on_stream(context_id: u32) -> bool {
    // SAFETY: a plain host call.
    unsafe { proxy_set_effective_context(context_id) == OK }
}

/// Sets how often the host calls the root context's `on_tick` (0 stops it). From a stream context, the host
/// sets its root context's timer.
pub fn set_tick_period_ms(period: u32) {
    // SAFETY: a plain host call.
    unsafe { proxy_set_tick_period_milliseconds(period) };
}

/// The host's clock, in nanoseconds since the epoch; 0 when the host does not answer.
pub fn now_ns() -> u64 {
    let mut time = 0u64;
    // SAFETY: the host writes one u64.
    let status = unsafe { proxy_get_current_time_nanoseconds(&mut time) };
    if status == OK {
        time
    } else {
        0
    }
}

/// Answers the request from the filter; the upstream never sees it. `details` names the reply in Envoy's
/// access log (%RESPONSE_CODE_DETAILS%).
pub fn send_reply(status: u16, headers: &[(&str, &str)], body: &[u8], details: &str) {
    let map = encode_map(headers);
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

/// The ABI's header map layout: the pair count, (name length, value length) per pair as little-endian u32s,
/// then each name and each value followed by a NUL.
pub fn encode_map(headers: &[(&str, &str)]) -> Vec<u8> {
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
    map
}

/// The pairs of a header map in the ABI's layout (see `encode_map`), with their index; a truncated or
/// malformed map ends early instead of reading out of bounds. (The filter reads maps through `map_pair_ranges`.)
#[cfg(test)]
pub fn map_pairs(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8], &[u8])> {
    map_pair_ranges(bytes)
        .enumerate()
        .map_while(|(i, (name, value))| Some((i, bytes.get(name)?, bytes.get(value)?)))
}

/// Where each pair's name and value are in a header map's bytes (`map_pairs` without the borrow).
pub fn map_pair_ranges(bytes: &[u8]) -> impl Iterator<Item = (Range<usize>, Range<usize>)> + '_ {
    let table = length_table(bytes);
    let mut at = 4 + table.len();
    // The lengths are read eight bytes at a time; one bounds check per pair covers its name and value.
    table.chunks_exact(8).map_while(move |lengths| {
        let [n0, n1, n2, n3, v0, v1, v2, v3] = <[u8; 8]>::try_from(lengths).ok()?;
        let name_len = u32::from_le_bytes([n0, n1, n2, n3]) as usize;
        let value_len = u32::from_le_bytes([v0, v1, v2, v3]) as usize;
        let name_end = at.checked_add(name_len)?;
        let value_end = name_end.checked_add(1)?.checked_add(value_len)?;
        // Both end before the bytes do (the last value's closing NUL may be missing).
        if value_end > bytes.len() {
            return None;
        }
        let pair = (at..name_end, name_end + 1..value_end);
        at = value_end + 1;
        Some(pair)
    })
}

/// A header map's table of (name length, value length) pairs, eight bytes a pair; empty when the count says more
/// pairs than the bytes hold.
pub fn length_table(bytes: &[u8]) -> &[u8] {
    let count = bytes
        .first_chunk::<4>()
        .map_or(0, |count| u32::from_le_bytes(*count) as usize);
    bytes
        .get(4..)
        .and_then(|rest| rest.get(..count.saturating_mul(8)))
        .unwrap_or_default()
}

/// Reads one header map with a single host call into scratch `slot`; the bytes are borrowed from the slot
/// (valid until its next read) or, for a map larger than a slot, owned.
pub fn read_header_map(map: MapType, slot: usize) -> HeaderMapBytes {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer to a buffer it got from proxy_on_memory_allocate, and its size.
    let status = guest_alloc::with_slot(slot, || unsafe {
        proxy_get_header_map_pairs(map, &mut data, &mut size)
    });
    if status != OK || data.is_null() || size == 0 {
        return HeaderMapBytes::Empty;
    }
    if guest_alloc::is_scratch(data) {
        return HeaderMapBytes::Slot { slot, len: size };
    }
    // SAFETY: a heap buffer of exactly `size` bytes from proxy_on_memory_allocate (a boxed slice).
    HeaderMapBytes::Owned(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Where a header map read landed.
pub enum HeaderMapBytes {
    Empty,
    Slot { slot: usize, len: usize },
    Owned(Vec<u8>),
}

impl HeaderMapBytes {
    #[inline]
    pub fn bytes(&self) -> &[u8] {
        match self {
            HeaderMapBytes::Empty => &[],
            // SAFETY: the slot holds `len` bytes written by the host; each live read owns a distinct slot, and
            // it is rewritten only by the next read of that slot, after this one is gone.
            HeaderMapBytes::Slot { slot, len } => unsafe {
                std::slice::from_raw_parts(guest_alloc::slot_ptr(*slot), *len)
            },
            HeaderMapBytes::Owned(bytes) => bytes,
        }
    }
}

/// A host for native tests: header maps, buffers and properties to read, and a record of every write and
/// reply, with the ABI's signatures. Buffers are handed over the way Envoy does it, through the guest's
/// allocator (so an armed scratch slot is used exactly as in the VM).
#[cfg(test)]
pub mod mock_host {
    use crate::guest_alloc::GuestAllocator;
    use proxy_wasm::types::{BufferType, MapType, MetricType, Status, StreamType};
    use std::alloc::{GlobalAlloc, Layout};
    use std::cell::RefCell;

    #[derive(Default)]
    pub struct MockHost {
        pub request_headers: Vec<(String, String)>,
        pub response_headers: Vec<(String, String)>,
        pub http_call_response_headers: Vec<(String, String)>,
        pub request_body: Vec<u8>,
        pub response_body: Vec<u8>,
        pub properties: Vec<(Vec<u8>, Vec<u8>)>,
        pub local_reply: Option<(u32, Vec<u8>, Vec<u8>, String)>,
        pub metrics: Vec<(MetricType, String, i64)>,
        pub continued: Vec<StreamType>,
        pub effective_context: Option<u32>,
        pub tick_period_ms: Option<u32>,
        pub now_ns: u64,
        pub http_calls: Vec<(String, Vec<u8>, u32)>,
        /// Every header write, in order, as (call, name): which call a write used.
        pub header_writes: Vec<(&'static str, String)>,
        /// Every header map read, in order.
        pub map_reads: Vec<MapType>,
    }

    thread_local! {
        pub static HOST: RefCell<MockHost> = RefCell::new(MockHost::default());
    }

    /// Runs `f` on a fresh mock host, then returns what it recorded.
    pub fn with_host<T>(setup: impl FnOnce(&mut MockHost), f: impl FnOnce() -> T) -> (T, MockHost) {
        HOST.with(|h| {
            *h.borrow_mut() = MockHost::default();
            setup(&mut h.borrow_mut());
        });
        let result = f();
        (result, HOST.with(|h| h.take()))
    }

    fn map_of(host: &mut MockHost, map: MapType) -> &mut Vec<(String, String)> {
        match map {
            MapType::HttpRequestHeaders => &mut host.request_headers,
            MapType::HttpCallResponseHeaders => &mut host.http_call_response_headers,
            _ => &mut host.response_headers,
        }
    }

    unsafe fn text(ptr: *const u8, len: usize) -> String {
        // SAFETY: the guest passes a live buffer of `len` bytes.
        String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(ptr, len) }).into_owned()
    }

    /// Hands `bytes` to the guest as Envoy does: a buffer from the guest's allocator.
    unsafe fn hand_over(bytes: &[u8], data: *mut *mut u8, size: *mut usize) -> u32 {
        if bytes.is_empty() {
            return Status::NotFound as u32;
        }
        let Ok(layout) = Layout::from_size_align(bytes.len(), 1) else {
            return Status::InternalFailure as u32;
        };
        // SAFETY: a non-zero layout; the guest takes ownership of the buffer as a boxed slice.
        unsafe {
            let buffer = GuestAllocator.alloc(layout);
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), buffer, bytes.len());
            *data = buffer;
            *size = bytes.len();
        }
        Status::Ok as u32
    }

    pub unsafe extern "C" fn proxy_replace_header_map_value(
        map: MapType,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32 {
        // SAFETY: live buffers from the guest.
        let (name, value) = unsafe { (text(key, key_size), text(value, value_size)) };
        HOST.with(|h| {
            let mut host = h.borrow_mut();
            host.header_writes.push(("replace", name.clone()));
            let headers = map_of(&mut host, map);
            headers.retain(|(n, _)| *n != name);
            headers.push((name, value));
        });
        Status::Ok as u32
    }

    pub unsafe extern "C" fn proxy_add_header_map_value(
        map: MapType,
        key: *const u8,
        key_size: usize,
        value: *const u8,
        value_size: usize,
    ) -> u32 {
        // SAFETY: live buffers from the guest.
        let pair = unsafe { (text(key, key_size), text(value, value_size)) };
        HOST.with(|h| {
            let mut host = h.borrow_mut();
            host.header_writes.push(("add", pair.0.clone()));
            map_of(&mut host, map).push(pair);
        });
        Status::Ok as u32
    }

    pub unsafe fn proxy_remove_header_map_value(
        map: MapType,
        key: *const u8,
        key_size: usize,
    ) -> u32 {
        // SAFETY: a live buffer from the guest.
        let name = unsafe { text(key, key_size) };
        HOST.with(|h| {
            let mut host = h.borrow_mut();
            host.header_writes.push(("remove", name.clone()));
            map_of(&mut host, map).retain(|(n, _)| *n != name)
        });
        Status::Ok as u32
    }

    pub unsafe fn proxy_get_header_map_pairs(
        map: MapType,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32 {
        let pairs = HOST.with(|h| {
            let mut host = h.borrow_mut();
            host.map_reads.push(map);
            map_of(&mut host, map).clone()
        });
        let borrowed: Vec<(&str, &str)> = pairs
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        // SAFETY: out-parameters from the guest.
        unsafe { hand_over(&super::encode_map(&borrowed), data, size) }
    }

    pub unsafe fn proxy_get_buffer_bytes(
        buffer: BufferType,
        start: usize,
        max_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32 {
        let bytes = HOST.with(|h| match buffer {
            BufferType::HttpRequestBody => h.borrow().request_body.clone(),
            BufferType::HttpResponseBody => h.borrow().response_body.clone(),
            _ => Vec::new(),
        });
        let end = bytes.len().min(start.saturating_add(max_size));
        // SAFETY: out-parameters from the guest.
        unsafe { hand_over(bytes.get(start..end).unwrap_or_default(), data, size) }
    }

    #[allow(clippy::too_many_arguments)] // the ABI's signature
    pub unsafe fn proxy_send_local_response(
        status: u32,
        details: *const u8,
        details_size: usize,
        body: *const u8,
        body_size: usize,
        headers: *const u8,
        headers_size: usize,
        _grpc_status: i32,
    ) -> u32 {
        // SAFETY: live buffers from the guest.
        let reply = unsafe {
            (
                status,
                std::slice::from_raw_parts(body, body_size).to_vec(),
                std::slice::from_raw_parts(headers, headers_size).to_vec(),
                text(details, details_size),
            )
        };
        HOST.with(|h| h.borrow_mut().local_reply = Some(reply));
        Status::Ok as u32
    }

    pub unsafe fn proxy_define_metric(
        kind: MetricType,
        name: *const u8,
        name_size: usize,
        id: *mut u32,
    ) -> u32 {
        // SAFETY: live buffers from the guest.
        let name = unsafe { text(name, name_size) };
        HOST.with(|h| {
            let mut host = h.borrow_mut();
            // SAFETY: an out-parameter from the guest.
            unsafe { *id = u32::try_from(host.metrics.len()).unwrap_or(u32::MAX) };
            host.metrics.push((kind, name, 0));
        });
        Status::Ok as u32
    }

    pub unsafe fn proxy_increment_metric(id: u32, offset: i64) -> u32 {
        HOST.with(|h| match h.borrow_mut().metrics.get_mut(id as usize) {
            Some(metric) => {
                metric.2 += offset;
                Status::Ok as u32
            }
            None => Status::NotFound as u32,
        })
    }

    #[cfg(feature = "alloc-count")]
    pub unsafe fn proxy_record_metric(id: u32, value: u64) -> u32 {
        HOST.with(|h| match h.borrow_mut().metrics.get_mut(id as usize) {
            Some(metric) => {
                metric.2 = i64::try_from(value).unwrap_or(i64::MAX);
                Status::Ok as u32
            }
            None => Status::NotFound as u32,
        })
    }

    pub unsafe fn proxy_get_log_level(level: *mut u32) -> u32 {
        // SAFETY: an out-parameter from the guest.
        unsafe { *level = 2 };
        Status::Ok as u32
    }

    pub unsafe fn proxy_get_property(
        path: *const u8,
        path_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32 {
        // SAFETY: a live buffer from the guest.
        let path = unsafe { std::slice::from_raw_parts(path, path_size) }.to_vec();
        let value = HOST.with(|h| {
            h.borrow()
                .properties
                .iter()
                .find(|(p, _)| *p == path)
                .map(|(_, v)| v.clone())
        });
        match value {
            // SAFETY: out-parameters from the guest.
            Some(value) => unsafe { hand_over(&value, data, size) },
            None => Status::NotFound as u32,
        }
    }

    pub unsafe fn proxy_continue_stream(stream: StreamType) -> u32 {
        HOST.with(|h| h.borrow_mut().continued.push(stream));
        Status::Ok as u32
    }

    /// The SDK's own import, which `dispatch_http_call` calls (the SDK keeps the token to route the answer
    /// back to the stream, so the adapter goes through it): defined here for the native test binary's linker.
    #[no_mangle]
    #[allow(clippy::too_many_arguments)] // the ABI's signature
    pub unsafe extern "C" fn proxy_http_call(
        upstream: *const u8,
        upstream_size: usize,
        headers: *const u8,
        headers_size: usize,
        _body: *const u8,
        _body_size: usize,
        _trailers: *const u8,
        _trailers_size: usize,
        timeout_ms: u32,
        token: *mut u32,
    ) -> u32 {
        // SAFETY: live buffers and an out-parameter from the guest.
        let call = unsafe {
            *token = 1;
            (
                text(upstream, upstream_size),
                std::slice::from_raw_parts(headers, headers_size).to_vec(),
                timeout_ms,
            )
        };
        HOST.with(|h| h.borrow_mut().http_calls.push(call));
        Status::Ok as u32
    }

    pub unsafe fn proxy_set_effective_context(context_id: u32) -> u32 {
        HOST.with(|h| h.borrow_mut().effective_context = Some(context_id));
        Status::Ok as u32
    }

    pub unsafe fn proxy_set_tick_period_milliseconds(period: u32) -> u32 {
        HOST.with(|h| h.borrow_mut().tick_period_ms = Some(period));
        Status::Ok as u32
    }

    pub unsafe fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32 {
        // SAFETY: an out-parameter from the guest.
        unsafe { *time = HOST.with(|h| h.borrow().now_ns) };
        Status::Ok as u32
    }
}

#[cfg(test)]
mod tests {
    use super::mock_host::with_host;
    use super::*;

    #[test]
    fn a_map_decodes_to_what_was_encoded() {
        let headers = [
            (":status", "200"),
            ("set-cookie", "a=1"),
            ("set-cookie", ""),
            ("x", "é"),
        ];
        let map = encode_map(&headers);
        let decoded: Vec<(usize, &[u8], &[u8])> = map_pairs(&map).collect();
        assert_eq!(decoded.len(), headers.len());
        for ((i, name, value), (index, (n, v))) in
            decoded.into_iter().zip(headers.iter().enumerate())
        {
            assert_eq!((i, name, value), (index, n.as_bytes(), v.as_bytes()));
        }
    }

    #[test]
    fn a_truncated_or_lying_map_ends_early() {
        let map = encode_map(&[("a", "1"), ("bb", "22")]);
        // Every cut but the last value's closing NUL loses the last pair.
        for cut in 0..map.len() - 1 {
            let pairs: Vec<_> = map_pairs(&map[..cut]).collect();
            assert!(pairs.len() < 2, "cut at {cut}: {pairs:?}");
        }
        // A count far beyond the bytes, and lengths that overflow, read nothing out of bounds.
        let mut lying = u32::MAX.to_le_bytes().to_vec();
        lying.extend_from_slice(&u32::MAX.to_le_bytes());
        lying.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(map_pairs(&lying).count(), 0);
        assert_eq!(map_pairs(&[]).count(), 0);
    }

    #[test]
    fn a_small_map_is_read_into_its_scratch_slot_and_a_large_one_is_owned() {
        let small = vec![(":path".to_string(), "/".to_string())];
        let large = vec![("x-big".to_string(), "a".repeat(guest_alloc::SLOT_BYTES))];
        for (headers, in_slot) in [(small, true), (large, false)] {
            let expected = headers.clone();
            let (read, _) = with_host(
                |host| host.request_headers = headers,
                || read_header_map(MapType::HttpRequestHeaders, 0),
            );
            assert_eq!(
                matches!(read, HeaderMapBytes::Slot { slot: 0, .. }),
                in_slot
            );
            let pairs: Vec<(String, String)> = map_pairs(read.bytes())
                .map(|(_, n, v)| {
                    (
                        String::from_utf8_lossy(n).into_owned(),
                        String::from_utf8_lossy(v).into_owned(),
                    )
                })
                .collect();
            assert_eq!(pairs, expected);
        }
    }

    #[test]
    fn an_empty_map_or_absent_property_reads_as_nothing() {
        let ((map, property), _) = with_host(
            |_| {},
            || {
                (
                    read_header_map(MapType::HttpResponseHeaders, 1),
                    property(&["xds", "cluster_name"]),
                )
            },
        );
        assert_eq!(map_pairs(map.bytes()).count(), 0);
        assert_eq!(property, None);
    }

    #[test]
    fn a_property_path_is_its_segments_each_ending_in_nul() {
        let (cluster, _) = with_host(
            |host| {
                host.properties
                    .push((b"xds\0cluster_name\0".to_vec(), b"immich".to_vec()))
            },
            || property(&["xds", "cluster_name"]),
        );
        assert_eq!(cluster.as_deref(), Some(&b"immich"[..]));
    }

    #[test]
    fn a_reply_carries_its_status_headers_body_and_details() {
        let ((), host) = with_host(
            |_| {},
            || send_reply(405, &[("allow", "POST")], b"no\n", "details"),
        );
        let (status, body, map, details) = host.local_reply.unwrap();
        assert_eq!(
            (status, body.as_slice(), details.as_str()),
            (405, &b"no\n"[..], "details")
        );
        assert_eq!(map, encode_map(&[("allow", "POST")]));
    }

    #[test]
    fn counters_are_defined_once_and_incremented_by_id() {
        let ((), host) = with_host(
            |_| {},
            || {
                let id = define_counter("secure_headers.x").unwrap();
                increment_counter(id, 1);
                increment_counter(id, 2);
            },
        );
        assert_eq!(
            host.metrics,
            vec![(MetricType::Counter, "secure_headers.x".into(), 3)]
        );
    }
}
