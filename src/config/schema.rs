//! The policy as written in JSON: every field optional so that presets, the top level and rules can be layered.
//! Objects merge key by key, lists and strings replace, and `false` turns a header (or a key) off.

use crate::config::tree_reader::{Read, ReadError, TreeReader};

/// One layer of policy: the top level, one rule, or one preset.
#[derive(Default, Clone, Debug)]
pub struct Layer {
    // Only at the top level:
    pub rules: Option<Vec<Layer>>,
    pub trusted_proto_header: Option<String>,
    pub csp_reports: Option<ReportsSpec>,
    // Only inside rules:
    pub name: Option<String>,
    pub match_: Option<MatchSpec>,
    // Anywhere:
    pub presets: Option<Vec<String>>,
    pub mode: Option<Mode>,
    pub hsts: Option<Toggle<HstsSpec>>,
    pub frame_ancestors: Option<Toggle<Vec<String>>>,
    pub content_type_options: Option<bool>,
    pub referrer_policy: Option<Toggle<String>>,
    pub permissions_policy: Option<Toggle<KeyedMap<Toggle<Vec<String>>>>>,
    pub cross_origin_resource_policy: Option<Toggle<String>>,
    pub cross_origin_opener_policy: Option<Toggle<String>>,
    pub cross_origin_embedder_policy: Option<Toggle<String>>,
    pub content_security_policy: Option<Toggle<CspSpec>>,
    pub cache_control: Option<Toggle<KeyedMap<Toggle<String>>>>,
    pub content_types_by_extension: Option<Toggle<KeyedMap<Toggle<String>>>>,
    pub remove: Option<Vec<String>>,
    pub remove_owasp_list: Option<bool>,
    pub keep_upstream: Option<Vec<String>>,
    pub headers: Option<KeyedMap<Toggle<HeaderSpec>>>,
    pub streaming_paths: Option<Vec<String>>,
    pub inline_script_hashes: Option<Toggle<InlineHashSpec>>,
}

#[derive(Default, Clone, Debug)]
pub struct MatchSpec {
    pub hosts: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub except_paths: Option<Vec<String>>,
    pub content_types: Option<Vec<String>>,
    pub status: Option<Vec<String>>,
}

#[derive(Default, Clone, Debug)]
pub struct HstsSpec {
    pub max_age: Option<u64>,
    pub include_subdomains: Option<bool>,
    pub preload: Option<bool>,
}

#[derive(Default, Clone, Debug)]
pub struct CspSpec {
    pub directives: Option<KeyedMap<Toggle<Vec<String>>>>,
    pub report_only: Option<bool>,
}

/// `observe` computes every change and counts it without applying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Enforce,
    Observe,
}

/// Hash a document's inline scripts into its CSP instead of `'unsafe-inline'`.
#[derive(Default, Clone, Debug)]
pub struct InlineHashSpec {
    pub max_scripts: Option<u64>,
    pub max_body_bytes: Option<u64>,
    /// Adds `'strict-dynamic'` beside a document's hashes (never without them).
    pub strict_dynamic: Option<bool>,
}

impl Merge for InlineHashSpec {
    fn merge(&mut self, upper: Self) {
        self.max_scripts.merge(upper.max_scripts);
        self.max_body_bytes.merge(upper.max_body_bytes);
        self.strict_dynamic.merge(upper.strict_dynamic);
    }
}

