//! The http-wasm adapter (Traefik v3 plugins): the policy is read when the module is instantiated; each
//! request is either streamed (headers written before the upstream answers) or held (full policy on the
//! complete response), as `delivery.rs` decides; requests to the CSP report collector are answered here.
//! Reads go into one reused buffer. http-wasm has no metrics ABI: counters are logged when they reach 1, 2,
//! 4, 8... (per plugin instance; Traefik pools instances).

use crate::delivery::Delivery;
use crate::host::{RequestView, ResponseHeaders};
use crate::identity::load_identity;
use crate::inline_hashing::VALIDATORS;
use crate::metrics::{CounterBook, Metrics};
use crate::policy::Policy;
use crate::report_collector::{Admission, OriginBook, Rejection, ReportCollector};
use crate::traefik_options::{policy_from_options, policy_text};
use std::cell::RefCell;

#[link(wasm_import_module = "http_handler")]
extern "C" {
    fn enable_features(features: i32) -> i32;
    fn get_config(buf: *mut u8, buf_limit: i32) -> i32;
    fn log(level: i32, message: *const u8, message_len: i32);
    fn get_method(buf: *mut u8, buf_limit: i32) -> i32;
    fn get_uri(buf: *mut u8, buf_limit: i32) -> i32;
    fn get_header_values(
        kind: i32,
        name: *const u8,
        name_len: i32,
        buf: *mut u8,
        buf_limit: i32,
    ) -> i64;
    fn set_header_value(
        kind: i32,
        name: *const u8,
        name_len: i32,
        value: *const u8,
        value_len: i32,
    );
    fn add_header_value(
        kind: i32,
        name: *const u8,
        name_len: i32,
        value: *const u8,
        value_len: i32,
    );
    fn remove_header(kind: i32, name: *const u8, name_len: i32);
    fn get_status_code() -> i32;
    fn set_status_code(code: i32);
    fn read_body(kind: i32, buf: *mut u8, buf_limit: i32) -> i64;
    fn write_body(kind: i32, buf: *const u8, buf_len: i32);
}

#[cfg(target_os = "wasi")]
extern "C" {
    fn __wasm_call_ctors();
}

const REQUEST: i32 = 0;
const RESPONSE: i32 = 1;
const FEATURE_BUFFER_RESPONSE: i32 = 2;
const LOG_INFO: i32 = 0;
const LOG_ERROR: i32 = 2;
/// The request context handed back to `handle_response`: the response was held (full policy).
const HELD: i64 = 1;
/// `handle_request`'s answer: call the next handler (the upstream) or not (the filter answered).
const NEXT: i64 = 1;
const ANSWERED: i64 = 0;
/// Reads start with this buffer and grow it only for a larger value (a 64 KiB URI, say).
const INITIAL_BUFFER: usize = 2048;

thread_local! {
    static POLICY: RefCell<Option<Policy>> = const { RefCell::new(None) };
    static TELEMETRY: RefCell<Telemetry> = RefCell::new(Telemetry::default());
}

#[derive(Default)]
struct Telemetry {
    counters: CounterBook<()>,
    origins: OriginBook,
}

/// Counters as log lines at 1, 2, 4, 8...: a trace an operator can read in Traefik's log, in bounded volume.
struct LoggedMetrics<'a>(&'a mut CounterBook<()>);

impl Metrics for LoggedMetrics<'_> {
    fn increment(&mut self, name: &str) {
        if let Some(counter) = self.0.bump(name, |_| ()) {
            if counter.count.is_power_of_two() {
                write_log(
                    LOG_INFO,
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
            let Telemetry { counters, origins } = &mut *telemetry;
            f(&mut LoggedMetrics(counters), origins);
        }
    });
}

fn write_log(level: i32, message: &str) {
    let len = i32::try_from(message.len()).unwrap_or(i32::MAX);
    // SAFETY: the host reads `len` bytes from a live &str.
    unsafe { log(level, message.as_ptr(), len) }
}

/// Calls a host read function with the buffer, growing it once when the value is larger.
fn read_into(buf: &mut Vec<u8>, mut read: impl FnMut(*mut u8, i32) -> i64) -> usize {
    if buf.len() < INITIAL_BUFFER {
        buf.resize(INITIAL_BUFFER, 0);
    }
    let limit = |b: &Vec<u8>| i32::try_from(b.len()).unwrap_or(i32::MAX);
    let mut len = (read(buf.as_mut_ptr(), limit(buf)) & 0xffff_ffff) as usize;
    if len > buf.len() {
        buf.resize(len, 0);
        len = (read(buf.as_mut_ptr(), limit(buf)) & 0xffff_ffff) as usize;
    }
    len.min(buf.len())
}

