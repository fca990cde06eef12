//! The built-in CSP report collector: one path the filter answers itself (never forwarded upstream) that takes
//! `report-uri` reports (`application/csp-report`) and Reporting API batches (`application/reports+json`),
//! counts them by effective directive and by blocked origin (at most `MAX_BLOCKED_ORIGINS` distinct ones), and
//! logs one sanitised line per report. Reports are hostile input: size-capped, fully validated before anything
//! is counted, and never copied into a header.

pub mod reply;

use crate::config::csp::directive_names;
use crate::config::schema::ReportsSpec;
use crate::config::syntax::url_path_prefix;
use crate::error::ConfigError;
use crate::http_bytes::{media_type, strip_query};
use crate::json_tree::JsonTree;
use crate::telemetry::Metrics;

pub const DEFAULT_PATH: &str = "/.well-known/csp-report";
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 * 1024;
/// Browsers send reports of a few KiB; a larger cap only helps a flood.
pub const MAX_BODY_BYTES_LIMIT: u64 = 1 << 20;
/// Distinct blocked origins counted by name; the rest count as `other`, so a flood cannot mint counters.
pub const MAX_BLOCKED_ORIGINS: usize = 32;
/// Log lines for one request body; every report in it is still counted.
const LOGGED_REPORTS_PER_BODY: usize = 10;
/// Longest field copied into a log line.
const MAX_LOGGED_FIELD: usize = 120;

const MEDIA_TYPES: &[&[u8]] = &[
    b"application/csp-report",
    b"application/reports+json",
    // Older Firefox sends report-uri reports as plain JSON.
    b"application/json",
];
/// What `blocked-uri` holds when no URL was blocked.
const BLOCKED_KEYWORDS: &[&str] = &[
    "inline",
    "eval",
    "wasm-eval",
    "self",
    "data",
    "blob",
    "trusted-types-policy",
    "trusted-types-sink",
];

pub const ACCEPTED: &str = "csp_reports.accepted";
/// Reporting API reports of other types (deprecation, intervention...) that share the endpoint.
pub const IGNORED_TYPE: &str = "csp_reports.ignored_type";
const BLOCKED_OTHER: &str = "csp_reports.blocked.other";
const DIRECTIVE_OTHER: &str = "csp_reports.directive.other";

#[derive(Debug)]
pub struct ReportCollector {
    /// The URL path the collector answers.
    pub url_path: Box<str>,
    pub max_body_bytes: usize,
    /// The Reporting API endpoint group, when the policy asks for `report-to`.
    pub report_to: Option<Box<str>>,
    /// `csp_reports.directive.<name>` for every CSP directive, built once.
    directive_counters: Vec<(&'static str, Box<str>)>,
}

/// Why a request to the collector was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Method,
    MediaType,
    TooLarge,
    Malformed,
}

impl Rejection {
    pub fn status(self) -> u16 {
        match self {
            Rejection::Method => 405,
            Rejection::MediaType => 415,
            Rejection::TooLarge => 413,
            Rejection::Malformed => 400,
        }
    }

    pub fn counter(self) -> &'static str {
        match self {
            Rejection::Method => "csp_reports.rejected.method",
            Rejection::MediaType => "csp_reports.rejected.media_type",
            Rejection::TooLarge => "csp_reports.rejected.too_large",
            Rejection::Malformed => "csp_reports.rejected.malformed",
        }
    }

    /// The reply body: fixed text, never anything from the request.
    pub fn message(self) -> &'static str {
        match self {
            Rejection::Method => "reports are POSTed\n",
            Rejection::MediaType => "send application/csp-report or application/reports+json\n",
            Rejection::TooLarge => "report too large\n",
            Rejection::Malformed => "not a CSP report\n",
        }
    }
}

/// What to do with a request, judged from its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Not for the collector: the request goes on as usual.
    Pass,
    /// Answer now with the rejection's status.
    Reject(Rejection),
    /// Read the body (at most `max_body_bytes`), then call `collect`.
    ReadBody,
}

/// The blocked origins counted by name so far (bounded), with their counter names.
#[derive(Debug, Default)]
pub struct OriginBook {
    counters: Vec<(Box<str>, Box<str>)>,
}

impl OriginBook {
    fn counter_for(&mut self, key: &str) -> &str {
        let index = match self.counters.iter().position(|(k, _)| **k == *key) {
            Some(index) => index,
            None if self.counters.len() < MAX_BLOCKED_ORIGINS => {
                let name: String = key
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect();
                self.counters
                    .push((key.into(), format!("csp_reports.blocked.{name}").into()));
                self.counters.len() - 1
            }
            None => return BLOCKED_OTHER,
        };
        self.counters.get(index).map_or(BLOCKED_OTHER, |(_, c)| c)
    }
}

