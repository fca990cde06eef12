//! The companion `headers` middleware for Traefik's streamed responses: what it holds for the presets, that it
//! never changes what the plugin decides for a held response (it runs inside the plugin, so the plugin reads
//! its output as the upstream's), and that a streamed response then gets every header exactly once.

mod common;

use common::{exchange, get, html, policy, Request, Response, ResponseValues};
use secure_headers::{Companion, Hsts};
use secure_headers::{Policy, ResponseHeaders};

const IMMICH_FILE: &str = include_str!("../policies/immich.json");

/// A policy with a per-app exception, as the README's Pangolin recipe writes it.
const WITH_EXCEPTION: &str = r#"{"rules": [
    {"name": "legacy", "match": {"hosts": ["legacy.test"]}, "presets": ["immich"],
     "frame_ancestors": false, "remove": [], "keep_upstream": ["x-frame-options", "content-security-policy"]},
    {"name": "immich", "presets": ["immich"]}]}"#;

/// What Traefik's headers middleware does to a response as it is written.
fn apply_companion(companion: &Companion, https: bool, response: &mut Response) {
    for name in &companion.removals {
        response.remove(name);
    }
    for (name, value) in &companion.sets {
        response.set(name, value);
    }
    if let (Some(hsts), true) = (companion.hsts, https) {
        let mut value = format!("max-age={}", hsts.max_age);
        if hsts.include_subdomains {
            value.push_str("; includeSubDomains");
        }
        if hsts.preload {
            value.push_str("; preload");
        }
        response.set("strict-transport-security", &value);
    }
}

fn sorted(response: &Response) -> Vec<(String, Vec<u8>)> {
    let mut headers: Vec<_> = response
        .headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
        .collect();
    headers.sort();
    headers
}

fn upstream_responses() -> Vec<Response> {
    vec![
        html(),
        Response::new(
            200,
            &[
                ("content-type", b"text/html"),
                ("server", b"nginx/1.25"),
                ("x-frame-options", b"DENY"),
                ("content-security-policy", b"default-src 'none'"),
                (
                    "strict-transport-security",
                    b"max-age=15552000; includeSubDomains",
                ),
                ("x-content-type-options", b"nosniff"),
            ],
        ),
        Response::new(
            200,
            &[
                ("content-type", b"application/json"),
                ("x-powered-by", b"Express"),
            ],
        ),
        Response::new(304, &[("etag", b"\"1\"")]),
        Response::new(
            404,
            &[("content-type", b"text/plain"), ("server", b"Express")],
        ),
    ]
}

