//! The privacy guarantee on real mail: replies written by many mail clients
//! (`tests/resources/corpus/`), with the conversation's members substituted for the
//! people in them, go through the SMTP listener; what is delivered must hold no real
//! address of either member, raw or decoded, and still hold what the member wrote.
//! A second pass, with the organisation removing every other address, must leave no
//! address at all but relay addresses. Bounces must never be relayed.
//!
//! Runs on SQLite only: the path under test is content, which does not depend on the
//! database (the PostgreSQL half of the suite covers the same code in `privacy.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use mail_parser::MimeHeaders;
use maskrelay_tests::Backend;
use maskrelay_tests::gateway::{TestGateway, send_mail_to, smtp_refusal};
use maskrelay_tests::mail::{from_address, parse};
use maskrelay_tests::privacy::{
    addresses_in, comparable, decoded_views, foreign_addresses, html_to_text, leaks,
};
use maskrelay_tests::smarthost::Smarthost;
use serde_json::json;

const ALICE: &str = "alice.liddell@example.com";
const BOB: &str = "bob.smith@example.net";
const WAIT: Duration = Duration::from_secs(10);

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/corpus")
}

/// One sample, ready to send as Bob's reply.
struct Sample {
    name: String,
    raw: Vec<u8>,
    /// What Bob wrote, line by line as `comparable` text, to find in this order in the
    /// delivered text or HTML (lines a reply trimmer left out may lie between).
    written: Option<Vec<String>>,
}

/// What happened to one sample.
enum Outcome {
    Relayed(Vec<u8>),
    Recorded,
    Refused(String),
}

/// Replaces every occurrence of `from` (ASCII, any case) in `bytes` with `to`.
fn replace_ci(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let needle = from.to_ascii_lowercase().into_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes.len() - i >= needle.len()
            && bytes[i..i + needle.len()].to_ascii_lowercase() == needle
        {
            out.extend_from_slice(to.as_bytes());
            i += needle.len();
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

/// The sample's first two distinct addresses become Alice (whose message is being
/// answered: attribution lines come first) and Bob.
fn substitute_in_body(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    let mut found = addresses_in(&text);
    found.extend(addresses_in(&html_to_text(&text)));
    let mut distinct: Vec<String> = Vec::new();
    for a in found {
        if !distinct.iter().any(|d| d.eq_ignore_ascii_case(&a)) {
            distinct.push(a);
        }
    }
    let mut out = bytes.to_vec();
    for (address, member) in distinct.iter().zip([ALICE, BOB]) {
        out = replace_ci(&out, address, member);
    }
    out
}

/// A whole message: the sample's `From:` becomes Bob, its `To:` Alice.
fn substitute_in_message(bytes: &[u8]) -> Vec<u8> {
    let Ok(m) = parse(bytes) else {
        return bytes.to_vec();
    };
    let first = |a: Option<&mail_parser::Address<'_>>| {
        a.and_then(|a| a.first())
            .and_then(|a| a.address())
            .filter(|a| a.contains('@'))
            .map(str::to_owned)
    };
    let (from, to) = (first(m.from()), first(m.to()));
    let mut out = bytes.to_vec();
    let has_from = from.is_some();
    for (address, member) in [(from, BOB), (to, ALICE)] {
        if let Some(address) = address {
            out = replace_ci(&out, &address, member);
        }
    }
    if !has_from {
        // A reply names its writer; samples without a From: address get Bob's.
        out.splice(0..0, format!("From: Bob <{BOB}>\r\n").into_bytes());
    }
    out
}

/// The non-empty lines of `text`, each as `comparable` text.
fn lines(text: &str) -> Vec<String> {
    text.lines()
        .map(comparable)
        .filter(|l| !l.is_empty())
        .collect()
}

fn wrap(content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = format!(
        "From: Bob <{BOB}>\r\nTo: Alice <{ALICE}>\r\nSubject: Re: Test message\r\n\
         MIME-Version: 1.0\r\nContent-Type: {content_type}; charset=utf-8\r\n\
         Content-Transfer-Encoding: 8bit\r\n\r\n"
    )
    .into_bytes();
    raw.extend_from_slice(body);
    raw
}

fn files(dir: &Path, extension: &str) -> anyhow::Result<Vec<PathBuf>> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == extension))
        .collect();
    all.sort();
    Ok(all)
}

fn name(path: &Path) -> String {
    path.strip_prefix(corpus())
        .unwrap_or(path)
        .display()
        .to_string()
}

