//! What one filter configuration keeps (the policy, the counters its streams share) and what each stream
//! does at each phase, with the engine deciding everything. One configuration serves every worker thread, so
//! the counters sit behind a mutex that is taken only when something is counted (observe mode, the collector,
//! hashed documents), never to write headers. The request-side facts are decided while the request headers
//! pass and kept in the stream. A document whose inline scripts a rule hashes is held in-stream: Envoy keeps
//! the response headers writable while the filter buffers the body (StopIteration), so the CSP is written
//! from the complete body, as in Traefik.

use crate::abi::{self, BodyStatus, ConfigEnvoyPtr, FilterEnvoyPtr, HeadersStatus, LogLevel};
use crate::exchange::{NativeRequest, NativeResponse};
use secure_headers::{
    load_identity, Admission, CollectorReply, CounterBook, Delivery, DocumentHold, Fallback,
    HoldLimits, Metrics, Policy, Rejection, RequestFacts, Telemetry, DOCUMENT_REQUEST_EDITS,
};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

/// Envoy's name for the collector's replies (%RESPONSE_CODE_DETAILS% in the access log).
const COLLECTOR_REPLY_DETAILS: &str = "secure_headers_csp_report";

/// One filter configuration: the policy and the counters of every stream it serves.
pub struct Loaded {
    policy: Policy,
    telemetry: Mutex<Telemetry<Option<usize>>>,
    #[cfg(feature = "alloc-count")]
    pub allocations: crate::allocation_count::AllocationCounters,
}

impl Loaded {
    /// Reads the policy; a bad one is logged in one line naming its field, and Envoy refuses the listener.
    pub fn configure(config: ConfigEnvoyPtr, json: &[u8]) -> Option<Loaded> {
        let started = Instant::now();
        match Policy::parse(json) {
            Ok(policy) => {
                abi::log(
                    LogLevel::Info,
                    &format!(
                        "secure-headers: policy loaded ({} rule(s), {:.3} ms), {}",
                        policy.rules.len(),
                        started.elapsed().as_secs_f64() * 1000.0,
                        load_identity(json)
                    ),
                );
                let telemetry = Telemetry::for_policy(&policy, |name| {
                    abi::define_counter(config, &format!("secure_headers.{name}"))
                });
                Some(Loaded {
                    policy,
                    telemetry: Mutex::new(telemetry),
                    #[cfg(feature = "alloc-count")]
                    allocations: crate::allocation_count::AllocationCounters::define(config),
                })
            }
            Err(err) => {
                abi::log(LogLevel::Error, &format!("secure-headers: {err}"));
                None
            }
        }
    }

    /// The counters; a panic while they were held left them consistent (a count is one add), so a poisoned
    /// lock is used as it stands.
    fn telemetry(&self) -> MutexGuard<'_, Telemetry<Option<usize>>> {
        self.telemetry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Adds one to `name` in `book` and in Envoy's counter; the first of each is logged at debug level. Names
/// that were not registered at configure time (the collector's blocked origins) are counted in the book only:
/// Envoy defines counters on the main thread.
fn count(filter: FilterEnvoyPtr, book: &mut CounterBook<Option<usize>>, name: &str) {
    let Some(counter) = book.bump(name, |_| None) else {
        return;
    };
    if let Some(id) = counter.id {
        abi::increment_counter(filter, id);
    }
    if counter.count == 1 && abi::log_enabled(LogLevel::Debug) {
        abi::log(LogLevel::Debug, &format!("secure-headers: first {name}"));
    }
}

/// Counting from the header path: the lock is taken only when the engine counts something.
struct SharedCounters<'a> {
    filter: FilterEnvoyPtr,
    loaded: &'a Loaded,
}

impl Metrics for SharedCounters<'_> {
    fn increment(&mut self, name: &str) {
        count(self.filter, &mut self.loaded.telemetry().counters, name);
    }
}

/// Counting while the lock is already held (the collector, which also updates the blocked origins).
struct HeldCounters<'a> {
    filter: FilterEnvoyPtr,
    book: &'a mut CounterBook<Option<usize>>,
}

impl Metrics for HeldCounters<'_> {
    fn increment(&mut self, name: &str) {
        count(self.filter, self.book, name);
    }
}

/// One stream's state between its hooks.
pub struct Stream {
    pub loaded: &'static Loaded,
    /// None when the filter never saw the request (a reply made before it ran).
    facts: Option<RequestFacts>,
    /// The request is a CSP report whose body is being read.
    collecting: bool,
    /// A rule may hash this response's inline scripts (the request asked for the document in full).
    document_possible: bool,
    /// The response headers are held while the document's body is buffered, at most this many bytes of it.
    holding_document: Option<usize>,
    /// A hook of this stream panicked: the rest of the stream passes untouched.
    pub failed: bool,
}

impl Stream {
    pub fn new(loaded: &'static Loaded) -> Self {
        Stream {
            loaded,
            facts: None,
            collecting: false,
            document_possible: false,
            holding_document: None,
            failed: false,
        }
    }

    fn policy(&self) -> &Policy {
        &self.loaded.policy
    }

