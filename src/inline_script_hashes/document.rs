//! A complete HTML document under a rule with `inline_script_hashes`: its response gets the policy, then a CSP
//! that allows exactly the inline scripts in its body (which is never changed), or the static CSP and the
//! reason it fell back.

use crate::config::policy::Policy;
use crate::config::rule::WriteMode;
use crate::decision::header_writes::{apply_response, response_media_type, MEDIA_TYPE_BUF};
use crate::decision::request_facts::RequestFacts;
use crate::host::ResponseHeaders;
use crate::inline_script_hashes::hashed_csp::{Fallback, DOCUMENTS_HASHED, SCRIPTS_HASHED};
use crate::telemetry::Metrics;

/// Whether a rule that may apply to this request hashes inline scripts, so the host must hold the whole
/// document (and should ask the upstream for it uncompressed).
pub fn wants_document_body(policy: &Policy, facts: &RequestFacts) -> bool {
    policy.rules.iter().enumerate().any(|(i, rule)| {
        facts.candidate_rules & (1u128 << i) != 0
            && rule.inline_script_hashes.is_some()
            && !rule.observe
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

/// `apply_response` for a complete document: a rule with `inline_script_hashes` then replaces its static
/// CSP with one that allows exactly the inline scripts in `body` (which is never changed).
pub fn apply_document(
    policy: &Policy,
    facts: &RequestFacts,
    response: &mut impl ResponseHeaders,
    body: &[u8],
    metrics: &mut impl Metrics,
) -> Option<usize> {
    let upstream_csp = response.header("content-security-policy").is_some();
    let upstream_report_only = response
        .header("content-security-policy-report-only")
        .is_some();
    let index = apply_response(policy, facts, response, metrics)?;
    let rule = policy.rules.get(index)?;
    let hashing = rule
        .inline_script_hashes
        .as_ref()
        .filter(|_| !rule.observe)?;
    if !is_hashable_document(response) {
        return Some(index);
    }
    let upstream_had = if hashing.header.ends_with("report-only") {
        upstream_report_only
    } else {
        upstream_csp
    };
    let kept_upstream = upstream_had
        && rule
            .writes
            .iter()
            .any(|w| *w.name == *hashing.header && w.mode == WriteMode::SetIfAbsent);
    let outcome = if kept_upstream {
        Err(Fallback::UpstreamCsp)
    } else {
        let content_type = response.header("content-type").map(<[u8]>::to_vec);
        let encoding = response.header("content-encoding").map(<[u8]>::to_vec);
        hashing.csp_for(
            facts.https,
            body,
            content_type.as_deref(),
            encoding.as_deref(),
        )
    };
    match outcome {
        Ok((csp, scripts)) => {
            response.set(hashing.header, &csp);
            metrics.increment(DOCUMENTS_HASHED);
            for _ in 0..scripts {
                metrics.increment(SCRIPTS_HASHED);
            }
        }
        Err(fallback) => metrics.increment(fallback.counter()),
    }
    Some(index)
}

/// A 2xx `text/html` response: the only kind whose inline scripts are hashed.
fn is_hashable_document(response: &mut impl ResponseHeaders) -> bool {
    let mut media_buf = [0u8; MEDIA_TYPE_BUF];
    let is_html = response_media_type(response, &mut media_buf)
        .is_some_and(|m| m.eq_ignore_ascii_case(b"text/html"));
    is_html && response.status().is_some_and(|s| (200..300).contains(&s))
}
