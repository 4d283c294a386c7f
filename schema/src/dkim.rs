//! DKIM keys of the relay domain: made by `maskrelay dkim generate`, stored here
//! (private key encrypted) so that every instance sharing the database signs with
//! them, and retired by selector.

use sqlx::Row;

use crate::clock::now_ms;
use crate::db::Store;
use crate::error::{Result, StoreError};
use crate::group::Grouped;

const PRIVATE_KEY: &str = "dkim_keys.private_key";

/// A signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DkimAlgorithm {
    /// Ed25519-SHA256 (RFC 8463).
    Ed25519,
    /// RSA-SHA256 with a 2048-bit key.
    Rsa,
}

impl DkimAlgorithm {
    /// The name stored, accepted on the command line, and used in `k=`.
    pub fn as_str(self) -> &'static str {
        match self {
            DkimAlgorithm::Ed25519 => "ed25519",
            DkimAlgorithm::Rsa => "rsa",
        }
    }

    /// Parses [`DkimAlgorithm::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ed25519" => Some(DkimAlgorithm::Ed25519),
            "rsa" => Some(DkimAlgorithm::Rsa),
            _ => None,
        }
    }
}

/// One stored key.
#[derive(Clone)]
pub struct DkimKey {
    /// The selector (`s=`), unique.
    pub selector: String,
    /// Its algorithm.
    pub algorithm: DkimAlgorithm,
    /// PKCS#8 DER, decrypted.
    pub private_key: Vec<u8>,
    /// What `p=` publishes: the raw key for Ed25519, SubjectPublicKeyInfo for RSA.
    pub public_key: Vec<u8>,
    /// When it was made, Unix milliseconds.
    pub created_at: i64,
    /// When it was retired, if it was.
    pub retired_at: Option<i64>,
}

impl std::fmt::Debug for DkimKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkimKey")
            .field("selector", &self.selector)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Stores a new key; `false` if the selector is taken (retired or not).
    ///
    /// # Errors
    /// [`StoreError`] if the insert fails for another reason.
    pub async fn add_dkim_key(
        &self,
        selector: &str,
        algorithm: DkimAlgorithm,
        private_key: &[u8],
        public_key: &[u8],
    ) -> Result<bool> {
        let sealed = self.crypto.encrypt(PRIVATE_KEY, private_key)?;
        let inserted = sqlx::query(
            "INSERT INTO dkim_keys (selector, algorithm, private_key, public_key, created_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (selector) DO NOTHING",
        )
        .bind(selector)
        .bind(algorithm.as_str())
        .bind(sealed)
        .bind(public_key.to_vec())
        .bind(now_ms())
        .grouped(self)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Every key, oldest first; retired ones only with `include_retired`.
    ///
    /// # Errors
    /// [`StoreError`] if the query fails or a key does not decrypt.
    pub async fn dkim_keys(&self, include_retired: bool) -> Result<Vec<DkimKey>> {
        let rows = sqlx::query(
            "SELECT selector, algorithm, private_key, public_key, created_at, retired_at \
             FROM dkim_keys WHERE retired_at IS NULL OR $1 = 1 ORDER BY created_at, selector",
        )
        .bind(i64::from(include_retired))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let algorithm: String = row.try_get("algorithm")?;
                let sealed: Vec<u8> = row.try_get("private_key")?;
                Ok(DkimKey {
                    selector: row.try_get("selector")?,
                    algorithm: DkimAlgorithm::parse(&algorithm).ok_or_else(|| {
                        StoreError::Corrupt {
                            table: "dkim_keys",
                            detail: format!("unknown algorithm {algorithm:?}"),
                        }
                    })?,
                    private_key: self.crypto.decrypt(PRIVATE_KEY, &sealed)?,
                    public_key: row.try_get("public_key")?,
                    created_at: row.try_get("created_at")?,
                    retired_at: row.try_get("retired_at")?,
                })
            })
            .collect()
    }

    /// Retires a key: it signs no more and need not stay published. `false` if no
    /// key that is not already retired has this selector.
    ///
    /// # Errors
    /// [`StoreError`] if the update fails.
    pub async fn retire_dkim_key(&self, selector: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE dkim_keys SET retired_at = $1 WHERE selector = $2 AND retired_at IS NULL",
        )
        .bind(now_ms())
        .bind(selector)
        .grouped(self)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
