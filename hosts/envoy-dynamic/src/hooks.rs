//! The event hooks Envoy calls (`envoy_dynamic_module_on_*`, declared in Envoy's `abi.h`), each a thin shell
//! around `filter.rs`. Every hook runs inside `guarded`: a panic is caught at the boundary (unwinding into
//! Envoy's C++ frames would abort the process), logged in one line, and the stream then passes untouched:
//! the same fail-open choice as the Wasm build's `failure_policy: FAIL_OPEN` (security headers are defence in
//! depth, not access control). A panic while reading the policy refuses it like a bad policy.

use crate::abi::{self, BodyStatus, ConfigEnvoyPtr, EnvoyBuffer, FilterEnvoyPtr, HeadersStatus};
use crate::abi::{LogLevel, TrailersStatus};
use crate::filter::{Loaded, Stream};
use crate::stream_pool;
use std::any::Any;
use std::ffi::{c_char, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// The ABI version this module was written against (`ENVOY_DYNAMIC_MODULES_ABI_VERSION` in Envoy 1.40's
/// `abi.h`); Envoy warns when its own differs.
const ABI_VERSION: &[u8] = b"v0.1.0\0";

/// In the alloc-count build, `body` with the heap allocations it makes added to the hook's counter; otherwise
/// just `body`.
macro_rules! measured {
    ($loaded:expr, $filter:expr, $hook:ident, $body:expr) => {{
        #[cfg(feature = "alloc-count")]
        let out =
            $loaded
                .allocations
                .measure($filter, crate::allocation_count::Hook::$hook, || $body);
        #[cfg(not(feature = "alloc-count"))]
        let out = $body;
        out
    }};
}

/// Runs one hook; a panic becomes a log line and `fallback`.
fn guarded<T>(hook: &str, fallback: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        abi::log(
            LogLevel::Error,
            &format!(
                "secure-headers: panic in {hook} ({}); this stream passes without the filter",
                panic_message(payload.as_ref())
            ),
        );
        fallback
    })
}

fn panic_message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("no message")
}

