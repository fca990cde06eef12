//! A policy error: where in the JSON it is and why it was refused, printed as one log line.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The field path in the policy, e.g. `rules[0].hsts.max_age`; empty for the document itself.
    pub field: String,
    pub reason: String,
}

impl ConfigError {
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ConfigError {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // One line whatever the input: a field path or reason quoting hostile bytes must not split the host's log.
        let one_line = |s: &str| -> String {
            s.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect()
        };
        let at = if self.field.is_empty() {
            "(policy)".to_string()
        } else {
            one_line(&self.field)
        };
        write!(f, "invalid policy at {at}: {}", one_line(&self.reason))
    }
}

impl std::error::Error for ConfigError {}
