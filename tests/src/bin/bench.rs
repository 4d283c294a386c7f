//! Throughput benchmark: how many messages per second maskrelay accepts durably,
//! through the HTTP API and through SMTP replies, on one database.
//!
//! `cargo run --release -p maskrelay-tests --bin bench -- [COUNT] [CONCURRENCY]`
//! Set `MASKRELAY_TEST_POSTGRES_URL` and pass `postgres` as a third argument to
//! measure PostgreSQL instead of SQLite. Deliveries go to a local test smarthost.

use std::sync::Arc;
use std::time::{Duration, Instant};

use maskrelay_tests::Backend;
use maskrelay_tests::gateway::{TestGateway, send_mail};
use maskrelay_tests::mail::{from_address, parse};
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
            let raw = format!(
                "From: bob@example.net\r\nTo: {relay}\r\nSubject: Re: bench\r\n\r\nreply {i}\r\n"
            );
            send_mail(smtp, "bob@example.net", &relay, raw.as_bytes()).await
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
