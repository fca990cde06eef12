//! `inline_script_hashes`: a document's CSP carries the hashes of exactly its inline scripts in place of
//! 'unsafe-inline'; every case the scan cannot vouch for falls back to the rule's static CSP and is counted.

mod common;

use common::{get, policy, Counts, Response, ResponseValues};
use secure_headers::{DocumentHold, Fallback, HoldLimits, Policy};

const TWO_SCRIPTS: &[u8] =
    b"<!doctype html><script>theme()</script><div><script>boot()</script></div>";
// sha256 of "theme()" and "boot()", from Python's hashlib.
const THEME: &str = "'sha256-Rfr3GgHZFiXm+TmNr+li+0sZ4J9FGllo8jsXcJF5XZ8='";
const BOOT: &str = "'sha256-MeZS89WlF0u+o0hCvHTBt4q1WHU+U+sJKgbdRUc36mY='";

fn hashing() -> Policy {
    policy(r#"{"presets": ["immich"], "inline_script_hashes": {"max_scripts": 2}}"#)
}

fn document(p: &Policy, headers: &[(&str, &[u8])], body: &[u8]) -> (Response, Counts) {
    let mut response = Response::new(200, headers);
    let mut counts = Counts::default();
    let facts = p.inspect_request(&mut get("h", "/", "https"));
    p.apply_document(&facts, &mut response, body, &mut counts);
    (response, counts)
}

type Header = (&'static str, &'static [u8]);

const HTML: Header = ("content-type", b"text/html; charset=utf-8");

#[test]
fn the_csp_allows_exactly_the_documents_inline_scripts() {
    let (r, counts) = document(&hashing(), &[HTML], TWO_SCRIPTS);
    let csp = r.one("content-security-policy").unwrap();
    let script_src = csp
        .split("; ")
        .find(|d| d.starts_with("script-src "))
        .unwrap();
    assert_eq!(
        script_src,
        format!("script-src 'self' 'wasm-unsafe-eval' https://www.gstatic.com {THEME} {BOOT}")
    );
    assert!(
        csp.contains("script-src-attr 'none'"),
        "event handlers stay blocked"
    );
    assert_eq!(counts.get("inline_scripts.documents_hashed"), 1);
    assert_eq!(counts.get("inline_scripts.scripts_hashed"), 2);
}

#[test]
fn the_hashes_follow_the_document() {
    let (a, _) = document(&hashing(), &[HTML], b"<script>theme()</script>");
    let (b, _) = document(&hashing(), &[HTML], b"<script>boot()</script>");
    assert!(a.one("content-security-policy").unwrap().contains(THEME));
    assert!(b.one("content-security-policy").unwrap().contains(BOOT));
    assert!(!b.one("content-security-policy").unwrap().contains(THEME));
}

#[test]
fn every_fallback_sends_the_static_csp_and_counts_its_reason() {
    let static_csp = |r: &Response| {
        r.one("content-security-policy")
            .unwrap()
            .contains("script-src 'self' 'unsafe-inline'")
    };
    let three = b"<script>a()</script><script>b()</script><script>c()</script>";
    let cases: [(&[Header], &[u8], &str); 8] = [
        (&[HTML], three, "too_many_scripts"),
        (
            &[HTML, ("content-encoding", b"gzip")],
            TWO_SCRIPTS,
            "compressed",
        ),
        (
            &[("content-type", b"text/html; charset=iso-8859-1")],
            TWO_SCRIPTS,
            "encoding",
        ),
        (&[("content-type", b"text/html")], TWO_SCRIPTS, "encoding"),
        (&[HTML], b"<script>caf\xe9()</script>", "not_utf8"),
        (&[HTML], b"<frameset><script>x()</script>", "markup"),
        (
            &[("content-type", b"text/html")],
            b"<meta charset=utf-8><p><meta charset=iso-2022-jp>",
            "encoding",
        ),
        (
            &[HTML],
            b"<svg><script>x()</script></svg>",
            "foreign_content",
        ),
    ];
    for (headers, body, reason) in cases {
        let (r, counts) = document(&hashing(), headers, body);
        assert!(
            static_csp(&r),
            "{reason}: {:?}",
            r.one("content-security-policy")
        );
        assert_eq!(
            counts.get(&format!("inline_scripts.fallback.{reason}")),
            1,
            "{counts:?}"
        );
        assert_eq!(counts.get("inline_scripts.documents_hashed"), 0);
    }
    let small =
        policy(r#"{"presets": ["immich"], "inline_script_hashes": {"max_body_bytes": 1024}}"#);
    let (r, counts) = document(&small, &[HTML], &[b' '; 2000]);
    assert!(static_csp(&r));
    assert_eq!(counts.get("inline_scripts.fallback.too_large"), 1);
}

#[test]
fn an_upstream_csp_the_rule_keeps_is_left_alone() {
    let upstream = (
        "content-security-policy",
        &b"script-src 'self' 'unsafe-inline'"[..],
    );
    let (r, counts) = document(&hashing(), &[HTML, upstream], TWO_SCRIPTS);
    assert_eq!(
        r.one("content-security-policy").as_deref(),
        Some("script-src 'self' 'unsafe-inline'")
    );
    assert_eq!(counts.get("inline_scripts.fallback.upstream_csp"), 1);
}

#[test]
fn other_responses_are_not_hashed() {
    let (r, counts) = document(&hashing(), &[("content-type", b"application/json")], b"{}");
    assert!(
        counts.0.keys().all(|k| !k.starts_with("inline_scripts")),
        "{counts:?}"
    );
    assert!(r
        .one("content-security-policy")
        .unwrap()
        .contains("'unsafe-inline'"));
}

#[test]
fn a_report_only_csp_gets_the_hashes_in_the_report_only_header() {
    let p = policy(
        r#"{"presets": ["immich"], "content_security_policy": {"report_only": true},
            "inline_script_hashes": {}}"#,
    );
    let (r, _) = document(&p, &[HTML], TWO_SCRIPTS);
    let ro = r.one("content-security-policy-report-only").unwrap();
    assert!(
        ro.contains(THEME)
            && ro.contains(BOOT)
            && !ro.contains("script-src 'self' 'unsafe-inline'")
    );
    assert_eq!(
        r.one("content-security-policy").as_deref(),
        Some("frame-ancestors 'self'")
    );
}

#[test]
fn the_option_needs_a_script_src() {
    let err =
        Policy::parse(br#"{"presets": ["bundle-a"], "inline_script_hashes": {}}"#).unwrap_err();
    assert_eq!(err.field, "inline_script_hashes");
    assert!(err.reason.contains("script-src"), "{err}");
    let err =
        Policy::parse(br#"{"presets": ["immich"], "inline_script_hashes": {"max_scripts": 0}}"#)
            .unwrap_err();
    assert_eq!(err.field, "inline_script_hashes.max_scripts");
}

fn strict() -> Policy {
    policy(
        r#"{"presets": ["immich"], "inline_script_hashes": {"max_scripts": 2, "strict_dynamic": true}}"#,
    )
}

fn script_src(response: &Response, header: &str) -> String {
    let csp = response.one(header).unwrap();
    let directive = csp
        .split("; ")
        .find(|d| d.starts_with("script-src "))
        .unwrap();
    directive.to_string()
}

/// `immich-strict` is `immich` with the hashes and 'strict-dynamic': the same headers on every response, and the
/// same per-document CSP as the option written over `immich`.
#[test]
fn the_immich_strict_preset_is_immich_with_strict_dynamic_hashes() {
    let preset = policy(r#"{"presets": ["immich-strict"]}"#);
    let (a, _) = document(&preset, &[HTML], TWO_SCRIPTS);
    let (b, _) = document(&strict(), &[HTML], TWO_SCRIPTS);
    assert_eq!(a.headers, b.headers);
    assert!(script_src(&a, "content-security-policy").contains("'strict-dynamic'"));
    let (plain, _) = document(&policy(r#"{"presets": ["immich"]}"#), &[HTML], TWO_SCRIPTS);
    let static_csp = plain.one("content-security-policy").unwrap();
    let (fallback, counts) = document(
        &preset,
        &[HTML],
        b"<script>a()</script><script>b()</script><script>c()</script>",
    );
    assert_eq!(fallback.one("content-security-policy").unwrap(), static_csp);
    assert_eq!(counts.get("inline_scripts.fallback.too_many_scripts"), 1);
}

#[test]
fn strict_dynamic_goes_beside_the_hashes_and_keeps_the_host_sources_as_fallback() {
    let (r, counts) = document(&strict(), &[HTML], TWO_SCRIPTS);
    assert_eq!(
        script_src(&r, "content-security-policy"),
        format!(
            "script-src 'self' 'wasm-unsafe-eval' https://www.gstatic.com 'strict-dynamic' {THEME} {BOOT}"
        )
    );
    assert_eq!(counts.get("inline_scripts.documents_hashed"), 1);
    // Served again (the remembered document): the same CSP.
    let (again, _) = document(&strict(), &[HTML], TWO_SCRIPTS);
    assert_eq!(
        again.one("content-security-policy"),
        r.one("content-security-policy")
    );
}

/// Browsers honour 'strict-dynamic' only beside a hash: alone it would block the document's `<script src>`
/// ('self' among them) with no hashed script to load anything instead.
#[test]
fn a_document_without_inline_scripts_gets_no_strict_dynamic() {
    let body: &[u8] = b"<!doctype html><script src=/app.js></script>";
    let (r, counts) = document(&strict(), &[HTML], body);
    assert_eq!(
        script_src(&r, "content-security-policy"),
        "script-src 'self' 'wasm-unsafe-eval' https://www.gstatic.com"
    );
    assert_eq!(counts.get("inline_scripts.documents_hashed"), 1);
}

#[test]
fn a_fallback_under_strict_dynamic_gets_the_static_csp_without_it() {
    let (r, counts) = document(
        &strict(),
        &[HTML],
        b"<script>a()</script><script>b()</script><script>c()</script>",
    );
    assert_eq!(
        script_src(&r, "content-security-policy"),
        "script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval' https://www.gstatic.com"
    );
    assert_eq!(counts.get("inline_scripts.fallback.too_many_scripts"), 1);
}

#[test]
fn strict_dynamic_in_a_report_only_csp_and_in_script_src_elem() {
    let p = policy(
        r#"{"presets": ["immich"], "content_security_policy": {"report_only": true,
              "directives": {"script-src-elem": ["'self'", "https://cast.example"]}},
            "inline_script_hashes": {"strict_dynamic": true}}"#,
    );
    let (r, _) = document(&p, &[HTML], TWO_SCRIPTS);
    let ro = r.one("content-security-policy-report-only").unwrap();
    assert!(
        ro.contains(&format!(
            "script-src-elem 'self' https://cast.example 'strict-dynamic' {THEME} {BOOT}"
        )),
        "{ro}"
    );
    assert_eq!(
        r.one("content-security-policy").as_deref(),
        Some("frame-ancestors 'self'")
    );
}

#[test]
fn strict_dynamic_is_refused_where_no_hash_or_nonce_stands_beside_it() {
    for (raw, field) in [
        (
            r#"{"presets": ["bundle-a"], "inline_script_hashes": {"strict_dynamic": true}}"#,
            "inline_script_hashes",
        ),
        (
            r#"{"content_security_policy": {"directives": {"script-src": ["'strict-dynamic'", "https://a.example"]}}}"#,
            "content_security_policy.directives.script-src",
        ),
        (
            r#"{"rules": [{"presets": ["immich"], "inline_script_hashes": {},
                "content_security_policy": {"directives": {"script-src-elem": ["'self'", "'strict-dynamic'"]}}}]}"#,
            "rules[0].content_security_policy.directives.script-src-elem",
        ),
        (
            r#"{"presets": ["immich"], "inline_script_hashes": {"strict_dynamic": true},
                "content_security_policy": {"directives": {"script-src": ["'nonce-abcdefgh'", "'strict-dynamic'"]}}}"#,
            "inline_script_hashes.strict_dynamic",
        ),
    ] {
        let err = Policy::parse(raw.as_bytes()).unwrap_err();
        assert_eq!(err.field, field, "{raw}: {err}");
    }
    // Beside a hash or a nonce written in the policy, the directive's own 'strict-dynamic' is the user's.
    for raw in [
        r#"{"content_security_policy": {"directives": {"script-src": ["'strict-dynamic'", "'nonce-abcdefgh'"]}}}"#,
        r#"{"content_security_policy": {"directives": {"default-src": ["'sha256-RFWPLDbv2BY+rCkDzsE+0fr8ylGr2R2faWMhq4lfEQc='", "'strict-dynamic'"]}}}"#,
        r#"{"content_security_policy": {"directives": {"style-src": ["'self'"], "script-src-attr": ["'strict-dynamic'"]}}}"#,
    ] {
        Policy::parse(raw.as_bytes()).unwrap();
    }
}

