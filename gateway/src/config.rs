//! Configuration: one TOML file, every key overridable by an environment variable.
//!
//! The variable for a key is `MASKRELAY_` followed by the key in upper case with dots
//! as underscores: `smtp.listen` is `MASKRELAY_SMTP_LISTEN`. Variables win over the
//! file. `deploy/maskrelay.example.toml` documents every key; a test keeps it, this
//! struct and [`KEYS`] in step.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The whole configuration of the `maskrelay` binary.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `sqlite://FILE` (created if missing) or `postgres://…`.
    pub database_url: String,
    /// Domain of relay addresses; its MX must point at the SMTP listener.
    pub relay_domain: String,
    /// 64 hex characters; when unset, read from (or created in) `secret_key_file`.
    pub secret_key: Option<String>,
    /// Where the key lives when `secret_key` is unset; default `maskrelay.key` beside a
    /// SQLite database, or in the working directory for PostgreSQL.
    pub secret_key_file: Option<PathBuf>,
    /// Log filter (`info`, `debug`, `maskrelay_inbound=debug`…); `RUST_LOG` also works.
    pub log: String,
    /// This instance's name in the delivery queue's claims: on start it takes back
    /// what it had claimed before a crash. Default: the host name. Instances sharing
    /// a database need different ids, and one instance must keep its id across
    /// restarts.
    pub instance_id: Option<String>,
    /// Threads running the listener, the API and deliveries; 0 (the default) is one
    /// fewer than the machine's cores, at least one: SQLite works on threads of its
    /// own (one per connection), which the last core keeps busy.
    pub worker_threads: usize,
    /// The HTTP API.
    pub http: HttpConfig,
    /// The SMTP listener.
    pub smtp: SmtpConfig,
    /// Delivery of outgoing mail.
    pub outbound: OutboundConfig,
    /// DNS for sender authentication.
    pub dns: DnsConfig,
}

/// DNS for sender authentication (SPF, DKIM, DMARC).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DnsConfig {
    /// Comma-separated `ip` or `ip:port` of resolvers; empty uses the system's
    /// (`/etc/resolv.conf`).
    pub nameservers: String,
    /// The public IPv4 or IPv6 address mail leaves from, for the SPF and reverse DNS
    /// records `maskrelay dns print` writes; unset, SPF names the MX host (`mx`).
    pub public_address: Option<String>,
    /// The mail admin's address for DMARC aggregate and TLS reports (`rua=`).
    pub reports_to: Option<String>,
}

impl DnsConfig {
    /// The resolvers, port 53 unless given.
    ///
    /// # Errors
    /// Naming the entry that is neither an IP address nor `ip:port`.
    pub fn nameservers(&self) -> anyhow::Result<Vec<SocketAddr>> {
        self.nameservers
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<SocketAddr>()
                    .or_else(|_| {
                        s.parse::<std::net::IpAddr>()
                            .map(|ip| SocketAddr::new(ip, 53))
                    })
                    .map_err(|_| {
                        anyhow::anyhow!("dns.nameservers: {s:?} is not an IP address or ip:port")
                    })
            })
            .collect()
    }
}

/// The HTTP API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Largest request body, in bytes.
    pub max_body_bytes: usize,
    /// The address members reach the API at from their mail (one-click block and
    /// opt-out links in footers), e.g. `https://relay.example.org`; default
    /// `http://` + `listen`.
    pub public_url: Option<String>,
}

/// The SMTP listener.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SmtpConfig {
    /// Address and port to listen on (production: port 25).
    pub listen: SocketAddr,
    /// Name in the greeting; default the relay domain.
    pub hostname: Option<String>,
    /// Largest message, in bytes.
    pub max_message_size: usize,
    /// Recipients per message.
    pub max_recipients: usize,
    /// Sessions at once.
    pub max_connections: usize,
    /// Sessions at once from one client address.
    pub max_connections_per_ip: usize,
    /// Errors before a client is disconnected.
    pub max_errors: usize,
    /// Commands in one session before the client is disconnected.
    pub max_commands: usize,
    /// Longest command line in bytes (RFC 5321: at least 512; at most 4096 here).
    pub max_line_length: usize,
    /// Seconds a command may take to arrive after the previous one (bytes trickling
    /// in do not extend it).
    pub idle_timeout_secs: u64,
    /// The same while the listener is stressed (many sessions open).
    pub stress_timeout_secs: u64,
    /// Stress mode starts when this percentage of `max_connections` is in use.
    pub stress_percent: usize,
    /// Slowest acceptable message data, in bytes per second.
    pub min_data_rate: usize,
    /// Longest session, in seconds.
    pub session_timeout_secs: u64,
    /// Prove senders with SPF, DKIM and DMARC. Only for development may this be
    /// false: then the `From:` line (or envelope sender) is trusted as it is.
    pub authenticate_senders: bool,
    /// Offer STARTTLS.
    pub starttls: bool,
    /// PEM certificate chain for STARTTLS; with neither file, a self-signed
    /// certificate is made at start (development).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key for STARTTLS.
    pub tls_key_file: Option<PathBuf>,
}

