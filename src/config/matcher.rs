//! Which requests and responses a rule applies to: host, path prefix, content type, status class.
//! Request-side conditions are decided once when the request headers pass; response-side ones when the
//! response headers pass. Matching only compares bytes; it never allocates. The matching functions are
//! `#[inline]`, so that each host adapter's crate compiles them at its own, speed-leaning opt-level.

use crate::config::schema::MatchSpec;
use crate::config::syntax::url_path_prefix;
use crate::error::ConfigError;
use crate::http_bytes::same_ignoring_ascii_case;

#[derive(Debug, Default)]
pub struct Matcher {
    hosts: Vec<HostPattern>,
    paths: Vec<Box<str>>,
    except_paths: Vec<Box<str>>,
    content_types: Vec<MediaPattern>,
    statuses: Vec<StatusPattern>,
}

#[derive(Debug)]
enum HostPattern {
    Exact(Box<str>),
    /// `*.example.com`, stored as `.example.com`: one or more labels before it.
    Suffix(Box<str>),
}

/// A media type (`text/html`) or a type wildcard (`image/*`), compared without case.
#[derive(Debug)]
pub enum MediaPattern {
    Exact(Box<str>),
    /// `image/*`, stored as `image/`.
    AnySubtype(Box<str>),
}

#[derive(Debug, Clone, Copy)]
enum StatusPattern {
    Class(u16),
    Code(u16),
}

impl Matcher {
    pub fn compile(field: &str, spec: &MatchSpec) -> Result<Matcher, ConfigError> {
        /// Compiles each entry of one list, naming the entry's index in an error.
        fn each<T>(
            field: &str,
            list: &str,
            values: &Option<Vec<String>>,
            compile: fn(&str, &str) -> Result<T, ConfigError>,
        ) -> Result<Vec<T>, ConfigError> {
            values
                .iter()
                .flatten()
                .enumerate()
                .map(|(i, v)| compile(&format!("{field}.{list}[{i}]"), v))
                .collect()
        }
        Ok(Matcher {
            hosts: each(field, "hosts", &spec.hosts, host_pattern)?,
            paths: each(field, "paths", &spec.paths, url_path_prefix)?,
            except_paths: each(field, "except_paths", &spec.except_paths, url_path_prefix)?,
            content_types: each(
                field,
                "content_types",
                &spec.content_types,
                MediaPattern::compile,
            )?,
            statuses: each(field, "status", &spec.status, status_pattern)?,
        })
    }

    #[inline]
    pub fn has_request_conditions(&self) -> bool {
        !(self.hosts.is_empty() && self.paths.is_empty() && self.except_paths.is_empty())
    }

    #[inline]
    pub fn has_response_conditions(&self) -> bool {
        !(self.content_types.is_empty() && self.statuses.is_empty())
    }

    /// Whether the host conditions hold for `authority` (which may carry a port), whatever the path.
    #[inline]
    pub fn matches_host(&self, authority: &[u8]) -> bool {
        self.hosts.is_empty() || {
            let host = strip_port(authority);
            self.hosts.iter().any(|p| p.matches(host))
        }
    }

    pub fn has_path_conditions(&self) -> bool {
        !(self.paths.is_empty() && self.except_paths.is_empty())
    }

    /// Host and path. `authority` may carry a port; `path` is the request path without its query
    /// (`strip_query`, which the caller does once for every rule).
    #[inline]
    pub fn matches_request(&self, authority: Option<&[u8]>, path: &[u8]) -> bool {
        let host_ok = self.matches_host(authority.unwrap_or_default());
        let path_ok =
            self.paths.is_empty() || self.paths.iter().any(|p| path.starts_with(p.as_bytes()));
        let excluded = self
            .except_paths
            .iter()
            .any(|p| path.starts_with(p.as_bytes()));
        host_ok && path_ok && !excluded
    }

    /// Status and content type (the media type without parameters).
    #[inline]
    pub fn matches_response(&self, status: u16, media_type: Option<&[u8]>) -> bool {
        let status_ok = self.statuses.is_empty() || self.statuses.iter().any(|p| p.matches(status));
        let type_ok = self.content_types.is_empty()
            || media_type.is_some_and(|t| self.content_types.iter().any(|p| p.matches(t)));
        status_ok && type_ok
    }
}

impl HostPattern {
    #[inline]
    fn matches(&self, host: &[u8]) -> bool {
        match self {
            HostPattern::Exact(h) => same_ignoring_ascii_case(host, h.as_bytes()),
            HostPattern::Suffix(s) => {
                host.len() > s.len()
                    && host
                        .get(host.len() - s.len()..)
                        .is_some_and(|tail| same_ignoring_ascii_case(tail, s.as_bytes()))
            }
        }
    }
}

impl MediaPattern {
    pub fn compile(field: &str, pattern: &str) -> Result<MediaPattern, ConfigError> {
        let lower = pattern.to_ascii_lowercase();
        let token = |x: &str| {
            !x.is_empty()
                && x.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
        };
        match lower.split_once('/') {
            Some(("*", "*")) => Ok(MediaPattern::AnySubtype("".into())),
            Some((t, "*")) if token(t) => Ok(MediaPattern::AnySubtype(format!("{t}/").into())),
            Some((t, s)) if token(t) && token(s) => Ok(MediaPattern::Exact(lower.into_boxed_str())),
            _ => Err(ConfigError::new(
                field,
                format!("`{pattern}` is not a media type (text/html) or a type wildcard (image/*)"),
            )),
        }
    }

