//! secure-headers for Traefik v3 (the http-wasm ABI): the policy is read when the module is instantiated; each
//! request is either streamed (headers written before the upstream answers) or held (full policy on the
//! complete response), as the engine's `Policy::delivery` decides; requests to the CSP report collector are
//! answered here. http-wasm has no metrics ABI: counters are logged when they reach 1, 2, 4, 8... (per plugin
//! instance; Traefik pools instances).
//! - `abi`: the host calls, each beside its safe wrapper, with typed kinds (mocked under `cfg(test)`);
//! - `exchange`: the request and response as the engine sees them;
//! - `pass_through`: what an instance says while `on_invalid_policy: pass` serves without a policy;
//! - this file: the three entry points the host calls.

// A panic in the VM takes traffic down: outside tests, nothing here may unwrap, panic or index.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

mod abi;
mod exchange;
mod pass_through;

use abi::{BodyKind, HeaderKind, LogLevel, RequestOutcome};
use exchange::{with_read_buffers, TraefikRequest};
use pass_through::PassThroughNotice;
use secure_headers::{
    load_identity, policy_text, traefik_options, Admission, CollectorReply, CounterBook, Delivery,
    Metrics, OnInvalidPolicy, OriginBook, Policy, Rejection, ReportCollector, RequestFacts,
    RequestView, Telemetry, TraefikOptions, DOCUMENT_REQUEST_EDITS,
};
use std::cell::{Cell, RefCell};
use std::time::Instant;

#[cfg(target_os = "wasi")]
extern "C" {
    fn __wasm_call_ctors();
}

thread_local! {
    static POLICY: RefCell<Option<Policy>> = const { RefCell::new(None) };
    static TELEMETRY: RefCell<Option<Telemetry<()>>> = const { RefCell::new(None) };
    /// Set instead of POLICY when the policy is invalid and `on_invalid_policy` is `pass`.
    static PASSING: RefCell<Option<PassThroughNotice>> = const { RefCell::new(None) };
    /// The held request's facts, under the context handed to `handle_response`, so that the response phase
    /// need not read the request's headers again. http-wasm-host-go takes an instance from its pool for each of
    /// the two calls: usually the same one, but under concurrent requests the response may go to another.
    static HELD_REQUEST: Cell<Option<(u32, RequestFacts)>> = const { Cell::new(None) };
    /// The context the next held request gets (see `remember_held`).
    static NEXT_CONTEXT: Cell<u32> = const { Cell::new(1) };
}

/// Contexts step by this odd constant (2^32 / the golden ratio), so each instance walks all 2^32 values from its
/// own start, and two instances' walks meet only when their counts differ by one pseudo-random 32-bit number.
const CONTEXT_STEP: u32 = 0x9E37_79B9;

/// Where this instance's contexts start: the wall clock's nanoseconds at load (Traefik gives guests the real
/// clock), so that a context another instance handed out is not taken for one of this instance's own, whose
/// facts are another request's. Counting from 1 in every instance made that a match whenever two instances were
/// at the same count. Read once per instance, not per request: it is a host call.
fn seed_contexts() {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    NEXT_CONTEXT.with(|next| next.set(now.map_or(0, |d| d.as_nanos()) as u32));
}

/// Keeps a held request's facts and returns the nonzero context that finds them again.
fn remember_held(facts: RequestFacts) -> u32 {
    let context = NEXT_CONTEXT.with(|next| {
        let context = next.get().max(1);
        next.set(context.wrapping_add(CONTEXT_STEP));
        context
    });
    HELD_REQUEST.with(|held| held.set(Some((context, facts))));
    context
}

/// The facts `handle_request` kept under `context`, once; read again from the request if this instance does
/// not have them (a host that hands the response to another instance).
fn held_facts(policy: &Policy, context: u32, request: &mut TraefikRequest) -> RequestFacts {
    match HELD_REQUEST.with(Cell::take) {
        Some((kept, facts)) if kept == context => facts,
        _ => policy.inspect_request(request),
    }
}

