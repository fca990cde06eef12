//! What each host logs when a policy loads, so an operator can tell from the log which build runs which policy:
//! the crate version (the release's, see `make dist`) and the SHA-256 of the policy text exactly as the host
//! handed it over (the same text gives the same digest in Envoy and in Traefik).

use sha2::{Digest, Sha256};
use std::fmt::Write;

/// The version of this build, from Cargo.toml.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `version 0.1.0, policy sha256:<64 hex digits>`, appended to the "policy loaded" line at configure time.
pub fn load_identity(policy_text: &[u8]) -> String {
    let mut line = format!("version {VERSION}, policy sha256:");
    for byte in Sha256::digest(policy_text) {
        // Writing into a String cannot fail.
        let _ = write!(line, "{byte:02x}");
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_version_and_the_digest_of_the_exact_text() {
        // sha256 of the two bytes "{}".
        assert_eq!(
            load_identity(b"{}"),
            format!(
                "version {VERSION}, policy sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
            )
        );
        assert_ne!(load_identity(b"{}"), load_identity(b"{}\n"));
    }
}
