//! `secure-headers explain`: what the policy does to one request, from the engine's own decision on a made-up
//! exchange, diffed header by header, each with the reason the rule gives.

use crate::document_scripts;
use crate::exchange::{decide, streamed_on_traefik, Request, Response, Style};
use secure_headers::{Delivery, Policy, RuleSet};
use secure_headers::{Rule, WriteMode};
use std::fmt::Write as _;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Host {
    Envoy,
    Traefik,
}

pub struct Exchange<'a> {
    pub url: &'a str,
    pub host: Host,
    pub style: Style,
    pub method: &'a str,
    pub status: u16,
    pub content_type: Option<&'a str>,
    pub upstream_headers: &'a [String],
    /// The body the upstream sends, for a rule that hashes inline scripts.
    pub document: Option<&'a [u8]>,
}

/// `Name: value` into a lower-case name and a trimmed value.
pub fn parse_header_arg(arg: &str) -> Result<(String, String), String> {
    let (name, value) = arg
        .split_once(':')
        .ok_or_else(|| format!("--upstream-header {arg:?}: want `Name: value`"))?;
    Ok((name.trim().to_ascii_lowercase(), value.trim().to_string()))
}

pub fn run(policy: &Policy, exchange: &Exchange) -> Result<String, String> {
    let request = Request::new(exchange.url, exchange.style, exchange.method)?;
    let mut upstream = Response {
        status: exchange.status,
        headers: Vec::new(),
    };
    let content_type = exchange
        .content_type
        .unwrap_or_else(|| exchange.style.typical_content_type(request.path()));
    upstream
        .headers
        .push(("content-type".to_string(), content_type.to_string()));
    for arg in exchange.upstream_headers {
        let (name, value) = parse_header_arg(arg)?;
        upstream
            .headers
            .retain(|(n, _)| *n != name || name != "content-type");
        upstream.headers.push((name, value));
    }
    let decision = decide(policy, &request, &upstream, exchange.document);
    let mut out = String::new();
    let scheme = if request.https { "https" } else { "http" };
    let _ = writeln!(
        out,
        "{} {} ({scheme}, as {:?}), upstream answers {} {content_type}",
        request.method, exchange.url, exchange.style, upstream.status
    );
    let Some(rule) = decision.rule.and_then(|i| policy.rules.get(i)) else {
        out.push_str(&no_rule_reason(policy, decision.facts.candidate_rules));
        return Ok(out);
    };
    let _ = writeln!(
        out,
        "rule: {} ({}){}",
        rule.name,
        if rule.field.is_empty() {
            "top level"
        } else {
            &rule.field
        },
        if rule.observe {
            ", observe mode: changes are counted, none is made"
        } else {
            ""
        }
    );
    let on_traefik_streamed =
        exchange.host == Host::Traefik && decision.delivery == Delivery::Streamed;
    if exchange.host == Host::Traefik {
        let _ = writeln!(
            out,
            "traefik: {}",
            match decision.delivery {
                Delivery::Held => "held until complete, so the whole rule applies",
                Delivery::Streamed =>
                    "streamed (not a document request): only what is written before the upstream answers, \
                     plus the companion middleware (`secure-headers traefik-middleware`)",
                Delivery::Untouched => "untouched",
            }
        );
    }
    out.push_str(&diff_lines(rule, request.https, &upstream, &decision.after));
    if let Some(hashing) = rule.inline_script_hashes.as_ref().filter(|_| !rule.observe) {
        match exchange.document {
            Some(body) => out.push_str(&document_scripts::lines(
                hashing.header,
                &decision.after,
                &decision.counted.0,
                exchange.url,
                body,
            )),
            None => out.push_str(
                "inline_script_hashes: the CSP above is the static one; `--document FILE` shows the one this \
                 document gets, and what it does to the document's scripts\n",
            ),
        }
    }
    if on_traefik_streamed {
        let streamed = streamed_on_traefik(policy, &decision.facts, &upstream, &[]);
        match &policy.companion(&[]).uncovered {
            Some(why) => {
                let _ = writeln!(
                    out,
                    "streamed on traefik; no companion middleware fits every host because {why} \
                     (`secure-headers traefik-middleware --host` makes one per router):"
                );
            }
            None => out
                .push_str("streamed on traefik, with the companion middleware after the plugin:\n"),
        }
        let mut same = true;
        for (name, value) in &decision.after.headers {
            if !streamed.values(name).contains(&value.as_str()) {
                same = false;
                let _ = writeln!(out, "  missing  {name}: {value}");
            }
        }
        for (name, value) in &streamed.headers {
            if !decision.after.values(name).contains(&value.as_str()) {
                same = false;
                let _ = writeln!(out, "  extra    {name}: {value}");
            }
        }
        if same {
            out.push_str("  the same headers as a held response\n");
        }
    }
    Ok(out)
}

