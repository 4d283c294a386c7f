//! The command line: `serve`, `migrate`, `org create`, `dkim generate|list|retire`,
//! `queue list|show|retry|cancel`, `dns print|check`.

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
    /// The DNS records the relay domain needs.
    Dns {
        /// Print them, or check what is published.
        #[command(subcommand)]
        command: DnsCommand,
    },
    /// Look at and act on the delivery queue (no addresses or content are shown).
    Queue {
        /// What to do with the queue.
        #[command(subcommand)]
        command: QueueCommand,
    },
    /// Manage the relay domain's DKIM keys (stored encrypted in the database, shared
    /// by every instance).
    Dkim {
        /// What to do with DKIM keys.
        #[command(subcommand)]
        command: DkimCommand,
    },
}

/// DNS subcommands.
#[derive(Debug, Subcommand)]
pub enum DnsCommand {
    /// Print every record in zone-file syntax: MX, the MX host's address, SPF, DKIM
    /// (each published key), DMARC, TLS-RPT, and what reverse DNS must say.
    Print,
    /// Look each record up (through `dns.nameservers`) and say, line by line, what is
    /// missing or wrong and how to fix it; exits non-zero if anything is.
    Check,
}

/// Queue subcommands.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// The newest deliveries: id, status, attempts, next attempt, last error.
    List {
        /// Only this status: queued, deferred, sent, bounced, failed, suppressed,
        /// cancelled.
        #[arg(long)]
        status: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
    },
    /// One delivery in full (still without recipient or content).
    Show {
        /// Delivery id.
        id: String,
    },
    /// Make a queued or deferred delivery due now.
    Retry {
        /// Delivery id.
        id: String,
    },
    /// Cancel a queued or deferred delivery; its content is wiped.
    Cancel {
        /// Delivery id.
        id: String,
    },
}

/// DKIM subcommands.
#[derive(Debug, Subcommand)]
pub enum DkimCommand {
    /// Make a key under a new selector and print the TXT record to publish. It signs
    /// from the next reload (`outbound.dkim_reload_secs`); the key it replaces keeps
    /// being published until retired.
    Generate {
        /// The selector, e.g. `mr2026a` (letters, digits, hyphens; dots between labels).
        #[arg(long)]
        selector: String,
        /// `ed25519` (RFC 8463) or `rsa` (2048 bits). Sign with one of each: receivers
        /// that cannot verify Ed25519 yet verify the RSA signature.
        #[arg(long, default_value = "ed25519")]
        algorithm: String,
    },
    /// List keys: selector, algorithm, when made, and whether it signs, is only
    /// published, or is retired.
    List,
    /// Retire a key: it stops signing, and its record may be removed from DNS once
    /// mail signed with it has been delivered (a few days).
    Retire {
        /// The selector to retire.
        selector: String,
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
