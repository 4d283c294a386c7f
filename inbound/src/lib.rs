//! The inbound side of maskrelay: the SMTP listener that receives members' replies.
//!
//! # Layout
//! - [`listener`]: the accept loop, connection limit and graceful shutdown.
//! - [`session`]: the per-connection state machine, one file per verb.
//! - [`reply`]: every SMTP reply, as constants.
//! - [`params`]: the limits a session runs under.
//! - [`per_ip`]: sessions counted per client address.
//! - [`pressure`]: stress mode, and reclaiming idle sessions at the limit.
//! - [`stats`]: counters for the metrics endpoint (refusals, reclaims, timeouts).
//! - [`message`]: reading a received message (sender, thread, content).
//! - [`mime`]: the received MIME tree reduced to what may be relayed.
//! - [`charset`]: reading bytes as text by content, not only by label.
//! - [`signed`]: signatures and keys dropped, opaque-signed mail unwrapped,
//!   encrypted mail recognised.
//! - [`ber`]: BER rewritten as DER, for CMS from streaming signers.
//! - [`bounce`]: reading bounces (RFC 3464 and prose): status, reason, hard or soft.
//! - [`classify`]: a member's reply, or an auto-reply or delivery report.
//! - [`authenticate`]: SPF, DKIM and DMARC for the `From:` domain.
//! - [`tls`]: the STARTTLS certificate, from files or self-signed for development.
//! - [`error`]: errors of setting up.
//! - [`route`]: deciding on recipients and messages, and queueing accepted replies.
//!
//! Bytes flow listener → session (protocol) → route (policy) → the outbound queue,
//! and the session answers `250` only after the queue has committed the message.

pub mod authenticate;
pub mod ber;
pub mod bounce;
pub mod charset;
pub mod classify;
pub mod error;
pub mod listener;
pub mod message;
pub mod mime;
pub mod params;
pub mod per_ip;
pub mod pressure;
pub mod reply;
pub mod route;
pub mod session;
pub mod signed;
pub mod stats;
pub mod tls;

pub use params::SmtpParams;
pub use route::Router;
pub use stats::ListenerStats;
