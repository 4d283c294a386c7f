//! The whole path: the directory sends Alice's message to Bob through the API; Bob,
//! Alice and Bob again answer from their mail clients; every message arrives at the
//! smarthost masked and threaded.

use std::time::Duration;

use maskrelay_tests::gateway::{RELAY_DOMAIN, TestGateway, send_mail};
use maskrelay_tests::mail::{assert_absent, from_address, from_name, ids, parse};
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, both_backends};

const ALICE: &str = "alice.liddell@example.com";
const BOB: &str = "Bob.Smith@example.net";
const WAIT: Duration = Duration::from_secs(10);

/// A reply as a mail client writes it: its own Message-ID, a Received trail, a
/// Reply-To, the quoted message and an attribution line.
fn client_reply(from: &str, to_relay: &str, subject: &str, parent: &str, text: &str) -> String {
    format!(
        "Received: from laptop.home (host-10-1-2-3.isp.example [10.1.2.3])\r\n\
         \tby mail.example.net with ESMTPSA id abc for <{to_relay}>\r\n\
         From: Someone <{from}>\r\n\
         Reply-To: {from}\r\n\
         To: {to_relay}\r\n\
         Subject: {subject}\r\n\
         Message-ID: <client-{parent}-x@mail.example.net>\r\n\
         In-Reply-To: <{parent}>\r\n\
         References: <{parent}>\r\n\
         X-Originating-IP: [10.1.2.3]\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\
         \r\n\
         {text}\r\n\
         \r\n\
         On Tue, 3 Mar 2026 at 10:02, Someone <{to_relay}> wrote:\r\n\
         > earlier text\r\n"
    )
}

async fn alice_bob_alice_bob(backend: Backend) -> anyhow::Result<()> {
    let smarthost = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &smarthost).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;

    // 1. The directory's "Send Message" button.
    let (status, created) = gw
        .message(
            "alice",
            "bob",
            "Tennis on Saturday?",
            "Hi Bob, fancy a game?",
        )
        .await?;
    assert_eq!(status, 202, "{created}");
    let conversation = created["conversation_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let to_bob = smarthost.wait_for(1, WAIT).await?.remove(0);
    assert_eq!(to_bob.rcpt_to, vec![BOB.to_owned()]);
    // VERP: b-<delivery id>-<mac>, so that a bounce names its delivery.
    assert!(
        to_bob.mail_from.starts_with("b-")
            && to_bob.mail_from.ends_with(&format!("@{RELAY_DOMAIN}")),
        "{}",
        to_bob.mail_from
    );
    assert_absent(&to_bob.data, ALICE)?;
    let m1 = parse(&to_bob.data)?;
    assert_eq!(from_name(&m1), "Alice via Example Club");
    let alice_relay = from_address(&m1);
    let (token, domain) = alice_relay.split_once('@').unwrap_or_default();
    assert_eq!(domain, RELAY_DOMAIN);
    assert!(
        token.len() >= 16
            && token
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{token}"
    );
    let m1_id = m1.message_id().unwrap_or_default().to_owned();
    assert!(m1_id.ends_with(&format!("@{RELAY_DOMAIN}")), "{m1_id}");
    assert_eq!(m1.subject(), Some("Tennis on Saturday?"));
    let body = m1.body_text(0).unwrap_or_default();
    assert!(body.contains("Hi Bob, fancy a game?"), "{body}");
    assert!(
        body.contains("Reply to this email to answer Alice"),
        "{body}"
    );

    // 2. Bob hits Reply.
    let reply = client_reply(
        BOB,
        &alice_relay,
        "Re: Tennis on Saturday?",
        &m1_id,
        "Yes! 10am?",
    );
    send_mail(gw.smtp_addr(), BOB, &alice_relay, reply.as_bytes()).await?;
    let to_alice = smarthost.wait_for(2, WAIT).await?.remove(1);
    assert_eq!(to_alice.rcpt_to, vec![ALICE.to_owned()]);
    assert_absent(&to_alice.data, BOB)?;
    for leak in [
        "10.1.2.3",
        "mail.example.net",
        "laptop.home",
        "client-",
        "\nReceived:",
        "\nReply-To:",
        "X-Originating-IP",
    ] {
        assert_absent(&to_alice.data, leak)?;
    }
    let m2 = parse(&to_alice.data)?;
    assert_eq!(from_name(&m2), "Bob via Example Club");
    let bob_relay = from_address(&m2);
    assert_ne!(bob_relay, alice_relay);
    assert!(
        bob_relay.ends_with(&format!("@{RELAY_DOMAIN}")),
        "{bob_relay}"
    );
    assert_eq!(m2.subject(), Some("Re: Tennis on Saturday?"));
    assert_eq!(ids(m2.in_reply_to()), vec![m1_id.clone()]);
    assert_eq!(ids(m2.references()), vec![m1_id.clone()]);
    let m2_id = m2.message_id().unwrap_or_default().to_owned();
    assert!(
        m2_id.ends_with(&format!("@{RELAY_DOMAIN}")) && m2_id != m1_id,
        "{m2_id}"
    );
    assert!(m2.body_text(0).unwrap_or_default().contains("Yes! 10am?"));

    // 3. Alice answers Bob's relay address.
    let reply = client_reply(
        ALICE,
        &bob_relay,
        "Re: Tennis on Saturday?",
        &m2_id,
        "Perfect, see you.",
    );
    send_mail(gw.smtp_addr(), ALICE, &bob_relay, reply.as_bytes()).await?;
    let to_bob_again = smarthost.wait_for(3, WAIT).await?.remove(2);
    assert_eq!(to_bob_again.rcpt_to, vec![BOB.to_owned()]);
    assert_absent(&to_bob_again.data, ALICE)?;
    let m3 = parse(&to_bob_again.data)?;
    assert_eq!(
        from_address(&m3),
        alice_relay,
        "Alice keeps one address in the conversation"
    );
    assert_eq!(ids(m3.in_reply_to()), vec![m2_id.clone()]);
    assert_eq!(ids(m3.references()), vec![m1_id.clone(), m2_id.clone()]);
    let m3_id = m3.message_id().unwrap_or_default().to_owned();

    // 4. And Bob once more: the thread goes on.
    let reply = client_reply(
        BOB,
        &alice_relay,
        "Re: Tennis on Saturday?",
        &m3_id,
        "Great.",
    );
    send_mail(gw.smtp_addr(), BOB, &alice_relay, reply.as_bytes()).await?;
    let last = smarthost.wait_for(4, WAIT).await?.remove(3);
    assert_absent(&last.data, BOB)?;
    let m4 = parse(&last.data)?;
    assert_eq!(from_address(&m4), bob_relay);
    assert_eq!(ids(m4.in_reply_to()), vec![m3_id.clone()]);
    assert_eq!(ids(m4.references()), vec![m1_id, m2_id, m3_id]);

    // All four messages belong to one conversation.
    let (_, second) = gw.message("alice", "bob", "Another", "x").await?;
    assert_eq!(second["conversation_id"], conversation.as_str());
    gw.stop().await;
    Ok(())
}

