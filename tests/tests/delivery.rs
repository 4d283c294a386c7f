//! The delivery queue: retries, permanent failures, durability across a restart, and
//! what is left in the database.

use std::time::Duration;

use maskrelay_tests::db::TestDb;
use maskrelay_tests::gateway::{TestGateway, test_config};
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, both_backends};
use sqlx::{Connection, Row};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.net";
const WAIT: Duration = Duration::from_secs(10);

/// A gateway delivering to `sink`, with Alice and Bob; returns it and the id of a
/// message from Alice to Bob.
async fn one_message(backend: Backend, sink: &Smarthost) -> anyhow::Result<(TestGateway, String)> {
    let gw = TestGateway::start(backend, sink).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    let (status, created) = gw.message("alice", "bob", "Hi", "x").await?;
    anyhow::ensure!(status == 202, "{created}");
    let id = created["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    Ok((gw, id))
}

async fn temporary_failure_is_retried_until_delivered(backend: Backend) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    sink.fail_next("451 4.3.0 greylisted, try again");
    let (gw, id) = one_message(backend, &sink).await?;
    let state = gw.wait_status(&id, "sent").await?;
    assert_eq!(state["attempts"], 2, "{state}");
    assert_eq!(sink.delivered().len(), 1);
    gw.stop().await;
    Ok(())
}

async fn permanent_failure_is_not_retried(backend: Backend) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    sink.fail_next("550 5.1.1 <bob@example.net>: no such user");
    let (gw, id) = one_message(backend, &sink).await?;
    let state = gw.wait_status(&id, "failed").await?;
    assert_eq!(state["attempts"], 1, "{state}");
    // The remote text repeats the address; only the code is kept.
    assert_eq!(state["last_error"], "smtp 550 5.1.1", "{state}");
    // The writer is told (after the failure was recorded), and Bob got nothing:
    // the only message that went through is the notice to Alice.
    let notice = sink
        .wait_containing("could not be delivered", Duration::from_secs(10))
        .await?;
    assert_eq!(notice.rcpt_to, vec![ALICE.to_owned()]);
    assert_eq!(sink.delivered().len(), 1);
    let state = gw.wait_status(&id, "failed").await?;
    assert_eq!(state["attempts"], 1, "{state}");
    gw.stop().await;
    Ok(())
}

