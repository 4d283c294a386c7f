//! maskrelay as a separate process, for tests that kill it: the real `main.rs`,
//! configured through `MASKRELAY_*` variables, killed with `SIGKILL` and started
//! again on the same database.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use maskrelay_schema::SecretKey;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::api::Api;
use crate::gateway::RELAY_DOMAIN;

/// The path of the gateway binary, for [`ProcessSpec::new`]. A macro because cargo
/// sets `CARGO_BIN_EXE_*` only while compiling integration tests, not this library.
#[macro_export]
macro_rules! gateway_binary {
    () => {
        env!("CARGO_BIN_EXE_maskrelay-under-test")
    };
}

/// How a gateway process is configured: the same for every start, so that a restart
/// is the same instance on the same database.
#[derive(Debug, Clone)]
pub struct ProcessSpec {
    /// The binary ([`gateway_binary!`](crate::gateway_binary)).
    pub binary: PathBuf,
    /// Working directory.
    pub dir: PathBuf,
    /// `MASKRELAY_*` variables (name without the prefix, value).
    pub vars: Vec<(String, String)>,
}

impl ProcessSpec {
    /// A gateway on `database_url` relaying through `smarthost_url`, on free loopback
    /// ports, with fast polling and retries, sender authentication off (these tests
    /// are about storage) and a fixed instance id.
    ///
    /// # Errors
    /// If no secret key can be made.
    pub fn new(
        binary: &str,
        dir: &Path,
        database_url: &str,
        smarthost_url: &str,
    ) -> anyhow::Result<Self> {
        let vars = [
            ("DATABASE_URL", database_url.to_owned()),
            ("SECRET_KEY", SecretKey::generate()?.to_hex()),
            ("RELAY_DOMAIN", RELAY_DOMAIN.to_owned()),
            ("HTTP_LISTEN", "127.0.0.1:0".into()),
            ("SMTP_LISTEN", "127.0.0.1:0".into()),
            ("SMTP_STARTTLS", "false".into()),
            ("SMTP_AUTHENTICATE_SENDERS", "false".into()),
            ("OUTBOUND_SMARTHOST", smarthost_url.to_owned()),
            ("OUTBOUND_POLL_INTERVAL_MS", "100".into()),
            ("OUTBOUND_FIRST_RETRY_SECS", "1".into()),
            ("INSTANCE_ID", "under-test".into()),
            ("LOG", "info".into()),
        ];
        Ok(Self {
            binary: binary.into(),
            dir: dir.to_owned(),
            vars: vars.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
        })
    }

    /// Sets one variable (name without `MASKRELAY_`).
    pub fn set(&mut self, name: &str, value: &str) {
        self.vars.retain(|(k, _)| k != name);
        self.vars.push((name.to_owned(), value.to_owned()));
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.current_dir(&self.dir).env_remove("RUST_LOG");
        for (name, _) in std::env::vars() {
            if name.starts_with("MASKRELAY_") {
                cmd.env_remove(name);
            }
        }
        for (name, value) in &self.vars {
            cmd.env(format!("MASKRELAY_{name}"), value);
        }
        cmd.stdin(Stdio::null());
        cmd
    }

