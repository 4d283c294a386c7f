//! Broadcasts: staff write to all members, a filtered group or chosen members, with
//! the count shown first; categories members leave with one click or by mail;
//! mandatory notices nobody leaves; conversations' mail ahead of a broadcast's; and
//! cancelling what has not gone out.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use maskrelay_tests::db::TestDb;
use maskrelay_tests::gateway::{TestGateway, send_mail_to, smtp_refusal, test_config};
use maskrelay_tests::mail::{delivery_report, parse};
use maskrelay_tests::smarthost::{Delivered, Smarthost};
use maskrelay_tests::{Backend, both_backends};
use reqwest::Method;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

fn email(id: &str) -> String {
    format!("{id}@example.net")
}

async fn call(gw: &TestGateway, method: Method, path: &str, body: Value) -> anyhow::Result<Value> {
    let (status, answer) = gw.call(method, path, Some(&body)).await?;
    anyhow::ensure!((200..300).contains(&status), "{path}: {status} {answer}");
    Ok(answer)
}

/// A gateway delivering to a new sink, with the category `news` and the members
/// `ids` (each at `<id>@example.net`, named as their id).
async fn club(backend: Backend, ids: &[String]) -> anyhow::Result<(Smarthost, TestGateway)> {
    let sink = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &sink).await?;
    category(&gw, "news", "News").await?;
    for id in ids {
        gw.member(id, &email(id), id).await?;
    }
    Ok((sink, gw))
}

/// `count` member ids: `<prefix>000`, `<prefix>001`...
fn numbered(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}{i:03}")).collect()
}

/// Member ids, owned.
fn named(ids: &[&str]) -> Vec<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

