//! JWT parsing, claims extraction and the static-key verification path (session-core
//! `fuzzing::jwt_claims`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| session_core::fuzzing::jwt_claims(data));
