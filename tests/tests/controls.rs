//! What members and organisations control: turning member messaging off, blocks (by
//! API and by the signed one-click link in every footer), opting out of member
//! messages, and limits on new conversations.

use std::time::Duration;

use maskrelay_tests::gateway::{TestGateway, send_mail, smtp_refusal};
use maskrelay_tests::mail::{from_address, parse};
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, both_backends};
use reqwest::Method;
use serde_json::{Value, json};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.net";
const CAROL: &str = "carol@example.org";
const WAIT: Duration = Duration::from_secs(10);

/// Alice has written to Bob; returns the gateway, Bob's copy and Alice's relay address.
async fn start(backend: Backend) -> anyhow::Result<(Smarthost, TestGateway, String, String)> {
    let sink = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &sink).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    gw.member("carol", CAROL, "Carol").await?;
    let (status, body) = gw.message("alice", "bob", "Hello", "Hi Bob").await?;
    anyhow::ensure!(status == 202, "{body}");
    let first = sink.wait_for(1, WAIT).await?.remove(0);
    let alice_relay = from_address(&parse(&first.data)?);
    let text = parse(&first.data)?
        .body_text(0)
        .unwrap_or_default()
        .into_owned();
    Ok((sink, gw, alice_relay, text))
}

fn reply(from: &str, to: &str) -> String {
    format!("From: {from}\r\nTo: {to}\r\nSubject: Re: Hello\r\n\r\nhello again\r\n")
}

/// Sends a reply from `from` to `relay`; "accepted" or the refusal.
async fn answer(gw: &TestGateway, from: &str, relay: &str) -> String {
    smtp_refusal(send_mail(gw.smtp_addr(), from, relay, reply(from, relay).as_bytes()).await)
}

/// The URL after `label` in a footer.
fn link(footer: &str, label: &str) -> String {
    footer
        .split(label)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .to_owned()
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or_default()
}

async fn organisation_can_turn_member_messaging_off(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, alice_relay, _) = start(backend).await?;
    gw.settings(&json!({"member_messaging": false})).await?;
    let (status, body) = gw.message("carol", "bob", "Hi", "x").await?;
    assert_eq!(
        (status, error_code(&body)),
        (403, "messaging_disabled"),
        "{body}"
    );
    let refusal = answer(&gw, BOB, &alice_relay).await;
    assert!(
        refusal.starts_with("550") && refusal.contains("turned off messages between its members"),
        "{refusal}"
    );
    gw.settings(&json!({"member_messaging": true})).await?;
    let (status, body) = gw.message("carol", "bob", "Hi", "x").await?;
    assert_eq!(status, 202, "{body}");
    Ok(())
}

async fn a_blocked_member_is_told_only_that_delivery_failed(
    backend: Backend,
) -> anyhow::Result<()> {
    let (sink, gw, alice_relay, _) = start(backend).await?;
    // Bob answers once, so that Alice has his relay address.
    send_mail(
        gw.smtp_addr(),
        BOB,
        &alice_relay,
        reply(BOB, &alice_relay).as_bytes(),
    )
    .await?;
    let to_alice = sink.wait_for(2, WAIT).await?.remove(1);
    let bob_relay = from_address(&parse(&to_alice.data)?);

    let (status, _) = gw
        .call(Method::PUT, "/v1/members/bob/blocks/alice", None)
        .await?;
    assert_eq!(status, 204);
    let (_, list) = gw.call(Method::GET, "/v1/members/bob/blocks", None).await?;
    assert_eq!(list["blocked"], json!(["alice"]));

    let (status, body) = gw.message("alice", "bob", "Again", "x").await?;
    assert_eq!(
        (status, error_code(&body)),
        (403, "not_deliverable"),
        "{body}"
    );
    assert!(!body.to_string().contains("block"), "{body}");
    let refusal = answer(&gw, ALICE, &bob_relay).await;
    assert!(
        refusal.starts_with("550") && refusal.contains("could not be delivered"),
        "{refusal}"
    );
    assert!(!refusal.contains("block"), "{refusal}");
    // Bob can still write to Alice: the block is his, not hers.
    send_mail(
        gw.smtp_addr(),
        BOB,
        &alice_relay,
        reply(BOB, &alice_relay).as_bytes(),
    )
    .await?;
    sink.wait_for(3, WAIT).await?;

    let (status, _) = gw
        .call(Method::DELETE, "/v1/members/bob/blocks/alice", None)
        .await?;
    assert_eq!(status, 204);
    let (status, _) = gw
        .call(Method::DELETE, "/v1/members/bob/blocks/alice", None)
        .await?;
    assert_eq!(status, 404);
    let (status, body) = gw.message("alice", "bob", "Again", "x").await?;
    assert_eq!(status, 202, "{body}");
    let (status, body) = gw
        .call(Method::PUT, "/v1/members/bob/blocks/nobody", None)
        .await?;
    assert_eq!(
        (status, &body["error"]["field"]),
        (404, &json!("other")),
        "{body}"
    );
    Ok(())
}

