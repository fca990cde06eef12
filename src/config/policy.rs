//! The whole policy: parsed from the plugin configuration, layered, validated and compiled into rules.

use crate::config::matcher::Matcher;
use crate::config::observed::ObservedHeaders;
use crate::config::presets;
use crate::config::rule::Rule;
use crate::config::schema::Layer;
use crate::config::syntax::check_header_name;
use crate::config::tree_reader::TreeReader;
use crate::error::ConfigError;
use crate::inline_script_hashes::hashed_csp::{Fallback, DOCUMENTS_HASHED, SCRIPTS_HASHED};
use crate::json_tree::JsonTree;
use crate::report_collector::ReportCollector;

/// Rules are matched against a request with a 128-bit set; more rules than that are refused.
pub const MAX_RULES: usize = 128;
/// A policy document larger than this is refused before parsing.
pub const MAX_POLICY_BYTES: usize = 1 << 20;
/// Objects and lists nested deeper than this are refused before parsing. A policy needs at most six levels
/// (`{"rules": [{"content_security_policy": {"directives": {"script-src": [...]}}}]}`), and the schema's
/// parser recurses once per level: nested `rules`, three to four KiB of the Wasm stack each, overflowed the
/// modules' 64 KiB stack between 15 and 20 of them (30 to 40 levels), a trap instead of this one line.
pub const MAX_NESTING: usize = 16;

#[derive(Debug)]
pub struct Policy {
    pub rules: Vec<Rule>,
    /// A request header (set by a trusted proxy in front) whose value says whether the browser used https.
    pub trusted_proto_header: Option<Box<str>>,
    /// Every extension any rule repairs the Content-Type for; a request remembers its index here.
    pub extensions: Vec<Box<str>>,
    pub report_collector: Option<ReportCollector>,
    /// Counter names of the headers observing rules touch.
    pub observed: ObservedHeaders,
}

impl Policy {
    pub fn parse(json: &[u8]) -> Result<Policy, ConfigError> {
        if json.iter().all(u8::is_ascii_whitespace) {
            return Err(ConfigError::new(
                "",
                "no policy given (the plugin configuration is empty); use {} for the defaults",
            ));
        }
        if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(ConfigError::new(
                "",
                "the policy must be a JSON object ({...})",
            ));
        }
        if json.len() > MAX_POLICY_BYTES {
            return Err(ConfigError::new(
                "",
                format!(
                    "policy is {} bytes; the limit is {MAX_POLICY_BYTES}",
                    json.len()
                ),
            ));
        }
        check_nesting(json)?;
        Policy::compile(layer_from_json(json)?)
    }

    /// The policy from a parsed tree (JSON text, or Traefik's options); errors carry the field path.
    pub fn from_tree(reader: TreeReader<'_>) -> Result<Policy, ConfigError> {
        Policy::compile(layer_from(reader)?)
    }

    fn compile(mut top: Layer) -> Result<Policy, ConfigError> {
        for (field, present) in [
            ("name", top.name.is_some()),
            ("match", top.match_.is_some()),
        ] {
            if present {
                return Err(ConfigError::new(
                    field,
                    "only allowed inside an entry of `rules`",
                ));
            }
        }
        let trusted_proto_header = top
            .trusted_proto_header
            .take()
            .map(|h| check_header_name("trusted_proto_header", &h))
            .transpose()?;
        let report_collector = top
            .csp_reports
            .take()
            .map(|spec| ReportCollector::compile("csp_reports", &spec))
            .transpose()?;
        let reports = report_collector.as_ref();
        let rule_layers = top.rules.take();
        let base = with_presets("", top)?;

        let rules = match rule_layers {
            None => vec![Rule::compile(
                "",
                "default",
                Matcher::default(),
                &base,
                reports,
            )?],
            Some(layers) => {
                if layers.len() > MAX_RULES {
                    return Err(ConfigError::new(
                        "rules",
                        format!("{} rules; at most {MAX_RULES}", layers.len()),
                    ));
                }
                // The top level must stand on its own, so its own mistakes are reported at their own path.
                Rule::compile("", "defaults", Matcher::default(), &base, reports)?;
                layers
                    .into_iter()
                    .enumerate()
                    .map(|(i, layer)| {
                        compile_rule(&format!("rules[{i}]"), i, &base, layer, reports)
                    })
                    .collect::<Result<_, _>>()?
            }
        };
        let mut extensions: Vec<Box<str>> = Vec::new();
        for rule in &rules {
            for fix in &rule.content_types {
                if !extensions.contains(&fix.extension) {
                    extensions.push(fix.extension.clone());
                }
            }
        }
        Ok(Policy {
            observed: ObservedHeaders::from_rules(&rules),
            rules,
            trusted_proto_header,
            extensions,
            report_collector,
        })
    }

    /// Every counter name known at configure time, for hosts that register metrics up front.
    pub fn counter_names(&self) -> impl Iterator<Item = &str> {
        let hashing = self.rules.iter().any(|r| r.inline_script_hashes.is_some());
        let inline = [DOCUMENTS_HASHED, SCRIPTS_HASHED]
            .into_iter()
            .chain(Fallback::ALL.map(Fallback::counter))
            .filter(move |_| hashing);
        self.observed
            .counter_names()
            .chain(
                self.report_collector
                    .iter()
                    .flat_map(ReportCollector::counter_names),
            )
            .chain(inline)
    }
}

