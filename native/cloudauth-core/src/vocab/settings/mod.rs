//! The settings vocabulary: the keys, the schema's `Spec` (name, kind,
//! default, help) and typed values. Joining the specs of every backend and
//! token format, and reading values through that join, is the assembly's
//! (`crate::catalogue`).

pub mod keys;
pub mod schema;
pub mod values;
