//! Starting maskrelay for a test, on its own database and free ports, and talking to
//! it as a directory (HTTP) and as members' mail clients (SMTP, through lettre).

use std::net::SocketAddr;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use maskrelay::{Config, Running};
use maskrelay_schema::SecretKey;
use serde_json::{Value, json};

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
    /// API key of the organisation.
    pub api_key: String,
    /// The DNS server its sender authentication asks.
    pub dns: TestDns,
    http: reqwest::Client,
}

/// A configuration on free loopback ports with fast polling and retries. Sender
/// authentication asks a `TestDns` that [`TestGateway::start_with`] starts.
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
        let running = maskrelay::start(config.clone()).await?;
        let (_, api_key) = running.store.create_org("Example Club").await?;
        Ok(Self {
            db,
            config,
            running,
            api_key,
            dns,
            http: reqwest::Client::new(),
        })
    }

    /// Where SMTP replies go.
    pub fn smtp_addr(&self) -> SocketAddr {
        self.running.smtp_addr
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.http_addr)
    }

    /// Sends an API request with the organisation's key; returns status and JSON body.
    ///
    /// # Errors
    /// If the request cannot be made.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Value)> {
        self.call_with(method, path, body, &self.api_key, &[]).await
    }

    /// Sends an API request; returns status, the `Retry-After` header and JSON body.
    ///
    /// # Errors
    /// If the request cannot be made.
    pub async fn call_retry_after(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> anyhow::Result<(u16, Option<u64>, Value)> {
        let mut request = self
            .http
            .request(method, self.url(path))
            .bearer_auth(&self.api_key);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        Ok((status, retry_after, response.json().await?))
    }

    /// Fetches a URL without the API key, as a member's browser does; returns status
    /// and body text.
    ///
    /// # Errors
    /// If the request cannot be made.
    pub async fn browse(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> anyhow::Result<(u16, String)> {
        let response = self.http.request(method, url).send().await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    /// Sends an API request with a chosen key and extra headers.
    ///
    /// # Errors
    /// If the request cannot be made.
    pub async fn call_with(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
        key: &str,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(key);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)?
        };
        Ok((status, json))
    }

    /// Registers a member; panics on anything but 200/201, since tests rely on it.
    ///
    /// # Errors
    /// If the request fails or is refused.
    pub async fn member(&self, id: &str, email: &str, name: &str) -> anyhow::Result<()> {
        let (status, body) = self
            .call(
                reqwest::Method::PUT,
                &format!("/v1/members/{id}"),
                Some(&json!({"email": email, "name": name})),
            )
            .await?;
        anyhow::ensure!(
            status == 200 || status == 201,
            "PUT member {id}: {status} {body}"
        );
        Ok(())
    }

    /// Registers a member with a full JSON body.
    ///
    /// # Errors
    /// If the request fails or is refused.
    pub async fn member_json(&self, id: &str, body: &Value) -> anyhow::Result<()> {
        let (status, answer) = self
            .call(
                reqwest::Method::PUT,
                &format!("/v1/members/{id}"),
                Some(body),
            )
            .await?;
        anyhow::ensure!(
            status == 200 || status == 201,
            "PUT member {id}: {status} {answer}"
        );
        Ok(())
    }

    /// Changes organisation settings.
    ///
    /// # Errors
    /// If the request fails or is refused.
    pub async fn settings(&self, settings: &Value) -> anyhow::Result<()> {
        let (status, answer) = self
            .call(reqwest::Method::PATCH, "/v1/organisation", Some(settings))
            .await?;
        anyhow::ensure!(status == 200, "PATCH organisation: {status} {answer}");
        Ok(())
    }

    /// Sends a message through the API; returns status and body.
    ///
    /// # Errors
    /// If the request cannot be made.
    pub async fn message(
        &self,
        from: &str,
        to: &str,
        subject: &str,
        text: &str,
    ) -> anyhow::Result<(u16, Value)> {
        self.call(
            reqwest::Method::POST,
            "/v1/messages",
            Some(&json!({"from": from, "to": to, "subject": subject, "text": text})),
        )
        .await
    }

    /// Polls a message's delivery status until it is `want`.
    ///
    /// # Errors
    /// If it does not get there within ten seconds.
    pub async fn wait_status(&self, message_id: &str, want: &str) -> anyhow::Result<Value> {
        for _ in 0..200 {
            let (_, body) = self
                .call(
                    reqwest::Method::GET,
                    &format!("/v1/messages/{message_id}"),
                    None,
                )
                .await?;
            if body["status"] == want {
                return Ok(body);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("message {message_id} never reached status {want}")
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
