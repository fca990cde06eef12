//! For hosts that cannot edit response headers once the upstream has started streaming (Traefik's http-wasm):
//! which requests have their response held (buffered) so the whole policy applies, and what can be written
//! before the upstream answers for every other request. Every GET and HEAD is held unless its response must
//! stream, so scanners, `curl -I` and clients without Fetch Metadata get the whole policy.

use crate::config::policy::Policy;
use crate::config::rule::WriteMode;
use crate::decision::request_facts::RequestFacts;
use crate::host::{RequestView, ResponseHeaders};
use crate::http_bytes::same_ignoring_ascii_case;

/// How the response to one request is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Held until complete, then the full policy applies (removals, keep_upstream, content-type conditions,
    /// Cache-Control defaults, Content-Type repair).
    Held,
    /// Streamed as the upstream sends it; only headers written before the upstream answers are added.
    Streamed,
    /// No rule can apply: the filter stays out of the way entirely.
    Untouched,
}

/// `Sec-Fetch-Dest` values of a navigation that renders a document.
const DOCUMENT_DESTINATIONS: &[&[u8]] = &[b"document", b"iframe", b"frame"];

/// `Sec-Fetch-Dest` values (Fetch standard, "destination") whose response is never rendered as a document and
/// whose own CSP the browser ignores: media and fonts can be large, and none of them gains from being held.
/// Not here, so held: `document`/`iframe`/`frame`/`embed`/`object` (may render a document), `worker`,
/// `sharedworker`, `serviceworker` (a worker's CSP comes from its own response), `empty` (fetch() and XHR,
/// whose HTML answer a service worker may cache and later serve as a navigation), `xslt`, `report`,
/// `webidentity` and values this list does not know.
const STREAMED_DESTINATIONS: &[&[u8]] = &[
    b"image",
    b"video",
    b"audio",
    b"track",
    b"font",
    b"style",
    b"script",
    b"json",
    b"manifest",
    b"audioworklet",
    b"paintworklet",
];

/// Decides, from the request alone, whether its response is held or streamed. A GET or HEAD is held unless
/// it is a Range request, under `streaming_paths`, or fetched for a destination that is never a document
/// (`STREAMED_DESTINATIONS`); a path whose Content-Type the policy repairs is always held. Uploads (any
/// other method) stream. A protocol upgrade (WebSocket) is left untouched, as in Envoy, where a 101
/// response is never changed.
pub fn decide(facts: &RequestFacts, request: &mut impl RequestView) -> Delivery {
    if facts.candidate_rules.is_empty() || request.header("upgrade").is_some() {
        return Delivery::Untouched;
    }
    if facts.streaming_path
        || request.header("range").is_some()
        || !request.method().is_some_and(|m| {
            same_ignoring_ascii_case(m, b"GET") || same_ignoring_ascii_case(m, b"HEAD")
        })
    {
        return Delivery::Streamed;
    }
    if facts.extension.is_some() {
        return Delivery::Held;
    }
    let streamed_destination = request.header("sec-fetch-dest").is_some_and(|dest| {
        STREAMED_DESTINATIONS
            .iter()
            .any(|d| same_ignoring_ascii_case(dest, d))
    });
    if streamed_destination {
        Delivery::Streamed
    } else {
        Delivery::Held
    }
}

/// For a streamed response: writes what the first applicable rule sets, before the upstream answers.
/// Only rules without response conditions (content type, status) can be judged this early. Removals and
/// `keep_upstream` headers need the upstream's headers and are left out; Traefik adds the upstream's copies
/// of a header to these, which the companion headers middleware (`config/companion.rs`) then replaces. An
/// observing rule writes nothing here.
pub fn write_before_upstream(
    policy: &Policy,
    facts: &RequestFacts,
    response: &mut impl ResponseHeaders,
) -> Option<usize> {
    let (index, rule) = policy.rules.iter().enumerate().find(|(i, rule)| {
        facts.candidate_rules.contains(*i) && !rule.matcher.has_response_conditions()
    })?;
    if rule.observe {
        return Some(index);
    }
    for write in &rule.writes {
        let scheme_ok = write.scheme.allows(facts.https);
        match write.mode {
            WriteMode::Set if scheme_ok => response.set(&write.name, &write.value),
            WriteMode::Append if scheme_ok => response.append(&write.name, &write.value),
            _ => {}
        }
    }
    Some(index)
}

/// A browser navigation that renders a document (Fetch Metadata, or an `Accept` asking for HTML).
pub fn is_document_navigation(request: &mut impl RequestView) -> bool {
    if let Some(destination) = request.header("sec-fetch-dest") {
        return DOCUMENT_DESTINATIONS
            .iter()
            .any(|d| same_ignoring_ascii_case(destination, d));
    }
    // Browsers without Fetch Metadata: a navigation asks for HTML first.
    request.header("accept").is_some_and(|accept| {
        accept
            .windows(9)
            .any(|w| w.eq_ignore_ascii_case(b"text/html"))
    })
}
