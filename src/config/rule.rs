//! A rule compiled from merged settings: every header name and value rendered once, here, at configure time.

use crate::config::headers::cache_control::{self, CacheDefault};
use crate::config::headers::content_type::{self, ContentTypeFix};
use crate::config::headers::{
    cross_origin, csp_and_framing, hsts, permissions_policy, referrer_policy, Writes,
};
use crate::config::matcher::Matcher;
use crate::config::presets::OWASP_REMOVE;
use crate::config::schema::{HeaderAction, Layer, Mode, Toggle};
use crate::config::syntax::{check_header_name, check_header_value, url_path_prefix};
use crate::error::ConfigError;
use crate::inline_script_hashes::hashed_csp::InlineScriptHashes;
use crate::report_collector::ReportCollector;

/// Headers that must never appear twice: `append` is refused for them.
const SINGLE_VALUED: &[&str] = &[
    "strict-transport-security",
    "content-security-policy",
    "content-security-policy-report-only",
    "x-frame-options",
    "x-content-type-options",
    "referrer-policy",
    "permissions-policy",
    "cross-origin-resource-policy",
    "cross-origin-opener-policy",
    "cross-origin-embedder-policy",
    "cache-control",
    "content-type",
];

/// What `keep_upstream` holds when a policy does not say: the app's own CSP and caching know more than the edge.
const DEFAULT_KEEP_UPSTREAM: &[&str] = &[
    "content-security-policy",
    "content-security-policy-report-only",
    "cache-control",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteMode {
    Set,
    SetIfAbsent,
    Append,
}

/// Which requests a write is for, judged by the scheme the browser used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemeScope {
    Any,
    HttpsOnly,
    HttpOnly,
}

impl SchemeScope {
    /// Some response is allowed by both.
    fn overlaps(self, other: SchemeScope) -> bool {
        self.allows(true) && other.allows(true) || self.allows(false) && other.allows(false)
    }

    #[inline]
    pub fn allows(self, https: bool) -> bool {
        match self {
            SchemeScope::Any => true,
            SchemeScope::HttpsOnly => https,
            SchemeScope::HttpOnly => !https,
        }
    }
}

#[derive(Debug)]
pub struct Write {
    pub name: Box<str>,
    pub value: Box<str>,
    pub mode: WriteMode,
    pub scheme: SchemeScope,
    /// No earlier write of the rule names this header on a scheme both allow (`mark_first_writes`).
    pub first: bool,
}

/// Marks the writes no earlier write of the same rule can precede in one response: the host may then write
/// them knowing only the upstream's headers. Quadratic in the rule's writes, as the merging above is (a rule
/// has a few dozen).
fn mark_first_writes(writes: &mut [Write]) {
    for i in 0..writes.len() {
        let (earlier, rest) = writes.split_at_mut(i);
        if let Some(write) = rest.first_mut() {
            write.first = !earlier
                .iter()
                .any(|e| e.name == write.name && e.scheme.overlaps(write.scheme));
        }
    }
}

#[derive(Debug)]
pub struct Rule {
    pub name: Box<str>,
    /// Where the rule is in the policy (`rules[2]`, or empty for the top level), for errors found later.
    pub field: Box<str>,
    pub matcher: Matcher,
    /// Observe mode: every change is counted, none is made.
    pub observe: bool,
    pub removals: Vec<Box<str>>,
    pub writes: Vec<Write>,
    /// Cache-Control by response media type; the first pattern that matches wins.
    pub cache_defaults: Vec<CacheDefault>,
    pub keep_upstream_cache_control: bool,
    pub content_types: Vec<ContentTypeFix>,
    pub keep_upstream_content_type: bool,
    /// Path prefixes whose responses are never held by hosts that must buffer to edit headers (Traefik).
    pub streaming_paths: Vec<Box<str>>,
    /// `inline_script_hashes`: the per-document CSP with the hashes of its inline scripts.
    pub inline_script_hashes: Option<InlineScriptHashes>,
}

