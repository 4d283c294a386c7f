//! One delivery status from the attempt to the API: `GET /v1/messages/{id}` and the
//! message's entry in `GET /v1/conversations/{id}` say the same thing in every
//! state a delivery can be in. (A retried delivery was once `deferred` in the
//! first and `queued` in the second.)

use std::time::Duration;

use maskrelay_schema::{DeliveryStatus, MessageId};
use maskrelay_tests::db::{TestDb, unique};
use maskrelay_tests::gateway::{TestGateway, send_mail_to, test_config};
use maskrelay_tests::mail::delivery_report;
use maskrelay_tests::smarthost::{Delivered, Smarthost};
use maskrelay_tests::{Backend, both_backends};
use reqwest::Method;

const WAIT: Duration = Duration::from_secs(10);
const SAM: &str = "sam@example.net";

/// Both views of a message's delivery status: the message's own, and its line in
/// its conversation.
async fn statuses(gw: &TestGateway, message: &str) -> anyhow::Result<(String, String)> {
    let (status, own) = gw
        .call(Method::GET, &format!("/v1/messages/{message}"), None)
        .await?;
    anyhow::ensure!(status == 200, "{own}");
    let conversation = own["conversation_id"].as_str().unwrap_or_default();
    let (status, listed) = gw
        .call(
            Method::GET,
            &format!("/v1/conversations/{conversation}"),
            None,
        )
        .await?;
    anyhow::ensure!(status == 200, "{listed}");
    let line = listed["messages"]
        .as_array()
        .and_then(|all| all.iter().find(|m| m["id"] == message))
        .ok_or_else(|| anyhow::anyhow!("{message} is not listed in {listed}"))?;
    Ok((
        own["status"].as_str().unwrap_or("none").to_owned(),
        line["status"].as_str().unwrap_or("none").to_owned(),
    ))
}

/// Asserts that both views say `want`.
async fn both_say(gw: &TestGateway, message: &str, want: DeliveryStatus) -> anyhow::Result<()> {
    let (own, listed) = statuses(gw, message).await?;
    assert_eq!(
        (own.as_str(), listed.as_str()),
        (want.as_str(), want.as_str()),
        "GET /v1/messages/{message} says {own}, its conversation says {listed}"
    );
    Ok(())
}

/// Alice writes to `to`; the message's id.
async fn alice_writes(gw: &TestGateway, to: &str, text: &str) -> anyhow::Result<String> {
    let (status, body) = gw.message("alice", to, "Hello", text).await?;
    anyhow::ensure!(status == 202, "{body}");
    Ok(body["message_id"].as_str().unwrap_or_default().to_owned())
}

/// Alice writes to `to` and the smarthost takes it; the id and what it got.
async fn delivered(
    gw: &TestGateway,
    sink: &Smarthost,
    to: &str,
) -> anyhow::Result<(String, Delivered)> {
    let marker = unique("marker");
    let id = alice_writes(gw, to, &marker).await?;
    let got = sink.wait_containing(&marker, WAIT).await?;
    gw.wait_status(&id, "sent").await?;
    Ok((id, got))
}

async fn every_status_reads_the_same_in_both_views(backend: Backend) -> anyhow::Result<()> {
    // Held: the message waits for its first attempt.
    let db = TestDb::new(backend).await?;
    let config = test_config(&db, None)?;
    let gw = TestGateway::start_with(db, config).await?;
    for (id, email) in [
        ("alice", "alice@example.com"),
        ("quinn", "quinn@example.net"),
        ("fay", "fay@example.net"),
        ("sam", SAM),
    ] {
        gw.member(id, email, id).await?;
    }
    let queued = alice_writes(&gw, "quinn", "waiting").await?;
    both_say(&gw, &queued, DeliveryStatus::Queued).await?;

    // Delivering now, through a smarthost; a failed attempt waits an hour.
    let sink = Smarthost::start().await?;
    let gw = gw
        .restart(|config| {
            config.outbound.smarthost = Some(sink.url());
            config.outbound.hold = false;
            config.outbound.first_retry_secs = 3600;
        })
        .await?;
    gw.wait_status(&queued, "sent").await?;
    both_say(&gw, &queued, DeliveryStatus::Sent).await?;

    sink.fail_next("550 5.1.1 <fay@example.net>: no such user");
    let failed = alice_writes(&gw, "fay", "refused").await?;
    gw.wait_status(&failed, "failed").await?;
    both_say(&gw, &failed, DeliveryStatus::Failed).await?;

    // Sam: one message bounces later, one is deferred meanwhile and, retried after
    // the bounce suppressed Sam's address, is not sent.
    let (bounced, to_sam) = delivered(&gw, &sink, "sam").await?;
    sink.fail_next("451 4.3.0 greylisted, try again");
    let deferred = alice_writes(&gw, "sam", "later").await?;
    gw.wait_status(&deferred, "deferred").await?;
    both_say(&gw, &deferred, DeliveryStatus::Deferred).await?;

    let verp = to_sam.mail_from;
    let report = delivery_report(&verp, SAM, "5.1.1", "550 5.1.1 User unknown");
    send_mail_to(gw.smtp_addr(), None, &[&verp], report.as_bytes()).await?;
    gw.wait_status(&bounced, "bounced").await?;
    both_say(&gw, &bounced, DeliveryStatus::Bounced).await?;

    let store = &gw.running.store;
    let waiting = store
        .list_deliveries(Some(DeliveryStatus::Deferred), 10)
        .await?;
    let delivery = waiting
        .iter()
        .find(|d| d.message_id == MessageId::from(deferred.as_str()))
        .ok_or_else(|| anyhow::anyhow!("{deferred} is not deferred: {waiting:?}"))?;
    anyhow::ensure!(store.retry_now(&delivery.id).await?, "not pending");
    gw.wait_status(&deferred, "suppressed").await?;
    both_say(&gw, &deferred, DeliveryStatus::Suppressed).await?;
    gw.stop().await;
    Ok(())
}

both_backends!(every_status_reads_the_same_in_both_views);