    #[inline]
    pub fn matches(&self, media_type: &[u8]) -> bool {
        match self {
            MediaPattern::Exact(t) => same_ignoring_ascii_case(media_type, t.as_bytes()),
            MediaPattern::AnySubtype(prefix) => media_type
                .get(..prefix.len())
                .is_some_and(|head| same_ignoring_ascii_case(head, prefix.as_bytes())),
        }
    }
}

impl StatusPattern {
    #[inline]
    fn matches(&self, status: u16) -> bool {
        match *self {
            StatusPattern::Class(c) => status / 100 == c,
            StatusPattern::Code(c) => status == c,
        }
    }
}

fn strip_port(authority: &[u8]) -> &[u8] {
    // `[::1]:8000` keeps its brackets; `host:8000` loses the port.
    let end = match authority.iter().rposition(|b| *b == b':') {
        Some(colon) if !authority.get(colon..).is_some_and(|t| t.contains(&b']')) => colon,
        _ => authority.len(),
    };
    authority.get(..end).unwrap_or(authority)
}

fn host_pattern(field: &str, host: &str) -> Result<HostPattern, ConfigError> {
    let lower = host.to_ascii_lowercase();
    let (bare, wildcard) = match lower.strip_prefix("*.") {
        Some(rest) => (rest, true),
        None => (lower.as_str(), false),
    };
    let valid = !bare.is_empty()
        && bare.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if !valid {
        return Err(ConfigError::new(
            field,
            format!("`{host}` is not a host name (example.com) or a wildcard (*.example.com); ports are ignored when matching"),
        ));
    }
    Ok(if wildcard {
        HostPattern::Suffix(format!(".{bare}").into_boxed_str())
    } else {
        HostPattern::Exact(lower.into_boxed_str())
    })
}

fn status_pattern(field: &str, status: &str) -> Result<StatusPattern, ConfigError> {
    let bad = || {
        ConfigError::new(
            field,
            format!("`{status}` is not a status class (2xx) or a code (404)"),
        )
    };
    let bytes = status.as_bytes();
    match bytes {
        [c @ b'1'..=b'5', b'x' | b'X', b'x' | b'X'] => {
            Ok(StatusPattern::Class(u16::from(c - b'0')))
        }
        _ => match status.parse::<u16>() {
            Ok(code) if (100..=599).contains(&code) => Ok(StatusPattern::Code(code)),
            _ => Err(bad()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tree_reader::TreeReader;
    use crate::http_bytes::strip_query;
    use crate::json_tree::JsonTree;

    fn spec(json: &str) -> MatchSpec {
        MatchSpec::read(TreeReader::json(&JsonTree::parse(json.as_bytes()).unwrap())).unwrap()
    }

    fn matcher(json: &str) -> Matcher {
        Matcher::compile("match", &spec(json)).unwrap()
    }

    #[test]
    fn hosts_exact_and_wildcard_ignore_port_and_case() {
        let m = matcher(r#"{"hosts": ["photos.example.com", "*.immich.test"]}"#);
        assert!(m.matches_request(Some(b"Photos.Example.com:8443"), b"/"));
        assert!(m.matches_request(Some(b"a.b.immich.test"), b"/"));
        assert!(!m.matches_request(Some(b"immich.test"), b"/"));
        assert!(!m.matches_request(Some(b"evilimmich.test"), b"/"));
        assert!(!m.matches_request(None, b"/"));
    }

    #[test]
    fn paths_are_prefixes_with_exclusions_and_queries_ignored() {
        let m = matcher(r#"{"paths": ["/api/"], "except_paths": ["/api/socket.io"]}"#);
        let path = |p: &'static [u8]| strip_query(p);
        assert!(m.matches_request(None, path(b"/api/assets/1?key=/api/socket.io")));
        assert!(!m.matches_request(None, path(b"/api/socket.io/?EIO=4")));
        assert!(!m.matches_request(None, path(b"/share/x")));
    }

    #[test]
    fn response_conditions() {
        let m = matcher(r#"{"content_types": ["text/html", "image/*"], "status": ["2xx", "404"]}"#);
        assert!(m.matches_response(200, Some(b"TEXT/HTML")));
        assert!(m.matches_response(404, Some(b"image/png")));
        assert!(!m.matches_response(302, Some(b"text/html")));
        assert!(!m.matches_response(200, None));
    }

    #[test]
    fn ports_are_cut_from_hosts() {
        assert_eq!(strip_port(b"[::1]:80"), b"[::1]");
        assert_eq!(strip_port(b"[::1]"), b"[::1]");
    }

    #[test]
    fn bad_patterns_name_their_index() {
        for (json, field) in [
            (r#"{"hosts": ["a..b"]}"#, "match.hosts[0]"),
            (r#"{"paths": ["/", "api"]}"#, "match.paths[1]"),
            (r#"{"content_types": ["html"]}"#, "match.content_types[0]"),
            (r#"{"status": ["6xx"]}"#, "match.status[0]"),
        ] {
            let err = Matcher::compile("match", &spec(json)).unwrap_err();
            assert_eq!(err.field, field);
        }
    }
}