/// Counters as log lines at 1, 2, 4, 8...: a trace an operator can read in Traefik's log, in bounded volume.
struct LoggedMetrics<'a>(&'a mut CounterBook<()>);

impl Metrics for LoggedMetrics<'_> {
    fn increment(&mut self, name: &str) {
        if let Some(counter) = self.0.bump(name, |_| ()) {
            if counter.count.is_power_of_two() {
                abi::write_log(
                    LogLevel::Info,
                    &format!(
                        "secure-headers: {name} = {} (this plugin instance)",
                        counter.count
                    ),
                );
            }
        }
    }
}

/// Runs `f` with the instance's counters; counting is skipped rather than risk a panic on re-entry.
fn with_metrics(f: impl FnOnce(&mut LoggedMetrics, &mut OriginBook)) {
    TELEMETRY.with(|t| {
        if let Ok(mut telemetry) = t.try_borrow_mut() {
            if let Some(Telemetry { counters, origins }) = telemetry.as_mut() {
                f(&mut LoggedMetrics(counters), origins);
            }
        }
    });
}

/// Module start: read and compile the policy. A bad policy is logged with its field path and the
/// instance traps, so Traefik refuses to build the middleware instead of serving with a half-read policy;
/// unless the options say `on_invalid_policy: pass`, when the instance serves every request unchanged.
#[no_mangle]
pub extern "C" fn _initialize() {
    // SAFETY: the WASI reactor contract: run static constructors once before anything else.
    #[cfg(target_os = "wasi")]
    unsafe {
        __wasm_call_ctors()
    };
    seed_contexts();
    let mut config = Vec::new();
    let options = abi::config(&mut config);
    match traefik_options(options) {
        Ok(TraefikOptions {
            policy: Ok(policy), ..
        }) => load(policy, &policy_text(options)),
        Ok(TraefikOptions {
            on_invalid_policy: OnInvalidPolicy::Pass,
            policy: Err(err),
        }) => {
            abi::write_log(
                LogLevel::Error,
                &format!(
                    "secure-headers: {err}; on_invalid_policy is pass: serving every request unchanged, \
                     without the plugin's security headers"
                ),
            );
            PASSING.with(|p| *p.borrow_mut() = Some(PassThroughNotice::default()));
        }
        Ok(TraefikOptions {
            policy: Err(err), ..
        })
        | Err(err) => {
            abi::write_log(LogLevel::Error, &format!("secure-headers: {err}"));
            std::process::abort();
        }
    }
}

fn load(policy: Policy, text: &[u8]) {
    abi::write_log(
        LogLevel::Info,
        &format!(
            "secure-headers: policy loaded ({} rule(s)), {}{}",
            policy.rules.len(),
            load_identity(text),
            linear_memory()
        ),
    );
    abi::write_log(
        LogLevel::Info,
        &format!("secure-headers: {}", policy.companion(&[]).advice()),
    );
    let telemetry = Telemetry::for_policy(&policy, |_| ());
    TELEMETRY.with(|t| *t.borrow_mut() = Some(telemetry));
    POLICY.with(|p| *p.borrow_mut() = Some(policy));
}

/// The instance's linear memory once the policy is compiled: what each of Traefik's pooled instances reserves
/// (Traefik keeps one pool per router), so an operator and the scale bench can read it from the log.
fn linear_memory() -> String {
    #[cfg(target_arch = "wasm32")]
    {
        const PAGE_KIB: usize = 64;
        format!(
            ", linear memory {} KiB after configure",
            core::arch::wasm32::memory_size::<0>().saturating_mul(PAGE_KIB)
        )
    }
    #[cfg(not(target_arch = "wasm32"))]
    String::new()
}

/// A request an unprotected instance lets through: counted, and said once a minute.
fn note_pass_through() {
    PASSING.with(|p| {
        if let Ok(mut passing) = p.try_borrow_mut() {
            if let Some(line) = passing.as_mut().and_then(|n| n.count(Instant::now())) {
                abi::write_log(LogLevel::Warn, &line);
            }
        }
    });
}

