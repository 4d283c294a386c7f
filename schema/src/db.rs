//! The store: connecting to SQLite or PostgreSQL, migrating, and what every query
//! module works through (the pool, the keys, the group commit and its rounds).
//!
//! Both databases are reached through sqlx's `Any` driver so that every query is
//! written once; the SQL sticks to what both dialects share. Each backend has its own
//! migration folder because column types differ (`BLOB` and `BYTEA`). The table
//! modules each add their queries to [`Store`] in an `impl` block of their own; this
//! module knows none of them.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Executor};

use crate::backend::Backend;
use crate::crypto::Crypto;
use crate::doorbell::Doorbell;
use crate::error::Result;
use crate::group::{Group, GroupTx};
use crate::ids::DeliveryId;
use crate::new_message::QueuedMessage;
use crate::rounds::Rounds;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// A pooled PostgreSQL connection idle for longer than this is checked before use.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// The store: a connection pool and the keys that protect personal data.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) crypto: Crypto,
    pub(crate) group: Arc<Group>,
    /// Deliveries waiting for a round that marks them sent.
    pub(crate) sent: Arc<Rounds<DeliveryId>>,
    /// Messages waiting for a round that stores them.
    pub(crate) arrivals: Arc<Rounds<QueuedMessage>>,
    /// Rung when deliveries are queued.
    pub(crate) doorbell: Arc<Doorbell>,
    backend: Backend,
    /// Where the database is, for connections outside the pool (a listener).
    pub(crate) url: Arc<str>,
}

impl AsRef<Group> for Store {
    fn as_ref(&self) -> &Group {
        &self.group
    }
}

impl Store {
    /// Connects to the database named by `url`.
    ///
    /// A SQLite file is created if missing and switched to write-ahead logging with
    /// full synchronisation, so that a committed row survives a crash.
    ///
    /// # Errors
    /// [`crate::StoreError::UnsupportedUrl`] for an unknown scheme,
    /// [`crate::StoreError::Database`] if the database cannot be reached.
    pub async fn connect(url: &str, crypto: Crypto) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url)?;
        let url = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}mode=rwc")
            }
            _ => url.to_owned(),
        };
        let options = AnyConnectOptions::from_str(&url)?;
        let mut pool = AnyPoolOptions::new()
            .max_connections(match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 10,
            })
            .acquire_timeout(Duration::from_secs(10))
            // sqlx's default pings every connection before each use: a round trip to
            // the connection's thread (SQLite) or to the server (PostgreSQL) per
            // query. A SQLite connection is a file handle in this process and cannot
            // be cut off while idle; PostgreSQL's are checked below.
            .test_before_acquire(false);
        if backend == Backend::Postgres {
            // A server restart or a proxy's timeout cuts idle connections. One used
            // within the last second is taken as alive (as HikariCP does); an older
            // one is pinged, and replaced if the ping fails.
            pool = pool.before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for < CHECK_IDLE_AFTER {
                        return Ok(true);
                    }
                    let alive = conn.ping().await.is_ok();
                    if !alive {
                        tracing::info!("an idle database connection was cut; opening another");
                    }
                    Ok(alive)
                })
            });
        }
        if backend == Backend::Sqlite {
            pool = pool.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers proceed during a write; FULL makes each commit
                    // durable before we acknowledge a message.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = FULL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    // Every commit invalidates the other connections' page caches;
                    // reading through a shared mapping instead of copying pages in
                    // again with pread() halved the SQLite threads' time under load.
                    conn.execute("PRAGMA mmap_size = 268435456").await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect_with(options).await?;
        Ok(Self {
            group: Arc::new(Group::start(pool.clone(), backend)),
            pool,
            crypto,
            sent: Arc::default(),
            arrivals: Arc::default(),
            doorbell: Arc::default(),
            backend,
            url: Arc::from(url),
        })
    }

    /// Applies every pending migration of this backend.
    ///
    /// # Errors
    /// [`crate::StoreError::Migrate`] if a migration fails or the applied history
    /// diverges.
    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator.run(&self.pool).await?;
        Ok(())
    }

    /// The backend this store runs on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The keys protecting personal data.
    pub fn crypto(&self) -> &Crypto {
        &self.crypto
    }

    /// Checks that the database answers.
    ///
    /// # Errors
    /// [`crate::StoreError::Database`] if it does not.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection; waits for those in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Starts a write: a share of the batch transaction of the group commit, under
    /// a savepoint of its own (see [`crate::group`]).
    ///
    /// # Errors
    /// [`crate::StoreError::Database`] if no connection is available or `BEGIN`
    /// fails (on SQLite also when a writer outside this store holds the lock past
    /// `busy_timeout`).
    pub async fn begin_write(&self) -> Result<GroupTx> {
        self.group.begin_write().await
    }

    /// How many writers are waiting to add their work to a batch transaction.
    pub fn writers_queued(&self) -> usize {
        self.group.writers_queued()
    }

    /// The VERP envelope sender's local part for a delivery (see
    /// [`Crypto::verp_local`]).
    pub fn verp_local(&self, delivery: &DeliveryId) -> String {
        self.crypto.verp_local(delivery.as_str())
    }

    /// The delivery a VERP local part names, if its MAC is right (see
    /// [`Crypto::verify_verp`]).
    pub fn verify_verp(&self, local: &str) -> Option<DeliveryId> {
        self.crypto.verify_verp(local).map(DeliveryId::from)
    }

    /// Deliveries were committed to the queue: wakes this instance's worker and has
    /// the other instances told (see [`crate::wakeup`]). Never waits.
    pub fn deliveries_queued(&self) {
        self.doorbell.worker.notify_one();
        self.doorbell.others.notify_one();
    }

    /// Wakes this instance's worker only (work another instance announced).
    pub fn wake_worker(&self) {
        self.doorbell.worker.notify_one();
    }

    /// Until this instance's worker is woken (a ring while nobody waited counts).
    pub async fn worker_woken(&self) {
        self.doorbell.worker.notified().await;
    }

    /// Until there is queued work to announce to the other instances.
    pub async fn announcement_due(&self) {
        self.doorbell.others.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The flags of `.cargo/config.toml` reached the SQLite we link: without them
    /// every allocation takes a global lock and bound LIMITs re-plan each statement.
    #[tokio::test]
    async fn sqlite_is_built_for_concurrent_connections() -> std::result::Result<(), sqlx::Error> {
        let mut conn = sqlx::SqliteConnection::connect("sqlite::memory:").await?;
        let options: Vec<String> = sqlx::query_scalar("PRAGMA compile_options")
            .fetch_all(&mut conn)
            .await?;
        for wanted in ["DEFAULT_MEMSTATUS=0", "ENABLE_QPSG"] {
            assert!(
                options.iter().any(|o| o == wanted),
                "SQLite was built without {wanted} (see .cargo/config.toml): {options:?}"
            );
        }
        Ok(())
    }
}
