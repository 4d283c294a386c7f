//! The delivering half of maskrelay's outbound side: it knows only the queued
//! delivery (a recipient and the composed bytes, in the store) and gets it out.
//!
//! # Layout
//! - [`worker`]: claims due deliveries under a lease, signs, hands them to the
//!   transport, records each outcome, and reports deliveries that failed for good
//!   (so that their writer can be told, by the composing half).
//! - [`transport`]: where mail goes: the reader's MX hosts, a smarthost or a capture
//!   folder, with connections kept open between messages.
//! - [`dkim`]: DKIM keys (made with aws-lc-rs), their TXT records, and signing.
//! - [`record`]: writes how an attempt ended, retrying while the database fails.
//! - [`retry`]: the pure retry schedule.
//! - [`janitor`]: wipes content kept past an organisation's retention.
//! - [`wakeup`]: tells other instances sharing PostgreSQL of work queued here, and
//!   wakes this worker on theirs.
//! - [`error`]: how an attempt fails.
//!
//! Data flows store → `worker` (claim, sign) → `transport` → `record` → store;
//! content is wiped from the store once its delivery ends. Nothing here composes a
//! message or decides who may write: that is `maskrelay-compose`, which this crate
//! never imports.

pub mod dkim;
pub mod error;
pub mod janitor;
pub mod record;
pub mod retry;
pub mod transport;
pub mod wakeup;
pub mod worker;

pub use error::DeliveryError;
pub use transport::Transport;
pub use worker::WorkerConfig;
