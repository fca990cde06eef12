//! Observe mode's counter names, built at configure time: three per header an observing rule touches (would
//! add, would overwrite, would remove), so counting a response never formats a name.

use crate::config::rule::Rule;

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

    pub(crate) fn find(&self, name: &str) -> Option<&ObservedHeader> {
        self.0.iter().find(|h| *h.name == *name)
    }

    /// Every counter name, for hosts that register metrics up front.
    pub fn counter_names(&self) -> impl Iterator<Item = &str> {
        self.0
            .iter()
            .flat_map(|h| [&*h.would_add, &*h.would_overwrite, &*h.would_remove])
    }
}
