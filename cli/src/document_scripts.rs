//! `explain --document`: what the CSP a document gets does to the scripts its markup runs or loads. Under
//! 'strict-dynamic' (beside hashes), CSP3 browsers ignore 'self' and host sources for every fetch the markup
//! makes itself ("parser-inserted"): a `<script src>`, a `<link rel=preload as=script>`, and an `import()` an
//! inline script makes, which inherits the inline script's parser-inserted state. What they allow is what a
//! trusted script inserts (createElement), a `<link rel=modulepreload>` (not parser-inserted), and, in Chromium,
//! a `<script src>` whose `integrity` hash is in the directive (each measured in Chromium 156).

use crate::exchange::Response;
use crate::fetch::resolve;
use secure_headers::{document_scripts, DocumentScript, ScriptType};
use std::fmt::Write as _;

/// The lines `explain` adds for a document under a hashing rule: how it was hashed and, script by script, what
/// the CSP it got allows.
pub fn lines(
    csp_header: &str,
    after: &Response,
    counted: &[String],
    url: &str,
    body: &[u8],
) -> String {
    let mut out = String::new();
    match counted.iter().find(|c| c.starts_with("inline_scripts.")) {
        Some(c) if c == "inline_scripts.documents_hashed" => {
            let hashed = counted
                .iter()
                .filter(|c| *c == "inline_scripts.scripts_hashed")
                .count();
            let _ = writeln!(
                out,
                "document: {hashed} inline script(s) hashed into {csp_header}"
            );
        }
        Some(fallback) => {
            let _ = writeln!(out, "document: the rule's static CSP ({fallback})");
        }
        None => {
            out.push_str("document: not hashed (not a 2xx HTML document)\n");
            return out;
        }
    }
    let content_type = after
        .values("content-type")
        .first()
        .map(|t| t.as_bytes().to_vec());
    let Ok(scripts) = document_scripts(body, content_type.as_deref()) else {
        return out;
    };
    let sources = script_sources(
        after
            .values(csp_header)
            .first()
            .copied()
            .unwrap_or_default(),
    );
    let strict = sources.iter().any(|s| s == "'strict-dynamic'");
    if !strict {
        let external = scripts
            .iter()
            .filter(|s| !matches!(s, DocumentScript::Inline { .. }))
            .count();
        let _ = writeln!(
            out,
            "scripts: {external} loaded by the markup; script-src's own sources decide for them (no 'strict-dynamic')"
        );
        return out;
    }
    out.push_str(
        "scripts under 'strict-dynamic' (CSP3 browsers ignore 'self' and host sources for what the markup loads):\n",
    );
    let preloaded: Vec<String> = scripts
        .iter()
        .filter_map(|s| match s {
            DocumentScript::Preload { href, module: true } => resolve(url, href),
            _ => None,
        })
        .collect();
    let (mut blocked, mut total, mut inline) = (0, 0, 0);
    let mut verdict = |out: &mut String, runs: bool, what: &str, why: &str| {
        total += 1;
        blocked += usize::from(!runs);
        let mark = if runs { "runs   " } else { "blocked" };
        let _ = writeln!(out, "  {mark}  {what}  ({why})");
    };
    for script in &scripts {
        match script {
            DocumentScript::Inline { source, text, kind } => {
                inline += 1;
                let runs = sources.contains(source);
                let why = if runs {
                    "hashed"
                } else {
                    "its hash is not in the CSP"
                };
                verdict(
                    &mut out,
                    runs,
                    &format!("inline script {inline} {source}"),
                    why,
                );
                if *kind == ScriptType::Data {
                    continue;
                }
                for specifier in imports(text) {
                    let what = format!("import(\"{specifier}\") in inline script {inline}");
                    match resolve_specifier(url, &specifier) {
                        None => {
                            let _ = writeln!(out, "  ?        {what}  (a bare specifier: an import map resolves it)");
                        }
                        Some(target) if preloaded.contains(&target) => {
                            verdict(&mut out, true, &what, "a <link rel=modulepreload> fetched it first")
                        }
                        Some(_) => verdict(
                            &mut out,
                            false,
                            &what,
                            "an inline script's import() is parser-inserted; a <link rel=modulepreload> for it \
                             before the script lets it run",
                        ),
                    }
                }
            }
            DocumentScript::External {
                src,
                kind,
                integrity,
            } => {
                let what = match kind {
                    ScriptType::Module => format!("<script type=module src=\"{src}\">"),
                    _ => format!("<script src=\"{src}\">"),
                };
                let pinned = integrity.as_deref().is_some_and(|i| {
                    i.split_ascii_whitespace()
                        .any(|t| sources.contains(&format!("'{t}'")))
                });
                if pinned {
                    verdict(
                        &mut out,
                        true,
                        &what,
                        "in Chromium: its integrity hash is in the CSP",
                    );
                } else {
                    verdict(
                        &mut out,
                        false,
                        &what,
                        "parser-inserted; the scan hashes inline scripts only: load it from a hashed script, or \
                         give it an integrity hash listed in script-src (Chromium)",
                    );
                }
            }
            DocumentScript::Preload { href, module: true } => verdict(
                &mut out,
                true,
                &format!("<link rel=modulepreload href=\"{href}\">"),
                "not parser-inserted",
            ),
            DocumentScript::Preload {
                href,
                module: false,
            } => verdict(
                &mut out,
                false,
                &format!("<link rel=preload as=script href=\"{href}\">"),
                "parser-inserted",
            ),
        }
    }
    let _ = writeln!(out, "blocked: {blocked} of {total}");
    out
}

