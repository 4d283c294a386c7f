//! Wiring: the store, the HTTP API, the SMTP listener, the delivery worker and the
//! writer's notices in one process, sharing one shutdown signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use maskrelay_compose::{Broadcaster, Submitter};
use maskrelay_deliver::retry::{RetryPolicy, SCHEDULE_MINUTES};
use maskrelay_deliver::transport::mx::{Mx, MxSettings};
use maskrelay_deliver::{Transport, WorkerConfig};
use maskrelay_inbound::read::authenticate::SenderAuth;
use maskrelay_inbound::{ListenerStats, Router, SmtpParams};
use maskrelay_schema::{Crypto, Store};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::api;
use crate::config::Config;
use crate::keyfile;

/// Failed deliveries the worker may report before it waits for the notices to catch up.
const FAILURES_WAITING: usize = 256;

/// A running gateway.
pub struct Running {
    /// Where the HTTP API listens.
    pub http_addr: SocketAddr,
    /// Where the SMTP listener listens.
    pub smtp_addr: SocketAddr,
    /// The store (shared with the tasks).
    pub store: Store,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

/// Connects to and migrates the database named by the configuration.
///
/// # Errors
/// If the key cannot be loaded or the database cannot be reached or migrated.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let key = keyfile::load(config)?;
    let store = Store::connect(&config.database_url, Crypto::new(&key))
        .await
        .with_context(|| {
            format!(
                "cannot open database {}",
                maskrelay_schema::backend::redact_url(&config.database_url)
            )
        })?;
    store
        .migrate()
        .await
        .context("cannot migrate the database")?;
    Ok(store)
}

/// Starts every part of the gateway.
///
/// # Errors
/// If the store cannot be opened or a listener cannot bind.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let store = open_store(&config).await?;
    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();

    let http = TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", config.http.listen))?;
    let smtp = TcpListener::bind(config.smtp.listen)
        .await
        .with_context(|| format!("cannot listen for SMTP on {}", config.smtp.listen))?;
    let http_addr = http.local_addr()?;
    let smtp_addr = smtp.local_addr()?;
    let public_url = config
        .http
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{http_addr}"));
    let submitter = Submitter::new(store.clone(), config.relay_domain.clone(), public_url);
    let broadcaster = Broadcaster::new(submitter.clone(), config.instance_id());

    let listener_stats = Arc::new(ListenerStats::default());
    let state = api::AppState {
        store: store.clone(),
        submitter: submitter.clone(),
        broadcaster: broadcaster.clone(),
        max_body_bytes: config.http.max_body_bytes,
        listener_stats: Arc::clone(&listener_stats),
    };
    let routes = api::routes(state);
    let stop = shutdown.clone();
    tasks.spawn(async move {
        let serve =
            axum::serve(http, routes).with_graceful_shutdown(async move { stop.cancelled().await });
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
        tracing::info!("HTTP API stopped");
    });
    tracing::info!(address = %http_addr, "HTTP API listening");

    let auth = if config.smtp.authenticate_senders {
        SenderAuth::new(&config.dns.nameservers()?, &smtp_hostname(&config))?
    } else {
        tracing::warn!(
            "smtp.authenticate_senders is false: replies are trusted by their From: line \
             without SPF, DKIM or DMARC; never run like this in production"
        );
        SenderAuth::off()
    };
    let router = Router::new(store.clone(), submitter.clone(), broadcaster.clone(), auth);
    let tls = if config.smtp.starttls {
        if config.smtp.tls_cert_file.is_none() {
            tracing::warn!(
                "STARTTLS uses a self-signed certificate; set smtp.tls_cert_file and \
                 smtp.tls_key_file for production"
            );
        }
        Some(maskrelay_inbound::smtp::tls::acceptor(
            config.smtp.tls_cert_file.as_deref(),
            config.smtp.tls_key_file.as_deref(),
            &smtp_hostname(&config),
        )?)
    } else {
        None
    };
    tasks.spawn(maskrelay_inbound::smtp::listener::serve(
        smtp,
        smtp_params(&config),
        tls,
        router,
        shutdown.clone(),
        listener_stats,
    ));
    tracing::info!(address = %smtp_addr, relay_domain = %config.relay_domain, "SMTP listener listening");

    tasks.spawn(maskrelay_deliver::janitor::run(
        store.clone(),
        Duration::from_secs(config.outbound.retention_sweep_secs.max(1)),
        shutdown.clone(),
    ));
    tasks.spawn(maskrelay_deliver::wakeup::run(
        store.clone(),
        shutdown.clone(),
    ));
    // Deliveries that fail for good go from the worker to the notices, which end
    // once the worker has stopped and they have told every writer reported.
    let (failed, failures) = mpsc::channel(FAILURES_WAITING);
    tasks.spawn(maskrelay_deliver::worker::run(
        store.clone(),
        worker_config(&config)?,
        failed,
        shutdown.clone(),
    ));
    tasks.spawn(maskrelay_compose::notice::run(submitter, failures));
    tasks.spawn(broadcaster.run(shutdown.clone()));
    tasks.close();
    Ok(Running {
        http_addr,
        smtp_addr,
        store,
        shutdown,
        tasks,
    })
}

