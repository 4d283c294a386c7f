//! The store's error type.

use thiserror::Error;

/// Everything that can go wrong in the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The database refused or failed a query.
    #[error("database error: {0}")]
    Database(#[source] DriverError),

    /// `COMMIT` did not succeed: nothing of the transaction is stored.
    #[error("commit failed: {0}")]
    CommitFailed(String),

    /// Migrations could not be applied.
    #[error("migration failed: {0}")]
    Migrate(#[source] MigrationError),

    /// The database URL names a backend maskrelay does not support.
    #[error("unsupported database URL (expected sqlite:// or postgres://): {0}")]
    UnsupportedUrl(String),

    /// Ciphertext did not decrypt: wrong key, or the data was tampered with.
    #[error("could not decrypt {column}: wrong secret key or corrupted data")]
    Decrypt { column: &'static str },

    /// The secret key is malformed.
    #[error("invalid secret key: {0}")]
    InvalidKey(String),

    /// The operating system's random generator failed.
    #[error("random generator failed: {0}")]
    Random(String),

    /// A stored value is not what the schema promises.
    #[error("corrupt row in {table}: {detail}")]
    Corrupt { table: &'static str, detail: String },
}

/// What the database driver reported. Opaque: which driver the store uses is its
/// own business, and callers ask [`StoreError`] what it means for them.
#[derive(Debug, Error)]
#[error(transparent)]
pub struct DriverError(sqlx::Error);

/// Why migrations failed, as the driver's migrator reported it.
#[derive(Debug, Error)]
#[error(transparent)]
pub struct MigrationError(sqlx::migrate::MigrateError);

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(DriverError(e))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(MigrationError(e))
    }
}

impl StoreError {
    /// True when the database could not take the write for now (disk full, busy or
    /// locked past the timeout, I/O error, connection lost, commit failed): the same
    /// request may succeed later, and callers answer "try again" (SMTP `451`, HTTP
    /// `503`).
    pub fn is_unavailable(&self) -> bool {
        match self {
            StoreError::CommitFailed(_) => true,
            StoreError::Database(DriverError(e)) => match e {
                sqlx::Error::Io(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::PoolClosed
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(db) => db.code().is_some_and(|code| {
                    // SQLite primary result codes (the low byte of extended ones):
                    // BUSY 5, LOCKED 6, IOERR 10, FULL 13, CANTOPEN 14. PostgreSQL
                    // classes: 08 connection, 53 insufficient resources (disk full
                    // is 53100), 57 operator intervention (shutting down).
                    match code.parse::<u32>() {
                        Ok(n) => matches!(n & 0xff, 5 | 6 | 10 | 13 | 14),
                        Err(_) => ["08", "53", "57"].iter().any(|c| code.starts_with(c)),
                    }
                }),
                _ => false,
            },
            _ => false,
        }
    }

    /// True when a unique or primary-key constraint rejected the write.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            StoreError::Database(DriverError(sqlx::Error::Database(e))) => e.is_unique_violation(),
            _ => false,
        }
    }
}

/// Shorthand for results of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
