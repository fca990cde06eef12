//! A request and a response as the CLI makes and records them, handed to the engine as its in-memory request
//! and response, so the CLI drives the very decision the plugins make (`explain`, `check --policy`) instead of
//! imitating it.

use secure_headers::{
    Delivery, InMemoryRequest, InMemoryResponse, Metrics, Policy, RequestFacts, ResponseHeaders,
};
use ureq::http::Uri;

/// How a request is made: a browser navigation or subresource, or a scanner.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Style {
    /// A top-level navigation as Chromium sends it (Fetch Metadata, an Accept asking for HTML).
    Document,
    /// A script or stylesheet the page loads.
    Asset,
    /// An image the page loads.
    Image,
    /// fetch()/XHR from the page.
    Api,
    /// A video or audio element.
    Media,
    /// A scanner or curl: `Accept: */*`, no Fetch Metadata.
    Scanner,
}

/// Chromium's Accept for a navigation.
const NAVIGATION_ACCEPT: &str =
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,\
image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";

impl Style {
    /// The request headers this style sends (names lower case).
    pub fn request_headers(self) -> Vec<(String, String)> {
        let fetch = |dest: &str, mode: &str, accept: &str| {
            vec![
                ("accept".to_string(), accept.to_string()),
                ("sec-fetch-dest".to_string(), dest.to_string()),
                ("sec-fetch-mode".to_string(), mode.to_string()),
                ("sec-fetch-site".to_string(), "same-origin".to_string()),
            ]
        };
        match self {
            Style::Document => {
                let mut headers = fetch("document", "navigate", NAVIGATION_ACCEPT);
                if let Some(site) = headers.get_mut(3) {
                    site.1 = "none".to_string();
                }
                headers.push(("sec-fetch-user".to_string(), "?1".to_string()));
                headers.push(("upgrade-insecure-requests".to_string(), "1".to_string()));
                headers
            }
            Style::Asset => fetch("script", "no-cors", "*/*"),
            Style::Image => fetch(
                "image",
                "no-cors",
                "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
            ),
            Style::Api => fetch("empty", "cors", "application/json"),
            Style::Media => fetch("video", "no-cors", "*/*"),
            Style::Scanner => vec![("accept".to_string(), "*/*".to_string())],
        }
    }

    /// A Content-Type an upstream typically answers this style with, for `explain` without `--content-type`.
    pub fn typical_content_type(self, path: &str) -> &'static str {
        let extension = path.rsplit('.').next().unwrap_or_default();
        match self {
            Style::Document | Style::Scanner => "text/html; charset=utf-8",
            Style::Api => "application/json",
            Style::Media => "video/mp4",
            Style::Image => "image/png",
            Style::Asset if extension == "css" => "text/css",
            Style::Asset => "text/javascript",
        }
    }
}

/// One request as the filter sees it.
pub struct Request {
    pub authority: String,
    pub path_and_query: String,
    pub https: bool,
    pub method: String,
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn new(url: &str, style: Style, method: &str) -> Result<Request, String> {
        let uri: Uri = url.parse().map_err(|e| format!("{url}: not a URL ({e})"))?;
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(format!("{url}: not an http:// or https:// URL")),
        };
        let authority = uri
            .authority()
            .map(|a| a.as_str().to_string())
            .ok_or_else(|| format!("{url}: no host"))?;
        Ok(Request {
            authority,
            path_and_query: uri
                .path_and_query()
                .map_or_else(|| "/".to_string(), |p| p.as_str().to_string()),
            https,
            method: method.to_string(),
            headers: style.request_headers(),
        })
    }

    pub fn path(&self) -> &str {
        self.path_and_query.split('?').next().unwrap_or_default()
    }
}

impl Request {
    /// The request as the engine reads it.
    fn in_memory(&self) -> InMemoryRequest {
        let scheme = if self.https { "https" } else { "http" };
        let mut request =
            InMemoryRequest::new(&self.method, scheme, &self.authority, &self.path_and_query);
        for (name, value) in &self.headers {
            request.add_header(name, value.as_bytes());
        }
        request
    }
}

/// Response headers in arrival order, names lower case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
}

impl Response {
    pub fn values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl Response {
    /// The response as the engine edits it.
    fn in_memory(&self) -> InMemoryResponse {
        InMemoryResponse {
            status: self.status,
            headers: self
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), value.clone().into_bytes()))
                .collect(),
        }
    }

    /// The engine's result, names lower case as recorded.
    fn from_in_memory(response: InMemoryResponse) -> Response {
        Response {
            status: response.status,
            headers: response
                .headers
                .into_iter()
                .map(|(name, value)| {
                    (
                        name.to_ascii_lowercase(),
                        String::from_utf8_lossy(&value).into_owned(),
                    )
                })
                .collect(),
        }
    }
}

/// The counters the engine moved for one exchange, by name (`explain` names a document's fallback from them).
#[derive(Default)]
pub struct Counted(pub Vec<String>);

impl Metrics for Counted {
    fn increment(&mut self, name: &str) {
        self.0.push(name.to_string());
    }
}

/// What the policy does to one exchange, on a host that holds the response (Envoy; Traefik when held).
pub struct Decision {
    pub facts: RequestFacts,
    pub rule: Option<usize>,
    pub after: Response,
    pub delivery: Delivery,
    pub counted: Counted,
}

/// With `document`, the upstream's body: a hashing rule then sends that document's CSP.
pub fn decide(
    policy: &Policy,
    request: &Request,
    upstream: &Response,
    document: Option<&[u8]>,
) -> Decision {
    let mut request = request.in_memory();
    let facts = policy.inspect_request(&mut request);
    let delivery = policy.delivery(&facts, &mut request);
    let mut after = upstream.in_memory();
    let mut counted = Counted::default();
    let rule = match document {
        Some(body) => policy.apply_document(&facts, &mut after, body, &mut counted),
        None => policy.apply_response(&facts, &mut after, &mut counted),
    };
    Decision {
        facts,
        rule,
        after: Response::from_in_memory(after),
        delivery,
        counted,
    }
}

/// What a response Traefik streams gets: the plugin's writes before the upstream answers, the upstream's own
/// headers added to them, then the companion `headers` middleware (removals, sets, HSTS on https).
pub fn streamed_on_traefik(
    policy: &Policy,
    facts: &RequestFacts,
    upstream: &Response,
    hosts: &[&str],
) -> Response {
    let mut streamed = InMemoryResponse {
        status: upstream.status,
        headers: Vec::new(),
    };
    policy.apply_before_upstream(facts, &mut streamed);
    streamed.headers.extend(upstream.in_memory().headers);
    let companion = policy.companion(hosts);
    if companion.uncovered.is_none() {
        for name in &companion.removals {
            streamed.remove(name);
        }
        for (name, value) in &companion.sets {
            streamed.set(name, value);
        }
        if let (Some(hsts), true) = (companion.hsts, facts.https) {
            let mut value = format!("max-age={}", hsts.max_age);
            if hsts.include_subdomains {
                value.push_str("; includeSubDomains");
            }
            if hsts.preload {
                value.push_str("; preload");
            }
            streamed.set("strict-transport-security", &value);
        }
    }
    Response::from_in_memory(streamed)
}
