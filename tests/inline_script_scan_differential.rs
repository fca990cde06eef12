//! The scan against html5ever (a full WHATWG parser: tests/support/html5ever_reference.rs) on the table and on
//! generated documents. Whenever the scan hashes a document, its hashes must be exactly the reference's, in
//! the same order: an extra hash (over-hashing, the failure that matters) or a missing one fails. The scan may
//! refuse a document instead (`Markup`: markup it does not follow exactly), and must refuse one with an SVG
//! script (`ForeignContent`) exactly when the reference finds one.

#[path = "support/html5ever_reference.rs"]
mod html5ever_reference;
#[path = "support/script_table.rs"]
mod script_table;

use html5ever_reference::{reference, Reference};
use secure_headers::{script_hashes, Unhashable};

const UTF8: Option<&[u8]> = Some(b"text/html; charset=utf-8");

/// Ok(true) when the scan hashed the document, Ok(false) when it refused it as markup it does not follow.
fn agree(html: &str) -> Result<bool, String> {
    let scan = script_hashes(html.as_bytes(), UTF8, usize::MAX);
    match (scan, reference(html)) {
        (Ok(ours), Reference::Hashes(theirs)) if ours == theirs => Ok(true),
        (Err(Unhashable::ForeignContent), Reference::SvgScript) => Ok(true),
        (Err(Unhashable::Markup(_)), _) => Ok(false),
        (scan, reference) => Err(format!(
            "{html:?}\n  scan:      {scan:?}\n  reference: {reference:?}"
        )),
    }
}

/// The table's documents served as UTF-8: the reference parses text, so the encoding rows (class 7, whose
/// bytes are decoded by the browser first) are checked by tests/inline_script_scan.rs and against Chromium.
fn utf8_cases() -> Vec<script_table::Case> {
    let cases = script_table::cases();
    let utf8: Vec<_> = cases
        .into_iter()
        .filter(|case| case.content_type == script_table::DEFAULT_CONTENT_TYPE)
        .collect();
    assert!(utf8.len() >= 45, "{} UTF-8 rows", utf8.len());
    utf8
}

#[test]
fn the_reference_agrees_with_the_browser_truth_of_the_table() {
    // The table's `runs` are Chromium's (checked in the e2e suite); html5ever must say the same, or the
    // differential below would compare against the wrong truth.
    for case in utf8_cases() {
        let html = std::str::from_utf8(&case.html).unwrap();
        let want = if case.fallback.as_deref() == Some("foreign_content") {
            Reference::SvgScript
        } else {
            Reference::Hashes(case.hashes())
        };
        assert_eq!(reference(html), want, "{}", case.name);
    }
}

#[test]
fn the_scan_agrees_with_the_reference_on_every_utf8_table_document() {
    for case in utf8_cases() {
        let html = std::str::from_utf8(&case.html).unwrap();
        let hashed = agree(html).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        assert_eq!(
            hashed,
            case.fallback.as_deref() != Some("markup"),
            "{}",
            case.name
        );
    }
}

/// Pieces of markup chosen to meet at the boundaries the scan must get right.
const FRAGMENTS: &[&str] = &[
    "<script>a()</script>",
    "<script>b()</script>",
    "<SCRIPT type=module>m()</SCRIPT>",
    "<script type=' module'>sm()</script>",
    "<script nomodule>n()</script>",
    "<script src=x>s()</script>",
    "<script>",
    "</script>",
    "</script x='>'>",
    "<script><!--",
    "<script><!--->",
    "<!--",
    "-->",
    "--!>",
    "<!-->",
    "<!--->",
    "<!---->",
    "<!-- c -->",
    "<!DOCTYPE html>",
    "<?x>",
    "</ x>",
    "<![CDATA[",
    "]]>",
    "<svg>",
    "</svg>",
    "<svg/>",
    "<math>",
    "</math>",
    "<mi>",
    "</mi>",
    "<mglyph>",
    "<annotation-xml encoding=text/html>",
    "<annotation-xml>",
    "</annotation-xml>",
    "<foreignObject>",
    "</foreignObject>",
    "<desc>",
    "<title>",
    "</title>",
    "<g>",
    "</g>",
    "<style>",
    "</style>",
    "<textarea>",
    "</textarea>",
    "<noscript>",
    "</noscript>",
    "<xmp>",
    "<iframe>",
    "</iframe>",
    "<plaintext>",
    "<template>",
    "</template>",
    "<p>",
    "</p>",
    "<br>",
    "</br>",
    "<div>",
    "</div>",
    "<span>",
    "</span>",
    "<b>",
    "</b>",
    "<a>",
    "</a>",
    "<li>",
    "<h1>",
    "</h2>",
    "<font color=red>",
    "<font>",
    "<table>",
    "</table>",
    "<td>",
    "<tr>",
    "<select>",
    "</select>",
    "<option>",
    "<body>",
    "</body>",
    "</html>",
    "<head>",
    "<meta charset=utf-8>",
    "text",
    " ",
    "<",
    "a<b",
    "\"",
    "'",
    ">",
    "=",
    "/",
    "<div title='",
    "<div title=\"",
];

/// Fragments the scan refuses wherever they count, drawn rarely so that most documents stay decidable.
const RARE: &[&str] = &[
    "<script type=\"text/jav&#97;script\">r()</script>",
    "<template><col>",
    "<frameset>",
];

/// Scripts with distinct texts, drawn often: their order must match too.
const SCRIPTS: &[&str] = &[
    "<script>s1()</script>",
    "<script>s2()</script>",
    "<script type=text/javascript>s3()</script>",
    "<script>s4()\r\n</script>",
    "<script>s5()<!--<script>x</script>--></script>",
];

/// Deterministic documents: up to 16 fragments each.
fn documents(count: usize) -> impl Iterator<Item = String> {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    (0..count).map(move |_| {
        let pieces = 1 + next() % 16;
        (0..pieces)
            .map(|_| {
                let pick = next();
                let list = match pick % 100 {
                    0 => RARE,
                    1..=30 => SCRIPTS,
                    _ => FRAGMENTS,
                };
                list[((pick >> 8) % list.len() as u64) as usize]
            })
            .collect()
    })
}

#[test]
fn the_scan_agrees_with_the_reference_on_generated_documents() {
    let (mut hashed, mut refused, mut failures) = (0usize, 0usize, Vec::new());
    for html in documents(30_000) {
        match agree(&html) {
            Ok(true) => hashed += 1,
            Ok(false) => refused += 1,
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of 30000 disagree, e.g.:\n{}",
        failures.len(),
        failures
            .iter()
            .take(8)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    // The scan must decide most documents: refusing everything would also "agree".
    assert!(refused * 4 < hashed, "hashed {hashed}, refused {refused}");
}
