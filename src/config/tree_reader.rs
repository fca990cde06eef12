//! The one deserializer the schema is read through, for JSON text and Traefik's options alike: the schema's
//! parsers are generated once per module (each further deserializer type would add them again, about 40 KB),
//! and an error carries the field path it happened at (`rules[0].hsts.max_age`).
//!
//! Traefik hands a plugin its options as JSON it re-encodes itself (measured with Traefik 3.7): every scalar
//! becomes a string (`600` -> `"600"`, `false` -> `"false"`, `1.5` -> `"1.500000"`), an empty list or map
//! becomes `""`, `null` keys are dropped and map keys arrive sorted. From flat key paths (labels, KV stores) a
//! list of scalars arrives as one comma-joined string (`presets[0]=a`, `presets[1]=b` -> `"a,b"`). A reader made
//! with [`TreeReader::traefik`] turns such strings back where the schema asks for an integer, a boolean, a list
//! or an object, and nowhere else: a header value `"0"` stays the string `"0"`.

use crate::error::ConfigError;
use crate::json_tree::JsonTree;
use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Unexpected, Visitor};
use std::fmt::{self, Write};

/// The newtype name of a setting that `false` turns off (`schema::Toggle`): the reader answers `visit_bool(false)`
/// for `false`, and hands anything else to the setting's own type.
pub const OFF_SWITCH: &str = "secure_headers::Toggle";

#[derive(Clone, Copy)]
pub struct TreeReader<'a> {
    tree: &'a JsonTree,
    /// Read Traefik's strings as the type the schema asks for.
    coerce: bool,
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

    fn is_off(self) -> bool {
        matches!(self.tree, JsonTree::Bool(false)) || self.coerced_text() == Some("false")
    }

    fn integer<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ReadError> {
        match self.coerced_text() {
            Some(s) => match (s.parse::<u64>(), s.parse::<i64>()) {
                (Ok(n), _) => visitor.visit_u64(n),
                (_, Ok(n)) => visitor.visit_i64(n),
                _ => Err(de::Error::invalid_type(Unexpected::Str(s), &visitor)),
            },
            None => self.deserialize_any(visitor),
        }
    }
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

impl ReadError {
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

impl de::Error for ReadError {
    fn custom<T: fmt::Display>(reason: T) -> Self {
        ReadError {
            reason: reason.to_string(),
            path: Vec::new(),
        }
    }

    fn invalid_type(unexpected: Unexpected, expected: &dyn de::Expected) -> Self {
        de::Error::custom(format_args!(
            "invalid type: {}, expected {expected}",
            Described(unexpected)
        ))
    }

    fn invalid_value(unexpected: Unexpected, expected: &dyn de::Expected) -> Self {
        de::Error::custom(format_args!(
            "invalid value: {}, expected {expected}",
            Described(unexpected)
        ))
    }
}

/// serde's wording for what was found, except a float: serde's own `Display` prints it, and that one function
/// brings core's float formatting (about 15 KB) into the modules; no policy field takes a fraction.
pub struct Described<'a>(pub Unexpected<'a>);

impl fmt::Display for Described<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Unexpected::Bool(b) => write!(f, "boolean `{b}`"),
            Unexpected::Unsigned(n) => write!(f, "integer `{n}`"),
            Unexpected::Signed(n) => write!(f, "integer `{n}`"),
            Unexpected::Float(_) => f.write_str("a number with a fraction or an exponent"),
            Unexpected::Char(c) => write!(f, "character `{c}`"),
            Unexpected::Str(s) => write!(f, "string {s:?}"),
            Unexpected::Bytes(_) => f.write_str("byte array"),
            Unexpected::Unit => f.write_str("null"),
            Unexpected::Option => f.write_str("Option value"),
            Unexpected::NewtypeStruct => f.write_str("newtype struct"),
            Unexpected::Seq => f.write_str("sequence"),
            Unexpected::Map => f.write_str("map"),
            Unexpected::Enum => f.write_str("enum"),
            Unexpected::UnitVariant => f.write_str("unit variant"),
            Unexpected::NewtypeVariant => f.write_str("newtype variant"),
            Unexpected::TupleVariant => f.write_str("tuple variant"),
            Unexpected::StructVariant => f.write_str("struct variant"),
            Unexpected::Other(other) => f.write_str(other),
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field(), self.reason)
    }
}

