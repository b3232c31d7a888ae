#![no_main]
//! See cloudauth::fuzzing::frames and fuzz/README.md.

libfuzzer_sys::fuzz_target!(|data: &[u8]| cloudauth::fuzzing::frames(data));
