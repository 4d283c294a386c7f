//! The privacy guarantee, end to end: whatever a member's mail client puts in a reply,
//! no real address of either member reaches the other, in any header, part or encoding.

use std::time::Duration;

use maskrelay_tests::conversation::{
    ALICE, ALICE_WORK, BOB, BOB_HOME, Conversation, EVERY_ADDRESS, visible,
};
use maskrelay_tests::db::TestDb;
use maskrelay_tests::gateway::{TestGateway, send_mail_to, smtp_refusal, test_config};
use maskrelay_tests::mail::{from_address, parse};
use maskrelay_tests::privacy::{foreign_addresses, leaks};
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, both_backends};
use reqwest::Method;
use serde_json::json;
use sqlx::Connection;

async fn api_messages_carry_no_real_address(backend: Backend) -> anyhow::Result<()> {
    let c = Conversation::start(backend).await?;
    assert_eq!(c.first.rcpt_to, vec![BOB.to_owned()]);
    let found = leaks(&c.first.data, &EVERY_ADDRESS);
    assert!(found.is_empty(), "{found:#?}");
    assert!(c.bob_relay.ends_with("@relay.test") && c.bob_relay != c.alice_relay);
    let text = visible(&c.first.data);
    assert!(
        text.contains(&format!(
            "write to me at {} or {}.",
            c.alice_relay, c.alice_relay
        )),
        "{text}"
    );
    Ok(())
}