async fn unreachable_smarthost_is_retried(backend: Backend) -> anyhow::Result<()> {
    // A port with nothing listening: connection refused is temporary.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let closed_addr = closed.local_addr()?;
    drop(closed);
    let db = TestDb::new(backend).await?;
    let mut config = test_config(&db, None)?;
    config.outbound.smarthost = Some(format!("smtp://{closed_addr}"));
    config.outbound.hold = false;
    let gw = TestGateway::start_with(db, config).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    let (_, created) = gw.message("alice", "bob", "Hi", "x").await?;
    let id = created["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    for _ in 0..100 {
        let (_, state) = gw
            .call(reqwest::Method::GET, &format!("/v1/messages/{id}"), None)
            .await?;
        if state["attempts"].as_i64().unwrap_or(0) >= 1 {
            // Failed once, waiting for its next attempt.
            assert_eq!(state["status"], "deferred", "{state}");
            assert!(
                state["last_error"]
                    .as_str()
                    .unwrap_or_default()
                    .starts_with("connection"),
                "{state}"
            );
            gw.stop().await;
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("no delivery attempt was recorded")
}

async fn accepted_message_survives_a_restart(backend: Backend) -> anyhow::Result<()> {
    // First run: mail held, so the message can only be in the database.
    let db = TestDb::new(backend).await?;
    let config = test_config(&db, None)?;
    let gw = TestGateway::start_with(db, config).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    let (status, created) = gw
        .message("alice", "bob", "Durable", "still here after restart")
        .await?;
    assert_eq!(status, 202);
    let (db, mut config) = gw.stop().await;

    // Second run, same database and key, now with a smarthost.
    let sink = Smarthost::start().await?;
    config.outbound.smarthost = Some(sink.url());
    config.outbound.hold = false;
    let running = maskrelay::start(config).await?;
    let delivered = sink.wait_for(1, WAIT).await?;
    assert!(delivered[0].text().contains("still here after restart"));
    let id = created["message_id"].as_str().unwrap_or_default();
    wait_sent(&running.store, id).await?;
    running.shutdown().await;
    drop(db);
    Ok(())
}

async fn personal_data_is_encrypted_at_rest_and_content_wiped_after_delivery(
    backend: Backend,
) -> anyhow::Result<()> {
    let db = TestDb::new(backend).await?;
    let config = test_config(&db, None)?;
    let gw = TestGateway::start_with(db, config).await?;
    gw.member("alice", ALICE, "Alice Liddell").await?;
    gw.member("bob", BOB, "Bob").await?;
    let secret_text = "the-secret-body-text";
    let (_, created) = gw.message("alice", "bob", "Hi", secret_text).await?;
    let id = created["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let dump = dump_database(&gw.db.url).await?;
    for plain in [ALICE, BOB, "Alice Liddell", secret_text] {
        assert!(!dump.contains(plain), "{plain} is stored in plain text");
    }
    assert!(dump.contains(&id), "the dump must see the tables at all");
    let (db, mut config) = gw.stop().await;

    let sink = Smarthost::start().await?;
    config.outbound.smarthost = Some(sink.url());
    config.outbound.hold = false;
    let running = maskrelay::start(config).await?;
    sink.wait_for(1, WAIT).await?;
    wait_sent(&running.store, &id).await?;
    running.shutdown().await;
    let (content, recipient) = delivery_columns(&db.url, &id).await?;
    assert!(
        content.is_none() && recipient.is_none(),
        "content must be wiped once delivered"
    );
    Ok(())
}

/// Waits until the worker has recorded the delivery of `message_id` as sent.
async fn wait_sent(store: &maskrelay_schema::Store, message_id: &str) -> anyhow::Result<()> {
    for _ in 0..200 {
        let message = maskrelay_schema::MessageId::from(message_id);
        if store.delivery_state(&message).await?.map(|s| s.status)
            == Some(maskrelay_schema::DeliveryStatus::Sent)
        {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("delivery of {message_id} was never recorded as sent")
}

/// Every text and blob value of every application table, as lossy text.
async fn dump_database(url: &str) -> anyhow::Result<String> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let mut out = String::new();
    for table in [
        "organisations",
        "members",
        "conversations",
        "relay_addresses",
        "messages",
        "deliveries",
    ] {
        let sql = format!("SELECT * FROM {table}");
        for row in sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&mut conn)
            .await?
        {
            for i in 0..row.len() {
                if let Ok(Some(text)) = row.try_get::<Option<String>, _>(i) {
                    out.push_str(&text);
                } else if let Ok(Some(bytes)) = row.try_get::<Option<Vec<u8>>, _>(i) {
                    out.push_str(&String::from_utf8_lossy(&bytes));
                }
                out.push('\n');
            }
        }
    }
    conn.close().await?;
    Ok(out)
}

async fn delivery_columns(
    url: &str,
    message_id: &str,
) -> anyhow::Result<(Option<Vec<u8>>, Option<Vec<u8>>)> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let row =
        sqlx::query("SELECT content_enc, recipient_enc FROM deliveries WHERE message_id = $1")
            .bind(message_id)
            .fetch_one(&mut conn)
            .await?;
    let out = (row.try_get("content_enc")?, row.try_get("recipient_enc")?);
    conn.close().await?;
    Ok(out)
}

/// A delivery slower than its lease keeps it: another instance on the same database,
/// polling all the while, never starts a second attempt.
async fn a_slow_delivery_keeps_its_lease(backend: Backend) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    sink.slow_down(Duration::from_secs(5));
    let db = TestDb::new(backend).await?;
    let mut config = test_config(&db, Some(&sink))?;
    config.outbound.lease_secs = 3;
    config.instance_id = Some("first".into());
    let gw = TestGateway::start_with(db, config).await?;
    let mut second = gw.config.clone();
    second.instance_id = Some("second".into());
    let other = maskrelay::start(second).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    let (status, created) = gw.message("alice", "bob", "Hi", "x").await?;
    anyhow::ensure!(status == 202, "{created}");
    let id = created["message_id"].as_str().unwrap_or_default();
    sink.wait_for(1, Duration::from_secs(20)).await?;
    gw.wait_status(id, "sent").await?;
    assert_eq!(sink.transactions(), 1, "the delivery was attempted twice");
    other.shutdown().await;
    gw.stop().await;
    Ok(())
}

/// Alice's message number `n` to Bob, accepted; its id.
async fn alice_writes(gw: &TestGateway, n: usize) -> anyhow::Result<String> {
    let (status, created) = gw.message("alice", "bob", &format!("n{n}"), "x").await?;
    anyhow::ensure!(status == 202, "{created}");
    Ok(created["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

/// Messages in a row share one connection to the smarthost; one the smarthost has
/// closed meanwhile is replaced without a failed attempt.
async fn smarthost_connections_are_reused(backend: Backend) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    let db = TestDb::new(backend).await?;
    let mut config = test_config(&db, Some(&sink))?;
    config.outbound.concurrency = 1;
    let gw = TestGateway::start_with(db, config).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(alice_writes(&gw, i).await?);
    }
    sink.wait_for(3, WAIT).await?;
    assert_eq!(sink.connections(), 1, "three messages, one connection");

    sink.close_after_each_message();
    for i in 3..5 {
        ids.push(alice_writes(&gw, i).await?);
    }
    sink.wait_for(5, WAIT).await?;
    for id in &ids {
        let state = gw.wait_status(id, "sent").await?;
        assert_eq!(
            state["attempts"], 1,
            "a closed kept connection cost an attempt: {state}"
        );
    }
    assert_eq!(sink.transactions(), 5);
    gw.stop().await;
    Ok(())
}

/// A gateway sending to `sink` as `user:password`, with Alice and Bob.
async fn logging_in(
    backend: Backend,
    sink: &Smarthost,
    password: &str,
) -> anyhow::Result<TestGateway> {
    let db = TestDb::new(backend).await?;
    let mut config = test_config(&db, Some(sink))?;
    config.outbound.smarthost = Some(format!("smtp://relay:{password}@{}", sink.addr));
    let gw = TestGateway::start_with(db, config).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    Ok(gw)
}

/// The smarthost's login is used, and `MAIL`, `RCPT` and `DATA` go in one write
/// when it offers pipelining: this one answers them only together, so a client
/// waiting for each answer before the next command would wait for ever.
async fn smarthost_login_and_pipelining(backend: Backend) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    sink.require_login("relay", "s3cret");
    sink.answer_with_data();
    let gw = logging_in(backend, &sink, "s3cret").await?;
    let id = alice_writes(&gw, 0).await?;
    let state = gw.wait_status(&id, "sent").await?;
    assert_eq!(state["attempts"], 1, "{state}");
    assert_eq!(sink.logins(), ["relay"]);
    // A refusal of the envelope comes back with the DATA answer, and counts.
    sink.refuse_next_mail("451 4.3.2 not now");
    let id = alice_writes(&gw, 1).await?;
    let state = gw.wait_status(&id, "sent").await?;
    assert_eq!(state["attempts"], 2, "{state}");
    assert_eq!(sink.delivered().len(), 2);
    gw.stop().await;
    Ok(())
}

/// A wrong smarthost password sends nothing: the message waits to be tried again.
async fn a_refused_smarthost_login_defers(backend: Backend) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    sink.require_login("relay", "s3cret");
    let gw = logging_in(backend, &sink, "wrong").await?;
    let id = alice_writes(&gw, 0).await?;
    gw.wait_status(&id, "deferred").await?;
    assert!(sink.logins().is_empty());
    assert_eq!(sink.transactions(), 0);
    gw.stop().await;
    Ok(())
}

both_backends!(
    smarthost_login_and_pipelining,
    a_refused_smarthost_login_defers,
    smarthost_connections_are_reused,
    a_slow_delivery_keeps_its_lease,
    temporary_failure_is_retried_until_delivered,
    permanent_failure_is_not_retried,
    unreachable_smarthost_is_retried,
    accepted_message_survives_a_restart,
    personal_data_is_encrypted_at_rest_and_content_wiped_after_delivery,
);
