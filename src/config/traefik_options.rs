//! Traefik's plugin options: the policy written as ordinary YAML keys under the middleware (so also as Docker or
//! Pangolin labels), or as one JSON string under `policy`; beside either, `on_invalid_policy` (what the
//! middleware does when the policy fails validation).
//!
//! Traefik hands a plugin its options as JSON it re-encodes itself (measured with Traefik 3.7): every scalar
//! becomes a string (`600` -> `"600"`, `false` -> `"false"`, `1.5` -> `"1.500000"`), an empty list or map
//! becomes `""`, `null` keys are dropped and map keys arrive sorted. From flat key paths (labels, KV stores) a
//! list of scalars arrives as one comma-joined string (`presets[0]=a`, `presets[1]=b` -> `"a,b"`) and an empty
//! value is dropped. [`Coercing`] turns such strings back where the schema asks for an integer, a boolean, a
//! list or an object, and nowhere else: a header value `"0"` stays the string `"0"`. Field paths survive
//! (serde_path_to_error sees every key), so errors read as for JSON.

use crate::config::policy::{check_nesting, Policy, MAX_POLICY_BYTES};
use crate::error::ConfigError;
use serde::de::value::{BorrowedStrDeserializer, MapDeserializer, SeqDeserializer};
use serde::de::{self, Deserializer, IntoDeserializer, Unexpected, Visitor};
use serde_json::Value;
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
    let mut value: Value = serde_json::from_slice(options)
        .map_err(|e| ConfigError::new("", format!("Traefik's plugin options are not JSON: {e}")))?;
    let Value::Object(keys) = &mut value else {
        return Err(ConfigError::new(
            "",
            "no policy given: write the policy's keys under the middleware (presets: [immich]), or policy: '{}' for the defaults",
        ));
    };
    let on_invalid_policy = match keys.remove(ON_INVALID_POLICY) {
        None => OnInvalidPolicy::Refuse,
        Some(Value::String(choice)) if choice == "refuse" => OnInvalidPolicy::Refuse,
        Some(Value::String(choice)) if choice == "pass" => OnInvalidPolicy::Pass,
        Some(other) => {
            return Err(ConfigError::new(
                ON_INVALID_POLICY,
                format!("must be `refuse` (the default) or `pass`, not {other}"),
            ))
        }
    };
    let policy = match keys.get("policy") {
        Some(Value::String(json)) if keys.len() == 1 => Policy::parse(json.as_bytes()),
        Some(Value::String(_)) => Err(ConfigError::new(
            "policy",
            "give either `policy` (the whole policy as one JSON string) or the policy's own keys, not both",
        )),
        Some(_) => Err(ConfigError::new(
            "policy",
            "must be the whole policy as one JSON string (policy: |)",
        )),
        None if keys.is_empty() => Err(ConfigError::new(
            "",
            "no policy given: write the policy's keys under the middleware (presets: [immich]), or policy: '{}' for the defaults",
        )),
        None => Policy::from_deserializer(Coercing(&value)),
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
    match serde_json::from_slice::<Value>(options) {
        Ok(Value::Object(mut keys)) => {
            // `on_invalid_policy` says what the middleware does, not what the policy is.
            keys.remove(ON_INVALID_POLICY);
            match (keys.remove("policy"), keys.is_empty()) {
                (Some(Value::String(json)), true) => Cow::Owned(json.into_bytes()),
                _ => Cow::Borrowed(options),
            }
        }
        _ => Cow::Borrowed(options),
    }
}

/// A deserializer over Traefik's options that reads strings as the type the schema asks for.
#[derive(Clone, Copy)]
pub struct Coercing<'a>(pub &'a Value);

type Error = serde_json::Error;

impl<'de> Coercing<'de> {
    fn integer<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => match (s.parse::<u64>(), s.parse::<i64>()) {
                (Ok(n), _) => visitor.visit_u64(n),
                (_, Ok(n)) => visitor.visit_i64(n),
                _ => Err(de::Error::invalid_type(Unexpected::Str(s), &visitor)),
            },
            _ => self.deserialize_any(visitor),
        }
    }
}

macro_rules! integers {
    ($($method:ident),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            self.integer(visitor)
        }
    )*};
}

impl<'de> Deserializer<'de> for Coercing<'de> {
    type Error = Error;

    /// Only `Toggle` (off with `false`, or a value) asks for any type; any other string is then handed on as a
    /// value, so the value's own type decides how to read it (a list, a map, a string).
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => n.deserialize_any(visitor),
            Value::String(s) if s == "true" => visitor.visit_bool(true),
            Value::String(s) if s == "false" => visitor.visit_bool(false),
            Value::String(_) => visitor.visit_newtype_struct(self),
            Value::Array(items) => {
                visitor.visit_seq(SeqDeserializer::new(items.iter().map(Coercing)))
            }
            Value::Object(map) => visitor.visit_map(MapDeserializer::new(
                map.iter()
                    .map(|(key, value)| (key.as_str(), Coercing(value))),
            )),
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) if s == "true" || s == "false" => visitor.visit_bool(s == "true"),
            Value::String(s) => Err(de::Error::invalid_type(Unexpected::Str(s), &visitor)),
            _ => self.deserialize_any(visitor),
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

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => visitor.visit_borrowed_str(s),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_newtype_struct(self)
    }

    /// A string is a list joined with commas (no element of a policy list can hold a comma: header names,
    /// CSP sources, origins, hosts, path prefixes, presets); `""` is the empty list.
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) if s.is_empty() => {
                visitor.visit_seq(SeqDeserializer::new(std::iter::empty::<&str>()))
            }
            Value::String(s) => {
                visitor.visit_seq(SeqDeserializer::new(s.split(',').map(str::trim)))
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) if s.is_empty() => {
                visitor.visit_map(MapDeserializer::new(std::iter::empty::<(&str, &str)>()))
            }
            Value::String(s) => Err(de::Error::invalid_type(Unexpected::Str(s), &visitor)),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        self.deserialize_map(visitor)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        match self.0 {
            Value::String(s) => {
                BorrowedStrDeserializer::new(s).deserialize_enum(name, variants, visitor)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    serde::forward_to_deserialize_any! {
        f32 f64 char bytes byte_buf unit unit_struct tuple tuple_struct identifier ignored_any
    }
}

impl<'de> IntoDeserializer<'de, Error> for Coercing<'de> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}