/// A reply the way the worst mail client might write it: every header that can carry
/// an address, addresses split by quoted-printable, hidden in base64, encoded-words,
/// character references, percent escapes, inline tags, a vCard, a calendar invitation,
/// an attachment name, and a forwarded message.
fn nasty_reply(c: &Conversation) -> String {
    let alice_relay = &c.alice_relay;
    // <p>On Tue, Alice &lt;alice.liddell&#64;example.com&gt; wrote:</p>
    // <a href="mailto:bob.smith%40example.net">me</a> <span>bob@</span><b>home.example</b>
    let html_b64 = "PHA+T24gVHVlLCBBbGljZSAmbHQ7YWxpY2UubGlkZGVsbCYjNjQ7ZXhhbXBsZS5jb20mZ3Q7IHdyb3RlOjwvcD4KPGEgaHJlZj0ibWFpbHRvOmJvYi5zbWl0aCU0MGV4YW1wbGUubmV0Ij5tZTwvYT4gPHNwYW4+Ym9iQDwvc3Bhbj48Yj5ob21lLmV4YW1wbGU8L2I+";
    format!(
        "Return-Path: <{BOB}>\r\n\
         Received: from [10.9.8.7] (helo=laptop) by mx.example.net for <{alice_relay}>; Tue, 3 Mar 2026 10:02:00 +0100\r\n\
         DKIM-Signature: v=1; a=rsa-sha256; d=example.net; s=s1; i={BOB}; h=from; bh=x; b=y\r\n\
         ARC-Seal: i=1; a=rsa-sha256; d=example.net; s=arc; cv=none; b=z\r\n\
         Authentication-Results: mx.example.net; spf=pass smtp.mailfrom={BOB}\r\n\
         From: =?utf-8?q?B=C3=B6b_Smith?= <{BOB}>\r\n\
         Sender: {BOB_HOME}\r\n\
         Reply-To: {BOB_HOME}\r\n\
         To: {alice_relay}\r\n\
         Cc: Alice <{ALICE}>, Carol <carol@elsewhere.example>\r\n\
         Bcc: {ALICE_WORK}\r\n\
         Disposition-Notification-To: {BOB}\r\n\
         Return-Receipt-To: {BOB}\r\n\
         List-Unsubscribe: <mailto:{BOB}>\r\n\
         X-Originating-IP: [10.9.8.7]\r\n\
         Message-ID: <abc.{BOB}>\r\n\
         Subject: =?utf-8?q?Re:_Tennis=3F_=28from_bob=2Esmith=40example=2Enet=29?=\r\n\
         Date: Tue, 3 Mar 2026 10:02:00 +0100\r\n\
         MIME-Version: 1.0\r\n\
         Content-Language: en-GB\r\n\
         Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
         \r\n\
         --outer\r\n\
         Content-Type: multipart/alternative; boundary=\"alt\"\r\n\
         \r\n\
         --alt\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         Content-Transfer-Encoding: quoted-printable\r\n\
         \r\n\
         Saturday works for me. Gr=C3=BC=C3=9Fe!\r\n\
         \r\n\
         On Tue, 3 Mar 2026 at 10:02, Alice <ALICE.LIDDELL@EXAM=\r\n\
         PLE.COM> wrote:\r\n\
         > Hi Bob, write to me at {alice_relay} or a.liddell=40work.example.\r\n\
         \r\n\
         From: Bob Smith [mailto:bob.smith@example.net]\r\n\
         Sent: Tuesday, March 3, 2026 10:00 AM\r\n\
         To: Alice <alice.liddell@example.com>\r\n\
         --alt\r\n\
         Content-Type: text/html; charset=utf-8\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         {html_b64}\r\n\
         --alt--\r\n\
         --outer\r\n\
         Content-Type: text/vcard; charset=utf-8\r\n\
         Content-Disposition: attachment; filename*=utf-8''bob.smith%40example.net.vcf\r\n\
         \r\n\
         BEGIN:VCARD\r\nFN:Bob Smith\r\nEMAIL:BOB.SMITH@EXAMPLE.NET\r\nEND:VCARD\r\n\
         --outer\r\n\
         Content-Type: text/calendar; method=REQUEST; charset=utf-8\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         T1JHQU5JWkVSO0NOPUJvYjptYWlsdG86Ym9iQGhvbWUuZXhhbXBsZQ0KQVRURU5ERUU6bWFpbHRvOmFsaWNlLmxpZGRlbGxAZXhhbXBsZS5jb20NCg==\r\n\
         --outer\r\n\
         Content-Type: application/pdf; name=\"=?utf-8?q?score_for_alice=2Eliddell=40example=2Ecom=2Epdf?=\"\r\n\
         Content-Disposition: attachment\r\n\
         Content-Transfer-Encoding: base64\r\n\
         \r\n\
         JVBERi0xLjQK\r\n\
         --outer\r\n\
         Content-Type: message/rfc822\r\n\
         \r\n\
         From: Alice <{ALICE_WORK}>\r\n\
         To: =?utf-8?q?B=C3=B6b?= <{BOB_HOME}>\r\n\
         Received: from secret.example\r\n\
         Subject: booking\r\n\
         \r\n\
         Court booked for {BOB}.\r\n\
         --outer--\r\n"
    )
}