impl std::error::Error for ReadError {}

/// A list's elements, each read by `I`'s deserializer; an error names the element's index.
struct Elements<I> {
    items: I,
    index: usize,
}

impl<'de, I> SeqAccess<'de> for Elements<I>
where
    I: Iterator,
    I::Item: Deserializer<'de, Error = ReadError>,
{
    type Error = ReadError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ReadError> {
        let Some(item) = self.items.next() else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        seed.deserialize(item)
            .map(Some)
            .map_err(|e| e.under(Segment::Index(index)))
    }
}

/// An object's entries in document order; an error in a key (an unknown field) or in its value names the key.
struct Entries<'a> {
    entries: std::slice::Iter<'a, (String, JsonTree)>,
    value: Option<&'a (String, JsonTree)>,
    coerce: bool,
}

impl<'a> Entries<'a> {
    fn new(entries: &'a [(String, JsonTree)], reader: TreeReader<'a>) -> Self {
        Entries {
            entries: entries.iter(),
            value: None,
            coerce: reader.coerce,
        }
    }
}

impl<'de> MapAccess<'de> for Entries<'de> {
    type Error = ReadError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ReadError> {
        let Some(entry) = self.entries.next() else {
            return Ok(None);
        };
        self.value = Some(entry);
        seed.deserialize(BorrowedStrDeserializer::<ReadError>::new(&entry.0))
            .map(Some)
            .map_err(|e| e.under(Segment::Key(entry.0.clone())))
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, ReadError> {
        let Some((key, value)) = self.value.take() else {
            return Err(de::Error::custom("a value was read before its key"));
        };
        let reader = TreeReader {
            tree: value,
            coerce: self.coerce,
        };
        seed.deserialize(reader)
            .map_err(|e| e.under(Segment::Key(key.clone())))
    }
}

macro_rules! integers {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
            self.integer(visitor)
        }
    )*};
}

