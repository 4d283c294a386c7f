//! What maskrelay writes must not look like spam: every kind of message (a relayed
//! text message, one with HTML, a reply by mail, the writer's undeliverable notice)
//! scores below 1.0 in SpamAssassin run offline (`spamassassin -t -L`, Debian's
//! package; `.ci/run` installs it). Content, not storage: SQLite only.

use std::process::Stdio;
use std::time::Duration;

use maskrelay_tests::Backend;
use maskrelay_tests::gateway::{TestGateway, send_mail_to};
use maskrelay_tests::mail::{from_address, parse};
use maskrelay_tests::smarthost::Smarthost;
use tokio::io::AsyncWriteExt;

const WAIT: Duration = Duration::from_secs(10);
const MAX_SCORE: f64 = 1.0;

/// SpamAssassin's score of `message` and the rules that fired.
async fn score(message: &[u8]) -> anyhow::Result<(f64, String)> {
    let mut child = tokio::process::Command::new("spamassassin")
        .args(["-t", "-L"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| anyhow::anyhow!("spamassassin could not be started (install it): {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(message).await?;
    }
    let out = child.wait_with_output().await?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let score = text
        .lines()
        .find_map(|l| {
            let rest = l.trim_start().strip_prefix("X-Spam-Status:")?;
            let at = rest.find("score=")?;
            rest[at + 6..]
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .ok_or_else(|| anyhow::anyhow!("no X-Spam-Status in spamassassin's output:\n{text}"))?;
    let report = text
        .split("Content analysis details:")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    Ok((score, report))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_maskrelay_writes_looks_like_spam() -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    let gw = TestGateway::start(Backend::Sqlite, &sink).await?;
    gw.member("alice", "alice@example.com", "Alice Liddell")
        .await?;
    gw.member("bob", "bob@example.net", "Bob Smith").await?;
    gw.message(
        "alice",
        "bob",
        "Tennis on Saturday?",
        "Hi Bob,\n\nwould you like to play tennis on Saturday morning at the club? \
         The courts are free from nine.\n\nBest,\nAlice",
    )
    .await?;
    let (status, body) = gw
        .call(
            reqwest::Method::POST,
            "/v1/messages",
            Some(&serde_json::json!({
                "from": "alice", "to": "bob", "subject": "The booking",
                "text": "I booked court 2 for us.\n\nSee you there!",
                "html": "<p>I booked <b>court 2</b> for us.</p><p>See you there!</p>",
            })),
        )
        .await?;
    anyhow::ensure!(status == 202, "{body}");
    let first = sink.wait_for(2, WAIT).await?;
    let alice_relay = from_address(&parse(&first[0].data)?);
    let reply = format!(
        "From: Bob Smith <bob@example.net>\r\nTo: {alice_relay}\r\nSubject: Re: Tennis on Saturday?\r\n\
         Date: Tue, 3 Mar 2026 10:02:00 +0100\r\nMessage-ID: <r1@example.net>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nSaturday at nine works for me. Thanks!\r\n\r\nBob\r\n"
    );
    send_mail_to(
        gw.smtp_addr(),
        Some("bob@example.net"),
        &[&alice_relay],
        reply.as_bytes(),
    )
    .await?;
    let to_alice = sink.wait_containing("Saturday at nine", WAIT).await?;
    // The notice: the first message bounces.
    let verp = first[0].mail_from.clone();
    let dsn = format!(
        "From: MAILER-DAEMON@mx.example.net\r\nTo: {verp}\r\nSubject: Undelivered Mail\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; \
         boundary=r\r\n\r\n--r\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--r\r\n\
         Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n\
         Final-Recipient: rfc822; bob@example.net\r\nAction: failed\r\nStatus: 5.2.2\r\n\
         Diagnostic-Code: smtp; 552 5.2.2 Mailbox full\r\n--r--\r\n"
    );
    send_mail_to(gw.smtp_addr(), None, &[&verp], dsn.as_bytes()).await?;
    let notice = sink.wait_containing("could not be delivered", WAIT).await?;

    let mut worst = 0.0f64;
    for (what, message) in [
        ("relayed text", &first[0]),
        ("relayed text and HTML", &first[1]),
        ("reply by mail", &to_alice),
        ("undeliverable notice", &notice),
    ] {
        let (score, report) = score(&message.data).await?;
        println!("{what}: {score}");
        worst = worst.max(score);
        assert!(
            score < MAX_SCORE,
            "{what} scores {score}:\n{report}\n{}",
            message.text()
        );
    }
    println!("highest SpamAssassin score: {worst}");
    Ok(())
}
