//! The secret key: from configuration, or from a file created on first start.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use maskrelay_schema::SecretKey;

use crate::config::Config;

/// The key file's default place: beside a SQLite database file, else the working
/// directory.
pub fn default_path(database_url: &str) -> PathBuf {
    let file = database_url
        .strip_prefix("sqlite://")
        .or_else(|| database_url.strip_prefix("sqlite:"))
        .map(|rest| rest.split('?').next().unwrap_or(rest));
    match file.map(Path::new).and_then(Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => dir.join("maskrelay.key"),
        _ => PathBuf::from("maskrelay.key"),
    }
}

/// The key named by the configuration, creating the key file if needed.
///
/// # Errors
/// If the configured key is malformed or the file cannot be read or created.
pub fn load(config: &Config) -> anyhow::Result<SecretKey> {
    if let Some(hex) = &config.secret_key {
        return SecretKey::from_hex(hex).context("secret_key");
    }
    let path = config
        .secret_key_file
        .clone()
        .unwrap_or_else(|| default_path(&config.database_url));
    load_or_create(&path)
}

fn load_or_create(path: &Path) -> anyhow::Result<SecretKey> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            SecretKey::from_hex(&text).with_context(|| format!("key file {}", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretKey::generate()?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(path)
                .with_context(|| format!("cannot create key file {}", path.display()))?;
            writeln!(file, "{}", key.to_hex())?;
            file.sync_all()?;
            tracing::warn!(path = %path.display(), "created a new secret key file: back it up, stored data is unreadable without it");
            Ok(key)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read key file {}", path.display())),
    }
}

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    if let Ok(meta) = std::fs::metadata(path) {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the secret key file is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_sits_beside_the_sqlite_database() {
        assert_eq!(
            default_path("sqlite://data/m.db"),
            PathBuf::from("data/maskrelay.key")
        );
        assert_eq!(
            default_path("sqlite://m.db?mode=rwc"),
            PathBuf::from("maskrelay.key")
        );
        assert_eq!(
            default_path("postgres://h/db"),
            PathBuf::from("maskrelay.key")
        );
    }

    #[test]
    fn a_created_key_is_private_and_read_back() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("maskrelay-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("maskrelay.key");
        let _ = std::fs::remove_file(&path);
        let first = load_or_create(&path)?;
        let again = load_or_create(&path)?;
        assert_eq!(first.to_hex(), again.to_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path)?.permissions().mode() & 0o777,
                0o600
            );
        }
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
