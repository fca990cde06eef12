//! Cross-Origin-Resource-Policy, -Opener-Policy and -Embedder-Policy from the three `cross_origin_*` fields.

/// The header a `cross_origin_*` field writes and the values it takes.
pub fn header_and_values(field: &str) -> (&'static str, &'static [&'static str]) {
    match field {
        "cross_origin_resource_policy" => (
            "cross-origin-resource-policy",
            &["same-origin", "same-site", "cross-origin"],
        ),
        "cross_origin_opener_policy" => (
            "cross-origin-opener-policy",
            &[
                "same-origin",
                "same-origin-allow-popups",
                "noopener-allow-popups",
                "unsafe-none",
            ],
        ),
        _ => (
            "cross-origin-embedder-policy",
            &["require-corp", "credentialless", "unsafe-none"],
        ),
    }
}
