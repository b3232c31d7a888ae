//! The settings vocabulary: the keys, the schema's `Spec` (name, kind,
//! default, help), typed values and the settings that are one of a few
//! words ([`choice`]). Joining the specs of every backend and
//! token format, and reading values through that join, is the assembly's
//! (`crate::catalogue`).

pub mod choice;
pub mod keys;
pub mod schema;
pub mod values;
