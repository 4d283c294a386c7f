//! What members do with a broadcast: leave its category by one click or by mail (but
//! not mandatory notices), answer it (taken in, passed on to nobody, answered once a
//! day), and read it by its link.

use std::collections::BTreeSet;

use maskrelay_tests::broadcast::*;
use maskrelay_tests::gateway::TestGateway;
use maskrelay_tests::gateway::{send_mail_to, smtp_refusal};
use maskrelay_tests::mail::parse;
use maskrelay_tests::smarthost::Delivered;
use maskrelay_tests::{Backend, both_backends};
use reqwest::Method;
use serde_json::{Value, json};

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

both_backends!(
    members_leave_a_category_by_one_click_or_by_mail_but_not_mandatory_notices,
    an_answer_to_a_broadcast_is_not_passed_on_and_is_answered_once,
    a_broadcast_sent_by_link_counts_who_read_it,
);