async fn nasty_reply_reaches_alice_without_any_real_address(
    backend: Backend,
) -> anyhow::Result<()> {
    let c = Conversation::start(backend).await?;
    let answer = c.bob_sends(&[&c.alice_relay], &nasty_reply(&c)).await?;
    assert!(answer.contains("accepted"), "{answer}");
    let to_alice = c.delivered(1).await?;
    assert_eq!(to_alice.rcpt_to, vec![ALICE.to_owned()]);
    let found = leaks(&to_alice.data, &EVERY_ADDRESS);
    assert!(found.is_empty(), "{found:#?}");

    // Only allowlisted headers survive, at the top and in the forwarded message.
    let raw = to_alice.text();
    let lower = format!("\n{}", raw.to_lowercase());
    for dropped in [
        "Return-Path",
        "Received",
        "DKIM-Signature",
        "ARC-Seal",
        "Authentication-Results",
        "Sender",
        "Reply-To",
        "Cc",
        "Bcc",
        "Disposition-Notification-To",
        "Return-Receipt-To",
        "List-Unsubscribe",
        "X-Originating-IP",
    ] {
        let header = format!("\n{}:", dropped.to_lowercase());
        assert!(!lower.contains(&header), "{dropped} survived:\n{raw}");
    }
    for trace in [
        "10.9.8.7",
        "secret.example",
        "<abc.",
        "mx.example.net",
        "carol@",
    ] {
        assert!(!lower.contains(trace), "{trace} survived:\n{raw}");
    }
    let m = parse(&to_alice.data)?;
    assert_eq!(m.date().map(|d| d.to_timestamp()), Some(1_772_528_520));
    assert!(
        raw.contains("Date: Tue, 03 Mar 2026 09:02:00 +0000")
            || raw.contains("Date: Tue, 3 Mar 2026 09:02:00 +0000"),
        "{raw}"
    );
    assert!(raw.contains("Content-Language: en-GB"), "{raw}");

    // What Bob wrote is all there, with relay addresses where real ones were.
    let bob_relay = from_address(&m);
    assert_eq!(bob_relay, c.bob_relay);
    let alice_relay = &c.alice_relay;
    let text = visible(&to_alice.data);
    for written in [
        "Saturday works for me. Grüße!".to_owned(),
        format!("Alice <{alice_relay}> wrote:"),
        format!("write to me at {alice_relay} or {alice_relay}."),
        format!("Bob Smith [mailto:{bob_relay}]"),
        format!("To: Alice <{alice_relay}>"),
        format!("(from {bob_relay})"),
        format!("EMAIL:{bob_relay}"),
        format!("ORGANIZER;CN=Bob:mailto:{bob_relay}"),
        format!("ATTENDEE:mailto:{alice_relay}"),
        format!("Court booked for {bob_relay}."),
        format!("Alice <{alice_relay}> wrote:</p>"),
        format!("mailto:{bob_relay}"),
        format!("score for {alice_relay}.pdf"),
        format!("{bob_relay}.vcf"),
    ] {
        assert!(text.contains(&written), "missing {written:?} in:\n{text}");
    }
    // Cc, Bcc and Reply-To were not honoured: Alice's copy is the only delivery.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.smarthost.delivered().len(), 2);
    Ok(())
}

async fn secondary_addresses_are_the_member_too(backend: Backend) -> anyhow::Result<()> {
    let c = Conversation::start(backend).await?;
    let raw = format!(
        "From: Bob <{BOB_HOME}>\r\nTo: {}\r\nSubject: from home\r\n\r\nsent from {BOB_HOME}, cc {BOB}\r\n",
        c.alice_relay
    );
    let answer = send_mail_to(
        c.gw.smtp_addr(),
        Some(BOB_HOME),
        &[&c.alice_relay],
        raw.as_bytes(),
    )
    .await?;
    assert!(answer.contains("accepted"), "{answer}");
    let to_alice = c.delivered(1).await?;
    let found = leaks(&to_alice.data, &EVERY_ADDRESS);
    assert!(found.is_empty(), "{found:#?}");
    let bob_relay = from_address(&parse(&to_alice.data)?);
    assert!(visible(&to_alice.data).contains(&format!("sent from {bob_relay}, cc {bob_relay}")));
    Ok(())
}

async fn organisation_can_remove_every_other_address(backend: Backend) -> anyhow::Result<()> {
    let c = Conversation::start(backend).await?;
    let raw = |n: u32| {
        format!(
            "From: {BOB}\r\nTo: {}\r\nSubject: {n}\r\n\r\nask carol@elsewhere.example or mailto:DAVE@Other.Example\r\n",
            c.alice_relay
        )
    };
    c.bob_sends(&[&c.alice_relay], &raw(1)).await?;
    let kept = c.delivered(1).await?;
    assert!(visible(&kept.data).contains("carol@elsewhere.example"));

    c.gw.settings(&json!({"remove_foreign_addresses": true}))
        .await?;
    c.bob_sends(&[&c.alice_relay], &raw(2)).await?;
    let removed = c.delivered(2).await?;
    let found = foreign_addresses(&removed.data, "relay.test");
    assert!(found.is_empty(), "{found:#?}");
    assert!(
        visible(&removed.data).contains("ask [address removed] or mailto:[address removed]"),
        "{}",
        removed.text()
    );
    Ok(())
}

