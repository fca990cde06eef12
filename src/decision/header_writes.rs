//! The per-response path: pick the rule, then write the headers the policy rendered at configure time.
//! Nothing here formats or allocates; every name and value is borrowed from the compiled policy.

use crate::config::policy::Policy;
use crate::config::rule::{Rule, WriteMode};
use crate::decision::observe::Observing;
use crate::decision::request_facts::RequestFacts;
use crate::host::ResponseHeaders;
use crate::http_bytes::media_type;
use crate::telemetry::Metrics;

/// Longest media type kept for matching; longer ones match no content-type condition.
pub const MEDIA_TYPE_BUF: usize = 128;

/// Applies the first matching rule (an observing rule only counts); returns its index, or None when the
/// response passes untouched.
pub fn apply_response(
    policy: &Policy,
    facts: &RequestFacts,
    response: &mut impl ResponseHeaders,
    metrics: &mut impl Metrics,
) -> Option<usize> {
    // 1xx (101 Switching Protocols for WebSocket among them) pass untouched.
    let status = response.status().filter(|s| *s >= 200)?;
    let mut media_buf = [0u8; MEDIA_TYPE_BUF];
    let media = response_media_type(response, &mut media_buf);
    let (index, rule) = first_match(policy, facts, status, media)?;
    if rule.observe {
        let mut observing = Observing {
            response,
            headers: &policy.observed,
            metrics,
        };
        apply_rule(rule, policy, facts, status, media, &mut observing);
    } else {
        apply_rule(rule, policy, facts, status, media, response);
    }
    Some(index)
}

/// The first rule whose request conditions held and whose response conditions hold, with its index; None for
/// a 1xx (101 Switching Protocols for WebSocket among them), which passes untouched.
pub fn matching_rule<'p>(
    policy: &'p Policy,
    facts: &RequestFacts,
    response: &mut impl ResponseHeaders,
) -> Option<(usize, &'p Rule)> {
    let status = response.status().filter(|s| *s >= 200)?;
    let mut media_buf = [0u8; MEDIA_TYPE_BUF];
    let media = response_media_type(response, &mut media_buf);
    first_match(policy, facts, status, media)
}

fn first_match<'p>(
    policy: &'p Policy,
    facts: &RequestFacts,
    status: u16,
    media: Option<&[u8]>,
) -> Option<(usize, &'p Rule)> {
    policy.rules.iter().enumerate().find(|(i, rule)| {
        facts.candidate_rules & (1u128 << i) != 0 && rule.matcher.matches_response(status, media)
    })
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
    if let Some(value) = content_type {
        response.set_first("content-type", value);
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

/// The response's media type, copied into `buf` so the response can be written while it is used; None when
/// absent or too long to match anything.
pub fn response_media_type<'a>(
    response: &mut impl ResponseHeaders,
    buf: &'a mut [u8; MEDIA_TYPE_BUF],
) -> Option<&'a [u8]> {
    let media = media_type(response.header("content-type")?);
    let slot = buf.get_mut(..media.len())?;
    slot.copy_from_slice(media);
    Some(slot)
}
