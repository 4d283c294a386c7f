//! Two `maskrelay serve` processes sharing one PostgreSQL database send one broadcast
//! together: one makes the copies, both deliver them, and every member gets exactly
//! one.

use std::collections::BTreeMap;
use std::time::Duration;

use maskrelay_tests::db::TestDb;
use maskrelay_tests::process::{GatewayProcess, ProcessSpec};
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, gateway_binary};
use reqwest::Method;
use serde_json::json;

const MEMBERS: usize = 300;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(pg_tests),
    ignore = "PostgreSQL half not run: set MASKRELAY_TEST_POSTGRES_URL"
)]
async fn two_instances_share_a_broadcast() -> anyhow::Result<()> {
    let db = TestDb::new(Backend::Postgres).await?;
    let sink = Smarthost::start().await?;
    let mut spec = ProcessSpec::new(gateway_binary!(), &db.dir, &db.url, &sink.url())?;
    spec.set("OUTBOUND_CONCURRENCY", "4");
    let api_key = spec.create_org("Example Club").await?;
    spec.set("INSTANCE_ID", "one");
    let one = GatewayProcess::start(&spec).await?;
    spec.set("INSTANCE_ID", "two");
    let two = GatewayProcess::start(&spec).await?;
    let api = one.api(&api_key);
    api.call(
        Method::PUT,
        "/v1/categories/news",
        Some(&json!({"name": "News"})),
    )
    .await?;
    for i in 0..MEMBERS {
        api.member(&format!("m{i:03}"), &format!("m{i:03}@example.net"), "M")
            .await?;
    }
    // Slow deliveries: the copies back up, and both instances find them.
    sink.slow_down(Duration::from_millis(20));
    let (status, sent) = api
        .call(
            Method::POST,
            "/v1/broadcasts",
            Some(&json!({"audience": {"all": true}, "category": "news",
                         "subject": "Together", "text": "x"})),
        )
        .await?;
    anyhow::ensure!(status == 202, "{sent}");
    let delivered = sink.wait_for(MEMBERS, Duration::from_secs(120)).await?;
    let mut per_member: BTreeMap<String, usize> = BTreeMap::new();
    for d in &delivered {
        for rcpt in &d.rcpt_to {
            *per_member.entry(rcpt.clone()).or_default() += 1;
        }
    }
    assert_eq!(per_member.len(), MEMBERS);
    let twice: Vec<_> = per_member.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    for (name, instance) in [("one", &one), ("two", &two)] {
        let deliveries = instance
            .log()
            .iter()
            .filter(|l| l.contains("delivered"))
            .count();
        assert!(
            deliveries > 0,
            "instance {name} delivered no copy: the broadcast is not shared"
        );
    }
    one.kill9().await?;
    two.kill9().await?;
    Ok(())
}
