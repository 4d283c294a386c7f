//! Two `maskrelay serve` processes sharing one PostgreSQL database: both take
//! deliveries from the one queue, none is delivered twice in normal running, and when
//! one instance is killed with `kill -9` under load, the other takes over its claims
//! once their leases run out, so every acknowledged reply is delivered. An idle
//! instance starts on another's work when told of it, not at its next poll.

use std::time::Duration;

use maskrelay_tests::db::TestDb;
use maskrelay_tests::gateway::send_mail;
use maskrelay_tests::load::{self, LoadSpec, ReplyLoad};
use maskrelay_tests::process::{GatewayProcess, ProcessSpec};
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, gateway_binary};
use tokio::sync::watch;

/// How many deliveries one instance may have in flight: the most a kill can leave
/// sent but not recorded, so the most that may arrive twice.
const CONCURRENCY: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pg_tests),
    ignore = "PostgreSQL half not run: set MASKRELAY_TEST_POSTGRES_URL"
)]
async fn two_instances_share_the_queue_and_survive_each_other() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Postgres).await?;
    let sink = Smarthost::start().await?;
    let mut spec = ProcessSpec::new(gateway_binary!(), &db.dir, &db.url, &sink.url())?;
    spec.set("OUTBOUND_LEASE_SECS", "3");
    spec.set("OUTBOUND_CONCURRENCY", &CONCURRENCY.to_string());
    let api_key = spec.create_org("Example Club").await?;
    spec.set("INSTANCE_ID", "one");
    let one = GatewayProcess::start(&spec).await?;
    spec.set("INSTANCE_ID", "two");
    let two = GatewayProcess::start(&spec).await?;
    let relay = load::open_conversation(&one.api(&api_key), &sink).await?;
    // Slow deliveries: the queue backs up behind the instance taking the replies, so
    // the other one's polling finds work too.
    sink.slow_down(Duration::from_millis(200));

    let (target, watched) = watch::channel(Some(one.smtp_addr));
    let load = ReplyLoad::start(watched, LoadSpec::bob(&relay, 4, Duration::from_millis(30)));
    load.accept_more("60 replies accepted", 60).await?;
    target.send_replace(None);
    let first = load.tally().accepted;
    let seen = load::wait_delivered(&sink, &first, Duration::from_secs(60)).await?;
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    for (name, instance) in [("one", &one), ("two", &two)] {
        let delivered = instance
            .log()
            .iter()
            .filter(|l| l.contains("delivered"))
            .count();
        assert!(
            delivered > 0,
            "instance {name} delivered nothing: the queue is not shared"
        );
    }

    // Kill the instance taking the replies while its deliveries are in flight.
    target.send_replace(Some(one.smtp_addr));
    load.accept_more("40 more replies accepted", 40).await?;
    target.send_replace(Some(two.smtp_addr));
    one.kill9().await?;
    load.accept_more("40 replies accepted by the survivor", 40)
        .await?;
    let (tally, duplicates) = load
        .finish(&sink)
        .await
        .map_err(|e| e.context(two.log().join("\n")))?;
    eprintln!(
        "two instances: {} replies accepted, all delivered; {duplicates} delivered twice after \
         the kill",
        tally.accepted.len()
    );
    assert!(
        duplicates <= CONCURRENCY,
        "{duplicates} delivered twice: more than one instance had in flight"
    );
    two.kill9().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pg_tests),
    ignore = "PostgreSQL half not run: set MASKRELAY_TEST_POSTGRES_URL"
)]
async fn an_idle_instance_starts_on_work_another_announces() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Postgres).await?;
    let sink = Smarthost::start().await?;
    let mut spec = ProcessSpec::new(gateway_binary!(), &db.dir, &db.url, &sink.url())?;
    let api_key = spec.create_org("Example Club").await?;
    // The one taking messages delivers nothing itself; the other polls the queue
    // once an hour, so only being told can start it in the life of this test.
    spec.set("INSTANCE_ID", "taker");
    spec.set("OUTBOUND_HOLD", "true");
    let taker = GatewayProcess::start(&spec).await?;
    spec.set("INSTANCE_ID", "sender");
    spec.set("OUTBOUND_HOLD", "false");
    spec.set("OUTBOUND_POLL_INTERVAL_MS", "3600000");
    let sender = GatewayProcess::start(&spec).await?;
    let listening = "listening for other instances' queued work";
    sender
        .wait_for_log(listening, Duration::from_secs(30))
        .await?;

    // Queued through the API of the one, delivered by the other.
    let relay = load::open_conversation(&taker.api(&api_key), &sink)
        .await
        .map_err(|e| e.context(sender.log().join("\n")))?;
    // And again for a reply taken by SMTP, the sender having been idle since.
    let reply = LoadSpec::bob(&relay, 1, Duration::ZERO);
    send_mail(taker.smtp_addr, load::BOB, &relay, &reply.message(7)).await?;
    let delivered = sink.wait_for(2, Duration::from_secs(30)).await?;
    assert_eq!(
        load::markers(&String::from_utf8_lossy(&delivered[1].data)),
        [7]
    );
    assert!(
        !taker.log().iter().any(|l| l.contains("delivered")),
        "the instance on hold delivered"
    );
    Ok(())
}
