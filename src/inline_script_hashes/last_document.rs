//! The last document a rule hashed, so that the same document served again (an SPA's index.html on every
//! navigation) is compared byte for byte instead of scanned and hashed again. The answer is reused only for the
//! very same bytes and Content-Type, so it is the answer the scan would give: nothing is ever allowed that the
//! document does not run. One document per rule, at most `MAX_REMEMBERED_BYTES`, so memory stays bounded.

use crate::http_bytes::same_bytes;
use crate::inline_script_hashes::hashed_csp::Fallback;
use std::cell::RefCell;

/// Largest document remembered (Immich's index.html is about 10 KiB); larger ones are always scanned.
pub const MAX_REMEMBERED_BYTES: usize = 64 << 10;

/// The script sources of a document (each `'sha256-...'` preceded by a space, ready to splice into the CSP)
/// and how many there are, or why it falls back.
pub type Sources = Result<(String, usize), Fallback>;

#[derive(Debug, Default)]
pub struct LastDocument {
    entry: RefCell<Option<Entry>>,
}

#[derive(Debug)]
struct Entry {
    content_type: Option<Vec<u8>>,
    body: Vec<u8>,
    sources: Sources,
}

impl LastDocument {
    /// The sources of `body` served with `content_type`: remembered when they are the last document's, else
    /// computed by `scan` (and remembered, when small enough).
    pub fn sources(
        &self,
        body: &[u8],
        content_type: Option<&[u8]>,
        scan: impl FnOnce() -> Sources,
    ) -> Sources {
        // A re-entrant use (never expected: the hosts are single-threaded) just scans.
        let Ok(mut entry) = self.entry.try_borrow_mut() else {
            return scan();
        };
        if let Some(last) = entry.as_ref() {
            if last.content_type.as_deref() == content_type && same_bytes(&last.body, body) {
                return last.sources.clone();
            }
        }
        let sources = scan();
        if body.len() <= MAX_REMEMBERED_BYTES {
            *entry = Some(Entry {
                content_type: content_type.map(<[u8]>::to_vec),
                body: body.to_vec(),
                sources: sources.clone(),
            });
        }
        sources
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn the_same_bytes_and_type_are_answered_without_a_scan() {
        let last = LastDocument::default();
        let scans = Cell::new(0);
        let scan = |answer: Sources| {
            scans.set(scans.get() + 1);
            answer
        };
        let a = Ok((" 'sha256-a'".to_string(), 1));
        let html = Some(&b"text/html"[..]);
        assert_eq!(
            last.sources(b"<script>a</script>", html, || scan(a.clone())),
            a
        );
        assert_eq!(
            last.sources(b"<script>a</script>", html, || scan(Err(Fallback::Markup))),
            a
        );
        assert_eq!(scans.get(), 1, "the second time is a comparison");
        // Any other byte, length or Content-Type is scanned.
        for (body, content_type) in [
            (&b"<script>b</script>"[..], html),
            (b"<script>a</script> ", html),
            (
                b"<script>a</script>",
                Some(&b"text/html; charset=latin1"[..]),
            ),
            (b"<script>a</script>", None),
        ] {
            let before = scans.get();
            let _ = last.sources(body, content_type, || scan(Err(Fallback::Encoding)));
            assert_eq!(scans.get(), before + 1, "{body:?} {content_type:?}");
        }
    }

    #[test]
    fn a_large_document_is_never_remembered() {
        let last = LastDocument::default();
        let big = vec![b'x'; MAX_REMEMBERED_BYTES + 1];
        let scans = Cell::new(0);
        for _ in 0..2 {
            let _ = last.sources(&big, None, || {
                scans.set(scans.get() + 1);
                Ok((String::new(), 0))
            });
        }
        assert_eq!(scans.get(), 2);
    }
}