#[no_mangle]
pub extern "C" fn handle_request() -> i64 {
    POLICY.with(|p| {
        let policy = p.borrow();
        let next = RequestOutcome {
            call_next: true,
            context: 0,
        };
        let Some(policy) = policy.as_ref() else {
            note_pass_through();
            return next.packed();
        };
        with_read_buffers(|buffers| {
            let (mut request, mut response) = buffers.views();
            #[cfg(feature = "trap-test")]
            secure_headers::trap_test::trap_if_asked(
                request
                    .header(secure_headers::trap_test::TRAP_HEADER)
                    .is_some(),
            );
            if let Some(collector) = &policy.report_collector {
                let (_, path) = request.host_and_path();
                if path.is_some_and(|p| collector.handles(p)) {
                    answer_report(collector, &mut request);
                    return RequestOutcome {
                        call_next: false,
                        context: 0,
                    }
                    .packed();
                }
            }
            let facts = policy.inspect_request(&mut request);
            match policy.delivery(&facts, &mut request) {
                Delivery::Held => {
                    abi::buffer_response();
                    if policy.wants_document_body(&facts) {
                        // Scripts are hashed over the bytes as sent: ask for them uncompressed, and in full.
                        DOCUMENT_REQUEST_EDITS.apply(
                            &mut (),
                            |_, name, value| abi::set_header(HeaderKind::Request, name, value),
                            |_, name| abi::delete_header(HeaderKind::Request, name),
                        );
                    }
                    RequestOutcome {
                        call_next: true,
                        context: remember_held(facts),
                    }
                    .packed()
                }
                Delivery::Streamed => {
                    // An observing rule writes nothing here and cannot read the response later: Traefik lets a
                    // plugin read response headers only when it buffered the response (it panics otherwise).
                    policy.apply_before_upstream(&facts, &mut response);
                    next.packed()
                }
                Delivery::Untouched => next.packed(),
            }
        })
    })
}

#[no_mangle]
pub extern "C" fn handle_response(req_ctx: i32, is_error: i32) {
    // Context 0: not held (streamed, untouched or answered here).
    let context = req_ctx as u32;
    if context == 0 {
        return;
    }
    POLICY.with(|p| {
        if let Some(policy) = p.borrow().as_ref() {
            with_read_buffers(|buffers| {
                let (mut request, mut response) = buffers.views();
                let facts = held_facts(policy, context, &mut request);
                if is_error != 0 {
                    return;
                }
                with_metrics(|metrics, _| {
                    if policy.wants_response_body(&facts, &mut response) {
                        // Reading the buffered body consumes it: it is written back unchanged.
                        let body = abi::read_whole_body(BodyKind::Response, usize::MAX);
                        policy.apply_document(&facts, &mut response, &body, metrics);
                        abi::write_whole_body(BodyKind::Response, &body);
                    } else {
                        policy.apply_response(&facts, &mut response, metrics);
                    }
                });
            });
        }
    });
}

/// Reads the report (at most one byte over the collector's cap) and answers it; the upstream never sees it.
fn answer_report(collector: &ReportCollector, request: &mut TraefikRequest) {
    let method = request.method().map(<[u8]>::to_vec);
    let content_type = request.header("content-type").map(<[u8]>::to_vec);
    let content_length = request.header("content-length").map(<[u8]>::to_vec);
    let (_, path) = request.host_and_path();
    let admission = collector.admit(
        path,
        method.as_deref(),
        content_type.as_deref(),
        content_length.as_deref(),
    );
    let mut outcome = Err(Rejection::Malformed);
    with_metrics(|metrics, origins| {
        outcome = match admission {
            Admission::Reject(rejection) => {
                metrics.increment(rejection.counter());
                Err(rejection)
            }
            Admission::ReadBody | Admission::Pass => {
                let body = abi::read_whole_body(
                    BodyKind::Request,
                    collector.max_body_bytes.saturating_add(1),
                );
                let mut log =
                    |line: &str| abi::write_log(LogLevel::Info, &format!("secure-headers: {line}"));
                collector
                    .collect(&body, origins, metrics, &mut log)
                    .map(|_| ())
            }
        };
    });
    reply(outcome);
}

