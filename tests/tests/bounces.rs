//! Bounces come back to the VERP envelope sender of the delivery that failed: the
//! listener checks its MAC, reads the report, marks the delivery `bounced`, and a
//! hard bounce stops all mail to that address (API and mail) until the directory
//! changes the member's email or lifts the suppression.

use std::time::Duration;

use maskrelay_tests::gateway::{TestGateway, send_mail_to, smtp_refusal};
use maskrelay_tests::mail::{delivery_report, from_address, parse};
use maskrelay_tests::smarthost::{Delivered, Smarthost};
use maskrelay_tests::{Backend, both_backends};
use reqwest::Method;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(10);
const BOB: &str = "bob@example.net";

/// A delivery status notification for `verp` about Bob, as Postfix writes one.
fn dsn(verp: &str, status: &str, diagnostic: &str) -> String {
    delivery_report(verp, BOB, status, diagnostic)
}

/// Alice writes to Bob; the message id and what the smarthost got (found by a
/// marker in the text: notices to Alice may arrive in between).
async fn alice_writes(gw: &TestGateway, sink: &Smarthost) -> anyhow::Result<(String, Delivered)> {
    let marker = maskrelay_tests::db::unique("saturday");
    let (status, body) = gw.message("alice", "bob", "Tennis?", &marker).await?;
    anyhow::ensure!(status == 202, "{body}");
    let id = body["message_id"].as_str().unwrap_or_default().to_owned();
    let delivered = sink.wait_containing(&marker, WAIT).await?;
    gw.wait_status(&id, "sent").await?;
    Ok((id, delivered))
}

/// A conversation's metadata, as the organisation's admins see it.
async fn conversation(gw: &TestGateway, id: &str) -> anyhow::Result<Value> {
    let (status, conv) = gw
        .call(Method::GET, &format!("/v1/conversations/{id}"), None)
        .await?;
    anyhow::ensure!(status == 200, "{conv}");
    Ok(conv)
}

/// How many notices a conversation has recorded.
async fn notices(gw: &TestGateway, id: &str) -> anyhow::Result<usize> {
    let conv = conversation(gw, id).await?;
    Ok(conv["messages"]
        .as_array()
        .map_or(0, |m| m.iter().filter(|m| m["origin"] == "notice").count()))
}

/// The null sender delivers `raw` to `to`; the final reply.
async fn report(gw: &TestGateway, to: &str, raw: &str) -> anyhow::Result<String> {
    send_mail_to(gw.smtp_addr(), None, &[to], raw.as_bytes()).await
}

async fn member(gw: &TestGateway, id: &str) -> anyhow::Result<Value> {
    let (status, body) = gw
        .call(Method::GET, &format!("/v1/members/{id}"), None)
        .await?;
    anyhow::ensure!(status == 200, "{body}");
    Ok(body)
}

