//! A rule compiled from merged settings: every header name and value rendered once, here, at configure time.

use crate::csp::{check_ancestors, Csp};
use crate::error::ConfigError;
use crate::header_syntax::{header_name, header_value};
use crate::inline_hashing::{self, InlineHashing};
use crate::matcher::{path_prefix, Matcher, MediaPattern};
use crate::presets::OWASP_REMOVE;
use crate::report_collector::ReportCollector;
use crate::schema::{HeaderAction, HstsSpec, KeyedMap, Layer, Mode, Toggle};

/// Longest HSTS max-age accepted: two years, the OWASP value. More is almost always a typo.
pub const HSTS_MAX_AGE_LIMIT: u64 = 63_072_000;
/// The preload list asks for at least one year.
const HSTS_PRELOAD_MIN: u64 = 31_536_000;

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

const REFERRER_TOKENS: &[&str] = &[
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
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
}

#[derive(Debug)]
pub struct Rule {
    pub name: Box<str>,
    /// Where the rule is in the policy (`rules[2]`, or empty for the top level), for errors found later.
    pub path: Box<str>,
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
    pub inline_hashes: Option<InlineHashing>,
}

#[derive(Debug)]
pub struct CacheDefault {
    pub media: MediaPattern,
    pub value: Box<str>,
}

/// The Content-Type a path extension must have.
#[derive(Debug)]
pub struct ContentTypeFix {
    /// Lower case, without the dot.
    pub extension: Box<str>,
    pub content_type: Box<str>,
}

impl Rule {
    /// `layer` is already merged (presets, top level, rule); `path` prefixes every error. With a report
    /// collector, every CSP the rule writes reports to it.
    pub fn compile(
        path: &str,
        name: &str,
        matcher: Matcher,
        layer: &Layer,
        reports: Option<&ReportCollector>,
    ) -> Result<Rule, ConfigError> {
        let field = |f: &str| {
            if path.is_empty() {
                f.to_string()
            } else {
                format!("{path}.{f}")
            }
        };
        let mut writes = Writes::default();

        if layer.content_type_options == Some(true) {
            writes.set("x-content-type-options", "nosniff".into(), SchemeScope::Any);
        }
        if let Some(Toggle::On(hsts)) = &layer.hsts {
            let value = render_hsts(&field("hsts"), hsts)?;
            writes.set("strict-transport-security", value, SchemeScope::HttpsOnly);
        }
        let inline_hashes = compile_framing_and_csp(&field, layer, reports, &mut writes)?;
        if let Some(Toggle::On(policy)) = &layer.referrer_policy {
            let value = check_referrer_policy(&field("referrer_policy"), policy)?;
            writes.set("referrer-policy", value, SchemeScope::Any);
        }
        if let Some(Toggle::On(features)) = &layer.permissions_policy {
            let value = render_permissions_policy(&field("permissions_policy"), features)?;
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
                let (header, allowed) = cross_origin_header(key);
                if !allowed.contains(&value.as_str()) {
                    return Err(ConfigError::new(
                        field(key),
                        format!("`{value}` is not one of: {}", allowed.join(", ")),
                    ));
                }
                writes.set(header, value.clone(), SchemeScope::Any);
            }
        }

        let keep = keep_upstream(&field("keep_upstream"), layer.keep_upstream.as_deref())?;
        for write in &mut writes.0 {
            if write.mode == WriteMode::Set && keep.iter().any(|k| **k == *write.name) {
                write.mode = WriteMode::SetIfAbsent;
            }
        }

