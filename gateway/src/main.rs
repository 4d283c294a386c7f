//! The `maskrelay` binary: parse arguments, load configuration, run.

use anyhow::Context;
use clap::Parser;
use maskrelay::cli::{Cli, Command, OrgCommand};
use maskrelay::{Config, app};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref(), |name| std::env::var(name).ok())?;
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
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let running = app::start(config).await?;
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
