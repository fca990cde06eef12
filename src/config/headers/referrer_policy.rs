//! Referrer-Policy from `referrer_policy`: known tokens only, written in the canonical `a, b` form.

use crate::error::ConfigError;

const REFERRER_TOKENS: &[&str] = &[
    "no-referrer",
    "no-referrer-when-downgrade",
    "origin",
    "origin-when-cross-origin",
    "same-origin",
    "strict-origin",
    "strict-origin-when-cross-origin",
    "unsafe-url",
];

pub fn render(field: &str, policy: &str) -> Result<String, ConfigError> {
    for token in policy.split(',').map(str::trim) {
        if !REFERRER_TOKENS.contains(&token) {
            return Err(ConfigError::new(
                field,
                format!(
                    "`{token}` is not a Referrer-Policy token ({})",
                    REFERRER_TOKENS.join(", ")
                ),
            ));
        }
    }
    Ok(policy
        .split(',')
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(", "))
}