/// The built-in CSP report collector (top level only).
#[derive(Default, Clone, Debug)]
pub struct ReportsSpec {
    pub path: Option<String>,
    pub max_body_bytes: Option<u64>,
    /// A Reporting API endpoint group name: adds `report-to` and `Reporting-Endpoints`.
    pub report_to: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderAction {
    Set,
    SetIfAbsent,
    Append,
    Remove,
}

#[derive(Default, Clone, Debug)]
pub struct HeaderSpec {
    pub value: Option<String>,
    pub action: Option<HeaderAction>,
}

/// A setting that is either off (`false`) or on with a value.
#[derive(Clone, Debug)]
pub enum Toggle<T> {
    Off,
    On(T),
}

impl<T> Toggle<T> {
    pub fn as_on(&self) -> Option<&T> {
        match self {
            Toggle::On(value) => Some(value),
            Toggle::Off => None,
        }
    }
}

/// A JSON object kept in document order that refuses duplicate keys (compared without case).
#[derive(Clone, Debug)]
pub struct KeyedMap<V>(pub Vec<(String, V)>);

impl<V> Default for KeyedMap<V> {
    fn default() -> Self {
        KeyedMap(Vec::new())
    }
}

/// How a higher layer (a rule over the top level, a field over a preset) combines with a lower one.
pub trait Merge {
    fn merge(&mut self, upper: Self);
}

macro_rules! merge_by_replacing {
    ($($t:ty),*) => {$(
        impl Merge for $t {
            fn merge(&mut self, upper: Self) {
                *self = upper;
            }
        }
    )*};
}
merge_by_replacing!(bool, u64, String, Vec<String>, MatchSpec, Mode);

impl<T: Merge> Merge for Option<T> {
    fn merge(&mut self, upper: Self) {
        match (self.as_mut(), upper) {
            (_, None) => {}
            (Some(lower), Some(upper)) => lower.merge(upper),
            (None, upper) => *self = upper,
        }
    }
}

impl<T: Merge> Merge for Toggle<T> {
    fn merge(&mut self, upper: Self) {
        match (&mut *self, upper) {
            (Toggle::On(lower), Toggle::On(upper)) => lower.merge(upper),
            (_, upper) => *self = upper,
        }
    }
}

impl<V> Merge for KeyedMap<V> {
    fn merge(&mut self, upper: Self) {
        for (key, value) in upper.0 {
            match self
                .0
                .iter_mut()
                .find(|(k, _)| k.eq_ignore_ascii_case(&key))
            {
                Some(slot) => slot.1 = value,
                None => self.0.push((key, value)),
            }
        }
    }
}

impl Merge for HstsSpec {
    fn merge(&mut self, upper: Self) {
        self.max_age.merge(upper.max_age);
        self.include_subdomains.merge(upper.include_subdomains);
        self.preload.merge(upper.preload);
    }
}

impl Merge for CspSpec {
    fn merge(&mut self, upper: Self) {
        self.directives.merge(upper.directives);
        self.report_only.merge(upper.report_only);
    }
}

impl Merge for HeaderSpec {
    fn merge(&mut self, upper: Self) {
        *self = upper;
    }
}

impl Layer {
    /// Lays `upper`'s settings over this layer's. Placement fields (rules, match, name) are not settings.
    pub fn merge_settings(&mut self, upper: Layer) {
        self.presets = None;
        self.mode.merge(upper.mode);
        self.hsts.merge(upper.hsts);
        self.frame_ancestors.merge(upper.frame_ancestors);
        self.content_type_options.merge(upper.content_type_options);
        self.referrer_policy.merge(upper.referrer_policy);
        self.permissions_policy.merge(upper.permissions_policy);
        self.cross_origin_resource_policy
            .merge(upper.cross_origin_resource_policy);
        self.cross_origin_opener_policy
            .merge(upper.cross_origin_opener_policy);
        self.cross_origin_embedder_policy
            .merge(upper.cross_origin_embedder_policy);
        self.content_security_policy
            .merge(upper.content_security_policy);
        self.cache_control.merge(upper.cache_control);
        self.content_types_by_extension
            .merge(upper.content_types_by_extension);
        self.remove.merge(upper.remove);
        self.remove_owasp_list.merge(upper.remove_owasp_list);
        self.keep_upstream.merge(upper.keep_upstream);
        self.headers.merge(upper.headers);
        self.streaming_paths.merge(upper.streaming_paths);
        self.inline_script_hashes.merge(upper.inline_script_hashes);
    }
}

// Reading from the policy's tree (`tree_reader`). Each struct names its keys once, in the order the
// unknown-field message lists them; `null` is an absent field.

impl Layer {
    const FIELDS: &'static [&'static str] = &[
        "rules",
        "trusted_proto_header",
        "csp_reports",
        "name",
        "match",
        "presets",
        "mode",
        "hsts",
        "frame_ancestors",
        "content_type_options",
        "referrer_policy",
        "permissions_policy",
        "cross_origin_resource_policy",
        "cross_origin_opener_policy",
        "cross_origin_embedder_policy",
        "content_security_policy",
        "cache_control",
        "content_types_by_extension",
        "remove",
        "remove_owasp_list",
        "keep_upstream",
        "headers",
        "streaming_paths",
        "inline_script_hashes",
    ];