fn samples() -> anyhow::Result<Vec<Sample>> {
    let root = corpus();
    let mut samples = Vec::new();
    let talon = root.join("talon");
    for path in files(&talon.join("standard_replies"), "eml")? {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        let expected = talon
            .join("standard_replies")
            .join(format!("{stem}_reply_text"));
        let written = std::fs::read_to_string(expected).unwrap_or_else(|_| "Hello".into());
        samples.push(Sample {
            name: name(&path),
            raw: substitute_in_message(&std::fs::read(&path)?),
            written: Some(lines(&written)),
        });
    }
    for path in files(&talon, "eml")? {
        samples.push(Sample {
            name: name(&path),
            raw: substitute_in_message(&std::fs::read(&path)?),
            written: None,
        });
    }
    for path in files(&talon.join("html_replies"), "html")?
        .into_iter()
        .chain(files(&talon, "html")?)
    {
        let in_html_replies = path.parent().is_some_and(|p| p.ends_with("html_replies"));
        samples.push(Sample {
            name: name(&path),
            raw: wrap("text/html", &substitute_in_body(&std::fs::read(&path)?)),
            written: in_html_replies.then(|| vec!["Hi.Iamfine.Thanks,Alex".to_owned()]),
        });
    }
    let trimmer = root.join("email_reply_trimmer");
    for path in files(&trimmer.join("emails"), "txt")? {
        let file = path.file_name().unwrap_or_default();
        let trimmed = std::fs::read_to_string(trimmer.join("trimmed").join(file))?;
        samples.push(Sample {
            name: name(&path),
            raw: wrap("text/plain", &substitute_in_body(&std::fs::read(&path)?)),
            written: Some(lines(&String::from_utf8_lossy(&substitute_in_body(
                trimmed.as_bytes(),
            ))))
            .filter(|w| !w.is_empty()),
        });
    }
    for dir in ["rfc", "thirdparty", "malformed"] {
        for path in files(&root.join("mail-parser").join(dir), "eml")? {
            samples.push(Sample {
                name: name(&path),
                raw: substitute_in_message(&std::fs::read(&path)?),
                written: None,
            });
        }
    }
    Ok(samples)
}

/// Alice has written to Bob; returns the gateway and Alice's relay address.
async fn conversation(smarthost: &Smarthost) -> anyhow::Result<(TestGateway, String)> {
    let gw = TestGateway::start(Backend::Sqlite, smarthost).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    let (status, body) = gw
        .message("alice", "bob", "Test message", "Hello! How are you?")
        .await?;
    anyhow::ensure!(status == 202, "{body}");
    let first = smarthost.wait_for(1, WAIT).await?.remove(0);
    Ok((gw, from_address(&parse(&first.data)?)))
}

async fn send(
    gw: &TestGateway,
    smarthost: &Smarthost,
    sender: Option<&str>,
    relay: &str,
    raw: &[u8],
) -> anyhow::Result<Outcome> {
    let before = smarthost.delivered().len();
    let answer = send_mail_to(gw.smtp_addr(), sender, &[relay], raw).await;
    Ok(match answer {
        Ok(text) if text.contains("recorded") => Outcome::Recorded,
        Ok(_) => Outcome::Relayed(
            smarthost
                .wait_for(before + 1, WAIT)
                .await?
                .remove(before)
                .data,
        ),
        Err(e) => Outcome::Refused(smtp_refusal(Err(e))),
    })
}

/// The address Bob writes this sample from. Where substitution could not make the
/// `From:` line Bob's (RFC 5322 comments inside the address, say), the sample's own
/// `From:` address becomes one of Bob's other addresses, as a member may have several,
/// and is then as private as his main one.
async fn writer(gw: &TestGateway, raw: &[u8]) -> anyhow::Result<String> {
    let from = parse(raw)
        .ok()
        .map(|m| from_address(&m))
        .unwrap_or_default();
    let bob = if from.contains('@') && !from.eq_ignore_ascii_case(BOB) {
        from
    } else {
        BOB.to_owned()
    };
    let others: Vec<&str> = [bob.as_str()].into_iter().filter(|b| *b != BOB).collect();
    gw.member_json(
        "bob",
        &json!({"email": BOB, "name": "Bob", "other_emails": others}),
    )
    .await?;
    Ok(bob)
}