async fn category(gw: &TestGateway, id: &str, name: &str) -> anyhow::Result<()> {
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
async fn broadcast(gw: &TestGateway, body: Value) -> anyhow::Result<(u16, Value)> {
    gw.call(Method::POST, "/v1/broadcasts", Some(&body)).await
}

/// The count a dry run shows.
async fn dry_run(gw: &TestGateway, audience: Value, category: &str) -> anyhow::Result<i64> {
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
async fn send(gw: &TestGateway, body: Value) -> anyhow::Result<(String, i64)> {
    let (status, answer) = broadcast(gw, body).await?;
    anyhow::ensure!(status == 202, "{answer}");
    Ok((
        answer["id"].as_str().unwrap_or_default().to_owned(),
        answer["recipients"].as_i64().unwrap_or(-1),
    ))
}

async fn progress(gw: &TestGateway, id: &str) -> anyhow::Result<Value> {
    let (status, body) = gw
        .call(Method::GET, &format!("/v1/broadcasts/{id}"), None)
        .await?;
    anyhow::ensure!(status == 200, "{body}");
    Ok(body)
}

/// Waits until the store records the broadcast as `status`.
async fn wait_broadcast(gw: &TestGateway, id: &str, status: &str) -> anyhow::Result<Value> {
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
fn copies(sink: &Smarthost, subject: &str) -> BTreeMap<String, Vec<Delivered>> {
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
async fn wait_copies(
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

fn header(d: &Delivered, name: &str) -> Option<String> {
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

/// One member of the directory in the count test, and who they are.
struct Seeded {
    id: String,
    active: bool,
    erased: bool,
    unsubscribed: bool,
    suppressed: bool,
    location: &'static str,
    plans: Vec<&'static str>,
}

fn seeded(i: usize) -> Seeded {
    const LOCATIONS: [&str; 3] = ["London", "Paris", "Leeds"];
    const PLANS: [&str; 4] = ["Flex", "Fixed", "Desk", "Hot"];
    Seeded {
        id: format!("m{i:03}"),
        active: !i.is_multiple_of(7),
        erased: i % 13 == 5,
        unsubscribed: i % 11 == 3,
        suppressed: i == 1 || i == 2,
        location: LOCATIONS[i % 3],
        plans: if i.is_multiple_of(5) {
            vec!["Desk", "Flex"]
        } else {
            vec![PLANS[i % 4]]
        },
    }
}

async fn audience_counts_agree_with_an_independent_count(backend: Backend) -> anyhow::Result<()> {
    let sink = Smarthost::start().await?;
    let gw = TestGateway::start(backend, &sink).await?;
    category(&gw, "news", "Club news").await?;
    let members: Vec<Seeded> = (0..260).map(seeded).collect();
    for m in &members {
        let plan = if m.plans.len() > 1 {
            json!(m.plans)
        } else {
            json!(m.plans[0])
        };
        gw.member_json(
            &m.id,
            &json!({"email": email(&m.id), "name": format!("Member {}", m.id),
                    "status": if m.active { "active" } else { "inactive" },
                    "attributes": {"location": m.location, "plan": plan, "floor": 2}}),
        )
        .await?;
    }
    for m in members.iter().filter(|m| m.unsubscribed) {
        call(
            &gw,
            Method::PUT,
            &format!("/v1/members/{}/categories", m.id),
            json!({"categories": {"news": false}}),
        )
        .await?;
    }
    // Two addresses bounce for good: a member writes to each, and the report comes
    // back to the delivery's VERP address.
    for m in members.iter().filter(|m| m.suppressed) {
        let marker = maskrelay_tests::db::unique("bounce");
        let (status, body) = gw.message("m004", &m.id, "Hello", &marker).await?;
        anyhow::ensure!(status == 202, "{body}");
        let to = email(&m.id);
        let delivered = sink.wait_containing(&marker, WAIT).await?;
        let verp = delivered.mail_from.clone();
        let report = delivery_report(&verp, &to, "5.1.1", "550 5.1.1 User unknown");
        send_mail_to(gw.smtp_addr(), None, &[&verp], report.as_bytes()).await?;
    }
    for m in members.iter().filter(|m| m.erased) {
        let (status, body) = gw
            .call(Method::DELETE, &format!("/v1/members/{}", m.id), None)
            .await?;
        anyhow::ensure!(status == 204, "{body}");
    }
    let deliverable = |m: &&Seeded| m.active && !m.erased && !m.suppressed;
    let news = |m: &&Seeded| deliverable(m) && !m.unsubscribed;

    // Every member, in a category and as a mandatory notice.
    let all_news: BTreeSet<&str> = members.iter().filter(news).map(|m| m.id.as_str()).collect();
    assert_eq!(
        dry_run(&gw, json!({"all": true}), "news").await?,
        all_news.len() as i64
    );
    let all_mandatory = members.iter().filter(deliverable).count() as i64;
    assert_eq!(
        dry_run(&gw, json!({"all": true}), "mandatory").await?,
        all_mandatory
    );
    // Chosen members, some of them unknown or not reachable.
    let chosen: Vec<String> = (0..260)
        .step_by(4)
        .map(|i| format!("m{i:03}"))
        .chain(["nobody".to_owned()])
        .collect();
    let chosen_count = members
        .iter()
        .filter(news)
        .filter(|m| chosen.contains(&m.id))
        .count() as i64;
    assert_eq!(
        dry_run(&gw, json!({"members": chosen}), "news").await?,
        chosen_count
    );
    // A filter: attributes combine with AND, a list value matches any element.
    let filter = json!({"filter": {"status": ["active"],
        "attributes": {"location": ["London"], "plan": ["Flex", "Fixed"]}}});
    let filtered: BTreeSet<String> = members
        .iter()
        .filter(news)
        .filter(|m| m.location == "London" && m.plans.iter().any(|p| *p == "Flex" || *p == "Fixed"))
        .map(|m| email(&m.id))
        .collect();
    assert!(filtered.len() > 10, "the filter should match a good few");
    assert_eq!(
        dry_run(&gw, filter.clone(), "news").await?,
        filtered.len() as i64
    );
    let numbers = json!({"filter": {"attributes": {"floor": [2], "location": ["Paris", "Leeds"]}}});
    let paris_leeds = members
        .iter()
        .filter(news)
        .filter(|m| m.location != "London")
        .count() as i64;
    assert_eq!(dry_run(&gw, numbers, "news").await?, paris_leeds);

    // The real send reaches exactly the members counted, once each.
    let (id, recipients) = send(
        &gw,
        json!({"audience": filter, "category": "news", "subject": "Open day",
               "text": "Come and see the new floor.", "language": "en-GB",
               "html": "<p>Come and see the <b>new floor</b>.</p>", "sent_by": "Ana Ruiz"}),
    )
    .await?;
    assert_eq!(recipients, filtered.len() as i64);
    let got = wait_copies(&sink, "Open day", filtered.len()).await?;
    let readers: BTreeSet<String> = got.keys().cloned().collect();
    assert_eq!(readers, filtered);
    assert!(
        got.values().all(|c| c.len() == 1),
        "a member got two copies"
    );
    let done = wait_broadcast(&gw, &id, "finished").await?;
    assert_eq!(done["sent"], json!(filtered.len()), "{done}");
    assert_eq!(done["recipients"], json!(filtered.len()), "{done}");
    assert_eq!(done["sent_by"], "Ana Ruiz", "{done}");

    // What a reader gets: from the organisation at the relay domain, in its
    // language, with the category's list headers, and no member's address.
    let copy = got.values().next().and_then(|c| c.first()).cloned();
    let copy = copy.ok_or_else(|| anyhow::anyhow!("no copy"))?;
    let message = parse(&copy.data)?;
    assert_eq!(
        message
            .from()
            .and_then(|a| a.first())
            .and_then(|a| a.address()),
        Some(format!("bcast-{id}@relay.test").as_str())
    );
    let text = copy.text();
    assert!(text.contains("From: \"Example Club\""), "{text}");
    assert_eq!(header(&copy, "Content-Language").as_deref(), Some("en-GB"));
    let unsubscribe = header(&copy, "List-Unsubscribe").unwrap_or_default();
    assert!(
        unsubscribe.contains("<http://") && unsubscribe.contains("/v1/links/unsubscribe."),
        "{unsubscribe}"
    );
    assert!(
        unsubscribe.contains("<mailto:unsubscribe@relay.test?subject=unsubscribe."),
        "{unsubscribe}"
    );
    assert_eq!(
        header(&copy, "List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    let list_id = header(&copy, "List-Id").unwrap_or_default();
    assert!(
        list_id.contains("Club news")
            && list_id.contains("<news.")
            && list_id.ends_with(".relay.test>"),
        "{list_id}"
    );
    let html = message.body_html(0).unwrap_or_default();
    assert!(html.contains("<html lang=\"en-GB\">"), "{html}");
    // No copy carries an address of any member (its reader's is only in the
    // envelope), nor who sent it.
    let addresses: Vec<String> = members.iter().map(|m| email(&m.id)).collect();
    for copy in got.values().flatten() {
        let text = copy.text();
        assert!(!text.contains("Ana Ruiz"), "who sent it is for admins only");
        if let Some(found) = addresses.iter().find(|a| text.contains(a.as_str())) {
            panic!("{found} in a copy");
        }
    }
    Ok(())
}

/// The unsubscribe URL and `mailto:` subject of a copy.
fn unsubscribe_links(copy: &Delivered) -> (String, String) {
    let value = header(copy, "List-Unsubscribe").unwrap_or_default();
    let mut url = String::new();
    let mut subject = String::new();
    for part in value.split(',') {
        let part = part.trim().trim_start_matches('<').trim_end_matches('>');
        if let Some(mailto) = part.strip_prefix("mailto:") {
            subject = mailto
                .split("subject=")
                .nth(1)
                .unwrap_or_default()
                .to_owned();
        } else {
            url = part.to_owned();
        }
    }
    (url, subject)
}

async fn subscribed(gw: &TestGateway, member: &str) -> anyhow::Result<Value> {
    let (status, body) = gw
        .call(
            Method::GET,
            &format!("/v1/members/{member}/categories"),
            None,
        )
        .await?;
    anyhow::ensure!(status == 200, "{body}");
    Ok(body["categories"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["id"] == "news"))
        .map_or(Value::Null, |c| c["subscribed"].clone()))
}

fn unsubscribe_mail(from: &str, subject: &str) -> String {
    format!(
        "From: {from}\r\nTo: unsubscribe@relay.test\r\nSubject: {subject}\r\n\r\nunsubscribe\r\n"
    )
}

async fn members_leave_a_category_by_one_click_or_by_mail_but_not_mandatory_notices(
    backend: Backend,
) -> anyhow::Result<()> {
    let (sink, gw) = club(backend, &named(&["ana", "ben", "cleo", "dan"])).await?;
    let (first, _) = send(
        &gw,
        json!({"audience": {"all": true}, "category": "news", "subject": "Issue 1", "text": "x"}),
    )
    .await?;
    let got = wait_copies(&sink, "Issue 1", 4).await?;
    let copy_of = |id: &str| got.get(&email(id)).and_then(|c| c.first()).cloned();

    // Ben: the one-click POST of RFC 8058, as a mail client sends it.
    let ben = copy_of("ben").ok_or_else(|| anyhow::anyhow!("no copy for ben"))?;
    let (url, _) = unsubscribe_links(&ben);
    let response = reqwest::Client::new()
        .post(&url)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(subscribed(&gw, "ben").await?, json!(false));

    // Cleo: by mail, from her own address. Dan cannot use Ana's request.
    let cleo = copy_of("cleo").ok_or_else(|| anyhow::anyhow!("no copy for cleo"))?;
    let (_, cleo_subject) = unsubscribe_links(&cleo);
    let ana = copy_of("ana").ok_or_else(|| anyhow::anyhow!("no copy for ana"))?;
    let (_, ana_subject) = unsubscribe_links(&ana);
    let forged = send_mail_to(
        gw.smtp_addr(),
        Some(&email("dan")),
        &["unsubscribe@relay.test"],
        unsubscribe_mail(&email("dan"), &ana_subject).as_bytes(),
    )
    .await;
    let refusal = smtp_refusal(forged.map(|_| ()));
    assert!(refusal.starts_with("550"), "{refusal}");
    let nonsense = send_mail_to(
        gw.smtp_addr(),
        Some(&email("dan")),
        &["unsubscribe@relay.test"],
        unsubscribe_mail(&email("dan"), "please remove me").as_bytes(),
    )
    .await;
    assert!(smtp_refusal(nonsense.map(|_| ())).starts_with("550"));
    assert_eq!(subscribed(&gw, "ana").await?, json!(true));
    let answer = send_mail_to(
        gw.smtp_addr(),
        Some(&email("cleo")),
        &["unsubscribe@relay.test"],
        unsubscribe_mail(&email("cleo"), &cleo_subject).as_bytes(),
    )
    .await?;
    assert!(answer.contains("unsubscribed"), "{answer}");
    assert_eq!(subscribed(&gw, "cleo").await?, json!(false));
    assert_eq!(progress(&gw, &first).await?["unsubscribed"], 2);

    // The next issue reaches only those still subscribed.
    assert_eq!(dry_run(&gw, json!({"all": true}), "news").await?, 2);
    let (_, n) = send(
        &gw,
        json!({"audience": {"all": true}, "category": "news", "subject": "Issue 2", "text": "x"}),
    )
    .await?;
    assert_eq!(n, 2);
    let second = wait_copies(&sink, "Issue 2", 2).await?;
    let readers: BTreeSet<String> = second.keys().cloned().collect();
    assert_eq!(readers, BTreeSet::from([email("ana"), email("dan")]));

    // A mandatory notice reaches those who left the category, but not an erased
    // member, and offers no way out.
    let (status, body) = gw.call(Method::DELETE, "/v1/members/dan", None).await?;
    assert_eq!(status, 204, "{body}");
    let (notice, n) = send(
        &gw,
        json!({"audience": {"all": true}, "category": "mandatory",
               "subject": "Privacy policy", "text": "Our policy changed.", "sent_by": "Admin"}),
    )
    .await?;
    assert_eq!(n, 3);
    let notices = wait_copies(&sink, "Privacy policy", 3).await?;
    let readers: BTreeSet<String> = notices.keys().cloned().collect();
    assert_eq!(
        readers,
        BTreeSet::from([email("ana"), email("ben"), email("cleo")])
    );
    for copy in notices.values().flatten() {
        assert_eq!(header(copy, "List-Unsubscribe"), None);
        assert_eq!(header(copy, "List-Id"), None);
    }
    let record = wait_broadcast(&gw, &notice, "finished").await?;
    assert_eq!(record["sent_by"], "Admin", "{record}");
    assert!(
        record["api_key"].as_str().is_some_and(|k| k.len() == 16),
        "{record}"
    );
    Ok(())
}

async fn bad_requests_name_their_field(backend: Backend) -> anyhow::Result<()> {
    let (_sink, gw) = club(backend, &[]).await?;
    let base = json!({"audience": {"all": true}, "category": "news", "subject": "s", "text": "t"});
    let cases = [
        ("audience", json!({"audience": {"all": false}})),
        (
            "audience",
            json!({"audience": {"all": true, "members": ["a"]}}),
        ),
        ("audience.members", json!({"audience": {"members": []}})),
        (
            "audience.filter.status",
            json!({"audience": {"filter": {"status": ["gone"]}}}),
        ),
        (
            "audience.filter.attributes.plan",
            json!({"audience": {"filter": {"attributes": {"plan": "Flex"}}}}),
        ),
        ("category", json!({"category": "events"})),
        ("category", json!({"category": "Not An Id"})),
        ("subject", json!({"subject": ""})),
        ("language", json!({"language": "en\"><script>"})),
        ("reply_policy", json!({"reply_policy": "shout"})),
        ("colour", json!({"colour": "red"})),
    ];
    for (field, change) in cases {
        let mut body = base.clone();
        if let (Some(b), Some(c)) = (body.as_object_mut(), change.as_object()) {
            for (k, v) in c {
                b.insert(k.clone(), v.clone());
            }
        }
        let (status, answer) = broadcast(&gw, body).await?;
        assert_eq!(status, 422, "{field}: {answer}");
        assert_eq!(answer["error"]["field"], field, "{answer}");
    }
    let (status, answer) = gw
        .call(
            Method::PUT,
            "/v1/categories/mandatory",
            Some(&json!({"name": "x"})),
        )
        .await?;
    assert_eq!(
        (status, answer["error"]["field"].clone()),
        (422, json!("id"))
    );
    gw.member("ana", &email("ana"), "Ana").await?;
    let (status, answer) = gw
        .call(
            Method::PUT,
            "/v1/members/ana/categories",
            Some(&json!({"categories": {"mandatory": false}})),
        )
        .await?;
    assert_eq!(status, 422, "{answer}");
    let (status, _) = gw.call(Method::GET, "/v1/broadcasts/nope", None).await?;
    assert_eq!(status, 404);
    Ok(())
}

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

async fn an_answer_to_a_broadcast_is_not_passed_on_and_is_answered_once(
    backend: Backend,
) -> anyhow::Result<()> {
    let (sink, gw) = club(backend, &named(&["ana", "ben"])).await?;
    gw.settings(&json!({"contact_url": "https://club.example/contact"}))
        .await?;
    let (id, _) = send(
        &gw,
        json!({"audience": {"all": true}, "category": "news", "subject": "Open day",
               "text": "Saturday."}),
    )
    .await?;
    let got = wait_copies(&sink, "Open day", 2).await?;
    let copy = got
        .get(&email("ana"))
        .and_then(|c| c.first())
        .ok_or_else(|| anyhow::anyhow!("no copy for ana"))?;
    let address = parse(&copy.data)?
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(address, format!("bcast-{id}@relay.test"));
    let answer = |from: String| {
        let to = address.clone();
        let smtp = gw.smtp_addr();
        async move {
            let raw = format!(
                "From: {from}\r\nTo: {to}\r\nSubject: Re: Open day\r\n\r\nCan I bring a friend?\r\n"
            );
            send_mail_to(smtp, Some(&from), &[&to], raw.as_bytes()).await
        }
    };
    // A vacation notice is taken in and never answered (RFC 3834).
    let vacation = format!(
        "From: {ben}\r\nTo: {address}\r\nAuto-Submitted: auto-replied\r\n\
         Subject: Out of office\r\n\r\nAway until Monday.\r\n",
        ben = email("ben")
    );
    let taken = send_mail_to(
        gw.smtp_addr(),
        Some(&email("ben")),
        &[&address],
        vacation.as_bytes(),
    )
    .await?;
    assert!(taken.contains("not passed on"), "{taken}");
    let first = answer(email("ana")).await?;
    assert!(first.contains("takes no replies"), "{first}");
    let told = sink.wait_containing("was not passed on", WAIT).await?;
    assert_eq!(told.rcpt_to, vec![email("ana")]);
    assert!(
        told.text().contains("https://club.example/contact"),
        "{}",
        told.text()
    );
    assert!(told.text().contains("Auto-Submitted: auto-replied"));
    // A second answer the same day is taken in but not answered again, and nobody
    // else ever sees either.
    answer(email("ana")).await?;
    let marker = maskrelay_tests::db::unique("after");
    let (status, body) = gw.message("ben", "ana", "Hi", &marker).await?;
    anyhow::ensure!(status == 202, "{body}");
    sink.wait_containing(&marker, WAIT).await?;
    let delivered = sink.delivered();
    let answers = delivered
        .iter()
        .filter(|d| d.text().contains("was not passed on"))
        .count();
    assert_eq!(answers, 1);
    assert!(
        !delivered
            .iter()
            .any(|d| d.text().contains("was not passed on") && d.rcpt_to.contains(&email("ben"))),
        "a vacation notice was answered"
    );
    assert!(
        !delivered
            .iter()
            .any(|d| d.text().contains("bring a friend")),
        "an answer to a broadcast was relayed"
    );
    // Someone who did not receive it is refused.
    let stranger = smtp_refusal(answer("zed@example.net".to_owned()).await.map(|_| ()));
    assert!(stranger.starts_with("550"), "{stranger}");
    Ok(())
}

async fn a_retried_broadcast_is_sent_once(backend: Backend) -> anyhow::Result<()> {
    let (sink, gw) = club(backend, &named(&["ana", "ben", "cleo"])).await?;
    let body = json!({"audience": {"all": true}, "category": "news", "subject": "Once",
                      "text": "x"});
    let key = [("Idempotency-Key", "broadcast-42")];
    let (first_status, first) = gw
        .call_with(
            Method::POST,
            "/v1/broadcasts",
            Some(&body),
            &gw.api_key,
            &key,
        )
        .await?;
    let (again_status, again) = gw
        .call_with(
            Method::POST,
            "/v1/broadcasts",
            Some(&body),
            &gw.api_key,
            &key,
        )
        .await?;
    assert_eq!((first_status, again_status), (202, 202), "{first} {again}");
    assert_eq!(first, again);
    let other = json!({"audience": {"all": true}, "category": "news", "subject": "Other",
                       "text": "x"});
    let (status, answer) = gw
        .call_with(
            Method::POST,
            "/v1/broadcasts",
            Some(&other),
            &gw.api_key,
            &key,
        )
        .await?;
    assert_eq!(status, 422, "{answer}");
    let id = first["id"].as_str().unwrap_or_default();
    wait_broadcast(&gw, id, "finished").await?;
    let marker = maskrelay_tests::db::unique("after");
    let (status, body) = gw.message("ana", "ben", "Hi", &marker).await?;
    anyhow::ensure!(status == 202, "{body}");
    sink.wait_containing(&marker, WAIT).await?;
    let copies = copies(&sink, "Once").values().map(Vec::len).sum::<usize>();
    assert_eq!(copies, 3);
    Ok(())
}

async fn a_broadcast_sent_by_link_counts_who_read_it(backend: Backend) -> anyhow::Result<()> {
    let (sink, gw) = club(backend, &named(&["ana", "ben"])).await?;
    let text = format!(
        "{} The end of the story.",
        "A long report on the season. ".repeat(30)
    );
    let (id, _) = send(
        &gw,
        json!({"audience": {"all": true}, "category": "news", "subject": "Season report",
               "text": text, "delivery": "link"}),
    )
    .await?;
    let got = wait_copies(&sink, "Season report", 2).await?;
    let link_of = |member: &str| -> anyhow::Result<String> {
        let copy = got
            .get(&email(member))
            .and_then(|c| c.first())
            .ok_or_else(|| anyhow::anyhow!("no copy for {member}"))?;
        let body = parse(&copy.data)?
            .body_text(0)
            .unwrap_or_default()
            .into_owned();
        assert!(
            !body.contains("The end of the story"),
            "the whole text was sent"
        );
        assert!(body.contains("A long report on the season"), "{body}");
        body.split("Read the whole message: ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("no link in {body}"))
    };
    let (ana, ben) = (link_of("ana")?, link_of("ben")?);
    assert_ne!(ana, ben, "each member has a link of their own");
    assert_eq!(progress(&gw, &id).await?["read"], 0);
    for _ in 0..2 {
        let (status, page) = gw.browse(Method::GET, &ana).await?;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("The end of the story."), "{page}");
    }
    assert_eq!(progress(&gw, &id).await?["read"], 1, "a reader counts once");
    let (status, _) = gw.browse(Method::GET, &ben).await?;
    assert_eq!(status, 200);
    assert_eq!(progress(&gw, &id).await?["read"], 2);
    let forged = ana.replacen("read.", "read.x", 1);
    let (status, _) = gw.browse(Method::GET, &forged).await?;
    assert_eq!(status, 404);
    Ok(())
}

/// Registers `count` members of another organisation; its API.
async fn second_organisation(
    gw: &TestGateway,
    prefix: &str,
    count: usize,
) -> anyhow::Result<maskrelay_tests::api::Api> {
    let (_, key) = gw.running.store.create_org("Second Club").await?;
    let api = maskrelay_tests::api::Api::new(gw.running.http_addr, key);
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
    audience_counts_agree_with_an_independent_count,
    members_leave_a_category_by_one_click_or_by_mail_but_not_mandatory_notices,
    bad_requests_name_their_field,
    conversations_go_ahead_of_broadcast_copies,
    a_paced_broadcast_can_be_cancelled,
    organisations_sharing_a_gateway_each_get_their_share,
    an_answer_to_a_broadcast_is_not_passed_on_and_is_answered_once,
    a_retried_broadcast_is_sent_once,
    a_broadcast_sent_by_link_counts_who_read_it,
);