/// Delivery of outgoing mail.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundConfig {
    /// `smtp://host:port`, `smtp+starttls://…` or `smtps://…`: all mail goes there.
    pub smarthost: Option<String>,
    /// When set, mail is written there as `.eml` files instead of being sent.
    pub capture_dir: Option<PathBuf>,
    /// Keep every message queued instead of delivering it (maintenance).
    pub hold: bool,
    /// TCP port of the recipients' MX hosts (25; tests use another).
    pub mx_port: u16,
    /// `"opportunistic"`: STARTTLS when offered; `"require"`: never in plain text.
    pub tls: String,
    /// Deliveries in progress to one recipient domain at once.
    pub connections_per_domain: usize,
    /// Seconds a destination that answered 421/450 4.7.x is left alone.
    pub rate_limit_pause_secs: u64,
    /// Milliseconds between looks at the queue when nothing wakes the worker (a
    /// submission here, or on PostgreSQL another instance's announcement).
    pub poll_interval_ms: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// Seconds before the first retry of a temporary failure (later ones grow).
    pub first_retry_secs: u64,
    /// Hours after which a delivery that keeps failing temporarily is given up.
    pub give_up_after_hours: u64,
    /// Seconds between sweeps that wipe content kept past an organisation's retention.
    pub retention_sweep_secs: u64,
    /// Seconds a claimed delivery is reserved for this instance; renewed while the
    /// delivery is in progress, so a crashed instance's claims free up this soon.
    pub lease_secs: u64,
    /// Seconds between looks at the database for DKIM keys made or retired (by
    /// `maskrelay dkim`, on any instance).
    pub dkim_reload_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database_url: "sqlite://maskrelay.db".into(),
            relay_domain: "relay.localhost".into(),
            secret_key: None,
            secret_key_file: None,
            log: "info".into(),
            instance_id: None,
            worker_threads: 0,
            http: HttpConfig::default(),
            smtp: SmtpConfig::default(),
            outbound: OutboundConfig::default(),
            dns: DnsConfig::default(),
        }
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            max_body_bytes: 10 * 1024 * 1024,
            public_url: None,
        }
    }
}

impl Default for SmtpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 2525)),
            hostname: None,
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 50,
            max_connections: 2000,
            max_errors: 10,
            idle_timeout_secs: 300,
            stress_timeout_secs: 10,
            stress_percent: 80,
            min_data_rate: 500,
            session_timeout_secs: 1800,
            authenticate_senders: true,
            starttls: true,
            tls_cert_file: None,
            tls_key_file: None,
            max_connections_per_ip: 16,
            max_commands: 1000,
            max_line_length: 2048,
        }
    }
}

impl Default for OutboundConfig {
    fn default() -> Self {
        Self {
            smarthost: None,
            capture_dir: None,
            hold: false,
            mx_port: 25,
            tls: "opportunistic".into(),
            connections_per_domain: 4,
            rate_limit_pause_secs: 60,
            poll_interval_ms: 5000,
            concurrency: 32,
            first_retry_secs: 60,
            give_up_after_hours: 120,
            retention_sweep_secs: 300,
            lease_secs: 60,
            dkim_reload_secs: 60,
        }
    }
}

