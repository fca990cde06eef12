//! What the request tells the response phase: which rules' host and path conditions hold, whether the
//! browser used https, the path's extension and whether it must stream. Decided while the request headers
//! pass (Envoy does not let a filter read them later) and kept in a small `Copy` value.

use crate::config::policy::Policy;
use crate::host::RequestView;
use crate::http_bytes::{path_extension, strip_query};

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

/// Decides the request-side conditions while the request headers pass.
pub fn inspect(policy: &Policy, request: &mut impl RequestView) -> RequestFacts {
    let mut facts = RequestFacts::default();
    {
        let (host, url_path) = request.host_and_path();
        for (i, rule) in policy.rules.iter().enumerate() {
            if rule.matcher.matches_request(host, url_path) {
                facts.candidate_rules |= 1u128 << i;
            }
        }
        let bare_path = url_path.map(strip_query).unwrap_or_default();
        facts.streaming_path = policy.rules.iter().enumerate().any(|(i, rule)| {
            facts.candidate_rules & (1u128 << i) != 0
                && rule
                    .streaming_paths
                    .iter()
                    .any(|p| bare_path.starts_with(p.as_bytes()))
        });
        if let Some(ext) = url_path.and_then(path_extension) {
            facts.extension = policy
                .extensions
                .iter()
                .position(|e| e.as_bytes().eq_ignore_ascii_case(ext))
                .and_then(|i| u16::try_from(i).ok());
        }
    }
    let forwarded = match &policy.trusted_proto_header {
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
pub fn without_request(policy: &Policy) -> RequestFacts {
    let mut facts = RequestFacts::default();
    for (i, rule) in policy.rules.iter().enumerate() {
        if !rule.matcher.has_request_conditions() {
            facts.candidate_rules |= 1u128 << i;
        }
    }
    facts
}

/// `https` when the first comma-separated value is https (the proxy nearest the browser writes it first).
fn first_token_is_https(value: &[u8]) -> bool {
    let first = value.split(|b| *b == b',').next().unwrap_or_default();
    first.trim_ascii().eq_ignore_ascii_case(b"https")
}