/// Runs one stream hook on the stream Envoy hands back; after a panic the stream's later hooks do nothing.
fn on_stream<T>(
    module: *const c_void,
    hook: &str,
    fallback: T,
    body: impl FnOnce(&mut Stream) -> T,
) -> T {
    // SAFETY: `module` is the pointer `envoy_dynamic_module_on_http_filter_new` returned for this stream, and
    // Envoy calls one stream's hooks on one worker thread, one at a time, until it destroys the filter.
    let Some(stream) = (unsafe { module.cast_mut().cast::<Stream>().as_mut() }) else {
        return fallback;
    };
    if stream.failed {
        return fallback;
    }
    let stream_ptr: *mut Stream = stream;
    guarded(hook, None, || Some(body(stream))).unwrap_or_else(|| {
        // SAFETY: the same live stream; the borrow the panicking hook held has ended.
        if let Some(stream) = unsafe { stream_ptr.as_mut() } {
            stream.failed = true;
        }
        fallback
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const c_char {
    ABI_VERSION.as_ptr().cast()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy: ConfigEnvoyPtr,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guarded("configure", std::ptr::null(), || {
        // SAFETY: Envoy's config bytes are valid for this call and are parsed (copied) within it.
        let json = unsafe { config.bytes() }.unwrap_or_default();
        match Loaded::configure(config_envoy, json) {
            Some(loaded) => Box::into_raw(Box::new(loaded)).cast_const().cast(),
            // Null: Envoy rejects the filter configuration, so the listener is refused.
            None => std::ptr::null(),
        }
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config_module: *const c_void) {
    guarded("config_destroy", (), || {
        if !config_module.is_null() {
            // SAFETY: the pointer `config_new` leaked; Envoy destroys it once, after every stream it served.
            drop(unsafe { Box::from_raw(config_module.cast_mut().cast::<Loaded>()) });
        }
    });
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config_module: *const c_void,
    _filter_envoy: FilterEnvoyPtr,
) -> *const c_void {
    guarded("filter_new", std::ptr::null(), || {
        // SAFETY: the configuration outlives every stream it creates (Envoy's filters hold it), so the
        // 'static borrow never outlives the box.
        match unsafe { config_module.cast::<Loaded>().as_ref() } {
            Some(loaded) => measured!(loaded, _filter_envoy, StreamNew, {
                stream_pool::take(Stream::new(loaded))
            })
            .cast_const()
            .cast(),
            None => std::ptr::null(),
        }
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
) -> HeadersStatus {
    on_stream(module, "request_headers", HeadersStatus::Continue, |s| {
        measured!(s.loaded, filter, RequestHeaders, {
            s.on_request_headers(filter, end_of_stream)
        })
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    filter: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
) -> BodyStatus {
    on_stream(module, "request_body", BodyStatus::Continue, |s| {
        s.on_request_body(filter, end_of_stream)
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _filter: FilterEnvoyPtr,
    _module: *const c_void,
) -> TrailersStatus {
    TrailersStatus::Continue
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    filter: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
) -> HeadersStatus {
    on_stream(module, "response_headers", HeadersStatus::Continue, |s| {
        measured!(s.loaded, filter, ResponseHeaders, {
            s.on_response_headers(filter, end_of_stream)
        })
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    filter: FilterEnvoyPtr,
    module: *const c_void,
    end_of_stream: bool,
) -> BodyStatus {
    on_stream(module, "response_body", BodyStatus::Continue, |s| {
        s.on_response_body(filter, end_of_stream)
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    filter: FilterEnvoyPtr,
    module: *const c_void,
) -> TrailersStatus {
    on_stream(module, "response_trailers", TrailersStatus::Continue, |s| {
        s.on_response_trailers(filter);
        TrailersStatus::Continue
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _filter: FilterEnvoyPtr,
    _module: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(module: *const c_void) {
    guarded("filter_destroy", (), || {
        stream_pool::give_back(module.cast_mut().cast())
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::abi::mock_host::{pairs, with_host, MockHost};

    fn configure(policy: &str) -> *const c_void {
        envoy_dynamic_module_on_http_filter_config_new(
            std::ptr::null_mut(),
            EnvoyBuffer::of(b"secure_headers"),
            EnvoyBuffer::of(policy.as_bytes()),
        )
    }

    /// One stream through every hook the header path uses; returns the request headers' status.
    fn stream(config: *const c_void, end_of_request: bool) -> HeadersStatus {
        let filter = std::ptr::null_mut();
        let module = envoy_dynamic_module_on_http_filter_new(config, filter);
        let status =
            envoy_dynamic_module_on_http_filter_request_headers(filter, module, end_of_request);
        if status == HeadersStatus::Continue {
            envoy_dynamic_module_on_http_filter_response_headers(filter, module, false);
            envoy_dynamic_module_on_http_filter_response_body(filter, module, true);
        }
        envoy_dynamic_module_on_http_filter_stream_complete(filter, module);
        envoy_dynamic_module_on_http_filter_destroy(module);
        status
    }

    fn page_request(host: &mut MockHost) {
        host.request_headers = pairs(&[
            (":authority", "photos.example"),
            (":path", "/"),
            (":method", "GET"),
            (":scheme", "https"),
        ]);
        host.response_headers = pairs(&[
            (":status", "200"),
            ("content-type", "text/html"),
            ("x-powered-by", "Express"),
        ]);
    }

    #[test]
    fn a_preset_writes_its_headers_and_removes_the_leaks() {
        let ((), host) = with_host(page_request, || {
            let config = configure(r#"{"presets": ["immich"]}"#);
            assert!(!config.is_null());
            for _ in 0..3 {
                assert_eq!(stream(config, true), HeadersStatus::Continue);
            }
            envoy_dynamic_module_on_http_filter_config_destroy(config);
        });
        let names: Vec<&str> = host
            .response_headers
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert!(names.contains(&"strict-transport-security"), "{names:?}");
        assert!(names.contains(&"content-security-policy"), "{names:?}");
        assert!(!names.contains(&"x-powered-by"), "{names:?}");
        assert!(host
            .logs
            .iter()
            .any(|(_, l)| l.contains("policy loaded (1 rule(s)")));
    }

    #[test]
    fn a_bad_policy_is_refused_in_one_line_naming_its_field() {
        let (config, host) = with_host(
            |_| {},
            || configure(r#"{"rules": [{"hsts": {"max_age": "x"}}]}"#),
        );
        assert!(config.is_null(), "Envoy rejects the filter config");
        assert_eq!(host.logs.len(), 1);
        let (level, line) = &host.logs[0];
        assert_eq!(*level, LogLevel::Error as u32);
        assert!(line.contains("rules[0]"), "{line}");
    }

    #[test]
    fn observe_mode_counts_in_envoys_counters_and_writes_nothing() {
        let ((), host) = with_host(page_request, || {
            let config = configure(r#"{"presets": ["immich"], "mode": "observe"}"#);
            stream(config, true);
            envoy_dynamic_module_on_http_filter_config_destroy(config);
        });
        assert!(host
            .counters
            .iter()
            .all(|c| c.starts_with("secure_headers.")));
        assert!(!host.increments.is_empty(), "counted: {:?}", host.counters);
        assert_eq!(
            host.response_headers.len(),
            3,
            "unchanged: {:?}",
            host.response_headers
        );
    }

    #[test]
    fn the_collector_holds_the_report_and_answers_it() {
        let ((status, body_status), host) = with_host(
            |host| {
                host.request_headers = pairs(&[
                    (":authority", "photos.example"),
                    (":path", "/.well-known/csp-report"),
                    (":method", "POST"),
                    ("content-type", "application/csp-report"),
                ]);
                host.received_request_body = vec![br#"{"csp-report": {"blocked-uri": "https://evil.example/x.js", "effective-directive": "script-src"}}"#.to_vec()];
            },
            || {
                let config = configure(r#"{"presets": ["immich"], "csp_reports": {}}"#);
                let filter = std::ptr::null_mut();
                let module = envoy_dynamic_module_on_http_filter_new(config, filter);
                let status =
                    envoy_dynamic_module_on_http_filter_request_headers(filter, module, false);
                let body_status =
                    envoy_dynamic_module_on_http_filter_request_body(filter, module, true);
                envoy_dynamic_module_on_http_filter_destroy(module);
                envoy_dynamic_module_on_http_filter_config_destroy(config);
                (status, body_status)
            },
        );
        assert_eq!(
            status,
            HeadersStatus::StopIteration,
            "the upstream never sees a report"
        );
        assert_eq!(body_status, BodyStatus::StopIterationNoBuffer);
        let (code, _, _, details) = host.reply.unwrap();
        assert_eq!((code, details.as_str()), (204, "secure_headers_csp_report"));
    }

    #[test]
    fn a_panic_is_caught_logged_and_answered_with_the_fallback() {
        let (status, host) = with_host(
            |_| {},
            || guarded("request_headers", 7, || -> i32 { panic!("boom") }),
        );
        assert_eq!(status, 7);
        assert_eq!(host.logs.len(), 1);
        assert!(
            host.logs[0].1.contains("panic in request_headers (boom)"),
            "{:?}",
            host.logs
        );
    }

    #[test]
    fn after_a_panic_the_stream_passes_untouched() {
        let ((), host) = with_host(page_request, || {
            let config = configure(r#"{"presets": ["immich"]}"#);
            let filter = std::ptr::null_mut();
            let module = envoy_dynamic_module_on_http_filter_new(config, filter);
            let status = on_stream(
                module,
                "request_headers",
                HeadersStatus::Continue,
                |_| -> HeadersStatus { panic!("inside the engine") },
            );
            assert_eq!(status, HeadersStatus::Continue);
            envoy_dynamic_module_on_http_filter_response_headers(filter, module, true);
            envoy_dynamic_module_on_http_filter_destroy(module);
            envoy_dynamic_module_on_http_filter_config_destroy(config);
        });
        assert_eq!(
            host.response_headers.len(),
            3,
            "{:?}",
            host.response_headers
        );
    }
}
