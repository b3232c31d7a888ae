//! The protocol side of `cloudauth` as a library: the wire protocols, request
//! parsing and the xcauth.conf reader. The `cloudauth` program uses them
//! from here, and so do the fuzz targets (`fuzz/`) through [`fuzzing`].

pub mod config_file;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod request;
pub mod wire;
