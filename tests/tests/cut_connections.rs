//! PostgreSQL connections cut while idle in the pool (a server restart, a proxy's
//! idle timeout) are found out and replaced before use: the next request is
//! answered as if nothing happened. Connections used within the last second are
//! not checked (that would cost a round trip to the server per query).

use std::time::Duration;

use maskrelay_tests::Backend;
use maskrelay_tests::db::TestDb;
use maskrelay_tests::gateway::{TestGateway, test_config};
use maskrelay_tests::load::{ALICE, BOB};
use sqlx::Connection;

/// Longer than the pool's one second before an idle connection is checked.
const IDLE: Duration = Duration::from_millis(1500);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pg_tests),
    ignore = "PostgreSQL half not run: set MASKRELAY_TEST_POSTGRES_URL"
)]
async fn connections_cut_while_idle_are_replaced() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Postgres).await?;
    let config = test_config(&db, None)?;
    let url = db.url.clone();
    let gw = TestGateway::start_with(db, config).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;

    let mut admin = sqlx::PgConnection::connect(&url).await?;
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .fetch_all(&mut admin)
    .await?;
    anyhow::ensure!(!cut.is_empty(), "the gateway held no connection to cut");
    admin.close().await?;

    // Precondition, not an outcome: the pool's connections have been idle long
    // enough to be checked.
    tokio::time::sleep(IDLE).await;
    for n in 0..3 {
        let (status, body) = gw.message("alice", "bob", &format!("n{n}"), "hi").await?;
        assert_eq!(status, 202, "after the cut, POST /v1/messages: {body}");
    }
    Ok(())
}
