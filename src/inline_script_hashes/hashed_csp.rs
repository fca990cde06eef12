//! A rule's `inline_script_hashes`: the CSP it sends for an HTML document, with the sha256 of each inline script
//! the document runs in place of `'unsafe-inline'`, or the reason it falls back to the rule's static CSP.

use crate::inline_script_hashes::last_document::LastDocument;
use crate::inline_script_hashes::{script_hashes, Unhashable};

/// Default cap on inline scripts per document (Immich sends 2).
pub const DEFAULT_MAX_SCRIPTS: u64 = 8;
/// Default cap on the document size; a larger one gets the static CSP.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1 << 20;
pub const MAX_BODY_BYTES_LIMIT: u64 = 8 << 20;
/// Marks where the hashes go in a rendered CSP.
pub const SLOT: &str = "'secure-headers-script-hashes'";
/// Written before the hashes under `strict_dynamic`.
const STRICT_DYNAMIC: &str = " 'strict-dynamic'";

/// How a host changes the request for a document whose inline scripts it will hash.
#[derive(Debug)]
pub struct DocumentRequestEdits {
    /// Headers to set: the scan reads the body as sent, so it is asked for uncompressed.
    pub set: &'static [(&'static str, &'static str)],
    /// Headers to remove: the validators. A `304 Not Modified` has no body to hash, and the browser would pair
    /// the body it cached with a CSP that does not list that body's scripts.
    pub remove: &'static [&'static str],
}

impl DocumentRequestEdits {
    /// Makes the edits on `request` through the host's own writes: every `set`, then every `remove`.
    pub fn apply<R: ?Sized>(
        &self,
        request: &mut R,
        set: impl Fn(&mut R, &str, &str),
        remove: impl Fn(&mut R, &str),
    ) {
        for (name, value) in self.set {
            set(request, name, value);
        }
        for name in self.remove {
            remove(request, name);
        }
    }
}

pub const DOCUMENT_REQUEST_EDITS: DocumentRequestEdits = DocumentRequestEdits {
    set: &[("accept-encoding", "identity")],
    remove: &["if-none-match", "if-modified-since"],
};

pub const DOCUMENTS_HASHED: &str = "inline_scripts.documents_hashed";
pub const SCRIPTS_HASHED: &str = "inline_scripts.scripts_hashed";

#[derive(Debug)]
pub struct InlineScriptHashes {
    /// `content-security-policy`, or `-report-only` when the rule's CSP is report-only.
    pub header: &'static str,
    /// The CSP split where the hashes go, for https and for http requests.
    pub https: Vec<Box<str>>,
    pub http: Vec<Box<str>>,
    pub max_scripts: usize,
    pub max_body_bytes: usize,
    /// `'strict-dynamic'` goes beside the hashes of a document that has any. A document without inline scripts
    /// gets none: browsers honour it only beside a hash, and alone it would block every script the document loads
    /// from its markup, with nothing hashed to load them instead.
    pub strict_dynamic: bool,
    /// The last document this rule hashed (an unchanged document is compared, not scanned again).
    pub last_document: LastDocument,
}

/// Why a document got the static CSP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    TooLarge,
    TooManyScripts,
    NotUtf8,
    /// The browser would not certainly decode the document as UTF-8.
    Encoding,
    ForeignContent,
    /// Markup the scan does not follow exactly (see Unhashable::Markup).
    Markup,
    Compressed,
    UpstreamCsp,
    /// Envoy only: the filter's own fetch of the document failed (see fetched_document).
    FetchFailed,
    /// Envoy only: the document's headers went on without waiting for its body (the probe that learns whether
    /// Envoy lets a filter hold them, or another document while that probe is in flight).
    NotHeld,
    /// Envoy only: the held body could not be read back from the host whole.
    BodyUnread,
}

impl Fallback {
    pub fn counter(self) -> &'static str {
        match self {
            Fallback::TooLarge => "inline_scripts.fallback.too_large",
            Fallback::TooManyScripts => "inline_scripts.fallback.too_many_scripts",
            Fallback::NotUtf8 => "inline_scripts.fallback.not_utf8",
            Fallback::Encoding => "inline_scripts.fallback.encoding",
            Fallback::ForeignContent => "inline_scripts.fallback.foreign_content",
            Fallback::Markup => "inline_scripts.fallback.markup",
            Fallback::Compressed => "inline_scripts.fallback.compressed",
            Fallback::UpstreamCsp => "inline_scripts.fallback.upstream_csp",
            Fallback::FetchFailed => "inline_scripts.fallback.fetch_failed",
            Fallback::NotHeld => "inline_scripts.fallback.not_held",
            Fallback::BodyUnread => "inline_scripts.fallback.body_unread",
        }
    }

    pub const ALL: [Fallback; 11] = [
        Fallback::TooLarge,
        Fallback::TooManyScripts,
        Fallback::NotUtf8,
        Fallback::Encoding,
        Fallback::ForeignContent,
        Fallback::Markup,
        Fallback::Compressed,
        Fallback::UpstreamCsp,
        Fallback::FetchFailed,
        Fallback::NotHeld,
        Fallback::BodyUnread,
    ];
}

impl From<Unhashable> for Fallback {
    fn from(reason: Unhashable) -> Self {
        match reason {
            Unhashable::TooManyScripts => Fallback::TooManyScripts,
            Unhashable::NotUtf8 => Fallback::NotUtf8,
            Unhashable::Encoding => Fallback::Encoding,
            Unhashable::ForeignContent => Fallback::ForeignContent,
            Unhashable::Markup(_) => Fallback::Markup,
        }
    }
}

impl InlineScriptHashes {
    /// Splits a rendered CSP (carrying SLOT) into the pieces around the hashes.
    pub fn split(rendered: &str) -> Vec<Box<str>> {
        rendered.split(&format!(" {SLOT}")).map(Box::from).collect()
    }

    /// The CSP for this uncompressed document (and how many scripts it hashed), or why it gets the static one.
    pub fn csp_for(
        &self,
        https: bool,
        body: &[u8],
        content_type: Option<&[u8]>,
    ) -> Result<(String, usize), Fallback> {
        if body.len() > self.max_body_bytes {
            return Err(Fallback::TooLarge);
        }
        let (sources, scripts) = self.last_document.sources(body, content_type, || {
            let hashes = script_hashes(body, content_type, self.max_scripts)?;
            let strict_dynamic = if self.strict_dynamic && !hashes.is_empty() {
                STRICT_DYNAMIC
            } else {
                ""
            };
            let sources = hashes
                .iter()
                .fold(strict_dynamic.to_string(), |mut out, h| {
                    out.push(' ');
                    out.push_str(h);
                    out
                });
            Ok((sources, hashes.len()))
        })?;
        let pieces = if https { &self.https } else { &self.http };
        Ok((pieces.join(sources.as_str()), scripts))
    }
}
