//! Observe mode: a rule runs exactly as it would, against a view of the response that counts each change
//! (would add, would overwrite, would remove) instead of making it.

use crate::config::observed::{ObservedHeader, ObservedHeaders};
use crate::host::ResponseHeaders;
use crate::telemetry::Metrics;

/// The response as an observing rule sees it: reads pass through, changes are counted and dropped.
pub struct Observing<'a, R, M> {
    pub response: &'a mut R,
    pub headers: &'a ObservedHeaders,
    pub metrics: &'a mut M,
}

impl<R: ResponseHeaders, M: Metrics> Observing<'_, R, M> {
    fn count(&mut self, name: &str, pick: fn(&ObservedHeader) -> &str) {
        if let Some(header) = self.headers.find(name) {
            self.metrics.increment(pick(header));
        }
    }
}

impl<R: ResponseHeaders, M: Metrics> ResponseHeaders for Observing<'_, R, M> {
    fn status(&mut self) -> Option<u16> {
        self.response.status()
    }

    fn header(&mut self, name: &str) -> Option<&[u8]> {
        self.response.header(name)
    }

    fn set(&mut self, name: &str, value: &str) {
        match self.response.header(name) {
            None => self.count(name, |h| &h.would_add),
            Some(current) if current != value.as_bytes() => {
                self.count(name, |h| &h.would_overwrite)
            }
            Some(_) => {}
        }
    }

    fn append(&mut self, name: &str, _value: &str) {
        self.count(name, |h| &h.would_add);
    }

    fn remove(&mut self, name: &str) {
        if self.response.header(name).is_some() {
            self.count(name, |h| &h.would_remove);
        }
    }
}
