//! A complete HTML document under a rule with `inline_script_hashes`: its response gets the policy, then a CSP
//! that allows exactly the inline scripts in its body (which is never changed), or the static CSP and the
//! reason it fell back. A host that reads the body while it holds the response headers (Envoy in-stream) first
//! asks `document_hold` whether the body is worth holding at all, and how much of it.

use crate::config::policy::Policy;
use crate::config::rule::{Rule, WriteMode};
use crate::decision::header_writes::{apply_response, matching_rule};
use crate::decision::request_facts::RequestFacts;
use crate::host::ResponseHeaders;
use crate::http_bytes::{media_type, same_ignoring_ascii_case};
use crate::inline_script_hashes::hashed_csp::{
    Fallback, InlineScriptHashes, DOCUMENTS_HASHED, SCRIPTS_HASHED,
};
use crate::telemetry::Metrics;

/// The most body a host can hold: with a Content-Length the body can never grow past it; without one (chunked),
/// a host whose buffer has a hard limit must stop holding well before it, since the next read may be large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldLimits {
    pub declared_length: usize,
    pub unknown_length: usize,
}

impl HoldLimits {
    /// Envoy (both of its adapters): Envoy answers 500 itself when a held body passes the stream's buffer limit
    /// (the listener's `per_connection_buffer_limit_bytes`, 1 MiB by default), and it checks each read against
    /// it before the filter sees that read. A declared length is held up to 64 KiB short of the default limit; a
    /// chunked body only up to a quarter of it, so that a read of up to 768 KiB still fits.
    pub const ENVOY: HoldLimits = HoldLimits {
        declared_length: (1 << 20) - (64 << 10),
        unknown_length: 256 << 10,
    };
}

/// What a host that holds the response headers while it reads the body does with one response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentHold {
    /// Not a document the matching rule hashes: `apply_response` now.
    No,
    /// Hold the headers and read the body, at most `max_bytes` of it (the rule's cap, or the host's limit if
    /// lower), then `apply_document`; past it, `apply_unhashed_document` with `Fallback::TooLarge`.
    Read { max_bytes: usize },
    /// A document whose body cannot be hashed, known from its headers alone: `apply_unhashed_document` now,
    /// without holding a byte.
    Unhashed(Fallback),
}

/// Whether a rule that may apply to this request hashes inline scripts, so the host must hold the whole
/// document (and should ask the upstream for it uncompressed).
pub fn wants_document_body(policy: &Policy, facts: &RequestFacts) -> bool {
    policy.rules.iter().enumerate().any(|(i, rule)| {
        facts.candidate_rules.contains(i) && rule.inline_script_hashes.is_some() && !rule.observe
    })
}

/// Whether a held response's body is worth reading for `apply_document`: a rule that may apply hashes, and
/// the response is a 2xx HTML document. Anything else (a large download on a held path, JSON, images) stays
/// in the host: copying it into the guest would grow the module's memory, which never shrinks.
pub fn wants_response_body(
    policy: &Policy,
    facts: &RequestFacts,
    response: &mut impl ResponseHeaders,
) -> bool {
    wants_document_body(policy, facts) && is_hashable_document(response)
}

/// Whether to hold this response's body, decided from its headers before anything is written: the rule that
/// matches hashes, the response is a 2xx HTML document, and nothing in its headers already rules hashing out.
/// `limits` is the most body the host can hold (the rule's `max_body_bytes` applies below it).
pub fn document_hold(
    policy: &Policy,
    facts: &RequestFacts,
    response: &mut impl ResponseHeaders,
    limits: HoldLimits,
) -> DocumentHold {
    let Some(hashing) = matching_hashing(policy, facts, response) else {
        return DocumentHold::No;
    };
    if !is_hashable_document(response) {
        return DocumentHold::No;
    }
    if let Some(fallback) = unhashable_from_headers(hashing, response) {
        return DocumentHold::Unhashed(fallback);
    }
    let declared_length = response
        .header("content-length")
        .and_then(|v| std::str::from_utf8(v).ok()?.trim().parse::<usize>().ok());
    let host_limit = if declared_length.is_some() {
        limits.declared_length
    } else {
        limits.unknown_length
    };
    let max_bytes = hashing.1.max_body_bytes.min(host_limit);
    if declared_length.is_some_and(|length| length > max_bytes) {
        return DocumentHold::Unhashed(Fallback::TooLarge);
    }
    DocumentHold::Read { max_bytes }
}

