//! JSON as written, for policies and CSP reports alike: serde_json parses the text, and every key of an object is
//! kept in document order, repeated keys included, so that the schema can refuse a repeated field (serde_json's
//! `Value` keeps the last one silently). The schema reads this tree through `config::tree_reader`. One tree type
//! for both means one copy of the parser in each module.

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum JsonTree {
    Null,
    Bool(bool),
    Unsigned(u64),
    Signed(i64),
    Float(f64),
    String(String),
    List(Vec<JsonTree>),
    Object(Vec<(String, JsonTree)>),
}

impl JsonTree {
    /// JSON text to a tree; a syntax error says where (line and column).
    pub fn parse(json: &[u8]) -> Result<JsonTree, serde_json::Error> {
        serde_json::from_slice(json)
    }

    /// The value of an object's first `key`.
    pub fn get(&self, key: &str) -> Option<&JsonTree> {
        match self {
            JsonTree::Object(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            JsonTree::String(s) => Some(s),
            _ => None,
        }
    }

    /// Takes every `key` out of an object, and gives back the first one's value.
    pub fn remove(&mut self, key: &str) -> Option<JsonTree> {
        let JsonTree::Object(entries) = self else {
            return None;
        };
        let first = entries.iter().position(|(k, _)| k == key)?;
        let (_, value) = entries.remove(first);
        entries.retain(|(k, _)| k != key);
        Some(value)
    }
}

impl<'de> Deserialize<'de> for JsonTree {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(TreeVisitor)
    }
}

struct TreeVisitor;

impl<'de> Visitor<'de> for TreeVisitor {
    type Value = JsonTree;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_unit<E: de::Error>(self) -> Result<JsonTree, E> {
        Ok(JsonTree::Null)
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<JsonTree, E> {
        Ok(JsonTree::Bool(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<JsonTree, E> {
        Ok(JsonTree::Unsigned(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<JsonTree, E> {
        Ok(JsonTree::Signed(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<JsonTree, E> {
        Ok(JsonTree::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<JsonTree, E> {
        Ok(JsonTree::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<JsonTree, E> {
        Ok(JsonTree::String(v))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<JsonTree, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(JsonTree::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonTree, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(JsonTree::Object(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::JsonTree;

    #[test]
    fn repeated_keys_are_kept_in_order_and_removed_together() {
        let mut tree =
            JsonTree::parse(br#"{"a": 1, "b": -2, "a": [true, null, 1.5, "x"]}"#).unwrap();
        assert_eq!(tree.get("a"), Some(&JsonTree::Unsigned(1)));
        assert_eq!(tree.get("b"), Some(&JsonTree::Signed(-2)));
        assert_eq!(tree.remove("a"), Some(JsonTree::Unsigned(1)));
        assert_eq!(
            tree,
            JsonTree::Object(vec![("b".into(), JsonTree::Signed(-2))])
        );
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = JsonTree::parse(b"{\"a\": [1,]}").unwrap_err();
        assert!(err.to_string().contains("line 1 column 10"), "{err}");
    }
}
