//! Policy x request x response: the per-response path (request inspection, Traefik's delivery decision, writes
//! before the upstream, the response decision, observe mode, inline-script hashing of a document body) and the
//! report collector never panic, and nothing they write can split a header. Envoy's reply from a fetched
//! document ends with the same headers as a held response given the same input.
#![no_main]

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use secure_headers::{
    fetched_response, reply_headers, InMemoryRequest, InMemoryResponse, Metrics, OriginBook,
    Policy, RequestView, ResponseHeaders,
};

/// Policies that exercise every kind of rule; the fuzzer picks one per input.
const POLICIES: &[&str] = &[
    r#"{"presets": ["immich"]}"#,
    r#"{"presets": ["strict"], "trusted_proto_header": "x-forwarded-proto"}"#,
    r#"{"mode": "observe", "presets": ["immich"], "remove_owasp_list": true}"#,
    r#"{"presets": ["immich"], "inline_script_hashes": {"max_scripts": 3, "max_body_bytes": 4096}}"#,
    r#"{"csp_reports": {"report_to": "csp"}, "rules": [
        {"name": "media", "match": {"hosts": ["*.example.com"], "paths": ["/api/assets/"],
         "content_types": ["image/*", "video/mp4"], "status": ["2xx", "304"]}, "presets": ["bundle-a"]},
        {"name": "html", "match": {"except_paths": ["/api/socket.io"], "content_types": ["text/html"]},
         "presets": ["bundle-a", "bundle-b", "bundle-c", "bundle-d", "bundle-e"],
         "cache_control": {"text/html": "no-store", "*/*": "private"},
         "headers": {"X-Extra": {"value": "1", "action": "append"}, "Server": {"action": "remove"}}},
        {"name": "observed", "mode": "observe", "presets": ["immich"]}]}"#,
];

#[derive(Arbitrary, Debug)]
struct Exchange {
    policy: u8,
    authority: Vec<u8>,
    path: Vec<u8>,
    https: bool,
    method: Vec<u8>,
    request_headers: Vec<(Vec<u8>, Vec<u8>)>,
    status: u16,
    response_headers: Vec<(Vec<u8>, Vec<u8>)>,
    report: Vec<u8>,
}

/// The exchange's request as the engine's in-memory request.
fn request(exchange: &Exchange) -> InMemoryRequest {
    InMemoryRequest {
        method: exchange.method.clone(),
        scheme: if exchange.https { "https" } else { "http" }.into(),
        authority: exchange.authority.clone(),
        url_path: exchange.path.clone(),
        headers: named(&exchange.request_headers),
    }
}

fn named(headers: &[(Vec<u8>, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(n, v)| (String::from_utf8_lossy(n).into_owned(), v.clone()))
        .collect()
}

/// The engine's in-memory response, checking every write the engine makes.
struct Checked(InMemoryResponse);

impl Checked {
    fn new(status: u16, headers: &[(Vec<u8>, Vec<u8>)]) -> Self {
        Checked(InMemoryResponse {
            status,
            headers: named(headers),
        })
    }
}

/// Every write must be a valid header: visible ASCII, no CR, LF or NUL.
fn check_written(name: &str, value: &str) {
    assert!(
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic()),
        "{name:?}"
    );
    assert!(
        value
            .bytes()
            .all(|b| b.is_ascii_graphic() || b == b' ' || b == b'\t'),
        "{value:?}"
    );
}

impl ResponseHeaders for Checked {
    fn status(&mut self) -> Option<u16> {
        self.0.status()
    }
    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.0.header(name)
    }
    fn set(&mut self, name: &str, value: &str) {
        check_written(name, value);
        self.0.set(name, value);
    }
    fn append(&mut self, name: &str, value: &str) {
        check_written(name, value);
        self.0.append(name, value);
    }
    fn remove(&mut self, name: &str) {
        self.0.remove(name);
    }
}

struct Counted;

impl Metrics for Counted {
    fn increment(&mut self, name: &str) {
        assert!(name.bytes().all(|b| b.is_ascii_graphic()), "{name:?}");
    }
}

fn policies() -> &'static [Policy] {
    thread_local! {
        // A Policy is not Sync (each rule remembers its last document in a RefCell): one set per fuzzing thread.
        static COMPILED: &'static [Policy] = Vec::leak(
            POLICIES
                .iter()
                .map(|json| Policy::parse(json.as_bytes()).unwrap_or_else(|e| panic!("{e}")))
                .collect(),
        );
    }
    COMPILED.with(|compiled| *compiled)
}

/// Envoy hands the filter lower-case names; a fetch whose headers are not all text is never answered from.
fn same_as_held(policy: &Policy, facts: &secure_headers::RequestFacts, exchange: &Exchange) {
    let Some(headers) = exchange
        .response_headers
        .iter()
        .map(|(n, v)| {
            let name = String::from_utf8(n.to_ascii_lowercase()).ok()?;
            Some((name, String::from_utf8(v.clone()).ok()?))
        })
        .collect::<Option<Vec<(String, String)>>>()
    else {
        return;
    };
    let status = (":status".to_string(), exchange.status.to_string());
    let Some(fetched) = fetched_response([status].into_iter().chain(headers.clone()).collect())
    else {
        return;
    };
    let mut fetched = Checked(fetched);
    let mut held = Checked(InMemoryResponse {
        status: exchange.status,
        headers: headers
            .iter()
            .map(|(n, v)| (n.clone(), v.clone().into_bytes()))
            .collect(),
    });
    policy.apply_document(facts, &mut held, &exchange.report, &mut Counted);
    policy.apply_document(facts, &mut fetched, &exchange.report, &mut Counted);
    let names: Vec<String> = held
        .0
        .headers
        .iter()
        .map(|(n, _)| n.clone())
        .chain(reply_headers(&fetched.0).iter().map(|(n, _)| n.to_string()))
        .collect();
    for name in names.iter().filter(|n| !n.starts_with(':')) {
        assert_eq!(held.header(name), fetched.header(name), "{name}");
    }
}

fuzz_target!(|exchange: Exchange| {
    let all = policies();
    let policy = &all[usize::from(exchange.policy) % all.len()];
    let facts = policy.inspect_request(&mut request(&exchange));
    policy.delivery(&facts, &mut request(&exchange));
    let mut early = Checked::new(exchange.status, &[]);
    policy.apply_before_upstream(&facts, &mut early);
    let mut response = Checked::new(exchange.status, &exchange.response_headers);
    let mut document = Checked::new(exchange.status, &exchange.response_headers);
    policy.apply_response(&facts, &mut response, &mut Counted);
    // The body of a document: the report bytes double as one.
    policy.apply_document(&facts, &mut document, &exchange.report, &mut Counted);
    same_as_held(policy, &facts, &exchange);
    if let Some(collector) = &policy.report_collector {
        let mut request = request(&exchange);
        let content_type = request.header("content-type").map(<[u8]>::to_vec);
        let content_length = request.header("content-length").map(<[u8]>::to_vec);
        collector.admit(
            Some(&exchange.path),
            Some(&exchange.method),
            content_type.as_deref(),
            content_length.as_deref(),
        );
        let mut lines = Vec::new();
        let _ = collector.collect(
            &exchange.report,
            &mut OriginBook::default(),
            &mut Counted,
            &mut |l: &str| lines.push(l.to_string()),
        );
        for line in lines {
            assert!(
                line.bytes().all(|b| b.is_ascii_graphic() || b == b' '),
                "{line:?}"
            );
        }
    }
});
