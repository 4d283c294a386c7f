//! The store of maskrelay: migrations for SQLite and PostgreSQL, typed queries, and
//! encryption of personal data at rest.
//!
//! # Layout
//! - [`db`]: connecting (one `Any` pool for both databases) and migrating.
//! - [`group`]: group commit: concurrent writes share one transaction and one
//!   commit, each told "durable" only after it.
//! - [`write`]: the batch transaction underneath (committed, or its connection
//!   closed).
//! - [`crypto`]: AES-256-GCM for personal data, a keyed HMAC blind index for look-ups.
//! - [`ids`]: ids, relay tokens, API keys, the clock.
//! - [`orgs`], [`members`]: the directory.
//! - [`controls`]: blocks, opting out of member messages, conversation limits.
//! - [`conversations`]: conversations and the relay addresses that stand for members.
//! - [`routing`]: everything a reply to a relay address needs, in one read.
//! - [`messages`]: relayed messages and their queued delivery, stored in one transaction.
//! - [`metadata`]: conversations and messages as admins may see them (no content).
//! - [`queue`]: claiming due deliveries under a lease and recording outcomes.
//! - `rounds`: many callers' rows written by one statement in the group commit.
//! - [`sent`]: marking deliveries sent, many per statement.
//! - [`queue_admin`]: the queue as operators see it: list, show, retry, cancel.
//! - [`suppressions`]: bounces recorded, and addresses no longer sent to.
//! - [`events`]: auto-replies and delivery reports recorded instead of relayed.
//! - [`idempotency`]: recorded answers for retried API calls.
//! - [`dkim`]: the relay domain's DKIM keys, shared by every instance.
//! - [`wakeup`]: telling other instances sharing PostgreSQL that work was queued.
//!
//! Data flows in through the HTTP API and the SMTP listener, which write a message
//! and its delivery in one transaction before acknowledging; the delivery worker
//! claims deliveries from [`queue`] and wipes their content once they end.

pub mod controls;
pub mod conversations;
pub mod crypto;
pub mod db;
pub mod dkim;
pub mod error;
pub mod events;
pub mod group;
pub mod idempotency;
pub mod ids;
pub mod members;
pub mod messages;
pub mod metadata;
pub mod orgs;
pub mod queue;
pub mod queue_admin;
mod rounds;
pub mod routing;
pub mod sent;
pub mod suppressions;
pub mod wakeup;
pub mod write;

pub use crypto::{Crypto, SecretKey};
pub use db::{Backend, Store};
pub use error::{Result, StoreError};
pub use group::GroupTx;
