//! Connecting to SQLite or PostgreSQL, and migrating.
//!
//! Both databases are reached through sqlx's `Any` driver so that every query is
//! written once; the SQL sticks to what both dialects share. Each backend has its own
//! migration folder because column types differ (`BLOB` and `BYTEA`).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Connection, Executor};

use crate::crypto::Crypto;
use crate::error::{Result, StoreError};
use crate::group::Group;
use crate::messages::QueuedMessage;
use crate::rounds::Rounds;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server, possibly shared by several instances.
    Postgres,
}

impl Backend {
    /// Picks the backend from a database URL.
    ///
    /// # Errors
    /// [`StoreError::UnsupportedUrl`] for any other scheme.
    pub fn from_url(url: &str) -> Result<Self> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            Err(StoreError::UnsupportedUrl(redact_url(url)))
        }
    }
}

/// The columns `$first, $rest…` of the table aliased (or named) `$t`, each selected
/// as `$t_column`, so that one list serves queries of the table alone and joins of
/// it with others; a macro so that queries stay `&'static str`.
macro_rules! columns_as {
    ($t:literal; $first:literal $(, $rest:literal)* $(,)?) => {
        concat!(
            $t, ".", $first, " AS ", $t, "_", $first
            $(, ", ", $t, ".", $rest, " AS ", $t, "_", $rest)*
        )
    };
}
pub(crate) use columns_as;

/// A pooled PostgreSQL connection idle for longer than this is checked before use.
const CHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// The store: a connection pool and the keys that protect personal data.
#[derive(Clone)]
pub struct Store {
    pub(crate) pool: AnyPool,
    pub(crate) crypto: Crypto,
    pub(crate) group: Arc<Group>,
    /// Deliveries waiting for a round that marks them sent.
    pub(crate) sent: Arc<Rounds<String>>,
    /// Messages waiting for a round that stores them.
    pub(crate) arrivals: Arc<Rounds<QueuedMessage>>,
    backend: Backend,
    /// Where the database is, for connections outside the pool (a listener).
    pub(crate) url: Arc<str>,
}

impl Store {
    /// Signs a link payload (see [`Crypto::sign_link`]).
    pub fn sign_link(&self, payload: &str) -> String {
        self.crypto.sign_link(payload)
    }

    /// The VERP envelope sender's local part for a delivery (see
    /// [`Crypto::verp_local`]).
    pub fn verp_local(&self, delivery_id: &str) -> String {
        self.crypto.verp_local(delivery_id)
    }

    /// The delivery a VERP local part names, if its MAC is right (see
    /// [`Crypto::verify_verp`]).
    pub fn verify_verp(&self, local: &str) -> Option<String> {
        self.crypto.verify_verp(local)
    }

    /// Verifies a link token (see [`Crypto::verify_link`]).
    pub fn verify_link<'a>(&self, token: &'a str) -> Option<&'a str> {
        self.crypto.verify_link(token)
    }

    /// Connects to the database named by `url`.
    ///
    /// A SQLite file is created if missing and switched to write-ahead logging with
    /// full synchronisation, so that a committed row survives a crash.
    ///
    /// # Errors
    /// [`StoreError::UnsupportedUrl`] for an unknown scheme, [`StoreError::Database`]
    /// if the database cannot be reached.
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
            pool,
            crypto,
            group: Arc::new(Group::start()),
            sent: Arc::default(),
            arrivals: Arc::default(),
            backend,
            url: Arc::from(url),
        })
    }

    /// Applies every pending migration of this backend.
    ///
    /// # Errors
    /// [`StoreError::Migrate`] if a migration fails or the applied history diverges.
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
    /// [`StoreError::Database`] if it does not.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection; waits for those in use to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A database URL with any password replaced, fit for error messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
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

    #[test]
    fn backend_follows_the_url_scheme() {
        assert_eq!(
            Backend::from_url("sqlite://x.db").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(
            Backend::from_url("postgres://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(Backend::from_url("mysql://h/db").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact_url("sqlite://x.db"), "sqlite://x.db");
    }
}
