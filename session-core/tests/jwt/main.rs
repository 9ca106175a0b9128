//! `JwtResolver` against real signed tokens and a real JWKS endpoint: an axum server over HTTPS
//! with a certificate from a private CA (made with rcgen), whose root the resolver's
//! `HttpClient` is given as `extra_roots_pem`. Keys are fixtures made with OpenSSL
//! (`tests/fixtures/jwt/README.md`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "../support/https.rs"]
mod https;
mod jwks;
mod static_keys;
mod support;
