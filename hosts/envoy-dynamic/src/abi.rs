//! The Envoy dynamic-module callbacks this adapter calls, each import beside its safe wrapper, written for this
//! project from the C declarations of Envoy's `abi.h` (v1.40.0, ABI version "v0.1.0"); the hooks Envoy calls
//! are in `hooks.rs`. Every type here mirrors one C type of that header. Results Envoy returns as C enums are
//! read as bare integers, so an unknown value is "not done" rather than an invalid Rust enum. Under
//! `cfg(test)` the imports are a mock host (`mock_host`), so the wrappers are tested too.

use std::ffi::c_void;

/// `envoy_dynamic_module_type_http_filter_config_envoy_ptr`: Envoy's side of one filter configuration.
pub type ConfigEnvoyPtr = *mut c_void;
/// `envoy_dynamic_module_type_http_filter_envoy_ptr`: Envoy's side of one stream's filter; valid until
/// `envoy_dynamic_module_on_http_filter_destroy`.
pub type FilterEnvoyPtr = *mut c_void;

/// `envoy_dynamic_module_type_module_buffer`: bytes the module owns, lent to Envoy for one call.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ModuleBuffer {
    ptr: *const u8,
    length: usize,
}

impl ModuleBuffer {
    pub fn of(bytes: &[u8]) -> Self {
        ModuleBuffer {
            ptr: bytes.as_ptr(),
            length: bytes.len(),
        }
    }

    /// The null buffer: for `set_header`, "remove the header".
    const NULL: ModuleBuffer = ModuleBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };
}

/// `envoy_dynamic_module_type_envoy_buffer`: bytes Envoy owns, valid until the end of the current hook (or
/// the next header write).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct EnvoyBuffer {
    ptr: *const u8,
    length: usize,
}

impl EnvoyBuffer {
    /// A view of module bytes as Envoy would pass its own (the tests' stand-in for Envoy's buffers).
    #[cfg(test)]
    pub fn of(bytes: &[u8]) -> Self {
        EnvoyBuffer {
            ptr: bytes.as_ptr(),
            length: bytes.len(),
        }
    }

    const NULL: EnvoyBuffer = EnvoyBuffer {
        ptr: std::ptr::null(),
        length: 0,
    };

    /// The bytes, or None for a null buffer.
    ///
    /// SAFETY: the caller must not keep the slice past the hook (or the header write) that ends the buffer's
    /// life; Envoy guarantees `ptr` points at `length` bytes until then.
    pub unsafe fn bytes<'a>(self) -> Option<&'a [u8]> {
        (!self.ptr.is_null()).then(|| std::slice::from_raw_parts(self.ptr, self.length))
    }
}

/// `envoy_dynamic_module_type_module_http_header`: one header of a local reply.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ModuleHttpHeader {
    key_ptr: *const u8,
    key_length: usize,
    value_ptr: *const u8,
    value_length: usize,
}

impl ModuleHttpHeader {
    fn of(name: &str, value: &str) -> Self {
        ModuleHttpHeader {
            key_ptr: name.as_ptr(),
            key_length: name.len(),
            value_ptr: value.as_ptr(),
            value_length: value.len(),
        }
    }
}

/// `envoy_dynamic_module_type_http_header_type`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderMap {
    Request = 0,
    Response = 2,
}

/// `envoy_dynamic_module_type_http_body_type`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    ReceivedRequest = 0,
    BufferedRequest = 1,
    ReceivedResponse = 2,
    BufferedResponse = 3,
}

/// `envoy_dynamic_module_type_log_level` (Trace 0 ... Critical 5, Off 6).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Debug = 1,
    Info = 2,
    Error = 4,
}

/// `envoy_dynamic_module_type_metrics_result_Success`.
const METRICS_SUCCESS: u32 = 0;

/// `envoy_dynamic_module_type_on_http_filter_{request,response}_headers_status` (the values both share).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadersStatus {
    Continue = 0,
    StopIteration = 1,
}

/// `envoy_dynamic_module_type_on_http_filter_{request,response}_body_status` (the values both share).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyStatus {
    Continue = 0,
    StopIterationAndBuffer = 1,
    StopIterationNoBuffer = 3,
}

/// `envoy_dynamic_module_type_on_http_filter_{request,response}_trailers_status`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrailersStatus {
    Continue = 0,
}

