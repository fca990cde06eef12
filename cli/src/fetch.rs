//! Fetching a URL as a browser or a scanner would, with every failure as one line.

use crate::exchange::{Request, Response, Style};
use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;
use ureq::tls::{parse_pem, PemItem, RootCerts, TlsConfig};

/// Redirects followed before giving up.
const MAX_REDIRECTS: usize = 10;
/// Response headers larger than this are refused (what a proxy's default allows).
const MAX_HEADER_BYTES: usize = 64 * 1024;
/// Bytes of a page read to find the URLs it references (`--crawl`).
const MAX_PAGE_BYTES: u64 = 4 << 20;

pub struct Client {
    agent: ureq::Agent,
    timeout_seconds: u64,
}

pub struct Fetched {
    pub final_url: String,
    pub response: Response,
    pub body: Option<String>,
}

impl Client {
    pub fn new(insecure: bool, ca: Option<&Path>, timeout_seconds: u64) -> Result<Client, String> {
        let mut tls = TlsConfig::builder().disable_verification(insecure);
        if let Some(ca) = ca {
            let pem = std::fs::read(ca).map_err(|e| format!("--ca {}: {e}", ca.display()))?;
            let certs: Vec<_> = parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(PemItem::Certificate(cert)) => Some(cert),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(format!("--ca {}: no PEM certificate in it", ca.display()));
            }
            tls = tls.root_certs(RootCerts::new_with_certs(&certs));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .max_response_header_size(MAX_HEADER_BYTES)
            .timeout_global(Some(Duration::from_secs(timeout_seconds)))
            .tls_config(tls.build())
            .build();
        Ok(Client {
            agent: config.into(),
            timeout_seconds,
        })
    }

    /// GET `url` in `style`, following redirects; `want_body` reads the page (for `--crawl`).
    pub fn fetch(&self, url: &str, style: Style, want_body: bool) -> Result<Fetched, String> {
        let mut current = url.to_string();
        let mut seen = HashSet::new();
        loop {
            let request = Request::new(&current, style, "GET")?;
            if !seen.insert(current.clone()) {
                return Err(format!("{url}: redirect loop (back to {current})"));
            }
            if seen.len() > MAX_REDIRECTS {
                return Err(format!("{url}: more than {MAX_REDIRECTS} redirects"));
            }
            let mut call = self.agent.get(&current);
            for (name, value) in &request.headers {
                call = call.header(name, value);
            }
            let mut answer = call.call().map_err(|e| self.describe(url, &e))?;
            let response = Response {
                status: answer.status().as_u16(),
                headers: answer
                    .headers()
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.as_str().to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
            };
            if (300..400).contains(&response.status) {
                if let Some(location) = response.values("location").first() {
                    current = resolve(&current, location).ok_or_else(|| {
                        format!("{url}: redirected to {location:?}, which is not a URL")
                    })?;
                    continue;
                }
            }
            let body = if want_body {
                answer
                    .body_mut()
                    .with_config()
                    .limit(MAX_PAGE_BYTES)
                    .read_to_string()
                    .ok()
            } else {
                None
            };
            return Ok(Fetched {
                final_url: current,
                response,
                body,
            });
        }
    }

    /// One line for a failed fetch, naming the way out where there is one.
    fn describe(&self, url: &str, error: &ureq::Error) -> String {
        let what = match error {
            ureq::Error::Timeout(_) => format!("no answer within {} s (--timeout)", self.timeout_seconds),
            ureq::Error::HostNotFound => "no such host".to_string(),
            ureq::Error::ConnectionFailed => "connection refused or unreachable".to_string(),
            ureq::Error::LargeResponseHeader(_, limit) => {
                format!("response headers larger than {limit} bytes")
            }
            ureq::Error::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                "connection refused".to_string()
            }
            ureq::Error::Protocol(_) => "the answer is not HTTP".to_string(),
            other => match untrusted_certificate(other) {
                Some(reason) => format!(
                    "certificate not trusted ({reason:?}); --ca FILE trusts a private CA, --insecure skips the check"
                ),
                None => other.to_string(),
            },
        };
        format!("{url}: {}", what.replace('\n', " "))
    }
}

/// Why the server's certificate was refused, if that is the failure: rustls reports it directly or, from inside
/// the TLS stream, wrapped in an I/O error.
fn untrusted_certificate(error: &ureq::Error) -> Option<&rustls::CertificateError> {
    let tls = match error {
        ureq::Error::Rustls(tls) => Some(tls),
        ureq::Error::Io(io) => io.get_ref().and_then(|inner| inner.downcast_ref()),
        _ => None,
    };
    match tls {
        Some(rustls::Error::InvalidCertificate(reason)) => Some(reason),
        _ => None,
    }
}

/// `reference` (absolute, origin-relative or path-relative) against `base`; None for other schemes.
pub fn resolve(base: &str, reference: &str) -> Option<String> {
    if reference.starts_with("http://") || reference.starts_with("https://") {
        return Some(reference.to_string());
    }
    if reference.contains(':') && !reference.starts_with('/') {
        return None;
    }
    let scheme_end = base.find("://")? + 3;
    let origin_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    let origin = &base[..origin_end];
    if let Some(rest) = reference.strip_prefix("//") {
        return Some(format!("{}{rest}", &base[..scheme_end]));
    }
    if reference.starts_with('/') {
        return Some(format!("{origin}{}", remove_dot_segments(reference)));
    }
    let path = base[origin_end..]
        .split(['?', '#'])
        .next()
        .unwrap_or_default();
    let dir = path.rfind('/').map_or("/", |i| &path[..=i]);
    Some(format!(
        "{origin}{}",
        remove_dot_segments(&format!("{dir}{reference}"))
    ))
}