/// HTML, plain text and attachments written by the member all reach the other side.
async fn reply_keeps_html_text_and_attachments(backend: Backend) -> anyhow::Result<()> {
    let smarthost = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &smarthost).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    let (status, _) = gw.message("alice", "bob", "Agenda", "See below").await?;
    assert_eq!(status, 202);
    let m1 = smarthost.wait_for(1, WAIT).await?.remove(0);
    let alice_relay = from_address(&parse(&m1.data)?);
    let raw = format!(
        "From: Bob <{BOB}>\r\nTo: {alice_relay}\r\nSubject: Re: Agenda\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n\
         --outer\r\nContent-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n\
         --alt\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain words\r\n\
         --alt\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p><b>Rich</b> words</p>\r\n--alt--\r\n\
         --outer\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"minutes.pdf\"\r\n\
         Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcfs\r\n--outer--\r\n"
    );
    send_mail(gw.smtp_addr(), BOB, &alice_relay, raw.as_bytes()).await?;
    let delivered = smarthost.wait_for(2, WAIT).await?.remove(1);
    assert_absent(&delivered.data, BOB)?;
    let m = parse(&delivered.data)?;
    assert!(m.body_text(0).unwrap_or_default().contains("Plain words"));
    assert!(
        m.body_html(0)
            .unwrap_or_default()
            .contains("<b>Rich</b> words")
    );
    let attachment = m.attachments().next();
    assert_eq!(
        attachment.map(|a| a.contents().to_vec()),
        Some(b"%PDF-1.4\n%\xc7\xec".to_vec())
    );
    assert_eq!(
        attachment.and_then(mail_parser::MimeHeaders::attachment_name),
        Some("minutes.pdf")
    );
    gw.stop().await;
    Ok(())
}

/// Messages sent through the API in one conversation are threaded too: each answers
/// the one before and lists the earlier ones, oldest first.
async fn api_messages_continue_their_thread(backend: Backend) -> anyhow::Result<()> {
    let smarthost = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &smarthost).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    let mut sent = Vec::new();
    for n in 1..=3 {
        let (status, created) = gw
            .message("alice", "bob", &format!("Note {n}"), "x")
            .await?;
        assert_eq!(status, 202, "{created}");
        let arrived = smarthost.wait_for(n, WAIT).await?.remove(n - 1);
        let message = parse(&arrived.data)?;
        if n > 1 {
            assert_eq!(ids(message.in_reply_to()), sent[sent.len() - 1..].to_vec());
            assert_eq!(ids(message.references()), sent);
        }
        sent.push(message.message_id().unwrap_or_default().to_owned());
    }
    gw.stop().await;
    Ok(())
}

both_backends!(
    alice_bob_alice_bob,
    reply_keeps_html_text_and_attachments,
    api_messages_continue_their_thread,
);
