//! Finds the inline scripts a browser will execute in an HTML document and hashes each as CSP does, so a rule
//! can allow exactly those scripts instead of `'unsafe-inline'`.
//!
//! The scan follows the HTML tokenizer where it matters for scripts: comments, doctype and bogus comments,
//! quoted and unquoted attributes (a `>` inside quotes does not end a tag), raw-text and RCDATA elements whose
//! content is never markup (`style`, `textarea`, `title`, `noscript` with scripting on, ...), `plaintext`, and the
//! script data states (a `</script` inside `<!-- <script> ... </script> -->` does not end the script). The hash is
//! SHA-256 over the script's text after the input stream's newline normalisation (CR LF and CR become LF) and
//! NUL replacement, which is the text the browser hashes for a UTF-8 document.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use sha2::{Digest, Sha256};

/// Why a document cannot be hashed; the rule's static CSP applies instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unhashable {
    /// More inline scripts than the rule allows.
    TooManyScripts,
    /// Not valid UTF-8: the browser would decode other characters than these bytes.
    NotUtf8,
    /// A `<script>` inside `<svg>` or `<math>` is parsed as foreign content (character references decoded),
    /// which this scan does not model.
    ForeignContent,
}

/// The `'sha256-...'` source of every executed inline script, in document order, without repeats.
pub fn script_hashes(html: &[u8], max_scripts: usize) -> Result<Vec<String>, Unhashable> {
    if std::str::from_utf8(html).is_err() {
        return Err(Unhashable::NotUtf8);
    }
    let mut hashes: Vec<String> = Vec::new();
    let mut scan = Scanner { html, at: 0 };
    while let Some(script) = scan.next_script()? {
        if script.is_empty() {
            continue; // an empty inline script is never run, so CSP never checks it
        }
        let source = format!("'sha256-{}'", STANDARD.encode(hash_script(script)));
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
            [b'\r', b'\n', more @ ..] => {
                hasher.update(b"\n");
                rest = more;
            }
            [b'\r', more @ ..] => {
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

/// Elements whose content is text up to their own end tag (RAWTEXT and RCDATA; `noscript` because browsers
/// that run these scripts have scripting on).
const TEXT_ONLY: &[&[u8]] = &[
    b"style",
    b"textarea",
    b"title",
    b"xmp",
    b"iframe",
    b"noembed",
    b"noframes",
    b"noscript",
];

struct Scanner<'a> {
    html: &'a [u8],
    at: usize,
}

/// A tag as written: its name, and its attributes (kept only for `<script>`, the one tag whose attributes
/// matter), both borrowed from the document and compared without case.
struct Tag<'a> {
    name: &'a [u8],
    attributes: Vec<(&'a [u8], &'a [u8])>,
}

impl Tag<'_> {
    fn is(&self, name: &[u8]) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    fn attribute(&self, name: &[u8]) -> Option<&[u8]> {
        self.attributes
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }
}

impl<'a> Scanner<'a> {
    fn byte(&self, at: usize) -> Option<u8> {
        self.html.get(at).copied()
    }

    fn starts_with_ignore_case(&self, at: usize, text: &[u8]) -> bool {
        self.html
            .get(at..at + text.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(text))
    }

    /// Moves past the next `needle` (or to the end).
    fn skip_past(&mut self, needle: &[u8]) {
        let rest = self.html.get(self.at..).unwrap_or_default();
        self.at = match rest.windows(needle.len()).position(|w| w == needle) {
            Some(i) => self.at + i + needle.len(),
            None => self.html.len(),
        };
    }