/// One violation, borrowed from the parsed body.
struct Violation<'a> {
    directive: &'a str,
    blocked: &'a str,
    document: &'a str,
    disposition: &'a str,
}

impl ReportCollector {
    pub fn compile(field: &str, spec: &ReportsSpec) -> Result<ReportCollector, ConfigError> {
        let at = |name: &str| format!("{field}.{name}");
        let collector_path =
            url_path_prefix(&at("path"), spec.path.as_deref().unwrap_or(DEFAULT_PATH))?;
        // The path is written into CSP and Reporting-Endpoints values, where `;`, `,` and quotes are syntax.
        if let Some(bad) = collector_path
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-._~/%".contains(*c)))
        {
            return Err(ConfigError::new(
                at("path"),
                format!("`{bad}` is not allowed; use letters, digits and -._~/%"),
            ));
        }
        let max = spec.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
        if !(1024..=MAX_BODY_BYTES_LIMIT).contains(&max) {
            return Err(ConfigError::new(
                at("max_body_bytes"),
                format!("{max} is outside 1024..={MAX_BODY_BYTES_LIMIT}"),
            ));
        }
        let report_to = match &spec.report_to {
            Some(group) if is_group_name(group) => Some(group.as_str().into()),
            Some(group) => {
                return Err(ConfigError::new(
                    at("report_to"),
                    format!("`{group}` is not an endpoint group name (letters, digits, - and _)"),
                ))
            }
            None => None,
        };
        Ok(ReportCollector {
            url_path: collector_path,
            max_body_bytes: usize::try_from(max).unwrap_or(usize::MAX),
            report_to,
            directive_counters: directive_names()
                .map(|d| (d, format!("csp_reports.directive.{d}").into()))
                .collect(),
        })
    }

    /// Every fixed counter name, for hosts that register metrics up front.
    pub fn counter_names(&self) -> impl Iterator<Item = &str> {
        let rejections = [
            Rejection::Method,
            Rejection::MediaType,
            Rejection::TooLarge,
            Rejection::Malformed,
        ]
        .map(Rejection::counter);
        [ACCEPTED, IGNORED_TYPE, DIRECTIVE_OTHER, BLOCKED_OTHER]
            .into_iter()
            .chain(rejections)
            .chain(self.directive_counters.iter().map(|(_, c)| &**c))
    }

    /// Whether a request's URL path (which may carry a query) is the collector's.
    pub fn handles(&self, url_path: &[u8]) -> bool {
        strip_query(url_path) == self.url_path.as_bytes()
    }

    /// Decides from the request headers alone; `url_path` may carry a query.
    pub fn admit(
        &self,
        url_path: Option<&[u8]>,
        method: Option<&[u8]>,
        content_type: Option<&[u8]>,
        content_length: Option<&[u8]>,
    ) -> Admission {
        if !url_path.is_some_and(|p| self.handles(p)) {
            return Admission::Pass;
        }
        if method != Some(b"POST") {
            return Admission::Reject(Rejection::Method);
        }
        let media = content_type.map(media_type).unwrap_or_default();
        if !MEDIA_TYPES.iter().any(|m| media.eq_ignore_ascii_case(m)) {
            return Admission::Reject(Rejection::MediaType);
        }
        let declared = content_length
            .and_then(|l| std::str::from_utf8(l).ok())
            .and_then(|l| l.trim().parse::<u64>().ok());
        if declared.is_some_and(|l| l > self.max_body_bytes as u64) {
            return Admission::Reject(Rejection::TooLarge);
        }
        Admission::ReadBody
    }

    /// Validates a whole body, then counts and logs each report in it; returns how many were CSP reports.
    pub fn collect(
        &self,
        body: &[u8],
        origins: &mut OriginBook,
        metrics: &mut impl Metrics,
        log: &mut impl FnMut(&str),
    ) -> Result<usize, Rejection> {
        let parsed = if body.len() > self.max_body_bytes {
            Err(Rejection::TooLarge)
        } else {
            JsonTree::parse(body).map_err(|_| Rejection::Malformed)
        };
        let (violations, ignored) = match parsed.as_ref().map_err(|r| *r).and_then(violations) {
            Ok(found) => found,
            Err(rejection) => {
                metrics.increment(rejection.counter());
                return Err(rejection);
            }
        };
        for _ in 0..ignored {
            metrics.increment(IGNORED_TYPE);
        }
        for (i, violation) in violations.iter().enumerate() {
            metrics.increment(ACCEPTED);
            let directive = self
                .directive_counters
                .iter()
                .find(|(d, _)| violation.directive.eq_ignore_ascii_case(d));
            metrics.increment(directive.map_or(DIRECTIVE_OTHER, |(_, c)| c));
            let blocked = blocked_key(violation.blocked);
            metrics.increment(origins.counter_for(&blocked));
            if i < LOGGED_REPORTS_PER_BODY {
                log(&format!(
                    "csp-report directive={} blocked={} document={} disposition={}",
                    directive.map_or("other", |(d, _)| d),
                    blocked,
                    loggable(document_path(violation.document)),
                    loggable(violation.disposition),
                ));
            }
        }
        Ok(violations.len())
    }
}

