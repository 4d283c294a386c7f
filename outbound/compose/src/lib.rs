//! The composing half of maskrelay's outbound side: every message enters the
//! delivery queue through [`Submitter`], and is composed here on its way in.
//!
//! # Layout
//! - [`submit`]: the one submit path. It checks who may write ([`policy`]), places
//!   the message in its thread ([`thread`]), scrubs and builds it, and stores it
//!   with its delivery in one transaction before anyone acknowledges it.
//! - [`content`]: what a member wrote, as the MIME tree that may be relayed.
//! - [`scrub`]: replaces the members' real addresses in that tree with relay addresses.
//! - [`build`]: the RFC 5322 message a reader receives, built from scratch, from a
//!   member's relay address or from the organisation; [`footer`] under a member's
//!   message, with the reader's one-click links ([`link`]: what each does, written
//!   and read in one place).
//! - [`notice`]: the writer's notice that a message could not be delivered.
//! - [`broadcast`]: the organisation writing to many members: the audience
//!   counted, then expanded into copies in batches by [`Broadcaster`].
//! - [`error`]: why a submission failed.
//!
//! Data flows API or SMTP listener → [`Submitter`] (policy, thread, scrub, build) →
//! store. The delivery side (`maskrelay-deliver`) reads the queued delivery from
//! the store and never calls back here; it reports failures on a channel that
//! [`notice::run`] reads.

pub mod broadcast;
pub mod build;
pub mod content;
pub mod error;
pub mod footer;
pub mod link;
pub mod notice;
pub mod policy;
pub mod scrub;
pub mod submit;
pub mod thread;

pub use broadcast::Broadcaster;
pub use content::{Body, Content, Mailbox, Nested, Part};
pub use error::SubmitError;
pub use link::LinkAction;
pub use policy::Refusal;
pub use scrub::Scrubber;
pub use submit::{IdempotencyRecord, Submission, Submitted, Submitter};
pub use thread::Known;
