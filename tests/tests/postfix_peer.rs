//! Postfix as the recipients' mail server. A gateway configured with nothing but its
//! relay domain (and the records `maskrelay dns print` writes, published in a DNS
//! server on loopback) delivers to Postfix by MX. What arrives passes dkimpy and
//! Mail::DKIM, and DMARC with both DKIM and SPF aligned. A recipient Postfix does not
//! know makes it send a real DSN to the VERP address, back through maskrelay's
//! listener: the delivery is bounced, the address suppressed, and the writer told
//! without a word about where.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use maskrelay_tests::Backend;
use maskrelay_tests::db::TestDb;
use maskrelay_tests::gateway::{TestGateway, test_config};
use maskrelay_tests::gateway_binary;
use maskrelay_tests::mail::assert_absent;
use maskrelay_tests::postfix::{Postfix, PostfixSetup};
use maskrelay_tests::process::{dkim_generate, run_cli};
use maskrelay_tests::verifiers::{both_verify, dmarc_passes};

const PATIENCE: Duration = Duration::from_secs(30);
const LOOPBACK: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// The address in the `Return-Path:` Postfix wrote: the envelope sender.
fn return_path(raw: &[u8]) -> anyhow::Result<String> {
    let text = String::from_utf8_lossy(raw);
    let line = text
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("return-path:"))
        .ok_or_else(|| anyhow::anyhow!("no Return-Path in:\n{text}"))?;
    Ok(line.split(['<', '>']).nth(1).unwrap_or_default().to_owned())
}

async fn cli(gw: &TestGateway, args: &[&str]) -> anyhow::Result<String> {
    run_cli(gateway_binary!(), &gw.config, args).await
}

async fn postfix_receives_signed_aligned_mail_and_bounces_come_back(
    backend: Backend,
) -> anyhow::Result<()> {
    // Postfix's port, which is every MX host's port for this gateway.
    let port = {
        let probe = tokio::net::TcpListener::bind((LOOPBACK, 0)).await?;
        probe.local_addr()?.port()
    };
    let db = TestDb::new(backend).await?;
    let mut config = test_config(&db, None)?;
    config.outbound.hold = false;
    config.outbound.mx_port = port;
    config.dns.public_address = Some(LOOPBACK.to_string());
    // The mail admin makes the keys before the first start.
    for (selector, algorithm) in [("ed1", "ed25519"), ("rsa1", "rsa")] {
        dkim_generate(gateway_binary!(), &config, selector, algorithm).await?;
    }
    let gw = TestGateway::start_with(db, config).await?;
    let zone = cli(&gw, &["dns", "print"]).await?;
    gw.dns.publish_zone(&zone)?;
    // Everything but reverse DNS checks out: the resolver answers PTR queries for
    // 127.0.0.1 from /etc/hosts ("localhost"), before asking any server.
    let checked = cli(&gw, &["dns", "check"])
        .await
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    let faults: Vec<&str> = checked.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        faults.len() == 1 && faults[0].starts_with("FAIL PTR: 127.0.0.1"),
        "{checked}"
    );
    assert_eq!(checked.matches("ok   ").count(), 6, "{checked}");
    for domain in ["inbox.test", "writer.test"] {
        gw.dns.a(&format!("mx.{domain}"), LOOPBACK);
        gw.dns.mx(domain, 10, &format!("mx.{domain}"));
    }
    let label = format!("{backend:?}").to_ascii_lowercase();
    let postfix = Postfix::start(&PostfixSetup {
        label: &label,
        listen: SocketAddr::from((LOOPBACK, port)),
        domains: &["inbox.test", "writer.test"],
        mailboxes: &["bob@inbox.test", "alice@writer.test"],
        relay_to: ("relay.test", gw.smtp_addr()),
    })
    .await?;
    gw.member("alice", "alice@writer.test", "Alice").await?;
    gw.member("bob", "bob@inbox.test", "Bob").await?;
    gw.member("carol", "carol@inbox.test", "Carol").await?;

    // Delivered by MX, signed twice, aligned.
    let (status, sent) = gw
        .message("alice", "bob", "Tennis?", "Tennis on Saturday at ten?")
        .await?;
    anyhow::ensure!(status == 202, "{sent}");
    let raw = postfix
        .wait_mail("bob@inbox.test", "Tennis on Saturday", PATIENCE)
        .await?;
    let selectors = both_verify(&raw, "relay.test", gw.dns.addr).await?;
    assert_eq!(selectors, ["ed1", "rsa1"]);
    let envelope_sender = return_path(&raw)?;
    assert!(
        envelope_sender.ends_with("@relay.test"),
        "{envelope_sender}"
    );
    dmarc_passes(
        &raw,
        gw.dns.addr,
        IpAddr::V4(LOOPBACK),
        "relay.test",
        &envelope_sender,
    )
    .await?;
    assert_absent(&raw, "alice@writer.test")?;
    if std::path::Path::new("/etc/ssl/private/ssl-cert-snakeoil.key").exists() {
        assert!(
            String::from_utf8_lossy(&raw).contains("with ESMTPS"),
            "Postfix offered STARTTLS; maskrelay should have used it"
        );
    }
    let id = sent["message_id"].as_str().unwrap_or_default();
    gw.wait_status(id, "sent").await?;

    // An unknown mailbox: Postfix accepts, then bounces to the VERP address.
    let (status, sent) = gw
        .message("alice", "carol", "Hello", "Are you coming too?")
        .await?;
    anyhow::ensure!(status == 202, "{sent}");
    let id = sent["message_id"].as_str().unwrap_or_default();
    let bounced = gw
        .wait_status_within(id, "bounced", PATIENCE)
        .await
        .map_err(|e| anyhow::anyhow!("{e}; Postfix log:\n{}", postfix.log()))?;
    assert_eq!(bounced["attempts"], 1, "{bounced}");
    let (_, carol) = gw
        .call(reqwest::Method::GET, "/v1/members/carol", None)
        .await?;
    assert_eq!(carol["deliverable"], false, "{carol}");
    let notice = postfix
        .wait_mail("alice@writer.test", "could not be delivered", PATIENCE)
        .await?;
    // What maskrelay wrote starts at its signature; Postfix prepends its own trace.
    let written = String::from_utf8_lossy(&notice);
    let written = written
        .find("DKIM-Signature:")
        .map_or(&*written, |at| &written[at..]);
    for secret in ["carol@inbox.test", "inbox.test", "postfix.test"] {
        assert_absent(written.as_bytes(), secret)?;
    }
    both_verify(&notice, "relay.test", gw.dns.addr).await?;
    gw.stop().await;
    drop(postfix);
    Ok(())
}

mod sqlite {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(postfix_tests),
        ignore = "Postfix is not installed (apt-get install postfix; run as root)"
    )]
    async fn postfix_receives_signed_aligned_mail_and_bounces_come_back() -> anyhow::Result<()> {
        super::postfix_receives_signed_aligned_mail_and_bounces_come_back(
            maskrelay_tests::Backend::Sqlite,
        )
        .await
    }
}

mod postgres {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(all(postfix_tests, pg_tests)),
        ignore = "needs Postfix (apt-get install postfix; root) and MASKRELAY_TEST_POSTGRES_URL"
    )]
    async fn postfix_receives_signed_aligned_mail_and_bounces_come_back() -> anyhow::Result<()> {
        super::postfix_receives_signed_aligned_mail_and_bounces_come_back(
            maskrelay_tests::Backend::Postgres,
        )
        .await
    }
}
