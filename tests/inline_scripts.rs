//! The inline-script scan and hash against tricky documents. Expected hashes in inline_scripts.json were computed
//! independently, with Python's hashlib and base64 over the script text after newline normalisation.

use secure_headers::inline_scripts::{script_hashes, Unhashable};
use serde_json::Value;

#[test]
fn every_table_document_yields_the_independently_computed_hashes() {
    let table: Vec<Value> = serde_json::from_str(include_str!("inline_scripts.json")).unwrap();
    assert!(table.len() >= 15);
    for case in &table {
        // The documents are stored as Latin-1 strings so that any byte survives JSON.
        let html: Vec<u8> = case["html"]
            .as_str()
            .unwrap()
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap())
            .collect();
        let want: Vec<&str> = case["hashes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap())
            .collect();
        assert_eq!(script_hashes(&html, 10).unwrap(), want, "{}", case["name"]);
    }
}

#[test]
fn more_scripts_than_the_cap_is_refused() {
    let html = b"<script>a()</script><script>b()</script><script>c()</script>";
    assert_eq!(script_hashes(html, 3).map(|h| h.len()), Ok(3));
    assert_eq!(script_hashes(html, 2), Err(Unhashable::TooManyScripts));
}

#[test]
fn a_document_that_is_not_utf8_is_refused() {
    assert_eq!(
        script_hashes(b"<script>caf\xe9()</script>", 2),
        Err(Unhashable::NotUtf8)
    );
}

#[test]
fn a_script_in_svg_is_refused_but_one_after_it_is_not() {
    let svg = b"<svg><script>alert(1)</script></svg>";
    assert_eq!(script_hashes(svg, 2), Err(Unhashable::ForeignContent));
    let after = b"<svg><rect/></svg><script>ok()</script>";
    assert_eq!(script_hashes(after, 2).map(|h| h.len()), Ok(1));
}

#[test]
fn scanning_never_panics_on_truncated_documents() {
    let doc = br#"<!doctype html><div a="x>"><script type=module>if (a < b) x = "</scr" + "ipt>";</script><!-- c"#;
    for end in 0..doc.len() {
        let _ = script_hashes(&doc[..end], 2);
    }
}
