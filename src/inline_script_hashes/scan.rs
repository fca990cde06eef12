//! The HTML tokenizer, and the part of tree construction that decides whether a `<script>` start tag makes an
//! HTML-namespace script element in the document (not in template contents), for a scripting-enabled browser.
//!
//! Tokenizer: every state that can move a tag boundary (data, RCDATA, RAWTEXT, script data with its escaped and
//! double-escaped states, PLAINTEXT, tags with quoted and unquoted attributes, end tags with attributes,
//! comments with their abrupt and `--!>` ends, bogus comments, DOCTYPE, CDATA sections in foreign content, EOF
//! in any of them). Character data is never inspected beyond the bytes that can end it.
//!
//! Tree construction keeps the stack of open elements only where it decides anything: every HTML `<template>`,
//! every SVG and MathML element (with the HTML and MathML text integration points), and the HTML elements
//! opened inside an integration point. HTML elements elsewhere are not tracked: outside foreign content and
//! templates they cannot change whether a script runs, because every insertion mode but the frameset ones
//! inserts `<script>` and the raw-text elements the same way. Where the browser's tree construction would need
//! more than that (tables or forms inside SVG, a misnested end tag there, a frameset, a declarative shadow
//! root...), the scan gives up with `Unhashable::Markup` and the rule's static CSP applies: it never guesses.
//!
//! Every byte is looked at a bounded number of times: searches only move forward, the walks down the stack
//! are capped, and the stack itself is capped at MAX_OPEN entries.

use super::start_tag::{Attr, StartTag};
use super::Unhashable;

/// Most tracked open elements (templates, SVG/MathML elements, HTML elements inside integration points).
const MAX_OPEN: usize = 256;
/// Most stack entries an end tag may walk past before the scan gives up (the browser would walk them all).
const MAX_WALK: usize = 32;

#[inline(always)]
pub(super) fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

fn is(name: &[u8], known: &str) -> bool {
    name.eq_ignore_ascii_case(known.as_bytes())
}

fn is_any(name: &[u8], known: &[&str]) -> bool {
    known.iter().any(|k| is(name, k))
}

fn is_heading(name: &[u8]) -> bool {
    is_any(name, &["h1", "h2", "h3", "h4", "h5", "h6"])
}

/// Start tags that leave SVG/MathML content for HTML ("breakout"), besides `<font>` with color, face or size.
const BREAKOUT: &[&str] = &[
    "b",
    "big",
    "blockquote",
    "body",
    "br",
    "center",
    "code",
    "dd",
    "div",
    "dl",
    "dt",
    "em",
    "embed",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "head",
    "hr",
    "i",
    "img",
    "li",
    "listing",
    "menu",
    "meta",
    "nobr",
    "ol",
    "p",
    "pre",
    "ruby",
    "s",
    "small",
    "span",
    "strong",
    "strike",
    "sub",
    "sup",
    "table",
    "tt",
    "u",
    "ul",
    "var",
];

/// The start tags the scan tells apart outside SVG/MathML, found with one comparison per tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Script,
    /// Text up to the element's own end tag (RCDATA and RAWTEXT; `noscript` with scripting on).
    RawText,
    Plaintext,
    Template,
    Svg,
    Math,
    Meta,
    Frameset,
    AnnotationXml,
    Font,
    /// Only reported when the scan lists a document's scripts (`Scanner::with_links`).
    Link,
    Other,
}

impl Kind {
    pub(super) fn of(name: &[u8]) -> Kind {
        let mut lower = [0u8; 14];
        let Some(buf) = lower.get_mut(..name.len()) else {
            return Kind::Other;
        };
        for (l, b) in buf.iter_mut().zip(name) {
            *l = b.to_ascii_lowercase();
        }
        match &*buf {
            b"script" => Kind::Script,
            b"style" | b"xmp" | b"iframe" | b"noembed" | b"noframes" | b"noscript"
            | b"textarea" | b"title" => Kind::RawText,
            b"plaintext" => Kind::Plaintext,
            b"template" => Kind::Template,
            b"svg" => Kind::Svg,
            b"math" => Kind::Math,
            b"meta" => Kind::Meta,
            b"frameset" => Kind::Frameset,
            b"annotation-xml" => Kind::AnnotationXml,
            b"font" => Kind::Font,
            b"link" => Kind::Link,
            _ => Kind::Other,
        }
    }
}

