//! Built-in presets: the rollout plan's bundles A-E, `immich`, `immich-strict` and `strict`, kept as JSON beside
//! this file so an operator can read exactly what each one sets.

use crate::config::schema::Layer;
use crate::error::ConfigError;

const PRESETS: &[(&str, &str)] = &[
    ("bundle-a", include_str!("presets/bundle-a.json")),
    ("bundle-b", include_str!("presets/bundle-b.json")),
    ("bundle-c", include_str!("presets/bundle-c.json")),
    ("bundle-d", include_str!("presets/bundle-d.json")),
    ("bundle-e", include_str!("presets/bundle-e.json")),
    ("immich", include_str!("presets/immich.json")),
    ("immich-strict", include_str!("presets/immich-strict.json")),
    ("strict", include_str!("presets/strict.json")),
];

/// Headers the OWASP Secure Headers Project lists for removal (ci/headers_remove.json).
pub const OWASP_REMOVE: &[&str] = &[
    "$wsep",
    "host-header",
    "k-proxy-request",
    "liferay-portal",
    "oraclecommercecloud-version",
    "pega-host",
    "powered-by",
    "product",
    "server",
    "sourcemap",
    "x-aspnet-version",
    "x-aspnetmvc-version",
    "x-atmosphere-error",
    "x-atmosphere-first-request",
    "x-atmosphere-tracking-id",
    "x-b3-parentspanid",
    "x-b3-sampled",
    "x-b3-spanid",
    "x-b3-traceid",
    "x-beserver",
    "x-cf-powered-by",
    "x-cms",
    "x-calculatedbetarget",
    "x-cocoon-version",
    "x-content-encoded-by",
    "x-diaginfo",
    "x-envoy-attempt-count",
    "x-envoy-external-address",
    "x-envoy-internal",
    "x-envoy-original-dst-host",
    "x-envoy-upstream-service-time",
    "x-feserver",
    "x-framework",
    "x-generated-by",
    "x-generator",
    "x-jitsi-release",
    "x-kubernetes-pf-flowschema-ui",
    "x-kubernetes-pf-prioritylevel-uid",
    "x-litespeed-cache",
    "x-litespeed-purge",
    "x-litespeed-tag",
    "x-litespeed-vary",
    "x-litespeed-cache-control",
    "x-mod-pagespeed",
    "x-nextjs-cache",
    "x-nextjs-matched-path",
    "x-nextjs-page",
    "x-nextjs-redirect",
    "x-owa-version",
    "x-old-content-length",
    "x-oneagent-js-injection",
    "x-page-speed",
    "x-php-version",
    "x-powered-by",
    "x-powered-by-plesk",
    "x-powered-cms",
    "x-redirect-by",
    "x-server-powered-by",
    "x-sourcefiles",
    "x-sourcemap",
    "x-turbo-charged-by",
    "x-umbraco-version",
    "x-varnish-backend",
    "x-varnish-server",
    "x-dtagentid",
    "x-dthealthcheck",
    "x-dtinjectedservlet",
    "x-ruxit-js-agent",
];

pub fn names() -> impl Iterator<Item = &'static str> {
    PRESETS.iter().map(|(name, _)| *name)
}

/// The layer a preset stands for; `field` names the policy field that asked for it.
pub fn load(field: &str, name: &str) -> Result<Layer, ConfigError> {
    let Some((_, json)) = PRESETS.iter().find(|(n, _)| *n == name) else {
        return Err(ConfigError::new(
            field,
            format!(
                "unknown preset `{name}`; known: {}",
                names().collect::<Vec<_>>().join(", ")
            ),
        ));
    };
    let broken = |e: ConfigError| {
        ConfigError::new(
            field,
            format!(
                "built-in preset `{name}` is broken at {}: {}",
                e.field, e.reason
            ),
        )
    };
    let mut layer = crate::config::policy::layer_from_json(json.as_bytes()).map_err(broken)?;
    // A preset may build on others (`immich-strict` on `immich`), so that it states only what it changes.
    let Some(bases) = layer.presets.take() else {
        return Ok(layer);
    };
    let mut merged = Layer::default();
    for base in &bases {
        merged.merge_settings(load(field, base)?);
    }
    merged.merge_settings(layer);
    Ok(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_loads() {
        for name in names() {
            let layer = load("presets[0]", name).unwrap();
            assert!(
                layer.presets.is_none() && layer.rules.is_none(),
                "{name} nests"
            );
        }
        assert!(load("presets[0]", "bundle-z")
            .unwrap_err()
            .reason
            .contains("bundle-a"));
    }
}