impl Rule {
    /// `layer` is already merged (presets, top level, rule); `field` (the rule's place in the policy) prefixes
    /// every error. With a report collector, every CSP the rule writes reports to it.
    pub fn compile(
        field: &str,
        name: &str,
        matcher: Matcher,
        layer: &Layer,
        reports: Option<&ReportCollector>,
    ) -> Result<Rule, ConfigError> {
        let field_of = |f: &str| {
            if field.is_empty() {
                f.to_string()
            } else {
                format!("{field}.{f}")
            }
        };
        let mut writes = Writes::default();

        if layer.content_type_options == Some(true) {
            writes.set("x-content-type-options", "nosniff".into(), SchemeScope::Any);
        }
        if let Some(Toggle::On(hsts)) = &layer.hsts {
            let value = hsts::render(&field_of("hsts"), hsts)?;
            writes.set("strict-transport-security", value, SchemeScope::HttpsOnly);
        }
        let inline_script_hashes =
            csp_and_framing::compile(&field_of, layer, reports, &mut writes)?;
        if let Some(Toggle::On(policy)) = &layer.referrer_policy {
            let value = referrer_policy::render(&field_of("referrer_policy"), policy)?;
            writes.set("referrer-policy", value, SchemeScope::Any);
        }
        if let Some(Toggle::On(features)) = &layer.permissions_policy {
            let value = permissions_policy::render(&field_of("permissions_policy"), features)?;
            writes.set("permissions-policy", value, SchemeScope::Any);
        }
        for (key, setting) in [
            (
                "cross_origin_resource_policy",
                &layer.cross_origin_resource_policy,
            ),
            (
                "cross_origin_opener_policy",
                &layer.cross_origin_opener_policy,
            ),
            (
                "cross_origin_embedder_policy",
                &layer.cross_origin_embedder_policy,
            ),
        ] {
            if let Some(Toggle::On(value)) = setting {
                let (header, allowed) = cross_origin::header_and_values(key);
                if !allowed.contains(&value.as_str()) {
                    return Err(ConfigError::new(
                        field_of(key),
                        format!("`{value}` is not one of: {}", allowed.join(", ")),
                    ));
                }
                writes.set(header, value.clone(), SchemeScope::Any);
            }
        }

        let keep = keep_upstream(&field_of("keep_upstream"), layer.keep_upstream.as_deref())?;
        for write in &mut writes.0 {
            if write.mode == WriteMode::Set && keep.iter().any(|k| **k == *write.name) {
                write.mode = WriteMode::SetIfAbsent;
            }
        }

        let mut removals = Vec::new();
        if let Some(headers) = &layer.headers {
            for (raw_name, spec) in &headers.0 {
                let header_field = field_of(&format!("headers.{raw_name}"));
                let name = check_header_name(&header_field, raw_name)?;
                writes.0.retain(|w| w.name != name);
                let Toggle::On(spec) = spec else { continue };
                let action = spec.action.unwrap_or(HeaderAction::Set);
                match (action, &spec.value) {
                    (HeaderAction::Remove, None) => removals.push(name),
                    (HeaderAction::Remove, Some(_)) => {
                        return Err(ConfigError::new(
                            header_field,
                            "action `remove` takes no value",
                        ));
                    }
                    (_, None) => {
                        return Err(ConfigError::new(
                            header_field,
                            "a value is required for this action",
                        ))
                    }
                    (action, Some(value)) => {
                        check_header_value(&format!("{header_field}.value"), value)?;
                        let mode = match action {
                            HeaderAction::SetIfAbsent => WriteMode::SetIfAbsent,
                            HeaderAction::Append if SINGLE_VALUED.contains(&&*name) => {
                                return Err(ConfigError::new(
                                    header_field,
                                    format!("`{name}` must never appear twice; use `set` or `set_if_absent`"),
                                ));
                            }
                            HeaderAction::Append => WriteMode::Append,
                            _ => WriteMode::Set,
                        };
                        writes.0.push(Write {
                            name,
                            value: value.clone().into(),
                            mode,
                            scheme: SchemeScope::Any,
                            first: false,
                        });
                    }
                }
            }
        }

        let remove = layer
            .remove
            .clone()
            .unwrap_or_else(|| vec!["x-powered-by".into()]);
        for (i, raw) in remove.iter().enumerate() {
            let removal_field = field_of(&format!("remove[{i}]"));
            let name = check_header_name(&removal_field, raw)?;
            if writes.0.iter().any(|w| w.name == name) {
                return Err(ConfigError::new(
                    removal_field,
                    format!("`{name}` is both removed and written; keep one"),
                ));
            }
            if !removals.contains(&name) {
                removals.push(name);
            }
        }
        if layer.remove_owasp_list == Some(true) {
            for name in OWASP_REMOVE {
                if !removals.iter().any(|r| **r == **name)
                    && !writes.0.iter().any(|w| *w.name == **name)
                {
                    removals.push((*name).into());
                }
            }
        }

        let cache_defaults =
            cache_control::compile(&field_of("cache_control"), layer.cache_control.as_ref())?;
        let content_types = content_type::compile(
            &field_of("content_types_by_extension"),
            layer.content_types_by_extension.as_ref(),
        )?;
        // These helpers decide from the upstream's header; a rule that also writes or removes it would make the
        // outcome depend on the order of operations.
        for (header, helper, used) in [
            ("cache-control", "cache_control", !cache_defaults.is_empty()),
            (
                "content-type",
                "content_types_by_extension",
                !content_types.is_empty(),
            ),
        ] {
            let written = writes.0.iter().any(|w| &*w.name == header);
            if used && (written || removals.iter().any(|r| &**r == header)) {
                return Err(ConfigError::new(
                    field_of(helper),
                    format!(
                        "`{header}` is also written or removed by this rule; keep one of the two"
                    ),
                ));
            }
        }

        mark_first_writes(&mut writes.0);
        Ok(Rule {
            name: name.into(),
            field: field.into(),
            matcher,
            observe: layer.mode == Some(Mode::Observe),
            removals,
            writes: writes.0,
            cache_defaults,
            keep_upstream_cache_control: keep.iter().any(|k| &**k == "cache-control"),
            content_types,
            keep_upstream_content_type: keep.iter().any(|k| &**k == "content-type"),
            inline_script_hashes,
            streaming_paths: layer
                .streaming_paths
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, prefix)| {
                    url_path_prefix(&field_of(&format!("streaming_paths[{i}]")), prefix)
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

fn keep_upstream(field: &str, names: Option<&[String]>) -> Result<Vec<Box<str>>, ConfigError> {
    match names {
        None => Ok(DEFAULT_KEEP_UPSTREAM.iter().map(|n| (*n).into()).collect()),
        Some(names) => names
            .iter()
            .enumerate()
            .map(|(i, n)| check_header_name(&format!("{field}[{i}]"), n))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, mode: WriteMode, scheme: SchemeScope) -> Write {
        Write {
            name: name.into(),
            value: "v".into(),
            mode,
            scheme,
            first: false,
        }
    }

    #[test]
    fn a_write_is_first_unless_an_earlier_one_names_it_on_a_scheme_both_allow() {
        use SchemeScope::{Any, HttpOnly, HttpsOnly};
        let mut writes = [
            write("a", WriteMode::Set, Any),
            write("a", WriteMode::Set, HttpsOnly),
            write("b", WriteMode::Set, HttpsOnly),
            write("b", WriteMode::Set, HttpOnly),
            write("b", WriteMode::SetIfAbsent, Any),
            write("c", WriteMode::Append, Any),
            write("c", WriteMode::Set, Any),
            write("d", WriteMode::Set, HttpOnly),
        ];
        mark_first_writes(&mut writes);
        let first: Vec<bool> = writes.iter().map(|w| w.first).collect();
        assert_eq!(first, [true, false, true, true, false, true, false, true]);
    }
}
