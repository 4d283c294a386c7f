//! Logs never hold an address, a subject or a body: the whole round trip, with its
//! refusals, automatic replies, failures and an erasure, runs with debug logging of
//! every crate in the process, and the captured output is searched for them.
//!
//! Its own test binary, because the log subscriber is global to the process. The
//! test's own clients (lettre, reqwest) are left out of the capture: they are not the
//! gateway, and lettre logs its SMTP conversation at debug level.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use maskrelay_tests::Backend;
use maskrelay_tests::gateway::{TestGateway, send_mail, send_mail_to};
use maskrelay_tests::mail::{from_address, parse};
use maskrelay_tests::smarthost::Smarthost;
use reqwest::Method;
use serde_json::json;
use tracing_subscriber::EnvFilter;

const ALICE: &str = "alice.liddell@example.com";
const ALICE_WORK: &str = "a.liddell@work.example";
const BOB: &str = "bob.smith@example.net";
const MALLORY: &str = "mallory@evil.example";
const WAIT: Duration = Duration::from_secs(10);

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_of_a_whole_round_trip_hold_no_address_or_content() -> anyhow::Result<()> {
    let logs = Captured::default();
    let writer = logs.clone();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("debug,lettre=off,reqwest=off"))
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .init();

    let smarthost = Smarthost::start().await?;
    let gw = TestGateway::start(Backend::Sqlite, &smarthost).await?;
    gw.member_json(
        "alice",
        &json!({"email": ALICE, "name": "Alice Liddell", "other_emails": [ALICE_WORK]}),
    )
    .await?;
    gw.member("bob", BOB, "Bob Smith").await?;

    // Alice writes through the API; Bob answers by mail.
    let (status, created) = gw
        .message(
            "alice",
            "bob",
            "Subject-Marker",
            &format!("Body-Marker-1 {ALICE}"),
        )
        .await?;
    anyhow::ensure!(status == 202, "{created}");
    let first = smarthost.wait_for(1, WAIT).await?.remove(0);
    let alice_relay = from_address(&parse(&first.data)?);
    let reply = format!(
        "From: Bob Smith <{BOB}>\r\nTo: {alice_relay}\r\nSubject: Re: Subject-Marker\r\n\r\n\
         Body-Marker-2\r\nOn Tue, Alice <{ALICE}> wrote:\r\n> Body-Marker-1\r\n"
    );
    send_mail(gw.smtp_addr(), BOB, &alice_relay, reply.as_bytes()).await?;
    smarthost.wait_for(2, WAIT).await?;

    // Someone else tries the relay address; Bob's vacation notice arrives.
    let forged = reply.replace(BOB, MALLORY);
    let stranger = send_mail(gw.smtp_addr(), MALLORY, &alice_relay, forged.as_bytes()).await;
    anyhow::ensure!(stranger.is_err(), "a stranger was let through");
    let vacation = format!(
        "From: {BOB}\r\nAuto-Submitted: auto-replied\r\nSubject: Away\r\n\r\nBody-Marker-3\r\n"
    );
    send_mail_to(gw.smtp_addr(), None, &[&alice_relay], vacation.as_bytes()).await?;

    // A delivery fails with a reply that repeats the address, then Alice is erased.
    smarthost.fail_next("550 5.1.1 <alice.liddell@example.com>: no such user");
    send_mail(gw.smtp_addr(), BOB, &alice_relay, reply.as_bytes()).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _) = gw.call(Method::DELETE, "/v1/members/alice", None).await?;
    anyhow::ensure!(status == 204);
    gw.stop().await;

    let captured = logs.text();
    let lower = captured.to_lowercase();
    // The capture works and the gateway did log the round trip, with ids.
    for expected in [
        "message queued",
        "conversation_id=",
        "automatic message recorded",
        "reply refused",
        "member erased",
    ] {
        assert!(
            lower.contains(expected),
            "no {expected:?} in the logs:\n{captured}"
        );
    }
    for secret in [
        ALICE,
        ALICE_WORK,
        BOB,
        MALLORY,
        "alice.liddell",
        "bob.smith",
        "mallory",
        "Subject-Marker",
        "Body-Marker",
        "Alice Liddell",
        "Bob Smith",
    ] {
        assert!(
            !lower.contains(&secret.to_lowercase()),
            "{secret} is in the logs:\n{captured}"
        );
    }
    Ok(())
}