    /// The text of the next executed inline script (possibly empty), or None at the end of the document.
    fn next_script(&mut self) -> Result<Option<&'a [u8]>, Unhashable> {
        let mut foreign_depth = 0usize;
        while let Some(lt) = self
            .html
            .get(self.at..)
            .and_then(|r| r.iter().position(|b| *b == b'<'))
        {
            self.at += lt + 1;
            match self.byte(self.at) {
                Some(b'!') if self.starts_with_ignore_case(self.at, b"!--") => {
                    self.at += 3;
                    self.skip_comment();
                }
                Some(b'!') | Some(b'?') => self.skip_past(b">"),
                Some(b'/') => {
                    self.at += 1;
                    if self.byte(self.at).is_some_and(|b| b.is_ascii_alphabetic()) {
                        let tag = self.tag();
                        if (tag.is(b"svg") || tag.is(b"math")) && foreign_depth > 0 {
                            foreign_depth -= 1;
                        }
                    } else {
                        self.skip_past(b">");
                    }
                }
                Some(b) if b.is_ascii_alphabetic() => {
                    let tag = self.tag();
                    if tag.is(b"svg") || tag.is(b"math") {
                        foreign_depth += 1;
                    } else if tag.is(b"script") {
                        if foreign_depth > 0 {
                            return Err(Unhashable::ForeignContent);
                        }
                        let text = self.script_text();
                        if executes(&tag) {
                            return Ok(Some(text));
                        }
                    } else if tag.is(b"plaintext") {
                        self.at = self.html.len();
                    } else if let Some(name) = TEXT_ONLY.iter().find(|n| tag.is(n)) {
                        self.skip_text_until_end_tag(name);
                    }
                }
                _ => {}
            }
        }
        self.at = self.html.len();
        Ok(None)
    }

    /// After `<!--`: up to `-->`, or `--!>`; `<!-->` and `<!--->` end at once.
    fn skip_comment(&mut self) {
        for abrupt in [&b">"[..], b"->"] {
            if self.starts_with_ignore_case(self.at, abrupt) {
                self.at += abrupt.len();
                return;
            }
        }
        let rest = self.html.get(self.at..).unwrap_or_default();
        let end = rest
            .windows(3)
            .position(|w| w == b"-->")
            .map(|i| i + 3)
            .into_iter()
            .chain(rest.windows(4).position(|w| w == b"--!>").map(|i| i + 4))
            .min();
        self.at = end.map_or(self.html.len(), |e| self.at + e);
    }

    /// A tag from its name to its `>`; a script's attributes are kept (the first of a name wins).
    fn tag(&mut self) -> Tag<'a> {
        let html = self.html;
        let start = self.at;
        while let Some(b) = self.byte(self.at) {
            if b.is_ascii_whitespace() || b == b'/' || b == b'>' {
                break;
            }
            self.at += 1;
        }
        let mut tag = Tag {
            name: html.get(start..self.at).unwrap_or_default(),
            attributes: Vec::new(),
        };
        let keep_attributes = tag.is(b"script");
        loop {
            while self
                .byte(self.at)
                .is_some_and(|b| b.is_ascii_whitespace() || b == b'/')
            {
                self.at += 1;
            }
            match self.byte(self.at) {
                None => return tag,
                Some(b'>') => {
                    self.at += 1;
                    return tag;
                }
                Some(_) => {}
            }
            let name_start = self.at;
            // The first character may be `=` (it is then part of the name), as in the tokenizer.
            while let Some(b) = self.byte(self.at) {
                let first = self.at == name_start;
                if b.is_ascii_whitespace() || b == b'/' || b == b'>' || (b == b'=' && !first) {
                    break;
                }
                self.at += 1;
            }
            let name = html.get(name_start..self.at).unwrap_or_default();
            while self.byte(self.at).is_some_and(|b| b.is_ascii_whitespace()) {
                self.at += 1;
            }
            let mut value: &'a [u8] = &[];
            if self.byte(self.at) == Some(b'=') {
                self.at += 1;
                while self.byte(self.at).is_some_and(|b| b.is_ascii_whitespace()) {
                    self.at += 1;
                }
                let start = self.at;
                match self.byte(self.at) {
                    Some(quote @ (b'"' | b'\'')) => {
                        let end = html
                            .get(start + 1..)
                            .and_then(|r| r.iter().position(|b| *b == quote))
                            .map_or(html.len(), |i| start + 1 + i);
                        value = html.get(start + 1..end).unwrap_or_default();
                        self.at = (end + 1).min(html.len());
                    }
                    _ => {
                        while self
                            .byte(self.at)
                            .is_some_and(|b| !b.is_ascii_whitespace() && b != b'>')
                        {
                            self.at += 1;
                        }
                        value = html.get(start..self.at).unwrap_or_default();
                    }
                }
            }
            if keep_attributes && tag.attribute(name).is_none() {
                tag.attributes.push((name, value));
            }
        }
    }

    /// Text up to the matching `</name` followed by white space, `/` or `>` (RAWTEXT and RCDATA).
    fn skip_text_until_end_tag(&mut self, name: &[u8]) {
        while let Some(lt) = self
            .html
            .get(self.at..)
            .and_then(|r| r.windows(2).position(|w| w == b"</"))
        {
            self.at += lt + 2;
            if self.is_tag_name_here(name) {
                self.at += name.len();
                self.skip_past(b">");
                return;
            }
        }
        self.at = self.html.len();
    }

    /// `name` at the cursor, case-insensitive, followed by white space, `/` or `>`.
    fn is_tag_name_here(&self, name: &[u8]) -> bool {
        self.starts_with_ignore_case(self.at, name)
            && self
                .byte(self.at + name.len())
                .is_some_and(|b| b.is_ascii_whitespace() || b == b'/' || b == b'>')
    }

    /// The script element's text, following the tokenizer's script data states; leaves the cursor after the
    /// end tag.
    fn script_text(&mut self) -> &'a [u8] {
        #[derive(PartialEq)]
        enum State {
            Data,
            Escaped,
            DoubleEscaped,
        }
        let start = self.at;
        let mut state = State::Data;
        while let Some(b) = self.byte(self.at) {
            if b == b'-' && self.starts_with_ignore_case(self.at, b"-->") && state != State::Data {
                state = State::Data;
                self.at += 3;
                continue;
            }
            if b != b'<' {
                self.at += 1;
                continue;
            }
            let after = self.at + 1;
            if state == State::Data && self.starts_with_ignore_case(after, b"!--") {
                state = State::Escaped;
                // `<!--` ends in "escaped dash dash": a following `>` returns to plain script data.
                self.at = after + 3;
                if self.byte(self.at) == Some(b'>') {
                    state = State::Data;
                    self.at += 1;
                }
                continue;
            }
            if self.byte(after) == Some(b'/') {
                self.at = after + 1;
                if self.is_tag_name_here(b"script") {
                    if state == State::DoubleEscaped {
                        state = State::Escaped;
                        self.at += 6;
                        continue;
                    }
                    let text = self.html.get(start..after - 1).unwrap_or_default();
                    self.at += 6;
                    self.skip_past(b">");
                    return text;
                }
                continue;
            }
            self.at = after;
            if state == State::Escaped && self.is_tag_name_here(b"script") {
                state = State::DoubleEscaped;
                self.at += 6;
            }
        }
        self.html.get(start..).unwrap_or_default()
    }
}

