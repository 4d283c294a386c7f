//! DKIM: keys made and managed with `maskrelay dkim`, every relayed message signed
//! with Ed25519 and RSA for the relay domain, and both signatures verified by two
//! independent verifiers (dkimpy, Mail::DKIM) against the records `dkim generate`
//! printed, published in a DNS server on loopback.

use std::time::Duration;

use maskrelay_tests::db::TestDb;
use maskrelay_tests::gateway::{TestGateway, test_config};
use maskrelay_tests::gateway_binary;
use maskrelay_tests::process::{dkim_generate, run_cli};
use maskrelay_tests::smarthost::{Delivered, Smarthost};
use maskrelay_tests::verifiers::both_verify;
use maskrelay_tests::{Backend, both_backends};

const WAIT: Duration = Duration::from_secs(10);

/// The name and value of the TXT record in `dkim generate`'s output, strings joined.
fn published(output: &str) -> anyhow::Result<(String, String)> {
    let line = output
        .lines()
        .find(|l| l.contains("._domainkey."))
        .ok_or_else(|| anyhow::anyhow!("no record in {output:?}"))?;
    let name = line
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_end_matches('.')
        .to_owned();
    let strings: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
    anyhow::ensure!(
        strings.iter().all(|s| s.len() <= 255),
        "a string over 255 bytes: {line}"
    );
    Ok((name, strings.concat()))
}

/// `maskrelay dkim generate` for `config`'s database; what it printed.
async fn generate_key(
    config: &maskrelay::Config,
    selector: &str,
    algorithm: &str,
) -> anyhow::Result<String> {
    dkim_generate(gateway_binary!(), config, selector, algorithm).await
}

/// Makes a key with the CLI and publishes its record; returns the record's value.
async fn generate(gw: &TestGateway, selector: &str, algorithm: &str) -> anyhow::Result<String> {
    let out = generate_key(&gw.config, selector, algorithm).await?;
    let (name, value) = published(&out)?;
    anyhow::ensure!(
        name == format!("{selector}._domainkey.relay.test"),
        "{name}"
    );
    gw.dns.txt(&name, &value);
    Ok(value)
}

/// A gateway whose database already holds an Ed25519 and an RSA key (made by the
/// CLI before it starts, as a mail admin would), reloading keys every second.
async fn signing_gateway(backend: Backend, sink: &Smarthost) -> anyhow::Result<TestGateway> {
    let db = TestDb::new(backend).await?;
    let mut config = test_config(&db, Some(sink))?;
    config.outbound.dkim_reload_secs = 1;
    let mut outputs = Vec::new();
    for (selector, algorithm) in [("ed1", "ed25519"), ("rsa1", "rsa")] {
        outputs.push(generate_key(&config, selector, algorithm).await?);
    }
    let gw = TestGateway::start_with(db, config).await?;
    for out in outputs {
        let (name, value) = published(&out)?;
        gw.dns.txt(&name, &value);
    }
    gw.member("alice", "alice@example.com", "Alice").await?;
    gw.member("bob", "bob@example.net", "Bob").await?;
    Ok(gw)
}

/// The selectors whose signatures on `delivered` verify with both verifiers.
async fn verified(gw: &TestGateway, delivered: &Delivered) -> anyhow::Result<Vec<String>> {
    both_verify(&delivered.data, "relay.test", gw.dns.addr).await
}

fn algorithms(delivered: &Delivered) -> Vec<String> {
    let text = delivered.text();
    let mut found: Vec<String> = text
        .split("a=")
        .skip(1)
        .filter_map(|rest| rest.split(';').next())
        .filter(|a| a.ends_with("-sha256"))
        .map(str::to_owned)
        .collect();
    found.sort();
    found
}

