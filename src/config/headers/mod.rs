//! One renderer per header the policy knows: each turns its settings into the header's value, validated and
//! rendered once, at configure time. `Writes` collects what a rule writes.

pub mod cache_control;
pub mod content_type;
pub mod cross_origin;
pub mod csp_and_framing;
pub mod hsts;
pub mod permissions_policy;
pub mod referrer_policy;

use crate::config::rule::{SchemeScope, Write, WriteMode};

/// The writes of one rule, one per header name (a later write for a name replaces the earlier one).
#[derive(Default)]
pub struct Writes(pub Vec<Write>);

impl Writes {
    pub fn set(&mut self, name: &str, value: String, scheme: SchemeScope) {
        self.0.push(Write {
            name: name.into(),
            value: value.into(),
            mode: WriteMode::Set,
            scheme,
            first: false,
        });
    }

    /// One write when the value is the same on both schemes, otherwise one for each.
    pub fn set_by_scheme(&mut self, name: &str, https: String, http: String) {
        if https == http {
            self.set(name, https, SchemeScope::Any);
        } else {
            self.set(name, https, SchemeScope::HttpsOnly);
            self.set(name, http, SchemeScope::HttpOnly);
        }
    }
}
