//! The `gateway` binary's library: configuration, composition, listeners and the admin API.
//!
//! It only composes the library crates (`session-core`, `route-core`, `cert-core`); the binary's
//! `main.rs` parses the command line, builds and serves.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use gateway_bin::{app, config::Config};
//!
//! let config = Config::parse(gateway_bin::config::QUICKSTART_TOML, std::path::Path::new("."))?;
//! let running = app::start(config, app::StartOptions::default()).await?;
//! println!("serving on {:?}", running.http_addr);
//! running.shutdown().await;
//! # Ok(()) }
//! ```

pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod client;
pub mod commands;
pub mod config;
pub mod explain;
pub mod front;
pub mod redis;
pub mod reject;
pub mod reload;
pub mod server;
pub mod services;
pub mod stack;
pub mod state;
pub mod telemetry;
pub mod tls;
