//! Finds the inline scripts a browser will execute in an HTML document and hashes each as CSP does, so a rule
//! can allow exactly those scripts instead of `'unsafe-inline'`.
//!
//! One entry point, [`script_hashes`]: the document's bytes and its Content-Type in; the `'sha256-...'` source
//! of every inline script the browser runs, in document order, or the reason the document cannot be hashed.
//!
//! What counts as an executed inline script is the HTML standard's, for a browser with scripting on:
//! - the document is certainly UTF-8 (`encoding`): a UTF-8 byte order mark, `charset=utf-8` in the
//!   Content-Type, or a prescan that finds a UTF-8 `<meta>`; anything else is refused;
//! - the `<script>` start tag is seen by the HTML tokenizer in the data state and makes an HTML-namespace
//!   element (`scan`): not inside a comment, raw text, an SVG/MathML subtree (outside its integration points)
//!   or a CDATA section there; not in template contents; not in a frameset document;
//! - the parser reaches its end tag (a script still open at the end of the document never runs);
//! - it has no `src`, its text is not empty, its type is classic JavaScript (without `nomodule`), `module`,
//!   `importmap` or `speculationrules`, and a `for`/`event` pair, if any, is `window`/`onload`
//!   (`script_element`, reading the attributes `start_tag` kept). Where Chromium's
//!   reading of `type` is narrower than the standard's (`type=" module"` runs only per the standard), the
//!   narrower one applies: a hash is never added for a script Chromium would not run.
//!
//! The hash is SHA-256 over the script's text after the input stream's newline normalisation (CR LF and CR
//! become LF) and the script data state's NUL replacement, which is the text the browser hashes.

pub mod document;
mod encoding;
pub mod fetched_document;
pub mod hashed_csp;
mod last_document;
mod scan;
mod script_element;
mod start_tag;

pub use script_element::ScriptType;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Why a document cannot be hashed; the rule's static CSP applies instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unhashable {
    /// More distinct inline scripts than the rule allows.
    TooManyScripts,
    /// The browser would not certainly decode the document as UTF-8 (another or no declared encoding).
    Encoding,
    /// Declared UTF-8 but not valid UTF-8: the browser would run replacement characters, not these bytes.
    NotUtf8,
    /// An SVG `<script>`: it runs, and the scan does not hash foreign content.
    ForeignContent,
    /// Markup whose parse the scan does not follow exactly (the reason says which); it never guesses.
    Markup(&'static str),
}

/// The `'sha256-...'` source of every inline script the browser runs in `document`, in document order without
/// repeats, given the response's Content-Type; at most `max_scripts` of them.
///
/// Linear in the document's length, with memory bounded by `max_scripts` and a fixed cap on the open
/// elements the scan tracks.
pub fn script_hashes(
    document: &[u8],
    content_type: Option<&[u8]>,
    max_scripts: usize,
) -> Result<Vec<String>, Unhashable> {
    let (text, tentative) = utf8_text(document, content_type)?;
    let mut scanner = scan::Scanner::new(text, tentative);
    let mut hashes: Vec<String> = Vec::new();
    // The texts already hashed, so that a repeated script is compared rather than hashed again.
    let mut seen: Vec<&[u8]> = Vec::new();
    while let Some(script) = scanner.next_script()? {
        if scanner.tree.in_template()
            || script.text.is_empty()
            || seen.contains(&script.text)
            || !script_element::executes(&script.tag)?
        {
            continue;
        }
        seen.push(script.text);
        let source = hash_source(script.text);
        if !hashes.contains(&source) {
            if hashes.len() == max_scripts {
                return Err(Unhashable::TooManyScripts);
            }
            hashes.push(source);
        }
    }
    Ok(hashes)
}

/// The document's text when the browser certainly decodes it as UTF-8 and it is valid UTF-8, and whether a
/// `<meta>` (the prescan) declared that.
fn utf8_text<'a>(
    document: &'a [u8],
    content_type: Option<&[u8]>,
) -> Result<(&'a [u8], bool), Unhashable> {
    let (text, tentative) = encoding::utf8_text(document, content_type)?;
    if std::str::from_utf8(text).is_err() {
        return Err(Unhashable::NotUtf8);
    }
    Ok((text, tentative))
}

