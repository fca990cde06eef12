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
//!   `importmap` or `speculationrules`, and a `for`/`event` pair, if any, is `window`/`onload`. Where Chromium's
//!   reading of `type` is narrower than the standard's (`type=" module"` runs only per the standard), the
//!   narrower one applies: a hash is never added for a script Chromium would not run.
//!
//! The hash is SHA-256 over the script's text after the input stream's newline normalisation (CR LF and CR
//! become LF) and the script data state's NUL replacement, which is the text the browser hashes.

pub mod document;
mod encoding;
pub mod fetched_document;
pub mod hashed_csp;
mod scan;

use scan::Kind;

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
    let (text, tentative) = encoding::utf8_text(document, content_type)?;
    if std::str::from_utf8(text).is_err() {
        return Err(Unhashable::NotUtf8);
    }
    let mut scanner = scan::Scanner::new(text, tentative);
    let mut hashes: Vec<String> = Vec::new();
    // The texts already hashed, so that a repeated script is compared rather than hashed again.
    let mut seen: Vec<&[u8]> = Vec::new();
    while let Some(script) = scanner.next_script()? {
        if scanner.tree.in_template()
            || script.text.is_empty()
            || seen.contains(&script.text)
            || !executes(&script.tag)?
        {
            continue;
        }
        seen.push(script.text);
        let source = format!("'sha256-{}'", STANDARD.encode(hash_script(script.text)));
        if !hashes.contains(&source) {
            if hashes.len() == max_scripts {
                return Err(Unhashable::TooManyScripts);
            }
            hashes.push(source);
        }
    }
    Ok(hashes)
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

/// The attributes the scan reads, by start tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attr {
    Type,
    Language,
    Src,
    NoModule,
    Event,
    For,
    Encoding,
    ShadowRootMode,
    Charset,
    HttpEquiv,
    Content,
    Color,
    Face,
    Size,
}

impl Attr {
    fn name(self) -> &'static str {
        match self {
            Attr::Type => "type",
            Attr::Language => "language",
            Attr::Src => "src",
            Attr::NoModule => "nomodule",
            Attr::Event => "event",
            Attr::For => "for",
            Attr::Encoding => "encoding",
            Attr::ShadowRootMode => "shadowrootmode",
            Attr::Charset => "charset",
            Attr::HttpEquiv => "http-equiv",
            Attr::Content => "content",
            Attr::Color => "color",
            Attr::Face => "face",
            Attr::Size => "size",
        }
    }
}

/// The attributes kept for a kind of start tag.
fn interest(kind: Kind) -> &'static [Attr] {
    match kind {
        Kind::Script => &[
            Attr::Type,
            Attr::Language,
            Attr::Src,
            Attr::NoModule,
            Attr::Event,
            Attr::For,
        ],
        Kind::Meta => &[Attr::Charset, Attr::HttpEquiv, Attr::Content],
        Kind::Template => &[Attr::ShadowRootMode],
        Kind::AnnotationXml => &[Attr::Encoding],
        Kind::Font => &[Attr::Color, Attr::Face, Attr::Size],
        _ => &[],
    }
}

/// Most attributes kept for one start tag (a script's).
const MAX_KEPT: usize = 6;

/// A start tag: its name as written, and the first value of each attribute of interest, borrowed and raw
/// (character references not decoded: a value that needs them is refused where it matters).
struct StartTag<'a> {
    name: &'a [u8],
    kind: Kind,
    self_closing: bool,
    interest: &'static [Attr],
    /// The values of `interest`, in its order.
    values: [Option<&'a [u8]>; MAX_KEPT],
}

impl<'a> StartTag<'a> {
    fn new(name: &'a [u8]) -> Self {
        let kind = Kind::of(name);
        StartTag {
            name,
            kind,
            self_closing: false,
            interest: interest(kind),
            values: [None; MAX_KEPT],
        }
    }

    /// An end tag: its attributes are parsed (they can hide a `>`) and dropped.
    fn end_tag(name: &'a [u8]) -> Self {
        StartTag {
            name,
            kind: Kind::Other,
            self_closing: false,
            interest: &[],
            values: [None; MAX_KEPT],
        }
    }

    #[inline(always)]
    fn keep(&mut self, name: &[u8], value: &'a [u8]) {
        if !self.interest.is_empty() {
            self.keep_interesting(name, value);
        }
    }

    fn keep_interesting(&mut self, name: &[u8], value: &'a [u8]) {
        for (attr, slot) in self.interest.iter().zip(self.values.iter_mut()) {
            if slot.is_none() && name.eq_ignore_ascii_case(attr.name().as_bytes()) {
                *slot = Some(value);
            }
        }
    }

    fn value(&self, attr: Attr) -> Option<&'a [u8]> {
        let at = self.interest.iter().position(|a| *a == attr)?;
        self.values.get(at).copied().flatten()
    }

    /// `<font>` with color, face or size leaves SVG/MathML content.
    fn font_breakout(&self) -> bool {
        [Attr::Color, Attr::Face, Attr::Size]
            .iter()
            .any(|a| self.value(*a).is_some())
    }
}

/// "Prepare the script element", from the attributes on: whether the browser runs this inline script.
fn executes(tag: &StartTag) -> Result<bool, Unhashable> {
    if tag.value(Attr::Src).is_some() {
        return Ok(false);
    }
    for attr in [Attr::Type, Attr::Language, Attr::Event, Attr::For] {
        if tag.value(attr).is_some_and(|v| v.contains(&b'&')) {
            return Err(Unhashable::Markup(
                "a character reference in a script's type, language, event or for",
            ));
        }
    }
    let classic = match (tag.value(Attr::Type), tag.value(Attr::Language)) {
        (Some([]), _) => true,
        // Chromium compares these without stripping white space; the standard strips it first.
        (Some(t), _)
            if [&b"module"[..], b"importmap", b"speculationrules"]
                .iter()
                .any(|k| t.eq_ignore_ascii_case(k)) =>
        {
            false
        }
        (Some(t), _) => {
            if !is_javascript_mime(t.trim_ascii()) {
                return Ok(false);
            }
            true
        }
        (None, Some([])) => true,
        (None, Some(l)) => {
            if !is_javascript_mime(&[b"text/", l].concat()) {
                return Ok(false);
            }
            true
        }
        (None, None) => true,
    };
    if !classic {
        return Ok(true);
    }
    if tag.value(Attr::NoModule).is_some() {
        return Ok(false); // browsers with modules never run a nomodule classic script
    }
    if let (Some(event), Some(for_)) = (tag.value(Attr::Event), tag.value(Attr::For)) {
        let event = event.trim_ascii();
        return Ok(for_.trim_ascii().eq_ignore_ascii_case(b"window")
            && (event.eq_ignore_ascii_case(b"onload") || event.eq_ignore_ascii_case(b"onload()")));
    }
    Ok(true)
}

/// A JavaScript MIME type essence match.
fn is_javascript_mime(essence: &[u8]) -> bool {
    const JAVASCRIPT: &[&str] = &[
        "application/ecmascript",
        "application/javascript",
        "application/x-ecmascript",
        "application/x-javascript",
        "text/ecmascript",
        "text/javascript",
        "text/javascript1.0",
        "text/javascript1.1",
        "text/javascript1.2",
        "text/javascript1.3",
        "text/javascript1.4",
        "text/javascript1.5",
        "text/jscript",
        "text/livescript",
        "text/x-ecmascript",
        "text/x-javascript",
    ];
    JAVASCRIPT
        .iter()
        .any(|j| essence.eq_ignore_ascii_case(j.as_bytes()))
}
