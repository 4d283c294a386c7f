//! Throughput benchmark: how many messages per second maskrelay accepts durably,
//! through the HTTP API and through SMTP replies, on one database.
//!
//! `cargo run --release -p maskrelay-tests --bin bench -- [COUNT] [CONCURRENCY]`
//! Set `MASKRELAY_TEST_POSTGRES_URL` and pass `postgres` as a third argument to
//! measure PostgreSQL instead of SQLite. Deliveries go to a local test smarthost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use maskrelay_tests::Backend;
use maskrelay_tests::gateway::TestGateway;
use maskrelay_tests::mail::{from_address, parse};
use maskrelay_tests::raw::RawClient;
use maskrelay_tests::smarthost::Smarthost;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let count: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(500);
    let concurrency: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(8);
    let backend = match args.get(3).map(String::as_str) {
        Some("postgres") => Backend::Postgres,
        _ => Backend::Sqlite,
    };
    let sink = Smarthost::start().await?;
    let gw = Arc::new(TestGateway::start(backend, &sink).await?);
    gw.member("alice", "alice@example.com", "Alice").await?;
    gw.member("bob", "bob@example.net", "Bob").await?;

    let started = Instant::now();
    run_concurrently(count, concurrency, {
        let gw = Arc::clone(&gw);
        move |i| {
            let gw = Arc::clone(&gw);
            async move {
                let (status, body) = gw
                    .message("alice", "bob", "bench", &format!("message {i}"))
                    .await?;
                anyhow::ensure!(status == 202, "{body}");
                Ok(())
            }
        }
    })
    .await?;
    let api = started.elapsed();
    sink.wait_for(count, Duration::from_secs(600)).await?;
    let delivered = started.elapsed();

    let relay = from_address(&parse(&sink.delivered()[0].data)?);
    let smtp = gw.smtp_addr();
    let started = Instant::now();
    run_concurrently(count, concurrency, move |i| {
        let relay = relay.clone();
        async move {
            // A pipelining client, so that what is measured is the listener and not
            // a client's small writes waiting on Nagle's algorithm.
            let (mut client, _) = RawClient::connect(smtp).await?;
            client.command("EHLO bench.example.net").await?;
            client
                .send(&format!("MAIL FROM:<bob@example.net>\r\nRCPT TO:<{relay}>\r\nDATA\r\n"))
                .await?;
            for _ in 0..3 {
                client.reply().await?;
            }
            let done = client
                .command(&format!(
                    "From: bob@example.net\r\nTo: {relay}\r\nSubject: Re: bench\r\n\r\nreply {i}\r\n."
                ))
                .await?;
            anyhow::ensure!(done.starts_with("250"), "{done}");
            client.command("QUIT").await?;
            Ok(())
        }
    })
    .await?;
    let replies = started.elapsed();

    let rate = |d: Duration| count as f64 / d.as_secs_f64();
    println!("backend: {backend:?}, messages: {count}, concurrency: {concurrency}");
    println!(
        "HTTP API accepted (202, committed): {:.0} msg/s ({:.2?} total)",
        rate(api),
        api
    );
    println!(
        "API accept + delivery to smarthost: {:.0} msg/s ({:.2?} total)",
        rate(delivered),
        delivered
    );
    println!(
        "SMTP replies accepted (250, committed; one connection per message): {:.0} msg/s ({:.2?})",
        rate(replies),
        replies
    );
    scrub_and_compose(count)?;
    large_part()?;
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM"))
    {
        println!(
            "peak resident memory of the whole process (gateway + clients + sink): {}",
            line.trim_start_matches("VmHWM:").trim()
        );
    }
    if let Ok(gw) = Arc::try_unwrap(gw) {
        gw.stop().await;
    }
    Ok(())
}

/// CPU cost of the privacy path alone: reading a real Outlook reply (HTML with its
/// style sheet, quoted headers, links) into the relayable tree, replacing addresses
/// in it, and composing the outgoing message.
fn scrub_and_compose(count: usize) -> anyhow::Result<()> {
    use maskrelay_compose::Scrubber;
    use maskrelay_compose::build::{Draft, Sender, build};
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/resources/corpus/talon/standard_replies/outlook.eml"
    );
    let raw = std::fs::read(path)?;
    let started = Instant::now();
    for _ in 0..count {
        let Some(message) =
            maskrelay_inbound::read::message::parse(&raw, "relay.test", false, 1_800_000_000)
        else {
            anyhow::bail!("sample does not parse");
        };
        let mut scrubber = Scrubber::new("relay.test", true);
        for a in [
            "me@example.com",
            "you@example.com",
            "dan.le@example.com",
            "x@example.org",
        ] {
            scrubber.replace(a, "k7q2mx9d4pabcdef@relay.test");
        }
        let Ok(mut body) = message.body else {
            anyhow::bail!("sample is not relayable");
        };
        body.scrub(&scrubber);
        build(&Draft {
            from: Sender::Member {
                name: "Bob",
                relay_address: "k7q2mx9d4pabcdef@relay.test",
                links: None,
            },
            org_name: "Example Club",
            reader_name: "Alice",
            reader_relay_address: "a7q2mx9d4pabcdef@relay.test",
            message_id: "m@relay.test",
            in_reply_to: None,
            references: &[],
            date: 1_800_000_000,
            relay_domain: "relay.test",
            body: &body,
        })?;
    }
    let took = started.elapsed();
    println!(
        "parse + scrub + compose of a {} KB Outlook reply: {:.0} µs/message, {:.1} MB/s",
        raw.len() / 1024,
        took.as_secs_f64() * 1e6 / count as f64,
        (raw.len() * count) as f64 / took.as_secs_f64() / 1e6
    );
    Ok(())
}

/// A pathological part: 20 MB of HTML with an address on every line. Before parts
/// were scrubbed in pieces this took minutes and over a gigabyte.
fn large_part() -> anyhow::Result<()> {
    use maskrelay_compose::Scrubber;
    let mut raw = String::from("From: b@x.org\r\nContent-Type: text/html\r\n\r\n");
    for i in 0..400_000 {
        raw.push_str(&format!(
            "<p>line {i} write to bob@example.com &amp; x</p>\r\n"
        ));
    }
    let started = Instant::now();
    let Some(message) =
        maskrelay_inbound::read::message::parse(raw.as_bytes(), "relay.test", false, 1_800_000_000)
    else {
        anyhow::bail!("large sample does not parse");
    };
    let mut scrubber = Scrubber::new("relay.test", true);
    scrubber.replace("bob@example.com", "k7q2mx9d4pabcdef@relay.test");
    let Ok(mut body) = message.body else {
        anyhow::bail!("large sample is not relayable");
    };
    body.scrub(&scrubber);
    println!(
        "parse + scrub of a {} MB HTML part with 400,000 addresses: {:.2?}",
        raw.len() / 1_000_000,
        started.elapsed()
    );
    Ok(())
}

async fn run_concurrently<F, Fut>(count: usize, concurrency: usize, task: F) -> anyhow::Result<()>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut handles = Vec::with_capacity(count);
    for i in 0..count {
        let permit = Arc::clone(&limit).acquire_owned().await?;
        let fut = task(i);
        handles.push(tokio::spawn(async move {
            let result = fut.await;
            drop(permit);
            result
        }));
    }
    for h in handles {
        h.await??;
    }
    Ok(())
}
