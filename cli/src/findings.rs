//! What a scanner would say about one response: the OWASP ZAP baseline's passive header rules (from their
//! published descriptions; the first seven as tests/e2e/zap_rules.py judges them, which an e2e test ties to
//! this), weak values and duplicates.

use crate::exchange::Response;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// A ZAP rule id (`10038`), or `weak`, `duplicate`, `policy`, `changed`.
    pub id: String,
    pub severity: Severity,
    pub detail: String,
}

impl Finding {
    pub fn new(id: &str, severity: Severity, detail: impl Into<String>) -> Finding {
        Finding {
            id: id.to_string(),
            severity,
            detail: detail.into(),
        }
    }
}

/// The security headers `check` lists as present or missing.
pub const SECURITY_HEADERS: &[&str] = &[
    "strict-transport-security",
    "content-security-policy",
    "x-content-type-options",
    "x-frame-options",
    "referrer-policy",
    "permissions-policy",
    "cross-origin-opener-policy",
    "cross-origin-embedder-policy",
    "cross-origin-resource-policy",
];

/// A year: what HSTS preload lists and scanners ask for.
const HSTS_MIN_MAX_AGE: u64 = 31_536_000;

/// Every finding for one response.
pub fn scan(response: &Response, https: bool) -> Vec<Finding> {
    let mut findings = Vec::new();
    let mut add =
        |id: &str, severity, detail: String| findings.push(Finding::new(id, severity, detail));
    let status = response.status;
    let content_type = response
        .values("content-type")
        .first()
        .map(|c| c.to_ascii_lowercase())
        .unwrap_or_default();
    let html = content_type.contains("html");
    let javascript = content_type.contains("javascript") || content_type.contains("ecmascript");
    let ok = status < 300;
    let redirect = (300..400).contains(&status);
    let csp = response.values("content-security-policy");
    let shown = |name: &str| format!("{name} {:?}", response.values(name));

    if html && ok && !csp.iter().any(|c| c.contains("frame-ancestors")) {
        let xfo = response.values("x-frame-options");
        let good = matches!(xfo.as_slice(), [v] if v.eq_ignore_ascii_case("deny") || v.eq_ignore_ascii_case("sameorigin"));
        if !good {
            add("10020", Severity::Medium, shown("x-frame-options"));
        }
    }
    if ok && response.values("x-content-type-options") != ["nosniff"] {
        add("10021", Severity::Low, shown("x-content-type-options"));
    }
    let hsts = response.values("strict-transport-security");
    if https {
        match hsts.as_slice() {
            [value] => match hsts_max_age(value) {
                None | Some(0) => add("10035", Severity::Low, shown("strict-transport-security")),
                Some(age) if age < HSTS_MIN_MAX_AGE => add(
                    "weak",
                    Severity::Low,
                    format!("strict-transport-security max-age={age} is less than a year"),
                ),
                Some(_) => {}
            },
            _ => add("10035", Severity::Low, shown("strict-transport-security")),
        }
    } else if !hsts.is_empty() {
        add(
            "10035",
            Severity::Low,
            format!("strict-transport-security on plain http: {hsts:?}"),
        );
    }
    if !response.values("server").is_empty() {
        add("10036", Severity::Low, shown("server"));
    }
    if !response.values("x-powered-by").is_empty() {
        add("10037", Severity::Low, shown("x-powered-by"));
    }
    if html && !redirect && csp.is_empty() {
        let detail = if response
            .values("content-security-policy-report-only")
            .is_empty()
        {
            "no Content-Security-Policy"
        } else {
            "only Content-Security-Policy-Report-Only, which enforces nothing"
        };
        add("10038", Severity::Medium, detail.to_string());
    }
    if (html || javascript) && ok && response.values("permissions-policy").is_empty() {
        add("10063", Severity::Low, "no Permissions-Policy".to_string());
    }
    if html && ok {
        for value in &csp {
            for weakness in csp_weaknesses(value) {
                add("10055", Severity::Medium, weakness);
            }
        }
        for (name, want) in [
            ("cross-origin-opener-policy", "same-origin"),
            ("cross-origin-embedder-policy", "require-corp"),
        ] {
            if !response.values(name).iter().any(|v| v.starts_with(want)) {
                add(
                    "90004",
                    Severity::Low,
                    format!("{name} is not {want}: {:?}", response.values(name)),
                );
            }
        }
        let cache = response
            .values("cache-control")
            .join(", ")
            .to_ascii_lowercase();
        if !["no-store", "no-cache", "private"]
            .iter()
            .any(|d| cache.contains(d))
        {
            add(
                "10015",
                Severity::Info,
                format!("cache-control {cache:?} lets shared caches keep the page"),
            );
        }
    }
    if ok && response.values("cross-origin-resource-policy").is_empty() {
        add(
            "90004",
            Severity::Low,
            "no Cross-Origin-Resource-Policy".to_string(),
        );
    }
    if ok && status != 204 && content_type.is_empty() {
        add("10019", Severity::Info, "no Content-Type".to_string());
    }
    for name in SECURITY_HEADERS {
        let values = response.values(name);
        if values.len() > 1 {
            add(
                "duplicate",
                Severity::Low,
                format!("{name} sent {} times: {values:?}", values.len()),
            );
        }
    }
    findings
}

/// `max-age` of an HSTS value, quoted or not; None when absent, not first, or not a number.
fn hsts_max_age(value: &str) -> Option<u64> {
    // As ZAP reads it: max-age must come first.
    let (name, age) = value.split(';').next()?.split_once('=')?;
    name.trim()
        .eq_ignore_ascii_case("max-age")
        .then(|| age.trim().trim_matches('"').parse().ok())?
}

