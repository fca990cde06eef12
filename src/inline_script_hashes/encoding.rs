//! Whether the browser will certainly decode a document as UTF-8 (the hashes are over its bytes as UTF-8
//! text), following the HTML standard's encoding sniffing: a byte order mark, then the Content-Type's charset,
//! then the prescan of the first 1024 bytes for a `<meta charset>` or `<meta http-equiv=content-type>`.
//! Anything else (another or unknown encoding, no declaration at all, which leaves the browser to guess) is
//! refused. Where the standard would read on past a label it does not know, this refuses instead.

use super::Unhashable;

/// WHATWG Encoding labels of UTF-8.
const UTF8_LABELS: &[&str] = &[
    "unicode-1-1-utf-8",
    "unicode11utf8",
    "unicode20utf8",
    "utf-8",
    "utf8",
    "x-unicode20utf8",
];

/// How far the prescan looks, as the standard says.
const PRESCAN_BYTES: usize = 1024;

fn is_space(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ')
}

pub(super) fn is_utf8_label(label: &[u8]) -> bool {
    let label = label.trim_ascii();
    UTF8_LABELS
        .iter()
        .any(|l| label.eq_ignore_ascii_case(l.as_bytes()))
}

/// The document's text after a byte order mark, and whether UTF-8 is only tentative (found by the prescan, so
/// a later `<meta>` could still change it); Err(Encoding) unless the browser will certainly use UTF-8.
pub(super) fn utf8_text<'a>(
    doc: &'a [u8],
    content_type: Option<&[u8]>,
) -> Result<(&'a [u8], bool), Unhashable> {
    if let Some(text) = doc.strip_prefix(b"\xef\xbb\xbf") {
        return Ok((text, false));
    }
    if doc.starts_with(b"\xfe\xff") || doc.starts_with(b"\xff\xfe") {
        return Err(Unhashable::Encoding);
    }
    if let Some(label) = content_type.and_then(charset_parameter) {
        return if is_utf8_label(label) {
            Ok((doc, false))
        } else {
            Err(Unhashable::Encoding)
        };
    }
    // Chromium also reads an XML declaration's encoding in an HTML document.
    if doc.starts_with(b"<?xml") {
        return Err(Unhashable::Encoding);
    }
    // ESC starts ISO-2022-JP's shifts: a browser guessing the encoding could read other markup.
    if doc.contains(&0x1b) {
        return Err(Unhashable::Encoding);
    }
    let window = doc.get(..PRESCAN_BYTES).unwrap_or(doc);
    match prescan(window) {
        Some(label) if !label.contains(&b'&') && is_utf8_label(label) => Ok((doc, true)),
        _ => Err(Unhashable::Encoding),
    }
}

/// The first `charset` parameter of a Content-Type value, parsed as strictly as the MIME Sniffing standard
/// (no white space around `=`; a quoted value without its quotes).
fn charset_parameter(content_type: &[u8]) -> Option<&[u8]> {
    content_type
        .split(|b| *b == b';')
        .skip(1)
        .find_map(|param| {
            let param = param.trim_ascii_start();
            let value = param
                .get(..8)
                .filter(|name| name.eq_ignore_ascii_case(b"charset="))
                .and_then(|_| param.get(8..))?;
            Some(match value.strip_prefix(b"\"") {
                Some(quoted) => quoted.split(|b| *b == b'"').next().unwrap_or_default(),
                None => value.trim_ascii_end(),
            })
        })
}

/// "Extract a character encoding from a meta element": the label after `charset=` in a content attribute.
pub(super) fn charset_in_content(content: &[u8]) -> Option<&[u8]> {
    let mut from = 0;
    loop {
        let found = content
            .get(from..)?
            .windows(7)
            .position(|w| w.eq_ignore_ascii_case(b"charset"))?;
        let mut at = from + found + 7;
        while content.get(at).copied().is_some_and(is_space) {
            at += 1;
        }
        if content.get(at) != Some(&b'=') {
            from = at;
            continue;
        }
        at += 1;
        while content.get(at).copied().is_some_and(is_space) {
            at += 1;
        }
        let rest = content.get(at..)?;
        return match rest.first()? {
            quote @ (b'"' | b'\'') => {
                let inner = rest.get(1..)?;
                let close = inner.iter().position(|b| b == quote)?;
                inner.get(..close)
            }
            _ => {
                let end = rest
                    .iter()
                    .position(|b| is_space(*b) || *b == b';')
                    .unwrap_or(rest.len());
                rest.get(..end)
            }
        };
    }
}