async fn bounces_are_read_and_a_hard_one_stops_mail(backend: Backend) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &sink).await?;
    gw.member("alice", "alice@example.com", "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;

    let (first, to_bob) = alice_writes(&gw, &sink).await?;
    let verp = to_bob.mail_from.clone();
    assert!(
        verp.starts_with("b-") && verp.ends_with("@relay.test"),
        "{verp}"
    );
    // Bob answers, so that Alice has his relay address.
    let alice_relay = from_address(&parse(&to_bob.data)?);
    let reply = format!("From: {BOB}\r\nTo: {alice_relay}\r\nSubject: Re\r\n\r\nYes\r\n");
    send_mail_to(gw.smtp_addr(), Some(BOB), &[&alice_relay], reply.as_bytes()).await?;
    let bob_relay = from_address(&parse(&sink.wait_containing("Yes", WAIT).await?.data)?);

    // A forged or damaged VERP address is no address of ours.
    let (local, domain) = verp.split_once('@').unwrap_or_default();
    let forged = format!("{}0000000000000000@{domain}", &local[..local.len() - 16]);
    let refused = report(
        &gw,
        &forged,
        &dsn(&forged, "5.1.1", "550 5.1.1 User unknown"),
    )
    .await;
    let refusal = smtp_refusal(refused.map(|_| ()));
    assert!(
        refusal.starts_with("550") && refusal.contains("5.1.1"),
        "{refusal}"
    );

    // A vacation notice sent back to the envelope sender is not a bounce.
    let vacation = format!(
        "From: {BOB}\r\nTo: {verp}\r\nAuto-Submitted: auto-replied\r\nSubject: Out of office\r\n\r\nAway.\r\n"
    );
    report(&gw, &verp, &vacation).await?;
    let (_, state) = gw
        .call(Method::GET, &format!("/v1/messages/{first}"), None)
        .await?;
    assert_eq!(state["status"], "sent", "{state}");
    // A soft bounce: the delivery is `bounced`, the address stays usable.
    let answer = report(&gw, &verp, &dsn(&verp, "5.2.2", "552 5.2.2 Mailbox full")).await?;
    assert!(answer.contains("recorded"), "{answer}");
    let state = gw.wait_status(&first, "bounced").await?;
    assert!(
        state["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("mailboxfull") && e.contains("soft")),
        "{state}"
    );
    assert_eq!(member(&gw, "bob").await?["deliverable"], true);

    // Alice is told, from the relay domain, without a word of Bob's address, his
    // provider or what his server said.
    let notice = sink.wait_containing("could not be delivered", WAIT).await?;
    assert_eq!(notice.rcpt_to, vec!["alice@example.com".to_owned()]);
    let text = notice.text();
    for secret in [
        BOB,
        "example.net",
        "mx.example.net",
        "Mailbox full",
        "5.2.2",
        "552",
    ] {
        assert!(!text.contains(secret), "{secret} in the notice:\n{text}");
    }
    for expected in [
        "Subject: Your message to Bob could not be delivered",
        "Auto-Submitted: auto-replied",
        "noreply@relay.test",
        "X-Loop: maskrelay@relay.test",
    ] {
        assert!(text.contains(expected), "{expected:?} missing:\n{text}");
    }
    let conversation = to_bob_conversation(&gw, &first).await?;
    assert_eq!(notices(&gw, &conversation).await?, 1);
    // A notice that bounces in turn tells nobody: no loop.
    let notice_verp = notice.mail_from.clone();
    report(
        &gw,
        &notice_verp,
        &dsn(&notice_verp, "5.1.1", "550 5.1.1 User unknown"),
    )
    .await?;
    assert_eq!(notices(&gw, &conversation).await?, 1);
    // That bounce suppressed Alice's address; the directory lifts it again.
    let (status, _) = gw
        .call(Method::DELETE, "/v1/members/alice/suppression", None)
        .await?;
    assert_eq!(status, 204);

    // A hard bounce suppresses Bob's address at once.
    let (second, to_bob) = alice_writes(&gw, &sink).await?;
    let verp = to_bob.mail_from;
    report(
        &gw,
        &verp,
        &dsn(&verp, "5.1.1", "550 5.1.1 <bob@example.net>: User unknown"),
    )
    .await?;
    gw.wait_status(&second, "bounced").await?;
    let bob = member(&gw, "bob").await?;
    assert_eq!(
        (&bob["deliverable"], &bob["undeliverable_reason"]),
        (&json!(false), &json!("userunknown")),
        "{bob}"
    );
    let (status, body) = gw.message("alice", "bob", "again", "hello?").await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "recipient_unreachable", "{body}");
    let by_mail =
        format!("From: alice@example.com\r\nTo: {bob_relay}\r\nSubject: Re\r\n\r\nhello?\r\n");
    let refused = send_mail_to(
        gw.smtp_addr(),
        Some("alice@example.com"),
        &[&bob_relay],
        by_mail.as_bytes(),
    )
    .await;
    let refusal = smtp_refusal(refused.map(|_| ()));
    assert!(
        refusal.starts_with("550") && refusal.contains("cannot receive mail"),
        "{refusal}"
    );

    // The directory lifts it; mail flows again, and there is nothing more to lift.
    let path = "/v1/members/bob/suppression";
    let (status, _) = gw.call(Method::DELETE, path, None).await?;
    assert_eq!(status, 204);
    let (status, _) = gw.call(Method::DELETE, path, None).await?;
    assert_eq!(status, 404);
    assert_eq!(member(&gw, "bob").await?["deliverable"], true);
    let (_, to_bob) = alice_writes(&gw, &sink).await?;

    // Suppressed again (recorded before the 250), then a new address from the
    // directory is reachable at once.
    let verp = to_bob.mail_from;
    report(&gw, &verp, &dsn(&verp, "5.1.1", "550 5.1.1 User unknown")).await?;
    assert_eq!(member(&gw, "bob").await?["deliverable"], false);
    gw.member("bob", "bob.new@example.net", "Bob").await?;
    assert_eq!(member(&gw, "bob").await?["deliverable"], true);
    let (_, delivered) = alice_writes(&gw, &sink).await?;
    assert_eq!(delivered.rcpt_to, vec!["bob.new@example.net".to_owned()]);
    // Three bounces in this conversation today; one notice.
    assert_eq!(notices(&gw, &conversation).await?, 1);
    Ok(())
}