/// Every configuration key, in file order; each has an environment variable.
pub const KEYS: &[&str] = &[
    "database_url",
    "relay_domain",
    "secret_key",
    "secret_key_file",
    "log",
    "http.listen",
    "http.max_body_bytes",
    "smtp.listen",
    "smtp.hostname",
    "smtp.max_message_size",
    "smtp.max_recipients",
    "smtp.max_connections",
    "smtp.max_errors",
    "smtp.idle_timeout_secs",
    "smtp.session_timeout_secs",
    "outbound.smarthost",
    "outbound.capture_dir",
    "outbound.poll_interval_ms",
    "outbound.concurrency",
    "outbound.first_retry_secs",
    "outbound.give_up_after_hours",
    "outbound.retention_sweep_secs",
    "smtp.authenticate_senders",
    "smtp.starttls",
    "smtp.tls_cert_file",
    "smtp.tls_key_file",
    "smtp.max_connections_per_ip",
    "smtp.max_commands",
    "smtp.max_line_length",
    "dns.nameservers",
    "dns.public_address",
    "dns.reports_to",
    "http.public_url",
    "instance_id",
    "worker_threads",
    "outbound.lease_secs",
    "outbound.dkim_reload_secs",
    "smtp.stress_timeout_secs",
    "smtp.stress_percent",
    "smtp.min_data_rate",
    "outbound.hold",
    "outbound.mx_port",
    "outbound.tls",
    "outbound.connections_per_domain",
    "outbound.rate_limit_pause_secs",
];

/// The environment variable of a key.
pub fn env_name(key: &str) -> String {
    format!("MASKRELAY_{}", key.replace('.', "_").to_uppercase())
}

impl Config {
    /// The instance id: the configured one, or the host name.
    pub fn instance_id(&self) -> String {
        match &self.instance_id {
            Some(id) => id.clone(),
            None => {
                let uname = rustix::system::uname();
                let host = uname.nodename().to_string_lossy();
                if host.is_empty() {
                    "maskrelay".into()
                } else {
                    host.into_owned()
                }
            }
        }
    }

    /// The number of runtime threads: the configured one, or one fewer than the
    /// cores (at least one).
    pub fn worker_threads(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism()
                .map_or(1, |cores| cores.get().saturating_sub(1))
                .max(1),
            n => n,
        }
    }

    /// Reads the file (if given), applies environment overrides, and checks the result.
    ///
    /// # Errors
    /// A message naming the file, key or variable that is wrong.
    pub fn load(file: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| {
                    format!("cannot read configuration file {}", path.display())
                })?;
                text.parse::<toml::Table>()
                    .with_context(|| format!("{} is not valid TOML", path.display()))?
            }
            None => toml::Table::new(),
        };
        for key in KEYS {
            if let Some(value) = env(&env_name(key)) {
                set(&mut table, key, env_value(&value));
            }
        }
        // Parsing from text (rather than from the value) makes toml's error quote the
        // offending key and line, whether it came from the file or the environment.
        let merged = toml::to_string(&table).context("cannot merge configuration")?;
        let config: Config =
            toml::from_str(&merged).map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> anyhow::Result<()> {
        let domain = &self.relay_domain;
        if domain.is_empty() || domain.contains(['@', ' ', '/']) || !domain.contains('.') {
            bail!("relay_domain {domain:?} is not a domain name like relay.example.org");
        }
        if let Some(url) = &self.outbound.smarthost {
            url.parse::<maskrelay_deliver::transport::smarthost::Smarthost>()
                .map_err(|e| anyhow::anyhow!("outbound.smarthost: {e}"))?;
        }
        self.outbound
            .tls
            .parse::<maskrelay_deliver::transport::mx::TlsPolicy>()
            .map_err(|e| anyhow::anyhow!("outbound.tls: {e}"))?;
        self.dns.nameservers()?;
        if let Some(ip) = &self.dns.public_address
            && ip.parse::<std::net::IpAddr>().is_err()
        {
            bail!("dns.public_address {ip:?} is not an IP address");
        }
        if let Some(to) = &self.dns.reports_to
            && (!to.contains('@') || to.contains([' ', ';', ',']))
        {
            bail!("dns.reports_to {to:?} is not an email address");
        }
        if let Some(id) = &self.instance_id
            && (id.is_empty() || id.len() > 64 || id.chars().any(char::is_control))
        {
            bail!("instance_id must be 1 to 64 printable characters");
        }
        maskrelay_schema::Backend::from_url(&self.database_url)
            .map_err(|e| anyhow::anyhow!("database_url: {e}"))?;
        Ok(())
    }
}

/// Environment values are text; numbers and booleans are recognised so that
/// `MASKRELAY_SMTP_MAX_RECIPIENTS=10` sets an integer.
fn env_value(text: &str) -> toml::Value {
    if let Ok(n) = text.parse::<i64>() {
        toml::Value::Integer(n)
    } else if let Ok(b) = text.parse::<bool>() {
        toml::Value::Boolean(b)
    } else {
        toml::Value::String(text.to_owned())
    }
}

