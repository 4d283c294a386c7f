//! The listener against clients that want encryption and clients that misbehave:
//! STARTTLS (RFC 3207) including commands smuggled after it, connections per address,
//! trickling clients, and mail loops.

use std::time::Duration;

use maskrelay::Config;
use maskrelay_inbound::smtp::pressure;
use maskrelay_tests::db::TestDb;
use maskrelay_tests::gateway::{TestGateway, send_mail, smtp_refusal, test_config};
use maskrelay_tests::mail::{from_address, parse};
use maskrelay_tests::raw::RawClient;
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, both_backends};
use tokio::io::{AsyncRead, AsyncWrite};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.net";
const WAIT: Duration = Duration::from_secs(10);

/// A gateway, adjusted by `tune`, where Alice wrote to Bob; returns Alice's relay
/// address and what Bob received.
async fn gateway(
    backend: Backend,
    tune: impl FnOnce(&mut Config),
) -> anyhow::Result<(Smarthost, TestGateway, String, Vec<u8>)> {
    let sink = Smarthost::start().await?;
    let db = TestDb::new(backend).await?;
    let mut config = test_config(&db, Some(&sink))?;
    tune(&mut config);
    let gw = TestGateway::start_with(db, config).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    gw.message("alice", "bob", "Hello", "Hi").await?;
    let first = sink.wait_for(1, WAIT).await?.remove(0);
    let relay = from_address(&parse(&first.data)?);
    Ok((sink, gw, relay, first.data))
}

/// `MAIL`, `RCPT` and `DATA` from Bob to `relay` on an open session, up to `354`.
async fn start_data<S: AsyncRead + AsyncWrite>(
    c: &mut RawClient<S>,
    relay: &str,
) -> anyhow::Result<()> {
    assert!(
        c.command(&format!("MAIL FROM:<{BOB}>"))
            .await?
            .starts_with("250")
    );
    assert!(
        c.command(&format!("RCPT TO:<{relay}>"))
            .await?
            .starts_with("250")
    );
    assert!(c.command("DATA").await?.starts_with("354"));
    Ok(())
}

/// A whole mail transaction on an open session; returns the final reply.
async fn transaction<S: AsyncRead + AsyncWrite>(
    c: &mut RawClient<S>,
    relay: &str,
    body: &str,
) -> anyhow::Result<String> {
    start_data(c, relay).await?;
    c.command(&format!(
        "From: {BOB}\r\nTo: {relay}\r\nSubject: Re: Hello\r\n\r\n{body}\r\n."
    ))
    .await
}

async fn starttls_upgrades_the_session_in_place(backend: Backend) -> anyhow::Result<()> {
    let (sink, gw, relay, _) = gateway(backend, |_| {}).await?;
    let (mut c, _) = RawClient::connect(gw.smtp_addr()).await?;
    assert!(
        c.command("STARTTLS").await?.starts_with("503 5.5.1"),
        "before EHLO"
    );
    let ehlo = c.command("EHLO client.example.net").await?;
    assert!(ehlo.ends_with("250 STARTTLS"), "{ehlo}");
    let mut c = c.starttls("").await?;
    // Everything is forgotten: the client greets again, and STARTTLS is gone.
    assert!(
        c.command(&format!("MAIL FROM:<{BOB}>"))
            .await?
            .starts_with("503")
    );
    let ehlo = c.command("EHLO client.example.net").await?;
    assert!(
        ehlo.starts_with("250-relay.test") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    assert_eq!(
        c.command("STARTTLS").await?,
        "503 5.5.1 TLS is already active"
    );
    let done = transaction(&mut c, &relay, "sent over TLS").await?;
    assert!(done.starts_with("250"), "{done}");
    let delivered = sink.wait_for(2, WAIT).await?.remove(1);
    assert!(String::from_utf8_lossy(&delivered.data).contains("sent over TLS"));
    assert_eq!(c.command("QUIT").await?, "221 2.0.0 Bye");
    Ok(())
}

async fn commands_smuggled_after_starttls_are_dropped(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, _, _) = gateway(backend, |_| {}).await?;
    let (mut c, _) = RawClient::connect(gw.smtp_addr()).await?;
    c.command("EHLO client.example.net").await?;
    // An attacker in the middle appends a command in plain text after STARTTLS; it
    // must not be answered, in plain text or once encrypted.
    let mut c = c.starttls(&format!("MAIL FROM:<{BOB}>\r\n")).await?;
    let ehlo = c.command("EHLO client.example.net").await?;
    assert!(ehlo.starts_with("250-relay.test"), "{ehlo}");
    assert!(
        c.command("RCPT TO:<x@relay.test>")
            .await?
            .starts_with("503"),
        "no MAIL FROM"
    );
    Ok(())
}

