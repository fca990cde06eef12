//! The per-response path: pick the rule, then write the headers the policy rendered at configure time.
//! Nothing here formats or allocates; every name and value is borrowed from the compiled policy.

use crate::host::{RequestView, ResponseHeaders};
use crate::inline_hashing::{Fallback, DOCUMENTS_HASHED, SCRIPTS_HASHED};
use crate::matcher::{media_type, path_extension, strip_query};
use crate::metrics::Metrics;
use crate::observe::Observing;
use crate::policy::Policy;
use crate::rule::{Rule, WriteMode};

/// What the response phase needs to remember about the request: small, `Copy`, no heap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestFacts {
    /// Bit i set: rule i's host and path conditions hold.
    pub candidate_rules: u128,
    pub https: bool,
    /// Index into `Policy::extensions` of the request path's extension.
    pub extension: Option<u16>,
    /// The path is under the `streaming_paths` of a rule that may apply.
    pub streaming_path: bool,
}

/// Longest media type kept for matching; longer ones match no content-type condition.
const MEDIA_TYPE_BUF: usize = 128;

impl Policy {
    /// Decides the request-side conditions while the request headers pass.
    pub fn inspect_request(&self, request: &mut impl RequestView) -> RequestFacts {
        let mut facts = RequestFacts::default();
        {
            let (host, path) = request.host_and_path();
            for (i, rule) in self.rules.iter().enumerate() {
                if rule.matcher.matches_request(host, path) {
                    facts.candidate_rules |= 1u128 << i;
                }
            }
            let bare_path = path.map(strip_query).unwrap_or_default();
            facts.streaming_path = self.rules.iter().enumerate().any(|(i, rule)| {
                facts.candidate_rules & (1u128 << i) != 0
                    && rule
                        .streaming_paths
                        .iter()
                        .any(|p| bare_path.starts_with(p.as_bytes()))
            });
            if let Some(ext) = path.and_then(path_extension) {
                facts.extension = self
                    .extensions
                    .iter()
                    .position(|e| e.as_bytes().eq_ignore_ascii_case(ext))
                    .and_then(|i| u16::try_from(i).ok());
            }
        }
        let forwarded = match &self.trusted_proto_header {
            Some(name) => request.header(name).map(first_token_is_https),
            None => None,
        };
        facts.https = match forwarded {
            Some(https) => https,
            None => request
                .scheme()
                .is_some_and(|s| s.eq_ignore_ascii_case(b"https")),
        };
        facts
    }

    /// Facts for a response whose request the filter never saw (a reply made before it ran):
    /// only rules without host or path conditions can apply.
    pub fn facts_without_request(&self) -> RequestFacts {
        let mut facts = RequestFacts::default();
        for (i, rule) in self.rules.iter().enumerate() {
            if !rule.matcher.has_request_conditions() {
                facts.candidate_rules |= 1u128 << i;
            }
        }
        facts
    }

    /// Applies the first matching rule (an observing rule only counts); returns its index, or None when the
    /// response passes untouched.
    pub fn apply_response(
        &self,
        facts: &RequestFacts,
        response: &mut impl ResponseHeaders,
        metrics: &mut impl Metrics,
    ) -> Option<usize> {
        // 1xx (101 Switching Protocols for WebSocket among them) pass untouched.
        let status = response.status().filter(|s| *s >= 200)?;
        let mut media_buf = [0u8; MEDIA_TYPE_BUF];
        let media = copy_media_type(response.header("content-type"), &mut media_buf);
        let media = media.and_then(|len| media_buf.get(..len));
        let (index, rule) = self.rules.iter().enumerate().find(|(i, rule)| {
            facts.candidate_rules & (1u128 << i) != 0
                && rule.matcher.matches_response(status, media)
        })?;
        if rule.observe {
            let mut observing = Observing {
                response,
                headers: &self.observed,
                metrics,
            };
            apply_rule(rule, self, facts, status, media, &mut observing);
        } else {
            apply_rule(rule, self, facts, status, media, response);
        }
        Some(index)
    }
}

impl Policy {
    /// Whether a rule that may apply to this request hashes inline scripts, so the host must hold the whole
    /// document (and should ask the upstream for it uncompressed).
    pub fn wants_document_body(&self, facts: &RequestFacts) -> bool {
        self.rules.iter().enumerate().any(|(i, rule)| {
            facts.candidate_rules & (1u128 << i) != 0
                && rule.inline_hashes.is_some()
                && !rule.observe
        })
    }

    /// Whether a held response's body is worth reading for `apply_document`: a rule that may apply hashes, and
    /// the response is a 2xx HTML document. Anything else (a large download on a held path, JSON, images) stays
    /// in the host: copying it into the guest would grow the module's memory, which never shrinks.
    pub fn wants_response_body(
        &self,
        facts: &RequestFacts,
        response: &mut impl ResponseHeaders,
    ) -> bool {
        self.wants_document_body(facts) && is_hashable_document(response)
    }

