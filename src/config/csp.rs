//! Content-Security-Policy: directive names and source expressions checked the way helmet checks them,
//! rendered in one canonical order.

use crate::config::schema::{KeyedMap, Toggle};
use crate::error::ConfigError;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Grammar {
    /// `'self' https://a.example data:` ...
    Sources,
    /// frame-ancestors: sources without script keywords.
    Ancestors,
    /// No value at all (upgrade-insecure-requests).
    Flag,
    /// Bare tokens checked against a list (sandbox, require-trusted-types-for, webrtc).
    Tokens(&'static [&'static str]),
    /// Free tokens without quotes or separators (trusted-types policy names, report-to group).
    Names,
    /// URLs (report-uri).
    Urls,
}

/// Every directive CSP Level 3 defines, in the order the header is written.
const DIRECTIVES: &[(&str, Grammar)] = &[
    ("default-src", Grammar::Sources),
    ("base-uri", Grammar::Sources),
    ("script-src", Grammar::Sources),
    ("script-src-elem", Grammar::Sources),
    ("script-src-attr", Grammar::Sources),
    ("style-src", Grammar::Sources),
    ("style-src-elem", Grammar::Sources),
    ("style-src-attr", Grammar::Sources),
    ("img-src", Grammar::Sources),
    ("font-src", Grammar::Sources),
    ("connect-src", Grammar::Sources),
    ("media-src", Grammar::Sources),
    ("object-src", Grammar::Sources),
    ("child-src", Grammar::Sources),
    ("frame-src", Grammar::Sources),
    ("worker-src", Grammar::Sources),
    ("manifest-src", Grammar::Sources),
    ("fenced-frame-src", Grammar::Sources),
    ("form-action", Grammar::Sources),
    ("frame-ancestors", Grammar::Ancestors),
    (
        "sandbox",
        Grammar::Tokens(&[
            "allow-downloads",
            "allow-forms",
            "allow-modals",
            "allow-orientation-lock",
            "allow-pointer-lock",
            "allow-popups",
            "allow-popups-to-escape-sandbox",
            "allow-presentation",
            "allow-same-origin",
            "allow-scripts",
            "allow-storage-access-by-user-activation",
            "allow-top-navigation",
            "allow-top-navigation-by-user-activation",
            "allow-top-navigation-to-custom-protocols",
        ]),
    ),
    ("upgrade-insecure-requests", Grammar::Flag),
    ("require-trusted-types-for", Grammar::Tokens(&["'script'"])),
    ("trusted-types", Grammar::Names),
    ("webrtc", Grammar::Tokens(&["'allow'", "'block'"])),
    ("report-uri", Grammar::Urls),
    ("report-to", Grammar::Names),
];

const QUOTED_KEYWORDS: &[&str] = &[
    "'self'",
    "'none'",
    "'unsafe-inline'",
    "'unsafe-eval'",
    "'unsafe-hashes'",
    "'strict-dynamic'",
    "'report-sample'",
    "'wasm-unsafe-eval'",
    "'unsafe-allow-redirects'",
    "'inline-speculation-rules'",
];
const HASH_PREFIXES: &[&str] = &["'nonce-", "'sha256-", "'sha384-", "'sha512-"];

/// The directive names a policy may use, for error messages and the README.
pub fn directive_names() -> impl Iterator<Item = &'static str> {
    DIRECTIVES.iter().map(|(name, _)| *name)
}

/// A checked policy: directives in canonical order, each with its sources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Csp {
    directives: Vec<(&'static str, Vec<String>)>,
}

