//! The `maskrelay` binary: parse arguments, load configuration, run.

use anyhow::Context;
use clap::Parser;
use maskrelay::cli::{Cli, Command, DnsCommand, OrgCommand};
use maskrelay::dns_records::Plan;
use maskrelay::{Config, app};
use maskrelay::{dkim_keys, queue_cli};
use tracing_subscriber::EnvFilter;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref(), |name| std::env::var(name).ok())?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(config.worker_threads())
        .enable_all()
        .build()
        .context("cannot start the runtime")?
        .block_on(run(cli, config))
}

async fn run(cli: Cli, config: Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&config.log));
    // Colours only on a terminal: journald and log files get plain text.
    let colours = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colours)
        .with_writer(std::io::stderr)
        .init();

    match cli.command {
        Command::Serve => serve(config).await,
        Command::Migrate => {
            let store = app::open_store(&config).await?;
            store.close().await;
            eprintln!("database is up to date");
            Ok(())
        }
        Command::Org {
            command: OrgCommand::Create { name, json },
        } => {
            let name = name.trim();
            anyhow::ensure!(
                !name.is_empty() && !name.contains(['\r', '\n']),
                "--name must be a non-empty single line"
            );
            let store = app::open_store(&config).await?;
            let (org, key) = store
                .create_org(name)
                .await
                .context("cannot create organisation")?;
            store.close().await;
            if json {
                println!("{}", serde_json::json!({"org_id": org.id, "api_key": key}));
            } else {
                println!(
                    "organisation: {}\napi key:      {key}\n(the key is shown only once)",
                    org.id
                );
            }
            Ok(())
        }
        Command::Dns { command } => {
            let store = app::open_store(&config).await?;
            let plan = Plan::new(&config, &store).await;
            store.close().await;
            let plan = plan?;
            match command {
                DnsCommand::Print => {
                    print!("{}", plan.print());
                    Ok(())
                }
                DnsCommand::Check => {
                    let resolver = maskrelay_inbound::read::authenticate::resolver(
                        &config.dns.nameservers()?,
                    )?;
                    let findings = plan.check(&resolver).await;
                    for f in &findings {
                        println!("{} {}", if f.ok { "ok  " } else { "FAIL" }, f.text);
                    }
                    let faults = findings.iter().filter(|f| !f.ok).count();
                    anyhow::ensure!(faults == 0, "{faults} DNS record(s) missing or wrong");
                    Ok(())
                }
            }
        }
        Command::Queue { command } => {
            let store = app::open_store(&config).await?;
            let result = queue_cli::run(&store, command).await;
            store.close().await;
            result
        }
        Command::Dkim { command } => {
            let store = app::open_store(&config).await?;
            let result = dkim_keys::run(&store, &config.relay_domain, command).await;
            store.close().await;
            result
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    // Handlers go in before anything listens: a SIGTERM that arrives just after the
    // listeners say they are up must stop the gateway cleanly, not kill it.
    let stop = StopSignals::install()?;
    // A process-wide setting, so here at the binary's edge rather than in `app`.
    maskrelay::fd_limit::raise_for(config.smtp.max_connections);
    let running = app::start(config).await?;
    stop.wait().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

/// SIGINT (Ctrl-C) and SIGTERM, registered when installed.
#[cfg(unix)]
struct StopSignals {
    interrupt: tokio::signal::unix::Signal,
    terminate: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl StopSignals {
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            interrupt: signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?,
            terminate: signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?,
        })
    }

    async fn wait(mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

#[cfg(not(unix))]
struct StopSignals;

#[cfg(not(unix))]
impl StopSignals {
    fn install() -> anyhow::Result<Self> {
        Ok(Self)
    }

    async fn wait(self) {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    }
}
