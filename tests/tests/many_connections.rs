//! Ten thousand idle SMTP connections: the gateway holds them at under 32 KiB each,
//! a member's reply still passes meanwhile, and every idle one is cut, no sooner
//! than the configured idle timeout, with `421 4.4.2`.
//!
//! The gateway runs as a process of its own so that its memory is measured alone.

use std::time::Duration;

use maskrelay_tests::db::TestDb;
use maskrelay_tests::gateway::send_mail;
use maskrelay_tests::load::{self, BOB};
use maskrelay_tests::process::{GatewayProcess, ProcessSpec};
use maskrelay_tests::smarthost::Smarthost;
use maskrelay_tests::{Backend, gateway_binary};
use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

const CONNECTIONS: usize = 10_000;
const IDLE_TIMEOUT: Duration = Duration::from_secs(20);
const MAX_BYTES_PER_CONNECTION: u64 = 32 * 1024;

/// Raises this process's file limit (the clients' sockets) to its hard limit; the
/// gateway, started after, inherits it and raises its own the same way.
fn raise_file_limit(needed: u64) -> anyhow::Result<()> {
    let limit = getrlimit(Resource::Nofile);
    let hard = limit.maximum.unwrap_or(u64::MAX);
    anyhow::ensure!(
        hard >= needed,
        "the hard file limit is {hard}, below the {needed} this test needs (ulimit -Hn)"
    );
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(hard),
            maximum: limit.maximum,
        },
    )?;
    Ok(())
}

/// An idle client: connected, greeted, silent.
struct Idle {
    stream: BufReader<TcpStream>,
    /// Before connecting: the server's idle timer cannot have started earlier.
    started: Instant,
}

async fn connect_idle(server: std::net::SocketAddr) -> anyhow::Result<Idle> {
    let started = Instant::now();
    let mut stream = BufReader::new(TcpStream::connect(server).await?);
    let mut greeting = String::new();
    stream.read_line(&mut greeting).await?;
    anyhow::ensure!(greeting.starts_with("220 "), "greeting: {greeting:?}");
    Ok(Idle { stream, started })
}

/// Reads what the server says until it closes; returns it and when it closed.
async fn until_cut(mut idle: Idle) -> anyhow::Result<(String, Duration)> {
    let mut said = Vec::new();
    idle.stream.read_to_end(&mut said).await?;
    Ok((
        String::from_utf8_lossy(&said).into_owned(),
        idle.started.elapsed(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_cost_little_and_are_cut_on_time() -> anyhow::Result<()> {
    raise_file_limit(CONNECTIONS as u64 + 1_000)?;
    let db = TestDb::new(Backend::Sqlite).await?;
    let sink = Smarthost::start().await?;
    let mut spec = ProcessSpec::new(gateway_binary!(), &db.dir, &db.url, &sink.url())?;
    // Room to spare: stress mode (at 80% by default) would shorten the timeout.
    let room = (CONNECTIONS * 3 / 2).to_string();
    spec.set("SMTP_MAX_CONNECTIONS", &room);
    spec.set("SMTP_MAX_CONNECTIONS_PER_IP", &room);
    spec.set(
        "SMTP_IDLE_TIMEOUT_SECS",
        &IDLE_TIMEOUT.as_secs().to_string(),
    );
    let api_key = spec.create_org("Example Club").await?;
    let gateway = GatewayProcess::start(&spec).await?;
    let api = gateway.api(&api_key);
    let relay = load::open_conversation(&api, &sink).await?;
    // Warm: one reply relayed end to end before the baseline is read.
    let reply = |n: u32| {
        format!(
            "From: Bob <{BOB}>\r\nTo: <{relay}>\r\nSubject: Re: {n}\r\n\r\nreply-marker-{n}\r\n"
        )
        .into_bytes()
    };
    send_mail(gateway.smtp_addr, BOB, &relay, &reply(1)).await?;
    sink.wait_for(2, Duration::from_secs(30)).await?;
    let before = gateway.resident_kib()?;

    let gate = std::sync::Arc::new(Semaphore::new(256));
    let mut connecting = JoinSet::new();
    for _ in 0..CONNECTIONS {
        let gate = gate.clone();
        let server = gateway.smtp_addr;
        connecting.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            connect_idle(server).await
        });
    }
    let mut idle = Vec::with_capacity(CONNECTIONS);
    while let Some(done) = connecting.join_next().await {
        idle.push(done??);
    }
    api.wait_metric("smtp_sessions_open", Duration::from_secs(60), |v| {
        v >= CONNECTIONS as u64
    })
    .await?;
    anyhow::ensure!(
        api.metric("smtp_stress_mode").await? == 0,
        "the listener went into stress mode: timeouts would be shortened"
    );
    let after = gateway.resident_kib()?;
    let per_connection = after.saturating_sub(before) * 1024 / CONNECTIONS as u64;
    eprintln!(
        "{CONNECTIONS} idle connections: resident {before} KiB before, {after} KiB with them \
         open: {per_connection} bytes per connection"
    );
    assert!(
        per_connection < MAX_BYTES_PER_CONNECTION,
        "{per_connection} bytes per idle connection (limit {MAX_BYTES_PER_CONNECTION})"
    );

    // A member's reply passes while they are all held.
    send_mail(gateway.smtp_addr, BOB, &relay, &reply(2)).await?;
    let delivered = sink.wait_for(3, Duration::from_secs(30)).await?;
    assert!(
        delivered
            .iter()
            .any(|d| String::from_utf8_lossy(&d.data).contains("reply-marker-2")),
        "the reply sent among idle connections was not delivered"
    );

    let mut cuts = JoinSet::new();
    for connection in idle {
        cuts.spawn(tokio::time::timeout(
            IDLE_TIMEOUT + Duration::from_secs(60),
            until_cut(connection),
        ));
    }
    let mut cut = 0;
    while let Some(done) = cuts.join_next().await {
        let (said, after) = done?.map_err(|_| {
            anyhow::anyhow!("an idle connection was not cut within 60 s of its timeout")
        })??;
        assert!(
            said.starts_with("421 4.4.2"),
            "an idle connection was told {said:?}"
        );
        assert!(
            after >= IDLE_TIMEOUT,
            "an idle connection was cut after {after:?}, before its {IDLE_TIMEOUT:?}"
        );
        cut += 1;
    }
    assert_eq!(cut, CONNECTIONS);
    let timed_out = api.metric("smtp_sessions_timed_out_total").await?;
    assert!(
        timed_out >= CONNECTIONS as u64,
        "{timed_out} sessions timed out"
    );
    gateway.kill9().await?;
    Ok(())
}