        let mut removals = Vec::new();
        if let Some(headers) = &layer.headers {
            for (raw_name, spec) in &headers.0 {
                let hpath = field(&format!("headers.{raw_name}"));
                let name = header_name(&hpath, raw_name)?;
                writes.0.retain(|w| w.name != name);
                let Toggle::On(spec) = spec else { continue };
                let action = spec.action.unwrap_or(HeaderAction::Set);
                match (action, &spec.value) {
                    (HeaderAction::Remove, None) => removals.push(name),
                    (HeaderAction::Remove, Some(_)) => {
                        return Err(ConfigError::new(hpath, "action `remove` takes no value"));
                    }
                    (_, None) => {
                        return Err(ConfigError::new(
                            hpath,
                            "a value is required for this action",
                        ))
                    }
                    (action, Some(value)) => {
                        header_value(&format!("{hpath}.value"), value)?;
                        let mode = match action {
                            HeaderAction::SetIfAbsent => WriteMode::SetIfAbsent,
                            HeaderAction::Append if SINGLE_VALUED.contains(&&*name) => {
                                return Err(ConfigError::new(
                                    hpath,
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
            let rpath = field(&format!("remove[{i}]"));
            let name = header_name(&rpath, raw)?;
            if writes.0.iter().any(|w| w.name == name) {
                return Err(ConfigError::new(
                    rpath,
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
            compile_cache_defaults(&field("cache_control"), layer.cache_control.as_ref())?;
        let content_types = compile_content_types(
            &field("content_types_by_extension"),
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
                    field(helper),
                    format!(
                        "`{header}` is also written or removed by this rule; keep one of the two"
                    ),
                ));
            }
        }

        Ok(Rule {
            name: name.into(),
            path: path.into(),
            matcher,
            observe: layer.mode == Some(Mode::Observe),
            removals,
            writes: writes.0,
            cache_defaults,
            keep_upstream_cache_control: keep.iter().any(|k| &**k == "cache-control"),
            content_types,
            keep_upstream_content_type: keep.iter().any(|k| &**k == "content-type"),
            inline_hashes,
            streaming_paths: layer
                .streaming_paths
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, prefix)| path_prefix(&field(&format!("streaming_paths[{i}]")), prefix))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// The writes of one rule, one per header name (a later write for a name replaces the earlier one).
#[derive(Default)]
struct Writes(Vec<Write>);

impl Writes {
    fn set(&mut self, name: &str, value: String, scheme: SchemeScope) {
        self.0.push(Write {
            name: name.into(),
            value: value.into(),
            mode: WriteMode::Set,
            scheme,
        });
    }

    /// One write when the value is the same on both schemes, otherwise one for each.
    fn set_by_scheme(&mut self, name: &str, https: String, http: String) {
        if https == http {
            self.set(name, https, SchemeScope::Any);
        } else {
            self.set(name, https, SchemeScope::HttpsOnly);
            self.set(name, http, SchemeScope::HttpOnly);
        }
    }
}

/// The header a `cross_origin_*` field writes and the values it takes.
fn cross_origin_header(field: &str) -> (&'static str, &'static [&'static str]) {
    match field {
        "cross_origin_resource_policy" => (
            "cross-origin-resource-policy",
            &["same-origin", "same-site", "cross-origin"],
        ),
        "cross_origin_opener_policy" => (
            "cross-origin-opener-policy",
            &[
                "same-origin",
                "same-origin-allow-popups",
                "noopener-allow-popups",
                "unsafe-none",
            ],
        ),
        _ => (
            "cross-origin-embedder-policy",
            &["require-corp", "credentialless", "unsafe-none"],
        ),
    }
}

fn render_hsts(path: &str, hsts: &HstsSpec) -> Result<String, ConfigError> {
    let Some(max_age) = hsts.max_age else {
        return Err(ConfigError::new(
            format!("{path}.max_age"),
            "required (seconds; 0 tells browsers to forget HSTS)",
        ));
    };
    if max_age > HSTS_MAX_AGE_LIMIT {
        return Err(ConfigError::new(
            format!("{path}.max_age"),
            format!("{max_age} is more than {HSTS_MAX_AGE_LIMIT} (two years)"),
        ));
    }
    let subdomains = hsts.include_subdomains.unwrap_or(false);
    let preload = hsts.preload.unwrap_or(false);
    if preload && !(subdomains && max_age >= HSTS_PRELOAD_MIN) {
        return Err(ConfigError::new(
            format!("{path}.preload"),
            format!("preload needs include_subdomains: true and max_age >= {HSTS_PRELOAD_MIN}"),
        ));
    }
    let mut value = format!("max-age={max_age}");
    if subdomains {
        value.push_str("; includeSubDomains");
    }
    if preload {
        value.push_str("; preload");
    }
    Ok(value)
}

/// CSP, CSP-Report-Only and the anti-clickjacking pair. frame-ancestors goes into the enforced CSP; when the
/// CSP is report-only (or absent) it gets an enforced CSP of its own, so observing a CSP never drops framing
/// protection. X-Frame-Options follows the enforced frame-ancestors for browsers without CSP 2.
fn compile_framing_and_csp(
    field: &dyn Fn(&str) -> String,
    layer: &Layer,
    reports: Option<&ReportCollector>,
    writes: &mut Writes,
) -> Result<Option<InlineHashing>, ConfigError> {
    let ancestors = match &layer.frame_ancestors {
        Some(Toggle::On(sources)) => {
            check_ancestors(&field("frame_ancestors"), sources)?;
            Some(sources.clone())
        }
        _ => None,
    };
    let mut enforced = Csp::default();
    let mut report_only = None;
    if let Some(Toggle::On(spec)) = &layer.content_security_policy {
        let path = field("content_security_policy");
        let Some(directives) = &spec.directives else {
            return Err(ConfigError::new(format!("{path}.directives"), "required"));
        };
        let mut csp = Csp::parse(&format!("{path}.directives"), directives)?;
        if csp.is_empty() {
            return Err(ConfigError::new(
                format!("{path}.directives"),
                "no directives left",
            ));
        }
        if let Some(collector) = reports {
            report_to_collector(&mut csp, collector);
        }
        if spec.report_only == Some(true) {
            writes.set_by_scheme(
                "content-security-policy-report-only",
                csp.render(true),
                csp.render(false),
            );
            report_only = Some(csp);
        } else {
            enforced = csp;
        }
    }
    if let Some(sources) = &ancestors {
        if enforced.is_empty() {
            if let Some(collector) = reports {
                report_to_collector(&mut enforced, collector);
            }
        }
        enforced.set_default("frame-ancestors", sources);
    }
    if !enforced.is_empty() {
        writes.set_by_scheme(
            "content-security-policy",
            enforced.render(true),
            enforced.render(false),
        );
    }
    let frame_options = match enforced.get("frame-ancestors") {
        Some([only]) if only == "'none'" => Some("DENY"),
        Some([only]) if only == "'self'" => Some("SAMEORIGIN"),
        _ => None,
    };
    if let Some(value) = frame_options {
        writes.set("x-frame-options", value.into(), SchemeScope::Any);
    }
    let writes_csp = writes
        .0
        .iter()
        .any(|w| w.name.starts_with("content-security-policy"));
    if let Some(collector) = reports.filter(|_| writes_csp) {
        if let Some(group) = &collector.report_to {
            let endpoint = format!("{group}=\"{}\"", collector.path);
            writes.set("reporting-endpoints", endpoint, SchemeScope::Any);
        }
    }
    let Some(Toggle::On(spec)) = &layer.inline_script_hashes else {
        return Ok(None);
    };
    let path = field("inline_script_hashes");
    let (header, csp) = match &report_only {
        Some(csp) => ("content-security-policy-report-only", csp),
        None => ("content-security-policy", &enforced),
    };
    let Some(slotted) = csp.with_script_slot(inline_hashing::SLOT) else {
        return Err(ConfigError::new(
            path,
            "needs a content_security_policy with a script-src (or script-src-elem) directive",
        ));
    };
    let limit =
        |name: &str, value: Option<u64>, default: u64, range: std::ops::RangeInclusive<u64>| {
            let value = value.unwrap_or(default);
            if range.contains(&value) {
                Ok(usize::try_from(value).unwrap_or(usize::MAX))
            } else {
                Err(ConfigError::new(
                    format!("{path}.{name}"),
                    format!("{value} is outside {}..={}", range.start(), range.end()),
                ))
            }
        };
    Ok(Some(InlineHashing {
        header,
        https: InlineHashing::split(&slotted.render(true)),
        http: InlineHashing::split(&slotted.render(false)),
        max_scripts: limit(
            "max_scripts",
            spec.max_scripts,
            inline_hashing::DEFAULT_MAX_SCRIPTS,
            1..=64,
        )?,
        max_body_bytes: limit(
            "max_body_bytes",
            spec.max_body_bytes,
            inline_hashing::DEFAULT_MAX_BODY_BYTES,
            1024..=inline_hashing::MAX_BODY_BYTES_LIMIT,
        )?,
    }))
}

/// Points a CSP at the built-in collector unless the policy names its own report destination.
fn report_to_collector(csp: &mut Csp, collector: &ReportCollector) {
    if csp.get("report-uri").is_some() || csp.get("report-to").is_some() {
        return;
    }
    csp.set_default("report-uri", &[collector.path.to_string()]);
    if let Some(group) = &collector.report_to {
        csp.set_default("report-to", &[group.to_string()]);
    }
}

fn check_referrer_policy(path: &str, policy: &str) -> Result<String, ConfigError> {
    for token in policy.split(',').map(str::trim) {
        if !REFERRER_TOKENS.contains(&token) {
            return Err(ConfigError::new(
                path,
                format!(
                    "`{token}` is not a Referrer-Policy token ({})",
                    REFERRER_TOKENS.join(", ")
                ),
            ));
        }
    }
    Ok(policy
        .split(',')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(", "))
}

fn render_permissions_policy(
    path: &str,
    features: &KeyedMap<Toggle<Vec<String>>>,
) -> Result<String, ConfigError> {
    let mut parts = Vec::new();
    for (feature, allow) in &features.0 {
        let fpath = format!("{path}.{feature}");
        let valid_name = feature
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase())
            && feature
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid_name {
            return Err(ConfigError::new(
                fpath,
                format!("`{feature}` is not a feature name (lower case, digits, -)"),
            ));
        }
        if feature == "interest-cohort" || feature == "document-domain" {
            // Browsers log "Unrecognized feature" for these in every console.
            return Err(ConfigError::new(
                fpath,
                format!("`{feature}` is no longer a feature; browsers warn about it"),
            ));
        }
        let Toggle::On(allow) = allow else { continue };
        let mut items = Vec::new();
        for (i, origin) in allow.iter().enumerate() {
            let ipath = format!("{fpath}[{i}]");
            let item = match origin.as_str() {
                "*" if allow.len() == 1 => "*".to_string(),
                "*" => return Err(ConfigError::new(ipath, "`*` must be alone")),
                "self" | "src" => origin.clone(),
                "'self'" | "'src'" | "none" | "'none'" => {
                    return Err(ConfigError::new(ipath, format!("write `self`, `src`, `*` or an origin; for none use []; got `{origin}`")));
                }
                _ => {
                    let ok = origin.split_once("://").is_some_and(|(scheme, host)| {
                        !scheme.is_empty()
                            && scheme.bytes().all(|b| b.is_ascii_alphanumeric())
                            && !host.is_empty()
                            && host
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]*".contains(&b))
                    });
                    if !ok {
                        return Err(ConfigError::new(
                            ipath,
                            format!(
                                "`{origin}` is not self, src, * or an origin (https://a.example)"
                            ),
                        ));
                    }
                    format!("\"{origin}\"")
                }
            };
            items.push(item);
        }
        if items.first().is_some_and(|i| i == "*") {
            parts.push(format!("{feature}=*"));
        } else {
            parts.push(format!("{feature}=({})", items.join(" ")));
        }
    }
    if parts.is_empty() {
        return Err(ConfigError::new(
            path,
            "no features left; use false to send no Permissions-Policy",
        ));
    }
    let value = parts.join(", ");
    header_value(path, &value)?;
    Ok(value)
}

fn keep_upstream(path: &str, names: Option<&[String]>) -> Result<Vec<Box<str>>, ConfigError> {
    match names {
        None => Ok(DEFAULT_KEEP_UPSTREAM.iter().map(|n| (*n).into()).collect()),
        Some(names) => names
            .iter()
            .enumerate()
            .map(|(i, n)| header_name(&format!("{path}[{i}]"), n))
            .collect(),
    }
}

fn compile_cache_defaults(
    path: &str,
    setting: Option<&Toggle<KeyedMap<Toggle<String>>>>,
) -> Result<Vec<CacheDefault>, ConfigError> {
    let Some(Toggle::On(map)) = setting else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (pattern, value) in &map.0 {
        let epath = format!("{path}.{pattern}");
        let media = MediaPattern::compile(&epath, pattern)?;
        let Toggle::On(value) = value else { continue };
        header_value(&epath, value)?;
        let directives_ok = value.split(',').map(str::trim).all(|d| {
            let name = d.split('=').next().unwrap_or_default();
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if !directives_ok {
            return Err(ConfigError::new(
                epath,
                format!("`{value}` is not a Cache-Control directive list (no-store, max-age=0)"),
            ));
        }
        out.push(CacheDefault {
            media,
            value: value.clone().into(),
        });
    }
    // Exact types before wildcards, so `text/html` wins over `*/*` whatever the order in the JSON.
    out.sort_by_key(|d| matches!(d.media, MediaPattern::AnySubtype(_)));
    Ok(out)
}

fn compile_content_types(
    path: &str,
    setting: Option<&Toggle<KeyedMap<Toggle<String>>>>,
) -> Result<Vec<ContentTypeFix>, ConfigError> {
    let Some(Toggle::On(map)) = setting else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (extension, content_type) in &map.0 {
        let epath = format!("{path}.{extension}");
        let bare = extension.strip_prefix('.').unwrap_or_default();
        if bare.is_empty() || !bare.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ConfigError::new(
                epath,
                format!("`{extension}` is not an extension like .ico"),
            ));
        }
        let Toggle::On(content_type) = content_type else {
            continue;
        };
        header_value(&epath, content_type)?;
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if matches!(
            MediaPattern::compile(&epath, essence)?,
            MediaPattern::AnySubtype(_)
        ) {
            return Err(ConfigError::new(epath, "a wildcard is not a content type"));
        }
        out.push(ContentTypeFix {
            extension: bare.to_ascii_lowercase().into(),
            content_type: content_type.clone().into(),
        });
    }
    Ok(out)
}
