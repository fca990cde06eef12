//! Reading a policy the way the plugins do: a JSON file (what Envoy's configuration or `policy: |` carries), `-`
//! for stdin, or a Traefik dynamic configuration (.yml/.yaml) holding the plugin's middleware.

use secure_headers::{traefik_options, ConfigError, OnInvalidPolicy, Policy};
use std::io::Read;
use std::path::Path;

/// The plugin's key in a middleware's `plugin` map, as `experimental.localPlugins` names it in the README.
const PLUGIN_KEY: &str = "secureheaders";

/// Why a policy could not be had: the file itself, or the policy in it (the line the hosts log), or the policy
/// in a middleware whose `on_invalid_policy: pass` makes Traefik serve its routers without headers instead.
pub enum LoadError {
    File(String),
    Policy(ConfigError),
    Passed(ConfigError),
}

impl LoadError {
    pub fn into_message(self) -> String {
        match self {
            LoadError::File(message) => message,
            LoadError::Policy(error) => error.to_string(),
            LoadError::Passed(error) => format!(
                "{error}; on_invalid_policy is pass: Traefik would serve this middleware's routers unchanged, \
                 without the plugin's security headers"
            ),
        }
    }
}

pub fn load(path: &Path, middleware: &str) -> Result<Policy, LoadError> {
    let text = if path == Path::new("-") {
        let mut text = Vec::new();
        std::io::stdin()
            .read_to_end(&mut text)
            .map_err(|e| LoadError::File(format!("reading stdin: {e}")))?;
        text
    } else {
        std::fs::read(path).map_err(|e| LoadError::File(format!("{}: {e}", path.display())))?
    };
    let dynamic_config = path.extension().is_some_and(|e| e == "yml" || e == "yaml");
    if dynamic_config {
        // The middleware's options go through the very reader the plugin uses (YAML keys or `policy: |`).
        let options = plugin_options(&text, middleware).map_err(LoadError::File)?;
        let read = traefik_options(options.as_bytes()).map_err(LoadError::Policy)?;
        read.policy.map_err(|error| match read.on_invalid_policy {
            OnInvalidPolicy::Refuse => LoadError::Policy(error),
            OnInvalidPolicy::Pass => LoadError::Passed(error),
        })
    } else {
        Policy::parse(&text).map_err(LoadError::Policy)
    }
}

/// `load` for commands that only need the policy: any failure as one line.
pub fn load_or_message(path: &Path, middleware: &str) -> Result<Policy, String> {
    load(path, middleware).map_err(LoadError::into_message)
}

/// The options of `middleware`'s plugin in a Traefik dynamic configuration file, as the JSON Traefik hands over.
fn plugin_options(yaml: &[u8], middleware: &str) -> Result<String, String> {
    let config: serde_yaml::Value =
        serde_yaml::from_slice(yaml).map_err(|e| format!("not YAML: {e}"))?;
    let options = config
        .get("http")
        .and_then(|h| h.get("middlewares"))
        .and_then(|m| m.get(middleware))
        .and_then(|m| m.get("plugin"))
        .and_then(|p| p.get(PLUGIN_KEY))
        .ok_or_else(|| {
            format!("no http.middlewares.{middleware}.plugin.{PLUGIN_KEY} in this file (--middleware names it)")
        })?;
    serde_json::to_string(options).map_err(|e| format!("{middleware}'s options: {e}"))
}

/// `validate`: the line each host logs for each bad policy, and whether all were good.
pub fn validate(paths: &[std::path::PathBuf], middleware: &str) -> (String, bool) {
    let mut out = String::new();
    let mut all_good = true;
    for path in paths {
        let prefix = if paths.len() > 1 {
            format!("{}: ", path.display())
        } else {
            String::new()
        };
        match load(path, middleware) {
            Ok(policy) => out.push_str(&format!(
                "{prefix}secure-headers: policy is valid ({} rule(s))\n",
                policy.rules.len()
            )),
            Err(error) => {
                all_good = false;
                // A policy error is exactly what the module logs in Envoy and Traefik.
                out.push_str(&format!(
                    "{prefix}secure-headers: {}\n",
                    error.into_message()
                ));
            }
        }
    }
    (out, all_good)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate_middleware(options: &str) -> (String, bool) {
        let dir = std::env::temp_dir().join(format!(
            "secure-headers-validate-{}-{}",
            std::process::id(),
            options.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dynamic.yml");
        let yaml = format!(
            "http:\n  middlewares:\n    secure-headers:\n      plugin:\n        secureheaders:\n{options}"
        );
        std::fs::write(&path, yaml).unwrap();
        validate(&[path], "secure-headers")
    }

    #[test]
    fn validate_reads_on_invalid_policy_and_still_fails_an_invalid_policy_under_pass() {
        let (out, good) =
            validate_middleware("          on_invalid_policy: pass\n          presets: [immich]\n");
        assert!(good && out.contains("policy is valid"), "{out}");

        let (out, good) = validate_middleware(
            "          on_invalid_policy: pass\n          hsts: {max_age: soon}\n",
        );
        assert!(
            !good,
            "a pre-deploy check fails whatever Traefik would then do"
        );
        assert!(
            out.contains("invalid policy at hsts.max_age")
                && out.contains("on_invalid_policy is pass: Traefik would serve"),
            "{out}"
        );

        let (out, good) =
            validate_middleware("          on_invalid_policy: open\n          presets: [immich]\n");
        assert!(
            !good && out.contains("invalid policy at on_invalid_policy"),
            "{out}"
        );
    }
}