/// The standard's prescan over `window`: the label of the first `<meta>` that declares one. None when there
/// is none, or when a construct runs past the window (the standard would read on; this does not guess).
fn prescan(window: &[u8]) -> Option<&[u8]> {
    let mut p = Prescan {
        bytes: window,
        at: 0,
    };
    while p.at < window.len() {
        let rest = window.get(p.at..)?;
        if rest.starts_with(b"<!--") {
            // At the `>` of the first `-->`, whose dashes may be those of `<!--`.
            let end = rest.get(2..)?.windows(3).position(|w| w == b"-->")?;
            p.at += 2 + end + 2;
        } else if rest.len() > 5
            && rest
                .get(..5)
                .is_some_and(|t| t.eq_ignore_ascii_case(b"<meta"))
            && rest.get(5).is_some_and(|b| is_space(*b) || *b == b'/')
        {
            p.at += 6;
            if let Some(label) = p.meta()? {
                return Some(label);
            }
        } else if rest.starts_with(b"<")
            && (rest.get(1).is_some_and(u8::is_ascii_alphabetic)
                || (rest.get(1) == Some(&b'/') && rest.get(2).is_some_and(u8::is_ascii_alphabetic)))
        {
            p.at += rest.iter().position(|b| is_space(*b) || *b == b'>')?;
            while p.attribute()?.is_some() {}
        } else if rest.starts_with(b"<!") || rest.starts_with(b"</") || rest.starts_with(b"<?") {
            p.at += rest.iter().position(|b| *b == b'>')?;
        }
        p.at += 1;
    }
    None
}

struct Prescan<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Prescan<'a> {
    fn byte(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn slice(&self, start: usize) -> &'a [u8] {
        self.bytes.get(start..self.at).unwrap_or_default()
    }

    fn skip_spaces(&mut self) {
        while self.byte().is_some_and(is_space) {
            self.at += 1;
        }
    }

    /// A `<meta>`'s attributes: Some(Some(label)) when it declares an encoding, Some(None) when not, None
    /// when it runs past the window.
    fn meta(&mut self) -> Option<Option<&'a [u8]>> {
        let mut seen: [bool; 3] = [false; 3];
        let (mut got_pragma, mut need_pragma, mut charset) = (false, None, None);
        while let Some((name, value)) = self.attribute()? {
            let index = ["http-equiv", "content", "charset"]
                .iter()
                .position(|n| name.eq_ignore_ascii_case(n.as_bytes()));
            let Some(index) = index else { continue };
            if seen.get(index).copied().unwrap_or(true) {
                continue;
            }
            if let Some(s) = seen.get_mut(index) {
                *s = true;
            }
            match index {
                0 => got_pragma |= value.eq_ignore_ascii_case(b"content-type"),
                1 if charset.is_none() => {
                    if let Some(label) = charset_in_content(value) {
                        charset = Some(label);
                        need_pragma = Some(true);
                    }
                }
                2 => {
                    charset = Some(value);
                    need_pragma = Some(false);
                }
                _ => {}
            }
        }
        Some(match need_pragma {
            Some(true) if !got_pragma => None,
            Some(_) => charset,
            None => None,
        })
    }

    /// "Get an attribute": Some(Some((name, value))), Some(None) at the tag's `>`, None past the window.
    fn attribute(&mut self) -> Option<Option<(&'a [u8], &'a [u8])>> {
        while self.byte().is_some_and(|b| is_space(b) || b == b'/') {
            self.at += 1;
        }
        if self.byte()? == b'>' {
            return Some(None);
        }
        let start = self.at;
        loop {
            match self.byte()? {
                b'=' if self.at > start => break,
                b if is_space(b) => {
                    let name = self.slice(start);
                    self.skip_spaces();
                    if self.byte()? != b'=' {
                        return Some(Some((name, b"")));
                    }
                    return self.value(name);
                }
                b'/' | b'>' => return Some(Some((self.slice(start), b""))),
                _ => self.at += 1,
            }
        }
        let name = self.slice(start);
        self.value(name)
    }

    /// After an attribute's `=`.
    fn value(&mut self, name: &'a [u8]) -> Option<Option<(&'a [u8], &'a [u8])>> {
        self.at += 1;
        self.skip_spaces();
        match self.byte()? {
            quote @ (b'"' | b'\'') => {
                let start = self.at + 1;
                let close = start + self.bytes.get(start..)?.iter().position(|b| *b == quote)?;
                self.at = close + 1;
                Some(Some((name, self.bytes.get(start..close)?)))
            }
            b'>' => Some(Some((name, b""))),
            _ => {
                let start = self.at;
                while !self.byte().map(|b| is_space(b) || b == b'>')? {
                    self.at += 1;
                }
                Some(Some((name, self.slice(start))))
            }
        }
    }
}
