//! Observe mode: a rule runs exactly as it would, against a view of the response that counts each change
//! (would add, would overwrite, would remove) instead of making it. The counter names are built at configure
//! time, one set per header an observing rule touches.

use crate::host::ResponseHeaders;
use crate::metrics::Metrics;
use crate::rule::Rule;

/// The three counters of one header.
#[derive(Debug)]
pub struct ObservedHeader {
    pub name: Box<str>,
    pub would_add: Box<str>,
    pub would_overwrite: Box<str>,
    pub would_remove: Box<str>,
}

/// Every header an observing rule may change, with its counter names.
#[derive(Debug, Default)]
pub struct ObservedHeaders(Vec<ObservedHeader>);

impl ObservedHeaders {
    pub fn from_rules(rules: &[Rule]) -> Self {
        let mut table = ObservedHeaders::default();
        for rule in rules.iter().filter(|r| r.observe) {
            let written = rule.writes.iter().map(|w| &*w.name);
            let removed = rule.removals.iter().map(|r| &**r);
            let helpers = [
                (!rule.cache_defaults.is_empty()).then_some("cache-control"),
                (!rule.content_types.is_empty()).then_some("content-type"),
            ];
            for name in written.chain(removed).chain(helpers.into_iter().flatten()) {
                table.add(name);
            }
        }
        table
    }

    fn add(&mut self, name: &str) {
        if self.0.iter().any(|h| *h.name == *name) {
            return;
        }
        let counter = |outcome: &str| format!("observe.{outcome}.{name}").into_boxed_str();
        self.0.push(ObservedHeader {
            name: name.into(),
            would_add: counter("would_add"),
            would_overwrite: counter("would_overwrite"),
            would_remove: counter("would_remove"),
        });
    }

    fn find(&self, name: &str) -> Option<&ObservedHeader> {
        self.0.iter().find(|h| *h.name == *name)
    }

    /// Every counter name, for hosts that register metrics up front.
    pub fn counter_names(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .flat_map(|h| [&*h.would_add, &*h.would_overwrite, &*h.would_remove])
    }
}

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
