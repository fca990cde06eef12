//! The built-in CSP report collector: what it admits, what it counts, what it logs, and how a policy points
//! its CSP at it. Reports are hostile input: every refusal is checked to count nothing but the refusal.

mod common;

use common::{exchange, get, html, policy, Counts, ResponseValues};
use secure_headers::{Admission, OriginBook, Rejection, ReportCollector};

fn collector(json: &str) -> ReportCollector {
    policy(json).report_collector.expect("a collector")
}

const DEFAULT: &str = r#"{"csp_reports": {}}"#;

fn admit(
    c: &ReportCollector,
    path: &str,
    method: &str,
    content_type: &str,
    length: &str,
) -> Admission {
    let some = |s: &str| (!s.is_empty()).then(|| s.as_bytes().to_vec());
    let (path, method, content_type, length) =
        (some(path), some(method), some(content_type), some(length));
    c.admit(
        path.as_deref(),
        method.as_deref(),
        content_type.as_deref(),
        length.as_deref(),
    )
}

#[test]
fn only_a_post_of_a_report_media_type_to_the_path_is_read() {
    let c = collector(DEFAULT);
    let path = "/.well-known/csp-report";
    let csp = "application/csp-report";
    assert_eq!(admit(&c, "/", "POST", csp, "10"), Admission::Pass);
    assert_eq!(
        admit(&c, "/.well-known/csp-reports", "POST", csp, ""),
        Admission::Pass
    );
    assert_eq!(admit(&c, path, "POST", csp, "10"), Admission::ReadBody);
    assert_eq!(
        admit(&c, "/.well-known/csp-report?x=1", "POST", csp, ""),
        Admission::ReadBody
    );
    assert_eq!(
        admit(
            &c,
            path,
            "POST",
            "application/reports+json; charset=utf-8",
            ""
        ),
        Admission::ReadBody
    );
    assert_eq!(
        admit(&c, path, "GET", csp, ""),
        Admission::Reject(Rejection::Method)
    );
    assert_eq!(
        admit(&c, path, "POST", "text/plain", ""),
        Admission::Reject(Rejection::MediaType)
    );
    assert_eq!(
        admit(&c, path, "POST", "", ""),
        Admission::Reject(Rejection::MediaType)
    );
    assert_eq!(
        admit(&c, path, "POST", csp, "65537"),
        Admission::Reject(Rejection::TooLarge)
    );
    assert_eq!(admit(&c, path, "POST", csp, "65536"), Admission::ReadBody);
}

fn collect(c: &ReportCollector, body: &[u8]) -> (Result<usize, Rejection>, Counts, Vec<String>) {
    let mut counts = Counts::default();
    let mut lines = Vec::new();
    let outcome = c.collect(
        body,
        &mut OriginBook::default(),
        &mut counts,
        &mut |l: &str| lines.push(l.to_string()),
    );
    (outcome, counts, lines)
}

#[test]
fn a_report_uri_report_is_counted_by_directive_and_origin_and_logged_once() {
    let body = br#"{"csp-report": {"document-uri": "https://photos.example/share/abc?key=SECRET",
        "violated-directive": "img-src", "effective-directive": "img-src", "original-policy": "img-src 'self'",
        "disposition": "report", "blocked-uri": "https://evil.example:8443/x.png?q=1", "status-code": 200}}"#;
    let (outcome, counts, lines) = collect(&collector(DEFAULT), body);
    assert_eq!(outcome, Ok(1));
    assert_eq!(counts.get("csp_reports.accepted"), 1);
    assert_eq!(counts.get("csp_reports.directive.img-src"), 1);
    assert_eq!(
        counts.get("csp_reports.blocked.https___evil_example_8443"),
        1
    );
    assert_eq!(
        lines,
        ["csp-report directive=img-src blocked=https://evil.example:8443 document=/share/abc disposition=report"],
        "the query (share keys, tokens) never reaches the log"
    );
}

#[test]
fn a_reporting_api_batch_counts_csp_reports_and_skips_other_types() {
    let body = br#"[
        {"type": "csp-violation", "age": 1, "url": "https://a/", "body": {"documentURL": "https://a/p",
         "effectiveDirective": "script-src-elem", "blockedURL": "inline", "disposition": "enforce"}},
        {"type": "deprecation", "age": 1, "url": "https://a/", "body": {"id": "x"}},
        {"type": "csp-violation", "age": 1, "url": "https://a/", "body": {"documentURL": "https://a/p",
         "effectiveDirective": "worker-src", "blockedURL": "blob:https://a/1234", "disposition": "enforce"}}
    ]"#;
    let (outcome, counts, lines) = collect(&collector(DEFAULT), body);
    assert_eq!(outcome, Ok(2));
    assert_eq!(counts.get("csp_reports.accepted"), 2);
    assert_eq!(counts.get("csp_reports.ignored_type"), 1);
    assert_eq!(counts.get("csp_reports.blocked.inline"), 1);
    assert_eq!(counts.get("csp_reports.directive.script-src-elem"), 1);
    assert_eq!(lines.len(), 2);
    assert!(lines[1].contains("blocked=other"), "{lines:?}"); // blob:https://a/1234 is no origin
}