/// `apply_response` for a document that a hashing rule could not hash: the static CSP, and `fallback` counted.
pub fn apply_unhashed_document(
    policy: &Policy,
    facts: &RequestFacts,
    response: &mut impl ResponseHeaders,
    fallback: Fallback,
    metrics: &mut impl Metrics,
) -> Option<usize> {
    let index = apply_response(policy, facts, response, metrics)?;
    let rule = policy.rules.get(index)?;
    if rule.inline_script_hashes.is_some() && !rule.observe {
        metrics.increment(fallback.counter());
    }
    Some(index)
}

/// `apply_response` for a complete document: a rule with `inline_script_hashes` then replaces its static
/// CSP with one that allows exactly the inline scripts in `body` (which is never changed).
pub fn apply_document(
    policy: &Policy,
    facts: &RequestFacts,
    response: &mut impl ResponseHeaders,
    body: &[u8],
    metrics: &mut impl Metrics,
) -> Option<usize> {
    // Read before the rule writes its own CSP.
    let before_body =
        matching_hashing(policy, facts, response).map(|h| unhashable_from_headers(h, response));
    let index = apply_response(policy, facts, response, metrics)?;
    let rule = policy.rules.get(index)?;
    // A rule that does not hash still applied: its index, as apply_response gives it.
    let Some(hashing) = rule.inline_script_hashes.as_ref().filter(|_| !rule.observe) else {
        return Some(index);
    };
    if !is_hashable_document(response) {
        return Some(index);
    }
    let outcome = match before_body.flatten() {
        Some(fallback) => Err(fallback),
        None => {
            let content_type = response.header("content-type").map(<[u8]>::to_vec);
            hashing.csp_for(facts.https, body, content_type.as_deref())
        }
    };
    match outcome {
        Ok((csp, scripts)) => {
            response.set(hashing.header, &csp);
            metrics.increment(DOCUMENTS_HASHED);
            metrics.increment_by(SCRIPTS_HASHED, u64::try_from(scripts).unwrap_or(u64::MAX));
        }
        Err(fallback) => metrics.increment(fallback.counter()),
    }
    Some(index)
}

/// The rule that will apply, when it hashes inline scripts (and is not observing).
fn matching_hashing<'p>(
    policy: &'p Policy,
    facts: &RequestFacts,
    response: &mut impl ResponseHeaders,
) -> Option<(&'p Rule, &'p InlineScriptHashes)> {
    let (_, rule) = matching_rule(policy, facts, response)?;
    let hashing = rule
        .inline_script_hashes
        .as_ref()
        .filter(|_| !rule.observe)?;
    Some((rule, hashing))
}

/// Why the response's own headers rule hashing out, read before the rule writes anything: an upstream CSP the
/// rule keeps (`keep_upstream`), or a compressed body (the scan reads the bytes as sent).
fn unhashable_from_headers(
    (rule, hashing): (&Rule, &InlineScriptHashes),
    response: &mut impl ResponseHeaders,
) -> Option<Fallback> {
    let kept_upstream = response.header(hashing.header).is_some()
        && rule
            .writes
            .iter()
            .any(|w| *w.name == *hashing.header && w.mode == WriteMode::SetIfAbsent);
    if kept_upstream {
        return Some(Fallback::UpstreamCsp);
    }
    let compressed = response
        .header("content-encoding")
        .is_some_and(|e| !same_ignoring_ascii_case(e.trim_ascii(), b"identity"));
    compressed.then_some(Fallback::Compressed)
}

/// A 2xx `text/html` response: the only kind whose inline scripts are hashed.
fn is_hashable_document(response: &mut impl ResponseHeaders) -> bool {
    let is_html = response
        .header("content-type")
        .is_some_and(|t| same_ignoring_ascii_case(media_type(t), b"text/html"));
    is_html && response.status().is_some_and(|s| (200..300).contains(&s))
}
