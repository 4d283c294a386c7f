//! Broadcasts: staff write to all members, a filtered group or chosen members, with
//! the count shown first and exact; what a copy carries; bad requests; a retried
//! request sent once.

use std::collections::BTreeSet;

use maskrelay_tests::broadcast::*;
use maskrelay_tests::gateway::TestGateway;
use maskrelay_tests::gateway::send_mail_to;
use maskrelay_tests::mail::{delivery_report, parse};
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, both_backends};
use reqwest::Method;
use serde_json::json;

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

both_backends!(
    audience_counts_agree_with_an_independent_count,
    bad_requests_name_their_field,
    a_retried_broadcast_is_sent_once,
);