/// Directives in the order of DIRECTIVES (each name is there once). Picked in that order instead of sorted: a
/// sort adds about 3 KB to the modules for each element type.
fn in_canonical_order(
    mut directives: Vec<(&'static str, Vec<String>)>,
) -> Vec<(&'static str, Vec<String>)> {
    DIRECTIVES
        .iter()
        .filter_map(|(name, _)| {
            let at = directives.iter().position(|(d, _)| d == name)?;
            Some(directives.swap_remove(at))
        })
        .collect()
}

impl Csp {
    pub fn parse(field: &str, map: &KeyedMap<Toggle<Vec<String>>>) -> Result<Csp, ConfigError> {
        let mut directives = Vec::new();
        for (name, value) in &map.0 {
            let directive_field = format!("{field}.{name}");
            let Some(&(canonical, grammar)) = DIRECTIVES.iter().find(|(d, _)| *d == name) else {
                let hint = if name.chars().any(|c| c.is_ascii_uppercase()) {
                    " (directive names are lower case)".to_string()
                } else {
                    format!(
                        "; known: {}",
                        directive_names().collect::<Vec<_>>().join(", ")
                    )
                };
                return Err(ConfigError::new(
                    directive_field,
                    format!("unknown CSP directive `{name}`{hint}"),
                ));
            };
            let Toggle::On(sources) = value else { continue };
            check_sources(&directive_field, grammar, sources)?;
            check_strict_dynamic(&directive_field, canonical, sources)?;
            directives.push((canonical, sources.clone()));
        }
        Ok(Csp {
            directives: in_canonical_order(directives),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.directives.is_empty()
    }

    pub fn get(&self, directive: &str) -> Option<&[String]> {
        self.directives
            .iter()
            .find(|(d, _)| *d == directive)
            .map(|(_, s)| s.as_slice())
    }

    /// Sets a directive unless the policy already has it.
    pub fn set_default(&mut self, directive: &'static str, sources: &[String]) {
        if self.get(directive).is_none() {
            self.directives.push((directive, sources.to_vec()));
            self.directives = in_canonical_order(std::mem::take(&mut self.directives));
        }
    }

    /// This policy with `'unsafe-inline'` taken out of script-src and script-src-elem and `slot` put in their
    /// place; None when it has neither directive.
    pub fn with_script_slot(&self, slot: &str) -> Option<Csp> {
        let mut slotted = self.clone();
        let mut found = false;
        for (name, sources) in &mut slotted.directives {
            if *name == "script-src" || *name == "script-src-elem" {
                sources.retain(|s| s != "'unsafe-inline'" && s != "'none'");
                sources.push(slot.to_string());
                found = true;
            }
        }
        found.then_some(slotted)
    }

    /// The header value; `upgrade-insecure-requests` only when the request came over https, because on a
    /// plain-http site it would send the browser to a port that does not answer.
    pub fn render(&self, https: bool) -> String {
        let mut out = String::new();
        for (name, sources) in &self.directives {
            if *name == "upgrade-insecure-requests" && !https {
                continue;
            }
            if !out.is_empty() {
                out.push_str("; ");
            }
            out.push_str(name);
            for source in sources {
                out.push(' ');
                out.push_str(source);
            }
        }
        out
    }
}

/// Checks the sources of one directive (also used for the `frame_ancestors` helper).
pub fn check_ancestors(field: &str, sources: &[String]) -> Result<(), ConfigError> {
    check_sources(field, Grammar::Ancestors, sources)
}

fn check_sources(field: &str, grammar: Grammar, sources: &[String]) -> Result<(), ConfigError> {
    match grammar {
        Grammar::Flag if !sources.is_empty() => {
            return Err(ConfigError::new(field, "takes no value; write []"));
        }
        Grammar::Flag => return Ok(()),
        _ if sources.is_empty() => {
            return Err(ConfigError::new(
                field,
                "empty source list; write [\"'none'\"] to allow nothing",
            ));
        }
        _ => {}
    }
    for (i, source) in sources.iter().enumerate() {
        let source_field = format!("{field}[{i}]");
        check_separators(&source_field, source)?;
        match grammar {
            Grammar::Sources => check_source(&source_field, source, QUOTED_KEYWORDS)?,
            Grammar::Ancestors => check_source(&source_field, source, &["'self'", "'none'"])?,
            Grammar::Tokens(allowed) => {
                if !allowed.contains(&source.as_str()) {
                    return Err(ConfigError::new(
                        source_field,
                        format!("`{source}` is not one of: {}", allowed.join(", ")),
                    ));
                }
            }
            Grammar::Names => {
                if source.contains('\'') && source != "'none'" && source != "'allow-duplicates'" {
                    return Err(ConfigError::new(
                        source_field,
                        format!("`{source}` is not a name"),
                    ));
                }
            }
            Grammar::Urls => {
                if !(source.starts_with('/') || source.contains("://")) {
                    return Err(ConfigError::new(
                        source_field,
                        format!("`{source}` is not a URL or an absolute field"),
                    ));
                }
            }
            Grammar::Flag => {}
        }
    }
    if sources.len() > 1 && sources.iter().any(|s| s == "'none'") {
        return Err(ConfigError::new(
            field,
            "'none' must be the only source when present",
        ));
    }
    Ok(())
}

/// `'strict-dynamic'` is honoured only beside a hash or nonce in the same directive, and then it makes the browser
/// ignore `'self'`, host sources and `'unsafe-inline'`: without one, no script the document carries or loads
/// from its markup could run.
fn check_strict_dynamic(
    field: &str,
    directive: &str,
    sources: &[String],
) -> Result<(), ConfigError> {
    let governs_scripts = matches!(directive, "default-src" | "script-src" | "script-src-elem");
    let trusts_some = sources
        .iter()
        .any(|s| HASH_PREFIXES.iter().any(|p| s.starts_with(p)));
    if governs_scripts && !trusts_some && sources.iter().any(|s| s == "'strict-dynamic'") {
        return Err(ConfigError::new(
            field,
            "'strict-dynamic' without a hash or nonce in the same directive blocks every script; \
             for the hashes of each document's inline scripts use inline_script_hashes.strict_dynamic",
        ));
    }
    Ok(())
}

fn check_separators(field: &str, source: &str) -> Result<(), ConfigError> {
    if source.is_empty() {
        return Err(ConfigError::new(field, "empty source"));
    }
    if let Some(bad) = source
        .chars()
        .find(|c| matches!(c, ';' | ',') || c.is_whitespace() || c.is_control() || !c.is_ascii())
    {
        return Err(ConfigError::new(
            field,
            format!(
                "`{}` contains {bad:?}; give one source per list item",
                source.escape_debug()
            ),
        ));
    }
    Ok(())
}

fn check_source(field: &str, source: &str, keywords: &[&str]) -> Result<(), ConfigError> {
    if source.starts_with('\'') {
        let is_hash = HASH_PREFIXES.iter().any(|p| source.starts_with(p))
            && source.len() > 9
            && source.ends_with('\'');
        if keywords.contains(&source) || (is_hash && keywords.len() > 2) {
            return Ok(());
        }
        return Err(ConfigError::new(
            field,
            format!(
                "`{source}` is not a keyword this directive accepts ({})",
                keywords.join(" ")
            ),
        ));
    }
    let quoted = format!("'{source}'");
    if QUOTED_KEYWORDS.contains(&quoted.as_str())
        || HASH_PREFIXES.iter().any(|p| quoted.starts_with(p))
    {
        return Err(ConfigError::new(
            field,
            format!("keyword `{source}` must be quoted: \"{quoted}\""),
        ));
    }
    if source == "*" || is_scheme_source(source) || is_host_source(source) {
        return Ok(());
    }
    Err(ConfigError::new(
        field,
        format!("`{source}` is not a scheme (https:), host (https://a.example, *.a.example) or quoted keyword"),
    ))
}

fn is_scheme_source(s: &str) -> bool {
    s.strip_suffix(':').is_some_and(is_scheme)
}

fn is_scheme(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

fn is_host_source(s: &str) -> bool {
    let rest = match s.split_once("://") {
        Some((scheme, rest)) if is_scheme(scheme) => rest,
        Some(_) => return false,
        None => s,
    };
    let host_port = rest.split('/').next().unwrap_or_default();
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (host_port, None),
    };
    let port_ok =
        port.is_none_or(|p| p == "*" || (!p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())));
    let host = host.strip_prefix("*.").unwrap_or(host);
    port_ok
        && !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &[&str])]) -> KeyedMap<Toggle<Vec<String>>> {
        KeyedMap(
            entries
                .iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        Toggle::On(v.iter().map(|s| s.to_string()).collect()),
                    )
                })
                .collect(),
        )
    }

    #[test]
    fn renders_in_canonical_order_and_drops_upgrade_on_http() {
        let csp = Csp::parse(
            "csp",
            &map(&[
                ("upgrade-insecure-requests", &[]),
                ("script-src", &["'self'", "'sha256-abcdefgh'"]),
                ("default-src", &["'self'"]),
            ]),
        )
        .unwrap();
        assert_eq!(
            csp.render(true),
            "default-src 'self'; script-src 'self' 'sha256-abcdefgh'; upgrade-insecure-requests"
        );
        assert_eq!(
            csp.render(false),
            "default-src 'self'; script-src 'self' 'sha256-abcdefgh'"
        );
    }

    #[test]
    fn accepts_the_sources_immich_needs() {
        let sources = [
            "'self'",
            "data:",
            "blob:",
            "https://tiles.immich.cloud",
            "*.example.com",
            "wss://a.b:443",
            "*",
        ];
        assert!(Csp::parse("csp", &map(&[("connect-src", &sources)])).is_ok());
    }

    #[test]
    fn refuses_bad_names_unquoted_keywords_and_separators() {
        // (directives, error field, words the reason must contain)
        type Case<'a> = (&'a [(&'a str, &'a [&'a str])], &'a str, &'a str);
        let cases: &[Case] = &[
            (
                &[("scrpit-src", &["'self'"])],
                "csp.scrpit-src",
                "unknown CSP directive",
            ),
            (
                &[("Script-Src", &["'self'"])],
                "csp.Script-Src",
                "lower case",
            ),
            (
                &[("script-src", &["self"])],
                "csp.script-src[0]",
                "must be quoted",
            ),
            (
                &[("script-src", &["unsafe-inline"])],
                "csp.script-src[0]",
                "must be quoted",
            ),
            (
                &[("script-src", &["'self"])],
                "csp.script-src[0]",
                "not a keyword",
            ),
            (
                &[("script-src", &["'self'; object-src *"])],
                "csp.script-src[0]",
                "contains ';'",
            ),
            (
                &[("script-src", &[])],
                "csp.script-src",
                "empty source list",
            ),
            (
                &[("script-src", &["'none'", "'self'"])],
                "csp.script-src",
                "'none' must be the only",
            ),
            (
                &[("frame-ancestors", &["'unsafe-inline'"])],
                "csp.frame-ancestors[0]",
                "not a keyword",
            ),
            (
                &[("upgrade-insecure-requests", &["yes"])],
                "csp.upgrade-insecure-requests",
                "takes no value",
            ),
            (
                &[("sandbox", &["allow-everything"])],
                "csp.sandbox[0]",
                "is not one of",
            ),
            (
                &[("img-src", &["http://"])],
                "csp.img-src[0]",
                "is not a scheme",
            ),
        ];
        for (entries, field, reason) in cases {
            let err = Csp::parse("csp", &map(entries)).unwrap_err();
            assert_eq!(err.field, *field);
            assert!(err.reason.contains(reason), "{} lacks {reason}", err.reason);
        }
    }
}
