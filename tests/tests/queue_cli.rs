//! `maskrelay queue list|show|retry|cancel` against the gateway's own database, as
//! an operator runs it: deferred deliveries are shown (never their recipient or
//! content), retried at once, or cancelled; one whose recipient bounced for good
//! meanwhile is not sent but recorded as `suppressed`.

use std::time::Duration;

use maskrelay_tests::db::TestDb;
use maskrelay_tests::gateway::{TestGateway, send_mail_to, test_config};
use maskrelay_tests::gateway_binary;
use maskrelay_tests::process::run_cli;
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, both_backends};

const WAIT: Duration = Duration::from_secs(10);
const BOB: &str = "bob@example.net";

/// Alice writes to Bob and the smarthost defers it; returns the message id and the
/// delivery id `queue list` shows for it.
async fn deferred(gw: &TestGateway, sink: &Smarthost) -> anyhow::Result<(String, String)> {
    sink.fail_next("451 4.3.0 greylisted, try again");
    let (status, body) = gw.message("alice", "bob", "Tennis?", "Saturday?").await?;
    anyhow::ensure!(status == 202, "{body}");
    let message = body["message_id"].as_str().unwrap_or_default().to_owned();
    gw.wait_status(&message, "deferred").await?;
    let list = queue(gw, &["list", "--status", "deferred", "--limit", "1"]).await?;
    let delivery = list
        .lines()
        .nth(1)
        .and_then(|l| l.split('\t').next())
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(!delivery.is_empty(), "{list}");
    Ok((message, delivery))
}

async fn queue(gw: &TestGateway, args: &[&str]) -> anyhow::Result<String> {
    let mut all = vec!["queue"];
    all.extend_from_slice(args);
    run_cli(gateway_binary!(), &gw.config, &all).await
}

async fn operators_list_show_retry_and_cancel(backend: Backend) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    let db = TestDb::new(backend).await?;
    let mut config = test_config(&db, Some(&sink))?;
    // Deferred deliveries wait ten minutes unless an operator says otherwise.
    config.outbound.first_retry_secs = 600;
    let gw = TestGateway::start_with(db, config).await?;
    gw.member("alice", "alice@example.com", "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;

    let (first, delivery) = deferred(&gw, &sink).await?;
    let list = queue(&gw, &["list"]).await?;
    let line = list
        .lines()
        .find(|l| l.starts_with(&delivery))
        .unwrap_or_default();
    assert!(
        line.contains("\tdeferred\t1\t") && line.contains("451"),
        "{list}"
    );
    let shown = queue(&gw, &["show", &delivery]).await?;
    assert!(
        shown.contains(&format!("message:         {first}")) && shown.contains("deferred"),
        "{shown}"
    );
    for secret in [BOB, "alice@example.com", "Saturday", "Tennis"] {
        assert!(
            !list.contains(secret) && !shown.contains(secret),
            "{secret} shown"
        );
    }

    queue(&gw, &["retry", &delivery]).await?;
    let sent = sink.wait_for(1, WAIT).await?.remove(0);
    gw.wait_status(&first, "sent").await?;
    let again = queue(&gw, &["retry", &delivery]).await;
    let said = again.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(said.contains("is sent, not queued or deferred"), "{said}");

    let (second, delivery) = deferred(&gw, &sink).await?;
    queue(&gw, &["cancel", &delivery]).await?;
    gw.wait_status(&second, "cancelled").await?;
    let said = queue(&gw, &["cancel", &delivery])
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(said.contains("is cancelled"), "{said}");
    let said = queue(&gw, &["show", "nope"])
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(said.contains("no delivery \"nope\""), "{said}");
    let said = queue(&gw, &["list", "--status", "lost"])
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(said.contains("is not one of queued, deferred"), "{said}");

    // A third message waits; meanwhile the first one bounces for good. Retried, the
    // third is not sent: the store records it as suppressed.
    let (third, delivery) = deferred(&gw, &sink).await?;
    let dsn = format!(
        "From: MAILER-DAEMON@mx.example.net\r\nTo: {verp}\r\nSubject: Undelivered Mail\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; \
         boundary=r\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--r\r\n\
         Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n\
         Final-Recipient: rfc822; {BOB}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
         Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n--r--\r\n",
        verp = sent.mail_from
    );
    send_mail_to(gw.smtp_addr(), None, &[&sent.mail_from], dsn.as_bytes()).await?;
    queue(&gw, &["retry", &delivery]).await?;
    gw.wait_status(&third, "suppressed").await?;
    let to_bob = sink
        .delivered()
        .iter()
        .filter(|d| d.rcpt_to == [BOB.to_owned()])
        .count();
    assert_eq!(to_bob, 1, "a suppressed delivery was sent");
    Ok(())
}

both_backends!(operators_list_show_retry_and_cancel);
