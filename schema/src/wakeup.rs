//! Telling the other instances sharing a PostgreSQL database that deliveries were
//! queued (`LISTEN`/`NOTIFY`), so that an idle worker starts at once rather than at
//! its next poll. A SQLite file has one instance: there is nobody to tell.
//!
//! Announcements are hints, not records: one lost while a listener reconnects costs
//! the poll interval, never a message (the queue is in the tables).

use sqlx::postgres::PgListener;

use crate::backend::Backend;
use crate::db::Store;
use crate::error::Result;

/// The channel every instance listens on.
const CHANNEL: &str = "maskrelay_queue";

/// Announcements from other instances.
pub struct QueueListener {
    inner: PgListener,
}

impl std::fmt::Debug for QueueListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueListener").finish_non_exhaustive()
    }
}

impl QueueListener {
    /// The id the next announcement was made under (this process's own announcements
    /// included). A lost connection is made again first; what was
    /// announced meanwhile is missed.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the database cannot be reached again.
    pub async fn next(&mut self) -> Result<String> {
        let notification = self.inner.recv().await?;
        Ok(notification.payload().to_owned())
    }
}

impl Store {
    /// Announces to every listening instance that deliveries were queued, under the
    /// id `from` (the announcer's own, so that it can tell its echo). Does nothing on
    /// SQLite.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the statement fails.
    pub async fn announce_queued(&self, from: &str) -> Result<()> {
        if self.backend() != Backend::Postgres {
            return Ok(());
        }
        // pg_notify takes parameters where NOTIFY does not; its result (void) stays
        // in the sub-select, out of the Any driver's way.
        sqlx::query("SELECT 1 FROM (SELECT pg_notify($1, $2)) AS announced")
            .bind(CHANNEL)
            .bind(from)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Starts listening for announcements, on a connection of its own; `None` on
    /// SQLite.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the database cannot be reached.
    pub async fn queue_listener(&self) -> Result<Option<QueueListener>> {
        if self.backend() != Backend::Postgres {
            return Ok(None);
        }
        let mut inner = PgListener::connect(&self.url).await?;
        inner.listen(CHANNEL).await?;
        Ok(Some(QueueListener { inner }))
    }
}
