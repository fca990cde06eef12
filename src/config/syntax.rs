//! Syntax checks of what the policy writes or matches: header names and values (RFC 9110), so that nothing
//! the policy writes can split a header, and URL path prefixes.

use crate::error::ConfigError;

/// Longest header value the policy may write; browsers and proxies reject far shorter lines in practice.
pub const MAX_VALUE_LEN: usize = 8192;

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A valid field name, lower-cased (proxy-wasm hosts and HTTP/2 want lower case).
pub fn check_header_name(field: &str, name: &str) -> Result<Box<str>, ConfigError> {
    if name.is_empty() {
        return Err(ConfigError::new(field, "header name is empty"));
    }
    if name.starts_with(':') {
        return Err(ConfigError::new(
            field,
            format!("`{name}` is a pseudo-header; the policy cannot write it"),
        ));
    }
    if let Some(bad) = name.bytes().find(|b| !is_token_byte(*b)) {
        return Err(ConfigError::new(
            field,
            format!(
                "header name {name:?} contains byte 0x{bad:02x}; names are RFC 9110 tokens (letters, digits, !#$%&'*+-.^_`|~)"
            ),
        ));
    }
    Ok(name.to_ascii_lowercase().into_boxed_str())
}

/// A valid field value: visible ASCII, spaces and tabs inside, nothing that could end the line.
pub fn check_header_value(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(ConfigError::new(
            field,
            format!(
                "value is {} bytes; the limit is {MAX_VALUE_LEN}",
                value.len()
            ),
        ));
    }
    if let Some(bad) = value
        .bytes()
        .find(|b| !(b.is_ascii_graphic() || *b == b' ' || *b == b'\t'))
    {
        let why = match bad {
            b'\r' | b'\n' => "CR and LF would split the header",
            0 => "NUL is never allowed in a header",
            b if b >= 0x80 => "non-ASCII bytes are not portable in header values",
            _ => "control characters are not allowed in header values",
        };
        return Err(ConfigError::new(
            field,
            format!("value contains byte 0x{bad:02x}: {why}"),
        ));
    }
    if value.starts_with([' ', '\t']) || value.ends_with([' ', '\t']) {
        return Err(ConfigError::new(
            field,
            "value has leading or trailing white space",
        ));
    }
    Ok(())
}

/// A URL path prefix from the policy (`streaming_paths`, `match.paths`, the collector's path).
pub fn url_path_prefix(field: &str, prefix: &str) -> Result<Box<str>, ConfigError> {
    if !prefix.starts_with('/') {
        return Err(ConfigError::new(
            field,
            format!("`{prefix}` must start with /"),
        ));
    }
    if prefix.contains(['?', '#', '*'])
        || prefix.chars().any(|c| c.is_control() || c.is_whitespace())
    {
        return Err(ConfigError::new(
            field,
            format!(
                "`{}` must be a plain path prefix (no query, fragment, wildcard or white space)",
                prefix.escape_debug()
            ),
        ));
    }
    Ok(prefix.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercased_tokens() {
        assert_eq!(
            &*check_header_name("p", "X-Frame-Options").unwrap(),
            "x-frame-options"
        );
        for bad in ["", "X Foo", "X:Foo", "X\r\nFoo", ":status", "Ü"] {
            assert!(check_header_name("p", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn values_cannot_carry_line_breaks_or_nul() {
        assert!(check_header_value("p", "max-age=1; includeSubDomains").is_ok());
        for bad in ["a\rb", "a\nb", "a\0b", "é", " lead", "trail ", "\u{7f}"] {
            let err = check_header_value("p", bad).unwrap_err();
            assert_eq!(err.field, "p");
        }
        assert!(check_header_value("p", &"a".repeat(MAX_VALUE_LEN + 1)).is_err());
    }
}
