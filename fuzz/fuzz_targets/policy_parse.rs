//! Any bytes as a policy, and as Traefik's plugin options (the policy's keys with scalars as strings, or
//! `{policy: "<JSON>"}`): parsing never panics, and a refusal is one log line naming a field path. A policy
//! that compiles also yields a companion middleware and a one-line load-time advice.
#![no_main]

use libfuzzer_sys::fuzz_target;
use secure_headers::policy_from_options;
use secure_headers::Policy;

fuzz_target!(|data: &[u8]| {
    for outcome in [Policy::parse(data), policy_from_options(data)] {
        match outcome {
            Err(err) => {
                let line = err.to_string();
                assert!(!line.contains(['\r', '\n', '\0']), "not one line: {line:?}");
                assert!(line.starts_with("invalid policy at "), "{line}");
            }
            Ok(policy) => {
                let advice = policy.companion(&[]).advice();
                assert!(
                    !advice.contains(['\r', '\n', '\0']),
                    "not one line: {advice:?}"
                );
            }
        }
    }
});
