//! The inline-script scan against the table of tricky documents (tests/inline_script_table.json, whose `runs` are
//! what Chromium runs: tests/e2e/test_inline_script_table.py checks them), the script cap, and EOF safety.

#[path = "support/script_table.rs"]
mod script_table;

use secure_headers::{script_hashes, Unhashable};

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