/// Every header the rule touches or could touch, before and after, with why.
fn diff_lines(rule: &Rule, https: bool, before: &Response, after: &Response) -> String {
    let mut out = String::new();
    let mut names: Vec<&str> = before
        .headers
        .iter()
        .chain(&after.headers)
        .map(|(n, _)| n.as_str())
        .chain(rule.writes.iter().map(|w| &*w.name))
        .collect();
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| seen.insert(*n));
    for name in names {
        let was = before.values(name);
        let now = after.values(name);
        let write = rule.writes.iter().find(|w| *w.name == *name);
        let (mark, why) = match (was.is_empty(), now.is_empty(), was == now) {
            (true, false, _) if write.is_some() => ("written ", "the rule's header".to_string()),
            (true, false, _) => ("written ", replaced_reason(rule, name)),
            (false, true, _) => ("removed ", "listed in `remove`".to_string()),
            (false, false, false) => ("replaced", replaced_reason(rule, name)),
            _ => match write {
                Some(w) if !w.scheme.allows(https) => (
                    "skipped ",
                    if https {
                        "http only"
                    } else {
                        "https only; this request is http"
                    }
                    .to_string(),
                ),
                Some(w) if w.mode == WriteMode::SetIfAbsent => (
                    "kept    ",
                    "keep_upstream: the upstream sent one, so the rule's value is not written"
                        .to_string(),
                ),
                _ if was.is_empty() => continue,
                _ => ("kept    ", "the rule does not touch it".to_string()),
            },
        };
        let shown = if now.is_empty() { &was } else { &now };
        let _ = writeln!(out, "  {mark} {name}: {}  ({why})", shown.join(", "));
        if mark == "replaced" {
            let _ = writeln!(out, "           was: {}", was.join(", "));
        }
    }
    out
}

fn replaced_reason(rule: &Rule, name: &str) -> String {
    match name {
        "cache-control" => "the Cache-Control default for this content type".to_string(),
        "content-type" => "the Content-Type this path's extension must have".to_string(),
        _ if rule
            .writes
            .iter()
            .any(|w| *w.name == *name && w.mode == WriteMode::Append) =>
        {
            "appended to the upstream's".to_string()
        }
        _ => "the rule sets it, replacing the upstream's".to_string(),
    }
}

