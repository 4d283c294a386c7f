//! Broadcasts as the tests drive them: a gateway with a category and members, sending
//! and counting through the API, and reading the copies the smarthost received.

use std::collections::BTreeMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::Backend;
use crate::api::Api;
use crate::gateway::TestGateway;
use crate::smarthost::{Delivered, Smarthost};

/// How long a test waits for mail or for the store.
pub const WAIT: Duration = Duration::from_secs(30);

/// A member's address in these tests.
pub fn email(id: &str) -> String {
    format!("{id}@example.net")
}

/// An API call that must succeed (2xx); its body.
///
/// # Errors
/// If the call fails or answers otherwise.
pub async fn call(
    gw: &TestGateway,
    method: Method,
    path: &str,
    body: Value,
) -> anyhow::Result<Value> {
    let (status, answer) = gw.call(method, path, Some(&body)).await?;
    anyhow::ensure!((200..300).contains(&status), "{path}: {status} {answer}");
    Ok(answer)
}

/// A gateway delivering to a new sink, with the category `news` and the members
/// `ids` (each at `<id>@example.net`, named as their id).
///
/// # Errors
/// If a call fails, or what is waited for does not come.
pub async fn club(backend: Backend, ids: &[String]) -> anyhow::Result<(Smarthost, TestGateway)> {
    let sink = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &sink).await?;
    category(&gw, "news", "News").await?;
    for id in ids {
        gw.member(id, &email(id), id).await?;
    }
    Ok((sink, gw))
}

/// `count` member ids: `<prefix>000`, `<prefix>001`...
pub fn numbered(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i:03}")).collect()
}

/// Member ids, owned.
pub fn named(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

/// Defines a category.
///
/// # Errors
/// If the call fails.
pub async fn category(gw: &TestGateway, id: &str, name: &str) -> anyhow::Result<()> {
    call(
        gw,
        Method::PUT,
        &format!("/v1/categories/{id}"),
        json!({"name": name}),
    )
    .await?;
    Ok(())
}

/// `POST /v1/broadcasts`; the status and body.
///
/// # Errors
/// If a call fails, or what is waited for does not come.
pub async fn broadcast(gw: &TestGateway, body: Value) -> anyhow::Result<(u16, Value)> {
    gw.call(Method::POST, "/v1/broadcasts", Some(&body)).await
}

/// The count a dry run shows.
///
/// # Errors
/// If a call fails, or what is waited for does not come.
pub async fn dry_run(gw: &TestGateway, audience: Value, category: &str) -> anyhow::Result<i64> {
    let (status, body) = broadcast(
        gw,
        json!({"audience": audience, "category": category, "subject": "s", "text": "t",
               "dry_run": true}),
    )
    .await?;
    anyhow::ensure!(status == 200, "{body}");
    body["recipients"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("no count: {body}"))
}

/// Sends a broadcast; its id and count.
///
/// # Errors
/// If a call fails, or what is waited for does not come.
pub async fn send(gw: &TestGateway, body: Value) -> anyhow::Result<(String, i64)> {
    let (status, answer) = broadcast(gw, body).await?;
    anyhow::ensure!(status == 202, "{answer}");
    Ok((
        answer["id"].as_str().unwrap_or_default().to_owned(),
        answer["recipients"].as_i64().unwrap_or(-1),
    ))
}

/// `GET /v1/broadcasts/{id}`.
///
/// # Errors
/// If the call fails or answers otherwise than `200`.
pub async fn progress(gw: &TestGateway, id: &str) -> anyhow::Result<Value> {
    let (status, body) = gw
        .call(Method::GET, &format!("/v1/broadcasts/{id}"), None)
        .await?;
    anyhow::ensure!(status == 200, "{body}");
    Ok(body)
}

/// Waits until the store records the broadcast as `status`.
///
/// # Errors
/// If a call fails, or what is waited for does not come.
pub async fn wait_broadcast(gw: &TestGateway, id: &str, status: &str) -> anyhow::Result<Value> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let body = progress(gw, id).await?;
        if body["status"] == status {
            return Ok(body);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "broadcast never {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The copies of the broadcast whose subject is `subject`, by recipient.
pub fn copies(sink: &Smarthost, subject: &str) -> BTreeMap<String, Vec<Delivered>> {
    let mut by_reader: BTreeMap<String, Vec<Delivered>> = BTreeMap::new();
    for d in sink.delivered() {
        if d.text().contains(&format!("Subject: {subject}")) {
            for rcpt in &d.rcpt_to {
                by_reader.entry(rcpt.clone()).or_default().push(d.clone());
            }
        }
    }
    by_reader
}

/// Waits until `count` copies of the broadcast with `subject` arrived.
///
/// # Errors
/// If a call fails, or what is waited for does not come.
pub async fn wait_copies(
    sink: &Smarthost,
    subject: &str,
    count: usize,
) -> anyhow::Result<BTreeMap<String, Vec<Delivered>>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let got = copies(sink, subject);
        if got.values().map(Vec::len).sum::<usize>() >= count {
            return Ok(got);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{} of {count} copies of {subject:?} arrived",
            got.len()
        );
        sink.wait_for(sink.delivered().len() + 1, Duration::from_millis(200))
            .await
            .ok();
    }
}

/// A header of a delivered message, unfolded.
pub fn header(d: &Delivered, name: &str) -> Option<String> {
    let text = d.text();
    let start = text.find(&format!("\r\n{name}: "))? + 2;
    let rest = &text[start + name.len() + 2..];
    // Unfolded: continuation lines start with white space.
    let mut value = String::new();
    for (i, line) in rest.split("\r\n").enumerate() {
        if i > 0 && !line.starts_with([' ', '\t']) {
            break;
        }
        value.push_str(line.trim_start());
    }
    Some(value)
}

/// Registers `count` members of another organisation, with its own category
/// `news`; its API.
///
/// # Errors
/// If a call fails.
pub async fn second_organisation(
    gw: &TestGateway,
    prefix: &str,
    count: usize,
) -> anyhow::Result<Api> {
    let (_, key) = gw.running.store.create_org("Second Club").await?;
    let api = Api::new(gw.running.http_addr, key);
    for id in numbered(prefix, count) {
        api.member(&id, &email(&id), &id).await?;
    }
    api.call(
        Method::PUT,
        "/v1/categories/news",
        Some(&json!({"name": "News"})),
    )
    .await?;
    Ok(api)
}
