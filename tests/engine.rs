//! The policy engine against in-memory header maps: bundles, presets, scoping, overrides, odd responses.

mod common;

use common::{exchange, get, html, policy, Counts, Response, ResponseValues};
use secure_headers::Policy;

#[test]
fn bundles_add_up_one_at_a_time() {
    let a = exchange(
        &policy(r#"{"presets": ["bundle-a"]}"#),
        get("h", "/", "https"),
        html(),
    );
    assert_eq!(a.one("x-content-type-options").as_deref(), Some("nosniff"));
    assert_eq!(
        a.one("content-security-policy").as_deref(),
        Some("frame-ancestors 'self'")
    );
    assert_eq!(a.one("x-frame-options").as_deref(), Some("SAMEORIGIN"));
    assert_eq!(a.one("x-powered-by"), None);
    assert_eq!(a.one("strict-transport-security"), None);

    let b = exchange(
        &policy(r#"{"presets": ["bundle-a", "bundle-b"]}"#),
        get("h", "/", "https"),
        html(),
    );
    assert_eq!(
        b.one("strict-transport-security").as_deref(),
        Some("max-age=86400")
    );
    assert_eq!(b.one("x-frame-options").as_deref(), Some("SAMEORIGIN"));

    let c = exchange(
        &policy(r#"{"presets": ["bundle-a", "bundle-b", "bundle-c"]}"#),
        get("h", "/", "https"),
        html(),
    );
    assert_eq!(c.one("referrer-policy").as_deref(), Some("no-referrer"));
    assert!(c.one("permissions-policy").unwrap().contains("camera=(), "));
    assert!(c
        .one("permissions-policy")
        .unwrap()
        .contains("geolocation=(self)"));

    let d = exchange(
        &policy(r#"{"presets": ["bundle-a", "bundle-b", "bundle-c", "bundle-d"]}"#),
        get("h", "/", "https"),
        html(),
    );
    assert_eq!(
        d.one("cross-origin-resource-policy").as_deref(),
        Some("same-origin")
    );

    let e = exchange(
        &policy(r#"{"presets": ["bundle-a", "bundle-b", "bundle-c", "bundle-d", "bundle-e"]}"#),
        get("h", "/", "https"),
        html(),
    );
    // Observing a CSP must not weaken framing protection: frame-ancestors stays enforced.
    assert_eq!(
        e.one("content-security-policy").as_deref(),
        Some("frame-ancestors 'self'")
    );
    assert_eq!(
        e.one("content-security-policy-report-only").as_deref(),
        Some("default-src 'self'; base-uri 'self'; object-src 'none'; form-action 'self'")
    );
}

#[test]
fn hsts_only_over_https_judged_by_scheme_or_trusted_header() {
    let p = policy(r#"{"presets": ["bundle-b"]}"#);
    assert!(exchange(&p, get("h", "/", "https"), html())
        .one("strict-transport-security")
        .is_some());
    assert!(exchange(&p, get("h", "/", "http"), html())
        .one("strict-transport-security")
        .is_none());

    let behind_tls_proxy =
        policy(r#"{"presets": ["bundle-b"], "trusted_proto_header": "X-Forwarded-Proto"}"#);
    let mut request = get("h", "/", "http");
    request.add_header("x-forwarded-proto", "https, http");
    assert!(exchange(&behind_tls_proxy, request, html())
        .one("strict-transport-security")
        .is_some());
    let mut request = get("h", "/", "https");
    request.add_header("x-forwarded-proto", "http");
    assert!(exchange(&behind_tls_proxy, request, html())
        .one("strict-transport-security")
        .is_none());
    // Without the header, the connection's own scheme decides.
    assert!(exchange(&behind_tls_proxy, get("h", "/", "https"), html())
        .one("strict-transport-security")
        .is_some());
}

#[test]
fn upgrade_insecure_requests_only_on_https() {
    let p = policy(r#"{"presets": ["strict"]}"#);
    let https = exchange(&p, get("h", "/", "https"), html())
        .one("content-security-policy")
        .unwrap();
    let http = exchange(&p, get("h", "/", "http"), html())
        .one("content-security-policy")
        .unwrap();
    assert!(https.ends_with("; upgrade-insecure-requests"), "{https}");
    assert!(!http.contains("upgrade-insecure-requests"), "{http}");
    assert!(http.contains("frame-ancestors 'none'"));
}

#[test]
fn immich_preset_on_the_paths_that_need_care() {
    let p = policy(r#"{"presets": ["immich"]}"#);
    let page = exchange(&p, get("photos.example", "/auth/login", "https"), html());
    let csp = page.one("content-security-policy").unwrap();
    assert!(csp
        .contains("script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval' https://www.gstatic.com"));
    assert!(csp.contains("frame-ancestors 'self'"));
    assert_eq!(page.one("cache-control").as_deref(), Some("no-store"));
    assert_eq!(page.one("x-powered-by"), None);

    // Media: the upstream's caching stays, and CORP never blocks a Cast receiver.
    let media_cache = b"private, max-age=86400, no-transform, stale-while-revalidate=2592000, stale-if-error=2592000";
    let media = exchange(
        &p,
        get("photos.example", "/api/assets/1/original", "https"),
        Response::new(
            206,
            &[
                ("content-type", b"image/jpeg"),
                ("cache-control", media_cache),
                ("etag", b"\"x\""),
            ],
        ),
    );
    assert_eq!(media.one("cache-control").unwrap().as_bytes(), media_cache);
    assert_eq!(
        media.one("cross-origin-resource-policy").as_deref(),
        Some("cross-origin")
    );

    // HTML without its own Cache-Control gets no-store; immutable assets keep theirs.
    let bare_html = exchange(
        &p,
        get("h", "/", "https"),
        Response::new(200, &[("content-type", b"text/html")]),
    );
    assert_eq!(bare_html.one("cache-control").as_deref(), Some("no-store"));
    let asset = exchange(
        &p,
        get("h", "/_app/immutable/a.js", "https"),
        Response::new(
            200,
            &[
                ("content-type", b"text/javascript"),
                ("cache-control", b"public,max-age=31536000,immutable"),
            ],
        ),
    );
    assert_eq!(
        asset.one("cache-control").as_deref(),
        Some("public,max-age=31536000,immutable")
    );

    // WebSocket upgrade: 101 passes untouched.
    let upgrade = exchange(
        &p,
        get("h", "/api/socket.io/?EIO=4", "https"),
        Response::new(
            101,
            &[("upgrade", b"websocket"), ("x-powered-by", b"Express")],
        ),
    );
    assert_eq!(upgrade.headers.len(), 2);
}

#[test]
fn an_upstream_csp_is_kept_not_doubled() {
    let p = policy(r#"{"presets": ["immich"]}"#);
    let helmet_csp: &[u8] = b"default-src 'self'; frame-ancestors 'none'";
    let mut response = html();
    response
        .headers
        .push(("Content-Security-Policy".into(), helmet_csp.to_vec()));
    let out = exchange(&p, get("h", "/", "https"), response);
    assert_eq!(
        out.values("content-security-policy"),
        vec![String::from_utf8_lossy(helmet_csp)]
    );
    // Unless the operator asks the edge to win.
    let replace = policy(r#"{"presets": ["immich"], "keep_upstream": []}"#);
    let mut response = html();
    response
        .headers
        .push(("content-security-policy".into(), helmet_csp.to_vec()));
    let out = exchange(&replace, get("h", "/", "https"), response);
    assert!(out
        .one("content-security-policy")
        .unwrap()
        .contains("wasm-unsafe-eval"));
}

#[test]
fn favicon_content_type_is_repaired_only_when_missing_or_wrong() {
    let p = policy(r#"{"presets": ["immich"]}"#);
    let missing = exchange(
        &p,
        get("h", "/favicon.ico", "https"),
        Response::new(200, &[]),
    );
    assert_eq!(missing.one("content-type").as_deref(), Some("image/x-icon"));
    let wrong = exchange(
        &p,
        get("h", "/favicon.ico?v=3", "https"),
        Response::new(200, &[("content-type", b"text/html")]),
    );
    assert_eq!(wrong.one("content-type").as_deref(), Some("image/x-icon"));
    let right = exchange(
        &p,
        get("h", "/FAVICON.ICO", "https"),
        Response::new(200, &[("content-type", b"Image/X-Icon")]),
    );
    assert_eq!(right.one("content-type").as_deref(), Some("Image/X-Icon"));
    let not_modified = exchange(
        &p,
        get("h", "/favicon.ico", "https"),
        Response::new(304, &[]),
    );
    assert_eq!(not_modified.one("content-type"), None);
    let keep = policy(r#"{"presets": ["immich"], "keep_upstream": ["content-type"]}"#);
    let kept = exchange(
        &keep,
        get("h", "/favicon.ico", "https"),
        Response::new(200, &[("content-type", b"text/html")]),
    );
    assert_eq!(kept.one("content-type").as_deref(), Some("text/html"));
}

#[test]
fn scoped_rules_first_match_wins_and_the_rest_passes_untouched() {
    let p = policy(
        r#"{
        "presets": ["bundle-a"],
        "rules": [
            {"name": "media", "match": {"hosts": ["photos.example.com"], "paths": ["/api/assets/"]},
             "cross_origin_resource_policy": "cross-origin"},
            {"name": "html", "match": {"hosts": ["photos.example.com", "*.photos.example.com"],
             "except_paths": ["/api/socket.io"], "content_types": ["text/html"], "status": ["2xx"]},
             "presets": ["bundle-d"]}
        ]}"#,
    );
    let media = exchange(
        &p,
        get("photos.example.com", "/api/assets/7/thumbnail", "https"),
        Response::new(200, &[("content-type", b"image/webp")]),
    );
    assert_eq!(
        media.one("cross-origin-resource-policy").as_deref(),
        Some("cross-origin")
    );
    assert_eq!(
        media.one("x-content-type-options").as_deref(),
        Some("nosniff"),
        "top-level settings are inherited"
    );

    let page = exchange(&p, get("a.photos.example.com:8443", "/", "https"), html());
    assert_eq!(
        page.one("cross-origin-resource-policy").as_deref(),
        Some("same-origin")
    );

    for (host, path, response) in [
        ("other.example", "/", html()),
        ("photos.example.com", "/api/socket.io/", html()),
        (
            "photos.example.com",
            "/",
            Response::new(
                200,
                &[
                    ("content-type", b"application/json"),
                    ("x-powered-by", b"Express"),
                ],
            ),
        ),
        (
            "photos.example.com",
            "/",
            Response::new(
                404,
                &[("content-type", b"text/html"), ("x-powered-by", b"Express")],
            ),
        ),
    ] {
        let before = format!("{:?}", response.headers);
        let after = exchange(&p, get(host, path, "https"), response);
        assert_eq!(
            format!("{:?}", after.headers),
            before,
            "{host}{path} was touched"
        );
    }
}

#[test]
fn any_preset_value_can_be_overridden_or_turned_off() {
    let p = policy(
        r#"{"presets": ["immich"],
            "hsts": {"max_age": 600},
            "permissions_policy": {"camera": ["self"], "usb": false},
            "content_security_policy": {"report_only": true, "directives": {"connect-src": ["'self'", "https://tiles.example"]}},
            "referrer_policy": false,
            "headers": {"X-Frame-Options": {"value": "DENY"}, "X-Robots-Tag": {"value": "noindex", "action": "set_if_absent"}}}"#,
    );
    let out = exchange(&p, get("h", "/", "https"), html());
    assert_eq!(
        out.one("strict-transport-security").as_deref(),
        Some("max-age=600")
    );
    let permissions = out.one("permissions-policy").unwrap();
    assert!(permissions.contains("camera=(self)") && !permissions.contains("usb"));
    let observed = out.one("content-security-policy-report-only").unwrap();
    assert!(observed.contains("connect-src 'self' https://tiles.example"));
    assert!(
        observed.contains("wasm-unsafe-eval"),
        "other directives come from the preset"
    );
    assert_eq!(
        out.one("content-security-policy").as_deref(),
        Some("frame-ancestors 'self'")
    );
    assert_eq!(out.one("referrer-policy"), None);
    assert_eq!(out.one("x-frame-options").as_deref(), Some("DENY"));
    assert_eq!(out.one("x-robots-tag").as_deref(), Some("noindex"));
}

#[test]
fn never_two_copies_of_a_security_header() {
    let p = policy(r#"{"presets": ["strict"], "keep_upstream": []}"#);
    let mut response = html();
    for (name, value) in [
        ("X-Frame-Options", "ALLOWALL"),
        ("x-frame-options", "SAMEORIGIN"),
        ("Strict-Transport-Security", "max-age=1"),
        ("strict-transport-security", "max-age=2"),
    ] {
        response.headers.push((name.into(), value.into()));
    }
    let out = exchange(&p, get("h", "/", "https"), response);
    assert_eq!(out.values("x-frame-options"), vec!["DENY"]);
    assert_eq!(
        out.values("strict-transport-security"),
        vec!["max-age=63072000; includeSubDomains"]
    );
    assert_eq!(out.one("server"), None, "strict removes the OWASP list");
}

#[test]
fn generic_actions_set_if_absent_append_remove() {
    let p = policy(
        r#"{"remove": [], "headers": {
            "Link": {"value": "</a.css>; rel=preload", "action": "append"},
            "X-Keep": {"value": "edge", "action": "set_if_absent"},
            "X-New": {"value": "edge", "action": "set_if_absent"},
            "Server": {"action": "remove"}}}"#,
    );
    let response = Response::new(
        200,
        &[
            ("link", b"</b.js>; rel=preload"),
            ("x-keep", b"app"),
            ("server", b"nginx/1.2"),
            ("x-powered-by", b"Express"),
        ],
    );
    let out = exchange(&p, get("h", "/", "http"), response);
    assert_eq!(out.values("link").len(), 2);
    assert_eq!(out.one("x-keep").as_deref(), Some("app"));
    assert_eq!(out.one("x-new").as_deref(), Some("edge"));
    assert_eq!(out.one("server"), None);
    assert_eq!(
        out.one("x-powered-by").as_deref(),
        Some("Express"),
        "remove: [] keeps X-Powered-By"
    );
}

#[test]
fn odd_upstream_values_and_statuses_are_handled() {
    let p = policy(r#"{"presets": ["immich"]}"#);
    let huge = vec![b'a'; 1 << 20];
    let response = Response::new(
        200,
        &[
            ("content-type", b"\xff\xfe/\x80"),
            ("x-odd", b"\xff\xfe\x80ok"),
            ("cache-control", b""),
            ("x-huge", &huge),
        ],
    );
    let out = exchange(&p, get("h", "/favicon.ico", "https"), response);
    assert_eq!(
        out.one("x-odd").unwrap().as_bytes(),
        "\u{fffd}\u{fffd}\u{fffd}ok".as_bytes()
    );
    assert_eq!(out.one("content-type").as_deref(), Some("image/x-icon"));
    assert_eq!(
        out.one("cache-control").as_deref(),
        Some(""),
        "an upstream value, even empty, is kept"
    );
    for status in [204, 304, 404, 500] {
        let out = exchange(
            &p,
            get("h", "/", "https"),
            Response::new(status, &[("x-powered-by", b"Express")]),
        );
        assert_eq!(
            out.one("x-content-type-options").as_deref(),
            Some("nosniff"),
            "{status}"
        );
        assert_eq!(out.one("x-powered-by"), None);
        assert_eq!(out.one("content-type"), None);
    }
}

#[test]
fn a_reply_whose_request_was_never_seen_gets_only_unscoped_rules() {
    let p = policy(
        r#"{"rules": [{"match": {"hosts": ["a.example"]}, "presets": ["bundle-a"]}, {"match": {"status": ["5xx"]}, "presets": ["bundle-d"]}]}"#,
    );
    let facts = p.facts_without_request();
    let mut response = Response::new(503, &[]);
    assert_eq!(
        p.apply_response(&facts, &mut response, &mut Counts::default()),
        Some(1)
    );
    assert_eq!(
        response.one("cross-origin-resource-policy").as_deref(),
        Some("same-origin")
    );
}

mod delivery {
    use super::*;
    use secure_headers::Delivery;

    fn decide(
        policy: &Policy,
        path: &'static str,
        method: &'static str,
        headers: &[(&'static str, &'static str)],
    ) -> Delivery {
        let mut request = common::Request::new(method, "https", "photos.example", path);
        for (name, value) in headers {
            request.add_header(name, *value);
        }
        let facts = policy.inspect_request(&mut request);
        policy.delivery(&facts, &mut request)
    }

    const NAVIGATION: &[(&str, &str)] = &[("sec-fetch-dest", "document")];

    #[test]
    fn every_get_and_head_is_held_unless_it_must_stream() {
        let p = policy(r#"{"presets": ["immich"]}"#);
        for (method, headers) in [
            ("GET", NAVIGATION),
            ("HEAD", &[("accept", "text/html,*/*")][..]),
            ("GET", &[("accept", "*/*")][..]),
            ("GET", &[][..]),
            ("HEAD", &[][..]),
            ("GET", &[("sec-fetch-dest", "empty")][..]),
            ("GET", &[("sec-fetch-dest", "iframe")][..]),
            ("GET", &[("sec-fetch-dest", "object")][..]),
            ("GET", &[("sec-fetch-dest", "no-such-destination")][..]),
        ] {
            assert_eq!(
                decide(&p, "/auth/login", method, headers),
                Delivery::Held,
                "{method} {headers:?}"
            );
        }
        for worker in ["worker", "sharedworker", "serviceworker"] {
            assert_eq!(
                decide(
                    &p,
                    "/service-worker.js",
                    "GET",
                    &[("sec-fetch-dest", worker)]
                ),
                Delivery::Held,
                "a worker's CSP comes from its own response ({worker})"
            );
        }
        assert_eq!(
            decide(&p, "/favicon.ico", "GET", &[("sec-fetch-dest", "image")]),
            Delivery::Held,
            "repairs need the response"
        );
    }

    #[test]
    fn what_must_stream_streams() {
        let p = policy(r#"{"presets": ["immich"]}"#);
        for dest in [
            "image",
            "video",
            "audio",
            "track",
            "font",
            "style",
            "script",
            "json",
            "manifest",
            "audioworklet",
            "paintworklet",
            "Script",
        ] {
            assert_eq!(
                decide(
                    &p,
                    "/_app/immutable/a.js",
                    "GET",
                    &[("sec-fetch-dest", dest)]
                ),
                Delivery::Streamed,
                "{dest}"
            );
        }
        assert_eq!(
            decide(&p, "/", "POST", NAVIGATION),
            Delivery::Streamed,
            "uploads are never buffered"
        );
        assert_eq!(
            decide(&p, "/", "GET", &[("range", "bytes=0-")]),
            Delivery::Streamed
        );
        assert_eq!(
            decide(&p, "/api/assets/1/original", "GET", NAVIGATION),
            Delivery::Streamed,
            "immich streams /api/"
        );
        assert_eq!(
            decide(&p, "/api/socket.io/", "GET", &[("upgrade", "websocket")]),
            Delivery::Untouched
        );
    }

    #[test]
    fn without_streaming_paths_a_download_would_be_held() {
        let p = policy(r#"{"presets": ["bundle-a"]}"#);
        assert_eq!(
            decide(&p, "/api/assets/1/original", "GET", NAVIGATION),
            Delivery::Held
        );
        assert_eq!(
            decide(&p, "/api/assets/1/original", "GET", &[]),
            Delivery::Held,
            "curl's download"
        );
        let p = policy(r#"{"presets": ["bundle-a"], "streaming_paths": ["/api/"]}"#);
        assert_eq!(
            decide(&p, "/api/assets/1/original", "GET", NAVIGATION),
            Delivery::Streamed
        );
    }

    #[test]
    fn unmatched_requests_are_untouched() {
        let p = policy(
            r#"{"rules": [{"match": {"hosts": ["other.example"]}, "presets": ["bundle-a"]}]}"#,
        );
        assert_eq!(decide(&p, "/", "GET", NAVIGATION), Delivery::Untouched);
    }

    #[test]
    fn before_the_upstream_only_unconditional_sets_are_written() {
        let p = policy(r#"{"presets": ["immich"]}"#);
        let mut request = get("h", "/api/assets/1/thumbnail", "https");
        let facts = p.inspect_request(&mut request);
        let mut response = Response::default();
        assert_eq!(p.apply_before_upstream(&facts, &mut response), Some(0));
        assert_eq!(
            response.one("strict-transport-security").as_deref(),
            Some("max-age=31536000")
        );
        assert_eq!(
            response.one("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(
            response.one("content-security-policy"),
            None,
            "kept-upstream headers need the response"
        );
        assert_eq!(response.one("cache-control"), None);

        let scoped = policy(
            r#"{"rules": [{"match": {"content_types": ["text/html"]}, "presets": ["bundle-a"]}]}"#,
        );
        let facts = scoped.inspect_request(&mut get("h", "/", "https"));
        assert_eq!(
            scoped.apply_before_upstream(&facts, &mut Response::default()),
            None
        );
    }
}

/// A response that records the filter's writes and holds the engine to `set_first`'s promise: no earlier
/// write of this response named the header.
struct FirstWritesChecked {
    response: Response,
    written: Vec<String>,
    first_sets: usize,
}

impl secure_headers::ResponseHeaders for FirstWritesChecked {
    fn status(&mut self) -> Option<u16> {
        self.response.status()
    }
    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.response.header(name)
    }
    fn set(&mut self, name: &str, value: &str) {
        self.written.push(name.to_owned());
        self.response.set(name, value);
    }
    fn set_first(&mut self, name: &str, value: &str) {
        assert!(
            !self.written.iter().any(|w| w == name),
            "set_first({name}) after {:?}",
            self.written
        );
        self.first_sets += 1;
        self.set(name, value);
    }
    fn append(&mut self, name: &str, value: &str) {
        self.written.push(name.to_owned());
        self.response.append(name, value);
    }
    fn remove(&mut self, name: &str) {
        self.response.remove(name);
    }
}

#[test]
fn a_first_set_is_never_preceded_by_a_write_of_its_name() {
    let custom = r#"{"presets": ["strict"], "headers": {"Vary": {"value": "Origin", "action": "append"},
        "X-Custom": {"value": "1"}, "Content-Security-Policy": {"value": "default-src 'none'",
        "action": "set_if_absent"}}, "cache_control": {"text/html": "no-store"},
        "content_types_by_extension": {".ico": "image/x-icon"}, "keep_upstream": []}"#;
    let mut first_sets = 0;
    for preset in [
        "bundle-a",
        "bundle-b",
        "bundle-c",
        "bundle-d",
        "bundle-e",
        "immich",
        "immich-strict",
        "strict",
    ] {
        let json = format!(r#"{{"presets": ["{preset}"]}}"#);
        for policy in [policy(&json), policy(custom)] {
            for (scheme, path) in [
                ("https", "/"),
                ("http", "/favicon.ico"),
                ("https", "/api/x"),
            ] {
                for upstream in [
                    html(),
                    Response::new(200, &[("content-type", b"image/png")]),
                ] {
                    let mut request = get("h", path, scheme);
                    let facts = policy.inspect_request(&mut request);
                    let mut checked = FirstWritesChecked {
                        response: upstream,
                        written: Vec::new(),
                        first_sets: 0,
                    };
                    policy.apply_response(&facts, &mut checked, &mut Counts::default());
                    first_sets += checked.first_sets;
                }
            }
        }
    }
    assert!(first_sets > 0, "no write went through set_first");
}