impl Running {
    /// Stops accepting work, lets work in flight finish, and closes the database.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.tasks.wait().await;
        self.store.close().await;
    }
}

fn smtp_hostname(config: &Config) -> String {
    config
        .smtp
        .hostname
        .clone()
        .unwrap_or_else(|| config.relay_domain.clone())
}

fn smtp_params(config: &Config) -> SmtpParams {
    let smtp = &config.smtp;
    let mut params = SmtpParams::new(config.relay_domain.clone());
    if let Some(hostname) = &smtp.hostname {
        params.hostname = hostname.clone();
    }
    params.max_message_size = smtp.max_message_size;
    params.max_recipients = smtp.max_recipients;
    params.max_connections = smtp.max_connections;
    params.max_connections_per_ip = smtp.max_connections_per_ip;
    params.max_errors = smtp.max_errors;
    params.max_commands = smtp.max_commands;
    params.max_line_length = smtp.max_line_length.clamp(512, 4096);
    params.idle_timeout = Duration::from_secs(smtp.idle_timeout_secs);
    params.stress_timeout = Duration::from_secs(smtp.stress_timeout_secs.max(1));
    params.stress_percent = smtp.stress_percent.clamp(1, 100);
    params.min_data_rate = smtp.min_data_rate.max(1);
    params.session_timeout = Duration::from_secs(smtp.session_timeout_secs);
    params
}

/// Delivery to each recipient's MX hosts, through the configured resolvers.
fn mx_transport(config: &Config) -> anyhow::Result<Transport> {
    let out = &config.outbound;
    let resolver = maskrelay_inbound::read::authenticate::resolver(&config.dns.nameservers()?)?;
    let settings = MxSettings {
        port: out.mx_port,
        tls: out
            .tls
            .parse()
            .map_err(|e| anyhow::anyhow!("outbound.tls: {e}"))?,
        per_domain: out.connections_per_domain.max(1),
        rate_limit_pause: Duration::from_secs(out.rate_limit_pause_secs),
    };
    let mx = Mx::new(resolver.resolver().clone(), settings)
        .map_err(|e| anyhow::anyhow!("outbound TLS client: {e}"))?;
    Ok(Transport::Mx(Arc::new(mx)))
}

fn worker_config(config: &Config) -> anyhow::Result<WorkerConfig> {
    let out = &config.outbound;
    let transport = match (&out.capture_dir, &out.smarthost) {
        _ if out.hold => None,
        (Some(dir), _) => Some(Transport::Capture(dir.clone())),
        (None, Some(url)) => Some(Transport::Smarthost(Box::new(
            url.parse()
                .map_err(|e| anyhow::anyhow!("outbound.smarthost: {e}"))?,
        ))),
        (None, None) => Some(mx_transport(config)?),
    };
    let mut worker = WorkerConfig::new(config.relay_domain.clone(), transport);
    worker.helo = smtp_hostname(config);
    worker.instance_id = config.instance_id();
    worker.lease = Duration::from_secs(out.lease_secs.max(3));
    worker.dkim_reload = Duration::from_secs(out.dkim_reload_secs.max(1));
    worker.poll_interval = Duration::from_millis(out.poll_interval_ms.max(10));
    worker.concurrency = out.concurrency.max(1);
    let first = out.first_retry_secs;
    worker.retry = RetryPolicy {
        delays: SCHEDULE_MINUTES
            .iter()
            .map(|m| Duration::from_secs(first.saturating_mul(*m)))
            .collect(),
        give_up_after: Duration::from_secs(out.give_up_after_hours.saturating_mul(3600)),
        ..RetryPolicy::default()
    };
    Ok(worker)
}
