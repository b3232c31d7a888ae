#![no_main]
//! See cloudauth_core::fuzzing::domain_file and fuzz/README.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cloudauth_core::fuzzing::domain_file(data));
