//! Envoy's document fetch: the request goes out whole and uncompressed, and the reply made from the fetched
//! response carries the upstream's headers (repeated ones included) with the policy applied, framed by the host.

mod common;

use common::{get, policy, Counts};
use secure_headers::{fetch_headers, fetched_response, reply_headers};

fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_fetch_asks_for_the_whole_document_uncompressed() {
    let request = [
        (":method", "GET"),
        (":path", "/photos"),
        (":authority", "immich.test"),
        ("cookie", "immich_access_token=abc"),
        ("accept-encoding", "gzip, br"),
        ("if-none-match", "\"v1\""),
        ("if-modified-since", "Mon, 23 Nov 2026 06:00:00 GMT"),
        ("x-forwarded-for", "192.0.2.1"),
    ];
    assert_eq!(
        fetch_headers(request.into_iter()),
        [
            (":method", "GET"),
            (":path", "/photos"),
            (":authority", "immich.test"),
            ("cookie", "immich_access_token=abc"),
            ("x-forwarded-for", "192.0.2.1"),
            ("accept-encoding", "identity"),
        ]
    );
}

#[test]
fn a_response_without_a_status_is_a_failed_fetch() {
    assert_eq!(fetched_response(Vec::new()), None);
    assert_eq!(
        fetched_response(owned(&[(":status", "abc"), ("content-type", "text/html")])),
        None
    );
}

#[test]
fn the_reply_keeps_the_upstreams_headers_with_the_policy_applied() {
    let p = policy(r#"{"presets": ["immich"], "inline_script_hashes": {"max_scripts": 2}}"#);
    let mut response = fetched_response(owned(&[
        (":status", "200"),
        ("content-type", "text/html; charset=utf-8"),
        ("content-length", "40"),
        ("transfer-encoding", "chunked"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
        ("x-powered-by", "Express"),
    ]))
    .unwrap();
    let facts = p.inspect_request(&mut get("immich.test", "/", "https"));
    let mut counts = Counts::default();
    p.apply_document(
        &facts,
        &mut response,
        b"<script>theme()</script>",
        &mut counts,
    );
    assert_eq!(response.status, 200);
    let reply = reply_headers(&response);
    let names: Vec<&str> = reply.iter().map(|(n, _)| *n).collect();
    for framing in [":status", "content-length", "transfer-encoding"] {
        assert!(!names.contains(&framing), "{framing} in {names:?}");
    }
    assert!(
        !names.contains(&"x-powered-by"),
        "the immich preset removes it"
    );
    let cookies: Vec<&str> = reply
        .iter()
        .filter(|(n, _)| *n == "set-cookie")
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(cookies, ["a=1", "b=2"]);
    let csp = reply
        .iter()
        .find(|(n, _)| *n == "content-security-policy")
        .map(|(_, v)| *v)
        .unwrap();
    // sha256 of "theme()", from Python's hashlib.
    assert!(
        csp.contains("'sha256-Rfr3GgHZFiXm+TmNr+li+0sZ4J9FGllo8jsXcJF5XZ8='"),
        "{csp}"
    );
    assert_eq!(counts.get("inline_scripts.documents_hashed"), 1);
}

#[test]
fn the_reply_ends_with_the_headers_a_held_response_gets() {
    let p = policy(r#"{"presets": ["immich"], "inline_script_hashes": {"max_scripts": 2}}"#);
    let upstream: &[(&str, &str)] = &[
        ("content-type", "text/html; charset=utf-8"),
        ("x-frame-options", "DENY"),
        ("content-security-policy", "default-src *"),
        ("content-security-policy", "img-src *"),
        ("x-powered-by", "Express"),
        ("set-cookie", "a=1"),
        ("set-cookie", "b=2"),
    ];
    let body = b"<script>theme()</script>";
    let facts = p.inspect_request(&mut get("immich.test", "/", "https"));
    let bytes: Vec<(&str, &[u8])> = upstream.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    let mut held = common::Response::new(200, &bytes);
    p.apply_document(&facts, &mut held, body, &mut Counts::default());
    let mut with_status = owned(&[(":status", "200")]);
    with_status.extend(owned(upstream));
    let mut fetched = fetched_response(with_status).unwrap();
    p.apply_document(&facts, &mut fetched, body, &mut Counts::default());
    let reply: Vec<(String, String)> = reply_headers(&fetched)
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let expected: Vec<(String, String)> = held
        .headers
        .iter()
        .map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    assert_eq!(reply, expected);
}