#[cfg(not(test))]
extern "C" {
    fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer);
    fn envoy_dynamic_module_callback_log_enabled(level: LogLevel) -> bool;
    fn envoy_dynamic_module_callback_http_get_header(
        filter: FilterEnvoyPtr,
        map: HeaderMap,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        filter: FilterEnvoyPtr,
        map: HeaderMap,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_add_header(
        filter: FilterEnvoyPtr,
        map: HeaderMap,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_send_response(
        filter: FilterEnvoyPtr,
        status_code: u32,
        headers: *mut ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );
    fn envoy_dynamic_module_callback_http_get_body_size(
        filter: FilterEnvoyPtr,
        body: Body,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        filter: FilterEnvoyPtr,
        body: Body,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_get_body_chunks(
        filter: FilterEnvoyPtr,
        body: Body,
        result: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_received_buffered_request_body(
        filter: FilterEnvoyPtr,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_received_buffered_response_body(
        filter: FilterEnvoyPtr,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_length: usize,
        counter_id: *mut usize,
    ) -> u32;
    fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter: FilterEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_length: usize,
        value: u64,
    ) -> u32;
}

#[cfg(test)]
use mock_host::*;

/// One line in Envoy's log under the `dynamic_modules` logger.
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: Envoy copies the message from a live &str.
    unsafe { envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes())) }
}

/// Whether Envoy prints lines of `level`, so the module formats only what is printed.
pub fn log_enabled(level: LogLevel) -> bool {
    // SAFETY: a plain call.
    unsafe { envoy_dynamic_module_callback_log_enabled(level) }
}

/// The first value of a header (or pseudo-header) by lower-case name, borrowed from Envoy's map: valid until
/// the hook returns or the map is written, which the borrow of `_phase` stands for.
pub fn header<'a, Phase>(
    filter: FilterEnvoyPtr,
    map: HeaderMap,
    name: &str,
    _phase: &'a Phase,
) -> Option<&'a [u8]> {
    let mut value = EnvoyBuffer::NULL;
    // SAFETY: Envoy reads the key from a live &str and writes one buffer; the count pointer may be null.
    let found = unsafe {
        envoy_dynamic_module_callback_http_get_header(
            filter,
            map,
            ModuleBuffer::of(name.as_bytes()),
            &mut value,
            0,
            std::ptr::null_mut(),
        )
    };
    // SAFETY: the slice lives as long as `_phase`, which the caller holds only within the hook and drops
    // before writing the map.
    found.then(|| unsafe { value.bytes() }).flatten()
}

/// Replaces every value of a header with `value`; a write Envoy refuses leaves the map as it was.
pub fn set_header(filter: FilterEnvoyPtr, map: HeaderMap, name: &str, value: &str) {
    // SAFETY: Envoy copies the name and value from live &strs.
    unsafe {
        envoy_dynamic_module_callback_http_set_header(
            filter,
            map,
            ModuleBuffer::of(name.as_bytes()),
            ModuleBuffer::of(value.as_bytes()),
        )
    };
}

/// Adds one more value of a header.
pub fn add_header(filter: FilterEnvoyPtr, map: HeaderMap, name: &str, value: &str) {
    // SAFETY: Envoy copies the name and value from live &strs.
    unsafe {
        envoy_dynamic_module_callback_http_add_header(
            filter,
            map,
            ModuleBuffer::of(name.as_bytes()),
            ModuleBuffer::of(value.as_bytes()),
        )
    };
}

/// Removes every value of a header (the ABI's `set_header` with a null value).
pub fn remove_header(filter: FilterEnvoyPtr, map: HeaderMap, name: &str) {
    // SAFETY: Envoy reads the name from a live &str; a null value means "remove".
    unsafe {
        envoy_dynamic_module_callback_http_set_header(
            filter,
            map,
            ModuleBuffer::of(name.as_bytes()),
            ModuleBuffer::NULL,
        )
    };
}

/// Answers the request from the filter; the upstream never sees it. `details` names the reply in Envoy's
/// access log (%RESPONSE_CODE_DETAILS%).
pub fn send_response(
    filter: FilterEnvoyPtr,
    status: u16,
    headers: &[(&str, &str)],
    body: &[u8],
    details: &str,
) {
    let mut headers: Vec<ModuleHttpHeader> = headers
        .iter()
        .map(|(name, value)| ModuleHttpHeader::of(name, value))
        .collect();
    // SAFETY: Envoy copies the headers, the body and the details from live buffers.
    unsafe {
        envoy_dynamic_module_callback_http_send_response(
            filter,
            u32::from(status),
            headers.as_mut_ptr(),
            headers.len(),
            ModuleBuffer::of(body),
            ModuleBuffer::of(details.as_bytes()),
        )
    };
}