fn reply(outcome: Result<(), Rejection>) {
    let reply = CollectorReply::new(outcome);
    for (name, value) in reply.headers {
        abi::set_header(HeaderKind::Response, name, value);
    }
    abi::set_status(reply.status);
    abi::write_whole_body(BodyKind::Response, reply.body.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::mock_host::{with_host, MockHost};

    const POLICY: &str = r#"{"policy": "{\"presets\": [\"immich\"], \"csp_reports\": {}}"}"#;

    fn request(host: &mut MockHost, method: &str, uri: &str, headers: &[(&str, &str)]) {
        host.config = POLICY.as_bytes().to_vec();
        host.method = method.as_bytes().to_vec();
        host.uri = uri.as_bytes().to_vec();
        host.headers[0] = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
            .collect();
    }

    #[test]
    fn a_page_is_held_and_a_range_request_streams() {
        let (outcome, host) = with_host(
            |host| request(host, "GET", "/", &[("host", "photos.example")]),
            || {
                _initialize();
                handle_request()
            },
        );
        assert_eq!(outcome & 1, 1, "the next handler is called");
        assert_ne!(outcome >> 32, 0, "with a context for handle_response");
        assert_ne!(host.features, 0, "the response is buffered");
        assert!(host
            .logs
            .iter()
            .any(|(_, line)| line.contains("policy loaded")));

        let (outcome, host) = with_host(
            |host| request(host, "GET", "/video.mp4", &[("range", "bytes=0-")]),
            || {
                _initialize();
                handle_request()
            },
        );
        assert_eq!(outcome, 1, "next handler, no context");
        assert_eq!(host.features, 0);
        assert!(
            host.headers[1]
                .iter()
                .any(|(n, _)| n == "x-content-type-options"),
            "written before the upstream answers: {:?}",
            host.headers[1]
        );
    }

    #[test]
    fn an_invalid_policy_under_pass_serves_unchanged_and_says_so() {
        let (outcomes, host) = with_host(
            |host| {
                request(host, "GET", "/", &[("host", "photos.example")]);
                host.config =
                    br#"{"on_invalid_policy": "pass", "hsts": {"max_age": "soon"}}"#.to_vec();
            },
            || {
                _initialize();
                [handle_request(), handle_request()]
            },
        );
        assert_eq!(outcomes, [1, 1], "next handler, no context, nothing held");
        assert_eq!(host.features, 0);
        assert!(host.headers[1].is_empty(), "{:?}", host.headers[1]);
        let lines = |level: LogLevel| -> Vec<&str> {
            host.logs
                .iter()
                .filter(|(l, _)| *l == level as i32)
                .map(|(_, line)| line.as_str())
                .collect()
        };
        let errors = lines(LogLevel::Error);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0].contains("invalid policy at hsts.max_age")
                && errors[0].contains("on_invalid_policy is pass"),
            "{errors:?}"
        );
        let notices = lines(LogLevel::Warn);
        assert_eq!(
            notices.len(),
            1,
            "the second request is within the minute: {notices:?}"
        );
        assert!(notices[0].contains("1 response(s) went out without the plugin's security headers"));
    }

    #[test]
    fn the_collector_answers_with_the_engines_reply() {
        let (outcome, host) = with_host(
            |host| request(host, "GET", "/.well-known/csp-report", &[]),
            || {
                _initialize();
                handle_request()
            },
        );
        assert_eq!(outcome, 0, "answered: the upstream is not called");
        let expected = CollectorReply::new(Err(Rejection::Method));
        assert_eq!(host.status, i32::from(expected.status));
        assert_eq!(host.written_bodies[1], expected.body.as_bytes());
        let headers: Vec<(&str, &str)> = host.headers[1]
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        assert_eq!(headers, expected.headers);
    }

    /// The immich page as the benchmark's upstream sends it.
    fn immich_page(host: &mut MockHost) {
        request(
            host,
            "GET",
            "/",
            &[("host", "photos.example"), ("x-forwarded-proto", "https")],
        );
        host.status = 200;
        host.headers[1] = [
            ("content-type", "text/html; charset=utf-8"),
            ("cache-control", "no-store"),
            ("x-powered-by", "Express"),
        ]
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .to_vec();
    }

    /// The held path's host calls for the immich preset: the request is read once, in `handle_request`
    /// (bench/run.py's Traefik call floor makes these same calls).
    #[test]
    fn a_held_response_reads_the_request_once() {
        let ((), host) = with_host(immich_page, || {
            _initialize();
            let context = (handle_request() >> 32) as i32;
            handle_response(context, 0);
        });
        let request_reads = [
            "get_header_values 0 host",
            "get_uri",
            "get_header_values 0 x-forwarded-proto",
            "get_header_values 0 upgrade",
            "get_header_values 0 range",
            "get_method",
            "get_header_values 0 sec-fetch-dest",
            "enable_features 2",
        ];
        let response_calls = [
            "get_status_code",
            "get_header_values 1 content-type",
            "get_header_values 1 cache-control",
            "remove_header 1 x-powered-by",
            "remove_header 1 server",
            "remove_header 1 x-envoy-upstream-service-time",
            "set_header_value 1 x-content-type-options",
            "set_header_value 1 strict-transport-security",
            "get_header_values 1 content-security-policy",
            "set_header_value 1 content-security-policy",
            "set_header_value 1 x-frame-options",
            "set_header_value 1 referrer-policy",
            "set_header_value 1 permissions-policy",
            "set_header_value 1 cross-origin-resource-policy",
            "set_header_value 1 x-xss-protection",
        ];
        assert_eq!(host.calls, [&request_reads[..], &response_calls].concat());
    }

    /// A response whose request this instance did not see (context unknown here) reads the request again.
    #[test]
    fn a_response_without_kept_facts_reads_the_request_again() {
        let ((), host) = with_host(immich_page, || {
            _initialize();
            handle_response(7, 0);
        });
        assert_eq!(
            host.calls.first().map(String::as_str),
            Some("get_header_values 0 host")
        );
        assert!(host.headers[1]
            .iter()
            .any(|(n, _)| n == "content-security-policy"));
    }

    /// Two pooled instances, as two threads (each has its own statics). B holds request Y's facts, waiting for
    /// Y's response, when the host hands B the response of request X, whose request went to A. When every
    /// instance counted its contexts from 1, X's context matched the one B kept and X got Y's rule.
    #[test]
    fn a_response_handed_to_another_instance_gets_its_own_requests_rule() {
        const TWO_HOSTS: &str = r#"{"policy": "{\"rules\": [{\"match\": {\"hosts\": [\"a.example\"]}, \"headers\": {\"x-rule\": {\"value\": \"a\"}}}, {\"match\": {\"hosts\": [\"b.example\"]}, \"headers\": {\"x-rule\": {\"value\": \"b\"}}}]}"}"#;
        let held = |host_name: &'static str| {
            move |host: &mut MockHost| {
                request(host, "GET", "/", &[("host", host_name)]);
                host.config = TWO_HOSTS.as_bytes().to_vec();
                host.status = 200;
            }
        };
        let request_x = std::thread::spawn(move || {
            with_host(held("a.example"), || {
                _initialize();
                (handle_request() >> 32) as i32
            })
            .0
        });
        let context_x = request_x.join().expect("instance A");
        let instance_b = std::thread::spawn(move || {
            with_host(held("b.example"), || {
                _initialize();
                handle_request()
            });
            with_host(held("a.example"), || handle_response(context_x, 0)).1
        });
        let host = instance_b.join().expect("instance B");
        let rule: Vec<&str> = host.headers[1]
            .iter()
            .filter(|(name, _)| name == "x-rule")
            .map(|(_, value)| value.as_str())
            .collect();
        assert_eq!(rule, ["a"], "X's response: {:?}", host.headers[1]);
    }
}
