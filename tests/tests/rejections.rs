//! Everything maskrelay must refuse, and how it says so.

use std::time::Duration;

use maskrelay_tests::gateway::{TestGateway, send_mail, smtp_refusal};
use maskrelay_tests::mail::{from_address, parse};
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, both_backends};
use reqwest::Method;
use serde_json::json;

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.net";
const WAIT: Duration = Duration::from_secs(10);

/// A gateway where Alice has written to Bob; returns it with Alice's relay address.
async fn conversation(backend: Backend) -> anyhow::Result<(Smarthost, TestGateway, String)> {
    let smarthost = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &smarthost).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    let (status, body) = gw.message("alice", "bob", "Hello", "Hi Bob").await?;
    anyhow::ensure!(status == 202, "{body}");
    let first = smarthost.wait_for(1, WAIT).await?.remove(0);
    let relay = from_address(&parse(&first.data)?);
    Ok((smarthost, gw, relay))
}

/// Sends a reply from `from` to `to` and returns the server's refusal (or "accepted").
async fn refuse(gw: &TestGateway, from: &str, to: &str) -> String {
    smtp_refusal(send_mail(gw.smtp_addr(), from, to, reply(from, to).as_bytes()).await)
}

fn reply(from: &str, to: &str) -> String {
    format!("From: {from}\r\nTo: {to}\r\nSubject: Re: Hello\r\n\r\nhello\r\n")
}

async fn unknown_relay_address_is_refused_at_rcpt(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, _) = conversation(backend).await?;
    let unknown = "zzzzzzzzzzzzzzzz@relay.test";
    let refusal = refuse(&gw, BOB, unknown).await;
    assert!(
        refusal.starts_with("550") && refusal.contains("5.1.1"),
        "{refusal}"
    );
    let malformed = "not-a-token@relay.test";
    let refusal = refuse(&gw, BOB, malformed).await;
    assert!(
        refusal.starts_with("550") && refusal.contains("5.1.1"),
        "{refusal}"
    );
    gw.stop().await;
    Ok(())
}

async fn foreign_domain_is_not_relayed(backend: Backend) -> anyhow::Result<()> {
    let (sink, gw, _) = conversation(backend).await?;
    let refusal = refuse(&gw, BOB, ALICE).await;
    assert!(
        refusal.starts_with("550") && refusal.contains("5.7.1"),
        "{refusal}"
    );
    assert!(refusal.contains("Relaying denied"), "{refusal}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.delivered().len(), 1, "nothing more may leave");
    gw.stop().await;
    Ok(())
}

async fn reply_from_anyone_else_is_refused(backend: Backend) -> anyhow::Result<()> {
    let (sink, gw, alice_relay) = conversation(backend).await?;
    let mallory = "mallory@evil.example";
    let refusal = refuse(&gw, mallory, &alice_relay).await;
    assert!(
        refusal.starts_with("550") && refusal.contains("5.7.1"),
        "{refusal}"
    );
    assert!(
        refusal.contains("only accepts replies from the member it was sent to"),
        "{refusal}"
    );
    // Alice herself may not use the address given to Bob either.
    let refusal = refuse(&gw, ALICE, &alice_relay).await;
    assert!(refusal.starts_with("550"), "{refusal}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.delivered().len(), 1, "nothing may be relayed");
    gw.stop().await;
    Ok(())
}

async fn sender_is_recognised_by_from_header_in_any_case(backend: Backend) -> anyhow::Result<()> {
    let (sink, gw, alice_relay) = conversation(backend).await?;
    // The From: header is Bob, upper-cased; the envelope (SPF-aligned) is lower-case.
    let raw = reply("BOB@EXAMPLE.NET", &alice_relay);
    send_mail(
        gw.smtp_addr(),
        "bob@example.net",
        &alice_relay,
        raw.as_bytes(),
    )
    .await?;
    sink.wait_for(2, WAIT).await?;
    gw.stop().await;
    Ok(())
}

async fn erased_member_relay_addresses_stop_accepting_mail(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, alice_relay) = conversation(backend).await?;
    let (status, _) = gw.call(Method::DELETE, "/v1/members/alice", None).await?;
    assert_eq!(status, 204);
    let refusal = refuse(&gw, BOB, &alice_relay).await;
    assert!(
        refusal.starts_with("550") && refusal.contains("5.1.1"),
        "{refusal}"
    );
    let (status, body) = gw.call(Method::GET, "/v1/members/alice", None).await?;
    assert_eq!(
        (status, body["status"].as_str(), body["email"].is_null()),
        (200, Some("erased"), true),
        "{body}"
    );
    let (status, body) = gw.message("bob", "alice", "Still there?", "x").await?;
    assert_eq!(
        (status, body["error"]["field"].as_str()),
        (404, Some("to")),
        "{body}"
    );
    gw.stop().await;
    Ok(())
}

async fn api_rejects_bad_key_unknown_members_and_bad_fields(
    backend: Backend,
) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &sink).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    let body = json!({"from": "alice", "to": "bob", "subject": "s", "text": "t"});

    let (status, err) = gw
        .call_with(Method::POST, "/v1/messages", Some(&body), "mrk_wrong", &[])
        .await?;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{err}"
    );

    let (status, err) = gw.message("alice", "carol", "s", "t").await?;
    assert_eq!(status, 404, "{err}");
    assert_eq!(err["error"]["field"], "to");
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("carol"),
        "{err}"
    );
    let (status, err) = gw.message("dave", "bob", "s", "t").await?;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (404, Some("from")),
        "{err}"
    );

    for (missing, body) in [
        (
            "subject",
            json!({"from": "alice", "to": "bob", "text": "t"}),
        ),
        (
            "text",
            json!({"from": "alice", "to": "bob", "subject": "s"}),
        ),
        ("from", json!({"to": "bob", "subject": "s", "text": "t"})),
    ] {
        let (status, err) = gw.call(Method::POST, "/v1/messages", Some(&body)).await?;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (422, Some(missing)),
            "{err}"
        );
    }
    let injected =
        json!({"from": "alice", "to": "bob", "subject": "s\r\nBcc: x@evil.example", "text": "t"});
    let (status, err) = gw
        .call(Method::POST, "/v1/messages", Some(&injected))
        .await?;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (422, Some("subject")),
        "{err}"
    );

    for (field, member) in [
        ("email", json!({"email": "not an address", "name": "Eve"})),
        ("email", json!({"email": "x@relay.test", "name": "Eve"})),
        ("name", json!({"email": "eve@example.org"})),
        (
            "status",
            json!({"email": "eve@example.org", "name": "Eve", "status": "gone"}),
        ),
    ] {
        let (status, err) = gw
            .call(Method::PUT, "/v1/members/eve", Some(&member))
            .await?;
        assert_eq!(
            (status, err["error"]["field"].as_str()),
            (422, Some(field)),
            "{err}"
        );
    }
    gw.stop().await;
    Ok(())
}