async fn starttls_can_be_turned_off(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, _, _) = gateway(backend, |c| c.smtp.starttls = false).await?;
    let (mut c, _) = RawClient::connect(gw.smtp_addr()).await?;
    let ehlo = c.command("EHLO client.example.net").await?;
    assert!(!ehlo.contains("STARTTLS"), "{ehlo}");
    assert!(c.command("STARTTLS").await?.starts_with("502"));
    Ok(())
}

async fn connections_per_address_are_limited(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, _, _) = gateway(backend, |c| c.smtp.max_connections_per_ip = 2).await?;
    let (mut first, _) = RawClient::connect(gw.smtp_addr()).await?;
    let (_second, _) = RawClient::connect(gw.smtp_addr()).await?;
    let third = RawClient::connect(gw.smtp_addr()).await;
    let refusal = third.map(|(_, greeting)| greeting).unwrap_or_default();
    assert!(
        refusal.starts_with("421 4.7.0") && refusal.contains("your address"),
        "{refusal}"
    );
    first.command("QUIT").await?;
    assert!(first.is_closed().await);
    // The slot is free again once a session ends.
    let mut again = None;
    for _ in 0..50 {
        let (c, greeting) = RawClient::connect(gw.smtp_addr()).await?;
        if greeting.starts_with("220") {
            again = Some(c);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "the slot was never freed");
    Ok(())
}

async fn a_trickling_client_is_dropped(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, _, _) = gateway(backend, |c| {
        c.smtp.session_timeout_secs = 2;
        c.smtp.idle_timeout_secs = 1;
    })
    .await?;
    let (mut c, _) = RawClient::connect(gw.smtp_addr()).await?;
    // One byte every 300 ms is never idle for a second, but the session still ends.
    let started = tokio::time::Instant::now();
    for byte in "NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP NOOP".chars() {
        if c.send(&byte.to_string()).await.is_err() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        if started.elapsed() > Duration::from_secs(4) {
            break;
        }
    }
    let reply = c.reply().await?;
    assert!(
        reply.starts_with("421 4.4.2") && reply.contains("too long"),
        "{reply}"
    );
    assert!(c.is_closed().await);
    Ok(())
}

/// Sends the `pieces` one every 300 ms (40 at most) until the server answers; the
/// answer.
async fn trickle_until_answered<S: AsyncRead + AsyncWrite>(
    c: &mut RawClient<S>,
    pieces: impl Iterator<Item = String>,
) -> anyhow::Result<String> {
    for piece in pieces.take(40) {
        if c.send(&piece).await.is_err() {
            break;
        }
        if let Ok(answer) = tokio::time::timeout(Duration::from_millis(300), c.reply()).await {
            return answer;
        }
    }
    anyhow::bail!("still connected after 12 s of trickling")
}

async fn a_command_trickling_in_is_cut_at_its_deadline(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, _, _) = gateway(backend, |c| {
        c.smtp.session_timeout_secs = 600;
        c.smtp.idle_timeout_secs = 1;
    })
    .await?;
    let (mut c, _) = RawClient::connect(gw.smtp_addr()).await?;
    // A byte every 300 ms, never a whole line: bytes do not make a command, so the
    // session ends a second after it began, long before its 10 minutes.
    let reply = trickle_until_answered(&mut c, "NOOP".chars().cycle().map(String::from)).await?;
    assert!(
        reply.starts_with("421 4.4.2") && reply.contains("Idle"),
        "{reply}"
    );
    assert!(c.is_closed().await);
    Ok(())
}

async fn message_data_must_keep_a_minimum_rate(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, relay, _) = gateway(backend, |c| {
        c.smtp.session_timeout_secs = 600;
        c.smtp.idle_timeout_secs = 1;
        c.smtp.min_data_rate = 1000;
    })
    .await?;
    let (mut c, _) = RawClient::connect(gw.smtp_addr()).await?;
    c.command("EHLO client.example.net").await?;
    start_data(&mut c, &relay).await?;
    c.send(&format!(
        "From: {BOB}\r\nTo: {relay}\r\nSubject: slow\r\n\r\n"
    ))
    .await?;
    // Ten bytes every 300 ms is 33 bytes/s, far below 1000: the message is cut off
    // although bytes keep coming (they used to reset the idle timer).
    let reply = trickle_until_answered(&mut c, std::iter::repeat("0123456789".into())).await?;
    assert!(reply.starts_with("421 4.4.2"), "{reply}");
    assert!(c.is_closed().await);
    Ok(())
}