/// Checks one delivered sample; returns what is wrong with it.
fn problems(sample: &Sample, bob: &str, delivered: &[u8], strict: bool) -> Vec<String> {
    let mut wrong = leaks(delivered, &[ALICE, BOB, bob]);
    if strict {
        wrong.extend(foreign_addresses(delivered, "relay.test"));
    }
    if let Some(written) = &sample.written {
        let seen: String = decoded_views(delivered)
            .into_iter()
            .filter(|(at, _)| at.ends_with("/text") || at.ends_with("/html as text"))
            .map(|(_, text)| comparable(&text))
            .collect();
        let mut rest = seen.as_str();
        for line in written {
            match rest.find(line.as_str()) {
                Some(at) => rest = &rest[at + line.len()..],
                None => {
                    wrong.push(format!("what Bob wrote is missing or out of order: {line}"));
                    break;
                }
            }
        }
    }
    wrong
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_replies_reach_alice_without_a_real_address() -> anyhow::Result<()> {
    let smarthost = Smarthost::start().await?;
    let (gw, alice_relay) = conversation(&smarthost).await?;
    let samples = samples()?;
    assert!(
        samples.len() > 140,
        "corpus incomplete: {} samples",
        samples.len()
    );
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for strict in [false, true] {
        gw.settings(&json!({"remove_foreign_addresses": strict}))
            .await?;
        let (mut relayed, mut recorded, mut refused) = (0, Vec::new(), Vec::new());
        for sample in &samples {
            let bob = writer(&gw, &sample.raw).await?;
            match send(&gw, &smarthost, Some(&bob), &alice_relay, &sample.raw).await? {
                Outcome::Relayed(data) => {
                    relayed += 1;
                    for problem in problems(sample, &bob, &data, strict) {
                        failures.push(format!("{} (strict: {strict}): {problem}", sample.name));
                    }
                }
                Outcome::Recorded => recorded.push(sample.name.clone()),
                Outcome::Refused(reply) => refused.push(format!("{}: {reply}", sample.name)),
            }
        }
        // A refusal must be a permanent one with a reason; a 4xx would mean a bug.
        for r in &refused {
            if !r.contains(": 5") {
                failures.push(format!("refused without a 5xx: {r}"));
            }
        }
        report.push(format!(
            "strict={strict}: {} samples, {relayed} relayed and checked, {} recorded as automatic {recorded:?}, {} refused {refused:?}",
            samples.len(),
            recorded.len(),
            refused.len()
        ));
    }
    println!("corpus: {report:#?}");
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    Ok(())
}

/// What the listener answered to one bounce, sent twice.
struct BounceAnswers {
    name: String,
    is_report: bool,
    /// From the null reverse path, as delivery reports arrive.
    from_null: anyhow::Result<String>,
    /// From Bob's own address: only the content can tell.
    from_bob: anyhow::Result<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounces_are_recorded_never_relayed() -> anyhow::Result<()> {
    let smarthost = Smarthost::start().await?;
    let (gw, alice_relay) = conversation(&smarthost).await?;
    let root = corpus().join("sisimai");
    let mut paths = files(&root.join("bsd"), "eml")?;
    paths.extend(files(&root.join("not"), "eml")?);
    assert!(paths.len() > 580, "corpus incomplete: {}", paths.len());

    // Order does not matter here, so several clients send at once.
    let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(8));
    let mut sending = tokio::task::JoinSet::new();
    for path in paths.clone() {
        let (smtp, relay, slots) = (gw.smtp_addr(), alice_relay.clone(), slots.clone());
        sending.spawn(async move {
            let _slot = slots.acquire_owned().await;
            let raw = substitute_in_message(&std::fs::read(&path).unwrap_or_default());
            let is_report = parse(&raw).ok().is_some_and(|m| {
                m.content_type()
                    .is_some_and(|ct| ct.ctype() == "multipart" && ct.subtype() == Some("report"))
            });
            BounceAnswers {
                name: name(&path),
                is_report,
                from_null: send_mail_to(smtp, None, &[&relay], &raw).await,
                from_bob: send_mail_to(smtp, Some(BOB), &[&relay], &raw).await,
            }
        });
    }
    let mut failures = Vec::new();
    let (mut reports, mut relayed) = (0, Vec::new());
    while let Some(answers) = sending.join_next().await {
        let a = answers?;
        reports += usize::from(a.is_report);
        match a.from_null {
            Ok(text) if text.contains("recorded") => {}
            Ok(text) => failures.push(format!("{}: null sender relayed: {text}", a.name)),
            Err(e) => {
                let refusal = smtp_refusal(Err(e));
                if !refusal.starts_with('5') {
                    failures.push(format!("{}: {refusal}", a.name));
                }
            }
        }
        if let Ok(text) = &a.from_bob
            && !text.contains("recorded")
        {
            if a.is_report {
                failures.push(format!("{}: an RFC 3464 report was relayed", a.name));
            }
            relayed.push(a.name);
        }
    }
    // Whatever went through must still have been scrubbed.
    let delivered = smarthost.wait_for(1 + relayed.len(), WAIT).await?;
    for d in &delivered[1..] {
        let found = leaks(&d.data, &[ALICE, BOB]);
        if !found.is_empty() {
            failures.push(format!("{found:?}"));
        }
    }
    println!(
        "bounces: {} samples ({reports} multipart/report); from the null sender: none relayed; \
         from Bob's address: {} relayed, scrubbed, because nothing in them marks them as \
         automatic; every multipart/report recorded",
        paths.len(),
        relayed.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    Ok(())
}
