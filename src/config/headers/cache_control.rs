//! Cache-Control defaults by response media type, from `cache_control`.

use crate::config::matcher::MediaPattern;
use crate::config::schema::{KeyedMap, Toggle};
use crate::config::syntax::check_header_value;
use crate::error::ConfigError;

#[derive(Debug)]
pub struct CacheDefault {
    pub media: MediaPattern,
    pub value: Box<str>,
}

pub fn compile(
    field: &str,
    setting: Option<&Toggle<KeyedMap<Toggle<String>>>>,
) -> Result<Vec<CacheDefault>, ConfigError> {
    let Some(Toggle::On(map)) = setting else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (pattern, value) in &map.0 {
        let entry_field = format!("{field}.{pattern}");
        let media = MediaPattern::compile(&entry_field, pattern)?;
        let Toggle::On(value) = value else { continue };
        check_header_value(&entry_field, value)?;
        let directives_ok = value.split(',').map(str::trim).all(|d| {
            let name = d.split('=').next().unwrap_or_default();
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        if !directives_ok {
            return Err(ConfigError::new(
                entry_field,
                format!("`{value}` is not a Cache-Control directive list (no-store, max-age=0)"),
            ));
        }
        out.push(CacheDefault {
            media,
            value: value.clone().into(),
        });
    }
    // Exact types before wildcards, so `text/html` wins over `*/*` whatever the order in the JSON.
    let (mut exact, wildcards): (Vec<_>, Vec<_>) = out
        .into_iter()
        .partition(|d| !matches!(d.media, MediaPattern::AnySubtype(_)));
    exact.extend(wildcards);
    Ok(exact)
}
