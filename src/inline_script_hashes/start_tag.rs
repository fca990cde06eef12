//! A start tag as the scan reads it: its name, and the first raw value of each attribute that decides something
//! (a script's type, a `<meta>` charset, an `annotation-xml` encoding, a breakout `<font>`, a `<link>`'s rel),
//! borrowed from the document.

use super::scan::Kind;

/// The attributes the scan reads, by start tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Attr {
    Type,
    Language,
    Src,
    Integrity,
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
    Rel,
    Href,
    As,
}

impl Attr {
    fn name(self) -> &'static str {
        match self {
            Attr::Type => "type",
            Attr::Language => "language",
            Attr::Src => "src",
            Attr::Integrity => "integrity",
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
            Attr::Rel => "rel",
            Attr::Href => "href",
            Attr::As => "as",
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
            Attr::Integrity,
        ],
        Kind::Link => &[Attr::Rel, Attr::Href, Attr::As],
        Kind::Meta => &[Attr::Charset, Attr::HttpEquiv, Attr::Content],
        Kind::Template => &[Attr::ShadowRootMode],
        Kind::AnnotationXml => &[Attr::Encoding],
        Kind::Font => &[Attr::Color, Attr::Face, Attr::Size],
        _ => &[],
    }
}

/// Most attributes kept for one start tag (a script's).
const MAX_KEPT: usize = 7;

/// A start tag: its name as written, and the first value of each attribute of interest, borrowed and raw
/// (character references not decoded: a value that needs them is refused where it matters).
pub(super) struct StartTag<'a> {
    pub(super) name: &'a [u8],
    pub(super) kind: Kind,
    pub(super) self_closing: bool,
    interest: &'static [Attr],
    /// The values of `interest`, in its order.
    values: [Option<&'a [u8]>; MAX_KEPT],
}

impl<'a> StartTag<'a> {
    pub(super) fn new(name: &'a [u8]) -> Self {
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
    pub(super) fn end_tag(name: &'a [u8]) -> Self {
        StartTag {
            name,
            kind: Kind::Other,
            self_closing: false,
            interest: &[],
            values: [None; MAX_KEPT],
        }
    }

    #[inline(always)]
    pub(super) fn keep(&mut self, name: &[u8], value: &'a [u8]) {
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

    pub(super) fn value(&self, attr: Attr) -> Option<&'a [u8]> {
        let at = self.interest.iter().position(|a| *a == attr)?;
        self.values.get(at).copied().flatten()
    }

    /// `<font>` with color, face or size leaves SVG/MathML content.
    pub(super) fn font_breakout(&self) -> bool {
        [Attr::Color, Attr::Face, Attr::Size]
            .iter()
            .any(|a| self.value(*a).is_some())
    }
}
