//! Benchmark floor for Envoy: the host calls the `immich` preset's job cannot avoid, with no logic between
//! them. Each header map the filter must see is read once (`proxy_get_header_map_pairs`, one call plus the
//! host's call into the guest allocator); each header removed costs one call, each header written one call,
//! an add for a header the response lacks (cheaper in Envoy than a replace, which looks the name up first)
//! and a replace for one it has. bench/run.py configures the very headers secure-headers writes:
//! {"add": [["name", "value"], ...], "replace": [[...]], "remove": ["name", ...]}.
//!
//! The hold floor of issue 20 (bench/envoy_hold_instructions.py) is the same guest with the host calls of the
//! in-stream hashed document path added: "request_replace": [["accept-encoding", "identity"]] and
//! "request_remove": ["if-none-match", ...] (`DOCUMENT_REQUEST_EDITS`, one call each whether the request has the
//! header or not, as hosts/envoy does), and "hold": true: the response headers paused (Envoy then buffers the
//! body; needs `allow_on_headers_stop_iteration: true`), the body paused until its end, read once whole
//! (`proxy_get_buffer_bytes`, copied into the guest through its allocator), then the writes and Continue. No
//! scan, no hash, no comparison with the last document, no counters.

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
                .unwrap_or(false),
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
