//! The command line: `serve`, `migrate`, `org create`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// maskrelay: members write to each other by email without seeing each other's address.
#[derive(Debug, Parser)]
#[command(name = "maskrelay", version, about)]
pub struct Cli {
    /// Configuration file (TOML); environment variables MASKRELAY_* override it.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API, the SMTP listener and the delivery worker (migrates first).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Manage organisations.
    Org {
        /// What to do with organisations.
        #[command(subcommand)]
        command: OrgCommand,
    },
}

/// Organisation subcommands.
#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Create an organisation and print its id and a new API key (shown only once).
    Create {
        /// Display name, shown to recipients as "Alice via NAME".
        #[arg(long)]
        name: String,
        /// Print one JSON line {"org_id": ..., "api_key": ...}.
        #[arg(long)]
        json: bool,
    },
}
