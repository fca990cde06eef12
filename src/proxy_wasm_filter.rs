//! The proxy-wasm adapter (Envoy and every proxy-wasm host): reads the policy at configure time and hands
//! each stream's headers to the engine. Byte APIs only, so a non-UTF-8 upstream value cannot trap the VM.

use crate::engine::RequestFacts;
use crate::host::{RequestView, ResponseHeaders};
use crate::policy::Policy;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MapType};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(PolicyRoot { policy: None }) });
}}

struct PolicyRoot {
    policy: Option<Rc<Policy>>,
}

impl Context for PolicyRoot {}

impl RootContext for PolicyRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let json = self.get_plugin_configuration().unwrap_or_default();
        match Policy::parse(&json) {
            Ok(policy) => {
                log::info!(
                    "secure-headers: policy loaded ({} rule(s))",
                    policy.rules.len()
                );
                self.policy = Some(Rc::new(policy));
                true
            }
            Err(err) => {
                // Envoy then refuses the listener (or NACKs the update) and keeps no half-read policy.
                log::error!("secure-headers: {err}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        let policy = self.policy.clone()?;
        Some(Box::new(SecureHeaders {
            policy,
            facts: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct SecureHeaders {
    policy: Rc<Policy>,
    facts: Option<RequestFacts>,
}

impl Context for SecureHeaders {}

impl HttpContext for SecureHeaders {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        self.facts = Some(self.policy.inspect_request(&mut EnvoyRequest::default()));
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let facts = self
            .facts
            .unwrap_or_else(|| self.policy.facts_without_request());
        self.policy
            .apply_response(&facts, &mut EnvoyResponse::default());
        Action::Continue
    }
}

/// Reads one header value; a host error reads as absent rather than trapping.
fn read(map: MapType, name: &str) -> Option<Vec<u8>> {
    hostcalls::get_map_value_bytes(map, name).ok().flatten()
}

#[derive(Default)]
struct EnvoyRequest {
    authority: Option<Vec<u8>>,
    path: Option<Vec<u8>>,
    scratch: Option<Vec<u8>>,
}

impl RequestView for EnvoyRequest {
    fn host_and_path(&mut self) -> (Option<&[u8]>, Option<&[u8]>) {
        self.authority = read(MapType::HttpRequestHeaders, ":authority");
        self.path = read(MapType::HttpRequestHeaders, ":path");
        (self.authority.as_deref(), self.path.as_deref())
    }

    fn method(&mut self) -> Option<&[u8]> {
        self.header(":method")
    }

    fn scheme(&mut self) -> Option<&[u8]> {
        self.header(":scheme")
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.scratch = read(MapType::HttpRequestHeaders, name);
        self.scratch.as_deref()
    }
}

#[derive(Default)]
struct EnvoyResponse {
    scratch: Option<Vec<u8>>,
}

impl ResponseHeaders for EnvoyResponse {
    fn status(&mut self) -> Option<u16> {
        let status = read(MapType::HttpResponseHeaders, ":status")?;
        std::str::from_utf8(&status).ok()?.parse().ok()
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.scratch = read(MapType::HttpResponseHeaders, name);
        self.scratch.as_deref()
    }

    // Write failures (a header map the host no longer lets us touch) leave the response as it was.
    fn set(&mut self, name: &str, value: &str) {
        let _ = hostcalls::set_map_value_bytes(
            MapType::HttpResponseHeaders,
            name,
            Some(value.as_bytes()),
        );
    }

    fn append(&mut self, name: &str, value: &str) {
        let _ =
            hostcalls::add_map_value_bytes(MapType::HttpResponseHeaders, name, value.as_bytes());
    }

    fn remove(&mut self, name: &str) {
        let _ = hostcalls::remove_map_value(MapType::HttpResponseHeaders, name);
    }
}
