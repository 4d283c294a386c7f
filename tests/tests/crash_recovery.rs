//! `kill -9` under load: every reply answered `250` is delivered soon after the last
//! restart, on both databases.
//!
//! The lease is set to ten minutes, far beyond the test's bound: deliveries the
//! killed process had claimed can only arrive in time because the restarted
//! instance takes back its own claims at start. Duplicates (a kill between the
//! smarthost's `250` and our record of it) are allowed and reported.

use std::time::Duration;

use maskrelay_tests::db::TestDb;
use maskrelay_tests::load::{self, LoadSpec, ReplyLoad};
use maskrelay_tests::process::{GatewayProcess, ProcessSpec};
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, both_backends, gateway_binary};
use tokio::sync::watch;

const KILLS: usize = 5;

async fn every_acknowledged_reply_survives_kill_9(backend: Backend) -> anyhow::Result<()> {
    let db = TestDb::new(backend).await?;
    let sink = Smarthost::start().await?;
    let mut spec = ProcessSpec::new(gateway_binary!(), &db.dir, &db.url, &sink.url())?;
    spec.set("OUTBOUND_LEASE_SECS", "600");
    let api_key = spec.create_org("Example Club").await?;
    let mut gateway = GatewayProcess::start(&spec).await?;
    let relay = load::open_conversation(&gateway.api(&api_key), &sink).await?;
    // Slow deliveries: some are always in progress when the gateway is killed.
    sink.slow_down(Duration::from_millis(300));

    let (target, watched) = watch::channel(Some(gateway.smtp_addr));
    let load = ReplyLoad::start(watched, LoadSpec::bob(&relay, 4, Duration::from_millis(40)));
    for kill in 0..KILLS {
        // Let some replies be acknowledged and some deliveries be claimed.
        load.accept_more("20 more replies accepted", 20).await?;
        target.send_replace(None);
        gateway.kill9().await?;
        gateway = GatewayProcess::start(&spec)
            .await
            .map_err(|e| e.context(format!("restart after kill {}", kill + 1)))?;
        target.send_replace(Some(gateway.smtp_addr));
    }
    load.accept_more("20 replies accepted after the last restart", 20)
        .await?;
    let (tally, duplicates) = load
        .finish(&sink)
        .await
        .map_err(|e| e.context(gateway.log().join("\n")))?;
    eprintln!(
        "{backend:?}: {KILLS} kills; {}",
        tally.delivered_summary(duplicates)
    );
    gateway.kill9().await?;
    Ok(())
}

both_backends!(every_acknowledged_reply_survives_kill_9);