/// The CSP violations in a body (either format) and the number of other Reporting API reports. A body with
/// anything unexpected is refused whole, so nothing of it is counted.
fn violations(body: &JsonTree) -> Result<(Vec<Violation<'_>>, usize), Rejection> {
    match body {
        // report-uri: {"csp-report": {...}} with kebab-case fields.
        object @ JsonTree::Object(_) => {
            let report = object.get("csp-report").ok_or(Rejection::Malformed)?;
            let directive = field(report, "effective-directive")
                .or_else(|| first_word(field(report, "violated-directive")))
                .ok_or(Rejection::Malformed)?;
            Ok((
                vec![Violation {
                    directive,
                    blocked: field(report, "blocked-uri").unwrap_or_default(),
                    document: field(report, "document-uri").unwrap_or_default(),
                    disposition: field(report, "disposition").unwrap_or("enforce"),
                }],
                0,
            ))
        }
        // Reporting API: [{"type": "csp-violation", "body": {...}}, ...] with camelCase fields.
        JsonTree::List(reports) if !reports.is_empty() => {
            let mut found = Vec::new();
            let mut ignored = 0;
            for report in reports {
                let kind = field(report, "type").ok_or(Rejection::Malformed)?;
                let body = report
                    .get("body")
                    .filter(|b| matches!(b, JsonTree::Object(_)));
                let body = body.ok_or(Rejection::Malformed)?;
                if kind != "csp-violation" {
                    ignored += 1;
                    continue;
                }
                found.push(Violation {
                    directive: field(body, "effectiveDirective").ok_or(Rejection::Malformed)?,
                    blocked: field(body, "blockedURL").unwrap_or_default(),
                    document: field(body, "documentURL").unwrap_or_default(),
                    disposition: field(body, "disposition").unwrap_or("enforce"),
                });
            }
            Ok((found, ignored))
        }
        _ => Err(Rejection::Malformed),
    }
}

/// A string field of an object; None when absent or not a string.
fn field<'a>(object: &'a JsonTree, name: &str) -> Option<&'a str> {
    object.get(name).and_then(JsonTree::as_str)
}

fn first_word(value: Option<&str>) -> Option<&str> {
    value?.split_ascii_whitespace().next()
}

/// What a report's blocked URI is counted as: a keyword (inline, eval, data...), an origin, or `other`.
fn blocked_key(blocked: &str) -> String {
    let blocked = blocked.trim();
    if blocked.is_empty() {
        return "none".into();
    }
    let scheme_only = blocked.strip_suffix(':').unwrap_or(blocked);
    if let Some(keyword) = BLOCKED_KEYWORDS
        .iter()
        .find(|k| scheme_only.eq_ignore_ascii_case(k))
    {
        return (*keyword).into();
    }
    let Some((scheme, rest)) = blocked.split_once("://") else {
        return "other".into();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    let origin = format!("{scheme}://{host}").to_ascii_lowercase();
    let plausible = !host.is_empty()
        && origin.len() <= 100
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if plausible {
        origin
    } else {
        "other".into()
    }
}

/// The path of a document URL: no origin, query or fragment (share links and tokens live there).
fn document_path(url: &str) -> &str {
    let after_origin = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').and_then(|i| rest.get(i..)).unwrap_or("/"),
        None => url,
    };
    after_origin.split(['?', '#']).next().unwrap_or_default()
}

/// A field as it may appear in a log line: printable ASCII without spaces, at most MAX_LOGGED_FIELD long.
fn loggable(field: &str) -> String {
    let mut out: String = field
        .chars()
        .take(MAX_LOGGED_FIELD)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect();
    if out.is_empty() {
        out.push('-');
    }
    out
}

fn is_group_name(group: &str) -> bool {
    !group.is_empty()
        && group.len() <= 64
        && group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
