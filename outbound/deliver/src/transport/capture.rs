//! Delivery into a folder: each message becomes one `.eml` file, for development and
//! demonstrations where no real mail should leave the machine.

use std::path::{Path, PathBuf};

use maskrelay_schema::DeliveryId;

use crate::error::DeliveryError;

/// Writes `content` to `<dir>/<delivery_id>.eml`, atomically: a reader never sees a
/// half-written file, and a crash leaves either nothing or the whole message.
///
/// # Errors
/// [`DeliveryError::Temporary`] if the folder cannot be written.
pub async fn write(
    dir: &Path,
    delivery_id: &DeliveryId,
    content: &[u8],
) -> Result<PathBuf, DeliveryError> {
    let io = |e: std::io::Error| DeliveryError::Temporary(format!("capture folder: {}", e.kind()));
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    let final_path = dir.join(format!("{delivery_id}.eml"));
    let tmp_path = dir.join(format!(".{delivery_id}.eml.tmp"));
    let file = tokio::fs::File::create(&tmp_path).await.map_err(io)?;
    let mut file = tokio::io::BufWriter::new(file);
    tokio::io::AsyncWriteExt::write_all(&mut file, content)
        .await
        .map_err(io)?;
    tokio::io::AsyncWriteExt::flush(&mut file)
        .await
        .map_err(io)?;
    file.into_inner().sync_all().await.map_err(io)?;
    tokio::fs::rename(&tmp_path, &final_path)
        .await
        .map_err(io)?;
    Ok(final_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_one_complete_file_per_delivery() -> Result<(), Box<dyn std::error::Error>> {
        let dir = std::env::temp_dir().join(format!("maskrelay-capture-{}", std::process::id()));
        let path = write(&dir, &DeliveryId::from("d1"), b"Subject: x\r\n\r\nbody\r\n").await?;
        assert_eq!(std::fs::read(&path)?, b"Subject: x\r\n\r\nbody\r\n");
        let names: Vec<_> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("d1.eml")]);
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
