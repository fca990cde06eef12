//! The policy as Traefik delivers a middleware's YAML keys (scalars as strings, empty lists and maps as "",
//! keys sorted, nulls dropped; measured with Traefik 3.7, see README "Loading it into Traefik"), and as the
//! `policy:` JSON string: both compile to the policy the JSON text gives, and both refuse with the field path.

mod common;

use common::{exchange, get, html, ResponseValues};
use secure_headers::policy_from_options;
use secure_headers::Policy;
use serde_json::{json, Value};

/// What Traefik makes of a policy written as YAML keys under the middleware.
fn traefik_form(value: &Value) -> Value {
    match value {
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Number(n) => Value::String(n.to_string()),
        Value::Array(items) if items.is_empty() => Value::String(String::new()),
        Value::Object(map) if map.is_empty() => Value::String(String::new()),
        Value::Array(items) => Value::Array(items.iter().map(traefik_form).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), traefik_form(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn from_keys(policy: &Value) -> Result<Policy, secure_headers::ConfigError> {
    policy_from_options(traefik_form(policy).to_string().as_bytes())
}

/// A policy that uses every kind of field: integers, booleans, `false` toggles, empty lists and maps.
fn rich_policy() -> Value {
    json!({
        "trusted_proto_header": "x-forwarded-proto",
        "csp_reports": {"path": "/csp", "max_body_bytes": 4096},
        "presets": ["immich"],
        "hsts": {"include_subdomains": true, "max_age": 600, "preload": false},
        "content_type_options": true,
        "cross_origin_opener_policy": false,
        "permissions_policy": {"camera": [], "geolocation": ["self"], "usb": false},
        "content_security_policy": {"report_only": false, "directives": {
            "default-src": ["'self'"], "script-src": ["'self'"], "upgrade-insecure-requests": []}},
        "cache_control": {},
        "headers": {"X-False": {"value": "false"}, "X-Number": {"value": "0"},
                    "X-Gone": {"action": "remove"}, "X-XSS-Protection": false},
        "keep_upstream": [],
        "inline_script_hashes": {"max_scripts": 8},
        "rules": [
            {"name": "legacy", "match": {"hosts": ["legacy.example"], "status": ["200"]},
             "frame_ancestors": false, "remove": [], "mode": "observe"},
            {"name": "rest", "hsts": {"max_age": 31536000}}
        ]
    })
}

#[test]
fn yaml_keys_compile_to_the_policy_json_gives() {
    for policy in [
        rich_policy(),
        json!({"presets": ["immich"]}),
        serde_json::from_str(include_str!("../policies/immich.json")).unwrap(),
    ] {
        // Traefik sorts keys (a Go map); serde_json's map does too, so both inputs have the same order.
        let from_json = Policy::parse(policy.to_string().as_bytes()).unwrap();
        let from_yaml = from_keys(&policy).unwrap();
        assert_eq!(
            format!("{from_yaml:?}"),
            format!("{from_json:?}"),
            "{policy}"
        );
    }
}

#[test]
fn the_policy_string_still_works() {
    let options = json!({"policy": rich_policy().to_string()});
    let from_string = policy_from_options(options.to_string().as_bytes()).unwrap();
    let from_json = Policy::parse(rich_policy().to_string().as_bytes()).unwrap();
    assert_eq!(format!("{from_string:?}"), format!("{from_json:?}"));
}

#[test]
fn header_values_that_look_like_numbers_or_booleans_stay_strings() {
    let p = from_keys(&rich_policy()).unwrap();
    let r = exchange(&p, get("h", "/", "https"), html());
    assert_eq!(r.one("x-false").as_deref(), Some("false"));
    assert_eq!(r.one("x-number").as_deref(), Some("0"));
    assert_eq!(
        r.one("x-xss-protection"),
        None,
        "`false` turned the preset's header off"
    );
    assert_eq!(
        r.one("strict-transport-security").as_deref(),
        Some("max-age=31536000; includeSubDomains"),
        "the rule's integer over the top level's boolean"
    );
    assert!(r.one("permissions-policy").unwrap().contains("camera=()"));
    assert!(r
        .one("content-security-policy")
        .unwrap()
        .contains("upgrade-insecure-requests"));
}

#[test]
fn bad_yaml_keys_are_refused_with_the_field_path() {
    for (policy, path, reason) in [
        (
            json!({"hsts": {"max_age": "six hundred"}}),
            "hsts.max_age",
            "six hundred",
        ),
        (
            json!({"hsts": {"max_age": 99999999999u64}}),
            "hsts.max_age",
            "two years",
        ),
        (
            json!({"hsts": {"max_age": "1.500000"}}),
            "hsts.max_age",
            "1.500000",
        ),
        (
            json!({"content_type_options": "yes"}),
            "content_type_options",
            "yes",
        ),
        (
            json!({"rules": [{"hsts": {"max_age": -1}}]}),
            "rules[0].hsts.max_age",
            "-1",
        ),
        (
            json!({"rules": [{"match": {"hostz": ["a"]}}]}),
            "rules[0].match.hostz",
            "unknown field",
        ),
        (
            json!({"referrer_policy": []}),
            "referrer_policy",
            "not a Referrer-Policy token",
        ),
        (
            json!({"headers": {"X-A": {"action": "explode", "value": "1"}}}),
            "headers.X-A.action",
            "explode",
        ),
        (json!({"mode": "watch"}), "mode", "watch"),
    ] {
        let err = from_keys(&policy).unwrap_err();
        assert_eq!(err.field, path, "{policy}: {err}");
        assert!(err.reason.contains(reason), "{policy}: {err}");
    }
}

#[test]
fn options_that_are_not_a_policy_are_refused() {
    for (options, path, reason) in [
        ("{}", "", "no policy given"),
        ("\"\"", "", "no policy given"),
        ("null", "", "no policy given"),
        ("not json", "", "not JSON"),
        (
            r#"{"policy": "{}", "presets": ["immich"]}"#,
            "policy",
            "not both",
        ),
        (
            r#"{"policy": {"presets": ["immich"]}}"#,
            "policy",
            "one JSON string",
        ),
        (
            r#"{"policy": "{\"hsts\": {\"max_age\": \"600\"}}"}"#,
            "hsts.max_age",
            "invalid type",
        ),
    ] {
        let err = policy_from_options(options.as_bytes()).unwrap_err();
        assert_eq!(
            (err.field.as_str(), err.reason.contains(reason)),
            (path, true),
            "{options}: {err}"
        );
    }
}

#[test]
fn every_bad_policy_of_the_table_is_refused_in_yaml_keys_at_the_same_path() {
    let table: Vec<Value> = serde_json::from_str(include_str!("bad_policies.json")).unwrap();
    let mut failures = Vec::new();
    // A string where JSON wants another type (a number, a list): Traefik delivers every scalar, and a list of
    // scalars from labels, as a string, so these are read by the schema instead of refused.
    fn has_string(v: &Value) -> bool {
        match v {
            Value::String(_) => true,
            Value::Array(items) => items.iter().any(has_string),
            Value::Object(map) => map.values().any(has_string),
            _ => false,
        }
    }
    let coerced = |c: &&Value| c["reason"] == "invalid type" && has_string(&c["policy"]);
    for case in table
        .iter()
        .filter(|c| c["policy"].is_object() && !coerced(c))
    {
        let policy = &case["policy"];
        let path = case["path"].as_str().unwrap();
        match from_keys(policy) {
            Ok(_) => failures.push(format!("accepted: {policy}")),
            Err(err) if err.field != path => failures.push(format!("{policy}: {err}, want {path}")),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Labels and KV stores give a list of scalars as one comma-joined string (measured through Traefik's Redis
/// provider, which decodes the same flat key paths as Docker labels).
#[test]
fn comma_joined_lists_from_labels_read_as_lists() {
    let joined = json!({
        "presets": "immich,bundle-c",
        "headers": {"X-List": {"value": "a, b"}},
        "rules": [{"match": {"hosts": "a.example, b.example"}, "frame_ancestors": "'self',https://x.example",
                   "permissions_policy": {"camera": "self,https://x.example"}}]
    });
    let listed = json!({
        "presets": ["immich", "bundle-c"],
        "headers": {"X-List": {"value": "a, b"}},
        "rules": [{"match": {"hosts": ["a.example", "b.example"]},
                   "frame_ancestors": ["'self'", "https://x.example"],
                   "permissions_policy": {"camera": ["self", "https://x.example"]}}]
    });
    let from_labels = policy_from_options(joined.to_string().as_bytes()).unwrap();
    let from_json = Policy::parse(listed.to_string().as_bytes()).unwrap();
    assert_eq!(format!("{from_labels:?}"), format!("{from_json:?}"));
    let r = exchange(&from_labels, get("b.example", "/", "https"), html());
    assert_eq!(
        r.one("x-list").as_deref(),
        Some("a, b"),
        "a header value keeps its commas"
    );
}

#[test]
fn load_digest_covers_the_policy_string_or_else_the_options_as_delivered() {
    use secure_headers::policy_text;
    let policy = r#"{"presets": ["immich"]}"#;
    let as_string = serde_json::json!({ "policy": policy }).to_string();
    assert_eq!(&*policy_text(as_string.as_bytes()), policy.as_bytes());
    let as_keys = r#"{"presets":"immich"}"#;
    assert_eq!(&*policy_text(as_keys.as_bytes()), as_keys.as_bytes());
}

#[test]
fn on_invalid_policy_says_refuse_or_pass_beside_either_form_and_refuses_anything_else() {
    use secure_headers::{traefik_options, OnInvalidPolicy};
    let bad_policy = r#"{"hsts": {"max_age": "soon"}}"#;
    for (options, choice) in [
        (json!({"policy": bad_policy}), OnInvalidPolicy::Refuse),
        (
            json!({"policy": bad_policy, "on_invalid_policy": "refuse"}),
            OnInvalidPolicy::Refuse,
        ),
        (
            json!({"policy": bad_policy, "on_invalid_policy": "pass"}),
            OnInvalidPolicy::Pass,
        ),
        (
            json!({"hsts": {"max_age": "soon"}, "on_invalid_policy": "pass"}),
            OnInvalidPolicy::Pass,
        ),
    ] {
        let read = traefik_options(options.to_string().as_bytes()).unwrap();
        assert_eq!(read.on_invalid_policy, choice, "{options}");
        let err = read.policy.unwrap_err();
        assert_eq!(err.field, "hsts.max_age", "{options}: {err}");
    }
    // A good policy is the same policy with the option beside it, in either form.
    let plain = policy_from_options(json!({"presets": "immich"}).to_string().as_bytes()).unwrap();
    for options in [
        json!({"presets": "immich", "on_invalid_policy": "pass"}),
        json!({"policy": r#"{"presets": ["immich"]}"#, "on_invalid_policy": "refuse"}),
    ] {
        let policy = policy_from_options(options.to_string().as_bytes()).unwrap();
        assert_eq!(format!("{policy:?}"), format!("{plain:?}"), "{options}");
    }
    // A bad choice is refused whatever the policy, at its own field path.
    for value in [json!("Pass"), json!("open"), json!(""), json!(["pass"])] {
        let options = json!({"presets": "immich", "on_invalid_policy": value});
        let err = traefik_options(options.to_string().as_bytes()).unwrap_err();
        assert_eq!(err.field, "on_invalid_policy", "{options}: {err}");
        assert!(
            err.reason.contains("`refuse` (the default) or `pass`"),
            "{err}"
        );
    }
    // The option alone is no policy.
    let err = policy_from_options(br#"{"on_invalid_policy": "pass"}"#).unwrap_err();
    assert!(err.reason.contains("no policy given"), "{err}");
}

#[test]
fn load_digest_leaves_on_invalid_policy_out_of_the_policy_string() {
    use secure_headers::policy_text;
    let policy = r#"{"presets": ["immich"]}"#;
    let options = json!({ "policy": policy, "on_invalid_policy": "pass" }).to_string();
    assert_eq!(&*policy_text(options.as_bytes()), policy.as_bytes());
}
