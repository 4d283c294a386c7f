//! `SIGTERM` under load (what systemd and container runtimes send): the gateway
//! stops taking mail, lets what is in flight end, and exits with status 0; every
//! reply it answered `250` is delivered once it runs again.

use std::time::Duration;

use maskrelay_tests::db::TestDb;
use maskrelay_tests::load::{self, LoadSpec, ReplyLoad};
use maskrelay_tests::process::{GatewayProcess, ProcessSpec};
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, both_backends, gateway_binary};
use tokio::sync::watch;

/// Far beyond a clean stop (sessions and deliveries in flight end within seconds);
/// a gateway still running then has ignored the signal.
const STOP_BOUND: Duration = Duration::from_secs(60);

async fn sigterm_under_load_stops_the_gateway_and_keeps_every_reply(
    backend: Backend,
) -> anyhow::Result<()> {
    let db = TestDb::new(backend).await?;
    let sink = Smarthost::start().await?;
    let spec = ProcessSpec::new(gateway_binary!(), &db.dir, &db.url, &sink.url())?;
    let api_key = spec.create_org("Example Club").await?;
    let gateway = GatewayProcess::start(&spec).await?;
    let relay = load::open_conversation(&gateway.api(&api_key), &sink).await?;
    // Slow deliveries: some are in progress when the signal comes.
    sink.slow_down(Duration::from_millis(300));

    let (target, watched) = watch::channel(Some(gateway.smtp_addr));
    let load = ReplyLoad::start(watched, LoadSpec::bob(&relay, 4, Duration::from_millis(20)));
    load.accept_more("20 replies accepted", 20).await?;
    // The signal arrives while replies keep coming.
    let (status, log) = gateway.terminate(STOP_BOUND).await?;
    target.send_replace(None);
    assert!(
        status.success(),
        "exit status {status} after SIGTERM:\n{}",
        log.join("\n")
    );

    let gateway = GatewayProcess::start(&spec).await?;
    target.send_replace(Some(gateway.smtp_addr));
    load.accept_more("20 replies accepted after the restart", 20)
        .await?;
    let (tally, duplicates) = load
        .finish(&sink)
        .await
        .map_err(|e| e.context(gateway.log().join("\n")))?;
    eprintln!("{backend:?}: {}", tally.delivered_summary(duplicates));
    gateway.terminate(STOP_BOUND).await?;
    Ok(())
}

both_backends!(sigterm_under_load_stops_the_gateway_and_keeps_every_reply);