/// Traefik now holds every GET/HEAD that need not stream; only a 2xx HTML response under a hashing rule has its
/// body copied into the module, so a large download on a held path never grows the guest's memory.
#[test]
fn only_a_2xx_html_response_under_a_hashing_rule_has_its_body_read() {
    let wants = |p: &Policy, status: u16, content_type: &'static [u8]| {
        let facts = p.inspect_request(&mut get("h", "/", "https"));
        p.wants_response_body(
            &facts,
            &mut Response::new(status, &[("content-type", content_type)]),
        )
    };
    let p = hashing();
    assert!(wants(&p, 200, b"text/html; charset=utf-8"));
    assert!(wants(&p, 200, b"TEXT/HTML"));
    for (status, content_type) in [
        (200, &b"video/mp4"[..]),
        (200, b"application/json"),
        (200, b"application/octet-stream"),
        (304, b"text/html"),
        (404, b"text/html"),
    ] {
        assert!(
            !wants(&p, status, content_type),
            "{status} {content_type:?}"
        );
    }
    assert!(!wants(
        &policy(r#"{"presets": ["immich"]}"#),
        200,
        b"text/html"
    ));
}

/// Envoy in-stream decides from the response headers alone whether to hold a document's body: never for a body
/// that cannot be hashed, and never more of it than the rule's cap.
#[test]
fn a_document_is_held_only_when_its_body_can_be_hashed() {
    let hold = |p: &Policy, status: u16, headers: &[(&'static str, &'static [u8])]| {
        let facts = p.inspect_request(&mut get("h", "/", "https"));
        let unlimited = HoldLimits {
            declared_length: usize::MAX,
            unknown_length: usize::MAX,
        };
        p.document_hold(&facts, &mut Response::new(status, headers), unlimited)
    };
    let small =
        policy(r#"{"presets": ["immich"], "inline_script_hashes": {"max_body_bytes": 1024}}"#);
    assert_eq!(
        hold(&small, 200, &[HTML]),
        DocumentHold::Read { max_bytes: 1024 }
    );
    assert_eq!(
        hold(&small, 200, &[HTML, ("content-length", b"1024")]),
        DocumentHold::Read { max_bytes: 1024 },
        "at the cap"
    );
    assert_eq!(
        hold(&small, 200, &[HTML, ("content-length", b"1025")]),
        DocumentHold::Unhashed(Fallback::TooLarge)
    );
    assert_eq!(
        hold(&small, 200, &[HTML, ("content-encoding", b"gzip")]),
        DocumentHold::Unhashed(Fallback::Compressed)
    );
    assert_eq!(
        hold(&small, 200, &[HTML, ("content-encoding", b" Identity ")]),
        DocumentHold::Read { max_bytes: 1024 }
    );
    let upstream_csp = ("content-security-policy", &b"script-src 'self'"[..]);
    assert_eq!(
        hold(&hashing(), 200, &[HTML, upstream_csp]),
        DocumentHold::Unhashed(Fallback::UpstreamCsp),
        "the immich preset keeps the upstream's CSP"
    );
    for (status, content_type) in [
        (200, &b"application/json"[..]),
        (404, b"text/html"),
        (304, b"text/html"),
    ] {
        assert_eq!(
            hold(&small, status, &[("content-type", content_type)]),
            DocumentHold::No
        );
    }
    assert_eq!(
        hold(&policy(r#"{"presets": ["immich"]}"#), 200, &[HTML]),
        DocumentHold::No
    );
    // Below the rule's cap, the host's own limits hold: one for a declared length, one for a chunked body.
    let facts = small.inspect_request(&mut get("h", "/", "https"));
    let limits = HoldLimits {
        declared_length: 512,
        unknown_length: 256,
    };
    let limited = |headers: &[(&'static str, &'static [u8])]| {
        small.document_hold(&facts, &mut Response::new(200, headers), limits)
    };
    assert_eq!(
        limited(&[HTML, ("content-length", b"512")]),
        DocumentHold::Read { max_bytes: 512 }
    );
    assert_eq!(
        limited(&[HTML, ("content-length", b"513")]),
        DocumentHold::Unhashed(Fallback::TooLarge)
    );
    assert_eq!(limited(&[HTML]), DocumentHold::Read { max_bytes: 256 });
    let observing =
        policy(r#"{"presets": ["immich"], "mode": "observe", "inline_script_hashes": {}}"#);
    assert_eq!(hold(&observing, 200, &[HTML]), DocumentHold::No);
}

#[test]
fn an_unhashed_document_gets_the_static_csp_and_its_reason_counted() {
    let facts = hashing().inspect_request(&mut get("h", "/", "https"));
    let mut response = Response::new(200, &[HTML]);
    let mut counts = Counts::default();
    hashing().apply_unhashed_document(&facts, &mut response, Fallback::NotHeld, &mut counts);
    assert!(response
        .one("content-security-policy")
        .unwrap()
        .contains("script-src 'self' 'unsafe-inline'"));
    assert_eq!(counts.get("inline_scripts.fallback.not_held"), 1);
    // Under a rule that does not hash, nothing is counted as a fallback.
    let plain = policy(r#"{"presets": ["immich"]}"#);
    let mut counts = Counts::default();
    plain.apply_unhashed_document(
        &facts,
        &mut Response::new(200, &[HTML]),
        Fallback::NotHeld,
        &mut counts,
    );
    assert_eq!(counts.get("inline_scripts.fallback.not_held"), 0);
}

/// One policy serving documents in turn: the rule remembers its last document, and must answer each one exactly
/// as a policy that never saw another would (the same bytes under another Content-Type or scheme included).
#[test]
fn a_remembered_document_answers_only_for_the_same_bytes_and_type() {
    let shared = hashing();
    let csp = |p: &Policy, content_type: &'static [u8], body: &[u8], scheme: &str| {
        let mut response = Response::new(200, &[("content-type", content_type)]);
        let facts = p.inspect_request(&mut get("h", "/", scheme));
        let mut counts = Counts::default();
        p.apply_document(&facts, &mut response, body, &mut counts);
        (response.one("content-security-policy").unwrap(), counts)
    };
    let utf8 = &b"text/html; charset=utf-8"[..];
    let latin1 = &b"text/html; charset=iso-8859-1"[..];
    let documents: [&[u8]; 3] = [
        b"<!doctype html><script>theme()</script>",
        b"<!doctype html><script>boot()</script>",
        b"<!doctype html><script>boot()</script><script>theme()</script>",
    ];
    for round in 0..2 {
        for body in documents {
            for content_type in [utf8, utf8, latin1, utf8] {
                for scheme in ["https", "http", "https"] {
                    let (remembered, counts) = csp(&shared, content_type, body, scheme);
                    let (fresh, fresh_counts) = csp(&hashing(), content_type, body, scheme);
                    assert_eq!(
                        remembered, fresh,
                        "round {round} {body:?} {content_type:?} {scheme}"
                    );
                    assert_eq!(counts.0, fresh_counts.0, "the same counters move");
                }
            }
        }
    }
}