/// The conversation a message belongs to.
async fn to_bob_conversation(gw: &TestGateway, message_id: &str) -> anyhow::Result<String> {
    let (status, body) = gw
        .call(Method::GET, &format!("/v1/messages/{message_id}"), None)
        .await?;
    anyhow::ensure!(status == 200, "{body}");
    Ok(body["conversation_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

async fn repeated_soft_bounces_stop_mail_too(backend: Backend) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &sink).await?;
    gw.member("alice", "alice@example.com", "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    let limit = maskrelay_schema::suppressions::SOFT_BOUNCES_TO_SUPPRESS;
    for n in 1..=limit {
        assert_eq!(
            member(&gw, "bob").await?["deliverable"],
            true,
            "after {}",
            n - 1
        );
        let (id, delivered) = alice_writes(&gw, &sink).await?;
        let verp = delivered.mail_from;
        report(&gw, &verp, &dsn(&verp, "4.2.2", "452 4.2.2 Mailbox full")).await?;
        gw.wait_status(&id, "bounced").await?;
    }
    let bob = member(&gw, "bob").await?;
    assert_eq!(
        (&bob["deliverable"], &bob["undeliverable_reason"]),
        (&json!(false), &json!("mailboxfull (repeated)")),
        "{bob}"
    );
    Ok(())
}

async fn a_complaint_stops_mail_from_that_writer(backend: Backend) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &sink).await?;
    gw.member("alice", "alice@example.com", "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    gw.member("carol", "carol@example.org", "Carol").await?;
    let (first, delivered) = alice_writes(&gw, &sink).await?;
    let verp = delivered.mail_from.clone();
    // Bob pressed "This is spam"; his provider's feedback loop reports it (RFC 5965)
    // to the envelope sender, with the message attached.
    let arf = arf("fbl@provider.example", &verp, &delivered.text());
    let answer = report(&gw, &verp, &arf).await?;
    assert!(answer.contains("recorded"), "{answer}");
    let conversation_id = to_bob_conversation(&gw, &first).await?;
    let conv = conversation(&gw, &conversation_id).await?;
    assert_eq!(conv["complaints_recorded"], 1, "{conv}");
    // Not a bounce: the delivery stays sent, and nobody is suppressed.
    gw.wait_status(&first, "sent").await?;
    assert_eq!(member(&gw, "bob").await?["deliverable"], true);
    let (status, body) = gw.message("alice", "bob", "again", "hello?").await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "not_deliverable", "{body}");
    let (status, body) = gw.message("carol", "bob", "Hi", "from Carol").await?;
    assert_eq!(status, 202, "{body}");
    Ok(())
}

/// An abuse report (RFC 5965) from `from` to `to`, with `original` attached.
fn arf(from: &str, to: &str, original: &str) -> String {
    format!(
        "From: {from}\r\nTo: {to}\r\nSubject: Abuse report\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=feedback-report; boundary=\"f\"\r\n\r\n\
         --f\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n\
         --f\r\nContent-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n\
         User-Agent: feedback/1.0\r\nVersion: 1\r\n\r\n\
         --f\r\nContent-Type: message/rfc822\r\n\r\n{original}\r\n--f--\r\n"
    )
}

async fn a_complaint_sent_to_a_relay_address_by_its_holder_stops_mail(
    backend: Backend,
) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &sink).await?;
    gw.member("alice", "alice@example.com", "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    let (first, delivered) = alice_writes(&gw, &sink).await?;
    let alice_relay = from_address(&parse(&delivered.data)?);
    let conversation_id = to_bob_conversation(&gw, &first).await?;
    let complaints = || async {
        anyhow::Ok(conversation(&gw, &conversation_id).await?["complaints_recorded"].clone())
    };

    // A stranger's report to the relay address is recorded, and blocks nobody.
    let forged = arf("abuse@elsewhere.example", &alice_relay, &delivered.text());
    let answer = send_mail_to(
        gw.smtp_addr(),
        Some("abuse@elsewhere.example"),
        &[&alice_relay],
        forged.as_bytes(),
    )
    .await?;
    assert!(answer.contains("recorded"), "{answer}");
    assert_eq!(complaints().await?, 1);
    let (status, body) = gw.message("alice", "bob", "still", "there?").await?;
    assert_eq!(status, 202, "{body}");

    // Bob's mail client reports it, from Bob's own (authenticated) address.
    let own = arf(BOB, &alice_relay, &delivered.text());
    let answer = send_mail_to(gw.smtp_addr(), Some(BOB), &[&alice_relay], own.as_bytes()).await?;
    assert!(answer.contains("recorded"), "{answer}");
    assert_eq!(complaints().await?, 2);
    let (status, body) = gw.message("alice", "bob", "again", "hello?").await?;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], "not_deliverable", "{body}");
    Ok(())
}

both_backends!(
    bounces_are_read_and_a_hard_one_stops_mail,
    repeated_soft_bounces_stop_mail_too,
    a_complaint_stops_mail_from_that_writer,
    a_complaint_sent_to_a_relay_address_by_its_holder_stops_mail
);
