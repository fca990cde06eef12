//! Counters the filter keeps (observe mode, the CSP report collector, inline-script hashing), named by dotted
//! strings such as `observe.would_add.x-frame-options`. Names that can occur while responses pass are built at
//! configure time; hosts turn each name into a metric of their own (Envoy) or a log line (Traefik, which has no
//! metrics ABI), keyed by the handle type `Id` each host uses.

use crate::config::policy::Policy;
use crate::report_collector::OriginBook;

/// Where the engine counts.
pub trait Metrics {
    fn increment(&mut self, name: &str);

    /// Adds `by` at once (a host whose counters are host calls makes one call, not `by`).
    fn increment_by(&mut self, name: &str, by: u64) {
        for _ in 0..by {
            self.increment(name);
        }
    }
}

/// Distinct counter names kept per VM: the configured ones plus the collector's bounded blocked-origin names.
const MAX_COUNTERS: usize = 1024;

/// One counter a host has seen: its name, the host's handle for it, and the count in this VM.
#[derive(Debug)]
pub struct Counter<Id> {
    pub name: Box<str>,
    pub id: Id,
    pub count: u64,
}

/// The counters of one VM, in the order first seen. Hosts register the configured names up front so that
/// counting on the response path finds an existing entry and never allocates.
#[derive(Debug)]
pub struct CounterBook<Id> {
    counters: Vec<Counter<Id>>,
}

impl<Id> Default for CounterBook<Id> {
    fn default() -> Self {
        CounterBook {
            counters: Vec::new(),
        }
    }
}

impl<Id> CounterBook<Id> {
    /// Adds one to `name`, registering it with `define` the first time; None once the book is full.
    pub fn bump(&mut self, name: &str, define: impl FnOnce(&str) -> Id) -> Option<&Counter<Id>> {
        self.bump_by(name, 1, define)
    }

    /// Adds `by` to `name`, as `bump` does.
    pub fn bump_by(
        &mut self,
        name: &str,
        by: u64,
        define: impl FnOnce(&str) -> Id,
    ) -> Option<&Counter<Id>> {
        let index = match self.counters.iter().position(|c| *c.name == *name) {
            Some(index) => index,
            None if self.counters.len() < MAX_COUNTERS => {
                self.counters.push(Counter {
                    name: name.into(),
                    id: define(name),
                    count: 0,
                });
                self.counters.len() - 1
            }
            None => return None,
        };
        let counter = self.counters.get_mut(index)?;
        counter.count = counter.count.saturating_add(by);
        Some(counter)
    }

    /// Registers `name` with a count of zero.
    pub fn register(&mut self, name: &str, define: impl FnOnce(&str) -> Id) {
        if self.counters.len() < MAX_COUNTERS && !self.counters.iter().any(|c| *c.name == *name) {
            self.counters.push(Counter {
                name: name.into(),
                id: define(name),
                count: 0,
            });
        }
    }
}

/// What one plugin keeps across its requests: its counters, and the report collector's blocked origins.
#[derive(Debug)]
pub struct Telemetry<Id> {
    pub counters: CounterBook<Id>,
    pub origins: OriginBook,
}

impl<Id> Telemetry<Id> {
    /// Every counter a response can touch registered before the first response, so counting never allocates.
    pub fn for_policy(policy: &Policy, define: impl Fn(&str) -> Id) -> Self {
        let mut counters = CounterBook::default();
        for name in policy.counter_names() {
            counters.register(name, &define);
        }
        Telemetry {
            counters,
            origins: OriginBook::default(),
        }
    }
}
