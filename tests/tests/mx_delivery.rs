//! Delivery by MX: maskrelay resolves each recipient's domain in a DNS server on
//! loopback and talks to test SMTP servers on 127.x.y.z, which accept, defer,
//! refuse, hang up, rate-limit or offer STARTTLS with a self-signed certificate.

use std::time::Duration;

use maskrelay_tests::both_backends;
use maskrelay_tests::db::Backend;
use maskrelay_tests::gateway::TestGateway;
use maskrelay_tests::mx_hosts::{MxHosts, gateway_delivering_by_mx};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

/// Alice (at writer.test, whose MX is `writer_host`) writes to `to`; returns the
/// message id.
async fn alice_writes(gw: &TestGateway, to: &str, email: &str) -> anyhow::Result<String> {
    gw.member(to, email, to).await?;
    let (status, created) = gw.message("alice", to, "Hello", "A short note.").await?;
    anyhow::ensure!(status == 202, "{status} {created}");
    Ok(created["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

async fn with_alice(gw: &TestGateway) -> anyhow::Result<()> {
    gw.member("alice", "alice@writer.test", "Alice").await
}

fn last_error(state: &Value) -> &str {
    state["last_error"].as_str().unwrap_or_default()
}

async fn delivers_over_starttls_reusing_one_connection(backend: Backend) -> anyhow::Result<()> {
    let mx = MxHosts::start(1).await?;
    mx.hosts[0].offer_starttls("mx0.tls.test")?;
    let gw = gateway_delivering_by_mx(backend, &mx, |c| {
        c.outbound.connections_per_domain = 1;
    })
    .await?;
    mx.publish(&gw.dns, "tls.test", 10, 0);
    with_alice(&gw).await?;
    gw.member("bob", "bob@tls.test", "Bob").await?;
    for i in 0..3 {
        let (status, _) = gw
            .message("alice", "bob", &format!("Note {i}"), "x")
            .await?;
        anyhow::ensure!(status == 202);
    }
    let delivered = mx.hosts[0].wait_for(3, WAIT).await?;
    for d in &delivered {
        assert!(d.encrypted, "every message goes over STARTTLS");
        assert_eq!(d.rcpt_to, vec!["bob@tls.test".to_owned()]);
        assert!(
            d.mail_from.starts_with("b-") && d.mail_from.ends_with("@relay.test"),
            "VERP envelope sender: {}",
            d.mail_from
        );
    }
    assert_eq!(
        mx.hosts[0].connections(),
        1,
        "three messages to one host share one connection"
    );
    gw.stop().await;
    Ok(())
}

async fn moves_to_the_next_mx_after_a_refused_connection_or_greeting(
    backend: Backend,
) -> anyhow::Result<()> {
    let mx = MxHosts::start(2).await?;
    let gw = gateway_delivering_by_mx(backend, &mx, |_| {}).await?;
    // Best: nothing listens. Then one that greets with 421. Then one that works.
    gw.dns.a("down.next.test", mx.dead_ip());
    gw.dns.add_mx("next.test", 5, "down.next.test");
    mx.publish(&gw.dns, "next.test", 10, 0);
    mx.publish(&gw.dns, "next.test", 20, 1);
    mx.hosts[0].refuse_next_connection("421 4.3.2 System not accepting network messages");
    with_alice(&gw).await?;
    let id = alice_writes(&gw, "bob", "bob@next.test").await?;
    mx.hosts[1].wait_for(1, WAIT).await?;
    let state = gw.wait_status(&id, "sent").await?;
    assert_eq!(state["attempts"], 1, "one attempt, three hosts: {state}");
    assert_eq!(mx.hosts[0].connections(), 1);
    assert!(mx.hosts[0].delivered().is_empty());
    gw.stop().await;
    Ok(())
}

async fn a_4xx_is_retried_and_a_5xx_fails_and_tells_the_writer(
    backend: Backend,
) -> anyhow::Result<()> {
    let mx = MxHosts::start(2).await?;
    let gw = gateway_delivering_by_mx(backend, &mx, |_| {}).await?;
    mx.publish(&gw.dns, "d.test", 10, 0);
    mx.publish(&gw.dns, "writer.test", 10, 1);
    with_alice(&gw).await?;

    mx.hosts[0].fail_next("451 4.3.0 Try again later");
    let id = alice_writes(&gw, "bob", "bob@d.test").await?;
    let deferred = gw.wait_status(&id, "deferred").await?;
    assert_eq!(last_error(&deferred), "smtp 451 4.3.0", "{deferred}");
    gw.wait_status(&id, "sent").await?;
    assert_eq!(mx.hosts[0].delivered().len(), 1);
    assert_eq!(mx.hosts[0].transactions(), 2);

    mx.hosts[0].fail_next("550 5.1.1 <carol@d.test>: Recipient address rejected");
    let id = alice_writes(&gw, "carol", "carol@d.test").await?;
    let failed = gw.wait_status(&id, "failed").await?;
    assert_eq!(
        last_error(&failed),
        "smtp 550 5.1.1",
        "no remote text: {failed}"
    );
    let notice = mx.hosts[1]
        .wait_containing("could not be delivered", WAIT)
        .await?;
    assert_eq!(notice.rcpt_to, vec!["alice@writer.test".to_owned()]);
    assert!(
        !notice.text().contains("carol@d.test"),
        "the notice leaks nothing"
    );
    gw.stop().await;
    Ok(())
}

async fn a_message_cut_off_mid_data_is_sent_again_once(backend: Backend) -> anyhow::Result<()> {
    let mx = MxHosts::start(1).await?;
    let gw = gateway_delivering_by_mx(backend, &mx, |_| {}).await?;
    mx.publish(&gw.dns, "cut.test", 10, 0);
    with_alice(&gw).await?;
    mx.hosts[0].hang_up_next_data();
    let id = alice_writes(&gw, "bob", "bob@cut.test").await?;
    let deferred = gw.wait_status(&id, "deferred").await?;
    assert!(
        last_error(&deferred).starts_with("connection"),
        "{deferred}"
    );
    gw.wait_status(&id, "sent").await?;
    assert_eq!(mx.hosts[0].delivered().len(), 1, "delivered exactly once");
    assert_eq!(mx.hosts[0].transactions(), 2);
    gw.stop().await;
    Ok(())
}

async fn a_rate_limited_destination_is_paused_alone(backend: Backend) -> anyhow::Result<()> {
    let mx = MxHosts::start(2).await?;
    let gw = gateway_delivering_by_mx(backend, &mx, |c| {
        c.outbound.rate_limit_pause_secs = 4;
    })
    .await?;
    mx.publish(&gw.dns, "slow.test", 10, 0);
    mx.publish(&gw.dns, "other.test", 10, 1);
    with_alice(&gw).await?;
    mx.hosts[0].refuse_next_mail("421 4.7.0 Too many messages, slow down");
    let first = alice_writes(&gw, "bob", "bob@slow.test").await?;
    let state = gw.wait_status(&first, "deferred").await?;
    assert_eq!(last_error(&state), "smtp 421 4.7.0", "{state}");

    // While paused: deferred without a connection; other domains go on.
    let second = alice_writes(&gw, "carol", "carol@slow.test").await?;
    let other = alice_writes(&gw, "dave", "dave@other.test").await?;
    gw.wait_status(&other, "sent").await?;
    let state = gw.wait_status(&second, "deferred").await?;
    assert!(last_error(&state).contains("slow down"), "{state}");
    assert_eq!(
        mx.hosts[0].connections(),
        1,
        "no new connection while paused"
    );

    // After the pause both go.
    gw.wait_status_within(&first, "sent", Duration::from_secs(30))
        .await?;
    gw.wait_status_within(&second, "sent", Duration::from_secs(30))
        .await?;
    assert_eq!(mx.hosts[0].delivered().len(), 2);
    gw.stop().await;
    Ok(())
}

async fn a_null_mx_fails_at_once_without_connecting(backend: Backend) -> anyhow::Result<()> {
    let mx = MxHosts::start(1).await?;
    let gw = gateway_delivering_by_mx(backend, &mx, |_| {}).await?;
    gw.dns.add_mx("nomail.test", 0, ".");
    gw.dns.a("nomail.test", mx.ip(0));
    with_alice(&gw).await?;
    let id = alice_writes(&gw, "bob", "bob@nomail.test").await?;
    let failed = gw.wait_status(&id, "failed").await?;
    assert!(last_error(&failed).contains("null MX"), "{failed}");
    assert_eq!(failed["attempts"], 1, "{failed}");
    assert_eq!(mx.hosts[0].connections(), 0);
    gw.stop().await;
    Ok(())
}

async fn a_domain_without_mx_gets_mail_at_its_address(backend: Backend) -> anyhow::Result<()> {
    let mx = MxHosts::start(1).await?;
    let gw = gateway_delivering_by_mx(backend, &mx, |_| {}).await?;
    gw.dns.a("aonly.test", mx.ip(0));
    with_alice(&gw).await?;
    let id = alice_writes(&gw, "bob", "bob@aonly.test").await?;
    gw.wait_status(&id, "sent").await?;
    let delivered = mx.hosts[0].delivered();
    assert_eq!(delivered[0].rcpt_to, vec!["bob@aonly.test".to_owned()]);
    // A domain with neither MX nor address has no mail server: failed at once.
    let id = alice_writes(&gw, "carol", "carol@nothing-here.test").await?;
    let failed = gw.wait_status(&id, "failed").await?;
    assert!(last_error(&failed).contains("no mail server"), "{failed}");
    gw.stop().await;
    Ok(())
}

async fn required_tls_defers_instead_of_sending_in_plain_text(
    backend: Backend,
) -> anyhow::Result<()> {
    let mx = MxHosts::start(1).await?;
    let gw = gateway_delivering_by_mx(backend, &mx, |c| {
        c.outbound.tls = "require".into();
    })
    .await?;
    mx.publish(&gw.dns, "plain.test", 10, 0);
    with_alice(&gw).await?;
    let id = alice_writes(&gw, "bob", "bob@plain.test").await?;
    let deferred = gw.wait_status(&id, "deferred").await?;
    assert!(last_error(&deferred).contains("STARTTLS"), "{deferred}");
    assert_eq!(
        mx.hosts[0].transactions(),
        0,
        "not a byte of the message in clear"
    );
    mx.hosts[0].offer_starttls("mx0.plain.test")?;
    gw.wait_status(&id, "sent").await?;
    assert!(mx.hosts[0].delivered()[0].encrypted);
    gw.stop().await;
    Ok(())
}

both_backends!(
    delivers_over_starttls_reusing_one_connection,
    moves_to_the_next_mx_after_a_refused_connection_or_greeting,
    a_4xx_is_retried_and_a_5xx_fails_and_tells_the_writer,
    a_message_cut_off_mid_data_is_sent_again_once,
    a_rate_limited_destination_is_paused_alone,
    a_null_mx_fails_at_once_without_connecting,
    a_domain_without_mx_gets_mail_at_its_address,
    required_tls_defers_instead_of_sending_in_plain_text,
);