impl<'de> Deserializer<'de> for TreeReader<'de> {
    type Error = ReadError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        match self.tree {
            JsonTree::Null => visitor.visit_unit(),
            JsonTree::Bool(b) => visitor.visit_bool(*b),
            JsonTree::Unsigned(n) => visitor.visit_u64(*n),
            JsonTree::Signed(n) => visitor.visit_i64(*n),
            JsonTree::Float(x) => visitor.visit_f64(*x),
            JsonTree::String(s) => visitor.visit_borrowed_str(s),
            JsonTree::List(items) => visitor.visit_seq(Elements {
                items: items.iter().map(|item| self.at(item)),
                index: 0,
            }),
            JsonTree::Object(entries) => visitor.visit_map(Entries::new(entries, self)),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        match self.coerced_text() {
            Some("true") => visitor.visit_bool(true),
            Some("false") => visitor.visit_bool(false),
            Some(s) => Err(de::Error::invalid_type(Unexpected::Str(s), &visitor)),
            None => self.deserialize_any(visitor),
        }
    }

    integers!(
        deserialize_u8,
        deserialize_u16,
        deserialize_u32,
        deserialize_u64,
        deserialize_i8,
        deserialize_i16,
        deserialize_i32,
        deserialize_i64
    );

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        match self.tree {
            JsonTree::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ReadError> {
        if name == OFF_SWITCH && self.is_off() {
            visitor.visit_bool(false)
        } else {
            visitor.visit_newtype_struct(self)
        }
    }

    /// From Traefik, a string is a list joined with commas (no element of a policy list can hold a comma:
    /// header names, CSP sources, origins, hosts, path prefixes, presets); `""` is the empty list.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        match self.coerced_text() {
            Some(s) => visitor.visit_seq(Elements {
                items: (!s.is_empty())
                    .then(|| s.split(','))
                    .into_iter()
                    .flatten()
                    .map(|item| BorrowedStrDeserializer::new(item.trim())),
                index: 0,
            }),
            None => self.deserialize_any(visitor),
        }
    }

    /// From Traefik, `""` is the empty object. A list is never an object (serde would read a struct's fields
    /// from a list by position).
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, ReadError> {
        match (self.coerced_text(), self.tree) {
            (Some(""), _) => visitor.visit_map(Entries::new(&[], self)),
            (Some(_), other) | (None, other @ JsonTree::List(_)) => {
                Err(de::Error::invalid_type(other.unexpected(), &visitor))
            }
            (None, _) => self.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ReadError> {
        self.deserialize_map(visitor)
    }

    /// Enums of the schema are strings (`"set_if_absent"`).
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ReadError> {
        match self.tree {
            JsonTree::String(s) => {
                BorrowedStrDeserializer::new(s).deserialize_enum(name, variants, visitor)
            }
            other => Err(de::Error::invalid_type(other.unexpected(), &visitor)),
        }
    }

    serde::forward_to_deserialize_any! {
        f32 f64 char str string bytes byte_buf unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Outer {
        inner: Option<Vec<Inner>>,
    }

    #[derive(Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Inner {
        count: Option<u64>,
        flags: Option<Vec<bool>>,
        names: Option<Vec<String>>,
    }

    fn error_at(json: &str, coerce: bool) -> (String, String) {
        let tree = JsonTree::parse(json.as_bytes()).unwrap();
        let reader = if coerce {
            TreeReader::traefik(&tree)
        } else {
            TreeReader::json(&tree)
        };
        let err = Outer::deserialize(reader).unwrap_err();
        (err.field(), err.reason)
    }

    #[test]
    fn errors_name_keys_and_indices_down_to_the_value() {
        for (json, coerce, field, reason) in [
            (
                r#"{"inner": [{}, {"count": "3"}]}"#,
                false,
                "inner[1].count",
                "invalid type: string \"3\"",
            ),
            (
                r#"{"inner": [{"flags": [true, 1]}]}"#,
                false,
                "inner[0].flags[1]",
                "expected a boolean",
            ),
            (
                r#"{"inner": [{"flagz": []}]}"#,
                false,
                "inner[0].flagz",
                "unknown field `flagz`",
            ),
            (
                r#"{"inner": [{"count": 1, "count": 2}]}"#,
                false,
                "inner[0]",
                "duplicate field `count`",
            ),
            (
                r#"{"inner": {}}"#,
                false,
                "inner",
                "invalid type: map, expected a sequence",
            ),
            (r#"[]"#, false, "", "invalid type: sequence"),
            (
                r#"{"inner": [{"count": "x"}]}"#,
                true,
                "inner[0].count",
                "invalid type: string \"x\"",
            ),
            (
                r#"{"inner": [{"flags": ["true", "no"]}]}"#,
                true,
                "inner[0].flags[1]",
                "string \"no\"",
            ),
            (
                r#"{"inner": [{"count": 1}, [2]]}"#,
                false,
                "inner[1]",
                "invalid type: sequence, expected struct Inner",
            ),
        ] {
            let (got_field, got_reason) = error_at(json, coerce);
            assert_eq!(got_field, field, "{json}: {got_reason}");
            assert!(got_reason.contains(reason), "{json}: {got_reason}");
        }
    }

    #[test]
    fn traefik_strings_read_as_the_type_asked_for_and_only_from_traefik() {
        let tree = JsonTree::parse(br#"{"inner": [{"count": "7", "flags": ["true", "false"], "names": "a, b"}, {"names": ""}]}"#)
            .unwrap();
        let outer = Outer::deserialize(TreeReader::traefik(&tree)).unwrap();
        assert_eq!(
            format!("{outer:?}"),
            "Outer { inner: Some([Inner { count: Some(7), flags: Some([true, false]), names: Some([\"a\", \"b\"]) }, \
             Inner { count: None, flags: None, names: Some([]) }]) }"
        );
        assert!(Outer::deserialize(TreeReader::json(&tree)).is_err());
    }
}
