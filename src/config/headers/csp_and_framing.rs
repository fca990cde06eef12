//! Content-Security-Policy, its Report-Only twin, X-Frame-Options and Reporting-Endpoints, which depend on one
//! another (frame-ancestors, the report collector), and the template of the per-document CSP that
//! `inline_script_hashes` fills.

use super::Writes;
use crate::config::csp::{check_ancestors, Csp};
use crate::config::rule::SchemeScope;
use crate::config::schema::{Layer, Toggle};
use crate::error::ConfigError;
use crate::inline_script_hashes::hashed_csp::{self, InlineScriptHashes};
use crate::report_collector::ReportCollector;

/// CSP, CSP-Report-Only and the anti-clickjacking pair. frame-ancestors goes into the enforced CSP; when the
/// CSP is report-only (or absent) it gets an enforced CSP of its own, so observing a CSP never drops framing
/// protection. X-Frame-Options follows the enforced frame-ancestors for browsers without CSP 2.
pub fn compile(
    field_of: &dyn Fn(&str) -> String,
    layer: &Layer,
    reports: Option<&ReportCollector>,
    writes: &mut Writes,
) -> Result<Option<InlineScriptHashes>, ConfigError> {
    let ancestors = match &layer.frame_ancestors {
        Some(Toggle::On(sources)) => {
            check_ancestors(&field_of("frame_ancestors"), sources)?;
            Some(sources.clone())
        }
        _ => None,
    };
    let mut enforced = Csp::default();
    let mut report_only = None;
    if let Some(Toggle::On(spec)) = &layer.content_security_policy {
        let field = field_of("content_security_policy");
        let Some(directives) = &spec.directives else {
            return Err(ConfigError::new(format!("{field}.directives"), "required"));
        };
        let mut csp = Csp::parse(&format!("{field}.directives"), directives)?;
        if csp.is_empty() {
            return Err(ConfigError::new(
                format!("{field}.directives"),
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
            let endpoint = format!("{group}=\"{}\"", collector.url_path);
            writes.set("reporting-endpoints", endpoint, SchemeScope::Any);
        }
    }
    let Some(Toggle::On(spec)) = &layer.inline_script_hashes else {
        return Ok(None);
    };
    let field = field_of("inline_script_hashes");
    let (header, csp) = match &report_only {
        Some(csp) => ("content-security-policy-report-only", csp),
        None => ("content-security-policy", &enforced),
    };
    let Some(slotted) = csp.with_script_slot(hashed_csp::SLOT) else {
        return Err(ConfigError::new(
            field,
            "needs a content_security_policy with a script-src (or script-src-elem) directive",
        ));
    };
    let strict_dynamic = spec.strict_dynamic == Some(true);
    let listed = ["script-src", "script-src-elem"].into_iter().find(|d| {
        csp.get(d)
            .is_some_and(|s| s.iter().any(|s| s == "'strict-dynamic'"))
    });
    if let (true, Some(directive)) = (strict_dynamic, listed) {
        return Err(ConfigError::new(
            format!("{field}.strict_dynamic"),
            format!("the CSP's {directive} already lists 'strict-dynamic'; keep one of the two"),
        ));
    }
    let limit =
        |name: &str, value: Option<u64>, default: u64, range: std::ops::RangeInclusive<u64>| {
            let value = value.unwrap_or(default);
            if range.contains(&value) {
                Ok(usize::try_from(value).unwrap_or(usize::MAX))
            } else {
                Err(ConfigError::new(
                    format!("{field}.{name}"),
                    format!("{value} is outside {}..={}", range.start(), range.end()),
                ))
            }
        };
    Ok(Some(InlineScriptHashes {
        header,
        https: InlineScriptHashes::split(&slotted.render(true)),
        http: InlineScriptHashes::split(&slotted.render(false)),
        max_scripts: limit(
            "max_scripts",
            spec.max_scripts,
            hashed_csp::DEFAULT_MAX_SCRIPTS,
            1..=64,
        )?,
        max_body_bytes: limit(
            "max_body_bytes",
            spec.max_body_bytes,
            hashed_csp::DEFAULT_MAX_BODY_BYTES,
            1024..=hashed_csp::MAX_BODY_BYTES_LIMIT,
        )?,
        strict_dynamic,
        last_document: Default::default(),
    }))
}

/// Points a CSP at the built-in collector unless the policy names its own report destination.
fn report_to_collector(csp: &mut Csp, collector: &ReportCollector) {
    if csp.get("report-uri").is_some() || csp.get("report-to").is_some() {
        return;
    }
    csp.set_default("report-uri", &[collector.url_path.to_string()]);
    if let Some(group) = &collector.report_to {
        csp.set_default("report-to", &[group.to_string()]);
    }
}