/// ZAP 10055's CSP checks: unsafe sources, wildcards, directives without a fallback.
fn csp_weaknesses(csp: &str) -> Vec<String> {
    let directives: Vec<(String, Vec<&str>)> = csp
        .split(';')
        .filter_map(|d| {
            let mut words = d.split_ascii_whitespace();
            let name = words.next()?.to_ascii_lowercase();
            Some((name, words.collect()))
        })
        .collect();
    let sources = |name: &str| directives.iter().find(|(n, _)| n == name).map(|(_, s)| s);
    let mut weaknesses = Vec::new();
    for (directive, fallback) in [("script-src", "default-src"), ("style-src", "default-src")] {
        if let Some(list) = sources(directive).or_else(|| sources(fallback)) {
            if list.contains(&"'unsafe-inline'")
                && !list
                    .iter()
                    .any(|s| s.starts_with("'sha") || s.starts_with("'nonce-"))
            {
                weaknesses.push(format!("{directive} allows 'unsafe-inline'"));
            }
        }
    }
    for (name, list) in &directives {
        if list
            .iter()
            .any(|s| *s == "*" || *s == "https:" || *s == "http:" || s.starts_with("*."))
        {
            weaknesses.push(format!("{name} has a wildcard source"));
        }
    }
    for directive in ["frame-ancestors", "form-action"] {
        if sources(directive).is_none() {
            weaknesses.push(format!("no {directive} (it has no default-src fallback)"));
        }
    }
    weaknesses
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)]) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn ids(findings: &[Finding]) -> Vec<&str> {
        findings.iter().map(|f| f.id.as_str()).collect()
    }

    const GOOD_PAGE: &[(&str, &str)] = &[
        ("content-type", "text/html"),
        (
            "content-security-policy",
            "default-src 'self'; form-action 'self'; frame-ancestors 'none'",
        ),
        ("x-content-type-options", "nosniff"),
        ("strict-transport-security", "max-age=63072000"),
        ("permissions-policy", "camera=()"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-embedder-policy", "require-corp"),
        ("cross-origin-resource-policy", "same-origin"),
        ("cache-control", "no-store"),
    ];

    #[test]
    fn each_rule_from_a_table_of_header_sets() {
        let with = |extra: &[(&'static str, &'static str)], without: &[&str]| {
            let mut headers: Vec<(&str, &str)> = GOOD_PAGE
                .iter()
                .copied()
                .filter(|(n, _)| !without.contains(n))
                .collect();
            headers.extend_from_slice(extra);
            headers
        };
        // (headers, https, the finding ids expected in order)
        type Case<'a> = (Vec<(&'a str, &'a str)>, bool, Vec<&'a str>);
        let table: Vec<Case> = vec![
            (with(&[], &[]), true, vec![]),
            (
                with(&[], &["content-security-policy"]),
                true,
                vec!["10020", "10038"],
            ),
            (
                with(&[("x-frame-options", "DENY")], &["content-security-policy"]),
                true,
                vec!["10038"],
            ),
            (with(&[], &["x-content-type-options"]), true, vec!["10021"]),
            (
                with(&[], &["strict-transport-security"]),
                true,
                vec!["10035"],
            ),
            (with(&[], &[]), false, vec!["10035"]),
            (with(&[("server", "nginx/1.2")], &[]), true, vec!["10036"]),
            (
                with(&[("x-powered-by", "Express")], &[]),
                true,
                vec!["10037"],
            ),
            (with(&[], &["permissions-policy"]), true, vec!["10063"]),
            (
                with(
                    &[(
                        "content-security-policy",
                        "script-src 'self' 'unsafe-inline' *",
                    )],
                    &["content-security-policy"],
                ),
                true,
                vec!["10020", "10055", "10055", "10055", "10055"],
            ),
            (
                with(&[], &["cross-origin-opener-policy"]),
                true,
                vec!["90004"],
            ),
            (
                with(&[], &["cross-origin-resource-policy"]),
                true,
                vec!["90004"],
            ),
            (with(&[], &["cache-control"]), true, vec!["10015"]),
            (with(&[], &["content-type"]), true, vec!["10019"]),
            (
                with(&[("x-content-type-options", "nosniff")], &[]),
                true,
                vec!["10021", "duplicate"],
            ),
            (
                with(
                    &[("strict-transport-security", "max-age=300")],
                    &["strict-transport-security"],
                ),
                true,
                vec!["weak"],
            ),
            (
                with(
                    &[
                        ("content-security-policy-report-only", "default-src 'self'"),
                        ("x-frame-options", "DENY"),
                    ],
                    &["content-security-policy"],
                ),
                true,
                vec!["10038"],
            ),
        ];
        for (i, (headers, https, want)) in table.iter().enumerate() {
            let got = scan(&response(200, headers), *https);
            assert_eq!(ids(&got), *want, "case {i}: {got:?}");
        }
    }

    #[test]
    fn report_only_alone_is_named_and_redirects_skip_page_rules() {
        let got = scan(
            &response(
                200,
                &[
                    ("content-type", "text/html"),
                    ("content-security-policy-report-only", "x"),
                ],
            ),
            false,
        );
        assert!(got
            .iter()
            .any(|f| f.id == "10038" && f.detail.contains("Report-Only")));
        let redirect = scan(&response(302, &[("content-type", "text/html")]), false);
        assert_eq!(ids(&redirect), Vec::<&str>::new());
    }
}
