//! Layer 3, assembly: what serves one domain built from the settings (the
//! typed settings, the per-domain table) and the decision that runs the
//! mechanisms in order.

pub mod decision;
pub mod domains;
pub mod settings;