/// The whole body Envoy holds for this stream, copied: what it buffered so far plus the chunk this hook
/// received (unless that chunk is the buffered body itself). Only for the collector's report and a hashed
/// document, whose sizes the engine bounds.
pub fn whole_body(filter: FilterEnvoyPtr, request: bool) -> Vec<u8> {
    let (buffered, received) = body_kinds(request);
    let mut body = Vec::new();
    append_chunks(filter, buffered, &mut body);
    if !received_is_buffered(filter, request) {
        append_chunks(filter, received, &mut body);
    }
    body
}

/// The size of that whole body, without copying it.
pub fn whole_body_size(filter: FilterEnvoyPtr, request: bool) -> usize {
    let (buffered, received) = body_kinds(request);
    // SAFETY: plain calls on the live filter.
    unsafe {
        let mut size = envoy_dynamic_module_callback_http_get_body_size(filter, buffered);
        if !received_is_buffered(filter, request) {
            size = size.saturating_add(envoy_dynamic_module_callback_http_get_body_size(
                filter, received,
            ));
        }
        size
    }
}

fn body_kinds(request: bool) -> (Body, Body) {
    if request {
        (Body::BufferedRequest, Body::ReceivedRequest)
    } else {
        (Body::BufferedResponse, Body::ReceivedResponse)
    }
}

/// Whether the chunk this hook received is the buffered body itself (a filter before this one buffered it).
fn received_is_buffered(filter: FilterEnvoyPtr, request: bool) -> bool {
    // SAFETY: plain calls on the live filter.
    unsafe {
        if request {
            envoy_dynamic_module_callback_http_received_buffered_request_body(filter)
        } else {
            envoy_dynamic_module_callback_http_received_buffered_response_body(filter)
        }
    }
}

fn append_chunks(filter: FilterEnvoyPtr, kind: Body, body: &mut Vec<u8>) {
    // SAFETY: a plain call on the live filter.
    let count = unsafe { envoy_dynamic_module_callback_http_get_body_chunks_size(filter, kind) };
    if count == 0 {
        return;
    }
    let mut chunks = vec![EnvoyBuffer::NULL; count];
    // SAFETY: `chunks` has room for the `count` buffers Envoy writes.
    let found = unsafe {
        envoy_dynamic_module_callback_http_get_body_chunks(filter, kind, chunks.as_mut_ptr())
    };
    if !found {
        return;
    }
    for chunk in chunks {
        // SAFETY: each chunk is valid until this hook returns; it is copied now.
        if let Some(bytes) = unsafe { chunk.bytes() } {
            body.extend_from_slice(bytes);
        }
    }
}

/// A counter of this filter configuration (Envoy adds its own prefix in /stats); None when Envoy refuses it.
pub fn define_counter(config: ConfigEnvoyPtr, name: &str) -> Option<usize> {
    let mut id = 0usize;
    // SAFETY: Envoy reads the name from a live &str and writes one id; there are no labels.
    let result = unsafe {
        envoy_dynamic_module_callback_http_filter_config_define_counter(
            config,
            ModuleBuffer::of(name.as_bytes()),
            std::ptr::null_mut(),
            0,
            &mut id,
        )
    };
    (result == METRICS_SUCCESS).then_some(id)
}

pub fn increment_counter(filter: FilterEnvoyPtr, id: usize) {
    add_to_counter(filter, id, 1);
}

pub fn add_to_counter(filter: FilterEnvoyPtr, id: usize, by: u64) {
    // SAFETY: a plain call on the live filter with an id its configuration defined; no labels.
    unsafe {
        envoy_dynamic_module_callback_http_filter_increment_counter(
            filter,
            id,
            std::ptr::null_mut(),
            0,
            by,
        )
    };
}

/// The host under `cfg(test)`: the same functions over plain vectors in a thread-local, so the wrappers, the
/// exchange and the hooks run natively in unit tests.
#[cfg(test)]
#[allow(clippy::missing_safety_doc)]
pub mod mock_host {
    use super::*;
    use std::cell::RefCell;

    /// A local reply: status, headers, body, details.
    pub type Reply = (u32, Vec<(String, String)>, Vec<u8>, String);

