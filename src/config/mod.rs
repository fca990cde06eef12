//! Configure time: the policy document is parsed (JSON, or Traefik's options), layered with presets, validated
//! field by field and compiled into rules. Every error names its field path; every header name and value a
//! response can get is rendered here, once.

pub mod companion;
pub mod csp;
pub mod headers;
pub mod matcher;
pub mod observed;
pub mod policy;
pub mod presets;
pub mod rule;
pub mod schema;
pub mod syntax;
pub mod traefik_options;
pub mod tree_reader;
