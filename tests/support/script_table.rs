//! tests/inline_script_table.json: tricky documents, each with the script texts a browser runs in it (in order, as
//! the browser hashes them) and, where the scan refuses the document, the fallback it reports. The same table
//! is served to headless Chromium by tests/e2e/test_inline_script_table.py, which checks the `runs` claims.
#![allow(dead_code)] // each test crate uses its own subset

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};

pub struct Case {
    pub name: String,
    /// The class of mistake (1-7), or a topic.
    pub class: String,
    /// The Content-Type the document is served with (the table's default: UTF-8 HTML).
    pub content_type: String,
    pub html: Vec<u8>,
    pub runs: Vec<String>,
    /// `markup`, `foreign_content`, ... when the scan refuses the document.
    pub fallback: Option<String>,
}

/// A CSP source for a script's text, hashed here directly (not through the engine's normalisation).
pub fn source(text: &str) -> String {
    format!(
        "'sha256-{}'",
        STANDARD.encode(Sha256::digest(text.as_bytes()))
    )
}

impl Case {
    /// The sources of `runs`, without repeats.
    pub fn hashes(&self) -> Vec<String> {
        let mut hashes: Vec<String> = Vec::new();
        for source in self.runs.iter().map(|t| source(t)) {
            if !hashes.contains(&source) {
                hashes.push(source);
            }
        }
        hashes
    }
}

/// What a row without `content_type` is served with (the encoding rows, class 7, say theirs).
pub const DEFAULT_CONTENT_TYPE: &str = "text/html; charset=utf-8";

pub fn cases() -> Vec<Case> {
    let table: Vec<Value> =
        serde_json::from_str(include_str!("../inline_script_table.json")).unwrap();
    table
        .iter()
        .map(|case| Case {
            name: case["name"].as_str().unwrap().to_string(),
            class: case["class"].as_str().unwrap().to_string(),
            content_type: case["content_type"]
                .as_str()
                .unwrap_or(DEFAULT_CONTENT_TYPE)
                .to_string(),
            // Stored as Latin-1 strings so that any byte survives JSON.
            html: case["html"]
                .as_str()
                .unwrap()
                .chars()
                .map(|c| u8::try_from(u32::from(c)).unwrap())
                .collect(),
            runs: case["runs"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t.as_str().unwrap().to_string())
                .collect(),
            fallback: case["fallback"].as_str().map(str::to_string),
        })
        .collect()
}