/// Whether the browser runs this script element's inline text (and checks it against script-src).
fn executes(tag: &Tag) -> bool {
    if tag.attribute(b"src").is_some() {
        return false;
    }
    let type_string: Vec<u8> = match (tag.attribute(b"type"), tag.attribute(b"language")) {
        (Some(t), _) => t.trim_ascii().to_ascii_lowercase(),
        (None, Some(l)) if !l.is_empty() => [b"text/", l].concat().to_ascii_lowercase(),
        (None, _) => Vec::new(),
    };
    // Import maps and speculation rules are inline scripts for CSP too.
    type_string.is_empty()
        || matches!(
            type_string.as_slice(),
            b"module" | b"importmap" | b"speculationrules"
        )
        || is_javascript_mime(&type_string)
}

fn is_javascript_mime(essence: &[u8]) -> bool {
    const JAVASCRIPT: &[&[u8]] = &[
        b"application/ecmascript",
        b"application/javascript",
        b"application/x-ecmascript",
        b"application/x-javascript",
        b"text/ecmascript",
        b"text/javascript",
        b"text/javascript1.0",
        b"text/javascript1.1",
        b"text/javascript1.2",
        b"text/javascript1.3",
        b"text/javascript1.4",
        b"text/javascript1.5",
        b"text/jscript",
        b"text/livescript",
        b"text/x-ecmascript",
        b"text/x-javascript",
    ];
    JAVASCRIPT.contains(&essence)
}
