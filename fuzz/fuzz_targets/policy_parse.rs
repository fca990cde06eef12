//! Any bytes as a policy: parsing never panics, and a refusal is one log line naming a field path.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secure_headers::Policy;

fuzz_target!(|data: &[u8]| {
    if let Err(err) = Policy::parse(data) {
        let line = err.to_string();
        assert!(!line.contains(['\r', '\n', '\0']), "not one line: {line:?}");
        assert!(line.starts_with("invalid policy at "), "{line}");
    }
});
