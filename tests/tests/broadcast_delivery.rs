//! How a broadcast's copies go out: behind every conversation's mail, at the
//! organisation's pace (so that a cancel stops the rest), and sharing the gateway
//! fairly with other organisations' broadcasts.

use std::time::Duration;

use maskrelay_tests::broadcast::*;
use maskrelay_tests::db::TestDb;
use maskrelay_tests::gateway::TestGateway;
use maskrelay_tests::gateway::test_config;
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, both_backends};
use reqwest::Method;
use serde_json::json;

async fn conversations_go_ahead_of_broadcast_copies(backend: Backend) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    let db = TestDb::new(backend).await?;
    let mut config = test_config(&db, Some(&sink))?;
    // Two deliveries at a time to a slow server: a hundred copies take seconds.
    config.outbound.concurrency = 2;
    let gw = TestGateway::start_with(db, config).await?;
    category(&gw, "news", "News").await?;
    gw.settings(&json!({"broadcast_per_minute": 10_000_000}))
        .await?;
    for i in 0..100 {
        let id = format!("p{i:03}");
        gw.member(&id, &email(&id), &id).await?;
    }
    sink.slow_down(Duration::from_millis(40));
    let (_, n) = send(
        &gw,
        json!({"audience": {"all": true}, "category": "news", "subject": "Bulk", "text": "x"}),
    )
    .await?;
    assert_eq!(n, 100);
    wait_copies(&sink, "Bulk", 1).await?;
    // A member's message queued now goes ahead of the copies queued before it.
    let marker = maskrelay_tests::db::unique("ahead");
    let (status, body) = gw.message("p000", "p001", "Lunch?", &marker).await?;
    anyhow::ensure!(status == 202, "{body}");
    sink.wait_containing(&marker, WAIT).await?;
    let before = copies(&sink, "Bulk").values().map(Vec::len).sum::<usize>();
    assert!(
        before < 50,
        "the member's message waited for {before} copies"
    );
    wait_copies(&sink, "Bulk", 100).await?;
    Ok(())
}

async fn a_paced_broadcast_can_be_cancelled(backend: Backend) -> anyhow::Result<()> {
    let (sink, gw) = club(backend, &numbered("p", 20)).await?;
    // Two copies a second: twenty take ten seconds.
    gw.settings(&json!({"broadcast_per_minute": 120})).await?;
    let (id, n) = send(
        &gw,
        json!({"audience": {"all": true}, "category": "news", "subject": "Paced", "text": "x"}),
    )
    .await?;
    assert_eq!(n, 20);
    wait_copies(&sink, "Paced", 1).await?;
    assert_eq!(progress(&gw, &id).await?["status"], "sending");

    // Cancelling stops every copy not yet handed to the worker.
    let (status, cancelled) = gw
        .call(Method::POST, &format!("/v1/broadcasts/{id}/cancel"), None)
        .await?;
    assert_eq!(status, 200, "{cancelled}");
    wait_broadcast(&gw, &id, "cancelled").await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    let done = loop {
        let body = progress(&gw, &id).await?;
        if body["queued"] == 0 && body["deferred"] == 0 {
            break body;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let sent = done["sent"].as_i64().unwrap_or(-1);
    let stopped = done["cancelled"].as_i64().unwrap_or(-1);
    assert!(stopped > 0, "{done}");
    assert_eq!(sent + stopped, 20, "{done}");
    let arrived = copies(&sink, "Paced").values().map(Vec::len).sum::<usize>();
    assert_eq!(arrived as i64, sent, "{done}");
    Ok(())
}

async fn organisations_sharing_a_gateway_each_get_their_share(
    backend: Backend,
) -> anyhow::Result<()> {
    let (sink, gw) = club(backend, &numbered("a", 300)).await?;
    // A long broadcast: 300 copies at 20 a second take 15 seconds, and are made
    // only a few seconds ahead of their schedule.
    gw.settings(&json!({"broadcast_per_minute": 1200})).await?;
    let other = second_organisation(&gw, "b", 20).await?;
    let (long, _) = send(
        &gw,
        json!({"audience": {"all": true}, "category": "news", "subject": "Long", "text": "x"}),
    )
    .await?;
    wait_copies(&sink, "Long", 1).await?;
    // The other organisation's broadcast is not held back until the first is done.
    let (status, body) = other
        .call(
            Method::POST,
            "/v1/broadcasts",
            Some(
                &json!({"audience": {"all": true}, "category": "news", "subject": "Short",
                         "text": "y"}),
            ),
        )
        .await?;
    assert_eq!(status, 202, "{body}");
    wait_copies(&sink, "Short", 20).await?;
    let long_so_far = copies(&sink, "Long").values().map(Vec::len).sum::<usize>();
    assert!(
        long_so_far < 150,
        "the second organisation waited for {long_so_far} of the first's 300 copies"
    );
    let (status, body) = gw
        .call(Method::POST, &format!("/v1/broadcasts/{long}/cancel"), None)
        .await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

both_backends!(
    conversations_go_ahead_of_broadcast_copies,
    a_paced_broadcast_can_be_cancelled,
    organisations_sharing_a_gateway_each_get_their_share,
);
