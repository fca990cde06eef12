//! Benchmark comparison: writes a fixed header set the way the proxy-wasm SDK examples work: the whole response
//! header map read into owned Strings on every response, then each header set or removed by name.
//! Configuration: {"set": [["name", "value"], ...], "remove": ["name", ...]}.

use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root { headers: Rc::default() }) });
}}

#[derive(Default)]
struct HeaderSet {
    set: Vec<(String, String)>,
    remove: Vec<String>,
}

struct Root {
    headers: Rc<HeaderSet>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _size: usize) -> bool {
        let config = self.get_plugin_configuration().unwrap_or_default();
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(&config) else { return false };
        let strings = |v: &serde_json::Value| v.as_str().map(str::to_string);
        let set = value["set"].as_array().into_iter().flatten().filter_map(|pair| {
            Some((strings(&pair[0])?, strings(&pair[1])?))
        });
        let remove = value["remove"].as_array().into_iter().flatten().filter_map(strings);
        self.headers = Rc::new(HeaderSet { set: set.collect(), remove: remove.collect() });
        true
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Naive { headers: self.headers.clone() }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct Naive {
    headers: Rc<HeaderSet>,
}

impl Context for Naive {}

impl HttpContext for Naive {
    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let present = self.get_http_response_headers();
        for name in &self.headers.remove {
            if present.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                self.set_http_response_header(name, None);
            }
        }
        for (name, value) in &self.headers.set {
            self.set_http_response_header(name, Some(value));
        }
        Action::Continue
    }
}
