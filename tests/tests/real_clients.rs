//! Real SMTP clients against the listener: `swaks` (Debian's package) for STARTTLS
//! and pipelining, and Python's `smtplib`. Ignored, saying so, where the program is
//! not installed; `.ci/run` installs swaks.

use std::process::Command;
use std::time::Duration;

use maskrelay_tests::Backend;
use maskrelay_tests::gateway::TestGateway;
use maskrelay_tests::mail::{from_address, parse};
use maskrelay_tests::smarthost::Smarthost;

const ALICE: &str = "alice@example.com";
const BOB: &str = "bob@example.net";
const WAIT: Duration = Duration::from_secs(10);

/// A gateway where Alice wrote to Bob; returns Alice's relay address.
async fn conversation() -> anyhow::Result<(Smarthost, TestGateway, String)> {
    let sink = Smarthost::start().await?;
    let gw = TestGateway::start(Backend::Sqlite, &sink).await?;
    gw.member("alice", ALICE, "Alice").await?;
    gw.member("bob", BOB, "Bob").await?;
    gw.message("alice", "bob", "Hello", "Hi").await?;
    let first = sink.wait_for(1, WAIT).await?.remove(0);
    let relay = from_address(&parse(&first.data)?);
    Ok((sink, gw, relay))
}

/// Runs a program off the async runtime; returns whether it succeeded and its output.
async fn run(program: &str, args: Vec<String>) -> anyhow::Result<(bool, String)> {
    let program = program.to_owned();
    let output =
        tokio::task::spawn_blocking(move || Command::new(program).args(args).output()).await??;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.success(), text))
}

fn swaks(server: String, from: &str, to: &str, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--server",
        &server,
        "--from",
        from,
        "--to",
        to,
        "--ehlo",
        "client.example.net",
        "--header",
        "Subject: Re: Hello",
        "--timeout",
        "10",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(swaks_tests),
    ignore = "swaks is not installed (apt-get install swaks)"
)]
async fn swaks_delivers_a_reply_over_starttls_with_pipelining() -> anyhow::Result<()> {
    let (sink, gw, relay) = conversation().await?;
    let args = swaks(
        gw.smtp_addr().to_string(),
        BOB,
        &relay,
        &["--tls", "--pipeline", "--body", "Sent by swaks over TLS"],
    );
    let (ok, transcript) = run("swaks", args).await?;
    assert!(ok, "{transcript}");
    assert!(
        transcript.contains("STARTTLS") && transcript.contains("TLS started"),
        "{transcript}"
    );
    let delivered = sink.wait_for(2, WAIT).await?.remove(1);
    assert!(delivered.text().contains("Sent by swaks over TLS"));
    assert_eq!(delivered.rcpt_to, vec![ALICE.to_owned()]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(
    not(swaks_tests),
    ignore = "swaks is not installed (apt-get install swaks)"
)]
async fn swaks_is_told_why_it_was_refused() -> anyhow::Result<()> {
    let (_sink, gw, relay) = conversation().await?;
    let server = gw.smtp_addr().to_string();
    let (ok, transcript) = run(
        "swaks",
        swaks(server.clone(), BOB, "zzzzzzzzzzzzzzzz@relay.test", &[]),
    )
    .await?;
    assert!(
        !ok && transcript.contains("550 5.1.1 No such relay address here"),
        "{transcript}"
    );
    let (ok, transcript) = run(
        "swaks",
        swaks(server.clone(), BOB, "someone@elsewhere.example", &[]),
    )
    .await?;
    assert!(
        !ok && transcript.contains("550 5.7.1 Relaying denied"),
        "{transcript}"
    );
    let stranger = swaks(
        server,
        "mallory@example.net",
        &relay,
        &["--header", "From: mallory@example.net"],
    );
    let (ok, transcript) = run("swaks", stranger).await?;
    assert!(
        !ok && transcript.contains("only accepts replies from the member"),
        "{transcript}"
    );
    Ok(())
}

/// Python's smtplib: STARTTLS without checking the development certificate, then a
/// reply, printing the server's answers.
const SMTPLIB: &str = r#"
import smtplib, ssl, sys
host, port, sender, rcpt, body = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
with smtplib.SMTP(host, port, local_hostname="client.example.net", timeout=10) as s:
    s.ehlo()
    print("starttls:", s.has_extn("starttls"))
    s.starttls(context=ctx)
    s.ehlo()
    print("size:", s.has_extn("size"), "pipelining:", s.has_extn("pipelining"))
    msg = f"From: {sender}\r\nTo: {rcpt}\r\nSubject: Re: Hello\r\n\r\n{body}\r\n"
    try:
        s.sendmail(sender, [rcpt], msg)
        print("sent")
    except smtplib.SMTPException as e:
        print("refused:", e)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[cfg_attr(not(python_tests), ignore = "python3 is not installed")]
async fn python_smtplib_replies_over_starttls() -> anyhow::Result<()> {
    let (sink, gw, relay) = conversation().await?;
    let addr = gw.smtp_addr();
    let args = |sender: &str, body: &str| {
        vec![
            "-c".to_owned(),
            SMTPLIB.to_owned(),
            addr.ip().to_string(),
            addr.port().to_string(),
            sender.to_owned(),
            relay.clone(),
            body.to_owned(),
        ]
    };
    let (ok, out) = run("python3", args(BOB, "Sent by smtplib")).await?;
    assert!(
        ok && out.contains("starttls: True") && out.contains("sent"),
        "{out}"
    );
    assert!(out.contains("size: True pipelining: True"), "{out}");
    let delivered = sink.wait_for(2, WAIT).await?.remove(1);
    assert!(delivered.text().contains("Sent by smtplib"));
    let (ok, out) = run("python3", args("mallory@example.net", "forged")).await?;
    assert!(
        ok && out.contains("refused:") && out.contains("550"),
        "{out}"
    );
    Ok(())
}