fn no_rule_reason(policy: &Policy, candidates: RuleSet) -> String {
    if candidates.is_empty() {
        return "no rule applies: no rule's host and path conditions hold; the response passes untouched\n"
            .to_string();
    }
    let skipped: Vec<&str> = policy
        .rules
        .iter()
        .enumerate()
        .filter(|(i, _)| candidates.contains(*i))
        .map(|(_, r)| &*r.name)
        .collect();
    format!(
        "no rule applies: {} match the request but not the response's status or content type \
         (1xx responses always pass untouched)\n",
        skipped.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explain(policy: &str, url: &str, host: Host, style: Style, upstream: &[&str]) -> String {
        let policy = Policy::parse(policy.as_bytes()).unwrap();
        let upstream: Vec<String> = upstream.iter().map(|s| s.to_string()).collect();
        let exchange = Exchange {
            url,
            host,
            style,
            method: "GET",
            status: 200,
            content_type: None,
            upstream_headers: &upstream,
            document: None,
        };
        run(&policy, &exchange).unwrap()
    }

    const IMMICH: &str = r#"{"presets": ["immich"]}"#;

    fn explain_document(policy: &str, document: &str) -> String {
        let policy = Policy::parse(policy.as_bytes()).unwrap();
        let exchange = Exchange {
            url: "https://p.test/photos/",
            host: Host::Envoy,
            style: Style::Document,
            method: "GET",
            status: 200,
            content_type: None,
            upstream_headers: &[],
            document: Some(document.as_bytes()),
        };
        run(&policy, &exchange).unwrap()
    }

    /// Shaped like SvelteKit's output: entry modules preloaded, a bootstrap importing them, plus what
    /// 'strict-dynamic' blocks: a parser-inserted script and an import() nothing preloaded.
    const SVELTEKIT: &str = r#"<!doctype html><meta charset=utf-8>
<link rel="modulepreload" href="/_app/start.js"><script>theme()</script>
<script src="https://www.gstatic.com/cast.js"></script>
<script>Promise.all([import("../_app/start.js"), import("/_app/lazy.js")])</script>"#;

    #[test]
    fn a_document_under_strict_dynamic_lists_what_its_csp_blocks() {
        let out = explain_document(
            r#"{"presets": ["immich"], "inline_script_hashes": {"strict_dynamic": true}}"#,
            SVELTEKIT,
        );
        assert!(
            out.contains("https://www.gstatic.com 'strict-dynamic' 'sha256-"),
            "{out}"
        );
        assert!(
            out.contains("document: 2 inline script(s) hashed into content-security-policy"),
            "{out}"
        );
        for line in [
            "  runs     <link rel=modulepreload href=\"/_app/start.js\">  (not parser-inserted)",
            "  blocked  <script src=\"https://www.gstatic.com/cast.js\">  (parser-inserted;",
            "  runs     import(\"../_app/start.js\") in inline script 2  (a <link rel=modulepreload> fetched it first)",
            "  blocked  import(\"/_app/lazy.js\") in inline script 2  (an inline script's import() is parser-inserted;",
            "blocked: 2 of 6",
        ] {
            assert!(out.contains(line), "{line}\n{out}");
        }
    }

    #[test]
    fn without_strict_dynamic_or_hashes_the_sources_decide() {
        let hashed = r#"{"presets": ["immich"], "inline_script_hashes": {}}"#;
        let plain = explain_document(IMMICH, SVELTEKIT);
        assert!(plain.contains("rule: default (top level)"), "{plain}");
        assert!(!plain.contains("document:"), "{plain}");
        let out = explain_document(hashed, SVELTEKIT);
        assert!(
            out.contains("scripts: 2 loaded by the markup; script-src's own sources decide"),
            "{out}"
        );
        let strict = r#"{"presets": ["immich"], "inline_script_hashes": {"strict_dynamic": true}}"#;
        let out = explain_document(
            strict,
            "<!doctype html><meta charset=utf-8><script src=/a.js></script>",
        );
        assert!(out.contains("document: 0 inline script(s) hashed"), "{out}");
        assert!(!out.contains("gstatic.com 'strict-dynamic'"), "{out}");
        let out = explain_document(strict, "<frameset></frameset><script>a()</script>");
        assert!(
            out.contains("document: the rule's static CSP (inline_scripts.fallback.markup)"),
            "{out}"
        );
    }

    #[test]
    fn names_the_rule_and_each_header_with_its_reason() {
        let out = explain(
            IMMICH,
            "https://photos.test/",
            Host::Envoy,
            Style::Document,
            &["X-Powered-By: Express"],
        );
        assert!(out.contains("rule: default (top level)"), "{out}");
        assert!(
            out.contains("removed  x-powered-by: Express  (listed in `remove`)"),
            "{out}"
        );
        assert!(
            out.contains("written  strict-transport-security: max-age="),
            "{out}"
        );
        assert!(
            out.contains("written  x-content-type-options: nosniff  (the rule's header)"),
            "{out}"
        );
    }

    #[test]
    fn https_only_headers_are_skipped_on_http() {
        let out = explain(
            IMMICH,
            "http://photos.test/",
            Host::Envoy,
            Style::Document,
            &[],
        );
        assert!(
            out.contains(
                "skipped  strict-transport-security:   (https only; this request is http)"
            ),
            "{out}"
        );
    }

    #[test]
    fn keep_upstream_keeps_the_upstream_value() {
        let policy = r#"{"presets": ["immich"], "keep_upstream": ["content-security-policy"]}"#;
        let out = explain(
            policy,
            "https://p.test/",
            Host::Envoy,
            Style::Document,
            &["Content-Security-Policy: default-src 'none'"],
        );
        assert!(
            out.contains("kept     content-security-policy: default-src 'none'  (keep_upstream"),
            "{out}"
        );
    }

    #[test]
    fn a_rule_that_does_not_match_is_said() {
        let policy = r#"{"rules": [{"name": "only-photos", "match": {"hosts": ["photos.test"]}}]}"#;
        let out = explain(
            policy,
            "https://other.test/",
            Host::Envoy,
            Style::Document,
            &[],
        );
        assert!(
            out.contains("no rule applies: no rule's host and path conditions hold"),
            "{out}"
        );
    }

    #[test]
    fn traefik_says_what_a_streamed_response_gets() {
        let held = explain(
            IMMICH,
            "https://p.test/",
            Host::Traefik,
            Style::Document,
            &[],
        );
        assert!(held.contains("traefik: held until complete"), "{held}");
        let streamed = explain(
            IMMICH,
            "https://p.test/app.js",
            Host::Traefik,
            Style::Asset,
            &["X-Powered-By: Express"],
        );
        assert!(streamed.contains("traefik: streamed"), "{streamed}");
        assert!(
            streamed
                .contains("streamed on traefik, with the companion middleware after the plugin:"),
            "{streamed}"
        );
        // The companion removes X-Powered-By on streamed responses too, so it is not listed as extra.
        assert!(!streamed.contains("extra    x-powered-by"), "{streamed}");
    }
}
