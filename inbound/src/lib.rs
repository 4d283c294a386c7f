//! The inbound side of maskrelay: the SMTP listener that receives members' replies,
//! and reports on our deliveries.
//!
//! # Layout
//! - [`smtp`]: the protocol: listener, sessions (one file per verb), limits, stress
//!   mode, STARTTLS.
//! - [`route`]: deciding where a message goes: a member's reply (relayed through the
//!   composer's one submit path), machine-written mail (recorded), complaints,
//!   bounces.
//! - [`read`]: reading a message: sender, thread, kind, relayable content, bounce
//!   reports, sender authentication.
//! - [`reply`]: every SMTP reply the listener sends, as constants.
//! - [`error`]: errors of setting up.
//!
//! Bytes flow `smtp` (protocol) → `route` (decision) → `read` (what the bytes say),
//! and an accepted reply leaves through `maskrelay-compose`'s `Submitter`; the
//! session answers `250` only after it has committed the message.

pub mod error;
pub mod read;
pub mod reply;
pub mod route;
pub mod smtp;

pub use route::Router;
pub use smtp::params::SmtpParams;
pub use smtp::stats::ListenerStats;