/// Start tags processed by the "in head" rules from "in template": they do not fix the template's mode.
const HEAD_TAGS: &[&str] = &[
    "base", "basefont", "bgsound", "link", "meta", "noframes", "script", "style", "template",
    "title",
];

/// Start tags that close an open `<p>` (in button scope) before they are inserted.
const CLOSES_P: &[&str] = &[
    "address",
    "article",
    "aside",
    "blockquote",
    "center",
    "details",
    "dialog",
    "dir",
    "div",
    "dl",
    "fieldset",
    "figcaption",
    "figure",
    "footer",
    "header",
    "hgroup",
    "main",
    "menu",
    "nav",
    "ol",
    "p",
    "search",
    "section",
    "summary",
    "ul",
    "pre",
    "listing",
];

/// Elements inserted and popped at once (never on the stack).
const VOID: &[&str] = &[
    "area", "base", "basefont", "bgsound", "br", "embed", "img", "image", "input", "keygen",
    "link", "meta", "param", "source", "track", "wbr", "frame", "body", "html", "head",
];

/// Tags whose handling inside an integration point depends on table insertion modes or the form pointer.
const TABLE_OR_FORM: &[&str] = &[
    "table", "caption", "col", "colgroup", "tbody", "td", "tfoot", "th", "thead", "tr", "form",
    "select", "option", "optgroup",
];

/// HTML elements inside an integration point whose nesting rules the scan follows only while none is open.
const WATCHED: &[&[&str]] = &[
    &["p"],
    &["li"],
    &["dd", "dt"],
    &["a"],
    &["nobr"],
    &["button"],
    &["ruby", "rb", "rtc", "rp", "rt"],
    &["h1", "h2", "h3", "h4", "h5", "h6"],
];

