//! Every policy in bad_policies.json is refused with the expected field path and reason.
//! The Envoy end-to-end tests load the same table into real Envoy.

use secure_headers::Policy;
use serde_json::Value;

#[test]
fn every_bad_policy_is_refused_with_its_field_path() {
    let table: Vec<Value> = serde_json::from_str(include_str!("bad_policies.json")).unwrap();
    assert!(table.len() >= 40, "the table keeps at least 40 cases");
    let mut failures = Vec::new();
    for case in &table {
        let json = match (&case["raw"], &case["policy"]) {
            (Value::String(raw), _) => raw.clone(),
            (_, policy) => policy.to_string(),
        };
        let (field, reason) = (
            case["path"].as_str().unwrap(),
            case["reason"].as_str().unwrap(),
        );
        match Policy::parse(json.as_bytes()) {
            Ok(_) => failures.push(format!("accepted: {json:.200}")),
            Err(err) if err.field != field || !err.reason.contains(reason) => failures.push(
                format!("{json:.200}\n  got:  {err}\n  want: {field}: ...{reason}..."),
            ),
            Err(err) if err.to_string().contains(['\r', '\n', '\0']) => {
                failures.push(format!("not one line: {err:?}"))
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        table.len(),
        failures.join("\n")
    );
}

#[test]
fn the_good_examples_load() {
    for json in [
        "{}",
        r#"{"presets": ["bundle-a", "bundle-b", "bundle-c", "bundle-d", "bundle-e"]}"#,
        r#"{"presets": ["immich"]}"#,
        r#"{"presets": ["strict"]}"#,
        r#"{"rules": [{"name": "immich", "match": {"hosts": ["photos.example.com"]}, "presets": ["immich"]}]}"#,
    ] {
        Policy::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{json}: {e}"));
    }
}

/// The nesting guard counts brackets outside strings only (escaped quotes included), and lets the deepest
/// policy the schema has (six levels) and deeper ones up to its limit through to the parser.
#[test]
fn brackets_inside_strings_do_not_count_as_nesting() {
    let deep_text = format!(
        r#"{{"rules": [{{"headers": {{"x-a": {{"value": "\"{}"}}}}}}]}}"#,
        "[{".repeat(40)
    );
    assert!(Policy::parse(deep_text.as_bytes()).is_ok(), "{deep_text}");
    let six =
        r#"{"rules": [{"content_security_policy": {"directives": {"script-src": ["'self'"]}}}]}"#;
    assert!(Policy::parse(six.as_bytes()).is_ok());
    let sixteen = format!("{}{}", "{\"x\": [".repeat(8), "]}".repeat(8));
    let err = Policy::parse(sixteen.as_bytes()).expect_err("x is not a field");
    assert!(
        !err.reason.contains("nest deeper"),
        "16 levels reach the parser: {err}"
    );
}
