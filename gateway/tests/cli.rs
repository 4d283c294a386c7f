//! The `maskrelay` binary as an operator uses it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_maskrelay");

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("maskrelay-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn maskrelay(dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir).env_remove("RUST_LOG");
    for (name, _) in std::env::vars() {
        if name.starts_with("MASKRELAY_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

#[test]
fn org_create_prints_one_json_line_and_creates_the_defaults()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = temp_dir("org");
    let out = maskrelay(&dir)
        .args(["org", "create", "--name", "Example Club", "--json"])
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout)?;
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let json: serde_json::Value = serde_json::from_str(&stdout)?;
    assert!(
        json["org_id"].as_str().is_some_and(|s| !s.is_empty()),
        "{json}"
    );
    assert!(
        json["api_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("mrk_") && k.len() > 40),
        "{json}"
    );
    // The embedded default: a SQLite file and a private key file beside it.
    assert!(dir.join("maskrelay.db").exists());
    let key = std::fs::read_to_string(dir.join("maskrelay.key"))?;
    assert_eq!(key.trim().len(), 64);
    // The key is stored only as a hash.
    let db = std::fs::read(dir.join("maskrelay.db"))?;
    let api_key = json["api_key"].as_str().unwrap_or_default();
    assert!(!String::from_utf8_lossy(&db).contains(api_key));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn migrate_succeeds_twice() -> Result<(), Box<dyn std::error::Error>> {
    let dir = temp_dir("migrate");
    for _ in 0..2 {
        let out = maskrelay(&dir).arg("migrate").output()?;
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[test]
fn bad_configuration_fails_with_a_clear_message() -> Result<(), Box<dyn std::error::Error>> {
    let dir = temp_dir("badconfig");
    std::fs::write(dir.join("c.toml"), "[smtp]\nmax_recipients = \"many\"\n")?;
    let out = maskrelay(&dir)
        .args(["--config", "c.toml", "migrate"])
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("max_recipients"), "{stderr}");
    let out = maskrelay(&dir)
        .env("MASKRELAY_DATABASE_URL", "mysql://x/y")
        .arg("migrate")
        .output()?;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("database_url"));
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}

#[cfg(unix)]
#[test]
fn serve_logs_its_addresses_and_stops_cleanly_on_sigterm() -> Result<(), Box<dyn std::error::Error>>
{
    let dir = temp_dir("serve");
    let mut child = maskrelay(&dir)
        .arg("serve")
        .env("MASKRELAY_HTTP_LISTEN", "127.0.0.1:0")
        .env("MASKRELAY_SMTP_LISTEN", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().ok_or("no stderr")?;
    // Lines are read on a thread so that a silent child cannot hang the test.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let mut all = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 2 {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            break;
        };
        if line.contains("listening") && line.contains("address=127.0.0.1:") {
            seen.push(line.clone());
        }
        all.push(line);
    }
    if seen.len() < 2 {
        let _ = child.kill();
    }
    assert_eq!(seen.len(), 2, "expected one line per listener, got {all:?}");
    assert!(
        !seen.iter().any(|l| l.contains('\u{1b}')),
        "no colour codes in logs: {seen:?}"
    );
    let http = seen
        .iter()
        .find(|l| l.contains("HTTP"))
        .ok_or("no HTTP line")?;
    let addr = http
        .rsplit("address=")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or_default();
    std::net::TcpStream::connect(addr)?;

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()?;
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(exit) = child.try_wait()? {
            assert!(exit.success(), "exit status {exit}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "maskrelay did not stop after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