async fn auto_replies_are_recorded_not_relayed(backend: Backend) -> anyhow::Result<()> {
    let c = Conversation::start(backend).await?;
    let vacation = format!(
        "From: {BOB}\r\nTo: {}\r\nAuto-Submitted: auto-replied\r\nSubject: Out of office\r\n\r\n\
         I am away. Call me on +44 7700 900123 or write to my assistant at pa@example.net.\r\n",
        c.alice_relay
    );
    let answer = c.bob_sends(&[&c.alice_relay], &vacation).await?;
    assert!(answer.contains("recorded"), "{answer}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.smarthost.delivered().len(),
        1,
        "the auto-reply was relayed"
    );
    let conv = c.metadata().await?;
    assert_eq!(conv["auto_replies_recorded"], 1, "{conv}");

    // An organisation may choose to pass them on.
    c.gw.settings(&json!({"relay_auto_replies": true})).await?;
    c.bob_sends(&[&c.alice_relay], &vacation).await?;
    let relayed = c.delivered(1).await?;
    assert!(visible(&relayed.data).contains("I am away"));
    Ok(())
}

async fn delivery_reports_are_never_relayed(backend: Backend) -> anyhow::Result<()> {
    let c = Conversation::start(backend).await?;
    c.gw.settings(&json!({"relay_auto_replies": true})).await?;
    let dsn = format!(
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\nTo: {}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\r\n\r\n\
         --r\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.example.net.\r\n\
         --r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n\
         Final-Recipient: rfc822; {BOB}\r\nAction: failed\r\nStatus: 5.2.2\r\n\
         --r--\r\n",
        c.alice_relay
    );
    for sender in [None, Some(BOB)] {
        let answer =
            send_mail_to(c.gw.smtp_addr(), sender, &[&c.alice_relay], dsn.as_bytes()).await?;
        assert!(answer.contains("recorded"), "{sender:?}: {answer}");
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        c.smarthost.delivered().len(),
        1,
        "a delivery report was relayed"
    );
    let conv = c.metadata().await?;
    assert_eq!(conv["delivery_reports_recorded"], 2, "{conv}");
    Ok(())
}

async fn reply_all_to_ones_own_relay_address_is_not_a_second_copy(
    backend: Backend,
) -> anyhow::Result<()> {
    let c = Conversation::start(backend).await?;
    let raw = format!(
        "From: {BOB}\r\nTo: {}, {}\r\nSubject: Re: Tennis?\r\n\r\nreply all\r\n",
        c.alice_relay, c.bob_relay
    );
    let answer = c.bob_sends(&[&c.alice_relay, &c.bob_relay], &raw).await?;
    assert!(answer.contains("accepted"), "{answer}");
    let to_alice = c.delivered(1).await?;
    assert_eq!(to_alice.rcpt_to, vec![ALICE.to_owned()]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(c.smarthost.delivered().len(), 2);

    let only_self = c.bob_sends(&[&c.bob_relay], &raw).await;
    let refusal = smtp_refusal(only_self.map(|_| ()));
    assert!(
        refusal.starts_with("550") && refusal.contains("stands for you"),
        "{refusal}"
    );
    Ok(())
}

async fn conversation_metadata_shows_no_content(backend: Backend) -> anyhow::Result<()> {
    let c = Conversation::start(backend).await?;
    c.bob_sends(
        &[&c.alice_relay],
        &format!(
            "From: {BOB}\r\nTo: {}\r\nSubject: Secret plan\r\n\r\nThe secret is 42.\r\n",
            c.alice_relay
        ),
    )
    .await?;
    c.delivered(1).await?;
    let conv = c.metadata().await?;
    assert_eq!(conv["participants"], json!(["alice", "bob"]));
    assert_eq!(conv["message_count"], 2);
    let messages = conv["messages"].as_array().cloned().unwrap_or_default();
    assert_eq!(messages.len(), 2, "{conv}");
    assert_eq!(messages[0]["from"], "bob");
    assert_eq!(messages[0]["origin"], "smtp");
    assert_eq!(messages[1]["from"], "alice");
    let dump = conv.to_string().to_lowercase();
    for secret in ["secret", "tennis", "hi bob", "relay.test", "example"] {
        assert!(!dump.contains(secret), "{secret} in {dump}");
    }
    let (status, list) =
        c.gw.call(Method::GET, "/v1/members/bob/conversations", None)
            .await?;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["conversations"][0]["id"], c.id.as_str());
    let (status, missing) =
        c.gw.call(Method::GET, "/v1/conversations/nope", None)
            .await?;
    assert_eq!(status, 404, "{missing}");
    Ok(())
}