#[test]
fn malformed_bodies_are_refused_whole_and_count_only_the_refusal() {
    let deep = "[".repeat(10_000);
    let bad: &[&[u8]] = &[
        b"",
        b"not json",
        b"{}",
        b"[]",
        b"null",
        b"{\"csp-report\": \"x\"}",
        b"{\"csp-report\": {\"blocked-uri\": \"inline\"}}",
        b"[{\"type\": \"csp-violation\"}]",
        b"[{\"type\": \"csp-violation\", \"body\": {}}]",
        b"[{\"type\": \"csp-violation\", \"body\": {\"effectiveDirective\": \"img-src\"}}, 7]",
        deep.as_bytes(),
        b"\xff\xfe{\"csp-report\": {}}",
    ];
    for body in bad {
        let (outcome, counts, lines) = collect(&collector(DEFAULT), body);
        assert_eq!(
            outcome,
            Err(Rejection::Malformed),
            "{:?}",
            String::from_utf8_lossy(body)
        );
        assert_eq!(counts.0.len(), 1, "{counts:?}");
        assert_eq!(counts.get("csp_reports.rejected.malformed"), 1);
        assert!(lines.is_empty());
        assert_eq!(Rejection::Malformed.status(), 400);
    }
}

#[test]
fn a_body_over_the_cap_is_refused_without_being_parsed() {
    let c = collector(r#"{"csp_reports": {"max_body_bytes": 1024}}"#);
    let mut body = br#"{"csp-report": {"effective-directive": "img-src", "x": ""#.to_vec();
    body.resize(1100, b'a');
    body.extend_from_slice(b"\"}}");
    let (outcome, counts, _) = collect(&c, &body);
    assert_eq!(outcome, Err(Rejection::TooLarge));
    assert_eq!(counts.get("csp_reports.rejected.too_large"), 1);
    assert_eq!(counts.get("csp_reports.accepted"), 0);
}

#[test]
fn blocked_origins_are_bounded_so_a_flood_cannot_mint_counters() {
    let c = collector(DEFAULT);
    let mut book = OriginBook::default();
    let mut counts = Counts::default();
    for i in 0..100 {
        let body = format!(
            r#"{{"csp-report": {{"effective-directive": "connect-src", "blocked-uri": "https://h{i}.example/"}}}}"#
        );
        c.collect(body.as_bytes(), &mut book, &mut counts, &mut |_: &str| {})
            .unwrap();
    }
    let named = counts
        .0
        .keys()
        .filter(|k| k.starts_with("csp_reports.blocked.https"))
        .count();
    assert_eq!(named, 32);
    assert_eq!(counts.get("csp_reports.blocked.other"), 68);
    assert_eq!(counts.get("csp_reports.accepted"), 100);
}

#[test]
fn log_lines_carry_no_control_characters_and_unknown_directives_count_as_other() {
    let body = "{\"csp-report\": {\"effective-directive\": \"evil\\r\\ninjected\", \"blocked-uri\": \"https://a\\u0000b/\", \
        \"document-uri\": \"/p\\u001b[31m\", \"disposition\": \"report\\nx\"}}";
    let (outcome, counts, lines) = collect(&collector(DEFAULT), body.as_bytes());
    assert_eq!(outcome, Ok(1));
    assert_eq!(counts.get("csp_reports.directive.other"), 1);
    assert_eq!(counts.get("csp_reports.blocked.other"), 1);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].chars().all(|c| c.is_ascii_graphic() || c == ' '),
        "{lines:?}"
    );
}

#[test]
fn a_policy_with_the_collector_points_every_csp_at_it() {
    let p = policy(r#"{"csp_reports": {}, "presets": ["bundle-a", "bundle-e"]}"#);
    let r = exchange(&p, get("h", "/", "https"), html());
    assert_eq!(
        r.one("content-security-policy-report-only").as_deref(),
        Some("default-src 'self'; base-uri 'self'; object-src 'none'; form-action 'self'; report-uri /.well-known/csp-report")
    );
    assert_eq!(
        r.one("content-security-policy").as_deref(),
        Some("frame-ancestors 'self'; report-uri /.well-known/csp-report")
    );
    assert_eq!(r.one("reporting-endpoints"), None, "report_to is opt-in");

    let p = policy(
        r#"{"csp_reports": {"path": "/csp", "report_to": "csp-endpoint"}, "presets": ["bundle-e"]}"#,
    );
    let r = exchange(&p, get("h", "/", "https"), html());
    assert_eq!(
        r.one("content-security-policy-report-only").as_deref(),
        Some("default-src 'self'; base-uri 'self'; object-src 'none'; form-action 'self'; report-uri /csp; report-to csp-endpoint")
    );
    assert_eq!(
        r.one("reporting-endpoints").as_deref(),
        Some("csp-endpoint=\"/csp\"")
    );
}

#[test]
fn a_report_destination_the_policy_names_itself_is_kept() {
    let p = policy(
        r#"{"csp_reports": {}, "content_security_policy": {"directives": {"default-src": ["'self'"],
            "report-uri": ["https://reports.example/csp"]}}}"#,
    );
    let r = exchange(&p, get("h", "/", "https"), html());
    assert_eq!(
        r.one("content-security-policy").as_deref(),
        Some("default-src 'self'; report-uri https://reports.example/csp")
    );
}

#[test]
fn without_a_csp_no_reporting_header_is_written() {
    let p = policy(r#"{"csp_reports": {"report_to": "csp"}, "presets": ["bundle-b"]}"#);
    let r = exchange(&p, get("h", "/", "https"), html());
    assert_eq!(r.one("reporting-endpoints"), None);
    assert_eq!(r.one("content-security-policy"), None);
}