    /// Runs `org create` and returns the new organisation's API key.
    ///
    /// # Errors
    /// If the command fails or prints no key.
    pub async fn create_org(&self, name: &str) -> anyhow::Result<String> {
        let out = self
            .command()
            .args(["org", "create", "--name", name, "--json"])
            .output()
            .await?;
        anyhow::ensure!(
            out.status.success(),
            "org create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        json["api_key"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow::anyhow!("org create printed no api_key: {json}"))
    }
}

/// `maskrelay dkim generate` against `config`'s database, as a mail admin runs it;
/// what it printed (the TXT record).
///
/// # Errors
/// If the command fails.
pub async fn dkim_generate(
    binary: &str,
    config: &maskrelay::Config,
    selector: &str,
    algorithm: &str,
) -> anyhow::Result<String> {
    let args = [
        "dkim",
        "generate",
        "--selector",
        selector,
        "--algorithm",
        algorithm,
    ];
    run_cli(binary, config, &args).await
}

/// Runs a `maskrelay` command other than `serve` (`dkim generate`, `org create`…)
/// against the database, secret key, relay domain, DNS settings and host name of
/// `config`, as a mail admin would; its standard output, or an error holding its
/// standard output and error.
///
/// # Errors
/// If it cannot be started or exits unsuccessfully.
pub async fn run_cli(
    binary: &str,
    config: &maskrelay::Config,
    args: &[&str],
) -> anyhow::Result<String> {
    let mut cmd = Command::new(binary);
    for (name, _) in std::env::vars() {
        if name.starts_with("MASKRELAY_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("MASKRELAY_DATABASE_URL", &config.database_url)
        .env("MASKRELAY_RELAY_DOMAIN", &config.relay_domain)
        .env(
            "MASKRELAY_SECRET_KEY",
            config.secret_key.clone().unwrap_or_default(),
        )
        .env("MASKRELAY_DNS_NAMESERVERS", &config.dns.nameservers)
        .env("MASKRELAY_LOG", "warn")
        .stdin(Stdio::null());
    let optional = [
        ("MASKRELAY_DNS_PUBLIC_ADDRESS", &config.dns.public_address),
        ("MASKRELAY_DNS_REPORTS_TO", &config.dns.reports_to),
        ("MASKRELAY_SMTP_HOSTNAME", &config.smtp.hostname),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            cmd.env(name, value);
        }
    }
    let out = cmd.args(args).output().await?;
    anyhow::ensure!(
        out.status.success(),
        "maskrelay {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A running gateway process.
pub struct GatewayProcess {
    child: Child,
    /// Where its SMTP listener listens.
    pub smtp_addr: SocketAddr,
    /// Where its HTTP API listens.
    pub http_addr: SocketAddr,
    log: Arc<Mutex<Vec<String>>>,
}

impl GatewayProcess {
    /// Starts the gateway and waits until both listeners have said where they are.
    ///
    /// # Errors
    /// If it cannot start or exits before listening (its log is in the error).
    pub async fn start(spec: &ProcessSpec) -> anyhow::Result<Self> {
        let mut child = spec
            .command()
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| anyhow::anyhow!("no stderr"))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (addrs_tx, mut addrs_rx) = tokio::sync::mpsc::unbounded_channel();
        let lines = Arc::clone(&log);
        // The pipe is drained for the life of the process: a full pipe would block
        // the gateway's logging, and with it the gateway.
        tokio::spawn(async move {
            let mut reader = BufReader::new(stderr).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                for (what, marker) in [
                    ("http", "HTTP API listening"),
                    ("smtp", "SMTP listener listening"),
                ] {
                    if line.contains(marker)
                        && let Some(addr) = address_in(&line)
                    {
                        let _ = addrs_tx.send((what, addr));
                    }
                }
                lines.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        let (mut http, mut smtp) = (None, None);
        let waited = tokio::time::timeout(Duration::from_secs(60), async {
            while http.is_none() || smtp.is_none() {
                match addrs_rx.recv().await {
                    Some(("http", addr)) => http = Some(addr),
                    Some((_, addr)) => smtp = Some(addr),
                    None => break,
                }
            }
        })
        .await;
        let log_text = || log.lock().unwrap_or_else(|p| p.into_inner()).join("\n");
        match (waited, http, smtp) {
            (Ok(()), Some(http_addr), Some(smtp_addr)) => Ok(Self {
                child,
                smtp_addr,
                http_addr,
                log,
            }),
            _ => {
                let _ = child.kill().await;
                anyhow::bail!("the gateway did not start listening:\n{}", log_text())
            }
        }
    }

    /// The API of this process, as the organisation holding `api_key`.
    pub fn api(&self, api_key: &str) -> Api {
        Api::new(self.http_addr, api_key.to_owned())
    }

    /// The operating system's id of the process, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Its resident memory (`VmRSS`), in KiB, read from `/proc`.
    ///
    /// # Errors
    /// If the process is gone or `/proc` cannot be read (not Linux).
    pub fn resident_kib(&self) -> anyhow::Result<u64> {
        let pid = self
            .pid()
            .ok_or_else(|| anyhow::anyhow!("the gateway process has exited"))?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/{pid}/status"))
    }

    /// Kills the process with `SIGKILL` (no clean-up of any kind) and reaps it.
    ///
    /// # Errors
    /// If it cannot be killed.
    pub async fn kill9(mut self) -> anyhow::Result<Vec<String>> {
        self.child.kill().await?;
        Ok(self.log())
    }

    /// Sends `SIGTERM` and reaps the process; its exit status and log.
    ///
    /// # Errors
    /// If the signal cannot be sent, or the process has not exited within `bound`
    /// (it is then killed, and its log is in the error).
    pub async fn terminate(
        mut self,
        bound: Duration,
    ) -> anyhow::Result<(std::process::ExitStatus, Vec<String>)> {
        let pid = self
            .pid()
            .and_then(|p| i32::try_from(p).ok())
            .and_then(rustix::process::Pid::from_raw)
            .ok_or_else(|| anyhow::anyhow!("the gateway process has exited"))?;
        rustix::process::kill_process(pid, rustix::process::Signal::TERM)?;
        match tokio::time::timeout(bound, self.child.wait()).await {
            Ok(status) => Ok((status?, self.log())),
            Err(_) => {
                let _ = self.child.kill().await;
                anyhow::bail!(
                    "still running {bound:?} after SIGTERM:\n{}",
                    self.log().join("\n")
                )
            }
        }
    }

    /// Waits until the process has logged a line containing `marker`.
    ///
    /// # Errors
    /// If no such line appears within `bound` (the log is in the error).
    pub async fn wait_for_log(&self, marker: &str, bound: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + bound;
        while !self.log().iter().any(|l| l.contains(marker)) {
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!("no {marker:?} within {bound:?}:\n{}", self.log().join("\n"));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// What the process has logged so far.
    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// The socket address after `address=` in a log line.
fn address_in(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("address=")? + "address=".len()..];
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_addresses_are_read_from_log_lines() {
        let line = "2026-11-26T10:00:00Z  INFO maskrelay::app: SMTP listener listening \
                    address=127.0.0.1:40123 relay_domain=relay.test";
        assert_eq!(address_in(line), "127.0.0.1:40123".parse().ok());
        assert_eq!(address_in("no address here"), None);
    }
}
