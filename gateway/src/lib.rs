//! The `maskrelay` gateway: configuration, HTTP API, command line and wiring.
//!
//! # Layout
//! - [`config`]: the TOML file and its environment overrides.
//! - [`keyfile`]: the secret key that protects personal data at rest.
//! - [`api`]: the HTTP API (axum).
//! - [`cli`]: the command line (clap).
//! - [`dkim_keys`]: `maskrelay dkim generate|list|retire`.
//! - [`queue_cli`]: `maskrelay queue list|show|retry|cancel`.
//! - [`dns_records`]: `maskrelay dns print|check`.
//! - [`fd_limit`]: raises the file limit for many SMTP sessions.
//! - [`app`]: starts and stops the store, API, SMTP listener and delivery worker.

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod dkim_keys;
pub mod dns_records;
pub mod fd_limit;
pub mod keyfile;
pub mod queue_cli;

pub use app::{Running, start};
pub use config::Config;
