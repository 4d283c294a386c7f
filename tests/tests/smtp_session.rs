//! The SMTP listener's protocol behaviour, byte for byte over a real socket.

use std::time::Duration;

use maskrelay_tests::db::TestDb;
use maskrelay_tests::gateway::{TestGateway, test_config};
use maskrelay_tests::mail::{from_address, parse};
use maskrelay_tests::raw::RawClient;
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, both_backends};

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.net";

/// A gateway with small limits, where Alice wrote to Bob; returns Alice's relay address.
async fn gateway(backend: Backend) -> anyhow::Result<(Smarthost, TestGateway, String)> {
    let sink = Smarthost::start().await?;
    let db = TestDb::new(backend).await?;
    let mut config = test_config(&db, Some(&sink))?;
    config.smtp.max_message_size = 2048;
    config.smtp.max_errors = 4;
    config.smtp.max_recipients = 2;
    let gw = TestGateway::start_with(db, config).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    gw.message("alice", "bob", "Hello", "Hi").await?;
    let first = sink.wait_for(1, Duration::from_secs(10)).await?.remove(0);
    let relay = from_address(&parse(&first.data)?);
    Ok((sink, gw, relay))
}

fn code(reply: &str) -> &str {
    reply.get(..3).unwrap_or(reply)
}

async fn greeting_and_ehlo_advertise_extensions(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, _) = gateway(backend).await?;
    let (mut c, greeting) = RawClient::connect(gw.smtp_addr()).await?;
    assert!(greeting.starts_with("220 relay.test"), "{greeting}");
    let ehlo = c.command("EHLO client.example.net").await?;
    for ext in [
        "250-relay.test",
        "PIPELINING",
        "SIZE 2048",
        "8BITMIME",
        "SMTPUTF8",
        "ENHANCEDSTATUSCODES",
    ] {
        assert!(ehlo.contains(ext), "{ext} missing from {ehlo}");
    }
    assert_eq!(c.command("NOOP").await?, "250 2.0.0 OK");
    assert!(c.command("HELP").await?.starts_with("214"));
    assert!(c.command("VRFY bob").await?.starts_with("252"));
    assert_eq!(c.command("QUIT").await?, "221 2.0.0 Bye");
    assert!(c.is_closed().await);
    gw.stop().await;
    Ok(())
}

async fn commands_out_of_order_get_503(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, relay) = gateway(backend).await?;
    let (mut c, _) = RawClient::connect(gw.smtp_addr()).await?;
    assert!(
        c.command(&format!("MAIL FROM:<{BOB}>"))
            .await?
            .starts_with("503 5.5.1")
    );
    c.command("EHLO client.example.net").await?;
    assert!(
        c.command(&format!("RCPT TO:<{relay}>"))
            .await?
            .starts_with("503 5.5.1")
    );
    assert!(c.command("DATA").await?.starts_with("503 5.5.1"));
    gw.stop().await;
    Ok(())
}

async fn syntax_errors_and_unknown_commands_are_answered(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, _) = gateway(backend).await?;
    let (mut c, _) = RawClient::connect(gw.smtp_addr()).await?;
    c.command("EHLO client.example.net").await?;
    assert!(c.command("FOO bar").await?.starts_with("500 5.5.1"));
    assert!(c.command("MAIL bob@example.net").await?.starts_with("501"));
    // Members do not log in: AUTH is not offered.
    assert!(c.command("AUTH PLAIN").await?.starts_with("502 5.5.1"));
    gw.stop().await;
    Ok(())
}

async fn pipelined_transaction_is_answered_in_order(backend: Backend) -> anyhow::Result<()> {
    let (sink, gw, relay) = gateway(backend).await?;
    let (mut c, _) = RawClient::connect(gw.smtp_addr()).await?;
    c.command("EHLO client.example.net").await?;
    c.send(&format!(
        "MAIL FROM:<{BOB}>\r\nRCPT TO:<nobody00000000000@relay.test>\r\nRCPT TO:<{relay}>\r\nDATA\r\n"
    ))
    .await?;
    assert!(c.reply().await?.starts_with("250 2.1.0"));
    assert!(c.reply().await?.starts_with("550 5.1.1"));
    assert!(c.reply().await?.starts_with("250 2.1.5"));
    assert!(c.reply().await?.starts_with("354"));
    c.send(&format!(
        "From: {BOB}\r\nSubject: Re: Hello\r\n\r\n..dot-stuffed line\r\n.\r\n"
    ))
    .await?;
    assert_eq!(c.reply().await?, "250 2.0.0 Message accepted for delivery");
    let delivered = sink.wait_for(2, Duration::from_secs(10)).await?;
    assert!(
        delivered[1].text().contains("\n.dot-stuffed line"),
        "{}",
        delivered[1].text()
    );
    // RSET starts over; a second transaction in the same session works.
    assert_eq!(c.command("RSET").await?, "250 2.0.0 Transaction reset");
    assert!(
        c.command(&format!("MAIL FROM:<{BOB}>"))
            .await?
            .starts_with("250")
    );
    gw.stop().await;
    Ok(())
}

