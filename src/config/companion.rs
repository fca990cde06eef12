//! What a response Traefik streams can still get: a companion `headers` middleware, computed from the policy.
//!
//! Traefik's own `headers` middleware edits response headers as they are written (an empty value deletes, a
//! value replaces every copy; HSTS only on https), so it reaches the responses the plugin must stream. It runs
//! inside the plugin (`middlewares: [secure-headers, <companion>]`): on a held response the plugin reads what
//! the companion left and writes last. That is safe only for what is the same on every response the companion
//! touches, so it holds exactly the removals and plain `set` writes every rule that can apply agrees on, and
//! nothing at all when some request can match no rule (the plugin leaves those untouched).

use crate::config::policy::Policy;
use crate::config::rule::{Rule, SchemeScope, Write, WriteMode};

/// The companion middleware's content, and what a streamed response cannot get even with it.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Companion {
    /// Removed from every response (an empty value in `customResponseHeaders`).
    pub removals: Vec<Box<str>>,
    /// Set on every response, replacing the upstream's copies.
    pub sets: Vec<(Box<str>, Box<str>)>,
    /// Strict-Transport-Security on https responses (Traefik's `sts*` options).
    pub hsts: Option<Hsts>,
    /// Headers the policy writes that a streamed response still cannot get, each with the reason.
    pub left_out: Vec<(Box<str>, &'static str)>,
    /// Set when no header is safe: a request to these routers can match no rule.
    pub uncovered: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hsts {
    pub max_age: u64,
    pub include_subdomains: bool,
    pub preload: bool,
}

const KEPT_FROM_UPSTREAM: &str =
    "keep_upstream: written only when the upstream sends none, which needs the response";
const DIFFERS: &str = "not the same on every response (rules, schemes or modes differ)";
const BY_RESPONSE: &str = "decided from the response's own headers";

impl Policy {
    /// The companion for routers serving `hosts` (any host when empty).
    pub fn companion(&self, hosts: &[&str]) -> Companion {
        let host_ok = |rule: &Rule| {
            hosts.is_empty()
                || hosts
                    .iter()
                    .any(|h| rule.matcher.matches_host(h.as_bytes()))
        };
        let catch_all = |rule: &Rule, host: Option<&str>| {
            let request_ok = match host {
                Some(h) => {
                    rule.matcher.matches_host(h.as_bytes()) && !rule.matcher.has_path_conditions()
                }
                None => !rule.matcher.has_request_conditions(),
            };
            request_ok && !rule.matcher.has_response_conditions()
        };
        let candidates: Vec<&Rule> = self.rules.iter().filter(|r| host_ok(r)).collect();
        let uncovered = if hosts.is_empty() {
            (!self.rules.iter().any(|r| catch_all(r, None)))
                .then(|| "some requests match no rule".to_string())
        } else {
            hosts
                .iter()
                .find(|h| !self.rules.iter().any(|r| catch_all(r, Some(h))))
                .map(|h| format!("some requests to {h} match no rule"))
        };
        let mut companion = Companion::default();
        for rule in &candidates {
            for name in written_by_response(rule) {
                note(&mut companion.left_out, name, BY_RESPONSE);
            }
        }
        let Some((first, others)) = candidates.split_first() else {
            companion.uncovered = uncovered;
            return companion;
        };
        let enforcing = !candidates.iter().any(|r| r.observe);
        for write in &first.writes {
            let agreed = enforcing
                && others
                    .iter()
                    .all(|r| r.writes.iter().any(|w| same_write(w, write)));
            let hsts = (&*write.name == "strict-transport-security"
                && write.scheme == SchemeScope::HttpsOnly)
                .then(|| parse_hsts(&write.value))
                .flatten();
            match (write.mode, write.scheme, agreed, hsts) {
                (WriteMode::SetIfAbsent, ..) => {
                    note(&mut companion.left_out, &write.name, KEPT_FROM_UPSTREAM)
                }
                (WriteMode::Set, SchemeScope::Any, true, _) => companion
                    .sets
                    .push((write.name.clone(), write.value.clone())),
                (WriteMode::Set, _, true, Some(hsts)) => companion.hsts = Some(hsts),
                _ => note(&mut companion.left_out, &write.name, DIFFERS),
            }
        }
        for rule in others {
            for write in &rule.writes {
                let reason = if write.mode == WriteMode::SetIfAbsent {
                    KEPT_FROM_UPSTREAM
                } else {
                    DIFFERS
                };
                if !first.writes.iter().any(|w| w.name == write.name) {
                    note(&mut companion.left_out, &write.name, reason);
                }
            }
        }
        companion.removals = first
            .removals
            .iter()
            .filter(|name| enforcing && others.iter().all(|r| r.removals.contains(name)))
            .cloned()
            .collect();
        if uncovered.is_some() {
            companion.sets.clear();
            companion.removals.clear();
            companion.hsts = None;
            companion.uncovered = uncovered;
        }
        companion
    }
}

impl Companion {
    /// One log line for the plugin's start: what a streamed response cannot get and what to add.
    pub fn advice(&self) -> String {
        let names = |items: &mut dyn Iterator<Item = &str>| items.collect::<Vec<_>>().join(", ");
        let removals = names(&mut self.removals.iter().map(|n| &**n));
        let left_out = names(&mut self.left_out.iter().map(|(n, _)| &**n));
        let mut line = String::from(
            "streamed responses (Range, streaming_paths, media and other sub-resources, uploads) get only the \
             headers written before the upstream answers",
        );
        if !removals.is_empty() || !self.sets.is_empty() || self.hsts.is_some() {
            line.push_str(&format!(
                "; to remove {} and keep one copy of each header on them, add the headers middleware that \
                 `secure-headers traefik-middleware POLICY` prints right after this one in the router's middlewares",
                if removals.is_empty() { "nothing" } else { &removals }
            ));
        }
        if let Some(why) = &self.uncovered {
            line.push_str(&format!(
                "; {why}, so generate the companion headers middleware for each router's hosts: \
                 `secure-headers traefik-middleware POLICY --host HOST...` (or end the rules with one without match)"
            ));
        }
        if !left_out.is_empty() {
            line.push_str(&format!("; never on a streamed response: {left_out}"));
        }
        line
    }
}

/// Headers a rule writes only after reading the response's type.
fn written_by_response(rule: &Rule) -> impl Iterator<Item = &str> {
    let cache = (!rule.cache_defaults.is_empty()).then_some("cache-control");
    let content_type = (!rule.content_types.is_empty()).then_some("content-type");
    cache.into_iter().chain(content_type)
}

fn same_write(a: &Write, b: &Write) -> bool {
    a.name == b.name && a.value == b.value && a.mode == b.mode && a.scheme == b.scheme
}

fn note(left_out: &mut Vec<(Box<str>, &'static str)>, name: &str, reason: &'static str) {
    if !left_out.iter().any(|(n, _)| &**n == name) {
        left_out.push((name.into(), reason));
    }
}

/// Reads back the value `rule.rs` renders (`max-age=N[; includeSubDomains][; preload]`).
fn parse_hsts(value: &str) -> Option<Hsts> {
    let mut parts = value.split("; ");
    let max_age = parts.next()?.strip_prefix("max-age=")?.parse().ok()?;
    let mut hsts = Hsts {
        max_age,
        include_subdomains: false,
        preload: false,
    };
    for part in parts {
        match part {
            "includeSubDomains" => hsts.include_subdomains = true,
            "preload" => hsts.preload = true,
            _ => return None,
        }
    }
    Some(hsts)
}
