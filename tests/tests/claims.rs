//! Claiming deliveries: a claim takes at most as many as asked for, oldest first,
//! and no delivery twice while its lease runs.
//!
//! PostgreSQL once took more than asked: its `id IN (SELECT … LIMIT n FOR UPDATE
//! SKIP LOCKED)` could run the sub-select more than once within one `UPDATE`. The
//! worker, handed more deliveries than it had slots, read the batch as "not full"
//! and waited for its next poll instead of claiming again.

use std::collections::BTreeSet;

use maskrelay_tests::db::TestDb;
use maskrelay_tests::gateway::{TestGateway, test_config};
use maskrelay_tests::load::{ALICE, BOB};
use maskrelay_tests::{Backend, both_backends};

const QUEUED: usize = 60;
const LIMIT: i64 = 7;

async fn a_claim_takes_at_most_its_limit(backend: Backend) -> anyhow::Result<()> {
    let db = TestDb::new(backend).await?;
    // No smarthost: mail is held, so nothing but this test claims.
    let config = test_config(&db, None)?;
    let gw = TestGateway::start_with(db, config).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    for n in 0..QUEUED {
        let (status, body) = gw.message("alice", "bob", &format!("n{n}"), "hi").await?;
        anyhow::ensure!(status == 202, "POST /v1/messages: {status} {body}");
    }
    let store = &gw.running.store;
    let mut seen = BTreeSet::new();
    loop {
        let (claimed, unreadable) = store.claim_due("probe", 600_000, LIMIT).await?;
        assert!(unreadable.is_empty());
        assert!(
            claimed.len() <= LIMIT as usize,
            "asked for {LIMIT}, claimed {}",
            claimed.len()
        );
        if claimed.is_empty() {
            break;
        }
        for delivery in claimed {
            assert!(seen.insert(delivery.id), "a delivery was claimed twice");
        }
    }
    assert_eq!(seen.len(), QUEUED);
    Ok(())
}

both_backends!(a_claim_takes_at_most_its_limit);