async fn content_is_wiped_on_delivery_or_kept_for_retention(
    backend: Backend,
) -> anyhow::Result<()> {
    let smarthost = Smarthost::start().await?;
    let db = TestDb::new(backend).await?;
    let mut config = test_config(&db, Some(&smarthost))?;
    config.outbound.retention_sweep_secs = 1;
    let gw = TestGateway::start_with(db, config).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    let store = &gw.running.store;
    let send = |subject: &'static str| {
        let gw = &gw;
        async move {
            let (_, created) = gw.message("alice", "bob", subject, "some text").await?;
            let id = created["message_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            gw.wait_status(&id, "sent").await?;
            anyhow::Ok(maskrelay_schema::MessageId::from(id))
        }
    };

    let first = send("Now").await?;
    assert!(
        !store.content_kept(&first).await?,
        "wiped at once by default"
    );

    gw.settings(&json!({"retention_days": 30})).await?;
    let kept = send("Again").await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        store.content_kept(&kept).await?,
        "kept for retention, through a sweep"
    );

    // Thirty days pass; the janitor's next sweep wipes it.
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&gw.db.url).await?;
    sqlx::query("UPDATE deliveries SET purge_after = 1 WHERE purge_after IS NOT NULL")
        .execute(&mut conn)
        .await?;
    for _ in 0..50 {
        if !store.content_kept(&kept).await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("content past retention was not wiped")
}

async fn settings_are_checked_and_named(backend: Backend) -> anyhow::Result<()> {
    let smarthost = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &smarthost).await?;
    for (body, field) in [
        (json!({"retention_days": -1}), "retention_days"),
        (json!({"retention_days": 1.5}), "retention_days"),
        (
            json!({"remove_foreign_addresses": "yes"}),
            "remove_foreign_addresses",
        ),
        (json!({"colour": "blue"}), "colour"),
    ] {
        let (status, answer) = gw
            .call(Method::PATCH, "/v1/organisation", Some(&body))
            .await?;
        assert_eq!(status, 422, "{body}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    let (status, org) = gw.call(Method::GET, "/v1/organisation", None).await?;
    assert_eq!(status, 200);
    assert_eq!(org["settings"]["retention_days"], 0, "{org}");
    let (status, answer) = gw
        .call(
            Method::PUT,
            "/v1/members/x",
            Some(&json!({"email": "x@example.com", "name": "X", "other_emails": ["nope"]})),
        )
        .await?;
    assert_eq!(
        (status, &answer["error"]["field"]),
        (422, &json!("other_emails")),
        "{answer}"
    );
    Ok(())
}

both_backends!(
    api_messages_carry_no_real_address,
    nasty_reply_reaches_alice_without_any_real_address,
    secondary_addresses_are_the_member_too,
    organisation_can_remove_every_other_address,
    auto_replies_are_recorded_not_relayed,
    delivery_reports_are_never_relayed,
    reply_all_to_ones_own_relay_address_is_not_a_second_copy,
    conversation_metadata_shows_no_content,
    content_is_wiped_on_delivery_or_kept_for_retention,
    settings_are_checked_and_named,
);