fn watched(name: &[u8]) -> Option<usize> {
    WATCHED.iter().position(|names| is_any(name, names))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Namespace {
    Svg,
    MathMl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Integration {
    None,
    /// SVG foreignObject, desc, title; MathML annotation-xml with an HTML encoding: start tags are HTML.
    Html,
    /// MathML mi, mo, mn, ms, mtext: start tags but mglyph and malignmark are HTML.
    MathText,
}

#[derive(Debug, Clone, Copy)]
enum Open<'a> {
    /// An HTML `<template>`; `decided` once a start tag fixed its insertion mode.
    Template { decided: bool },
    Foreign {
        namespace: Namespace,
        name: &'a [u8],
        integration: Integration,
    },
    /// An HTML element inside an integration point.
    Html { name: &'a [u8] },
}

/// What the tokenizer does after a start tag.
pub(super) enum Next {
    Data,
    /// Text up to the element's own end tag.
    RawText,
    /// Script data, for an HTML script element.
    Script,
    /// The rest of the document is text.
    Plaintext,
    /// An HTML `<link>`.
    Link,
}

#[derive(Default)]
pub(super) struct Tree<'a> {
    open: Vec<Open<'a>>,
    templates: usize,
    foreign: usize,
    watched: [usize; WATCHED.len()],
    /// The encoding came from the prescan: a `<meta>` naming another one would make the browser reparse.
    pub(super) encoding_tentative: bool,
}

type Step<T = ()> = Result<T, Unhashable>;

impl<'a> Tree<'a> {
    /// Inside template contents (nothing there runs unless a page script clones it).
    pub(super) fn in_template(&self) -> bool {
        self.templates > 0
    }

    /// The adjusted current node is not an HTML element: `<![CDATA[` opens a CDATA section.
    pub(super) fn in_foreign_element(&self) -> bool {
        matches!(self.open.last(), Some(Open::Foreign { .. }))
    }

    fn push(&mut self, entry: Open<'a>) -> Step {
        if self.open.len() >= MAX_OPEN {
            return Err(Unhashable::Markup(
                "more than 256 open templates or SVG/MathML elements",
            ));
        }
        match entry {
            Open::Template { .. } => self.templates += 1,
            Open::Foreign { .. } => self.foreign += 1,
            Open::Html { name } => {
                if let Some(count) = watched(name).and_then(|i| self.watched.get_mut(i)) {
                    *count += 1;
                }
            }
        }
        self.open.push(entry);
        Ok(())
    }

    fn pop(&mut self) {
        match self.open.pop() {
            Some(Open::Template { .. }) => self.templates -= 1,
            Some(Open::Foreign { .. }) => self.foreign -= 1,
            Some(Open::Html { name }) => {
                if let Some(count) = watched(name).and_then(|i| self.watched.get_mut(i)) {
                    *count -= 1;
                }
            }
            None => {}
        }
    }

    fn pop_to_length(&mut self, length: usize) {
        while self.open.len() > length {
            self.pop();
        }
    }

    fn pop_through_template(&mut self) {
        while let Some(entry) = self.open.last() {
            let was_template = matches!(entry, Open::Template { .. });
            self.pop();
            if was_template {
                return;
            }
        }
    }

    fn watching(&self, name: &[u8]) -> bool {
        watched(name)
            .and_then(|i| self.watched.get(i))
            .is_some_and(|n| *n > 0)
    }

    pub(super) fn start_tag(&mut self, tag: &StartTag<'a>) -> Step<Next> {
        if let Some(&Open::Foreign {
            namespace,
            name: current,
            integration,
        }) = self.open.last()
        {
            let html = match integration {
                Integration::Html => true,
                Integration::MathText => !is_any(tag.name, &["mglyph", "malignmark"]),
                Integration::None => {
                    namespace == Namespace::MathMl
                        && is(current, "annotation-xml")
                        && is(tag.name, "svg")
                }
            };
            if !html {
                let breakout =
                    is_any(tag.name, BREAKOUT) || (is(tag.name, "font") && tag.font_breakout());
                if !breakout {
                    return self.foreign_start_tag(namespace, tag);
                }
                self.pop_foreign_to_html();
            }
        }
        self.html_start_tag(tag)
    }

    fn foreign_start_tag(&mut self, namespace: Namespace, tag: &StartTag<'a>) -> Step<Next> {
        if namespace == Namespace::Svg && tag.kind == Kind::Script {
            return Err(Unhashable::ForeignContent);
        }
        if !tag.self_closing {
            self.push_foreign(namespace, tag)?;
        }
        Ok(Next::Data)
    }

    fn push_foreign(&mut self, namespace: Namespace, tag: &StartTag<'a>) -> Step {
        let integration = match namespace {
            Namespace::Svg if is_any(tag.name, &["foreignobject", "desc", "title"]) => {
                Integration::Html
            }
            Namespace::MathMl if is_any(tag.name, &["mi", "mo", "mn", "ms", "mtext"]) => {
                Integration::MathText
            }
            Namespace::MathMl if is(tag.name, "annotation-xml") => {
                match tag.value(Attr::Encoding) {
                    Some(v) if v.contains(&b'&') => {
                        return Err(Unhashable::Markup(
                            "a character reference in annotation-xml's encoding",
                        ))
                    }
                    Some(v) if is(v, "text/html") || is(v, "application/xhtml+xml") => {
                        Integration::Html
                    }
                    _ => Integration::None,
                }
            }
            _ => Integration::None,
        };
        self.push(Open::Foreign {
            namespace,
            name: tag.name,
            integration,
        })
    }

    fn html_start_tag(&mut self, tag: &StartTag<'a>) -> Step<Next> {
        let name = tag.name;
        if tag.kind == Kind::Frameset {
            return Err(Unhashable::Markup("a frameset"));
        }
        if let Some(Open::Template { decided }) = self.open.last_mut() {
            if !*decided {
                if is_any(name, &["col", "colgroup"]) {
                    // The template's "in column group" mode then ignores everything but <col>.
                    return Err(Unhashable::Markup(
                        "a table column group directly in a template",
                    ));
                }
                *decided = !is_any(name, HEAD_TAGS);
            }
        }
        let in_integration_point = self.foreign > 0;
        match tag.kind {
            Kind::Script => return Ok(Next::Script),
            Kind::RawText => {
                if in_integration_point && is(name, "xmp") {
                    self.close_p()?;
                }
                return Ok(Next::RawText);
            }
            Kind::Plaintext => {
                if in_integration_point {
                    self.close_p()?;
                }
                return Ok(Next::Plaintext);
            }
            Kind::Template => {
                if tag.value(Attr::ShadowRootMode).is_some() {
                    // A declarative shadow root's scripts are connected and run; its contents are no template's.
                    return Err(Unhashable::Markup(
                        "a declarative shadow root (template shadowrootmode)",
                    ));
                }
                self.push(Open::Template { decided: false })?;
            }
            Kind::Svg | Kind::Math if !tag.self_closing => {
                let namespace = if tag.kind == Kind::Svg {
                    Namespace::Svg
                } else {
                    Namespace::MathMl
                };
                self.push_foreign(namespace, tag)?;
            }
            Kind::Svg | Kind::Math => {} // `<svg/>` is inserted and popped at once
            Kind::Meta => self.meta(tag)?,
            _ if in_integration_point => self.start_tag_in_integration_point(name)?,
            _ => {}
        }
        Ok(if tag.kind == Kind::Link {
            Next::Link
        } else {
            Next::Data
        })
    }

    /// A `<meta>` that names an encoding: with a tentative UTF-8 from the prescan, any other one (or one the
    /// scan cannot read) would make the browser reparse the document in it.
    fn meta(&self, tag: &StartTag<'a>) -> Step {
        if !self.encoding_tentative {
            return Ok(());
        }
        let named = match tag.value(Attr::Charset) {
            Some(label) => Some(label),
            None => match (tag.value(Attr::HttpEquiv), tag.value(Attr::Content)) {
                (Some(pragma), Some(content)) if is(pragma.trim_ascii(), "content-type") => {
                    super::encoding::charset_in_content(content)
                }
                _ => None,
            },
        };
        match named {
            Some(label) if label.contains(&b'&') || !super::encoding::is_utf8_label(label) => {
                Err(Unhashable::Encoding)
            }
            _ => Ok(()),
        }
    }

    fn start_tag_in_integration_point(&mut self, name: &'a [u8]) -> Step {
        if is_any(name, TABLE_OR_FORM) {
            return Err(Unhashable::Markup(
                "a table, form or select inside SVG/MathML",
            ));
        }
        if is(name, "hr") {
            return self.close_p();
        }
        if is_any(name, VOID) {
            return Ok(());
        }
        if let Some(i) = watched(name) {
            if !(is(name, "p") || is_heading(name)) && self.watched.get(i).is_some_and(|n| *n > 0) {
                return Err(Unhashable::Markup(
                    "nested list items, links or buttons inside SVG/MathML",
                ));
            }
        }
        let closes_p =
            is_any(name, CLOSES_P) || is_any(name, &["li", "dd", "dt"]) || is_heading(name);
        if closes_p {
            self.close_p()?;
        }
        if is_heading(name) {
            if let Some(Open::Html { name: current }) = self.open.last() {
                if is_heading(current) {
                    self.pop();
                }
            }
        }
        self.push(Open::Html { name })
    }

    /// "Close a p element" when one is in button scope, inside an integration point.
    fn close_p(&mut self) -> Step {
        if !self.watching(b"p") {
            return Ok(());
        }
        match self.open.last() {
            Some(Open::Html { name }) if is(name, "p") => {
                self.pop();
                Ok(())
            }
            _ => Err(Unhashable::Markup(
                "an implied </p> closing other elements inside SVG/MathML",
            )),
        }
    }

    pub(super) fn end_tag(&mut self, name: &[u8]) -> Step {
        if !matches!(self.open.last(), Some(Open::Foreign { .. })) {
            return self.html_end_tag(name);
        }
        if !(is(name, "p") || is(name, "br")) {
            return self.foreign_end_tag(name);
        }
        // </p> and </br> leave SVG/MathML content like the breakout start tags.
        self.pop_foreign_to_html();
        self.html_end_tag(name)
    }

    /// Pops SVG/MathML elements until the current node is HTML or an integration point.
    fn pop_foreign_to_html(&mut self) {
        while let Some(Open::Foreign {
            integration: Integration::None,
            ..
        }) = self.open.last()
        {
            self.pop();
        }
    }

    fn foreign_end_tag(&mut self, name: &[u8]) -> Step {
        for (walked, i) in (0..self.open.len()).rev().enumerate() {
            if walked >= MAX_WALK {
                break;
            }
            match self.open.get(i) {
                Some(Open::Foreign { name: open, .. }) => {
                    if open.eq_ignore_ascii_case(name) {
                        self.pop_to_length(i);
                        return Ok(());
                    }
                }
                _ if is(name, "template") && self.templates > 0 => {
                    self.pop_through_template();
                    return Ok(());
                }
                _ => break,
            }
        }
        if is(name, "template") && self.templates > 0 {
            self.pop_through_template();
            return Ok(());
        }
        Err(Unhashable::Markup(
            "an end tag inside SVG/MathML that closes HTML elements",
        ))
    }

    fn html_end_tag(&mut self, name: &[u8]) -> Step {
        if is(name, "template") {
            if self.templates > 0 {
                self.pop_through_template();
            }
            return Ok(());
        }
        if self.foreign == 0 {
            return Ok(()); // only untracked HTML elements can be closed
        }
        let Some(Open::Html { name: current }) = self.open.last() else {
            return Ok(()); // the current node is a template or an integration point: ignored
        };
        let same =
            |open: &[u8]| open.eq_ignore_ascii_case(name) || (is_heading(open) && is_heading(name));
        if same(current) {
            self.pop();
            return Ok(());
        }
        if is_any(name, TABLE_OR_FORM) {
            return Err(Unhashable::Markup(
                "a table, form or select end tag inside SVG/MathML",
            ));
        }
        // Ignored unless an element it closes is open above the integration point.
        for entry in self.open.iter().rev().take(MAX_WALK) {
            match entry {
                Open::Html { name: open } if same(open) => break,
                Open::Html { .. } => continue,
                _ => return Ok(()),
            }
        }
        Err(Unhashable::Markup("a misnested end tag inside SVG/MathML"))
    }
}

/// The first `byte` in `haystack`, eight bytes at a time: the Wasm builds have no vector instructions, and
/// the scan spends most of its time here.
fn find_byte(haystack: &[u8], byte: u8) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let pattern = ONES * u64::from(byte);
    let mut chunks = haystack.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word) ^ pattern;
        // A zero byte in x (a match) sets its high bit here; bytes before the first match never do.
        let found = x.wrapping_sub(ONES) & !x & HIGHS;
        if found != 0 {
            return Some(offset + (found.trailing_zeros() / 8) as usize);
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|b| *b == byte)
        .map(|i| offset + i)
}

