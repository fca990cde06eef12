//! The plugin's contexts: the root context reads the policy at configure time; each stream's context applies it
//! to the response. The request-side facts are decided while the request headers pass (Envoy does not let a
//! filter read them later) and kept in the stream's context, which comes from the allocator's stream pool: the
//! per-request path allocates nothing. Requests to the CSP report collector are answered here and never reach
//! the upstream. A document whose inline scripts a rule hashes is fetched by the filter and answered from that
//! fetch (see the engine's `fetch_headers`).

use crate::abi::{
    continue_request, define_counter, host_log_level, http_call_response_body, increment_counter,
    property, request_body, send_reply,
};
use crate::exchange::{http_call_response_headers, EnvoyRequest, EnvoyResponse};
use crate::guest_alloc::{self, STREAM_BLOCK_BYTES};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use secure_headers::{
    fetch_headers, fetched_response, is_document_navigation, load_identity, reply_headers,
    Admission, CollectorReply, Delivery, Fallback, Metrics, Policy, Rejection, RequestFacts,
    RequestView, Telemetry,
};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

/// How long the filter waits for a document it fetches before letting the request go to the upstream itself
/// (Envoy's default route timeout).
const DOCUMENT_FETCH_TIMEOUT: Duration = Duration::from_secs(15);
/// Envoy's name for the reply made from a fetched document (%RESPONSE_CODE_DETAILS% in the access log).
const DOCUMENT_REPLY_DETAILS: &str = "secure_headers_hashed_document";

/// The root context of a plugin that has not read its configuration yet.
pub fn new_root() -> Box<dyn RootContext> {
    Box::new(PolicyRoot { loaded: None })
}

/// What one plugin configured: the policy, and the counters its streams share.
struct Loaded {
    policy: Policy,
    telemetry: RefCell<Telemetry<Option<u32>>>,
}

/// Envoy counters `wasmcustom.secure_headers.<name>`; the first of each is also logged at debug level.
struct EnvoyMetrics<'a>(&'a mut secure_headers::CounterBook<Option<u32>>);

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
                // Milliseconds with three decimals from integer microseconds: float formatting would add
                // 6 KB of code to the module for this one line.
                let micros = elapsed.as_micros();
                log::info!(
                    "secure-headers: policy loaded ({} rule(s), {}.{:03} ms), {}",
                    policy.rules.len(),
                    micros / 1000,
                    micros % 1000,
                    load_identity(&json)
                );
                let telemetry = Telemetry::for_policy(&policy, define_envoy_counter);
                self.loaded = Some(Rc::new(Loaded {
                    policy,
                    telemetry: RefCell::new(telemetry),
                }));
                #[cfg(feature = "alloc-count")]
                crate::allocation_metric::define();
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
        reply(Err(rejection));
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

/// Envoy's name for the collector's replies (%RESPONSE_CODE_DETAILS% in the access log).
const COLLECTOR_REPLY_DETAILS: &str = "secure_headers_csp_report";

fn reply(outcome: Result<(), Rejection>) {
    let reply = CollectorReply::new(outcome);
    send_reply(
        reply.status,
        reply.headers,
        reply.body.as_bytes(),
        COLLECTOR_REPLY_DETAILS,
    );
}

impl HttpContext for SecureHeaders {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let mut request = EnvoyRequest::read();
        #[cfg(feature = "trap-test")]
        secure_headers::trap_test::trap_if_asked(
            request
                .get(secure_headers::trap_test::TRAP_HEADER)
                .is_some(),
        );
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
        reply(outcome.map(|_| ()));
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
        crate::allocation_metric::report();
        Action::Continue
    }
}

impl Context for SecureHeaders {
    /// The document fetched in `fetch_document`: answered with the policy applied to the complete response,
    /// or, when the fetch failed (Envoy answers a reset or a timeout with a 5xx of its own; over its buffer
    /// limit there is no response), sent on through the route as usual, with the route's retries and timeouts.
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, body_size: usize, _: usize) {
        let fetched = http_call_response_headers()
            .and_then(fetched_response)
            .filter(|r| r.status < 500);
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
            response.status,
            &reply_headers(&response),
            &body,
            DOCUMENT_REPLY_DETAILS,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::encode_map;
    use crate::abi::mock_host::with_host;

    #[test]
    fn the_collectors_replies_are_the_engines() {
        for (outcome, status, headers, body) in [
            (Ok(()), 204, &[][..], ""),
            (
                Err(Rejection::Method),
                405,
                &[("allow", "POST"), ("content-type", "text/plain")][..],
                "reports are POSTed\n",
            ),
            (
                Err(Rejection::TooLarge),
                413,
                &[("content-type", "text/plain")][..],
                "report too large\n",
            ),
        ] {
            let ((), host) = with_host(|_| {}, || reply(outcome));
            let sent = host.local_reply.unwrap();
            assert_eq!(
                sent,
                (
                    status,
                    body.as_bytes().to_vec(),
                    encode_map(headers),
                    COLLECTOR_REPLY_DETAILS.to_string()
                )
            );
        }
    }
}
