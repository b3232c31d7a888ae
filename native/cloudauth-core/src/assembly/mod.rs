//! Layer 3, assembly: the catalogue of plug-ins and settings, what serves
//! one domain built from the settings (the typed settings, the per-domain
//! table) and the decision that runs the mechanisms in order.

pub mod authenticator;
pub mod catalogue;
pub mod decision;
pub mod domains;
pub mod settings;
pub mod sweep;
