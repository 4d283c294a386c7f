//! A relay address is a capability: a reply counts as Bob's only when its `From:`
//! domain is proven by DMARC, or, without a DMARC record, by aligned SPF or DKIM. The
//! gateway asks a real DNS server on loopback (`tests/src/dns.rs`) that publishes the
//! records of `bob.example` each test needs; replies are sent over SMTP from
//! 127.0.0.1, and some are DKIM-signed with an Ed25519 key published there.

use std::time::Duration;

use base64::Engine;
use mail_auth::common::crypto::Ed25519Key;
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::DkimSigner;
use maskrelay_tests::gateway::{TestGateway, send_mail, smtp_refusal};
use maskrelay_tests::mail::{from_address, parse};
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, both_backends};
use reqwest::Method;
use serde_json::json;

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@bob.example";
const WAIT: Duration = Duration::from_secs(10);
/// SPF that does not cover 127.0.0.1: mail from the test client fails it.
const SPF_ELSEWHERE: &str = "v=spf1 ip4:192.0.2.1 -all";

/// Whether an SMTP refusal has this reply code and enhanced status.
fn is(refusal: &str, code: &str, status: &str) -> bool {
    refusal.starts_with(code) && refusal.contains(&format!("): {status}"))
}

struct Setup {
    sink: Smarthost,
    gw: TestGateway,
    alice_relay: String,
    conversation_id: String,
}

async fn setup(backend: Backend) -> anyhow::Result<Setup> {
    let sink = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &sink).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    let (status, created) = gw.message("alice", "bob", "Hello", "Hi Bob").await?;
    anyhow::ensure!(status == 202, "{created}");
    let first = sink.wait_for(1, WAIT).await?.remove(0);
    Ok(Setup {
        alice_relay: from_address(&parse(&first.data)?),
        conversation_id: created["conversation_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        sink,
        gw,
    })
}

impl Setup {
    fn reply(&self, from: &str) -> String {
        format!(
            "From: Bob <{from}>\r\nTo: {}\r\nSubject: Re: Hello\r\nMessage-ID: <r1@bob.example>\r\n\r\nSee you then.\r\n",
            self.alice_relay
        )
    }

    /// Sends `raw` with envelope sender `mail_from`; "accepted" or the refusal.
    async fn send(&self, mail_from: &str, raw: &str) -> String {
        smtp_refusal(
            send_mail(
                self.gw.smtp_addr(),
                mail_from,
                &self.alice_relay,
                raw.as_bytes(),
            )
            .await,
        )
    }

    /// How the latest relayed reply's sender was authenticated.
    async fn recorded(&self) -> anyhow::Result<String> {
        let path = format!("/v1/conversations/{}", self.conversation_id);
        let (_, conv) = self.gw.call(Method::GET, &path, None).await?;
        Ok(conv["messages"][0]["sender_authentication"]
            .as_str()
            .unwrap_or("none")
            .to_owned())
    }

    /// Publishes a fresh Ed25519 key for `domain` under selector `s1`; returns a
    /// function that signs a message with it.
    fn dkim_key(
        &self,
        domain: &'static str,
    ) -> anyhow::Result<impl Fn(&str) -> anyhow::Result<String>> {
        let pkcs8 = Ed25519Key::generate_pkcs8().map_err(|e| anyhow::anyhow!("{e}"))?;
        let public = Ed25519Key::from_pkcs8_der(&pkcs8)
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .public_key();
        let p = base64::engine::general_purpose::STANDARD.encode(public);
        self.gw.dns.txt(
            &format!("s1._domainkey.{domain}"),
            &format!("v=DKIM1; k=ed25519; p={p}"),
        );
        Ok(move |raw: &str| {
            let key = Ed25519Key::from_pkcs8_der(&pkcs8).map_err(|e| anyhow::anyhow!("{e}"))?;
            let signature = DkimSigner::from_key(key)
                .domain(domain)
                .selector("s1")
                .headers(["From", "To", "Subject", "Message-ID"])
                .sign(raw.as_bytes())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(format!("{}{raw}", signature.to_header()))
        })
    }
}

async fn dmarc_pass_through_aligned_spf_is_accepted(backend: Backend) -> anyhow::Result<()> {
    let s = setup(backend).await?;
    s.gw.dns.txt("_dmarc.bob.example", "v=DMARC1; p=reject");
    assert_eq!(s.send(BOB, &s.reply(BOB)).await, "accepted");
    s.sink.wait_for(2, WAIT).await?;
    assert_eq!(s.recorded().await?, "dmarc-pass");
    Ok(())
}

async fn spf_aligned_pass_without_dmarc_is_accepted(backend: Backend) -> anyhow::Result<()> {
    let s = setup(backend).await?;
    assert_eq!(s.send(BOB, &s.reply(BOB)).await, "accepted");
    s.sink.wait_for(2, WAIT).await?;
    assert_eq!(s.recorded().await?, "spf-aligned-pass");
    Ok(())
}

