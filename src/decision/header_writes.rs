//! The per-response path: pick the rule, then write the headers the policy rendered at configure time.
//! Nothing here formats, allocates or copies a header value; every name and value is borrowed from the compiled
//! policy.

use crate::config::policy::Policy;
use crate::config::rule::{Rule, WriteMode};
use crate::decision::observe::Observing;
use crate::decision::request_facts::RequestFacts;
use crate::host::ResponseHeaders;
use crate::http_bytes::{media_type, same_ignoring_ascii_case};
use crate::telemetry::Metrics;

/// What the response's status and Content-Type decide, worked out while the Content-Type is borrowed (a host
/// view may reuse its buffer for the next read), so nothing of it is copied.
struct TypedMatch<'p> {
    index: usize,
    rule: &'p Rule,
    /// The Cache-Control default for the media type, unless the upstream's value is to be kept (read later).
    cache_default: Option<&'p str>,
    /// The Content-Type to write for the path's extension (a 2xx response's body only).
    content_type_fix: Option<&'p str>,
}

/// Applies the first matching rule (an observing rule only counts); returns its index, or None when the
/// response passes untouched.
pub fn apply_response(
    policy: &Policy,
    facts: &RequestFacts,
    response: &mut impl ResponseHeaders,
    metrics: &mut impl Metrics,
) -> Option<usize> {
    let typed = typed_match(policy, facts, response)?;
    if typed.rule.observe {
        let mut observing = Observing {
            response,
            headers: &policy.observed,
            metrics,
        };
        apply_rule(&typed, facts, &mut observing);
    } else {
        apply_rule(&typed, facts, response);
    }
    Some(typed.index)
}

/// The first rule whose request conditions held and whose response conditions hold, with its index; None for
/// a 1xx (101 Switching Protocols for WebSocket among them), which passes untouched.
pub fn matching_rule<'p>(
    policy: &'p Policy,
    facts: &RequestFacts,
    response: &mut impl ResponseHeaders,
) -> Option<(usize, &'p Rule)> {
    typed_match(policy, facts, response).map(|typed| (typed.index, typed.rule))
}

/// Reads the status and the Content-Type (once) and decides everything that depends on the media type.
fn typed_match<'p>(
    policy: &'p Policy,
    facts: &RequestFacts,
    response: &mut impl ResponseHeaders,
) -> Option<TypedMatch<'p>> {
    // 1xx (101 Switching Protocols for WebSocket among them) pass untouched.
    let status = response.status().filter(|s| *s >= 200)?;
    let content_type = response.header("content-type");
    let media = content_type.map(media_type);
    let (index, rule) = policy.rules.iter().enumerate().find(|(i, rule)| {
        facts.candidate_rules.contains(*i) && rule.matcher.matches_response(status, media)
    })?;
    let cache_default = rule
        .cache_defaults
        .iter()
        .find(|d| media.is_some_and(|m| d.media.matches(m)))
        .map(|d| &*d.value);
    // A body-less status has no type to repair.
    let content_type_fix = if (200..300).contains(&status) && status != 204 {
        content_type_fix(rule, policy, facts, media, content_type.is_some())
    } else {
        None
    };
    Some(TypedMatch {
        index,
        rule,
        cache_default,
        content_type_fix,
    })
}

/// Applies one rule. Every decision that depends on the upstream's headers (set_if_absent, Cache-Control
/// defaults, Content-Type repair) reads headers the rule itself never changes before reading them (the policy
/// refuses the conflicts that would allow it), so a host may answer reads from one snapshot.
fn apply_rule(typed: &TypedMatch, facts: &RequestFacts, response: &mut impl ResponseHeaders) {
    let rule = typed.rule;
    let cache_control = typed.cache_default.filter(|_| {
        !(rule.keep_upstream_cache_control && response.header("cache-control").is_some())
    });
    for name in &rule.removals {
        response.remove(name);
    }
    for write in &rule.writes {
        if !write.scheme.allows(facts.https) {
            continue;
        }
        let kept = write.mode == WriteMode::SetIfAbsent && response.header(&write.name).is_some();
        match write.mode {
            WriteMode::Append => response.append(&write.name, &write.value),
            _ if kept => {}
            _ if write.first => response.set_first(&write.name, &write.value),
            _ => response.set(&write.name, &write.value),
        }
    }
    // The rule neither writes nor removes these two (it is refused otherwise): first writes.
    if let Some(value) = cache_control {
        response.set_first("cache-control", value);
    }
    if let Some(value) = typed.content_type_fix {
        response.set_first("content-type", value);
    }
}

/// The Content-Type to write when the path's extension has one and the response's is missing or different
/// (`present`: the response has a Content-Type at all).
fn content_type_fix<'a>(
    rule: &'a Rule,
    policy: &Policy,
    facts: &RequestFacts,
    media: Option<&[u8]>,
    present: bool,
) -> Option<&'a str> {
    let ext = facts
        .extension
        .and_then(|i| policy.extensions.get(usize::from(i)))?;
    let fix = rule.content_types.iter().find(|f| f.extension == *ext)?;
    let correct =
        media.is_some_and(|m| same_ignoring_ascii_case(m, media_type(fix.content_type.as_bytes())));
    (!(correct || present && rule.keep_upstream_content_type)).then_some(&*fix.content_type)
}