    #[derive(Default, Debug)]
    pub struct MockHost {
        pub request_headers: Vec<(String, String)>,
        pub response_headers: Vec<(String, String)>,
        pub logs: Vec<(u32, String)>,
        pub counters: Vec<String>,
        /// (counter id, increments)
        pub increments: Vec<usize>,
        pub reply: Option<Reply>,
        pub buffered_request_body: Vec<Vec<u8>>,
        pub received_request_body: Vec<Vec<u8>>,
        pub buffered_response_body: Vec<Vec<u8>>,
        pub received_response_body: Vec<Vec<u8>>,
        pub debug_enabled: bool,
    }

    thread_local! {
        pub static HOST: RefCell<MockHost> = RefCell::new(MockHost::default());
    }

    /// Header pairs as the mock keeps them.
    pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    /// Runs `f` against a fresh host prepared by `setup`; returns what `f` returned and the host after.
    pub fn with_host<T>(setup: impl FnOnce(&mut MockHost), f: impl FnOnce() -> T) -> (T, MockHost) {
        HOST.with(|h| {
            let mut host = MockHost::default();
            setup(&mut host);
            *h.borrow_mut() = host;
        });
        let out = f();
        (out, HOST.with(|h| std::mem::take(&mut *h.borrow_mut())))
    }

    unsafe fn text(buffer: ModuleBuffer) -> String {
        String::from_utf8_lossy(std::slice::from_raw_parts(buffer.ptr, buffer.length)).into_owned()
    }

    fn map(host: &mut MockHost, kind: HeaderMap) -> &mut Vec<(String, String)> {
        match kind {
            HeaderMap::Request => &mut host.request_headers,
            HeaderMap::Response => &mut host.response_headers,
        }
    }

