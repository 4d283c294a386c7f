//! Deliveries finishing while a batch is being written are marked sent together:
//! one marker joins the group commit for all of them, and each is told the outcome
//! of the `COMMIT` that carried the mark.

use std::time::Duration;

use maskrelay_schema::{DeliveryId, DeliveryStatus, GroupTx, Store};
use maskrelay_tests::db::TestDb;
use maskrelay_tests::doomed::{doomed_write, probe_table};
use maskrelay_tests::gateway::{TestGateway, test_config};
use maskrelay_tests::load::{ALICE, BOB};
use maskrelay_tests::{Backend, both_backends};

const DELIVERIES: usize = 12;
const WAIT: Duration = Duration::from_secs(30);

/// A gateway holding its mail, with `DELIVERIES` deliveries claimed by this test.
async fn claimed(backend: Backend) -> anyhow::Result<(TestGateway, Vec<DeliveryId>)> {
    let db = TestDb::new(backend).await?;
    // No smarthost: mail is held, so nothing but this test claims or marks.
    let config = test_config(&db, None)?;
    let gw = TestGateway::start_with(db, config).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    for n in 0..DELIVERIES {
        let (status, body) = gw.message("alice", "bob", &format!("n{n}"), "hi").await?;
        anyhow::ensure!(status == 202, "POST /v1/messages: {status} {body}");
    }
    let (deliveries, _) = gw
        .running
        .store
        .claim_due("probe", 600_000, DELIVERIES as i64)
        .await?;
    anyhow::ensure!(
        deliveries.len() == DELIVERIES,
        "claimed {}",
        deliveries.len()
    );
    Ok((gw, deliveries.into_iter().map(|d| d.id).collect()))
}

/// Marks every delivery at once while the caller holds the batch; returns the
/// markers once all of them have joined the round waiting behind it.
async fn mark_behind(
    store: &Store,
    ids: &[DeliveryId],
) -> anyhow::Result<Vec<tokio::task::JoinHandle<maskrelay_schema::Result<()>>>> {
    let markers: Vec<_> = ids
        .iter()
        .map(|id| {
            let (store, id) = (store.clone(), id.clone());
            tokio::spawn(async move { store.mark_sent(&id).await })
        })
        .collect();
    let gathered = async {
        while store.marks_gathering() < ids.len() || store.writers_queued() < 1 {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, gathered).await.map_err(|_| {
        anyhow::anyhow!(
            "{} of {} marks gathered, {} writers queued",
            store.marks_gathering(),
            ids.len(),
            store.writers_queued()
        )
    })?;
    Ok(markers)
}

async fn sent(store: &Store) -> anyhow::Result<usize> {
    let list = store
        .list_deliveries(Some(DeliveryStatus::Sent), 1000)
        .await?;
    Ok(list.len())
}

async fn deliveries_finishing_together_are_marked_by_one_writer(
    backend: Backend,
) -> anyhow::Result<()> {
    let (gw, ids) = claimed(backend).await?;
    let store = gw.running.store.clone();
    let holder: GroupTx = store.begin_write().await?;
    let markers = mark_behind(&store, &ids).await?;
    // Twelve deliveries, one writer waiting for the batch: the marker of them all.
    assert_eq!(store.writers_queued(), 1);
    holder.commit().await?;
    for marker in markers {
        marker.await??;
    }
    assert_eq!(sent(&store).await?, DELIVERIES);
    Ok(())
}

/// When the batch carrying the round fails at `COMMIT`, every delivery in it is
/// told so and none is marked; marked again, all are.
async fn a_failed_commit_leaves_every_mark_of_its_round_undone(
    backend: Backend,
) -> anyhow::Result<()> {
    let (gw, ids) = claimed(backend).await?;
    let store = gw.running.store.clone();
    probe_table(&store).await?;
    let doomed = doomed_write(&store).await?;
    let markers = mark_behind(&store, &ids).await?;
    assert!(
        doomed.commit().await.is_err(),
        "a dangling reference committed"
    );
    for marker in markers {
        assert!(
            marker.await?.is_err(),
            "a mark carried by a failed COMMIT was told it is durable"
        );
    }
    assert_eq!(sent(&store).await?, 0);

    for id in &ids {
        store.mark_sent(id).await?;
    }
    assert_eq!(sent(&store).await?, DELIVERIES);
    Ok(())
}

both_backends!(
    deliveries_finishing_together_are_marked_by_one_writer,
    a_failed_commit_leaves_every_mark_of_its_round_undone,
);
