//! Replies arriving while a batch is being written are stored together: one round
//! joins the group commit for all of them, and each session answers `250` only
//! after the `COMMIT` that carried its message (or a temporary failure if it
//! failed).

use std::net::SocketAddr;
use std::time::Duration;

use maskrelay_schema::{GroupTx, Store};
use maskrelay_tests::doomed::{doomed_write, probe_table};
use maskrelay_tests::gateway::{TestGateway, send_mail, smtp_refusal};
use maskrelay_tests::load::{BOB, open_conversation};
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, both_backends};

const REPLIES: usize = 12;
const WAIT: Duration = Duration::from_secs(30);

/// Bob's reply number `n` to the relay address `relay`.
fn reply(relay: &str, n: usize) -> String {
    format!(
        "From: Bob <{BOB}>\r\nTo: {relay}\r\nSubject: reply {n}\r\n\
         Message-ID: <reply-{n}@example.net>\r\n\r\nAnswer number {n}.\r\n"
    )
}

type Sessions = Vec<tokio::task::JoinHandle<anyhow::Result<()>>>;

/// Sends every reply at once while the caller holds the batch; returns the
/// sessions (each waiting for its answer to the end of `DATA`) once all of their
/// messages wait in one round behind the batch.
async fn reply_behind(store: &Store, smtp: SocketAddr, relay: &str) -> anyhow::Result<Sessions> {
    let sessions: Sessions = (0..REPLIES)
        .map(|n| {
            let raw = reply(relay, n);
            let relay = relay.to_owned();
            tokio::spawn(async move { send_mail(smtp, BOB, &relay, raw.as_bytes()).await })
        })
        .collect();
    let gathered = async {
        while store.arrivals_gathering() < REPLIES || store.writers_queued() < 1 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(WAIT, gathered).await.map_err(|_| {
        anyhow::anyhow!(
            "{} of {REPLIES} replies gathered, {} writers queued",
            store.arrivals_gathering(),
            store.writers_queued()
        )
    })?;
    Ok(sessions)
}

/// A gateway holding its mail (so that no delivery worker writes while a test
/// holds the batch), with a conversation between Alice and Bob opened through a
/// smarthost beforehand; and the relay address Bob answers to.
async fn held_gateway(backend: Backend) -> anyhow::Result<(TestGateway, String)> {
    let sink = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &sink).await?;
    let relay = open_conversation(&gw.api, &sink).await?;
    let (db, mut config) = gw.stop().await;
    config.outbound.smarthost = None;
    config.outbound.hold = true;
    Ok((TestGateway::start_with(db, config).await?, relay))
}

/// Every delivery the store holds: the opening message's and one per reply kept.
async fn deliveries(store: &Store) -> anyhow::Result<usize> {
    Ok(store.list_deliveries(None, 1000).await?.len())
}

async fn replies_arriving_together_are_stored_by_one_writer(
    backend: Backend,
) -> anyhow::Result<()> {
    let (gw, relay) = held_gateway(backend).await?;
    let store = gw.running.store.clone();
    let holder: GroupTx = store.begin_write().await?;
    let sessions = reply_behind(&store, gw.smtp_addr(), &relay).await?;
    // Twelve replies, one writer waiting for the batch: the round storing them all.
    assert_eq!(store.writers_queued(), 1);
    holder.commit().await?;
    for session in sessions {
        session.await??;
    }
    assert_eq!(deliveries(&store).await?, 1 + REPLIES);
    Ok(())
}

/// When the batch carrying the round fails at `COMMIT`, every session in it is
/// answered with a temporary failure and none of the replies is stored; sent
/// again, all are.
async fn a_failed_commit_refuses_every_reply_of_its_round(backend: Backend) -> anyhow::Result<()> {
    let (gw, relay) = held_gateway(backend).await?;
    let store = gw.running.store.clone();
    probe_table(&store).await?;
    let holder: GroupTx = store.begin_write().await?;
    let sessions = reply_behind(&store, gw.smtp_addr(), &relay).await?;
    // A write whose COMMIT fails, queued behind the round: whichever batch the
    // round joins, this write joins it too.
    let doomed = {
        let store = store.clone();
        tokio::spawn(async move {
            doomed_write(&store)
                .await?
                .commit()
                .await
                .map_err(anyhow::Error::from)
        })
    };
    let queued = async {
        while store.writers_queued() < 2 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(WAIT, queued).await?;
    // The holder's own work commits or fails depending on whether the committer
    // came before the round: either is right.
    let _ = holder.commit().await;
    assert!(doomed.await?.is_err(), "a dangling reference committed");
    for session in sessions {
        let answer = smtp_refusal(session.await?);
        assert!(
            answer.starts_with("451"),
            "a reply carried by a failed COMMIT was answered {answer}"
        );
    }
    assert_eq!(deliveries(&store).await?, 1);
    for n in 0..REPLIES {
        send_mail(gw.smtp_addr(), BOB, &relay, reply(&relay, n).as_bytes()).await?;
    }
    assert_eq!(deliveries(&store).await?, 1 + REPLIES);
    Ok(())
}

both_backends!(
    replies_arriving_together_are_stored_by_one_writer,
    a_failed_commit_refuses_every_reply_of_its_round,
);
