//! Any bytes as an HTML document: the inline-script scan never panics, and whenever it hashes a document its
//! hashes are exactly those of the scripts html5ever's parse runs, in order (tests/support/
//! html5ever_reference.rs). It may only refuse markup it does not follow (Markup), and must refuse a
//! document with an SVG script exactly when the reference finds one.
#![no_main]

#[path = "../../tests/support/html5ever_reference.rs"]
mod html5ever_reference;

use html5ever_reference::{reference, Reference};
use libfuzzer_sys::fuzz_target;
use secure_headers::{script_hashes, Unhashable};

fuzz_target!(|html: &[u8]| {
    let scan = script_hashes(html, Some(b"text/html; charset=utf-8"), 64);
    let Ok(text) = std::str::from_utf8(html) else {
        // A UTF-16 byte order mark beats the Content-Type.
        assert!(
            matches!(scan, Err(Unhashable::NotUtf8 | Unhashable::Encoding)),
            "{scan:?}"
        );
        return;
    };
    match (&scan, reference(text)) {
        (Ok(ours), Reference::Hashes(theirs)) => assert_eq!(ours, &theirs, "{text:?}"),
        (Err(Unhashable::TooManyScripts), Reference::Hashes(theirs)) => assert!(theirs.len() > 64),
        (Err(Unhashable::ForeignContent), Reference::SvgScript)
        | (Err(Unhashable::Markup(_)), _) => {}
        (scan, reference) => panic!("{text:?}\n  scan: {scan:?}\n  reference: {reference:?}"),
    }
});
