//! Reading the schema's types out of a [`JsonTree`], for JSON text and Traefik's options alike, with the field
//! path of any error (`rules[0].hsts.max_age`) and serde's wording for it. Written by hand instead of derived:
//! serde's derived parsers, generated per struct and per deserializer type, were the largest part of both Wasm
//! modules (about 45 KB of 280 KB); these readers are a few functions that every struct shares.
//!
//! Traefik hands a plugin its options as JSON it re-encodes itself (measured with Traefik 3.7): every scalar
//! becomes a string (`600` -> `"600"`, `false` -> `"false"`, `1.5` -> `"1.500000"`), an empty list or map
//! becomes `""`, `null` keys are dropped and map keys arrive sorted. From flat key paths (labels, KV stores) a
//! list of scalars arrives as one comma-joined string (`presets[0]=a`, `presets[1]=b` -> `"a,b"`). A reader made
//! with [`TreeReader::traefik`] turns such strings back where the schema asks for an integer, a boolean, a list
//! or an object, and nowhere else: a header value `"0"` stays the string `"0"`.

use crate::config::schema::{KeyedMap, Toggle};
use crate::error::ConfigError;
use crate::json_tree::JsonTree;
use std::fmt::{self, Write};

#[derive(Clone, Copy)]
pub struct TreeReader<'a> {
    tree: &'a JsonTree,
    /// Read Traefik's strings as the type the schema asks for.
    coerce: bool,
}

/// Where an error happened: object keys and list indices, innermost first (they are added as it unwinds).
#[derive(Debug)]
enum Segment {
    Key(String),
    Index(usize),
}

/// An error while reading the tree, with the path it happened at.
#[derive(Debug)]
pub struct ReadError {
    reason: String,
    path: Vec<Segment>,
}

pub type Read<T> = Result<T, ReadError>;

impl ReadError {
    pub fn new(reason: impl Into<String>) -> Self {
        ReadError {
            reason: reason.into(),
            path: Vec::new(),
        }
    }

    fn under(mut self, segment: Segment) -> Self {
        self.path.push(segment);
        self
    }

    /// The path as the policy's error lines write it: `rules[0].hsts.max_age`, empty for the document itself.
    pub fn field(&self) -> String {
        let mut field = String::new();
        for segment in self.path.iter().rev() {
            match segment {
                Segment::Key(key) if field.is_empty() => field.push_str(key),
                Segment::Key(key) => {
                    field.push('.');
                    field.push_str(key);
                }
                Segment::Index(index) => {
                    let _ = write!(field, "[{index}]");
                }
            }
        }
        field
    }
}

impl From<ReadError> for ConfigError {
    fn from(err: ReadError) -> ConfigError {
        ConfigError::new(err.field(), err.reason)
    }
}

/// What a value is, in serde's words (`string "x"`, `integer `5``, `map`).
pub struct Described<'a>(pub &'a JsonTree);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            JsonTree::Null => f.write_str("null"),
            JsonTree::Bool(b) => write!(f, "boolean `{b}`"),
            JsonTree::Unsigned(n) => write!(f, "integer `{n}`"),
            JsonTree::Signed(n) => write!(f, "integer `{n}`"),
            // Not the number itself: printing an f64 brings core's float formatting (about 15 KB) into the
            // modules for this one message, and no policy field takes a fraction.
            JsonTree::Float(_) => f.write_str("a number with a fraction or an exponent"),
            JsonTree::String(s) => write!(f, "string {s:?}"),
            JsonTree::List(_) => f.write_str("sequence"),
            JsonTree::Object(_) => f.write_str("map"),
        }
    }
}

/// `` `a`, `b` `` for an error message.
fn quoted_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("`{name}`")).collect();
    quoted.join(", ")
}

impl<'a> TreeReader<'a> {
    /// A policy written as JSON: every value must have the type the schema asks for.
    pub fn json(tree: &'a JsonTree) -> Self {
        TreeReader {
            tree,
            coerce: false,
        }
    }

    /// A policy from Traefik's options: strings stand for numbers, booleans, lists and empty objects.
    pub fn traefik(tree: &'a JsonTree) -> Self {
        TreeReader { tree, coerce: true }
    }

    fn at(self, tree: &'a JsonTree) -> Self {
        TreeReader { tree, ..self }
    }