    /// `apply_response` for a complete document: a rule with `inline_script_hashes` then replaces its static
    /// CSP with one that allows exactly the inline scripts in `body` (which is never changed).
    pub fn apply_document(
        &self,
        facts: &RequestFacts,
        response: &mut impl ResponseHeaders,
        body: &[u8],
        metrics: &mut impl Metrics,
    ) -> Option<usize> {
        let upstream_csp = response.header("content-security-policy").is_some();
        let upstream_report_only = response
            .header("content-security-policy-report-only")
            .is_some();
        let index = self.apply_response(facts, response, metrics)?;
        let rule = self.rules.get(index)?;
        let hashing = rule.inline_hashes.as_ref().filter(|_| !rule.observe)?;
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
}

/// A 2xx `text/html` response: the only kind whose inline scripts are hashed.
fn is_hashable_document(response: &mut impl ResponseHeaders) -> bool {
    let mut media_buf = [0u8; MEDIA_TYPE_BUF];
    let media = copy_media_type(response.header("content-type"), &mut media_buf);
    let is_html = media
        .and_then(|len| media_buf.get(..len))
        .is_some_and(|m| m.eq_ignore_ascii_case(b"text/html"));
    is_html && response.status().is_some_and(|s| (200..300).contains(&s))
}

/// Applies one rule. Every decision that depends on the upstream's headers (set_if_absent, Cache-Control
/// defaults, Content-Type repair) reads headers the rule itself never changes before reading them (the policy
/// refuses the conflicts that would allow it), so a host may answer reads from one snapshot.
fn apply_rule(
    rule: &Rule,
    policy: &Policy,
    facts: &RequestFacts,
    status: u16,
    media: Option<&[u8]>,
    response: &mut impl ResponseHeaders,
) {
    let cache_control = cache_default(rule, media, response);
    // A body-less status has no type to repair.
    let content_type = if (200..300).contains(&status) && status != 204 {
        content_type_repair(rule, policy, facts, media, response)
    } else {
        None
    };
    for name in &rule.removals {
        response.remove(name);
    }
    for write in &rule.writes {
        if !write.scheme.allows(facts.https) {
            continue;
        }
        match write.mode {
            WriteMode::Set => response.set(&write.name, &write.value),
            WriteMode::SetIfAbsent => {
                if response.header(&write.name).is_none() {
                    response.set(&write.name, &write.value);
                }
            }
            WriteMode::Append => response.append(&write.name, &write.value),
        }
    }
    if let Some(value) = cache_control {
        response.set("cache-control", value);
    }
    if let Some(value) = content_type {
        response.set("content-type", value);
    }
}

/// The Cache-Control default to write, if the response's media type has one and the upstream's value (if any)
/// is not to be kept.
fn cache_default<'a>(
    rule: &'a Rule,
    media: Option<&[u8]>,
    response: &mut impl ResponseHeaders,
) -> Option<&'a str> {
    let default = rule
        .cache_defaults
        .iter()
        .find(|d| media.is_some_and(|m| d.media.matches(m)))?;
    let keep = rule.keep_upstream_cache_control && response.header("cache-control").is_some();
    (!keep).then_some(&*default.value)
}

/// The Content-Type to write when the path's extension has one and the response's is missing or different.
fn content_type_repair<'a>(
    rule: &'a Rule,
    policy: &Policy,
    facts: &RequestFacts,
    media: Option<&[u8]>,
    response: &mut impl ResponseHeaders,
) -> Option<&'a str> {
    let ext = facts
        .extension
        .and_then(|i| policy.extensions.get(usize::from(i)))?;
    let fix = rule.content_types.iter().find(|f| f.extension == *ext)?;
    let correct =
        media.is_some_and(|m| m.eq_ignore_ascii_case(media_type(fix.content_type.as_bytes())));
    let present = response.header("content-type").is_some();
    (!(correct || present && rule.keep_upstream_content_type)).then_some(&*fix.content_type)
}

/// `https` when the first comma-separated value is https (the proxy nearest the browser writes it first).
fn first_token_is_https(value: &[u8]) -> bool {
    let first = value.split(|b| *b == b',').next().unwrap_or_default();
    first.trim_ascii().eq_ignore_ascii_case(b"https")
}

/// Copies the media type into `buf`; None when absent or too long to match anything.
fn copy_media_type(content_type: Option<&[u8]>, buf: &mut [u8; MEDIA_TYPE_BUF]) -> Option<usize> {
    let media = media_type(content_type?);
    let slot = buf.get_mut(..media.len())?;
    slot.copy_from_slice(media);
    Some(media.len())
}
