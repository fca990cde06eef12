//! Which way this Envoy hashes a document's inline scripts. With `allow_on_headers_stop_iteration: true` in the
//! plugin's config (Envoy 1.35 and later), a filter that pauses the response headers still gets the body and may
//! write headers until it continues: the document is hashed in its own stream. Without it, Envoy turns that
//! pause into "stop all iteration" and the filter never sees the body: the document is fetched a second time.
//!
//! No host call tells a filter how the option is set, so the first document whose headers are held tells: its
//! body reaches the filter while the headers wait (in-stream), or it does not within `PROBE_WAIT` (fetch path),
//! and that one document goes on with the static CSP. One probe at a time; the answer holds for the plugin's
//! life in this worker.

use secure_headers::RequestFacts;
use std::cell::Cell;

/// How long a held document's body may take to reach the filter before the option is taken to be unset. The
/// body usually arrives in the same read as the headers, so microseconds after them when the option is set.
pub const PROBE_WAIT_NS: u64 = 200_000_000;
/// How often the root context looks at a probe in flight (only while one is).
pub const PROBE_TICK_MS: u32 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DocumentPath {
    /// Not known yet: the next held document is the probe.
    Unknown,
    /// Headers held while the body is read, in the document's own stream.
    InStream,
    /// The filter fetches the document itself and answers from that fetch.
    Fetch,
}

/// The document whose headers are held to learn the path.
#[derive(Debug, Clone, Copy)]
pub struct Probe {
    pub context_id: u32,
    pub facts: RequestFacts,
    since_ns: u64,
}

/// The path, and the probe in flight while it is unknown.
pub struct DocumentPaths {
    path: Cell<DocumentPath>,
    probe: Cell<Option<Probe>>,
}

impl DocumentPaths {
    pub fn new() -> Self {
        DocumentPaths {
            path: Cell::new(DocumentPath::Unknown),
            probe: Cell::new(None),
        }
    }

    pub fn path(&self) -> DocumentPath {
        self.path.get()
    }

    /// Makes this stream the probe, when the path is unknown and no other probe is in flight.
    pub fn start_probe(&self, context_id: u32, facts: RequestFacts, now_ns: u64) -> bool {
        let free = self.path.get() == DocumentPath::Unknown && self.probe.get().is_none();
        if free {
            self.probe.set(Some(Probe {
                context_id,
                facts,
                since_ns: now_ns,
            }));
        }
        free
    }

    /// The probe's body reached the filter while its headers were held: in-stream. False when this stream
    /// was no longer the probe (its wait had run out and its headers had gone on).
    pub fn body_arrived(&self, context_id: u32) -> bool {
        let mine = self.probe.get().is_some_and(|p| p.context_id == context_id);
        if mine {
            self.probe.set(None);
            self.path.set(DocumentPath::InStream);
        }
        mine
    }

    /// The probe, when its wait has run out: the path is then the fetch path, and the caller lets the probe's
    /// headers go on.
    pub fn expired_probe(&self, now_ns: u64) -> Option<Probe> {
        let probe = self
            .probe
            .get()
            .filter(|p| now_ns.saturating_sub(p.since_ns) >= PROBE_WAIT_NS)?;
        self.probe.set(None);
        self.path.set(DocumentPath::Fetch);
        Some(probe)
    }

    pub fn probing(&self) -> bool {
        self.probe.get().is_some()
    }

    /// The probe's stream ended before it told anything (the client left): the next held document probes.
    pub fn abandon(&self, context_id: u32) {
        if self.probe.get().is_some_and(|p| p.context_id == context_id) {
            self.probe.set(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_body_during_the_wait_means_in_stream() {
        let paths = DocumentPaths::new();
        assert!(paths.start_probe(7, RequestFacts::default(), 0));
        assert!(
            !paths.start_probe(8, RequestFacts::default(), 1),
            "one probe at a time"
        );
        assert!(!paths.body_arrived(8), "not the probe");
        assert!(paths.body_arrived(7));
        assert_eq!(paths.path(), DocumentPath::InStream);
        assert!(!paths.probing());
        assert!(
            !paths.start_probe(9, RequestFacts::default(), 2),
            "the path is known"
        );
    }

    #[test]
    fn no_body_within_the_wait_means_the_fetch_path() {
        let paths = DocumentPaths::new();
        assert!(paths.start_probe(7, RequestFacts::default(), 1_000));
        assert!(paths.expired_probe(1_000 + PROBE_WAIT_NS - 1).is_none());
        assert_eq!(paths.path(), DocumentPath::Unknown);
        let expired = paths
            .expired_probe(1_000 + PROBE_WAIT_NS)
            .map(|p| p.context_id);
        assert_eq!(expired, Some(7));
        assert_eq!(paths.path(), DocumentPath::Fetch);
        assert!(
            !paths.body_arrived(7),
            "the body after the headers went on says nothing"
        );
        assert_eq!(paths.path(), DocumentPath::Fetch);
    }

    #[test]
    fn an_abandoned_probe_frees_the_next_document_to_probe() {
        let paths = DocumentPaths::new();
        assert!(paths.start_probe(7, RequestFacts::default(), 0));
        paths.abandon(8);
        assert!(paths.probing(), "another stream's end changes nothing");
        paths.abandon(7);
        assert!(!paths.probing());
        assert_eq!(paths.path(), DocumentPath::Unknown);
        assert!(paths.start_probe(9, RequestFacts::default(), 0));
    }
}
