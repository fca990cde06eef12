//! Benchmark floor for Envoy's in-stream document path (issue 20): the host calls secure-headers cannot avoid
//! when it hashes a document's inline scripts in the document's own stream, with no logic between them.
//!
//! - Request headers: one read of the request map, then the request edits the in-stream path makes
//!   (`DOCUMENT_REQUEST_EDITS` in src/: `accept-encoding: identity` replaced, `if-none-match` and
//!   `if-modified-since` removed, each one call whether the request has it or not, as hosts/envoy does).
//! - Response headers: one read of the response map, then Pause (needs `allow_on_headers_stop_iteration: true`
//!   in the plugin config; Envoy then holds the headers and buffers the body).
//! - Response body: Pause until end_of_stream, then one read of the whole body (`proxy_get_buffer_bytes` of the
//!   size the host reports; the host copies it into the guest through the guest's allocator), then the header
//!   removals and writes (one call each), and Continue.
//!
//! No scan, no hash, no comparison with the last document, no counters. Configuration, as the call floor's
//! (bench/filters/call-floor-envoy) with the request edits and a switch:
//! {"add": [["name", "value"], ...], "replace": [[...]], "remove": ["name", ...],
//!  "request_replace": [["accept-encoding", "identity"]], "request_remove": ["if-none-match", ...],
//!  "hold": true}
//! With "hold": false the writes are made at the response headers (the call floor plus the request edits).

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, BufferType, ContextType, MapType};
use std::rc::Rc;

// The SDK's writes pass pointers (no guest allocation); its map and buffer reads would build owned values, so
// the reads are the raw calls.
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(map: MapType, pairs: *mut *mut u8, size: *mut usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer: BufferType,
        start: usize,
        max_size: usize,
        data: *mut *mut u8,
        size: *mut usize,
    ) -> u32;
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { calls: Rc::default() }) });
}}

#[derive(Default)]
struct Calls {
    add: Vec<(String, String)>,
    replace: Vec<(String, String)>,
    remove: Vec<String>,
    request_replace: Vec<(String, String)>,
    request_remove: Vec<String>,
    hold: bool,
}

struct Root {
    calls: Rc<Calls>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&config) else {
            return false;
        };
        let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
        let pairs = |key: &str| -> Vec<(String, String)> {
            let list = value.get(key).and_then(serde_json::Value::as_array);
            list.into_iter()
                .flatten()
                .filter_map(|pair| Some((text(pair.get(0)?)?, text(pair.get(1)?)?)))
                .collect()
        };
        let names = |key: &str| -> Vec<String> {
            let list = value.get(key).and_then(serde_json::Value::as_array);
            list.into_iter().flatten().filter_map(text).collect()
        };
        self.calls = Rc::new(Calls {
            add: pairs("add"),
            replace: pairs("replace"),
            remove: names("remove"),
            request_replace: pairs("request_replace"),
            request_remove: names("request_remove"),
            hold: value
                .get("hold")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(true),
        });
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Floor {
            calls: self.calls.clone(),
            holding: false,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Floor {
    calls: Rc<Calls>,
    /// The response headers are held until the body's end.
    holding: bool,
}

impl Context for Floor {}

/// Takes and frees what a host call handed over through the guest's allocator.
fn free_host_buffer(data: *mut u8, size: usize) {
    if !data.is_null() && size > 0 {
        // SAFETY: a heap buffer of exactly `size` bytes from the SDK's proxy_on_memory_allocate.
        drop(unsafe { Vec::from_raw_parts(data, size, size) });
    }
}

/// One read of a whole header map; the host hands it over through the guest's allocator, and it is freed.
fn read_map(map: MapType) {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size = 0usize;
    // SAFETY: the host writes a pointer to a buffer it got from proxy_on_memory_allocate, and its size.
    unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) };
    free_host_buffer(data, size);
}

/// One read of the response body buffered so far (`size` bytes), copied into the guest, and freed.
fn read_body(size: usize) {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut got = 0usize;
    // SAFETY: as read_map.
    unsafe { proxy_get_buffer_bytes(BufferType::HttpResponseBody, 0, size, &mut data, &mut got) };
    free_host_buffer(data, got);
}

impl Floor {
    fn write_response_headers(&self) {
        let map = MapType::HttpResponseHeaders;
        for name in &self.calls.remove {
            hostcalls::set_map_value(map, name, None).ok();
        }
        for (name, value) in &self.calls.replace {
            hostcalls::set_map_value(map, name, Some(value)).ok();
        }
        for (name, value) in &self.calls.add {
            hostcalls::add_map_value(map, name, value).ok();
        }
    }
}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        read_map(MapType::HttpRequestHeaders);
        let map = MapType::HttpRequestHeaders;
        for (name, value) in &self.calls.request_replace {
            hostcalls::set_map_value(map, name, Some(value)).ok();
        }
        for name in &self.calls.request_remove {
            hostcalls::set_map_value(map, name, None).ok();
        }
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, end_of_stream: bool) -> Action {
        read_map(MapType::HttpResponseHeaders);
        if self.calls.hold && !end_of_stream {
            self.holding = true;
            return Action::Pause;
        }
        self.write_response_headers();
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        if !self.holding {
            return Action::Continue;
        }
        if !end_of_stream {
            // Envoy buffers the body until the filter continues.
            return Action::Pause;
        }
        self.holding = false;
        read_body(body_size);
        self.write_response_headers();
        Action::Continue
    }
}