async fn footer_links_block_and_stop_with_one_click(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, _, footer) = start(backend).await?;
    let block = link(&footer, "Block Alice:");
    let stop = link(&footer, "Stop all messages from members of Example Club:");
    assert!(
        block.contains("/v1/links/") && stop.contains("/v1/links/"),
        "{footer}"
    );

    // Following the link (as a mail scanner would) only asks.
    let (status, page) = gw.browse(Method::GET, &block).await?;
    assert_eq!(status, 200, "{page}");
    assert!(
        page.contains("Stop receiving messages from Alice?"),
        "{page}"
    );
    let (status, _) = gw.message("alice", "bob", "Still?", "x").await?;
    assert_eq!(status, 202);

    let (status, page) = gw.browse(Method::POST, &block).await?;
    assert_eq!(status, 200, "{page}");
    let (status, body) = gw.message("alice", "bob", "Blocked?", "x").await?;
    assert_eq!(
        (status, error_code(&body)),
        (403, "not_deliverable"),
        "{body}"
    );

    let (status, _) = gw.browse(Method::POST, &stop).await?;
    assert_eq!(status, 200);
    let (status, body) = gw.message("carol", "bob", "Hi", "x").await?;
    assert_eq!(
        (status, error_code(&body)),
        (403, "recipient_opted_out"),
        "{body}"
    );

    // The directory's next update keeps Bob's choice unless it says otherwise.
    gw.member("bob", BOB, "Bob Smith").await?;
    let (_, bob) = gw.call(Method::GET, "/v1/members/bob", None).await?;
    assert_eq!(bob["accepts_messages"], false, "{bob}");
    gw.member_json(
        "bob",
        &json!({"email": BOB, "name": "Bob", "accepts_messages": true}),
    )
    .await?;
    let (status, body) = gw.message("carol", "bob", "Hi", "x").await?;
    assert_eq!(status, 202, "{body}");

    // A link that was tampered with does nothing.
    let forged = block.replace("block.", "stop.");
    let (status, _) = gw.browse(Method::POST, &forged).await?;
    assert_eq!(status, 404);
    let (status, _) = gw
        .browse(Method::GET, &format!("{}x", &stop[..stop.len() - 1]))
        .await?;
    assert_eq!(status, 404);
    Ok(())
}

async fn new_conversations_are_rate_limited(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, _, _) = start(backend).await?;
    gw.member("dave", "dave@example.org", "Dave").await?;
    gw.settings(&json!({"new_conversations_per_hour": 2}))
        .await?;
    let (status, body) = gw.message("alice", "carol", "Hi", "x").await?;
    assert_eq!(status, 202, "{body}");
    let (status, retry_after, body) = gw
        .call_retry_after(
            Method::POST,
            "/v1/messages",
            Some(&json!({"from": "alice", "to": "dave", "subject": "Hi", "text": "x"})),
        )
        .await?;
    assert_eq!((status, error_code(&body)), (429, "rate_limited"), "{body}");
    assert!(
        retry_after.is_some_and(|s| (3500..=3600).contains(&s)),
        "{retry_after:?}"
    );
    // Existing conversations are not limited, and other members have their own count.
    let (status, _) = gw.message("alice", "bob", "Again", "x").await?;
    assert_eq!(status, 202);
    let (status, _) = gw.message("carol", "dave", "Hi", "x").await?;
    assert_eq!(status, 202);
    gw.settings(&json!({"new_conversations_per_hour": 0}))
        .await?;
    let (status, _) = gw.message("alice", "dave", "Hi", "x").await?;
    assert_eq!(status, 202);
    Ok(())
}

both_backends!(
    organisation_can_turn_member_messaging_off,
    a_blocked_member_is_told_only_that_delivery_failed,
    footer_links_block_and_stop_with_one_click,
    new_conversations_are_rate_limited,
);
