#![no_main]
//! See cloudauth_core::fuzzing::tokens and fuzz/README.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cloudauth_core::fuzzing::tokens(data));
