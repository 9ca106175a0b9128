//! The whole `SessionLayer` over arbitrary request headers (session-core
//! `fuzzing::session_headers`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| session_core::fuzzing::session_headers(data));