async fn relayed_mail_carries_two_signatures_both_verifiers_pass(
    backend: Backend,
) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    let gw = signing_gateway(backend, &sink).await?;
    let (status, body) = gw.message("alice", "bob", "Tennis?", "Saturday?").await?;
    anyhow::ensure!(status == 202, "{body}");
    let delivered = sink.wait_for(1, WAIT).await?.remove(0);
    let text = delivered.text();
    assert_eq!(
        verified(&gw, &delivered).await?,
        vec!["ed1", "rsa1"],
        "{text}"
    );
    assert_eq!(algorithms(&delivered), vec!["ed25519-sha256", "rsa-sha256"]);
    // Aligned with From: (DMARC): d= is the relay domain, which sends it.
    let from = maskrelay_tests::mail::from_address(&maskrelay_tests::mail::parse(&delivered.data)?);
    assert!(from.ends_with("@relay.test"), "{from}");
    // Relaxed/relaxed, From oversigned, the threading and content headers covered.
    let unfolded = text.replace("\r\n\t", " ").replace("\r\n ", " ");
    for signature in unfolded
        .lines()
        .filter(|l| l.starts_with("DKIM-Signature:"))
    {
        let h = signature
            .split(';')
            .map(str::trim)
            .find_map(|t| t.strip_prefix("h="))
            .unwrap_or_default()
            .replace(' ', "")
            .to_ascii_lowercase();
        let listed: Vec<&str> = h.split(':').collect();
        assert_eq!(
            listed.iter().filter(|n| **n == "from").count(),
            2,
            "{signature}"
        );
        for needed in [
            "to",
            "subject",
            "date",
            "message-id",
            "mime-version",
            "content-type",
        ] {
            assert!(listed.contains(&needed), "{needed} not signed: {signature}");
        }
        assert!(signature.contains("c=relaxed/relaxed"), "{signature}");
    }

    // A reply by mail, threaded, is signed the same way.
    let reply =
        format!("From: bob@example.net\r\nTo: {from}\r\nSubject: Re: Tennis?\r\n\r\nYes!\r\n");
    maskrelay_tests::gateway::send_mail(gw.smtp_addr(), "bob@example.net", &from, reply.as_bytes())
        .await?;
    let second = sink.wait_for(2, WAIT).await?.remove(1);
    assert_eq!(verified(&gw, &second).await?, vec!["ed1", "rsa1"]);
    Ok(())
}

async fn a_new_key_takes_over_and_retiring_it_hands_signing_back(
    backend: Backend,
) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    let gw = signing_gateway(backend, &sink).await?;
    generate(&gw, "ed2", "ed25519").await?;
    let list = run_cli(gateway_binary!(), &gw.config, &["dkim", "list"]).await?;
    assert!(
        list.contains("ed1\ted25519") && list.contains("published, not signing"),
        "{list}"
    );
    assert!(
        list.contains("ed2\ted25519") && list.contains("rsa1\trsa"),
        "{list}"
    );

    // Within a reload or two the new key signs; the old one is still published.
    let mut sent = 0;
    let selectors = signing_until(&gw, &sink, &mut sent, |s| s.contains(&"ed2".into())).await?;
    assert_eq!(selectors, vec!["ed2".to_owned(), "rsa1".to_owned()]);

    // Retiring the newest key (say it leaked) hands signing back to the previous one.
    run_cli(gateway_binary!(), &gw.config, &["dkim", "retire", "ed2"]).await?;
    let list = run_cli(gateway_binary!(), &gw.config, &["dkim", "list"]).await?;
    assert!(
        list.contains("ed2\ted25519") && list.contains("retired"),
        "{list}"
    );
    let selectors = signing_until(&gw, &sink, &mut sent, |s| !s.contains(&"ed2".into())).await?;
    assert_eq!(selectors, vec!["ed1".to_owned(), "rsa1".to_owned()]);
    Ok(())
}

/// Sends messages until the selectors that verify on one satisfy `done` (keys are
/// reloaded every second), or 40 more were sent; those selectors. `sent` counts the
/// messages so far.
async fn signing_until(
    gw: &TestGateway,
    sink: &Smarthost,
    sent: &mut usize,
    done: impl Fn(&[String]) -> bool,
) -> anyhow::Result<Vec<String>> {
    for _ in 0..40 {
        let (status, body) = gw.message("alice", "bob", "s", &format!("m{sent}")).await?;
        anyhow::ensure!(status == 202, "{body}");
        *sent += 1;
        let delivered = sink.wait_for(*sent, WAIT).await?.remove(*sent - 1);
        let found = verified(gw, &delivered).await?;
        if done(&found) {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    anyhow::bail!("the signing keys did not change after 40 messages")
}

async fn the_cli_says_what_is_wrong(backend: Backend) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    let gw = signing_gateway(backend, &sink).await?;
    for (args, said) in [
        (
            vec!["dkim", "generate", "--selector", "ed1"],
            "already in use",
        ),
        (
            vec!["dkim", "generate", "--selector", "bad_selector"],
            "is not a selector",
        ),
        (
            vec!["dkim", "generate", "--selector", "x1", "--algorithm", "dsa"],
            "use ed25519 or rsa",
        ),
        (vec!["dkim", "retire", "nope"], "no DKIM key with selector"),
    ] {
        let refused = run_cli(gateway_binary!(), &gw.config, &args).await;
        let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(message.contains(said), "{args:?}: {message}");
    }
    Ok(())
}

both_backends!(
    relayed_mail_carries_two_signatures_both_verifiers_pass,
    a_new_key_takes_over_and_retiring_it_hands_signing_back,
    the_cli_says_what_is_wrong,
);