async fn inactive_sender_is_forbidden(backend: Backend) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &sink).await?;
    gw.member("bob", BOB, "Bob").await?;
    let (status, _) = gw
        .call(
            Method::PUT,
            "/v1/members/alice",
            Some(&json!({"email": ALICE, "name": "Alice", "status": "inactive"})),
        )
        .await?;
    assert_eq!(status, 201);
    let (status, err) = gw.message("alice", "bob", "s", "t").await?;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (403, Some("from")),
        "{err}"
    );
    gw.stop().await;
    Ok(())
}

async fn oversized_request_gets_413_as_json(backend: Backend) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    let db = maskrelay_tests::db::TestDb::new(backend).await?;
    let mut config = maskrelay_tests::gateway::test_config(&db, Some(&sink))?;
    config.http.max_body_bytes = 1024;
    let gw = TestGateway::start_with(db, config).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    let (status, err) = gw.message("alice", "bob", "s", &"x".repeat(4096)).await?;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (413, Some("too_large")),
        "{err}"
    );
    gw.stop().await;
    Ok(())
}

async fn idempotency_key_replays_the_first_answer(backend: Backend) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &sink).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    let body = json!({"from": "alice", "to": "bob", "subject": "Once", "text": "only once"});
    let key = [("Idempotency-Key", "order-42")];
    let (s1, first) = gw
        .call_with(Method::POST, "/v1/messages", Some(&body), &gw.api_key, &key)
        .await?;
    let (s2, second) = gw
        .call_with(Method::POST, "/v1/messages", Some(&body), &gw.api_key, &key)
        .await?;
    assert_eq!((s1, s2), (202, 202));
    assert_eq!(first, second);
    sink.wait_for(1, WAIT).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        sink.delivered().len(),
        1,
        "a retried call must not send twice"
    );
    let other = json!({"from": "alice", "to": "bob", "subject": "Different", "text": "x"});
    let (status, err) = gw
        .call_with(
            Method::POST,
            "/v1/messages",
            Some(&other),
            &gw.api_key,
            &key,
        )
        .await?;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (422, Some("Idempotency-Key")),
        "{err}"
    );
    gw.stop().await;
    Ok(())
}

both_backends!(
    unknown_relay_address_is_refused_at_rcpt,
    foreign_domain_is_not_relayed,
    reply_from_anyone_else_is_refused,
    sender_is_recognised_by_from_header_in_any_case,
    erased_member_relay_addresses_stop_accepting_mail,
    api_rejects_bad_key_unknown_members_and_bad_fields,
    inactive_sender_is_forbidden,
    oversized_request_gets_413_as_json,
    idempotency_key_replays_the_first_answer,
);
