//! Writes whose `COMMIT` fails, for tests of what a failed batch does to the others
//! in it.

use maskrelay_schema::{GroupTx, Store};

/// Makes a scratch table `probe (id, parent)` with a deferred self-reference: a row
/// naming a missing parent is accepted by its statement and refused by `COMMIT`.
///
/// # Errors
/// If the table cannot be made.
pub async fn probe_table(store: &Store) -> anyhow::Result<()> {
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "CREATE TABLE probe (id BIGINT PRIMARY KEY, \
         parent BIGINT REFERENCES probe (id) DEFERRABLE INITIALLY DEFERRED)",
    )
    .execute(tx.connection())
    .await?;
    tx.commit().await?;
    Ok(())
}

/// A write holding the batch whose `COMMIT` will fail: a row of [`probe_table`]
/// naming a missing parent.
///
/// # Errors
/// If the row cannot be written.
pub async fn doomed_write(store: &Store) -> anyhow::Result<GroupTx> {
    let mut doomed = store.begin_write().await?;
    sqlx::query("INSERT INTO probe (id, parent) VALUES (1, 999)")
        .execute(doomed.connection())
        .await?;
    Ok(doomed)
}