    fn counters(&self, filter: FilterEnvoyPtr) -> SharedCounters<'static> {
        SharedCounters {
            filter,
            loaded: self.loaded,
        }
    }

    fn reject(&self, filter: FilterEnvoyPtr, rejection: Rejection) {
        self.counters(filter).increment(rejection.counter());
        reply(filter, Err(rejection));
    }

    pub fn on_request_headers(
        &mut self,
        filter: FilterEnvoyPtr,
        end_of_stream: bool,
    ) -> HeadersStatus {
        let mut request = NativeRequest::new(filter);
        #[cfg(feature = "trap-test")]
        crate::trap::panic_if_asked(&request);
        if let Some(collector) = &self.policy().report_collector {
            let admission = collector.admit(
                request.get(":path"),
                request.get(":method"),
                request.get("content-type"),
                request.get("content-length"),
            );
            match admission {
                Admission::Pass => {}
                Admission::Reject(rejection) => {
                    self.reject(filter, rejection);
                    return HeadersStatus::StopIteration;
                }
                Admission::ReadBody if end_of_stream => {
                    self.reject(filter, Rejection::Malformed);
                    return HeadersStatus::StopIteration;
                }
                Admission::ReadBody => {
                    // The headers wait here with the body: the upstream never sees any of a report.
                    self.collecting = true;
                    return HeadersStatus::StopIteration;
                }
            }
        }
        let policy = &self.loaded.policy;
        let facts = policy.inspect_request(&mut request);
        self.facts = Some(facts);
        if policy.wants_document_body(&facts)
            && policy.delivery(&facts, &mut request) == Delivery::Held
        {
            // Scripts are hashed over the bytes as sent: ask for them uncompressed, and in full.
            self.document_possible = true;
            DOCUMENT_REQUEST_EDITS.apply(
                &mut request,
                |request, name, value| request.set(name, value),
                |request, name| request.remove(name),
            );
        }
        HeadersStatus::Continue
    }

    pub fn on_request_body(&mut self, filter: FilterEnvoyPtr, end_of_stream: bool) -> BodyStatus {
        let loaded = self.loaded;
        let Some(collector) = loaded
            .policy
            .report_collector
            .as_ref()
            .filter(|_| self.collecting)
        else {
            return BodyStatus::Continue;
        };
        if abi::whole_body_size(filter, true) > collector.max_body_bytes {
            self.collecting = false;
            self.reject(filter, Rejection::TooLarge);
            return BodyStatus::StopIterationNoBuffer;
        }
        if !end_of_stream {
            return BodyStatus::StopIterationAndBuffer;
        }
        self.collecting = false;
        let body = abi::whole_body(filter, true);
        let outcome = {
            let mut telemetry = loaded.telemetry();
            let Telemetry { counters, origins } = &mut *telemetry;
            let mut metrics = HeldCounters {
                filter,
                book: counters,
            };
            collector.collect(&body, origins, &mut metrics, &mut |line| {
                abi::log(LogLevel::Info, &format!("secure-headers: {line}"))
            })
        };
        reply(filter, outcome.map(|_| ()));
        BodyStatus::StopIterationNoBuffer
    }

    fn facts(&self) -> RequestFacts {
        self.facts
            .unwrap_or_else(|| self.loaded.policy.facts_without_request())
    }

    pub fn on_response_headers(
        &mut self,
        filter: FilterEnvoyPtr,
        end_of_stream: bool,
    ) -> HeadersStatus {
        let facts = self.facts();
        let mut response = NativeResponse::new(filter);
        let policy = &self.loaded.policy;
        let hold = if self.document_possible && !end_of_stream {
            policy.document_hold(&facts, &mut response, HoldLimits::ENVOY)
        } else {
            DocumentHold::No
        };
        match hold {
            DocumentHold::Read { max_bytes } => {
                self.holding_document = Some(max_bytes);
                return HeadersStatus::StopIteration;
            }
            DocumentHold::Unhashed(fallback) => {
                policy.apply_unhashed_document(
                    &facts,
                    &mut response,
                    fallback,
                    &mut self.counters(filter),
                );
            }
            DocumentHold::No => {
                policy.apply_response(&facts, &mut response, &mut self.counters(filter));
            }
        }
        HeadersStatus::Continue
    }

    pub fn on_response_body(&mut self, filter: FilterEnvoyPtr, end_of_stream: bool) -> BodyStatus {
        let Some(max_bytes) = self.holding_document else {
            return BodyStatus::Continue;
        };
        if abi::whole_body_size(filter, false) > max_bytes {
            // Past the cap (or what Envoy's buffer limit allows): the document goes on now, with the static CSP.
            self.holding_document = None;
            let facts = self.facts();
            self.loaded.policy.apply_unhashed_document(
                &facts,
                &mut NativeResponse::new(filter),
                Fallback::TooLarge,
                &mut self.counters(filter),
            );
            return BodyStatus::Continue;
        }
        if !end_of_stream {
            return BodyStatus::StopIterationAndBuffer;
        }
        self.finish_document(filter);
        BodyStatus::Continue
    }

    /// Trailers end a held document whose last body chunk was not marked as the end.
    pub fn on_response_trailers(&mut self, filter: FilterEnvoyPtr) {
        if self.holding_document.is_some() {
            self.finish_document(filter);
        }
    }

    fn finish_document(&mut self, filter: FilterEnvoyPtr) {
        self.holding_document = None;
        let body = abi::whole_body(filter, false);
        let facts = self.facts();
        self.loaded.policy.apply_document(
            &facts,
            &mut NativeResponse::new(filter),
            &body,
            &mut self.counters(filter),
        );
    }
}

fn reply(filter: FilterEnvoyPtr, outcome: Result<(), Rejection>) {
    let reply = CollectorReply::new(outcome);
    abi::send_response(
        filter,
        reply.status,
        reply.headers,
        reply.body.as_bytes(),
        COLLECTOR_REPLY_DETAILS,
    );
}
