//! Strict-Transport-Security from `hsts`: bounded max-age, and preload only when the preload list would take it.

use crate::config::schema::HstsSpec;
use crate::error::ConfigError;

/// Longest HSTS max-age accepted: two years, the OWASP value. More is almost always a typo.
pub const HSTS_MAX_AGE_LIMIT: u64 = 63_072_000;
/// The preload list asks for at least one year.
const HSTS_PRELOAD_MIN: u64 = 31_536_000;

pub fn render(field: &str, hsts: &HstsSpec) -> Result<String, ConfigError> {
    let Some(max_age) = hsts.max_age else {
        return Err(ConfigError::new(
            format!("{field}.max_age"),
            "required (seconds; 0 tells browsers to forget HSTS)",
        ));
    };
    if max_age > HSTS_MAX_AGE_LIMIT {
        return Err(ConfigError::new(
            format!("{field}.max_age"),
            format!("{max_age} is more than {HSTS_MAX_AGE_LIMIT} (two years)"),
        ));
    }
    let subdomains = hsts.include_subdomains.unwrap_or(false);
    let preload = hsts.preload.unwrap_or(false);
    if preload && !(subdomains && max_age >= HSTS_PRELOAD_MIN) {
        return Err(ConfigError::new(
            format!("{field}.preload"),
            format!("preload needs include_subdomains: true and max_age >= {HSTS_PRELOAD_MIN}"),
        ));
    }
    let mut value = format!("max-age={max_age}");
    if subdomains {
        value.push_str("; includeSubDomains");
    }
    if preload {
        value.push_str("; preload");
    }
    Ok(value)
}
