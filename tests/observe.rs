//! Observe mode: every change is counted per header and outcome, and none is made.

mod common;

use common::{exchange, get, html, policy, Counts, Response, ResponseValues};
use secure_headers::Policy;

fn observed(policy: &Policy, mut response: Response) -> (Response, Counts) {
    let mut counts = Counts::default();
    let facts = policy.inspect_request(&mut get("h", "/", "https"));
    policy.apply_response(&facts, &mut response, &mut counts);
    (response, counts)
}

#[test]
fn an_observing_policy_counts_every_change_and_makes_none() {
    let p = policy(r#"{"mode": "observe", "presets": ["bundle-a", "bundle-b"]}"#);
    let mut upstream = html();
    upstream
        .headers
        .push(("x-frame-options".into(), b"DENY".to_vec()));
    upstream
        .headers
        .push(("x-content-type-options".into(), b"nosniff".to_vec()));
    let before = format!("{:?}", upstream.headers);
    let (after, counts) = observed(&p, upstream);
    assert_eq!(format!("{:?}", after.headers), before, "nothing changed");
    let expected = [
        ("observe.would_add.content-security-policy", 1),
        ("observe.would_add.strict-transport-security", 1),
        ("observe.would_overwrite.x-frame-options", 1), // DENY -> SAMEORIGIN
        ("observe.would_remove.x-powered-by", 1),
    ];
    assert_eq!(
        counts.0,
        expected.iter().map(|(n, c)| (n.to_string(), *c)).collect(),
        "nosniff is already there: no count for it"
    );
}

#[test]
fn the_counters_are_named_at_configure_time() {
    let p = policy(r#"{"mode": "observe", "presets": ["bundle-a"]}"#);
    let names: Vec<&str> = p.counter_names().collect();
    for header in [
        "x-content-type-options",
        "content-security-policy",
        "x-frame-options",
        "x-powered-by",
    ] {
        for outcome in ["would_add", "would_overwrite", "would_remove"] {
            let name = format!("observe.{outcome}.{header}");
            assert!(names.contains(&name.as_str()), "{name} in {names:?}");
        }
    }
    let enforcing = policy(r#"{"presets": ["bundle-a"]}"#);
    assert_eq!(enforcing.counter_names().count(), 0);
}

#[test]
fn mode_is_per_rule_so_one_route_can_observe_while_another_enforces() {
    let p = policy(
        r#"{"presets": ["bundle-a"], "rules": [
            {"name": "new", "match": {"paths": ["/new/"]}, "mode": "observe", "presets": ["bundle-e"]},
            {"name": "rest"}]}"#,
    );
    let (new, counts) = {
        let mut counts = Counts::default();
        let mut response = html();
        let facts = p.inspect_request(&mut get("h", "/new/page", "https"));
        p.apply_response(&facts, &mut response, &mut counts);
        (response, counts)
    };
    assert_eq!(new.one("x-frame-options"), None);
    assert_eq!(
        counts.get("observe.would_add.content-security-policy-report-only"),
        1
    );
    let rest = exchange(&p, get("h", "/other", "https"), html());
    assert_eq!(rest.one("x-frame-options").as_deref(), Some("SAMEORIGIN"));
}

#[test]
fn a_streamed_response_under_an_observing_rule_gets_nothing_written_early() {
    let p = policy(r#"{"mode": "observe", "presets": ["immich"]}"#);
    let facts = p.inspect_request(&mut get("h", "/api/assets/x/original", "https"));
    let mut response = Response::default();
    assert_eq!(p.apply_before_upstream(&facts, &mut response), Some(0));
    assert!(response.headers.is_empty(), "{:?}", response.headers);
}
