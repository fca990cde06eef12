//! Byte-level readings of HTTP request and response fields that both the response decision and the report
//! collector need: no allocation, no validation, never a panic.

/// `Content-Type` without parameters and surrounding white space: `text/html; charset=utf-8` -> `text/html`.
pub fn media_type(content_type: &[u8]) -> &[u8] {
    let end = content_type
        .iter()
        .position(|b| *b == b';')
        .unwrap_or(content_type.len());
    content_type
        .get(..end)
        .map(<[u8]>::trim_ascii)
        .unwrap_or_default()
}

/// The extension of the last path segment, without the dot: `/favicon.ico?v=2` -> `ico`.
pub fn path_extension(path: &[u8]) -> Option<&[u8]> {
    let path = strip_query(path);
    let segment_start = path.iter().rposition(|b| *b == b'/').map_or(0, |i| i + 1);
    let segment = path.get(segment_start..)?;
    let dot = segment.iter().rposition(|b| *b == b'.')?;
    segment.get(dot + 1..).filter(|ext| !ext.is_empty())
}

/// The path without its query or fragment: `/a?b#c` -> `/a`.
pub fn strip_query(path: &[u8]) -> &[u8] {
    let end = path
        .iter()
        .position(|b| *b == b'?' || *b == b'#')
        .unwrap_or(path.len());
    path.get(..end).unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_cut_parameters_and_queries() {
        assert_eq!(media_type(b" text/html ; charset=utf-8"), b"text/html");
        assert_eq!(path_extension(b"/favicon.ICO?x=a.b"), Some(&b"ICO"[..]));
        assert_eq!(path_extension(b"/a.b/c"), None);
        assert_eq!(path_extension(b"/a."), None);
        assert_eq!(strip_query(b"/a?b#c"), b"/a");
    }
}
