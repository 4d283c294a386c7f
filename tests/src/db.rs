//! A database of its own for each test: a SQLite file in a temporary folder, or a
//! new PostgreSQL database dropped when the test ends.

use std::path::PathBuf;

use sqlx::Connection;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite file.
    Sqlite,
    /// PostgreSQL from `MASKRELAY_TEST_POSTGRES_URL`.
    Postgres,
}

/// A database that exists for one test.
pub struct TestDb {
    /// URL to give the gateway.
    pub url: String,
    /// Folder for the SQLite file, key file and anything else of the test.
    pub dir: PathBuf,
    admin_url: Option<String>,
    name: String,
}

/// A random lower-case name, for databases and folders.
pub fn unique(prefix: &str) -> String {
    let mut bytes = [0u8; 8];
    // A failing system RNG would make every test fail loudly, not silently.
    getrandom::fill(&mut bytes).unwrap_or_else(|e| panic!("random: {e}"));
    format!("{prefix}_{}", hex::encode(bytes))
}

impl TestDb {
    /// A store of its own on this database, migrated: what another process (or a
    /// restarted one) holding `key` sees.
    ///
    /// # Errors
    /// If the database cannot be reached or migrated.
    pub async fn store(
        &self,
        key: &maskrelay_schema::SecretKey,
    ) -> anyhow::Result<maskrelay_schema::Store> {
        let store =
            maskrelay_schema::Store::connect(&self.url, maskrelay_schema::Crypto::new(key)).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Creates the database.
    ///
    /// # Errors
    /// If PostgreSQL is unreachable or the folder cannot be made.
    pub async fn new(backend: Backend) -> anyhow::Result<Self> {
        let name = unique("maskrelay_test");
        let dir = std::env::temp_dir().join(&name);
        std::fs::create_dir_all(&dir)?;
        match backend {
            Backend::Sqlite => Ok(Self {
                url: format!("sqlite://{}", dir.join("maskrelay.db").display()),
                dir,
                admin_url: None,
                name,
            }),
            Backend::Postgres => {
                let admin_url = std::env::var("MASKRELAY_TEST_POSTGRES_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
                let mut conn = sqlx::PgConnection::connect(&admin_url).await.map_err(|e| {
                    anyhow::anyhow!("PostgreSQL at MASKRELAY_TEST_POSTGRES_URL is unreachable: {e}")
                })?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut conn)
                    .await?;
                conn.close().await?;
                let base = admin_url
                    .rsplit_once('/')
                    .map(|(b, _)| b)
                    .unwrap_or(&admin_url);
                Ok(Self {
                    url: format!("{base}/{name}"),
                    dir,
                    admin_url: Some(admin_url),
                    name,
                })
            }
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(admin_url) = self.admin_url.take() {
            let name = self.name.clone();
            // Drop cannot await; a short-lived runtime on its own thread does the work.
            let _ = std::thread::spawn(move || {
                let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                else {
                    return;
                };
                rt.block_on(async move {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&admin_url).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await;
                    }
                });
            })
            .join();
        }
    }
}
