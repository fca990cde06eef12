//! The policy as written in JSON: every field optional so that presets, the top level and rules can be layered.
//! Objects merge key by key, lists and strings replace, and `false` turns a header (or a key) off.

use crate::config::tree_reader::OFF_SWITCH;
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;
use std::marker::PhantomData;

/// One layer of policy: the top level, one rule, or one preset.
#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    // Only at the top level:
    pub rules: Option<Vec<Layer>>,
    pub trusted_proto_header: Option<String>,
    pub csp_reports: Option<ReportsSpec>,
    // Only inside rules:
    pub name: Option<String>,
    #[serde(rename = "match")]
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

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct MatchSpec {
    pub hosts: Option<Vec<String>>,
    pub paths: Option<Vec<String>>,
    pub except_paths: Option<Vec<String>>,
    pub content_types: Option<Vec<String>>,
    pub status: Option<Vec<String>>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct HstsSpec {
    pub max_age: Option<u64>,
    pub include_subdomains: Option<bool>,
    pub preload: Option<bool>,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
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

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match String::deserialize(deserializer)?.as_str() {
            "enforce" => Ok(Mode::Enforce),
            "observe" => Ok(Mode::Observe),
            other => Err(de::Error::custom(format!(
                "`{other}` is not a mode: use \"enforce\" or \"observe\""
            ))),
        }
    }
}

/// Hash a document's inline scripts into its CSP instead of `'unsafe-inline'`.
#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
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
#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
pub struct ReportsSpec {
    pub path: Option<String>,
    pub max_body_bytes: Option<u64>,
    /// A Reporting API endpoint group name: adds `report-to` and `Reporting-Endpoints`.
    pub report_to: Option<String>,
}

#[derive(Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum HeaderAction {
    Set,
    SetIfAbsent,
    Append,
    Remove,
}

#[derive(Deserialize, Default, Clone, Debug)]
#[serde(deny_unknown_fields)]
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

// Deserialization. `Toggle` asks the reader (`tree_reader::TreeReader`, the one deserializer the schema is read
// through) whether the value turns the setting off, and otherwise reads `T` through the very same reader, so
// every nested error keeps its full field path and `T`'s parser exists once.

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Toggle<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(OFF_SWITCH, ToggleVisitor(PhantomData))
    }
}

struct ToggleVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for ToggleVisitor<T> {
    type Value = Toggle<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("`false` to turn this off, or a value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        if v {
            Err(de::Error::invalid_type(de::Unexpected::Bool(v), &self))
        } else {
            Ok(Toggle::Off)
        }
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, value: D) -> Result<Self::Value, D::Error> {
        T::deserialize(value).map(Toggle::On)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for KeyedMap<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(KeyedMapVisitor(PhantomData))
    }
}

struct KeyedMapVisitor<V>(PhantomData<V>);

impl<'de, V: Deserialize<'de>> Visitor<'de> for KeyedMapVisitor<V> {
    type Value = KeyedMap<V>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries: Vec<(String, V)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if entries.iter().any(|(k, _)| k.eq_ignore_ascii_case(&key)) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(KeyedMap(entries))
    }
}
