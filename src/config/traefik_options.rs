//! Traefik's plugin options: the policy written as ordinary YAML keys under the middleware (so also as Docker or
//! Pangolin labels), or as one JSON string under `policy`; beside either, `on_invalid_policy` (what the
//! middleware does when the policy fails validation).
//!
//! Traefik re-encodes the options itself (every scalar a string, an empty list or map `""`; see
//! `tree_reader`), and [`TreeReader::traefik`] reads them back as the schema asks, with the same field paths as
//! for JSON.

use crate::config::policy::{check_nesting, Policy, MAX_POLICY_BYTES};
use crate::config::tree_reader::{Described, TreeReader};
use crate::error::ConfigError;
use crate::json_tree::JsonTree;
use std::borrow::Cow;

/// The middleware option that says what an invalid policy does (beside the policy's own keys or `policy`).
pub const ON_INVALID_POLICY: &str = "on_invalid_policy";

/// What the middleware does when its policy fails validation. Pangolin attaches one middleware to every
/// resource router, and a middleware Traefik cannot build makes every one of them answer 404: `Pass` trades the
/// headers for availability, and says so in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnInvalidPolicy {
    /// The instance refuses to load (Traefik refuses the middleware; its routers answer 404). The default.
    #[default]
    Refuse,
    /// The instance loads without a policy and serves every request unchanged.
    Pass,
}

/// The middleware's options read apart: options that cannot be read at all (or a bad `on_invalid_policy`) are
/// the outer error, always refused; a policy that fails validation is `policy`'s error, which
/// `on_invalid_policy` decides about.
#[derive(Debug)]
pub struct TraefikOptions {
    pub on_invalid_policy: OnInvalidPolicy,
    pub policy: Result<Policy, ConfigError>,
}

/// The policy from the middleware's options: `{policy: "<JSON>"}`, or the policy's own keys; either way with
/// `on_invalid_policy` beside them.
pub fn policy_from_options(options: &[u8]) -> Result<Policy, ConfigError> {
    traefik_options(options).and_then(|read| read.policy)
}

const NO_POLICY: &str = "no policy given: write the policy's keys under the middleware (presets: [immich]), or policy: '{}' for the defaults";

/// The middleware's options: `on_invalid_policy`, and the policy (or why it is invalid).
pub fn traefik_options(options: &[u8]) -> Result<TraefikOptions, ConfigError> {
    if options.len() > MAX_POLICY_BYTES {
        return Err(ConfigError::new(
            "",
            format!(
                "the plugin options are {} bytes; the limit is {MAX_POLICY_BYTES}",
                options.len()
            ),
        ));
    }
    check_nesting(options)?;
    let mut options = JsonTree::parse(options)
        .map_err(|e| ConfigError::new("", format!("Traefik's plugin options are not JSON: {e}")))?;
    if !matches!(options, JsonTree::Object(_)) {
        return Err(ConfigError::new("", NO_POLICY));
    }
    let on_invalid_policy = match options.remove(ON_INVALID_POLICY) {
        None => OnInvalidPolicy::Refuse,
        Some(JsonTree::String(choice)) if choice == "refuse" => OnInvalidPolicy::Refuse,
        Some(JsonTree::String(choice)) if choice == "pass" => OnInvalidPolicy::Pass,
        Some(other) => {
            return Err(ConfigError::new(
                ON_INVALID_POLICY,
                format!(
                    "must be `refuse` (the default) or `pass`, not {}",
                    Described(&other)
                ),
            ))
        }
    };
    let keys = match &options {
        JsonTree::Object(entries) => entries.len(),
        _ => 0,
    };
    let policy = match options.get("policy") {
        Some(JsonTree::String(json)) if keys == 1 => Policy::parse(json.as_bytes()),
        Some(JsonTree::String(_)) => Err(ConfigError::new(
            "policy",
            "give either `policy` (the whole policy as one JSON string) or the policy's own keys, not both",
        )),
        Some(_) => Err(ConfigError::new(
            "policy",
            "must be the whole policy as one JSON string (policy: |)",
        )),
        None if keys == 0 => Err(ConfigError::new("", NO_POLICY)),
        None => Policy::from_tree(TreeReader::traefik(&options)),
    };
    Ok(TraefikOptions {
        on_invalid_policy,
        policy,
    })
}

/// The text the load line's digest covers: the `policy` string when the policy is given that way (the very
/// text Envoy's `configuration` would carry, so both hosts log the same digest), else the options as Traefik
/// delivers them. Configure time only.
pub fn policy_text(options: &[u8]) -> Cow<'_, [u8]> {
    let Ok(mut options_tree) = JsonTree::parse(options) else {
        return Cow::Borrowed(options);
    };
    // `on_invalid_policy` says what the middleware does, not what the policy is.
    options_tree.remove(ON_INVALID_POLICY);
    match options_tree {
        JsonTree::Object(mut entries) if entries.len() == 1 => match entries.pop() {
            Some((key, JsonTree::String(json))) if key == "policy" => Cow::Owned(json.into_bytes()),
            _ => Cow::Borrowed(options),
        },
        _ => Cow::Borrowed(options),
    }
}