#[test]
fn the_immich_preset_companion_removes_and_sets_what_every_response_gets() {
    let companion = policy(r#"{"presets": ["immich"]}"#).companion(&[]);
    assert_eq!(
        companion.removals.iter().map(|n| &**n).collect::<Vec<_>>(),
        ["x-powered-by", "server", "x-envoy-upstream-service-time"]
    );
    let set = |name: &str| {
        companion
            .sets
            .iter()
            .find(|(n, _)| &**n == name)
            .map(|(_, v)| v.to_string())
    };
    assert_eq!(set("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(set("x-frame-options").as_deref(), Some("SAMEORIGIN"));
    assert_eq!(set("referrer-policy").as_deref(), Some("no-referrer"));
    assert_eq!(
        set("cross-origin-resource-policy").as_deref(),
        Some("cross-origin")
    );
    assert!(set("permissions-policy").unwrap().contains("camera=()"));
    assert_eq!(
        set("content-security-policy"),
        None,
        "keep_upstream needs the response"
    );
    assert_eq!(
        companion.hsts,
        Some(Hsts {
            max_age: 31_536_000,
            include_subdomains: false,
            preload: false
        })
    );
    let left_out: Vec<&str> = companion.left_out.iter().map(|(n, _)| &**n).collect();
    assert!(left_out.contains(&"content-security-policy") && left_out.contains(&"cache-control"));
    assert!(
        companion.advice().contains("x-powered-by, server"),
        "{}",
        companion.advice()
    );
}

#[test]
fn host_scoped_rules_need_the_routers_hosts() {
    let p = policy(IMMICH_FILE);
    let unscoped = p.companion(&[]);
    assert!(unscoped.sets.is_empty() && unscoped.removals.is_empty() && unscoped.hsts.is_none());
    assert!(
        unscoped.advice().contains("match no rule"),
        "{}",
        unscoped.advice()
    );
    let scoped = p.companion(&["immich.test"]);
    assert_eq!(scoped, policy(r#"{"presets": ["immich"]}"#).companion(&[]));
    assert!(p
        .companion(&["immich.test", "other.test"])
        .uncovered
        .is_some());
}

#[test]
fn an_exception_keeps_what_it_excepts_out_of_the_companion() {
    let p = policy(WITH_EXCEPTION);
    let shared = p.companion(&[]);
    assert!(shared.removals.is_empty(), "legacy keeps its Server header");
    assert!(shared.sets.iter().all(|(n, _)| &**n != "x-frame-options"));
    assert!(shared
        .sets
        .iter()
        .any(|(n, _)| &**n == "x-content-type-options"));
    assert_eq!(
        p.companion(&["immich.test"]).removals.len(),
        3,
        "legacy's rule cannot apply there"
    );
}

#[test]
fn observing_rules_get_no_companion() {
    let p = policy(r#"{"presets": ["immich"], "mode": "observe"}"#);
    let companion = p.companion(&[]);
    assert!(companion.sets.is_empty() && companion.removals.is_empty() && companion.hsts.is_none());
}

/// The plugin runs outside the companion: on a held response it sees the companion's output as the upstream's.
#[test]
fn the_companion_never_changes_a_held_responses_outcome() {
    let policies = [
        r#"{"presets": ["immich"]}"#,
        r#"{"presets": ["strict"]}"#,
        r#"{"presets": ["bundle-a", "bundle-b", "bundle-c", "bundle-d", "bundle-e"]}"#,
        r#"{"presets": ["immich"], "inline_script_hashes": {}}"#,
        WITH_EXCEPTION,
        IMMICH_FILE,
    ];
    for json in policies {
        let p = policy(json);
        for host in ["immich.test", "legacy.test"] {
            let companion = p.companion(&[host]);
            for scheme in ["https", "http"] {
                for upstream in upstream_responses() {
                    let alone = exchange(&p, get(host, "/", scheme), upstream_copy(&upstream));
                    let mut inner = upstream_copy(&upstream);
                    apply_companion(&companion, scheme == "https", &mut inner);
                    let chained = exchange(&p, get(host, "/", scheme), inner);
                    assert_eq!(
                        sorted(&chained),
                        sorted(&alone),
                        "{json} {host} {scheme} {upstream:?}"
                    );
                }
            }
        }
    }
}

/// A streamed response: the plugin writes before the upstream, Traefik adds the upstream's headers, the
/// companion edits the result. Every header the companion knows arrives once; no removed header remains.
#[test]
fn a_streamed_response_gets_each_header_once() {
    let p = policy(r#"{"presets": ["immich"]}"#);
    let companion = p.companion(&[]);
    for upstream in upstream_responses() {
        let mut request: Request = get("immich.test", "/api/assets/1/thumbnail", "https");
        let facts = p.inspect_request(&mut request);
        let mut response = Response::default();
        p.apply_before_upstream(&facts, &mut response);
        response.status = upstream.status;
        response.headers.extend(upstream.headers.iter().cloned());
        apply_companion(&companion, true, &mut response);
        for name in &companion.removals {
            assert!(response.values(name).is_empty(), "{name}");
        }
        for name in companion
            .sets
            .iter()
            .map(|(n, _)| &**n)
            .chain(["strict-transport-security"])
        {
            assert_eq!(response.values(name).len(), 1, "{name} in {response:?}");
        }
    }
}

fn upstream_copy(response: &Response) -> Response {
    Response {
        status: response.status,
        headers: response.headers.clone(),
    }
}

#[test]
fn every_preset_has_a_companion_that_a_policy_can_explain() {
    for name in [
        "bundle-a", "bundle-b", "bundle-c", "bundle-d", "bundle-e", "immich", "strict",
    ] {
        let p: Policy = policy(&format!(r#"{{"presets": ["{name}"]}}"#));
        let companion = p.companion(&[]);
        assert!(companion.uncovered.is_none(), "{name}");
        assert!(!companion.advice().contains('\n'), "one log line");
    }
}

/// With `keep_upstream: []` the static CSP is a plain write, so the companion carries it: on a held document
/// the plugin still replaces it with the hashed one, as without the companion.
#[test]
fn the_hashed_csp_wins_over_the_companions_static_one() {
    let p = policy(r#"{"presets": ["immich"], "keep_upstream": [], "inline_script_hashes": {}}"#);
    let companion = p.companion(&[]);
    assert!(companion
        .sets
        .iter()
        .any(|(n, _)| &**n == "content-security-policy"));
    let body = b"<!doctype html><script>boot()</script>";
    let hashed = |with_companion: bool| {
        let mut response = html();
        if with_companion {
            apply_companion(&companion, true, &mut response);
        }
        let facts = p.inspect_request(&mut get("immich.test", "/", "https"));
        p.apply_document(&facts, &mut response, body, &mut common::Counts::default());
        response.one("content-security-policy").unwrap()
    };
    assert!(hashed(false).contains("'sha256-"), "{}", hashed(false));
    assert_eq!(hashed(true), hashed(false));
}
