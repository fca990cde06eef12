//! Request time: everything a host asks of a compiled policy while traffic passes, in one `impl Policy` so the
//! per-request API reads in one place. Each method delegates to the phase that does the work:
//! `request_facts` (what the request says), `delivery` (held or streamed, for hosts that must choose),
//! `header_writes` (the rule's writes on a response), `observe` (counting instead of writing), and
//! `inline_script_hashes::document` (the per-document CSP).

pub mod delivery;
pub mod header_writes;
pub mod observe;
pub mod request_facts;

use crate::config::policy::Policy;
use crate::host::{RequestView, ResponseHeaders};
use crate::inline_script_hashes::document::{self, DocumentHold, HoldLimits};
use crate::inline_script_hashes::hashed_csp::Fallback;
use crate::telemetry::Metrics;
use delivery::Delivery;
use request_facts::RequestFacts;

impl Policy {
    /// Decides the request-side conditions while the request headers pass.
    pub fn inspect_request(&self, request: &mut impl RequestView) -> RequestFacts {
        request_facts::inspect(self, request)
    }

    /// Facts for a response whose request the filter never saw (a reply made before it ran): only rules
    /// without host or path conditions can apply.
    pub fn facts_without_request(&self) -> RequestFacts {
        request_facts::without_request(self)
    }

    /// Whether the response to this request is held (the whole policy applies), streamed or left alone.
    pub fn delivery(&self, facts: &RequestFacts, request: &mut impl RequestView) -> Delivery {
        delivery::decide(facts, request)
    }

    /// For a streamed response: writes what can be written before the upstream answers; returns the rule.
    pub fn apply_before_upstream(
        &self,
        facts: &RequestFacts,
        response: &mut impl ResponseHeaders,
    ) -> Option<usize> {
        delivery::write_before_upstream(self, facts, response)
    }

    /// Applies the first matching rule (an observing rule only counts); returns its index, or None when the
    /// response passes untouched.
    pub fn apply_response(
        &self,
        facts: &RequestFacts,
        response: &mut impl ResponseHeaders,
        metrics: &mut impl Metrics,
    ) -> Option<usize> {
        header_writes::apply_response(self, facts, response, metrics)
    }

    /// Whether a rule that may apply hashes inline scripts, so the host must hold the whole document.
    pub fn wants_document_body(&self, facts: &RequestFacts) -> bool {
        document::wants_document_body(self, facts)
    }

    /// Whether a held response's body is worth reading for `apply_document` (a 2xx HTML document under a
    /// hashing rule); anything else stays in the host.
    pub fn wants_response_body(
        &self,
        facts: &RequestFacts,
        response: &mut impl ResponseHeaders,
    ) -> bool {
        document::wants_response_body(self, facts, response)
    }

    /// For a host that can hold the response headers while it reads the body (within `limits`): whether to hold
    /// this one, and how many bytes of body at most (decided from the headers, before anything is written).
    pub fn document_hold(
        &self,
        facts: &RequestFacts,
        response: &mut impl ResponseHeaders,
        limits: HoldLimits,
    ) -> DocumentHold {
        document::document_hold(self, facts, response, limits)
    }

    /// `apply_response` for a document a hashing rule could not hash: the static CSP, `fallback` counted.
    pub fn apply_unhashed_document(
        &self,
        facts: &RequestFacts,
        response: &mut impl ResponseHeaders,
        fallback: Fallback,
        metrics: &mut impl Metrics,
    ) -> Option<usize> {
        document::apply_unhashed_document(self, facts, response, fallback, metrics)
    }

    /// `apply_response` for a complete document, with the CSP that allows exactly its inline scripts.
    pub fn apply_document(
        &self,
        facts: &RequestFacts,
        response: &mut impl ResponseHeaders,
        body: &[u8],
        metrics: &mut impl Metrics,
    ) -> Option<usize> {
        document::apply_document(self, facts, response, body, metrics)
    }
}
