//! The batch transaction under [`crate::group`], behind every acknowledgement: it
//! either really committed, or its connection is thrown away.
//!
//! sqlx's own `Transaction` counts nesting per connection and lowers the count only
//! when `COMMIT` or `ROLLBACK` succeeds. When SQLite's `COMMIT` fails (a full disk:
//! SQLite has already rolled back by itself, so the `ROLLBACK` that follows fails
//! too), the connection went back to the pool believing it was still inside a
//! transaction; its later "transactions" became savepoints inside one that was never
//! committed, holding the write lock, while callers answered `250`. Here the
//! statements are issued by hand and a connection goes back to the pool only after a
//! `COMMIT` that succeeded; on any other path it is closed, which makes
//! the database roll back whatever it had begun.
//!
//! On SQLite the transaction starts with `BEGIN IMMEDIATE`: it takes the write lock at
//! once (waiting under `busy_timeout`, instead of failing later when a read lock
//! cannot be upgraded), and it fails if the connection is somehow already inside a
//! transaction, so a successful `BEGIN IMMEDIATE` … `COMMIT` is a top-level
//! transaction that committed. PostgreSQL turns the `COMMIT` of a transaction aborted
//! by an earlier error into a silent `ROLLBACK`; a query in an aborted transaction
//! fails, so `WriteTx::commit` asks one first.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Executor};

use crate::backend::Backend;
use crate::error::{Result, StoreError};

/// An open write transaction. Dropping it without [`commit`](Self::commit) closes its
/// connection (the database rolls back).
pub(crate) struct WriteTx {
    conn: PoolConnection<Any>,
    backend: Backend,
    ended: bool,
}

impl WriteTx {
    /// Starts a transaction of its own on a connection of `pool` (the batch of
    /// [`crate::group`]).
    ///
    /// # Errors
    /// [`StoreError::Database`] if no connection is available or `BEGIN` fails (on
    /// SQLite also when another writer holds the lock past `busy_timeout`).
    pub(crate) async fn begin(pool: &AnyPool, backend: Backend) -> Result<WriteTx> {
        let mut conn = pool.acquire().await?;
        let begin = match backend {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        };
        if let Err(e) = conn.execute(begin).await {
            conn.close_on_drop();
            return Err(e.into());
        }
        Ok(WriteTx {
            conn,
            backend,
            ended: false,
        })
    }

    /// Commits. `Ok` means the transaction is durable (SQLite `synchronous=FULL`,
    /// PostgreSQL's own commit); on `Err` nothing of it is stored and the connection
    /// is closed.
    ///
    /// # Errors
    /// [`StoreError::CommitFailed`] with the database's reason.
    pub(crate) async fn commit(mut self) -> Result<()> {
        if self.backend == Backend::Postgres
            && let Err(e) = self.conn.execute("SELECT 1").await
        {
            return Err(StoreError::CommitFailed(e.to_string()));
        }
        match self.conn.execute("COMMIT").await {
            Ok(_) => {
                self.ended = true;
                Ok(())
            }
            Err(e) => Err(StoreError::CommitFailed(e.to_string())),
        }
    }
}

impl Deref for WriteTx {
    type Target = AnyConnection;

    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if !self.ended {
            // Whatever transaction the connection may still be in dies with it.
            tracing::debug!("closing a database connection whose transaction did not end cleanly");
            self.conn.close_on_drop();
        }
    }
}
