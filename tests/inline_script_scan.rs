//! The inline-script scan against the table of tricky documents (tests/inline_script_table.json, whose `runs` are
//! what Chromium runs: tests/e2e/test_inline_script_table.py checks them), the script cap, and EOF safety.

#[path = "support/script_table.rs"]
mod script_table;

use secure_headers::{document_scripts, script_hashes, DocumentScript, ScriptType, Unhashable};

const UTF8: Option<&[u8]> = Some(b"text/html; charset=utf-8");

fn fallback_name(reason: Unhashable) -> &'static str {
    match reason {
        Unhashable::TooManyScripts => "too_many_scripts",
        Unhashable::Encoding => "encoding",
        Unhashable::NotUtf8 => "not_utf8",
        Unhashable::ForeignContent => "foreign_content",
        Unhashable::Markup(_) => "markup",
    }
}

#[test]
fn every_table_document_yields_the_hashes_of_exactly_the_scripts_the_browser_runs() {
    let cases = script_table::cases();
    assert!(cases.len() >= 45);
    for class in ["1", "2", "3", "4", "5", "6", "7"] {
        assert!(
            cases.iter().any(|c| c.class == class),
            "the issue's class {class} has a case"
        );
    }
    for case in &cases {
        let got = script_hashes(&case.html, Some(case.content_type.as_bytes()), 64)
            .map_err(fallback_name);
        let want = match &case.fallback {
            Some(reason) => Err(reason.as_str()),
            None => Ok(case.hashes()),
        };
        assert_eq!(got, want, "{}", case.name);
    }
}

#[test]
fn more_scripts_than_the_cap_is_refused() {
    let html = b"<script>a()</script><script>b()</script><script>c()</script>";
    assert_eq!(script_hashes(html, UTF8, 3).map(|h| h.len()), Ok(3));
    assert_eq!(
        script_hashes(html, UTF8, 2),
        Err(Unhashable::TooManyScripts)
    );
}

#[test]
fn a_utf8_document_with_invalid_bytes_is_refused() {
    assert_eq!(
        script_hashes(b"<script>caf\xe9()</script>", UTF8, 2),
        Err(Unhashable::NotUtf8)
    );
}

#[test]
fn nesting_past_the_cap_is_refused_not_guessed() {
    let svg = |depth: usize| format!("<svg>{}</svg><script>x()</script>", "<g>".repeat(depth));
    assert_eq!(
        script_hashes(svg(20).as_bytes(), UTF8, 2).map(|h| h.len()),
        Ok(1)
    );
    // </svg> would walk past 40 open elements; 300 open elements are past the stack's cap.
    for depth in [40, 300] {
        assert!(matches!(
            script_hashes(svg(depth).as_bytes(), UTF8, 2),
            Err(Unhashable::Markup(_))
        ));
    }
}

#[test]
fn scanning_never_panics_on_truncated_documents() {
    let doc = br#"<!doctype html><div a="x>"><svg><foreignObject><p>t</p></foreignObject><![CDATA[x]]></svg><script type=module>if (a < b) x = "</scr" + "ipt>";</script><template><script>t()</script></template><!-- c"#;
    for end in 0..doc.len() {
        let _ = script_hashes(&doc[..end], UTF8, 2);
    }
}

/// `document_scripts` (what `explain` lists) sees the inline scripts `script_hashes` hashes, on every table
/// document: the same hashes once repeats are dropped, or the same refusal.
#[test]
fn the_listed_inline_scripts_are_the_hashed_ones() {
    for case in &script_table::cases() {
        let content_type = Some(case.content_type.as_bytes());
        let listed = document_scripts(&case.html, content_type).map(|scripts| {
            let mut sources: Vec<String> = Vec::new();
            for script in scripts {
                if let DocumentScript::Inline { source, .. } = script {
                    if !sources.contains(&source) {
                        sources.push(source);
                    }
                }
            }
            sources
        });
        assert_eq!(
            listed,
            script_hashes(&case.html, content_type, 64),
            "{}",
            case.name
        );
    }
}

#[test]
fn external_scripts_and_script_preloads_are_listed_as_the_browser_would_fetch_them() {
    let html = br#"<!doctype html><head>
<link rel="modulepreload" href="/_app/start.js"><link rel="stylesheet preload" as="script" href="/p.js">
<link rel=preload as=style href=/s.css><link rel=stylesheet href=/c.css><link rel=modulepreload>
<script>boot()</script></head><body>
<script src="/a.js" integrity="sha384-abc"></script><script type=module src=https://cdn.example/m.js></script>
<script src=/old.js nomodule></script><script type=text/plain src=/data.txt></script>
<template><script src=/t.js></script><link rel=modulepreload href=/t.js></template>
<svg><link rel=modulepreload href=/svg.js /></svg><script type=importmap>{}</script>"#;
    let external = |src: &str, kind, integrity: Option<&str>| DocumentScript::External {
        src: src.into(),
        kind,
        integrity: integrity.map(Into::into),
    };
    let scripts = document_scripts(html, UTF8).unwrap();
    assert_eq!(
        scripts,
        vec![
            DocumentScript::Preload {
                href: "/_app/start.js".into(),
                module: true
            },
            DocumentScript::Preload {
                href: "/p.js".into(),
                module: false
            },
            DocumentScript::Inline {
                source: script_hashes(b"<script>boot()</script>", UTF8, 1)
                    .unwrap()
                    .remove(0),
                text: "boot()".into(),
                kind: ScriptType::Classic,
            },
            external("/a.js", ScriptType::Classic, Some("sha384-abc")),
            external("https://cdn.example/m.js", ScriptType::Module, None),
            DocumentScript::Inline {
                source: script_hashes(b"<script type=importmap>{}</script>", UTF8, 1)
                    .unwrap()
                    .remove(0),
                text: "{}".into(),
                kind: ScriptType::Data,
            },
        ]
    );
}