/// Module start: read and compile the policy. A bad policy is logged with its field path and the
/// instance traps, so Traefik refuses to build the middleware instead of serving with a half-read policy.
#[no_mangle]
pub extern "C" fn _initialize() {
    // SAFETY: the WASI reactor contract: run static constructors once before anything else.
    #[cfg(target_os = "wasi")]
    unsafe {
        __wasm_call_ctors()
    };
    let mut config = Vec::new();
    // SAFETY: the host writes at most `limit` bytes into the buffer.
    let len = read_into(&mut config, |buf, limit| {
        i64::from(unsafe { get_config(buf, limit) })
    });
    let options = config.get(..len).unwrap_or_default();
    match policy_from_options(options) {
        Ok(policy) => {
            write_log(
                LOG_INFO,
                &format!(
                    "secure-headers: policy loaded ({} rule(s)), {}",
                    policy.rules.len(),
                    load_identity(&policy_text(options))
                ),
            );
            write_log(
                LOG_INFO,
                &format!("secure-headers: {}", policy.companion(&[]).advice()),
            );
            with_metrics(|metrics, _| {
                for name in policy.counter_names() {
                    metrics.0.register(name, |_| ());
                }
            });
            POLICY.with(|p| *p.borrow_mut() = Some(policy));
        }
        Err(err) => {
            write_log(LOG_ERROR, &format!("secure-headers: {err}"));
            std::process::abort();
        }
    }
}

#[no_mangle]
pub extern "C" fn handle_request() -> i64 {
    POLICY.with(|p| {
        let policy = p.borrow();
        let Some(policy) = policy.as_ref() else {
            return NEXT;
        };
        let mut request = TraefikRequest::default();
        #[cfg(feature = "trap-test")]
        crate::trap_test::trap_if_asked(request.header(crate::trap_test::TRAP_HEADER).is_some());
        if let Some(collector) = &policy.report_collector {
            let (_, path) = request.host_and_path();
            if path.is_some_and(|p| collector.handles(p)) {
                answer_report(collector, &mut request);
                return ANSWERED;
            }
        }
        let facts = policy.inspect_request(&mut request);
        match policy.delivery(&facts, &mut request) {
            Delivery::Held => {
                // SAFETY: a plain host call; it applies to this request only.
                unsafe { enable_features(FEATURE_BUFFER_RESPONSE) };
                if policy.wants_document_body(&facts) {
                    // Scripts are hashed over the bytes as sent: ask for them uncompressed, and in full.
                    let (name, value) = ("accept-encoding", "identity");
                    if let Some((n, v)) = name_value(name, value) {
                        // SAFETY: the host reads `n` and `v` bytes from live &strs.
                        unsafe { set_header_value(REQUEST, name.as_ptr(), n, value.as_ptr(), v) }
                    }
                    for name in VALIDATORS {
                        if let Ok(n) = i32::try_from(name.len()) {
                            // SAFETY: the host reads `n` bytes from a live &str.
                            unsafe { remove_header(REQUEST, name.as_ptr(), n) }
                        }
                    }
                }
                (HELD << 32) | NEXT
            }
            Delivery::Streamed => {
                // An observing rule writes nothing here and cannot read the response later: Traefik lets a
                // plugin read response headers only when it buffered the response (it panics otherwise).
                policy.apply_before_upstream(&facts, &mut TraefikResponse::default());
                NEXT
            }
            Delivery::Untouched => NEXT,
        }
    })
}

