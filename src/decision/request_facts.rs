//! What the request tells the response phase: which rules' host and path conditions hold, whether the
//! browser used https, the path's extension and whether it must stream. Decided while the request headers
//! pass (Envoy does not let a filter read them later) and kept in a small `Copy` value.

use crate::config::policy::{Policy, MAX_RULES};
use crate::host::RequestView;
use crate::http_bytes::{path_extension, same_ignoring_ascii_case, strip_query};

/// What the response phase needs to remember about the request: small, `Copy`, no heap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestFacts {
    /// The rules whose host and path conditions hold.
    pub candidate_rules: RuleSet,
    pub https: bool,
    /// Index into `Policy::extensions` of the request path's extension.
    pub extension: Option<u16>,
    /// The path is under the `streaming_paths` of a rule that may apply.
    pub streaming_path: bool,
}

/// A set of rule indexes below `MAX_RULES`, one bit each. Words of 64 bits rather than one u128, whose shifts
/// are library calls in Wasm.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RuleSet([u64; MAX_RULES.div_ceil(64)]);

impl RuleSet {
    /// Adds rule `index`; an index past `MAX_RULES` (which the policy refuses) is ignored.
    pub fn insert(&mut self, index: usize) {
        if let Some(word) = self.0.get_mut(index / 64) {
            *word |= 1 << (index % 64);
        }
    }

    pub fn contains(&self, index: usize) -> bool {
        self.0
            .get(index / 64)
            .is_some_and(|word| word & (1 << (index % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|word| *word == 0)
    }
}

/// Decides the request-side conditions while the request headers pass.
pub fn inspect(policy: &Policy, request: &mut impl RequestView) -> RequestFacts {
    let mut facts = RequestFacts::default();
    {
        let (host, url_path) = request.host_and_path();
        let bare_path = url_path.map(strip_query).unwrap_or_default();
        for (i, rule) in policy.rules.iter().enumerate() {
            if rule.matcher.matches_request(host, bare_path) {
                facts.candidate_rules.insert(i);
            }
        }
        facts.streaming_path = policy.rules.iter().enumerate().any(|(i, rule)| {
            facts.candidate_rules.contains(i)
                && rule
                    .streaming_paths
                    .iter()
                    .any(|p| bare_path.starts_with(p.as_bytes()))
        });
        if let Some(ext) = path_extension(bare_path) {
            facts.extension = policy
                .extensions
                .iter()
                .position(|e| same_ignoring_ascii_case(e.as_bytes(), ext))
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
            .is_some_and(|s| same_ignoring_ascii_case(s, b"https")),
    };
    facts
}

/// Facts for a response whose request the filter never saw (a reply made before it ran):
/// only rules without host or path conditions can apply.
pub fn without_request(policy: &Policy) -> RequestFacts {
    let mut facts = RequestFacts::default();
    for (i, rule) in policy.rules.iter().enumerate() {
        if !rule.matcher.has_request_conditions() {
            facts.candidate_rules.insert(i);
        }
    }
    facts
}

/// `https` when the first comma-separated value is https (the proxy nearest the browser writes it first).
fn first_token_is_https(value: &[u8]) -> bool {
    let first = value.split(|b| *b == b',').next().unwrap_or_default();
    same_ignoring_ascii_case(first.trim_ascii(), b"https")
}