/// The tokenizer over a whole document, feeding the tree and reporting each HTML script element it closes (and,
/// when asked, each HTML `<link>`).
pub(super) struct Scanner<'a> {
    doc: &'a [u8],
    at: usize,
    pub(super) tree: Tree<'a>,
    links: bool,
}

/// A script element the parser closed: its start tag and raw text (before newline and NUL normalisation).
pub(super) struct ClosedScript<'a> {
    pub(super) tag: StartTag<'a>,
    pub(super) text: &'a [u8],
}

/// What the scan reports.
pub(super) enum Found<'a> {
    Script(ClosedScript<'a>),
    /// Only from `Scanner::with_links`.
    Link(StartTag<'a>),
}

impl<'a> Scanner<'a> {
    pub(super) fn new(doc: &'a [u8], encoding_tentative: bool) -> Self {
        Scanner {
            doc,
            at: 0,
            tree: Tree {
                encoding_tentative,
                ..Tree::default()
            },
            links: false,
        }
    }

    /// A scanner that also reports each HTML `<link>` start tag.
    pub(super) fn with_links(doc: &'a [u8], encoding_tentative: bool) -> Self {
        Scanner {
            links: true,
            ..Scanner::new(doc, encoding_tentative)
        }
    }

    #[inline(always)]
    fn byte(&self, at: usize) -> Option<u8> {
        self.doc.get(at).copied()
    }

    #[inline(always)]
    fn rest(&self) -> &'a [u8] {
        self.doc.get(self.at..).unwrap_or_default()
    }

    #[inline(always)]
    fn find_from(&self, from: usize, byte: u8) -> Option<usize> {
        find_byte(self.doc.get(from..)?, byte).map(|i| from + i)
    }

    /// Moves past the next `>` (bogus comments, DOCTYPE), or to the end.
    fn skip_past_gt(&mut self) {
        self.at = self
            .find_from(self.at, b'>')
            .map_or(self.doc.len(), |i| i + 1);
    }

    /// The next HTML script element that reaches its end tag (in or out of templates), or None at the end.
    pub(super) fn next_script(&mut self) -> Step<Option<ClosedScript<'a>>> {
        loop {
            match self.next()? {
                Some(Found::Script(script)) => return Ok(Some(script)),
                Some(Found::Link(_)) => {}
                None => return Ok(None),
            }
        }
    }

    /// The next script element as `next_script`, or HTML `<link>` when the scanner reports them.
    pub(super) fn next(&mut self) -> Step<Option<Found<'a>>> {
        while let Some(lt) = self.find_from(self.at, b'<') {
            self.at = lt + 1;
            match self.byte(self.at) {
                Some(b'!') => self.markup_declaration(),
                Some(b'?') => self.skip_past_gt(),
                Some(b'/') => {
                    self.at += 1;
                    match self.byte(self.at) {
                        Some(b) if b.is_ascii_alphabetic() => {
                            let name = self.tag_name()?;
                            if self.attributes(&mut StartTag::end_tag(name)).is_none() {
                                return Ok(None); // EOF in a tag: the tag is dropped
                            }
                            self.tree.end_tag(name)?;
                        }
                        Some(b'>') => self.at += 1,
                        None => return Ok(None),
                        Some(_) => self.skip_past_gt(),
                    }
                }
                Some(b) if b.is_ascii_alphabetic() => {
                    let name = self.tag_name()?;
                    let mut tag = StartTag::new(name);
                    match self.attributes(&mut tag) {
                        None => return Ok(None),
                        Some(self_closing) => tag.self_closing = self_closing,
                    }
                    match self.tree.start_tag(&tag)? {
                        Next::Data => {}
                        Next::Link if self.links => return Ok(Some(Found::Link(tag))),
                        Next::Link => {}
                        Next::RawText => {
                            if !self.skip_to_end_tag(name) {
                                return Ok(None);
                            }
                        }
                        Next::Script => {
                            let start = self.at;
                            match self.script_data() {
                                Some(end) => {
                                    let text = self.doc.get(start..end).unwrap_or_default();
                                    return Ok(Some(Found::Script(ClosedScript { tag, text })));
                                }
                                None => return Ok(None), // EOF in script data: the spec never runs it
                            }
                        }
                        Next::Plaintext => return Ok(None),
                    }
                }
                _ => {} // a `<` that is text
            }
        }
        self.at = self.doc.len();
        Ok(None)
    }

    /// After `<!`: a comment, DOCTYPE, CDATA section (in foreign content) or bogus comment.
    fn markup_declaration(&mut self) {
        let rest = self.rest();
        if rest.starts_with(b"!--") {
            self.at += 3;
            self.skip_comment();
        } else if rest.starts_with(b"![CDATA[") && self.tree.in_foreign_element() {
            self.at += 8;
            self.skip_past(b"]]>");
        } else {
            // DOCTYPE, or a bogus comment: both end at the first `>`, quoted or not.
            self.skip_past_gt();
        }
    }

    /// Moves past the first occurrence of `needle` at or after the cursor (its first byte must be unique in
    /// it, so a failed match never needs to look back), or to the end.
    fn skip_past(&mut self, needle: &[u8]) {
        let Some(&first) = needle.first() else { return };
        let mut from = self.at;
        while let Some(i) = self.find_from(from, first) {
            if self.doc.get(i..).is_some_and(|r| r.starts_with(needle)) {
                self.at = i + needle.len();
                return;
            }
            from = i + 1;
        }
        self.at = self.doc.len();
    }

    /// After `<!--`: the comment ends at `>` or `->` at once (`<!-->`, `<!--->`), else at the first `-->` or
    /// `--!>` (the tokenizer's comment states all reduce to that).
    fn skip_comment(&mut self) {
        let rest = self.rest();
        if rest.starts_with(b">") {
            self.at += 1;
            return;
        }
        if rest.starts_with(b"->") {
            self.at += 2;
            return;
        }
        let mut from = self.at;
        while let Some(i) = self.find_from(from, b'-') {
            let tail = self.doc.get(i..).unwrap_or_default();
            if tail.starts_with(b"-->") {
                self.at = i + 3;
                return;
            }
            if tail.starts_with(b"--!>") {
                self.at = i + 4;
                return;
            }
            from = i + 1;
        }
        self.at = self.doc.len();
    }

    /// A tag name from its first letter to white space, `/` or `>` (the name's bytes as written).
    fn tag_name(&mut self) -> Step<&'a [u8]> {
        let start = self.at;
        while let Some(b) = self.byte(self.at) {
            if is_space(b) || b == b'/' || b == b'>' {
                break;
            }
            if b == 0 {
                return Err(Unhashable::Markup("a NUL in a tag name"));
            }
            self.at += 1;
        }
        Ok(self.doc.get(start..self.at).unwrap_or_default())
    }

    /// The attributes up to the tag's `>`, keeping the ones `tag` is interested in (the first of a name wins).
    /// Some(self-closing) at the `>`, None at the end of the document (the tag is then never emitted).
    fn attributes(&mut self, tag: &mut StartTag<'a>) -> Option<bool> {
        loop {
            // Before attribute name (and the self-closing start tag state, which returns here).
            while self.byte(self.at).is_some_and(is_space) {
                self.at += 1;
            }
            match self.byte(self.at)? {
                b'/' => {
                    self.at += 1;
                    if self.byte(self.at) == Some(b'>') {
                        self.at += 1;
                        return Some(true);
                    }
                    continue;
                }
                b'>' => {
                    self.at += 1;
                    return Some(false);
                }
                _ => {}
            }
            // Attribute name: its first byte may be `=`.
            let start = self.at;
            self.at += 1;
            while let Some(b) = self.byte(self.at) {
                if is_space(b) || b == b'/' || b == b'>' || b == b'=' {
                    break;
                }
                self.at += 1;
            }
            let name = self.doc.get(start..self.at).unwrap_or_default();
            while self.byte(self.at).is_some_and(is_space) {
                self.at += 1;
            }
            if self.byte(self.at)? != b'=' {
                tag.keep(name, b"");
                continue;
            }
            self.at += 1;
            while self.byte(self.at).is_some_and(is_space) {
                self.at += 1;
            }
            let value = match self.byte(self.at)? {
                quote @ (b'"' | b'\'') => {
                    let close = self.find_from(self.at + 1, quote)?;
                    let value = self.doc.get(self.at + 1..close).unwrap_or_default();
                    self.at = close + 1;
                    value
                }
                b'>' => b"",
                _ => {
                    let start = self.at;
                    while let Some(b) = self.byte(self.at) {
                        if is_space(b) || b == b'>' {
                            break;
                        }
                        self.at += 1;
                    }
                    self.byte(self.at)?;
                    self.doc.get(start..self.at).unwrap_or_default()
                }
            };
            tag.keep(name, value);
        }
    }

    /// `</name` (any case) followed by white space, `/` or `>` at `at`: an appropriate end tag's start.
    fn end_tag_here(&self, at: usize, name: &[u8]) -> bool {
        let after = at + 2 + name.len();
        self.doc.get(at..at + 2) == Some(b"</")
            && self
                .doc
                .get(at + 2..after)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
            && self
                .byte(after)
                .is_some_and(|b| is_space(b) || b == b'/' || b == b'>')
    }

    /// RCDATA/RAWTEXT: moves past the element's end tag (attributes and all); false at the end of the document.
    fn skip_to_end_tag(&mut self, name: &'a [u8]) -> bool {
        let mut from = self.at;
        while let Some(lt) = self.find_from(from, b'<') {
            if self.end_tag_here(lt, name) {
                self.at = lt + 2 + name.len();
                return self.attributes(&mut StartTag::end_tag(name)).is_some();
            }
            from = lt + 1;
        }
        self.at = self.doc.len();
        false
    }

    /// Script data from the cursor: Some(end of the text) after the script's end tag, None at the end of the
    /// document. Follows the script data, escaped and double-escaped states.
    fn script_data(&mut self) -> Option<usize> {
        #[derive(Clone, Copy, PartialEq)]
        enum State {
            Data,
            Escaped,
            DoubleEscaped,
        }
        const SCRIPT: &[u8] = b"script";
        let mut state = State::Data;
        // Dashes just seen in the escaped states (`-->` returns to script data).
        let mut dashes = 0usize;
        let mut i = self.at;
        loop {
            if state == State::Data {
                i = self.find_from(i, b'<')?;
            }
            let b = self.byte(i)?;
            match b {
                b'-' if state != State::Data => {
                    dashes += 1;
                    i += 1;
                    continue;
                }
                b'>' if state != State::Data && dashes >= 2 => {
                    state = State::Data;
                }
                b'<' => {
                    let after = i + 1;
                    if state != State::DoubleEscaped && self.end_tag_here(i, SCRIPT) {
                        self.at = i + 2 + SCRIPT.len();
                        self.attributes(&mut StartTag::end_tag(SCRIPT))?;
                        return Some(i);
                    }
                    if state == State::Data && self.doc.get(after..after + 3) == Some(b"!--") {
                        // `<!--` ends in "escaped dash dash": `<!-->` and `<!--->` return at once.
                        state = State::Escaped;
                        dashes = 2;
                        i = after + 3;
                        continue;
                    }
                    if state == State::Escaped && self.double_escape_at(after) {
                        state = State::DoubleEscaped;
                        i = after + SCRIPT.len() + 1;
                        dashes = 0;
                        continue;
                    }
                    if state == State::DoubleEscaped
                        && self.byte(after) == Some(b'/')
                        && self.double_escape_at(after + 1)
                    {
                        state = State::Escaped;
                        i = after + 1 + SCRIPT.len() + 1;
                        dashes = 0;
                        continue;
                    }
                }
                _ => {}
            }
            dashes = 0;
            i += 1;
        }
    }

    /// `script` (any case) at `at` followed by white space, `/` or `>`: enters or leaves double escaping.
    fn double_escape_at(&self, at: usize) -> bool {
        let after = at + 6;
        self.doc
            .get(at..after)
            .is_some_and(|n| n.eq_ignore_ascii_case(b"script"))
            && self
                .byte(after)
                .is_some_and(|b| is_space(b) || b == b'/' || b == b'>')
    }
}
