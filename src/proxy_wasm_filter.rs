//! The proxy-wasm adapter (Envoy and every proxy-wasm host): reads the policy at configure time and applies it
//! to each response. The request-side facts are decided while the request headers pass (Envoy does not let a
//! filter read them later) and kept in the stream's context, which comes from the allocator's stream pool: the
//! per-request path allocates nothing. Requests to the CSP report collector are answered here and never reach
//! the upstream. A document whose inline scripts a rule hashes is fetched by the filter and answered from that
//! fetch (see document_fetch).

use crate::delivery::{is_document_navigation, Delivery};
use crate::document_fetch::{fetch_headers, FetchedResponse};
use crate::engine::RequestFacts;
use crate::guest_alloc::{self, GuestAllocator, STREAM_BLOCK_BYTES};
use crate::host::RequestView;
use crate::identity::load_identity;
use crate::inline_hashing::Fallback;
use crate::metrics::{CounterBook, Metrics};
use crate::policy::Policy;
use crate::proxy_wasm_host::{
    continue_request, define_counter, host_log_level, http_call_response_body,
    http_call_response_headers, increment_counter, property, request_body, send_reply,
    EnvoyRequest, EnvoyResponse,
};
use crate::report_collector::{Admission, OriginBook, Rejection};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// How long the filter waits for a document it fetches before letting the request go to the upstream itself
/// (Envoy's default route timeout).
const DOCUMENT_FETCH_TIMEOUT: Duration = Duration::from_secs(15);
/// Envoy's name for the reply made from a fetched document (%RESPONSE_CODE_DETAILS% in the access log).
const DOCUMENT_REPLY_DETAILS: &str = "secure_headers_hashed_document";

#[global_allocator]
static ALLOCATOR: GuestAllocator = GuestAllocator;

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(PolicyRoot { loaded: None }) });
}}

/// What one plugin configured: the policy, and the counters its streams share.
struct Loaded {
    policy: Policy,
    telemetry: RefCell<Telemetry>,
}

#[derive(Default)]
struct Telemetry {
    counters: CounterBook<Option<u32>>,
    origins: OriginBook,
}

/// Envoy counters `wasmcustom.secure_headers.<name>`; the first of each is also logged at debug level.
struct EnvoyMetrics<'a>(&'a mut CounterBook<Option<u32>>);

fn define_envoy_counter(name: &str) -> Option<u32> {
    define_counter(&format!("secure_headers.{name}"))
}

impl Metrics for EnvoyMetrics<'_> {
    fn increment(&mut self, name: &str) {
        let Some(counter) = self.0.bump(name, define_envoy_counter) else {
            return;
        };
        if let Some(id) = counter.id {
            increment_counter(id, 1);
        }
        if counter.count == 1 {
            log::debug!("secure-headers: first {name}");
        }
    }
}

/// One per plugin: Envoy runs every plugin with the same vm_config in one VM, each with its own root context,
/// so the policy belongs to the root context, never to the VM.
struct PolicyRoot {
    loaded: Option<Rc<Loaded>>,
}

impl Context for PolicyRoot {}

