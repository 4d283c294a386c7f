//! The SMTP protocol side of the listener: accepting connections, running sessions,
//! and staying fair under load.
//!
//! - [`listener`]: the accept loop, connection limits, STARTTLS hand-over, shutdown.
//! - [`session`]: the per-connection state machine, one file per verb.
//! - [`params`]: the limits a session runs under.
//! - [`per_ip`]: sessions counted per client address.
//! - [`pressure`]: stress mode, and reclaiming idle sessions at the limit.
//! - [`stats`]: counters for the metrics endpoint (refusals, reclaims, timeouts).
//! - [`tls`]: the STARTTLS certificate, from files or self-signed for development.

pub mod listener;
pub mod params;
pub mod per_ip;
pub mod pressure;
pub mod session;
pub mod stats;
pub mod tls;
