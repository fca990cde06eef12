//! Any bytes as an HTML document: the inline-script scan never panics, and every source it returns is a
//! well-formed `'sha256-<base64>'`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secure_headers::inline_scripts::script_hashes;

fuzz_target!(|html: &[u8]| {
    if let Ok(hashes) = script_hashes(html, 8) {
        assert!(hashes.len() <= 8);
        for hash in hashes {
            assert!(
                hash.starts_with("'sha256-") && hash.ends_with("='") && hash.len() == 53,
                "{hash}"
            );
        }
    }
});