    /// A string that Traefik may have made of another type.
    fn coerced_text(self) -> Option<&'a str> {
        match (self.coerce, self.tree) {
            (true, JsonTree::String(s)) => Some(s),
            _ => None,
        }
    }

    /// `invalid type: <what this is>, expected <expected>`.
    pub fn wrong_type(self, expected: &str) -> ReadError {
        ReadError::new(format!(
            "invalid type: {}, expected {expected}",
            Described(self.tree)
        ))
    }

    pub fn string(self) -> Read<String> {
        match self.tree {
            JsonTree::String(s) => Ok(s.clone()),
            _ => Err(self.wrong_type("a string")),
        }
    }

    pub fn boolean(self) -> Read<bool> {
        match (self.tree, self.coerced_text()) {
            (JsonTree::Bool(b), _) => Ok(*b),
            (_, Some("true")) => Ok(true),
            (_, Some("false")) => Ok(false),
            _ => Err(self.wrong_type("a boolean")),
        }
    }

    pub fn unsigned(self) -> Read<u64> {
        let negative =
            |n: i64| ReadError::new(format!("invalid value: integer `{n}`, expected u64"));
        match (self.tree, self.coerced_text()) {
            (JsonTree::Unsigned(n), _) => Ok(*n),
            (JsonTree::Signed(n), _) => Err(negative(*n)),
            (_, Some(s)) => match (s.parse::<u64>(), s.parse::<i64>()) {
                (Ok(n), _) => Ok(n),
                (_, Ok(n)) => Err(negative(n)),
                _ => Err(self.wrong_type("u64")),
            },
            _ => Err(self.wrong_type("u64")),
        }
    }

    /// One of `choices` by name; anything else is refused with the names.
    pub fn one_of<T: Copy>(self, choices: &[(&str, T)]) -> Read<T> {
        let name = self.string()?;
        match choices.iter().find(|(choice, _)| *choice == name) {
            Some((_, value)) => Ok(*value),
            None => {
                let names: Vec<&str> = choices.iter().map(|(choice, _)| *choice).collect();
                Err(ReadError::new(format!(
                    "unknown variant `{name}`, expected one of {}",
                    quoted_list(&names)
                )))
            }
        }
    }

    /// A list, each element read by `read`; an error names the element's index. From Traefik, `""` is the
    /// empty list.
    pub fn list<T>(self, read: impl Fn(TreeReader<'a>) -> Read<T>) -> Read<Vec<T>> {
        match (self.tree, self.coerced_text()) {
            (JsonTree::List(items), _) => items
                .iter()
                .enumerate()
                .map(|(index, item)| {
                    read(self.at(item)).map_err(|e| e.under(Segment::Index(index)))
                })
                .collect(),
            (_, Some("")) => Ok(Vec::new()),
            _ => Err(self.wrong_type("a sequence")),
        }
    }

    /// A list of strings. From Traefik, a string is such a list joined with commas (no element of a policy list
    /// can hold a comma: header names, CSP sources, origins, hosts, path prefixes, presets).
    pub fn strings(self) -> Read<Vec<String>> {
        match self.coerced_text() {
            Some(s) if !s.is_empty() => {
                Ok(s.split(',').map(|item| item.trim().to_owned()).collect())
            }
            _ => self.list(TreeReader::string),
        }
    }

    /// `false` turns the setting off; anything else is read by `read`.
    pub fn toggle<T>(self, read: impl FnOnce(TreeReader<'a>) -> Read<T>) -> Read<Toggle<T>> {
        let off =
            matches!(self.tree, JsonTree::Bool(false)) || self.coerced_text() == Some("false");
        if off {
            Ok(Toggle::Off)
        } else {
            read(self).map(Toggle::On)
        }
    }

    /// An object's entries; from Traefik, `""` is the empty object.
    fn entries(self) -> Read<&'a [(String, JsonTree)]> {
        match (self.tree, self.coerced_text()) {
            (JsonTree::Object(entries), _) => Ok(entries),
            (_, Some("")) => Ok(&[]),
            _ => Err(self.wrong_type("an object")),
        }
    }

    /// An object of the caller's keys, kept in document order; a key repeated (compared without case) is
    /// refused.
    pub fn keyed_map<V>(self, read: impl Fn(TreeReader<'a>) -> Read<V>) -> Read<KeyedMap<V>> {
        let mut map: Vec<(String, V)> = Vec::new();
        for (key, value) in self.entries()? {
            if map.iter().any(|(k, _)| k.eq_ignore_ascii_case(key)) {
                return Err(ReadError::new(format!("duplicate key `{key}`")));
            }
            let value = read(self.at(value)).map_err(|e| e.under(Segment::Key(key.clone())))?;
            map.push((key.clone(), value));
        }
        Ok(KeyedMap(map))
    }

    /// A struct's object: each key must be one of `fields`, at most once; `read` gets each key with a value
    /// other than `null` (an absent field), and answers false for a key it does not know.
    pub fn fields(
        self,
        fields: &[&str],
        mut read: impl FnMut(&str, TreeReader<'a>) -> Read<bool>,
    ) -> Read<()> {
        let unknown = |key: &str| {
            ReadError::new(format!(
                "unknown field `{key}`, expected one of {}",
                quoted_list(fields)
            ))
            .under(Segment::Key(key.to_owned()))
        };
        let mut seen = vec![false; fields.len()];
        for (key, value) in self.entries()? {
            let Some(index) = fields.iter().position(|field| field == key) else {
                return Err(unknown(key));
            };
            if seen
                .get_mut(index)
                .is_some_and(|seen| std::mem::replace(seen, true))
            {
                return Err(ReadError::new(format!("duplicate field `{key}`")));
            }
            if matches!(value, JsonTree::Null) {
                continue;
            }
            if !read(key, self.at(value)).map_err(|e| e.under(Segment::Key(key.clone())))? {
                return Err(unknown(key));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A two-level schema read the way the policy's structs are.
    #[derive(Debug, Default)]
    struct Outer {
        inner: Option<Vec<Inner>>,
    }

    #[derive(Debug, Default)]
    struct Inner {
        count: Option<u64>,
        flag: Option<Toggle<bool>>,
        names: Option<Vec<String>>,
    }

    fn outer(reader: TreeReader) -> Read<Outer> {
        let mut outer = Outer::default();
        reader.fields(&["inner"], |key, value| {
            match key {
                "inner" => outer.inner = Some(value.list(inner)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(outer)
    }

    fn inner(reader: TreeReader) -> Read<Inner> {
        let mut inner = Inner::default();
        reader.fields(&["count", "flag", "names"], |key, value| {
            match key {
                "count" => inner.count = Some(value.unsigned()?),
                "flag" => inner.flag = Some(value.toggle(TreeReader::boolean)?),
                "names" => inner.names = Some(value.strings()?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        Ok(inner)
    }

    fn read(json: &str, coerce: bool) -> Read<Outer> {
        let tree = JsonTree::parse(json.as_bytes()).unwrap();
        outer(if coerce {
            TreeReader::traefik(&tree)
        } else {
            TreeReader::json(&tree)
        })
    }

    #[test]
    #[rustfmt::skip] // one case a line
    fn errors_name_keys_and_indices_down_to_the_value() {
        for (json, coerce, field, reason) in [
            (r#"{"inner": [{}, {"count": "3"}]}"#, false, "inner[1].count", "invalid type: string \"3\", expected u64"),
            (r#"{"inner": [{"count": -3}]}"#, false, "inner[0].count", "invalid value: integer `-3`, expected u64"),
            (r#"{"inner": [{"count": 1.5}]}"#, false, "inner[0].count", "invalid type: a number with a fraction"),
            (r#"{"inner": [{"names": ["a", 1]}]}"#, false, "inner[0].names[1]", "integer `1`, expected a string"),
            (r#"{"inner": [{"namez": []}]}"#, false, "inner[0].namez", "unknown field `namez`, expected one of `count`, `flag`, `names`"),
            (r#"{"inner": [{"count": 1, "count": 2}]}"#, false, "inner[0]", "duplicate field `count`"),
            (r#"{"inner": [{"count": null, "count": 2}]}"#, false, "inner[0]", "duplicate field `count`"),
            (r#"{"inner": {}}"#, false, "inner", "invalid type: map, expected a sequence"),
            (r#"{"inner": [[1]]}"#, false, "inner[0]", "invalid type: sequence, expected an object"),
            (r#"{"inner": [{"flag": true}]}"#, false, "", ""),
            (r#"{"inner": [{"flag": "true"}]}"#, false, "inner[0].flag", "string \"true\", expected a boolean"),
            (r#"{"inner": [{"count": "x"}]}"#, true, "inner[0].count", "invalid type: string \"x\""),
            (r#"{"inner": [{"count": "-2"}]}"#, true, "inner[0].count", "invalid value: integer `-2`"),
            (r#"{"inner": [{"flag": "yes"}]}"#, true, "inner[0].flag", "string \"yes\", expected a boolean"),
        ] {
            match read(json, coerce) {
                Ok(_) => assert_eq!((field, reason), ("", ""), "{json} was read"),
                Err(err) => {
                    assert_eq!(err.field(), field, "{json}: {}", err.reason);
                    assert!(err.reason.contains(reason), "{json}: {}", err.reason);
                }
            }
        }
    }

    #[test]
    fn traefik_strings_read_as_the_type_asked_for_and_only_from_traefik() {
        let json =
            r#"{"inner": [{"count": "7", "flag": "false", "names": "a, b"}, {"names": ""}, ""]}"#;
        let outer = read(json, true).unwrap();
        assert_eq!(
            format!("{:?}", outer.inner),
            "Some([Inner { count: Some(7), flag: Some(Off), names: Some([\"a\", \"b\"]) }, \
             Inner { count: None, flag: None, names: Some([]) }, \
             Inner { count: None, flag: None, names: None }])"
        );
        assert!(read(json, false).is_err());
    }
}
