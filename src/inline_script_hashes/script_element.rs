//! "Prepare the script element", from the attributes on: whether the browser runs an inline script, given its
//! start tag.

use super::start_tag::{Attr, StartTag};
use super::Unhashable;

/// "Prepare the script element", from the attributes on: whether the browser runs this inline script.
pub(super) fn executes(tag: &StartTag) -> Result<bool, Unhashable> {
    if tag.value(Attr::Src).is_some() {
        return Ok(false);
    }
    for attr in [Attr::Type, Attr::Language, Attr::Event, Attr::For] {
        if tag.value(attr).is_some_and(|v| v.contains(&b'&')) {
            return Err(Unhashable::Markup(
                "a character reference in a script's type, language, event or for",
            ));
        }
    }
    let classic = match (tag.value(Attr::Type), tag.value(Attr::Language)) {
        (Some([]), _) => true,
        // Chromium compares these without stripping white space; the standard strips it first.
        (Some(t), _)
            if [&b"module"[..], b"importmap", b"speculationrules"]
                .iter()
                .any(|k| t.eq_ignore_ascii_case(k)) =>
        {
            false
        }
        (Some(t), _) => {
            if !is_javascript_mime(t.trim_ascii()) {
                return Ok(false);
            }
            true
        }
        (None, Some([])) => true,
        (None, Some(l)) => {
            if !is_javascript_mime(&[b"text/", l].concat()) {
                return Ok(false);
            }
            true
        }
        (None, None) => true,
    };
    if !classic {
        return Ok(true);
    }
    if tag.value(Attr::NoModule).is_some() {
        return Ok(false); // browsers with modules never run a nomodule classic script
    }
    if let (Some(event), Some(for_)) = (tag.value(Attr::Event), tag.value(Attr::For)) {
        let event = event.trim_ascii();
        return Ok(for_.trim_ascii().eq_ignore_ascii_case(b"window")
            && (event.eq_ignore_ascii_case(b"onload") || event.eq_ignore_ascii_case(b"onload()")));
    }
    Ok(true)
}

/// A JavaScript MIME type essence match.
fn is_javascript_mime(essence: &[u8]) -> bool {
    const JAVASCRIPT: &[&str] = &[
        "application/ecmascript",
        "application/javascript",
        "application/x-ecmascript",
        "application/x-javascript",
        "text/ecmascript",
        "text/javascript",
        "text/javascript1.0",
        "text/javascript1.1",
        "text/javascript1.2",
        "text/javascript1.3",
        "text/javascript1.4",
        "text/javascript1.5",
        "text/jscript",
        "text/livescript",
        "text/x-ecmascript",
        "text/x-javascript",
    ];
    JAVASCRIPT
        .iter()
        .any(|j| essence.eq_ignore_ascii_case(j.as_bytes()))
}
