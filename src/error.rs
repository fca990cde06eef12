//! A policy error: where in the JSON it is and why it was refused, printed as one log line.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Field path in the policy, e.g. `rules[0].hsts.max_age`; empty for the document itself.
    pub path: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "(policy)"
        } else {
            &self.path
        };
        // One line whatever the input: a reason quoting hostile bytes must not split the host's log.
        let reason: String = self
            .reason
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        write!(f, "invalid policy at {path}: {reason}")
    }
}

impl std::error::Error for ConfigError {}