    pub unsafe fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer) {
        let line = text(message);
        HOST.with(|h| h.borrow_mut().logs.push((level as u32, line)));
    }

    pub unsafe fn envoy_dynamic_module_callback_log_enabled(level: LogLevel) -> bool {
        level != LogLevel::Debug || HOST.with(|h| h.borrow().debug_enabled)
    }

    pub unsafe fn envoy_dynamic_module_callback_http_get_header(
        _filter: FilterEnvoyPtr,
        kind: HeaderMap,
        key: ModuleBuffer,
        result: *mut EnvoyBuffer,
        index: usize,
        _optional_size: *mut usize,
    ) -> bool {
        let key = text(key);
        HOST.with(|h| {
            let mut host = h.borrow_mut();
            let found = map(&mut host, kind)
                .iter()
                .filter(|(n, _)| *n == key)
                .nth(index)
                .map(|(_, v)| EnvoyBuffer {
                    ptr: v.as_ptr(),
                    length: v.len(),
                });
            *result = found.unwrap_or(EnvoyBuffer::NULL);
            found.is_some()
        })
    }

    pub unsafe fn envoy_dynamic_module_callback_http_set_header(
        _filter: FilterEnvoyPtr,
        kind: HeaderMap,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool {
        let key = text(key);
        let value = (!value.ptr.is_null()).then(|| text(value));
        HOST.with(|h| {
            let mut host = h.borrow_mut();
            let headers = map(&mut host, kind);
            headers.retain(|(n, _)| *n != key);
            if let Some(value) = value {
                headers.push((key, value));
            }
        });
        true
    }

    pub unsafe fn envoy_dynamic_module_callback_http_add_header(
        _filter: FilterEnvoyPtr,
        kind: HeaderMap,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool {
        let pair = (text(key), text(value));
        HOST.with(|h| map(&mut h.borrow_mut(), kind).push(pair));
        true
    }

    pub unsafe fn envoy_dynamic_module_callback_http_send_response(
        _filter: FilterEnvoyPtr,
        status_code: u32,
        headers: *mut ModuleHttpHeader,
        headers_size: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    ) {
        let headers = std::slice::from_raw_parts(headers, headers_size)
            .iter()
            .map(|h| {
                (
                    text(ModuleBuffer {
                        ptr: h.key_ptr,
                        length: h.key_length,
                    }),
                    text(ModuleBuffer {
                        ptr: h.value_ptr,
                        length: h.value_length,
                    }),
                )
            })
            .collect();
        let body = std::slice::from_raw_parts(body.ptr, body.length).to_vec();
        let details = text(details);
        HOST.with(|h| h.borrow_mut().reply = Some((status_code, headers, body, details)));
    }

    fn chunks(host: &MockHost, kind: Body) -> &Vec<Vec<u8>> {
        match kind {
            Body::BufferedRequest => &host.buffered_request_body,
            Body::ReceivedRequest => &host.received_request_body,
            Body::BufferedResponse => &host.buffered_response_body,
            Body::ReceivedResponse => &host.received_response_body,
        }
    }

    pub unsafe fn envoy_dynamic_module_callback_http_get_body_size(
        _filter: FilterEnvoyPtr,
        kind: Body,
    ) -> usize {
        HOST.with(|h| chunks(&h.borrow(), kind).iter().map(Vec::len).sum())
    }

    pub unsafe fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        _filter: FilterEnvoyPtr,
        kind: Body,
    ) -> usize {
        HOST.with(|h| chunks(&h.borrow(), kind).len())
    }

    pub unsafe fn envoy_dynamic_module_callback_http_get_body_chunks(
        _filter: FilterEnvoyPtr,
        kind: Body,
        result: *mut EnvoyBuffer,
    ) -> bool {
        HOST.with(|h| {
            for (i, chunk) in chunks(&h.borrow(), kind).iter().enumerate() {
                *result.add(i) = EnvoyBuffer {
                    ptr: chunk.as_ptr(),
                    length: chunk.len(),
                };
            }
        });
        true
    }

    pub unsafe fn envoy_dynamic_module_callback_http_received_buffered_request_body(
        _filter: FilterEnvoyPtr,
    ) -> bool {
        false
    }

    pub unsafe fn envoy_dynamic_module_callback_http_received_buffered_response_body(
        _filter: FilterEnvoyPtr,
    ) -> bool {
        false
    }

    pub unsafe fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        _config: ConfigEnvoyPtr,
        name: ModuleBuffer,
        _label_names: *mut ModuleBuffer,
        _label_names_length: usize,
        counter_id: *mut usize,
    ) -> u32 {
        let name = text(name);
        HOST.with(|h| {
            let mut host = h.borrow_mut();
            *counter_id = host.counters.len();
            host.counters.push(name);
        });
        METRICS_SUCCESS
    }

    pub unsafe fn envoy_dynamic_module_callback_http_filter_increment_counter(
        _filter: FilterEnvoyPtr,
        id: usize,
        _label_values: *mut ModuleBuffer,
        _label_values_length: usize,
        _value: u64,
    ) -> u32 {
        HOST.with(|h| h.borrow_mut().increments.push(id));
        METRICS_SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::mock_host::{pairs, with_host};
    use super::*;

    #[test]
    fn headers_are_read_borrowed_and_written_through() {
        let filter = std::ptr::null_mut();
        let ((), host) = with_host(
            |host| host.response_headers = pairs(&[(":status", "200"), ("server", "x")]),
            || {
                let phase = ();
                assert_eq!(
                    header(filter, HeaderMap::Response, ":status", &phase),
                    Some(&b"200"[..])
                );
                assert_eq!(header(filter, HeaderMap::Response, "vary", &phase), None);
                remove_header(filter, HeaderMap::Response, "server");
                set_header(filter, HeaderMap::Response, "x-frame-options", "DENY");
                add_header(filter, HeaderMap::Response, "vary", "a");
                add_header(filter, HeaderMap::Response, "vary", "b");
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
    fn the_whole_body_is_the_buffered_chunks_then_the_received_ones() {
        let (body, _) = with_host(
            |host| {
                host.buffered_request_body = vec![b"ab".to_vec(), b"c".to_vec()];
                host.received_request_body = vec![b"de".to_vec()];
            },
            || {
                (
                    whole_body(std::ptr::null_mut(), true),
                    whole_body_size(std::ptr::null_mut(), true),
                )
            },
        );
        assert_eq!(body, (b"abcde".to_vec(), 5));
    }

    #[test]
    fn counters_and_replies_pass_their_bytes() {
        let ((), host) = with_host(
            |_| {},
            || {
                assert_eq!(define_counter(std::ptr::null_mut(), "a"), Some(0));
                assert_eq!(define_counter(std::ptr::null_mut(), "b"), Some(1));
                increment_counter(std::ptr::null_mut(), 1);
                send_response(
                    std::ptr::null_mut(),
                    413,
                    &[("content-type", "text/plain")],
                    b"too large\n",
                    "why",
                );
                log(LogLevel::Error, "line");
            },
        );
        assert_eq!(host.counters, ["a", "b"]);
        assert_eq!(host.increments, [1]);
        assert_eq!(
            host.reply,
            Some((
                413,
                pairs(&[("content-type", "text/plain")]),
                b"too large\n".to_vec(),
                "why".to_owned()
            ))
        );
        assert_eq!(host.logs, [(LogLevel::Error as u32, "line".to_owned())]);
    }
}
