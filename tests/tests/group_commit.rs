//! Group commit: concurrent writes share one transaction and one commit, and a writer
//! is told its write is durable only when the commit carrying it succeeded.

use maskrelay_schema::{SecretKey, Store};
use maskrelay_tests::db::TestDb;
use maskrelay_tests::doomed::{doomed_write, probe_table};
use maskrelay_tests::{Backend, both_backends};

async fn insert(store: &Store, id: i64, parent: Option<i64>) -> anyhow::Result<()> {
    let mut tx = store.begin_write().await?;
    sqlx::query("INSERT INTO probe (id, parent) VALUES ($1, $2)")
        .bind(id)
        .bind(parent)
        .execute(tx.connection())
        .await?;
    tx.commit().await?;
    Ok(())
}

/// The ids committed, as another store (another process) sees them.
async fn committed(other: &Store) -> anyhow::Result<Vec<i64>> {
    let mut tx = other.begin_write().await?;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM probe ORDER BY id")
        .fetch_all(tx.connection())
        .await?;
    tx.rollback().await;
    Ok(ids)
}

/// Waits until `n` writers are queued behind the one holding the batch.
async fn until_queued(store: &Store, n: usize) {
    while store.writers_queued() < n {
        tokio::task::yield_now().await;
    }
}

/// Writers queued while another works join its batch: when that batch's COMMIT
/// fails, every one of them is told so and none of their rows exists; the next
/// batch commits normally.
async fn a_failed_commit_fails_every_write_in_its_batch(backend: Backend) -> anyhow::Result<()> {
    let db = TestDb::new(backend).await?;
    let key = SecretKey::generate()?;
    let store = db.store(&key).await?;
    let other = db.store(&key).await?;
    probe_table(&store).await?;

    let doomed = doomed_write(&store).await?;
    let joiners: Vec<_> = (10..15)
        .map(|id| {
            let store = store.clone();
            tokio::spawn(async move { insert(&store, id, None).await })
        })
        .collect();
    until_queued(&store, joiners.len()).await;
    assert!(
        doomed.commit().await.is_err(),
        "a COMMIT with a dangling deferred reference succeeded"
    );
    for joiner in joiners {
        assert!(
            joiner.await?.is_err(),
            "a write grouped with a failed COMMIT was told it is durable"
        );
    }
    assert_eq!(committed(&other).await?, Vec::<i64>::new());

    insert(&store, 20, None).await?;
    assert_eq!(committed(&other).await?, vec![20]);
    store.close().await;
    other.close().await;
    Ok(())
}

/// A writer that rolls back, fails a statement or is dropped mid-work (a cancelled
/// request) undoes only its own work; the others in the batch are committed.
async fn one_writer_undoing_leaves_the_rest_of_the_batch(backend: Backend) -> anyhow::Result<()> {
    let db = TestDb::new(backend).await?;
    let key = SecretKey::generate()?;
    let store = db.store(&key).await?;
    let other = db.store(&key).await?;
    probe_table(&store).await?;
    insert(&store, 1, None).await?;

    let mut first = store.begin_write().await?;
    sqlx::query("INSERT INTO probe (id) VALUES (2)")
        .execute(first.connection())
        .await?;
    let store2 = store.clone();
    let rolled_back = tokio::spawn(async move {
        let mut tx = store2.begin_write().await?;
        sqlx::query("INSERT INTO probe (id) VALUES (3)")
            .execute(tx.connection())
            .await?;
        tx.rollback().await;
        anyhow::Ok(())
    });
    let store3 = store.clone();
    let duplicate = tokio::spawn(async move {
        let mut tx = store3.begin_write().await?;
        sqlx::query("INSERT INTO probe (id) VALUES (4)")
            .execute(tx.connection())
            .await?;
        // Fails (id 1 exists); on PostgreSQL this aborts the transaction it runs in.
        let failed = sqlx::query("INSERT INTO probe (id) VALUES (1)")
            .execute(tx.connection())
            .await;
        anyhow::ensure!(failed.is_err(), "a duplicate key was inserted");
        drop(tx);
        anyhow::Ok(())
    });
    let store4 = store.clone();
    let after = tokio::spawn(async move { insert(&store4, 5, None).await });
    until_queued(&store, 3).await;
    first.commit().await?;
    rolled_back.await??;
    duplicate.await??;
    after.await??;
    assert_eq!(committed(&other).await?, vec![1, 2, 5]);
    store.close().await;
    other.close().await;
    Ok(())
}

/// Many concurrent writers: every one told "durable" is committed.
async fn concurrent_writes_are_all_committed(backend: Backend) -> anyhow::Result<()> {
    let db = TestDb::new(backend).await?;
    let key = SecretKey::generate()?;
    let store = db.store(&key).await?;
    let other = db.store(&key).await?;
    probe_table(&store).await?;
    let writers: Vec<_> = (0..200)
        .map(|id| {
            let store = store.clone();
            tokio::spawn(async move { insert(&store, id, None).await })
        })
        .collect();
    for writer in writers {
        writer.await??;
    }
    assert_eq!(committed(&other).await?, (0..200).collect::<Vec<i64>>());
    store.close().await;
    other.close().await;
    Ok(())
}

both_backends!(
    a_failed_commit_fails_every_write_in_its_batch,
    one_writer_undoing_leaves_the_rest_of_the_batch,
    concurrent_writes_are_all_committed,
);
