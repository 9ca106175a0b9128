//! `Authorization` header parsing (session-core `fuzzing::authorization`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| session_core::fuzzing::authorization(data));