/// A script the document's markup runs or fetches (`document_scripts`). Attribute values are as written
/// (character references not decoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentScript {
    /// An inline script the browser runs: its `'sha256-...'` source and its text.
    Inline {
        source: String,
        text: String,
        kind: ScriptType,
    },
    /// A `<script src>` the parser inserts (classic or module).
    External {
        src: String,
        kind: ScriptType,
        integrity: Option<String>,
    },
    /// `<link rel=modulepreload>` (`module`) or `<link rel=preload as=script>`.
    Preload { href: String, module: bool },
}

/// Every script the document's markup runs or fetches, in document order: the inline scripts `script_hashes`
/// hashes (repeats included), the `<script src>` elements the browser runs and the script preload links, outside
/// template contents. For tools (the CLI's `explain`), not the request path: it is not bounded by a
/// `max_scripts`.
pub fn document_scripts(
    document: &[u8],
    content_type: Option<&[u8]>,
) -> Result<Vec<DocumentScript>, Unhashable> {
    let (text, tentative) = utf8_text(document, content_type)?;
    let mut scanner = scan::Scanner::with_links(text, tentative);
    let mut found = Vec::new();
    let value = |v: Option<&[u8]>| v.map(|v| String::from_utf8_lossy(v).into_owned());
    while let Some(element) = scanner.next()? {
        if scanner.tree.in_template() {
            continue;
        }
        match element {
            scan::Found::Script(script) => {
                let Some(kind) = script_element::script_type(&script.tag)? else {
                    continue;
                };
                match value(script.tag.value(start_tag::Attr::Src)) {
                    Some(src) if kind != ScriptType::Data => found.push(DocumentScript::External {
                        src,
                        kind,
                        integrity: value(script.tag.value(start_tag::Attr::Integrity)),
                    }),
                    Some(_) => {}
                    None if script.text.is_empty() => {}
                    None => found.push(DocumentScript::Inline {
                        source: hash_source(script.text),
                        text: String::from_utf8_lossy(script.text).into_owned(),
                        kind,
                    }),
                }
            }
            scan::Found::Link(tag) => {
                let rel = tag.value(start_tag::Attr::Rel).unwrap_or_default();
                let has = |token: &str| {
                    rel.split(|b| scan::is_space(*b))
                        .any(|t| t.eq_ignore_ascii_case(token.as_bytes()))
                };
                let as_script = tag
                    .value(start_tag::Attr::As)
                    .is_some_and(|a| a.trim_ascii().eq_ignore_ascii_case(b"script"));
                let module = has("modulepreload");
                let Some(href) = value(tag.value(start_tag::Attr::Href)) else {
                    continue;
                };
                if module || (has("preload") && as_script) {
                    found.push(DocumentScript::Preload { href, module });
                }
            }
        }
    }
    Ok(found)
}

/// The CSP source that allows this inline script's text.
fn hash_source(raw: &[u8]) -> String {
    format!("'sha256-{}'", STANDARD.encode(hash_script(raw)))
}

/// SHA-256 of the script text as the browser sees it: CR LF and lone CR as LF, NUL as U+FFFD.
pub fn hash_script(raw: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    let mut rest = raw;
    while let Some(special) = rest.iter().position(|b| *b == b'\r' || *b == 0) {
        let (plain, tail) = rest.split_at(special);
        hasher.update(plain);
        match tail {
            [b'\r', b'\n', more @ ..] | [b'\r', more @ ..] => {
                hasher.update(b"\n");
                rest = more;
            }
            [_, more @ ..] => {
                hasher.update("\u{FFFD}".as_bytes());
                rest = more;
            }
            [] => rest = tail,
        }
    }
    hasher.update(rest);
    hasher.finalize().into()
}
