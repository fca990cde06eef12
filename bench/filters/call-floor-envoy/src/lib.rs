//! Benchmark floor for Envoy: the host calls the `immich` preset's job cannot avoid, with no logic between
//! them. Each header map the filter must see is read once (`proxy_get_header_map_pairs`, one call plus the
//! host's call into the guest allocator); each header removed costs one call, each header written one call,
//! an add for a header the response lacks (cheaper in Envoy than a replace, which looks the name up first)
//! and a replace for one it has. bench/run.py configures the very headers secure-headers writes:
//! {"add": [["name", "value"], ...], "replace": [[...]], "remove": ["name", ...]}.

use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, MapType};
use std::rc::Rc;

// The SDK's writes pass pointers (no guest allocation); its map read would build owned pairs, so the read is
// the raw call.
#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(map: MapType, pairs: *mut *mut u8, size: *mut usize) -> u32;
}

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { calls: Rc::default() }) });
}}

#[derive(Default)]
struct Calls {
    add: Vec<(String, String)>,
    replace: Vec<(String, String)>,
    remove: Vec<String>,
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
        let remove = value.get("remove").and_then(serde_json::Value::as_array);
        self.calls = Rc::new(Calls {
            add: pairs("add"),
            replace: pairs("replace"),
            remove: remove.into_iter().flatten().filter_map(text).collect(),
        });
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Floor {
            calls: self.calls.clone(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Floor {
    calls: Rc<Calls>,
}

impl Context for Floor {}

/// One read of a whole header map; the host hands it over through the guest's allocator, and it is freed.
fn read_map(map: MapType) {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size = 0usize;
    // SAFETY: the host writes a pointer to a buffer it got from proxy_on_memory_allocate, and its size.
    unsafe { proxy_get_header_map_pairs(map, &mut data, &mut size) };
    if !data.is_null() && size > 0 {
        // SAFETY: a heap buffer of exactly `size` bytes from the SDK's proxy_on_memory_allocate.
        drop(unsafe { Vec::from_raw_parts(data, size, size) });
    }
}

impl HttpContext for Floor {
    fn on_http_request_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        read_map(MapType::HttpRequestHeaders);
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _headers: usize, _end_of_stream: bool) -> Action {
        read_map(MapType::HttpResponseHeaders);
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
        Action::Continue
    }
}