impl RootContext for PolicyRoot {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        // Debug lines (first occurrences in observe mode) are formatted only when the host would print them.
        if let Some(level) = host_log_level() {
            proxy_wasm::set_log_level(if level <= 1 {
                LogLevel::Debug
            } else {
                LogLevel::Info
            });
        }
        let json = self.get_plugin_configuration().unwrap_or_default();
        let started = self.get_current_time();
        let parsed = Policy::parse(&json);
        match parsed {
            Ok(policy) => {
                let elapsed = self
                    .get_current_time()
                    .duration_since(started)
                    .unwrap_or_default();
                log::info!(
                    "secure-headers: policy loaded ({} rule(s), {:.3} ms), {}",
                    policy.rules.len(),
                    elapsed.as_secs_f64() * 1000.0,
                    load_identity(&json)
                );
                // Every counter a response can touch exists before the first response, so counting never
                // allocates.
                let mut telemetry = Telemetry::default();
                for name in policy.counter_names() {
                    telemetry.counters.register(name, define_envoy_counter);
                }
                self.loaded = Some(Rc::new(Loaded {
                    policy,
                    telemetry: RefCell::new(telemetry),
                }));
                #[cfg(feature = "alloc-count")]
                allocation_metric::define();
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
        let loaded = self.loaded.clone()?;
        Some(guest_alloc::with_stream_block(|| {
            Box::new(SecureHeaders {
                loaded,
                facts: None,
                collecting: false,
                answered: false,
            })
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct SecureHeaders {
    loaded: Rc<Loaded>,
    /// None when the filter never saw the request (a reply made before it ran).
    facts: Option<RequestFacts>,
    /// The request is a CSP report whose body is being read.
    collecting: bool,
    /// The filter answered the request itself (a fetched document) with the policy already applied.
    answered: bool,
}

const _: () = assert!(
    std::mem::size_of::<SecureHeaders>() <= STREAM_BLOCK_BYTES
        && std::mem::align_of::<SecureHeaders>() <= 16,
    "a stream context must fit one block of the stream pool"
);

impl SecureHeaders {
    fn reject(&self, rejection: Rejection) -> Action {
        self.count(rejection.counter());
        reply(rejection);
        Action::Pause
    }

    fn count(&self, name: &str) {
        if let Ok(mut telemetry) = self.loaded.telemetry.try_borrow_mut() {
            EnvoyMetrics(&mut telemetry.counters).increment(name);
        }
    }

    /// Sends the document request to the route's cluster from the filter; true when the call is under way
    /// (the request then waits for `on_http_call_response`).
    fn fetch_document(&self, request: &EnvoyRequest) -> bool {
        let cluster = property(&["xds", "cluster_name"]).and_then(|c| String::from_utf8(c).ok());
        let dispatched = cluster
            .zip(request.text_pairs())
            .is_some_and(|(cluster, pairs)| {
                let headers = fetch_headers(pairs.into_iter());
                self.dispatch_http_call(&cluster, headers, None, vec![], DOCUMENT_FETCH_TIMEOUT)
                    .is_ok()
            });
        if !dispatched {
            self.count(Fallback::FetchFailed.counter());
        }
        dispatched
    }
}

fn reply(rejection: Rejection) {
    let allow: &[(&str, &str)] = if rejection == Rejection::Method {
        &[("allow", "POST"), ("content-type", "text/plain")]
    } else {
        &[("content-type", "text/plain")]
    };
    send_reply(
        rejection.status(),
        allow,
        rejection.message().as_bytes(),
        "secure_headers_csp_report",
    );
}

impl HttpContext for SecureHeaders {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let mut request = EnvoyRequest::read();
        #[cfg(feature = "trap-test")]
        crate::trap_test::trap_if_asked(request.get(crate::trap_test::TRAP_HEADER).is_some());
        if let Some(collector) = &self.loaded.policy.report_collector {
            let admission = collector.admit(
                request.get(":path"),
                request.get(":method"),
                request.get("content-type"),
                request.get("content-length"),
            );
            match admission {
                Admission::Pass => {}
                Admission::Reject(rejection) => return self.reject(rejection),
                Admission::ReadBody if end_of_stream => return self.reject(Rejection::Malformed),
                Admission::ReadBody => {
                    // Envoy never hands the body to a filter that paused the headers (proxy-wasm turns that
                    // pause into stop-all), so the headers go on and the body is held until it is complete; the
                    // local reply then resets the upstream stream before any byte of the report is sent.
                    self.collecting = true;
                    return Action::Continue;
                }
            }
        }
        let policy = &self.loaded.policy;
        let facts = policy.inspect_request(&mut request);
        self.facts = Some(facts);
        // Envoy never hands a Wasm filter the body of a response whose headers it holds, so a document whose
        // inline scripts are hashed is fetched here in full and answered from that fetch.
        let document = end_of_stream
            && policy.wants_document_body(&facts)
            && request.method().is_some_and(|m| m == b"GET")
            && policy.delivery(&facts, &mut request) == Delivery::Held
            && is_document_navigation(&mut request);
        if document && self.fetch_document(&request) {
            return Action::Pause;
        }
        Action::Continue
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(collector) = self
            .loaded
            .policy
            .report_collector
            .as_ref()
            .filter(|_| self.collecting)
        else {
            return Action::Continue;
        };
        if body_size > collector.max_body_bytes {
            self.collecting = false;
            return self.reject(Rejection::TooLarge);
        }
        if !end_of_stream {
            // Envoy keeps buffering until the whole report is in.
            return Action::Pause;
        }
        self.collecting = false;
        let body = request_body(body_size);
        let Ok(mut telemetry) = self.loaded.telemetry.try_borrow_mut() else {
            return Action::Pause;
        };
        let Telemetry { counters, origins } = &mut *telemetry;
        let outcome = collector.collect(&body, origins, &mut EnvoyMetrics(counters), &mut |line| {
            log::info!("secure-headers: {line}")
        });
        match outcome {
            Ok(_) => send_reply(204, &[], b"", "secure_headers_csp_report"),
            Err(rejection) => reply(rejection),
        }
        Action::Pause
    }

    fn on_http_response_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.answered {
            return Action::Continue;
        }
        let policy = &self.loaded.policy;
        let facts = self.facts.unwrap_or_else(|| policy.facts_without_request());
        if let Ok(mut telemetry) = self.loaded.telemetry.try_borrow_mut() {
            policy.apply_response(
                &facts,
                &mut EnvoyResponse::read(),
                &mut EnvoyMetrics(&mut telemetry.counters),
            );
        }
        #[cfg(feature = "alloc-count")]
        allocation_metric::report();
        Action::Continue
    }
}

impl Context for SecureHeaders {
    /// The document fetched in `fetch_document`: answered with the policy applied to the complete response,
    /// or, when the fetch failed (Envoy answers a reset or a timeout with a 5xx of its own; over its buffer
    /// limit there is no response), sent on through the route as usual, with the route's retries and timeouts.
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, body_size: usize, _: usize) {
        let fetched = http_call_response_headers()
            .and_then(FetchedResponse::new)
            .filter(|r| r.status_code() < 500);
        let Some(mut response) = fetched else {
            self.count(Fallback::FetchFailed.counter());
            continue_request();
            return;
        };
        let body = http_call_response_body(body_size);
        let policy = &self.loaded.policy;
        let facts = self.facts.unwrap_or_else(|| policy.facts_without_request());
        if let Ok(mut telemetry) = self.loaded.telemetry.try_borrow_mut() {
            policy.apply_document(
                &facts,
                &mut response,
                &body,
                &mut EnvoyMetrics(&mut telemetry.counters),
            );
        }
        self.answered = true;
        send_reply(
            response.status_code(),
            &response.reply_headers(),
            &body,
            DOCUMENT_REPLY_DETAILS,
        );
    }
}

/// The `alloc-count` build reports the guest's heap allocations as the Envoy counter
/// `wasmcustom.secure_headers.heap_allocations` and the size of its linear memory as the gauge
/// `wasmcustom.secure_headers.linear_memory_bytes` (for the allocation test and `make soak`).
#[cfg(feature = "alloc-count")]
mod allocation_metric {
    use crate::guest_alloc::heap_allocations;
    use crate::proxy_wasm_host::{define_counter, define_gauge, increment_counter, record_gauge};
    use std::cell::Cell;

    const WASM_PAGE: u64 = 65_536;

    thread_local! {
        static METRICS: Cell<Option<(u32, u32)>> = const { Cell::new(None) };
        static REPORTED: Cell<usize> = const { Cell::new(0) };
    }

    pub fn define() {
        let ids = define_counter("secure_headers.heap_allocations")
            .zip(define_gauge("secure_headers.linear_memory_bytes"));
        METRICS.with(|m| m.set(ids));
    }

    /// Adds the allocations made since the last report (so the counter sums over every VM).
    pub fn report() {
        let Some((allocations, memory)) = METRICS.with(Cell::get) else {
            return;
        };
        let now = heap_allocations();
        let delta = now.saturating_sub(REPORTED.with(|r| r.replace(now)));
        if delta > 0 {
            increment_counter(allocations, i64::try_from(delta).unwrap_or(i64::MAX));
        }
        record_gauge(
            memory,
            core::arch::wasm32::memory_size(0) as u64 * WASM_PAGE,
        );
    }
}
