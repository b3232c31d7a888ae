#![no_main]
//! See cloudauth::fuzzing::xcauth_conf and fuzz/README.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cloudauth::fuzzing::xcauth_conf(data));
