//! The plugin's contexts: the root context reads the policy at configure time; each stream's context applies it
//! to the response. The request-side facts are decided while the request headers pass (Envoy does not let a
//! filter read them later) and kept in the stream's context, which comes from the allocator's stream pool: the
//! per-request path allocates nothing. Requests to the CSP report collector are answered here and never reach
//! the upstream. A document whose inline scripts a rule hashes is hashed in its own stream (its response headers
//! held while the body is read) where Envoy allows it, else fetched by the filter and answered from that fetch
//! (see `document_path` for how the filter tells which).

use crate::abi::{
    self, continue_request, define_counter, host_log_level, http_call_response_body,
    increment_counter, property, request_body, send_reply,
};
use crate::document_path::{DocumentPath, DocumentPaths, PROBE_TICK_MS, PROBE_WAIT_NS};
use crate::exchange::{http_call_response_headers, EnvoyRequest, EnvoyResponse};
use crate::guest_alloc::{self, STREAM_BLOCK_BYTES};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel};
use secure_headers::{
    fetch_headers, fetched_response, is_document_navigation, load_identity, reply_headers,
    Admission, CollectorReply, Delivery, DocumentHold, Fallback, HoldLimits, Metrics, Policy,
    Rejection, RequestFacts, RequestView, Telemetry, DOCUMENT_REQUEST_EDITS,
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

/// What one plugin configured: the policy, the counters its streams share, and how documents are hashed.
struct Loaded {
    policy: Policy,
    telemetry: RefCell<Telemetry<Option<u32>>>,
    documents: DocumentPaths,
}

impl Loaded {
    fn count(&self, name: &str) {
        if let Ok(mut telemetry) = self.telemetry.try_borrow_mut() {
            EnvoyMetrics(&mut telemetry.counters).increment(name);
        }
    }

    /// Runs `f` with the plugin's counters; skipped rather than risk a panic on re-entry.
    fn with_metrics(&self, f: impl FnOnce(&mut EnvoyMetrics)) {
        if let Ok(mut telemetry) = self.telemetry.try_borrow_mut() {
            f(&mut EnvoyMetrics(&mut telemetry.counters));
        }
    }

    /// A document a hashing rule could not hash: the rule's static CSP, and why counted.
    fn apply_unhashed(&self, facts: &RequestFacts, response: &mut EnvoyResponse, why: Fallback) {
        self.with_metrics(|metrics| {
            self.policy
                .apply_unhashed_document(facts, response, why, metrics);
        });
    }
}

/// The load-time line of a policy that hashes documents: which path, and how it is learned.
const HASHING_PATH_AT_LOAD: &str = "secure-headers: inline_script_hashes: documents are hashed in their own \
     stream if the plugin config sets allow_on_headers_stop_iteration: true, else fetched a second time; the \
     first document held tells which";

/// Envoy counters `wasmcustom.secure_headers.<name>`; the first of each is also logged at debug level.
struct EnvoyMetrics<'a>(&'a mut secure_headers::CounterBook<Option<u32>>);

fn define_envoy_counter(name: &str) -> Option<u32> {
    define_counter(&format!("secure_headers.{name}"))
}