/// The sources of the directive that governs script elements: script-src-elem, else script-src, else default-src.
fn script_sources(csp: &str) -> Vec<String> {
    let directives: Vec<Vec<&str>> = csp
        .split(';')
        .map(|d| d.split_ascii_whitespace().collect())
        .collect();
    ["script-src-elem", "script-src", "default-src"]
        .iter()
        .find_map(|name| directives.iter().find(|d| d.first() == Some(name)))
        .map(|d| d.iter().skip(1).map(|s| s.to_string()).collect())
        .unwrap_or_default()
}

/// The string-literal specifiers of the `import(...)` calls in a script's text (read as text, not parsed: a
/// computed specifier is not found).
fn imports(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("import(") {
        let before = rest[..at].chars().next_back();
        let after = rest[at + "import(".len()..].trim_start();
        rest = &rest[at + "import(".len()..];
        if before.is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '$' | '.')) {
            continue;
        }
        let Some(quote) = after
            .chars()
            .next()
            .filter(|c| matches!(c, '"' | '\'' | '`'))
        else {
            continue;
        };
        let literal = &after[1..];
        if let Some(end) = literal.find(quote) {
            let specifier = &literal[..end];
            if !specifier.contains(['\\', '$']) {
                found.push(specifier.to_string());
            }
        }
    }
    found
}

/// A module specifier as a URL: absolute, or relative with `/`, `./` or `../`; None for a bare one.
fn resolve_specifier(base: &str, specifier: &str) -> Option<String> {
    let relative = ["/", "./", "../"].iter().any(|p| specifier.starts_with(p));
    if relative || specifier.contains("://") {
        resolve(base, specifier)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_string_literal_imports_only() {
        assert_eq!(
            imports(
                r#"Promise.all([import("./a.js"), import( '/b.js')]); x.import("no"); import(name); reimport("no"); import(`c${x}`)"#
            ),
            vec!["./a.js", "/b.js"]
        );
    }

    #[test]
    fn bare_specifiers_are_not_urls() {
        let base = "https://p.test/photos/abc";
        assert_eq!(resolve_specifier(base, "lodash"), None);
        assert_eq!(
            resolve_specifier(base, "./_app/a.js").as_deref(),
            Some("https://p.test/photos/_app/a.js")
        );
    }

    #[test]
    fn the_governing_directive_is_the_most_specific() {
        let csp =
            "default-src 'self'; script-src 'self' 'strict-dynamic'; script-src-elem 'sha256-x'";
        assert_eq!(script_sources(csp), vec!["'sha256-x'"]);
        assert_eq!(script_sources("default-src 'none'"), vec!["'none'"]);
    }
}
