//! "Prepare the script element", from the attributes on: whether the browser runs an inline script, given its
//! start tag.

use super::start_tag::{Attr, StartTag};
use super::Unhashable;

/// What a script element the browser prepares is, by its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptType {
    Classic,
    Module,
    /// An import map or speculation rules: inline only (a `src` is an error for the one and ignored by the other).
    Data,
}

/// "Prepare the script element", from the attributes on: whether the browser runs this inline script.
pub(super) fn executes(tag: &StartTag) -> Result<bool, Unhashable> {
    Ok(tag.value(Attr::Src).is_none() && script_type(tag)?.is_some())
}

/// "Prepare the script element", from the attributes on but `src`: the type of script the browser runs, or None
/// when it runs none.
pub(super) fn script_type(tag: &StartTag) -> Result<Option<ScriptType>, Unhashable> {
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
        (Some(t), _) if t.eq_ignore_ascii_case(b"module") => return Ok(Some(ScriptType::Module)),
        (Some(t), _)
            if [&b"importmap"[..], b"speculationrules"]
                .iter()
                .any(|k| t.eq_ignore_ascii_case(k)) =>
        {
            return Ok(Some(ScriptType::Data));
        }
        (Some(t), _) => is_javascript_mime(t.trim_ascii()),
        (None, Some([])) => true,
        (None, Some(l)) => is_javascript_mime(&[b"text/", l].concat()),
        (None, None) => true,
    };
    if !classic || tag.value(Attr::NoModule).is_some() {
        return Ok(None); // browsers with modules never run a nomodule classic script
    }
    if let (Some(event), Some(for_)) = (tag.value(Attr::Event), tag.value(Attr::For)) {
        let event = event.trim_ascii();
        let runs = for_.trim_ascii().eq_ignore_ascii_case(b"window")
            && (event.eq_ignore_ascii_case(b"onload") || event.eq_ignore_ascii_case(b"onload()"));
        return Ok(runs.then_some(ScriptType::Classic));
    }
    Ok(Some(ScriptType::Classic))
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