impl Metrics for EnvoyMetrics<'_> {
    fn increment(&mut self, name: &str) {
        self.increment_by(name, 1);
    }

    /// One host call whatever `by` is.
    fn increment_by(&mut self, name: &str, by: u64) {
        let Some(counter) = self.0.bump_by(name, by, define_envoy_counter) else {
            return;
        };
        if let Some(id) = counter.id {
            increment_counter(id, i64::try_from(by).unwrap_or(i64::MAX));
        }
        if counter.count == by {
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
                if policy
                    .rules
                    .iter()
                    .any(|r| r.inline_script_hashes.is_some())
                {
                    log::info!("{HASHING_PATH_AT_LOAD}");
                }
                self.loaded = Some(Rc::new(Loaded {
                    policy,
                    telemetry: RefCell::new(telemetry),
                    documents: DocumentPaths::new(),
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

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        let loaded = self.loaded.clone()?;
        Some(guest_alloc::with_stream_block(|| {
            Box::new(SecureHeaders {
                loaded,
                context_id,
                facts: None,
                collecting: false,
                answered: false,
                document: false,
                holding: None,
                probing: false,
            })
        }))
    }

    /// Only while a probe is in flight: a probe whose body has not come lets its headers go on.
    fn on_tick(&mut self) {
        let Some(loaded) = &self.loaded else {
            abi::set_tick_period_ms(0);
            return;
        };
        if let Some(probe) = loaded.documents.expired_probe(abi::now_ns()) {
            log::info!(
                "secure-headers: inline_script_hashes: fetch path (a held document's body did not reach \
                 the filter in {} ms: allow_on_headers_stop_iteration is not set in the plugin config; set it \
                 to hash documents in their own stream)",
                PROBE_WAIT_NS / 1_000_000
            );
            if abi::act_on_stream(probe.context_id) {
                loaded.apply_unhashed(&probe.facts, &mut EnvoyResponse::read(), Fallback::NotHeld);
                abi::continue_response();
            }
        }
        if !loaded.documents.probing() {
            abi::set_tick_period_ms(0);
        }
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct SecureHeaders {
    loaded: Rc<Loaded>,
    context_id: u32,
    /// None when the filter never saw the request (a reply made before it ran).
    facts: Option<RequestFacts>,
    /// The request is a CSP report whose body is being read.
    collecting: bool,
    /// The filter answered the request itself (a fetched document) with the policy already applied.
    answered: bool,
    /// The response may be a document a rule hashes in-stream (the request asked for it uncompressed).
    document: bool,
    /// The response headers are held while the body is read (boxed: a stream context fits one pool block).
    holding: Option<Box<Held>>,
    /// This stream's held headers are the probe that tells the document path (`document_path`).
    probing: bool,
}

/// A document whose response headers wait for its body.
struct Held {
    /// The most body to hold.
    max_bytes: u32,
    /// The response's header map as read when it was held: nothing changes it until the filter writes, so the
    /// body's end reads it here instead of crossing into the host again (the scratch slot is reused meanwhile).
    headers: Vec<u8>,
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
        self.loaded.count(name);
    }

    fn facts(&self) -> RequestFacts {
        self.facts
            .unwrap_or_else(|| self.loaded.policy.facts_without_request())
    }

    /// Holds the response headers while the body is read, when the path allows: in-stream, or unknown with
    /// no probe in flight (this stream is then the probe).
    fn hold(&mut self, max_bytes: usize, facts: RequestFacts, response: &EnvoyResponse) -> bool {
        let documents = &self.loaded.documents;
        let hold = match documents.path() {
            DocumentPath::InStream => true,
            DocumentPath::Unknown => {
                self.probing = documents.start_probe(self.context_id, facts, abi::now_ns());
                if self.probing {
                    abi::set_tick_period_ms(PROBE_TICK_MS);
                }
                self.probing
            }
            DocumentPath::Fetch => false,
        };
        if hold {
            self.holding = Some(Box::new(Held {
                // document_hold kept max_bytes within HoldLimits::ENVOY, which fit a u32.
                max_bytes: u32::try_from(max_bytes).unwrap_or(u32::MAX),
                headers: response.map_bytes().to_vec(),
            }));
        }
        hold
    }

    /// The held document is complete (or ends in trailers): hash what was buffered, then let it go on. `size` is
    /// what the host said it buffered (None after trailers, where it does not say); a read that returns
    /// anything else is a host error, and the document gets the static CSP.
    fn finish_document(&mut self, held: Held, size: Option<usize>) {
        let facts = self.facts();
        let cap = usize::try_from(held.max_bytes).unwrap_or(usize::MAX);
        let body = abi::response_body(cap.saturating_add(1));
        let response = &mut EnvoyResponse::from_held(held.headers);
        let loaded = &self.loaded;
        if body.len() > cap {
            loaded.apply_unhashed(&facts, response, Fallback::TooLarge);
        } else if size.is_some_and(|size| size != body.len()) {
            loaded.apply_unhashed(&facts, response, Fallback::BodyUnread);
        } else {
            loaded.with_metrics(|metrics| {
                loaded
                    .policy
                    .apply_document(&facts, response, &body, metrics);
            });
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
                // The SDK's call, not a raw one: the SDK routes the answer back by the token it keeps.
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
        if !(policy.wants_document_body(&facts)
            && policy.delivery(&facts, &mut request) == Delivery::Held)
        {
            return Action::Continue;
        }
        if self.loaded.documents.path() != DocumentPath::Fetch {
            // Hashed in-stream: the scan reads the body as sent, and a 304 has none.
            self.document = true;
            DOCUMENT_REQUEST_EDITS.apply(
                &mut (),
                |_, name, value| abi::replace_request_header(name, value),
                |_, name| abi::remove_request_header(name),
            );
            return Action::Continue;
        }
        // The fetch path: a document navigation is fetched here in full and answered from that fetch.
        let document = end_of_stream
            && request.method().is_some_and(|m| m == b"GET")
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

    fn on_http_response_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        if self.answered {
            return Action::Continue;
        }
        let facts = self.facts();
        let mut response = EnvoyResponse::read();
        let hold = if self.document && !end_of_stream {
            self.loaded
                .policy
                .document_hold(&facts, &mut response, HoldLimits::ENVOY)
        } else {
            DocumentHold::No
        };
        let loaded = Rc::clone(&self.loaded);
        match hold {
            DocumentHold::Read { max_bytes } if self.hold(max_bytes, facts, &response) => {
                return Action::Pause
            }
            DocumentHold::Read { .. } => {
                loaded.apply_unhashed(&facts, &mut response, Fallback::NotHeld);
            }
            DocumentHold::Unhashed(fallback) => {
                loaded.apply_unhashed(&facts, &mut response, fallback)
            }
            DocumentHold::No => loaded.with_metrics(|metrics| {
                loaded.policy.apply_response(&facts, &mut response, metrics);
            }),
        }
        #[cfg(feature = "alloc-count")]
        crate::allocation_metric::report();
        Action::Continue
    }

    fn on_http_response_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        let Some(max_bytes) = self.holding.as_ref().map(|held| held.max_bytes) else {
            return Action::Continue;
        };
        if self.probing {
            self.probing = false;
            if self.loaded.documents.body_arrived(self.context_id) {
                log::info!(
                    "secure-headers: inline_script_hashes: in-stream (a held document's body reached the \
                     filter: allow_on_headers_stop_iteration is set)"
                );
            } else {
                // The probe's wait ran out and its headers went on with the static CSP.
                self.holding = None;
                return Action::Continue;
            }
        }
        let over_cap = u32::try_from(body_size).map_or(true, |size| size > max_bytes);
        if !over_cap && !end_of_stream {
            // Envoy buffers the body until the filter continues.
            return Action::Pause;
        }
        let Some(held) = self.holding.take() else {
            return Action::Continue;
        };
        if over_cap {
            // Past the cap: the document goes on now, with the static CSP.
            let facts = self.facts();
            let response = &mut EnvoyResponse::from_held(held.headers);
            self.loaded
                .apply_unhashed(&facts, response, Fallback::TooLarge);
        } else {
            self.finish_document(*held, Some(body_size));
        }
        Action::Continue
    }

    fn on_http_response_trailers(&mut self, _num_trailers: usize) -> Action {
        if !self.probing {
            if let Some(held) = self.holding.take() {
                self.finish_document(*held, None);
            }
        }
        Action::Continue
    }
}

impl Drop for SecureHeaders {
    /// A probe whose client left before its body came frees the next document to probe.
    fn drop(&mut self) {
        if self.probing {
            self.loaded.documents.abandon(self.context_id);
        }
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
        let facts = self.facts();
        let loaded = &self.loaded;
        loaded.with_metrics(|metrics| {
            loaded
                .policy
                .apply_document(&facts, &mut response, &body, metrics);
        });
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
    use crate::abi::mock_host::{with_host, MockHost};
    use proxy_wasm::types::{MapType, StreamType};

    const HASHING: &str =
        r#"{"presets": ["immich"], "inline_script_hashes": {"max_body_bytes": 1024}}"#;
    const PAGE: &[u8] = b"<!doctype html><meta charset=utf-8><script>boot()</script>";
    // sha256 of "boot()" (tests/inline_script_hashes.rs).
    const BOOT: &str = "'sha256-MeZS89WlF0u+o0hCvHTBt4q1WHU+U+sJKgbdRUc36mY='";

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn loaded(path: Option<DocumentPath>) -> Rc<Loaded> {
        let policy = Policy::parse(HASHING.as_bytes()).unwrap();
        let documents = DocumentPaths::new();
        if path == Some(DocumentPath::InStream) {
            documents.start_probe(1, RequestFacts::default(), 0);
            documents.body_arrived(1);
        }
        Rc::new(Loaded {
            telemetry: RefCell::new(Telemetry::for_policy(&policy, define_envoy_counter)),
            policy,
            documents,
        })
    }

    fn stream(loaded: &Rc<Loaded>, context_id: u32) -> SecureHeaders {
        SecureHeaders {
            loaded: Rc::clone(loaded),
            context_id,
            facts: None,
            collecting: false,
            answered: false,
            document: false,
            holding: None,
            probing: false,
        }
    }

    /// The document's request, then its response headers: what the filter answered to the latter.
    fn document_headers(s: &mut SecureHeaders) -> Action {
        assert_eq!(s.on_http_request_headers(6, true), Action::Continue);
        s.on_http_response_headers(2, false)
    }

    fn document_exchange(host: &mut MockHost) {
        host.request_headers = pairs(&[
            (":authority", "photos.example"),
            (":path", "/"),
            (":method", "GET"),
            (":scheme", "https"),
            ("accept-encoding", "gzip"),
            ("if-none-match", "\"v1\""),
        ]);
        host.response_headers = pairs(&[(":status", "200"), ("content-type", "text/html")]);
        host.response_body = PAGE.to_vec();
    }

    fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The response carries the rule's static CSP (the immich preset's, with 'unsafe-inline' for scripts).
    fn sent_static_csp(host: &MockHost) -> bool {
        header(&host.response_headers, "content-security-policy")
            .is_some_and(|csp| csp.contains("script-src 'self' 'unsafe-inline'"))
    }

    fn counted(host: &MockHost, name: &str) -> i64 {
        host.metrics
            .iter()
            .filter(|(_, n, _)| n == &format!("secure_headers.{name}"))
            .map(|(_, _, value)| *value)
            .sum()
    }

    #[test]
    fn in_stream_the_headers_wait_for_the_body_then_carry_its_hashes() {
        let (actions, host) = with_host(document_exchange, || {
            let loaded = loaded(Some(DocumentPath::InStream));
            let mut s = stream(&loaded, 2);
            [
                s.on_http_request_headers(6, true),
                s.on_http_response_headers(2, false),
                s.on_http_response_body(10, false),
                s.on_http_response_body(PAGE.len(), true),
            ]
        });
        assert_eq!(
            actions,
            [
                Action::Continue,
                Action::Pause,
                Action::Pause,
                Action::Continue
            ]
        );
        assert_eq!(
            header(&host.request_headers, "accept-encoding"),
            Some("identity")
        );
        assert_eq!(header(&host.request_headers, "if-none-match"), None);
        let csp = header(&host.response_headers, "content-security-policy").unwrap_or_default();
        assert!(
            csp.contains(BOOT) && !csp.contains("script-src 'self' 'unsafe-inline'"),
            "{csp}"
        );
        assert_eq!(counted(&host, "inline_scripts.documents_hashed"), 1);
        assert!(
            host.continued.is_empty(),
            "the filter never resumed it: Envoy did"
        );
        assert_eq!(
            host.map_reads,
            [MapType::HttpRequestHeaders, MapType::HttpResponseHeaders],
            "each map read once: the held headers are kept, not read again at the body's end"
        );
        assert_eq!(counted(&host, "inline_scripts.scripts_hashed"), 1);
    }

    #[test]
    fn in_stream_a_body_over_the_cap_goes_on_with_the_static_csp() {
        let (actions, host) = with_host(document_exchange, || {
            let loaded = loaded(Some(DocumentPath::InStream));
            let mut s = stream(&loaded, 2);
            [
                document_headers(&mut s),
                s.on_http_response_body(1025, false),
                s.on_http_response_body(2000, true),
            ]
        });
        assert_eq!(actions, [Action::Pause, Action::Continue, Action::Continue]);
        assert!(sent_static_csp(&host), "{:?}", host.response_headers);
        assert_eq!(counted(&host, "inline_scripts.fallback.too_large"), 1);
    }

    #[test]
    fn in_stream_a_body_the_host_hands_back_short_gets_the_static_csp() {
        let (action, host) = with_host(document_exchange, || {
            let loaded = loaded(Some(DocumentPath::InStream));
            let mut s = stream(&loaded, 2);
            document_headers(&mut s);
            s.on_http_response_body(PAGE.len() + 1, true)
        });
        assert_eq!(action, Action::Continue);
        assert!(sent_static_csp(&host), "{:?}", host.response_headers);
        assert_eq!(counted(&host, "inline_scripts.fallback.body_unread"), 1);
    }

    #[test]
    fn a_probe_whose_body_never_comes_learns_the_fetch_path_and_goes_on() {
        let (held, host) = with_host(document_exchange, || {
            let loaded = loaded(None);
            let mut s = stream(&loaded, 5);
            let held = document_headers(&mut s);
            crate::abi::mock_host::HOST.with(|h| h.borrow_mut().now_ns = PROBE_WAIT_NS);
            let mut root = PolicyRoot {
                loaded: Some(Rc::clone(&loaded)),
            };
            root.on_tick();
            // The body the host hands over after the headers went on: passed, nothing written twice.
            assert_eq!(s.on_http_response_body(PAGE.len(), true), Action::Continue);
            (held, loaded.documents.path())
        });
        assert_eq!(held, (Action::Pause, DocumentPath::Fetch));
        assert_eq!(host.effective_context, Some(5));
        assert_eq!(host.continued, vec![StreamType::HttpResponse]);
        assert_eq!(
            host.tick_period_ms,
            Some(0),
            "the timer stops with the probe"
        );
        assert!(sent_static_csp(&host), "{:?}", host.response_headers);
        assert_eq!(counted(&host, "inline_scripts.fallback.not_held"), 1);
        assert_eq!(counted(&host, "inline_scripts.documents_hashed"), 0);
    }

    #[test]
    fn a_probe_whose_body_comes_learns_in_stream() {
        let (path, host) = with_host(document_exchange, || {
            let loaded = loaded(None);
            let mut s = stream(&loaded, 5);
            assert_eq!(document_headers(&mut s), Action::Pause);
            assert_eq!(s.on_http_response_body(PAGE.len(), true), Action::Continue);
            loaded.documents.path()
        });
        assert_eq!(path, DocumentPath::InStream);
        assert_eq!(host.tick_period_ms, Some(PROBE_TICK_MS));
        assert!(header(&host.response_headers, "content-security-policy")
            .is_some_and(|csp| csp.contains(BOOT)));
    }

    #[test]
    fn on_the_fetch_path_a_navigation_is_fetched_and_its_request_waits() {
        let (action, host) = with_host(
            |host| {
                document_exchange(host);
                host.request_headers
                    .push(("sec-fetch-dest".into(), "document".into()));
                host.properties
                    .push((b"xds\0cluster_name\0".to_vec(), b"immich".to_vec()));
            },
            || {
                let loaded = loaded(None);
                loaded.documents.start_probe(1, RequestFacts::default(), 0);
                loaded.documents.expired_probe(PROBE_WAIT_NS);
                stream(&loaded, 2).on_http_request_headers(7, true)
            },
        );
        assert_eq!(action, Action::Pause);
        let [(cluster, headers, timeout)] = host.http_calls.as_slice() else {
            panic!("one fetch: {:?}", host.http_calls)
        };
        assert_eq!((cluster.as_str(), *timeout), ("immich", 15_000));
        let sent: Vec<(&[u8], &[u8])> = crate::abi::map_pairs(headers)
            .map(|(_, n, v)| (n, v))
            .collect();
        assert!(sent.contains(&(&b"accept-encoding"[..], &b"identity"[..])));
        assert!(!sent.iter().any(|(n, _)| *n == b"if-none-match"));
        assert_eq!(
            header(&host.request_headers, "accept-encoding"),
            Some("gzip"),
            "the browser's own request is not edited: it is answered from the fetch"
        );
    }

    #[test]
    fn a_probe_whose_client_leaves_frees_the_next_document_to_probe() {
        let loaded = loaded(None);
        with_host(document_exchange, || {
            let mut s = stream(&loaded, 5);
            document_headers(&mut s);
            assert!(loaded.documents.probing());
            drop(s);
            assert!(!loaded.documents.probing());
        });
        assert_eq!(loaded.documents.path(), DocumentPath::Unknown);
    }

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
