//! A failed COMMIT must not poison the connection pool: every later acknowledged
//! write must really be committed, as seen from another connection.
//!
//! A deferred foreign-key violation makes `COMMIT` itself fail on both databases
//! (SQLite then keeps the transaction open, as after a full disk). Before the write
//! guard, sqlx returned such a connection to the pool still inside its transaction,
//! and later writes on it were never committed although they reported success.

use maskrelay_schema::{SecretKey, Store};
use maskrelay_tests::db::TestDb;
use maskrelay_tests::{Backend, both_backends};

/// Makes one transaction whose COMMIT fails.
async fn failing_commit(store: &Store) -> anyhow::Result<()> {
    let mut tx = store.begin_write().await?;
    sqlx::query(
        "CREATE TEMPORARY TABLE doomed (id BIGINT PRIMARY KEY, \
         parent BIGINT REFERENCES doomed (id) DEFERRABLE INITIALLY DEFERRED)",
    )
    .execute(tx.connection())
    .await?;
    sqlx::query("INSERT INTO doomed (id, parent) VALUES (1, 2)")
        .execute(tx.connection())
        .await?;
    let committed = tx.commit().await;
    anyhow::ensure!(
        committed.is_err(),
        "COMMIT of a deferred foreign-key violation succeeded"
    );
    Ok(())
}

async fn writes_after_a_failed_commit_are_really_committed(backend: Backend) -> anyhow::Result<()> {
    let db = TestDb::new(backend).await?;
    let key = SecretKey::generate()?;
    let store = db.store(&key).await?;
    failing_commit(&store).await?;
    // More writes than the pool has connections, each acknowledged by Ok.
    let mut ids = Vec::new();
    for i in 0..12 {
        let (org, _) = store.create_org(&format!("Org {i}")).await?;
        let (member, _) = store
            .upsert_member(&org.id, &"m".into(), &member_input(i))
            .await?;
        ids.push((org.id, member.id));
    }
    // Another process's view: a store of its own on the same database.
    let other = db.store(&key).await?;
    for (org_id, member_id) in &ids {
        assert!(
            other.org(org_id).await?.is_some(),
            "organisation {org_id} was acknowledged but is not committed"
        );
        assert!(
            other.member(member_id).await?.is_some(),
            "member {member_id} was acknowledged but is not committed"
        );
    }
    // And a second failure in a row changes nothing.
    failing_commit(&store).await?;
    let (org, _) = store.create_org("After").await?;
    assert!(other.org(&org.id).await?.is_some());
    store.close().await;
    other.close().await;
    Ok(())
}

fn member_input(i: usize) -> maskrelay_schema::members::MemberInput {
    maskrelay_schema::members::MemberInput {
        email: format!("member{i}@example.com"),
        other_emails: Vec::new(),
        accepts_messages: true,
        name: format!("Member {i}"),
        status: maskrelay_schema::members::MemberStatus::Active,
        attributes: serde_json::json!({}),
    }
}

both_backends!(writes_after_a_failed_commit_are_really_committed);
