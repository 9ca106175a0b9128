//! `Cookie` header parsing and session-cookie removal (session-core `fuzzing::cookie`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| session_core::fuzzing::cookie(data));
