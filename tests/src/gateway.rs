//! Starting maskrelay for a test, on its own database and free ports, and talking to
//! it as a directory (HTTP) and as members' mail clients (SMTP, through lettre).

use std::net::SocketAddr;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use maskrelay::{Config, Running};
use maskrelay_schema::SecretKey;

use crate::api::Api;
use crate::db::{Backend, TestDb};
use crate::dns::TestDns;
use crate::smarthost::Smarthost;

/// The relay domain every test uses.
pub const RELAY_DOMAIN: &str = "relay.test";

/// A running gateway with one organisation.
pub struct TestGateway {
    /// Its database (kept alive for the test).
    pub db: TestDb,
    /// The configuration it runs with.
    pub config: Config,
    /// The running process parts.
    pub running: Running,
    /// The DNS server its sender authentication asks.
    pub dns: TestDns,
    /// The HTTP API, as the organisation (the gateway derefs to it).
    pub api: Api,
}

impl std::ops::Deref for TestGateway {
    type Target = Api;

    fn deref(&self) -> &Api {
        &self.api
    }
}

/// A configuration on free loopback ports with fast polling and retries. Sender
/// authentication asks a `TestDns` that [`TestGateway::start_with`] starts. Without a
/// smarthost, mail is held (`outbound.hold`).
pub fn test_config(db: &TestDb, smarthost: Option<&Smarthost>) -> anyhow::Result<Config> {
    let mut config = Config {
        database_url: db.url.clone(),
        relay_domain: RELAY_DOMAIN.into(),
        secret_key: Some(SecretKey::generate()?.to_hex()),
        ..Config::default()
    };
    config.http.listen = "127.0.0.1:0".parse()?;
    config.smtp.listen = "127.0.0.1:0".parse()?;
    config.outbound.smarthost = smarthost.map(Smarthost::url);
    // Without a smarthost, mail is held: tests never reach real MX hosts.
    config.outbound.hold = smarthost.is_none();
    config.outbound.poll_interval_ms = 50;
    config.outbound.first_retry_secs = 1;
    Ok(config)
}

impl TestGateway {
    /// Starts a gateway on `backend` delivering to `smarthost`, with organisation
    /// "Example Club".
    ///
    /// # Errors
    /// If the database or the gateway cannot start.
    pub async fn start(backend: Backend, smarthost: &Smarthost) -> anyhow::Result<Self> {
        let db = TestDb::new(backend).await?;
        let config = test_config(&db, Some(smarthost))?;
        Self::start_with(db, config).await
    }

    /// Starts a gateway with a given configuration.
    ///
    /// # Errors
    /// If the gateway cannot start.
    pub async fn start_with(db: TestDb, mut config: Config) -> anyhow::Result<Self> {
        let dns = TestDns::start().await?;
        config.dns.nameservers = dns.addr.to_string();
        Self::launch(db, config, dns, None).await
    }

    /// Starts the gateway, with a new organisation unless `api_key` names one.
    async fn launch(
        db: TestDb,
        config: Config,
        dns: TestDns,
        api_key: Option<String>,
    ) -> anyhow::Result<Self> {
        let running = maskrelay::start(config.clone()).await?;
        let api_key = match api_key {
            Some(key) => key,
            None => running.store.create_org("Example Club").await?.1,
        };
        let api = Api::new(running.http_addr, api_key);
        Ok(Self {
            db,
            config,
            running,
            dns,
            api,
        })
    }

    /// Where SMTP replies go.
    pub fn smtp_addr(&self) -> SocketAddr {
        self.running.smtp_addr
    }

    /// Stops the gateway and starts it again on the same database, with the same
    /// organisation and API key, after `change` to its configuration.
    ///
    /// # Errors
    /// If the gateway cannot start again.
    pub async fn restart(self, change: impl FnOnce(&mut Config)) -> anyhow::Result<Self> {
        let Self {
            db,
            mut config,
            running,
            dns,
            api,
        } = self;
        running.shutdown().await;
        change(&mut config);
        Self::launch(db, config, dns, Some(api.api_key)).await
    }

    /// Stops the gateway, keeping its database for the caller.
    pub async fn stop(self) -> (TestDb, Config) {
        self.running.shutdown().await;
        (self.db, self.config)
    }
}

/// Sends raw message bytes over SMTP with lettre, as a member's mail client would.
///
/// # Errors
/// The SMTP error, with the server's reply code, if the server refuses.
pub async fn send_mail(
    smtp: SocketAddr,
    mail_from: &str,
    rcpt_to: &str,
    raw: &[u8],
) -> anyhow::Result<()> {
    send_mail_to(smtp, Some(mail_from), &[rcpt_to], raw).await?;
    Ok(())
}

/// Sends raw message bytes to several recipients, `None` being the null sender
/// `MAIL FROM:<>`; returns the text of the server's final reply.
///
/// # Errors
/// The SMTP error, with the server's reply code, if the server refuses.
pub async fn send_mail_to(
    smtp: SocketAddr,
    mail_from: Option<&str>,
    rcpt_to: &[&str],
    raw: &[u8],
) -> anyhow::Result<String> {
    let transport = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.ip().to_string())
        .port(smtp.port())
        .hello_name(ClientId::Domain("client.example.net".into()))
        .timeout(Some(Duration::from_secs(10)))
        .build();
    let from = mail_from.map(str::parse).transpose()?;
    let to = rcpt_to
        .iter()
        .map(|r| r.parse())
        .collect::<Result<Vec<_>, _>>()?;
    let envelope = Envelope::new(from, to)?;
    let response = transport.send_raw(&envelope, raw).await?;
    Ok(response.message().collect::<Vec<_>>().join(" "))
}

/// The SMTP reply code and text of a refused `send_mail`, e.g. `"550 5.7.1 …"`.
pub fn smtp_refusal(result: anyhow::Result<()>) -> String {
    match result {
        Ok(()) => "accepted".into(),
        Err(e) => match e.downcast_ref::<lettre::transport::smtp::Error>() {
            Some(smtp) => format!(
                "{} {}",
                smtp.status().map(|c| c.to_string()).unwrap_or_default(),
                smtp
            ),
            None => e.to_string(),
        },
    }
}
