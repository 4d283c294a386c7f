//! `kill -9` halfway through a broadcast to 5,000 members, while its copies are
//! still being made and some are being delivered: after the restart every member
//! has their copy, and no member has two. A delivery cut by the kill (the next
//! server said `250`, and we had not recorded it) may be sent again; that is the
//! same message, with the same `Message-ID`, which mail systems de-duplicate.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use maskrelay_tests::api::Api;
use maskrelay_tests::db::TestDb;
use maskrelay_tests::process::{GatewayProcess, ProcessSpec};
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, both_backends, gateway_binary};
use reqwest::Method;
use serde_json::json;

const MEMBERS: usize = 5_000;
const SUBJECT: &str = "Subject: Annual meeting";
const WAIT: Duration = Duration::from_secs(120);

/// Registers the members, a few requests at a time.
async fn members(api: &Api) -> anyhow::Result<()> {
    let mut tasks = tokio::task::JoinSet::new();
    let ids: Vec<usize> = (0..MEMBERS).collect();
    for chunk in ids.chunks(MEMBERS / 16) {
        let api = api.clone();
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            for i in chunk {
                api.member(&format!("m{i:05}"), &format!("m{i:05}@example.net"), "M")
                    .await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    Ok(())
}

/// The `Message-ID`s of the broadcast's copies that reached each member.
fn copies(sink: &Smarthost) -> BTreeMap<String, BTreeSet<String>> {
    let mut by_reader: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for d in sink.delivered() {
        let text = d.text();
        if !text.contains(SUBJECT) {
            continue;
        }
        let id = text
            .split("\r\nMessage-ID: ")
            .nth(1)
            .and_then(|rest| rest.split("\r\n").next())
            .unwrap_or_default()
            .to_owned();
        for rcpt in d.rcpt_to {
            by_reader.entry(rcpt).or_default().insert(id.clone());
        }
    }
    by_reader
}

async fn wait_for_copies(sink: &Smarthost, readers: usize) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = copies(sink).len();
        if got >= readers {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{got} of {readers} members have their copy"
        );
        sink.wait_for(sink.delivered().len() + 1, Duration::from_millis(500))
            .await
            .ok();
    }
}

async fn a_broadcast_survives_kill_9_halfway(backend: Backend) -> anyhow::Result<()> {
    let db = TestDb::new(backend).await?;
    let sink = Smarthost::start().await?;
    let spec = ProcessSpec::new(gateway_binary!(), &db.dir, &db.url, &sink.url())?;
    let api_key = spec.create_org("Example Club").await?;
    let gateway = GatewayProcess::start(&spec).await?;
    let api = gateway.api(&api_key);
    api.call(
        Method::PUT,
        "/v1/categories/news",
        Some(&json!({"name": "News"})),
    )
    .await?;
    // 500 copies a second: the copies are made a few seconds ahead of their
    // schedule, so the kill comes while they are still being made.
    api.settings(&json!({"broadcast_per_minute": 30_000}))
        .await?;
    members(&api).await?;
    let (status, sent) = api
        .call(
            Method::POST,
            "/v1/broadcasts",
            Some(&json!({"audience": {"all": true}, "category": "news",
                         "subject": "Annual meeting", "text": "On Friday."})),
        )
        .await?;
    anyhow::ensure!(status == 202, "{sent}");
    assert_eq!(sent["recipients"], MEMBERS);
    let id = sent["id"].as_str().unwrap_or_default().to_owned();

    let started = std::time::Instant::now();
    wait_for_copies(&sink, MEMBERS / 20).await?;
    let log = gateway.kill9().await?;
    eprintln!("{backend:?}: killed after {:?}", started.elapsed());
    assert!(
        !log.iter()
            .any(|l| l.contains("every copy of the broadcast is queued")),
        "the kill came after every copy was made; it tests nothing of their making"
    );
    let gateway = GatewayProcess::start(&spec).await?;
    wait_for_copies(&sink, MEMBERS)
        .await
        .map_err(|e| e.context(gateway.log().join("\n")))?;
    let got = copies(&sink);
    let twice: Vec<_> = got.iter().filter(|(_, ids)| ids.len() > 1).collect();
    assert!(twice.is_empty(), "members with two copies: {twice:?}");
    let api = gateway.api(&api_key);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, progress) = api
            .call(Method::GET, &format!("/v1/broadcasts/{id}"), None)
            .await?;
        if progress["status"] == "finished" {
            assert_eq!(progress["sent"], MEMBERS, "{progress}");
            break;
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "{progress}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let resent = sink
        .delivered()
        .iter()
        .filter(|d| d.text().contains(SUBJECT))
        .count()
        - MEMBERS;
    eprintln!("{backend:?}: {MEMBERS} copies, {resent} sent again after the kill");
    gateway.kill9().await?;
    Ok(())
}

both_backends!(a_broadcast_survives_kill_9_halfway);