/// An absolute path with its `.` and `..` segments resolved (RFC 3986 5.2.4), query and fragment kept.
fn remove_dot_segments(path: &str) -> String {
    let (path, rest) = path.split_at(path.find(['?', '#']).unwrap_or(path.len()));
    let parts: Vec<&str> = path.split('/').collect();
    let mut kept: Vec<&str> = Vec::new();
    for (i, segment) in parts.iter().enumerate() {
        match *segment {
            "." | ".." => {
                if *segment == ".." && kept.len() > 1 {
                    kept.pop();
                }
                if i + 1 == parts.len() {
                    kept.push(""); // `a/..` names the directory
                }
            }
            other => kept.push(other),
        }
    }
    format!("{}{rest}", kept.join("/"))
}

/// Same-origin URLs the page references in `src=` and `href=`, with the style a browser fetches them in.
pub fn referenced_urls(page_url: &str, html: &str, limit: usize) -> Vec<(String, Style)> {
    let origin = |url: &str| -> Option<String> {
        let start = url.find("://")? + 3;
        Some(url[..url[start..].find('/').map_or(url.len(), |i| start + i)].to_ascii_lowercase())
    };
    let page_origin = origin(page_url);
    let mut found: Vec<(String, Style)> = Vec::new();
    if limit == 0 {
        return found;
    }
    // Linear: each search for a closing quote stops at the next attribute's opening quote of the same kind.
    for attribute in ["src=", "href="] {
        for (at, _) in html.match_indices(attribute) {
            let rest = &html[at + attribute.len()..];
            let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
                continue;
            };
            let Some(end) = rest[1..].find(quote) else {
                continue;
            };
            let Some(url) = resolve(page_url, &rest[1..1 + end]) else {
                continue;
            };
            let url = url.split('#').next().unwrap_or_default().to_string();
            if origin(&url) != page_origin
                || url == page_url
                || found.iter().any(|(u, _)| *u == url)
            {
                continue;
            }
            if let Some(style) = style_of(&url) {
                found.push((url, style));
                // Stop at the limit, so a hostile page costs one pass, not a quadratic de-duplication.
                if found.len() == limit {
                    return found;
                }
            }
        }
    }
    found
}

/// Scripts, styles, images and API calls; other links (pages) are left to the operator's URL list.
fn style_of(url: &str) -> Option<Style> {
    let path = url
        .split('?')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let extension = path
        .rsplit('/')
        .next()
        .and_then(|f| f.rsplit_once('.'))
        .map(|(_, e)| e);
    match extension {
        Some("js" | "mjs" | "css") => Some(Style::Asset),
        Some("png" | "jpg" | "jpeg" | "gif" | "svg" | "webp" | "avif" | "ico") => {
            Some(Style::Image)
        }
        Some("json") => Some(Style::Api),
        _ if path.contains("/api/") => Some(Style::Api),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_absolute_origin_relative_and_path_relative_references() {
        let base = "https://p.test/albums/x?y=1";
        assert_eq!(
            resolve(base, "/a.js").as_deref(),
            Some("https://p.test/a.js")
        );
        assert_eq!(
            resolve(base, "b.css").as_deref(),
            Some("https://p.test/albums/b.css")
        );
        assert_eq!(
            resolve(base, "//cdn.test/c.js").as_deref(),
            Some("https://cdn.test/c.js")
        );
        assert_eq!(
            resolve(base, "http://o.test/").as_deref(),
            Some("http://o.test/")
        );
        assert_eq!(resolve(base, "data:image/png;base64,AA"), None);
        for (reference, want) in [
            ("./c.js", "https://p.test/albums/c.js"),
            ("../c.js?v=2", "https://p.test/c.js?v=2"),
            ("../../../c.js", "https://p.test/c.js"),
            ("/a/./b/../c.js", "https://p.test/a/c.js"),
            ("..", "https://p.test/"),
        ] {
            assert_eq!(
                resolve(base, reference).as_deref(),
                Some(want),
                "{reference}"
            );
        }
    }

    #[test]
    fn keeps_same_origin_subresources_in_their_browser_style_up_to_the_limit() {
        let page = r#"<script src="/app.js"></script><link href='/s.css'><img src="/i.png">
            <a href="/albums">x</a><script src="https://cdn.test/x.js"></script><img src="/i.png">"#;
        let found = referenced_urls("https://p.test/", page, 10);
        assert_eq!(
            found,
            vec![
                ("https://p.test/app.js".to_string(), Style::Asset),
                ("https://p.test/i.png".to_string(), Style::Image),
                ("https://p.test/s.css".to_string(), Style::Asset),
            ]
        );
        assert_eq!(referenced_urls("https://p.test/", page, 1).len(), 1);
    }

    #[test]
    fn attribute_values_without_a_known_extension_are_no_subresource() {
        let page = "src=\"/a".repeat(100) + &"src='/b".repeat(100);
        assert!(referenced_urls("https://p.test/", &page, 5).is_empty());
    }
}
