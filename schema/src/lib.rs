//! The store of maskrelay: migrations for SQLite and PostgreSQL, typed queries, and
//! encryption of personal data at rest.
//!
//! # Layout
//! Underneath, knowing no table:
//! - [`ids`]: one id type per kind (organisation, member, the directory's member id,
//!   conversation, message, delivery); [`status`]: where a delivery stands;
//!   `sql`: how those are bound into SQL and read back, in one place.
//! - [`backend`]: SQLite or PostgreSQL; [`crypto`]: AES-256-GCM for personal data, a
//!   keyed HMAC blind index for look-ups, signed links; [`tokens`]: relay tokens and
//!   API keys; [`clock`].
//! - [`write`](mod@write): the batch transaction (committed, or its connection closed);
//!   [`group`]: group commit on it (concurrent writes share one transaction and one
//!   commit, each told "durable" only after it); `rounds`: many callers' rows
//!   written by one statement in the group commit; `new_message`: a message and its
//!   delivery as inserted, alone or in a round; `doorbell`.
//! - [`db`]: the [`Store`] itself: connecting, migrating, and the pieces above.
//!
//! The tables, each adding its queries to [`Store`]:
//! - [`orgs`], [`members`]: the directory; [`controls`]: blocks, opting out,
//!   conversation limits.
//! - [`categories`]: the organisation's categories of broadcasts and who left
//!   each; [`broadcasts`]: broadcasts, expanded into copies in batches;
//!   [`broadcast_readers`]: answers to them, reads by link, and their progress.
//! - [`conversations`]: conversations and the relay addresses that stand for
//!   members; [`routing`]: everything a reply to a relay address needs, in one read.
//! - [`messages`]: relayed messages and their queued delivery; [`metadata`]: what
//!   admins may see of them (no content).
//! - [`queue`]: claiming due deliveries under a lease and recording outcomes;
//!   [`sent`]: marking deliveries sent, many per statement; [`queue_admin`]: the
//!   queue as operators see it; [`wakeup`]: telling other instances that work was
//!   queued.
//! - [`suppressions`]: bounces recorded, and addresses no longer sent to;
//!   [`events`]: mail recorded instead of relayed, and refusals; [`idempotency`]:
//!   recorded answers for retried API calls; [`dkim`]: the relay domain's keys.
//!
//! Data flows in through the composer's one submit path, which writes a message and
//! its delivery in one transaction before anything is acknowledged; the delivery
//! worker claims deliveries from [`queue`] and wipes their content once they end.

pub mod backend;
pub mod broadcast_readers;
pub mod broadcasts;
pub mod categories;
pub mod clock;
pub mod controls;
pub mod conversations;
pub mod crypto;
pub mod db;
pub mod dkim;
mod doorbell;
pub mod error;
pub mod events;
pub mod group;
pub mod idempotency;
pub mod ids;
pub mod members;
pub mod messages;
pub mod metadata;
pub mod new_message;
pub mod orgs;
pub mod queue;
pub mod queue_admin;
mod rounds;
pub mod routing;
pub mod sent;
mod sql;
pub mod status;
pub mod suppressions;
pub mod tokens;
pub mod wakeup;
pub mod write;

pub use backend::Backend;
pub use crypto::{Crypto, SecretKey};
pub use db::Store;
pub use error::{Result, StoreError};
pub use group::GroupTx;
pub use ids::{
    BroadcastId, CategoryId, ConversationId, DeliveryId, Direction, ExternalId, MemberId,
    MessageId, OrgId,
};
pub use status::{BounceSeverity, DeliveryStatus};