async fn oversized_message_is_refused_and_the_session_stays_in_step(
    backend: Backend,
) -> anyhow::Result<()> {
    let (sink, gw, relay) = gateway(backend).await?;
    let (mut c, _) = RawClient::connect(gw.smtp_addr()).await?;
    c.command("EHLO client.example.net").await?;
    assert!(
        c.command(&format!("MAIL FROM:<{BOB}> SIZE=999999"))
            .await?
            .starts_with("552 5.3.4")
    );
    c.command(&format!("MAIL FROM:<{BOB}>")).await?;
    c.command(&format!("RCPT TO:<{relay}>")).await?;
    assert!(c.command("DATA").await?.starts_with("354"));
    let line = "x".repeat(100);
    let mut big = format!("From: {BOB}\r\nSubject: big\r\n\r\n");
    for _ in 0..200 {
        big.push_str(&line);
        big.push_str("\r\n");
    }
    big.push_str(".\r\n");
    c.send(&big).await?;
    assert!(c.reply().await?.starts_with("552 5.3.4"));
    // The rest of the message was read as data, not as commands.
    assert_eq!(c.command("NOOP").await?, "250 2.0.0 OK");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sink.delivered().len(), 1);
    gw.stop().await;
    Ok(())
}

async fn too_many_recipients_and_too_many_errors(backend: Backend) -> anyhow::Result<()> {
    let (sink, gw, alice) = gateway(backend).await?;
    // Bob gets two more relay addresses, from Carol and Dave.
    for (id, email) in [("carol", "carol@example.org"), ("dave", "dave@example.org")] {
        gw.member(id, email, id).await?;
        gw.message(id, "bob", "Hello", "Hi").await?;
    }
    let delivered = sink.wait_for(3, Duration::from_secs(10)).await?;
    let carol = from_address(&parse(&delivered[1].data)?);
    let dave = from_address(&parse(&delivered[2].data)?);
    let (mut c, _) = RawClient::connect(gw.smtp_addr()).await?;
    c.command("EHLO client.example.net").await?;
    c.command(&format!("MAIL FROM:<{BOB}>")).await?;
    assert!(
        c.command(&format!("RCPT TO:<{alice}>"))
            .await?
            .starts_with("250")
    );
    // A repeated recipient is accepted once and does not count twice.
    assert!(
        c.command(&format!("RCPT TO:<{alice}>"))
            .await?
            .starts_with("250")
    );
    assert!(
        c.command(&format!("RCPT TO:<{carol}>"))
            .await?
            .starts_with("250")
    );
    assert!(
        c.command(&format!("RCPT TO:<{dave}>"))
            .await?
            .starts_with("452 4.5.3")
    );
    // max_errors is 4; a 452 for too many recipients is not the client's error.
    for _ in 0..3 {
        assert_eq!(code(&c.command("BOGUS").await?), "500");
    }
    // The fourth error is answered, then the session is closed with 421.
    assert_eq!(code(&c.command("BOGUS").await?), "500");
    let last = c.reply().await?;
    assert!(last.starts_with("421 4.7.0"), "{last}");
    assert!(c.is_closed().await);
    gw.stop().await;
    Ok(())
}

async fn shutdown_answers_421_to_open_sessions(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw, _) = gateway(backend).await?;
    let (mut c, _) = RawClient::connect(gw.smtp_addr()).await?;
    c.command("EHLO client.example.net").await?;
    let addr = gw.smtp_addr();
    let stopping = tokio::spawn(gw.stop());
    assert!(c.reply().await?.starts_with("421 4.3.0"));
    stopping.await?;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener must be closed"
    );
    Ok(())
}

both_backends!(
    greeting_and_ehlo_advertise_extensions,
    commands_out_of_order_get_503,
    syntax_errors_and_unknown_commands_are_answered,
    pipelined_transaction_is_answered_in_order,
    oversized_message_is_refused_and_the_session_stays_in_step,
    too_many_recipients_and_too_many_errors,
    shutdown_answers_421_to_open_sessions,
);
