//! A handful of slow clients must not shut the door for everyone: with every
//! session held by silent clients from many addresses, then by clients trickling a
//! byte at a time, a member's replies still get through, and stress mode ends when
//! the load goes.
//!
//! Scaled down to run quickly: 64 sessions instead of 2,000, 2 s per command under
//! stress instead of 10, a byte every second instead of every ten.

use std::time::Duration;

use maskrelay_tests::db::TestDb;
use maskrelay_tests::flood::{Behaviour, Flood};
use maskrelay_tests::gateway::{TestGateway, test_config};
use maskrelay_tests::load::{self, LoadSpec, ReplyLoad};
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, both_backends};
use tokio::sync::watch;

const SESSIONS: usize = 64;
const BOUND: Duration = Duration::from_secs(30);

async fn replies_get_through_while_slow_clients_hold_every_session(
    backend: Backend,
) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    let db = TestDb::new(backend).await?;
    let mut config = test_config(&db, Some(&sink))?;
    config.smtp.max_connections = SESSIONS;
    config.smtp.stress_timeout_secs = 2;
    let gw = TestGateway::start_with(db, config).await?;
    let relay = load::open_conversation(&gw.api, &sink).await?;

    let flood = Flood::start(gw.smtp_addr(), SESSIONS, 40, Behaviour::Silent);
    gw.wait_metric("smtp_stress_mode", BOUND, |v| v == 1)
        .await?;
    gw.wait_metric("smtp_sessions_open", BOUND, |v| v >= SESSIONS as u64)
        .await?;
    let (_target, watched) = watch::channel(Some(gw.smtp_addr()));
    let replies = ReplyLoad::start(
        watched,
        LoadSpec {
            // A sending MTA retries a 421; it waits minutes, the test 100 ms.
            retry_refused: Some(Duration::from_millis(100)),
            ..LoadSpec::bob(&relay, 3, Duration::from_millis(10))
        },
    );
    replies
        .wait_until("150 replies accepted past silent clients", BOUND, |t| {
            t.accepted.len() >= 150
        })
        .await?;
    flood.stop().await;

    let flood = Flood::start(
        gw.smtp_addr(),
        SESSIONS,
        40,
        Behaviour::Trickle(Duration::from_secs(1)),
    );
    gw.wait_metric("smtp_sessions_open", BOUND, |v| v >= SESSIONS as u64)
        .await?;
    replies
        .wait_until("300 replies accepted past trickling clients", BOUND, |t| {
            t.accepted.len() >= 300
        })
        .await?;
    let tally = replies.stop().await;
    flood.stop().await;
    assert!(
        tally.slowest < BOUND,
        "a reply took {:?} to get through",
        tally.slowest
    );

    gw.wait_metric("smtp_stress_mode", BOUND, |v| v == 0)
        .await?;
    let reclaimed = gw.metric("smtp_sessions_reclaimed_total").await?;
    let timed_out = gw.metric("smtp_sessions_timed_out_total").await?;
    assert!(reclaimed > 0, "no idle session was reclaimed");
    load::wait_delivered(&sink, &tally.accepted, BOUND).await?;
    eprintln!(
        "{backend:?}: {} replies accepted and delivered, the slowest after {:?} (retrying \
         421s); refusals {:?}; {reclaimed} idle sessions reclaimed, {timed_out} timed out",
        tally.accepted.len(),
        tally.slowest,
        tally.refused
    );
    gw.stop().await;
    Ok(())
}

both_backends!(replies_get_through_while_slow_clients_hold_every_session);