async fn spoofed_domain_with_dmarc_reject_is_refused(backend: Backend) -> anyhow::Result<()> {
    let s = setup(backend).await?;
    s.gw.dns.txt("bob.example", SPF_ELSEWHERE);
    s.gw.dns.txt("_dmarc.bob.example", "v=DMARC1; p=reject");
    let refusal = s.send(BOB, &s.reply(BOB)).await;
    assert!(
        is(&refusal, "550", "5.7.26") && refusal.contains("did not prove"),
        "{refusal}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.sink.delivered().len(), 1);
    Ok(())
}

async fn dkim_signed_reply_through_a_forwarder_is_accepted(backend: Backend) -> anyhow::Result<()> {
    let s = setup(backend).await?;
    s.gw.dns.txt("bob.example", SPF_ELSEWHERE);
    s.gw.dns.txt("_dmarc.bob.example", "v=DMARC1; p=reject");
    let sign = s.dkim_key("bob.example")?;
    // A forwarding service's envelope passes SPF for its own domain, not Bob's.
    let signed = sign(&s.reply(BOB))?;
    assert_eq!(
        s.send("srs0=abc@forwarder.example", &signed).await,
        "accepted"
    );
    s.sink.wait_for(2, WAIT).await?;
    assert_eq!(s.recorded().await?, "dmarc-pass");
    Ok(())
}

async fn dkim_aligned_pass_without_dmarc_is_accepted(backend: Backend) -> anyhow::Result<()> {
    let s = setup(backend).await?;
    s.gw.dns.txt("bob.example", SPF_ELSEWHERE);
    let sign = s.dkim_key("bob.example")?;
    let signed = sign(&s.reply(BOB))?;
    assert_eq!(s.send(BOB, &signed).await, "accepted");
    s.sink.wait_for(2, WAIT).await?;
    assert_eq!(s.recorded().await?, "dkim-aligned-pass");
    Ok(())
}

async fn tampered_or_misaligned_signatures_are_refused(backend: Backend) -> anyhow::Result<()> {
    let s = setup(backend).await?;
    s.gw.dns.txt("bob.example", SPF_ELSEWHERE);
    let sign_bob = s.dkim_key("bob.example")?;
    let tampered = sign_bob(&s.reply(BOB))?.replace("See you then.", "Send me money.");
    let refusal = s.send(BOB, &tampered).await;
    assert!(is(&refusal, "550", "5.7.26"), "tampered: {refusal}");
    // Signed, validly, by a domain that is not Bob's.
    let sign_other = s.dkim_key("other.example")?;
    let refusal = s.send(BOB, &sign_other(&s.reply(BOB))?).await;
    assert!(is(&refusal, "550", "5.7.26"), "misaligned: {refusal}");
    Ok(())
}

async fn misaligned_spf_alone_is_refused(backend: Backend) -> anyhow::Result<()> {
    let s = setup(backend).await?;
    s.gw.dns.txt("bob.example", SPF_ELSEWHERE);
    let refusal = s.send("srs0=abc@forwarder.example", &s.reply(BOB)).await;
    assert!(is(&refusal, "550", "5.7.26"), "{refusal}");
    Ok(())
}

async fn unauthenticated_domains_follow_the_organisation_setting(
    backend: Backend,
) -> anyhow::Result<()> {
    let s = setup(backend).await?;
    s.gw.dns.nothing("bob.example");
    let refusal = s.send(BOB, &s.reply(BOB)).await;
    assert!(
        is(&refusal, "550", "5.7.26") && refusal.contains("publishes no SPF record"),
        "{refusal}"
    );
    let (status, org) =
        s.gw.call(
            Method::PATCH,
            "/v1/organisation",
            Some(&json!({"unauthenticated_senders": "accept"})),
        )
        .await?;
    assert_eq!(status, 200, "{org}");
    assert_eq!(org["settings"]["unauthenticated_senders"], "accept");
    assert_eq!(s.send(BOB, &s.reply(BOB)).await, "accepted");
    s.sink.wait_for(2, WAIT).await?;
    assert_eq!(s.recorded().await?, "unauthenticated");
    let (status, bad) =
        s.gw.call(
            Method::PATCH,
            "/v1/organisation",
            Some(&json!({"unauthenticated_senders": "maybe"})),
        )
        .await?;
    assert_eq!(
        (status, &bad["error"]["field"]),
        (422, &json!("unauthenticated_senders"))
    );
    Ok(())
}

async fn dns_failure_asks_the_sender_to_try_later(backend: Backend) -> anyhow::Result<()> {
    let s = setup(backend).await?;
    s.gw.dns.broken("bob.example");
    s.gw.dns.broken("_dmarc.bob.example");
    let refusal = s.send(BOB, &s.reply(BOB)).await;
    assert!(is(&refusal, "451", "4.7.5"), "{refusal}");
    Ok(())
}

async fn the_envelope_alone_does_not_make_a_member(backend: Backend) -> anyhow::Result<()> {
    let s = setup(backend).await?;
    // Bob's envelope passes SPF, but the From: line names someone else.
    let refusal = s.send(BOB, &s.reply("mallory@bob.example")).await;
    assert!(
        is(&refusal, "550", "5.7.1 ") && refusal.contains("only accepts replies from the member"),
        "{refusal}"
    );
    Ok(())
}

both_backends!(
    dmarc_pass_through_aligned_spf_is_accepted,
    spf_aligned_pass_without_dmarc_is_accepted,
    spoofed_domain_with_dmarc_reject_is_refused,
    dkim_signed_reply_through_a_forwarder_is_accepted,
    dkim_aligned_pass_without_dmarc_is_accepted,
    tampered_or_misaligned_signatures_are_refused,
    misaligned_spf_alone_is_refused,
    unauthenticated_domains_follow_the_organisation_setting,
    dns_failure_asks_the_sender_to_try_later,
    the_envelope_alone_does_not_make_a_member,
);