async fn a_stalled_tls_handshake_is_reclaimed_to_make_room(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, _, _) = gateway(backend, |c| c.smtp.max_connections = 2).await?;
    let (mut stalled, _) = RawClient::connect(gw.smtp_addr()).await?;
    stalled.command("EHLO client.example.net").await?;
    assert!(stalled.command("STARTTLS").await?.starts_with("220"));
    // No ClientHello follows. Once it has been idle for a second, it is the session
    // to reclaim when the listener is full.
    tokio::time::sleep(pressure::MIN_IDLE_TO_RECLAIM + Duration::from_millis(200)).await;
    let (_second, greeting) = RawClient::connect(gw.smtp_addr()).await?;
    assert!(greeting.starts_with("220"), "{greeting}");
    let (_third, greeting) = RawClient::connect(gw.smtp_addr()).await?;
    assert!(greeting.starts_with("220"), "{greeting}");
    // Closed now, not when its 30 s handshake timeout runs out.
    assert!(
        stalled.is_closed().await,
        "the stalled handshake kept its place"
    );
    Ok(())
}

async fn a_session_has_a_command_budget(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, _, _) = gateway(backend, |c| c.smtp.max_commands = 5).await?;
    let (mut c, _) = RawClient::connect(gw.smtp_addr()).await?;
    for _ in 0..5 {
        assert!(c.command("NOOP").await?.starts_with("250"));
    }
    let last = c.command("NOOP").await?;
    assert!(
        last.starts_with("421 4.7.0") && last.contains("Too many commands"),
        "{last}"
    );
    assert!(c.is_closed().await);
    Ok(())
}

async fn overlong_command_lines_end_the_session(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, _, _) = gateway(backend, |c| c.smtp.max_line_length = 600).await?;
    let (mut c, _) = RawClient::connect(gw.smtp_addr()).await?;
    let fits = c.command(&format!("NOOP {}", "x".repeat(580))).await?;
    assert!(fits.starts_with("250"), "{fits}");
    let long = c.command(&format!("NOOP {}", "x".repeat(700))).await?;
    assert!(long.starts_with("500 5.5.2"), "{long}");
    assert!(c.is_closed().await);
    // The same without a line end: the session does not wait for one forever.
    let (mut c, _) = RawClient::connect(gw.smtp_addr()).await?;
    c.send(&"y".repeat(700)).await?;
    assert!(c.reply().await?.starts_with("500 5.5.2"));
    assert!(c.is_closed().await);
    Ok(())
}

async fn mail_loops_are_refused(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, relay, bobs_copy) = gateway(backend, |_| {}).await?;
    // What Bob received, sent back to a relay address (an automatic forward).
    let looped = String::from_utf8_lossy(&bobs_copy).replace("From: \"Alice", "From: \"Bob");
    let looped = format!("From: {BOB}\r\n{looped}");
    let refusal = smtp_refusal(send_mail(gw.smtp_addr(), BOB, &relay, looped.as_bytes()).await);
    assert!(
        refusal.starts_with("554") && refusal.contains("5.4.6"),
        "{refusal}"
    );
    let mut hops = String::new();
    for i in 0..101 {
        hops.push_str(&format!(
            "Received: from hop{i}.example by hop{}.example\r\n",
            i + 1
        ));
    }
    let far = format!("{hops}From: {BOB}\r\nTo: {relay}\r\nSubject: Re: Hello\r\n\r\nhi\r\n");
    let refusal = smtp_refusal(send_mail(gw.smtp_addr(), BOB, &relay, far.as_bytes()).await);
    assert!(
        refusal.starts_with("554") && refusal.contains("5.4.6"),
        "{refusal}"
    );
    Ok(())
}

async fn odd_recipients_get_an_answer_not_a_panic(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, _, _) = gateway(backend, |_| {}).await?;
    let (mut c, _) = RawClient::connect(gw.smtp_addr()).await?;
    assert!(c.command("EHLO client.example").await?.starts_with("250"));
    assert!(c.command("MAIL FROM:<> SMTPUTF8").await?.starts_with("250"));
    // A local part starting with "b" and a multi-byte character, where a VERP check
    // slicing two bytes would cut a character in half.
    for rcpt in [
        "bé@relay.test",
        "b-@relay.test",
        "b-x-y@relay.test",
        "B-@relay.test",
    ] {
        let answer = c.command(&format!("RCPT TO:<{rcpt}>")).await?;
        assert!(answer.starts_with("550 5.1.1"), "{rcpt}: {answer}");
    }
    assert!(
        c.command("NOOP").await?.starts_with("250"),
        "the session died"
    );
    Ok(())
}

both_backends!(
    odd_recipients_get_an_answer_not_a_panic,
    starttls_upgrades_the_session_in_place,
    commands_smuggled_after_starttls_are_dropped,
    starttls_can_be_turned_off,
    connections_per_address_are_limited,
    a_trickling_client_is_dropped,
    a_command_trickling_in_is_cut_at_its_deadline,
    message_data_must_keep_a_minimum_rate,
    a_stalled_tls_handshake_is_reclaimed_to_make_room,
    a_session_has_a_command_budget,
    overlong_command_lines_end_the_session,
    mail_loops_are_refused,
);