/// Refuses JSON whose objects and lists nest deeper than MAX_NESTING, in one pass over the text (brackets inside
/// strings do not count).
pub fn check_nesting(json: &[u8]) -> Result<(), ConfigError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &byte in json {
        match (in_string, byte) {
            (true, _) if escaped => escaped = false,
            (true, b'\\') => escaped = true,
            (true, b'"') | (false, b'"') => in_string = !in_string,
            (false, b'{' | b'[') => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(ConfigError::new(
                        "",
                        format!(
                            "objects and lists nest deeper than {MAX_NESTING} levels; a policy needs at most six"
                        ),
                    ));
                }
            }
            (false, b'}' | b']') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// One layer from JSON text: the policy itself and every built-in preset go through this one reader, so the
/// schema's parser is generated once (the Wasm modules carry one copy, not one per deserializer).
pub fn layer_from_json(json: &[u8]) -> Result<Layer, ConfigError> {
    let tree = JsonTree::parse(json).map_err(|e| ConfigError::new("", e.to_string()))?;
    layer_from(TreeReader::json(&tree))
}

/// One layer from a tree; errors carry the field path.
fn layer_from(reader: TreeReader<'_>) -> Result<Layer, ConfigError> {
    Ok(Layer::read(reader)?)
}

fn compile_rule(
    field: &str,
    index: usize,
    base: &Layer,
    mut layer: Layer,
    reports: Option<&ReportCollector>,
) -> Result<Rule, ConfigError> {
    for (name, present) in [
        ("rules", layer.rules.is_some()),
        ("trusted_proto_header", layer.trusted_proto_header.is_some()),
        ("csp_reports", layer.csp_reports.is_some()),
    ] {
        if present {
            return Err(ConfigError::new(
                format!("{field}.{name}"),
                "only allowed at the top level",
            ));
        }
    }
    let matcher = Matcher::compile(
        &format!("{field}.match"),
        &layer.match_.take().unwrap_or_default(),
    )?;
    let name = layer
        .name
        .take()
        .unwrap_or_else(|| format!("rules[{index}]"));
    let mut merged = base.clone();
    merged.merge_settings(with_presets(field, layer)?);
    Rule::compile(field, &name, matcher, &merged, reports)
}

/// The layer's presets in order, then the layer's own settings on top.
fn with_presets(field: &str, mut layer: Layer) -> Result<Layer, ConfigError> {
    let mut merged = Layer::default();
    for (i, name) in layer.presets.take().unwrap_or_default().iter().enumerate() {
        let preset_field = if field.is_empty() {
            format!("presets[{i}]")
        } else {
            format!("{field}.presets[{i}]")
        };
        merged.merge_settings(presets::load(&preset_field, name)?);
    }
    merged.merge_settings(layer);
    Ok(merged)
}
