//! Content-Type repair by path extension, from `content_types_by_extension`.

use crate::config::matcher::MediaPattern;
use crate::config::schema::{KeyedMap, Toggle};
use crate::config::syntax::check_header_value;
use crate::error::ConfigError;

/// The Content-Type a path extension must have.
#[derive(Debug)]
pub struct ContentTypeFix {
    /// Lower case, without the dot.
    pub extension: Box<str>,
    pub content_type: Box<str>,
}

pub fn compile(
    field: &str,
    setting: Option<&Toggle<KeyedMap<Toggle<String>>>>,
) -> Result<Vec<ContentTypeFix>, ConfigError> {
    let Some(Toggle::On(map)) = setting else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for (extension, content_type) in &map.0 {
        let entry_field = format!("{field}.{extension}");
        let bare = extension.strip_prefix('.').unwrap_or_default();
        if bare.is_empty() || !bare.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(ConfigError::new(
                entry_field,
                format!("`{extension}` is not an extension like .ico"),
            ));
        }
        let Toggle::On(content_type) = content_type else {
            continue;
        };
        check_header_value(&entry_field, content_type)?;
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        if matches!(
            MediaPattern::compile(&entry_field, essence)?,
            MediaPattern::AnySubtype(_)
        ) {
            return Err(ConfigError::new(
                entry_field,
                "a wildcard is not a content type",
            ));
        }
        out.push(ContentTypeFix {
            extension: bare.to_ascii_lowercase().into(),
            content_type: content_type.clone().into(),
        });
    }
    Ok(out)
}
