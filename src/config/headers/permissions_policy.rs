//! Permissions-Policy from `permissions_policy`: structured-field syntax, no retired features.

use crate::config::schema::{KeyedMap, Toggle};
use crate::config::syntax::check_header_value;
use crate::error::ConfigError;

pub fn render(
    field: &str,
    features: &KeyedMap<Toggle<Vec<String>>>,
) -> Result<String, ConfigError> {
    let mut parts = Vec::new();
    for (feature, allow) in &features.0 {
        let feature_field = format!("{field}.{feature}");
        let valid_name = feature
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase())
            && feature
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !valid_name {
            return Err(ConfigError::new(
                feature_field,
                format!("`{feature}` is not a feature name (lower case, digits, -)"),
            ));
        }
        if feature == "interest-cohort" || feature == "document-domain" {
            // Browsers log "Unrecognized feature" for these in every console.
            return Err(ConfigError::new(
                feature_field,
                format!("`{feature}` is no longer a feature; browsers warn about it"),
            ));
        }
        let Toggle::On(allow) = allow else { continue };
        let mut items = Vec::new();
        for (i, origin) in allow.iter().enumerate() {
            let item_field = format!("{feature_field}[{i}]");
            let item = match origin.as_str() {
                "*" if allow.len() == 1 => "*".to_string(),
                "*" => return Err(ConfigError::new(item_field, "`*` must be alone")),
                "self" | "src" => origin.clone(),
                "'self'" | "'src'" | "none" | "'none'" => {
                    return Err(ConfigError::new(item_field, format!("write `self`, `src`, `*` or an origin; for none use []; got `{origin}`")));
                }
                _ => {
                    let ok = origin.split_once("://").is_some_and(|(scheme, host)| {
                        !scheme.is_empty()
                            && scheme.bytes().all(|b| b.is_ascii_alphanumeric())
                            && !host.is_empty()
                            && host
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]*".contains(&b))
                    });
                    if !ok {
                        return Err(ConfigError::new(
                            item_field,
                            format!(
                                "`{origin}` is not self, src, * or an origin (https://a.example)"
                            ),
                        ));
                    }
                    format!("\"{origin}\"")
                }
            };
            items.push(item);
        }
        if items.first().is_some_and(|i| i == "*") {
            parts.push(format!("{feature}=*"));
        } else {
            parts.push(format!("{feature}=({})", items.join(" ")));
        }
    }
    if parts.is_empty() {
        return Err(ConfigError::new(
            field,
            "no features left; use false to send no Permissions-Policy",
        ));
    }
    let value = parts.join(", ");
    check_header_value(field, &value)?;
    Ok(value)
}