#[no_mangle]
pub extern "C" fn handle_response(req_ctx: i32, is_error: i32) {
    if i64::from(req_ctx) != HELD || is_error != 0 {
        return;
    }
    POLICY.with(|p| {
        if let Some(policy) = p.borrow().as_ref() {
            // The instance handling the response may not be the one that saw the request (the host pools
            // instances), so the request-side facts are read again rather than remembered.
            let facts = policy.inspect_request(&mut TraefikRequest::default());
            let mut response = TraefikResponse::default();
            with_metrics(|metrics, _| {
                if policy.wants_response_body(&facts, &mut response) {
                    // Reading the buffered body consumes it: it is written back unchanged.
                    let body = read_body_of(RESPONSE, usize::MAX);
                    policy.apply_document(&facts, &mut response, &body, metrics);
                    write_response_body(&body);
                } else {
                    policy.apply_response(&facts, &mut response, metrics);
                }
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
                let body = read_body_of(REQUEST, collector.max_body_bytes.saturating_add(1));
                let mut log = |line: &str| write_log(LOG_INFO, &format!("secure-headers: {line}"));
                collector
                    .collect(&body, origins, metrics, &mut log)
                    .map(|_| ())
            }
        };
    });
    reply(outcome);
}

/// The request or response body, at most `max` bytes of it, read in chunks of at most 64 KiB straight into
/// the vector's spare capacity (zero-filling 64 KiB per chunk first cost more than reading a 10 KiB page).
fn read_body_of(kind: i32, max: usize) -> Vec<u8> {
    const CHUNK: usize = 64 * 1024;
    let mut body: Vec<u8> = Vec::new();
    while body.len() < max {
        let len = body.len();
        body.reserve(CHUNK.min(max - len));
        let room = body.spare_capacity_mut();
        let room_len = room.len().min(max - len);
        let limit = i32::try_from(room_len).unwrap_or(i32::MAX);
        // SAFETY: the host writes at most `limit` bytes into the vector's spare capacity.
        let eof_len = unsafe { read_body(kind, room.as_mut_ptr().cast(), limit) };
        let read = ((eof_len & 0xffff_ffff) as usize).min(room_len);
        // SAFETY: the host initialised the first `read` bytes of the spare capacity.
        unsafe { body.set_len(len + read) };
        if eof_len >> 32 != 0 || read == 0 {
            break;
        }
    }
    body
}

fn write_response_body(body: &[u8]) {
    for chunk in body.chunks(1 << 20) {
        // SAFETY: the host copies `chunk` from a live slice.
        unsafe {
            write_body(
                RESPONSE,
                chunk.as_ptr(),
                i32::try_from(chunk.len()).unwrap_or(0),
            )
        }
    }
}

fn reply(outcome: Result<(), Rejection>) {
    let (status, message) = match outcome {
        Ok(()) => (204, ""),
        Err(rejection) => (rejection.status(), rejection.message()),
    };
    let mut response = TraefikResponse::default();
    if outcome == Err(Rejection::Method) {
        response.set("allow", "POST");
    }
    if !message.is_empty() {
        response.set("content-type", "text/plain");
    }
    // SAFETY: plain host calls; the host copies `message` from a live &str.
    unsafe {
        set_status_code(i32::from(status));
        write_body(
            RESPONSE,
            message.as_ptr(),
            i32::try_from(message.len()).unwrap_or(0),
        );
    }
}

/// First value of a header (values come NUL-separated); `buf` is the read buffer.
fn header_value<'a>(buf: &'a mut Vec<u8>, kind: i32, name: &str) -> Option<&'a [u8]> {
    let name_len = i32::try_from(name.len()).ok()?;
    let mut count = 0i64;
    let len = read_into(buf, |b, limit| {
        // SAFETY: the host reads `name_len` bytes of name and writes at most `limit` bytes into `b`.
        let count_len = unsafe { get_header_values(kind, name.as_ptr(), name_len, b, limit) };
        count = count_len >> 32;
        count_len
    });
    if count == 0 {
        return None;
    }
    let values = buf.get(..len)?;
    let end = values.iter().position(|b| *b == 0).unwrap_or(values.len());
    values.get(..end)
}

#[derive(Default)]
struct TraefikRequest {
    host: Vec<u8>,
    uri: Vec<u8>,
    scratch: Vec<u8>,
}

impl RequestView for TraefikRequest {
    fn host_and_path(&mut self) -> (Option<&[u8]>, Option<&[u8]>) {
        let host_len = header_value(&mut self.host, REQUEST, "host").map(<[u8]>::len);
        // SAFETY: the host writes at most `limit` bytes.
        let uri_len = read_into(&mut self.uri, |b, limit| {
            i64::from(unsafe { get_uri(b, limit) })
        });
        (
            host_len.and_then(|l| self.host.get(..l)),
            self.uri.get(..uri_len),
        )
    }

    fn method(&mut self) -> Option<&[u8]> {
        // SAFETY: the host writes at most `limit` bytes.
        let len = read_into(&mut self.scratch, |b, limit| {
            i64::from(unsafe { get_method(b, limit) })
        });
        self.scratch.get(..len)
    }

    /// Traefik's entry point sets X-Forwarded-Proto from the connection (unless it trusts the peer's own).
    fn scheme(&mut self) -> Option<&[u8]> {
        header_value(&mut self.scratch, REQUEST, "x-forwarded-proto")
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        header_value(&mut self.scratch, REQUEST, name)
    }
}

#[derive(Default)]
struct TraefikResponse {
    scratch: Vec<u8>,
}

fn name_value(name: &str, value: &str) -> Option<(i32, i32)> {
    Some((
        i32::try_from(name.len()).ok()?,
        i32::try_from(value.len()).ok()?,
    ))
}

impl ResponseHeaders for TraefikResponse {
    fn status(&mut self) -> Option<u16> {
        // SAFETY: a plain host call, valid in handle_response when the response is buffered.
        u16::try_from(unsafe { get_status_code() }).ok()
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        header_value(&mut self.scratch, RESPONSE, name)
    }

    fn set(&mut self, name: &str, value: &str) {
        if let Some((n, v)) = name_value(name, value) {
            // SAFETY: the host reads `n` and `v` bytes from live &strs.
            unsafe { set_header_value(RESPONSE, name.as_ptr(), n, value.as_ptr(), v) }
        }
    }

    fn append(&mut self, name: &str, value: &str) {
        if let Some((n, v)) = name_value(name, value) {
            // SAFETY: as in `set`.
            unsafe { add_header_value(RESPONSE, name.as_ptr(), n, value.as_ptr(), v) }
        }
    }

    fn remove(&mut self, name: &str) {
        if let Ok(n) = i32::try_from(name.len()) {
            // SAFETY: the host reads `n` bytes from a live &str.
            unsafe { remove_header(RESPONSE, name.as_ptr(), n) }
        }
    }
}