    pub fn read(reader: TreeReader) -> Read<Layer> {
        let strings_map = |r: TreeReader| r.keyed_map(|v| v.toggle(TreeReader::strings));
        let string_map = |r: TreeReader| r.keyed_map(|v| v.toggle(TreeReader::string));
        let mut l = Layer::default();
        reader.fields(Layer::FIELDS, |key, v| {
            match key {
                "rules" => l.rules = Some(v.list(Layer::read)?),
                "trusted_proto_header" => l.trusted_proto_header = Some(v.string()?),
                "csp_reports" => l.csp_reports = Some(ReportsSpec::read(v)?),
                "name" => l.name = Some(v.string()?),
                "match" => l.match_ = Some(MatchSpec::read(v)?),
                "presets" => l.presets = Some(v.strings()?),
                "mode" => l.mode = Some(Mode::read(v)?),
                "hsts" => l.hsts = Some(v.toggle(HstsSpec::read)?),
                "frame_ancestors" => l.frame_ancestors = Some(v.toggle(TreeReader::strings)?),
                "content_type_options" => l.content_type_options = Some(v.boolean()?),
                "referrer_policy" => l.referrer_policy = Some(v.toggle(TreeReader::string)?),
                "permissions_policy" => l.permissions_policy = Some(v.toggle(strings_map)?),
                "cross_origin_resource_policy" => {
                    l.cross_origin_resource_policy = Some(v.toggle(TreeReader::string)?)
                }
                "cross_origin_opener_policy" => {
                    l.cross_origin_opener_policy = Some(v.toggle(TreeReader::string)?)
                }
                "cross_origin_embedder_policy" => {
                    l.cross_origin_embedder_policy = Some(v.toggle(TreeReader::string)?)
                }
                "content_security_policy" => {
                    l.content_security_policy = Some(v.toggle(CspSpec::read)?)
                }
                "cache_control" => l.cache_control = Some(v.toggle(string_map)?),
                "content_types_by_extension" => {
                    l.content_types_by_extension = Some(v.toggle(string_map)?)
                }
                "remove" => l.remove = Some(v.strings()?),
                "remove_owasp_list" => l.remove_owasp_list = Some(v.boolean()?),
                "keep_upstream" => l.keep_upstream = Some(v.strings()?),
                "headers" => l.headers = Some(v.keyed_map(|h| h.toggle(HeaderSpec::read))?),
                "streaming_paths" => l.streaming_paths = Some(v.strings()?),
                "inline_script_hashes" => {
                    l.inline_script_hashes = Some(v.toggle(InlineHashSpec::read)?)
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(l)
    }
}

impl MatchSpec {
    pub fn read(reader: TreeReader) -> Read<MatchSpec> {
        let mut m = MatchSpec::default();
        reader.fields(
            &["hosts", "paths", "except_paths", "content_types", "status"],
            |key, v| {
                let list = Some(v.strings()?);
                match key {
                    "hosts" => m.hosts = list,
                    "paths" => m.paths = list,
                    "except_paths" => m.except_paths = list,
                    "content_types" => m.content_types = list,
                    "status" => m.status = list,
                    _ => return Ok(false),
                }
                Ok(true)
            },
        )?;
        Ok(m)
    }
}

impl HstsSpec {
    fn read(reader: TreeReader) -> Read<HstsSpec> {
        let mut h = HstsSpec::default();
        reader.fields(&["max_age", "include_subdomains", "preload"], |key, v| {
            match key {
                "max_age" => h.max_age = Some(v.unsigned()?),
                "include_subdomains" => h.include_subdomains = Some(v.boolean()?),
                "preload" => h.preload = Some(v.boolean()?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(h)
    }
}

impl CspSpec {
    fn read(reader: TreeReader) -> Read<CspSpec> {
        let mut c = CspSpec::default();
        reader.fields(&["directives", "report_only"], |key, v| {
            match key {
                "directives" => {
                    c.directives = Some(v.keyed_map(|d| d.toggle(TreeReader::strings))?)
                }
                "report_only" => c.report_only = Some(v.boolean()?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(c)
    }
}

impl Mode {
    fn read(reader: TreeReader) -> Read<Mode> {
        match reader.string()?.as_str() {
            "enforce" => Ok(Mode::Enforce),
            "observe" => Ok(Mode::Observe),
            other => Err(ReadError::new(format!(
                "`{other}` is not a mode: use \"enforce\" or \"observe\""
            ))),
        }
    }
}

impl InlineHashSpec {
    fn read(reader: TreeReader) -> Read<InlineHashSpec> {
        let mut i = InlineHashSpec::default();
        reader.fields(
            &["max_scripts", "max_body_bytes", "strict_dynamic"],
            |key, v| {
                match key {
                    "max_scripts" => i.max_scripts = Some(v.unsigned()?),
                    "max_body_bytes" => i.max_body_bytes = Some(v.unsigned()?),
                    "strict_dynamic" => i.strict_dynamic = Some(v.boolean()?),
                    _ => return Ok(false),
                }
                Ok(true)
            },
        )?;
        Ok(i)
    }
}

impl ReportsSpec {
    fn read(reader: TreeReader) -> Read<ReportsSpec> {
        let mut r = ReportsSpec::default();
        reader.fields(&["path", "max_body_bytes", "report_to"], |key, v| {
            match key {
                "path" => r.path = Some(v.string()?),
                "max_body_bytes" => r.max_body_bytes = Some(v.unsigned()?),
                "report_to" => r.report_to = Some(v.string()?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(r)
    }
}

impl HeaderSpec {
    fn read(reader: TreeReader) -> Read<HeaderSpec> {
        let mut h = HeaderSpec::default();
        reader.fields(&["value", "action"], |key, v| {
            match key {
                "value" => h.value = Some(v.string()?),
                "action" => {
                    h.action = Some(v.one_of(&[
                        ("set", HeaderAction::Set),
                        ("set_if_absent", HeaderAction::SetIfAbsent),
                        ("append", HeaderAction::Append),
                        ("remove", HeaderAction::Remove),
                    ])?)
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json_tree::JsonTree;

    /// Every name the unknown-field message lists is one `Layer::read` reads: a value of no field's type is
    /// refused at that field (or inside it), never as an unknown field.
    #[test]
    fn every_listed_field_is_read() {
        for field in Layer::FIELDS {
            let json = format!(r#"{{"{field}": [[1.5]]}}"#);
            let tree = JsonTree::parse(json.as_bytes()).unwrap();
            let err = Layer::read(TreeReader::json(&tree)).expect_err(&json);
            assert!(err.field().starts_with(field), "{json}: {err:?}");
            assert!(
                !format!("{err:?}").contains("unknown field"),
                "{json}: {err:?}"
            );
        }
    }
}
