//! The outbound side of maskrelay: building messages, queueing them durably, and
//! delivering them.
//!
//! # Layout
//! - [`content`]: what a member wrote, as the MIME tree that may be relayed.
//! - [`scrub`]: replaces the members' real addresses in that tree with relay addresses.
//! - [`compose`]: builds the RFC 5322 message a member receives, from scratch, with a
//!   relay address as sender, our threading headers and the privacy footer.
//! - [`policy`]: whether one member may write to another (the one rule for the API
//!   and for mail).
//! - [`submit`]: the single transaction that stores a message and its delivery
//!   before the HTTP API or the SMTP listener acknowledges it.
//! - [`worker`]: claims due deliveries under a lease, signs, hands them to the
//!   transport and records each outcome.
//! - [`dkim`]: DKIM keys (made with aws-lc-rs), their TXT records, and signing.
//! - [`record`]: writes how an attempt ended, retrying while the database fails.
//! - [`retry`]: the pure retry schedule.
//! - [`janitor`]: wipes content kept past an organisation's retention.
//! - [`notice`]: tells a writer, once a day per conversation, that a message could
//!   not be delivered.
//! - [`transport`]: where mail goes — the recipient's MX hosts ([`mx`], found by
//!   [`mx_route`], spoken to by [`mx_session`]), a [`smarthost`] or a [`capture`]
//!   folder; [`pool`] keeps connections open between messages.
//! - [`wakeup`]: wakes this instance's worker when work is queued, and the other
//!   instances' through PostgreSQL's `LISTEN`/`NOTIFY`.
//! - [`error`]: errors of submission and of delivery attempts.
//!
//! Data flows `submit` (scrub, compose) → store (encrypted) → `worker` → `transport`; content is wiped
//! from the store once its delivery ends.

pub mod capture;
pub mod compose;
pub mod content;
pub mod dkim;
pub mod error;
pub mod janitor;
pub mod mx;
pub mod mx_route;
pub mod mx_session;
pub mod notice;
pub mod policy;
pub mod pool;
pub mod record;
pub mod retry;
pub mod scrub;
pub mod smarthost;
pub mod submit;
pub mod transport;
pub mod wakeup;
pub mod worker;

pub use content::{Body, Content, Mailbox, Nested, Part};
pub use error::{DeliveryError, OutboundError};
pub use scrub::Scrubber;
pub use submit::{Submission, Submitted, Submitter};
pub use transport::Transport;
pub use worker::WorkerConfig;