fn set(table: &mut toml::Table, key: &str, value: toml::Value) {
    match key.split_once('.') {
        Some((section, rest)) => {
            let entry = table
                .entry(section.to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            if !entry.is_table() {
                *entry = toml::Value::Table(toml::Table::new());
            }
            if let toml::Value::Table(inner) = entry {
                set(inner, rest, value);
            }
        }
        None => {
            table.insert(key.to_owned(), value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn defaults_match_the_documented_ones() -> anyhow::Result<()> {
        let c = Config::load(None, no_env)?;
        assert_eq!(c.database_url, "sqlite://maskrelay.db");
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.smtp.listen.to_string(), "127.0.0.1:2525");
        assert_eq!(c.relay_domain, "relay.localhost");
        assert_eq!(c.outbound.smarthost, None);
        Ok(())
    }

    #[test]
    fn environment_wins_over_the_file() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("maskrelay-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let file = dir.join("c.toml");
        std::fs::write(
            &file,
            "relay_domain = \"file.example.org\"\n[smtp]\nmax_recipients = 5\n",
        )?;
        let env = |name: &str| match name {
            "MASKRELAY_SMTP_MAX_RECIPIENTS" => Some("7".to_owned()),
            "MASKRELAY_OUTBOUND_SMARTHOST" => Some("smtp://127.0.0.1:2526".to_owned()),
            _ => None,
        };
        let c = Config::load(Some(&file), env)?;
        assert_eq!(c.relay_domain, "file.example.org");
        assert_eq!(c.smtp.max_recipients, 7);
        assert_eq!(
            c.outbound.smarthost.as_deref(),
            Some("smtp://127.0.0.1:2526")
        );
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let env =
            |name: &str| (name == "MASKRELAY_HTTP_LISTEN").then(|| "not-an-address".to_owned());
        let err = Config::load(None, env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("listen"), "{err}");
        let env =
            |name: &str| (name == "MASKRELAY_OUTBOUND_SMARTHOST").then(|| "http://x".to_owned());
        let err = Config::load(None, env)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("outbound.smarthost"), "{err}");
    }

    #[test]
    fn runtime_threads_leave_a_core_to_the_database() {
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        assert_eq!(Config::default().worker_threads(), (cores - 1).max(1));
        let three = Config {
            worker_threads: 3,
            ..Config::default()
        };
        assert_eq!(three.worker_threads(), 3);
    }

    #[test]
    fn every_key_is_listed_and_documented() -> anyhow::Result<()> {
        let table = toml::Table::try_from(Config {
            secret_key: Some(String::new()),
            secret_key_file: Some(PathBuf::new()),
            instance_id: Some(String::new()),
            http: HttpConfig {
                public_url: Some(String::new()),
                ..HttpConfig::default()
            },
            dns: DnsConfig {
                public_address: Some(String::new()),
                reports_to: Some(String::new()),
                ..DnsConfig::default()
            },
            smtp: SmtpConfig {
                hostname: Some(String::new()),
                tls_cert_file: Some(PathBuf::new()),
                tls_key_file: Some(PathBuf::new()),
                ..SmtpConfig::default()
            },
            outbound: OutboundConfig {
                smarthost: Some(String::new()),
                capture_dir: Some(PathBuf::new()),
                ..OutboundConfig::default()
            },
            ..Config::default()
        })?;
        let mut keys = Vec::new();
        for (k, v) in &table {
            match v {
                toml::Value::Table(inner) => keys.extend(inner.keys().map(|i| format!("{k}.{i}"))),
                _ => keys.push(k.clone()),
            }
        }
        keys.sort();
        let mut listed: Vec<String> = KEYS.iter().map(|k| (*k).to_owned()).collect();
        listed.sort();
        assert_eq!(keys, listed);
        let example = include_str!("../../deploy/maskrelay.example.toml");
        for key in KEYS {
            let leaf = key.rsplit('.').next().unwrap_or(key);
            assert!(
                example.contains(&format!("{leaf} =")),
                "{key} is not in the example config"
            );
            assert!(
                example.contains(&env_name(key)),
                "{} is not in the example config",
                env_name(key)
            );
        }
        Ok(())
    }
}
