//! The limits and names one SMTP session runs under, resolved once.

use std::time::Duration;

/// Settings of the SMTP listener; every limit a session enforces comes from here.
#[derive(Debug, Clone)]
pub struct SmtpParams {
    /// Host name in the greeting and EHLO answer.
    pub hostname: String,
    /// The only domain we accept mail for.
    pub relay_domain: String,
    /// Largest message accepted, in bytes; enforced while reading.
    pub max_message_size: usize,
    /// Recipients per message.
    pub max_recipients: usize,
    /// Errors a client may make before being disconnected.
    pub max_errors: usize,
    /// Commands a client may send in one session.
    pub max_commands: usize,
    /// Longest command line, in bytes including CRLF (smtp-proto stops at 4096).
    pub max_line_length: usize,
    /// Sessions served at once.
    pub max_connections: usize,
    /// Sessions served at once for one client address.
    pub max_connections_per_ip: usize,
    /// Longest a command may take to arrive, counted from the end of the previous
    /// one (however many bytes trickle in meanwhile).
    pub idle_timeout: Duration,
    /// The same limit while the listener is in stress mode.
    pub stress_timeout: Duration,
    /// Stress mode starts when this percentage of `max_connections` is in use.
    pub stress_percent: usize,
    /// Slowest acceptable message data, bytes per second after the first
    /// `idle_timeout` (or `stress_timeout`).
    pub min_data_rate: usize,
    /// Longest a whole session may last.
    pub session_timeout: Duration,
}

impl SmtpParams {
    /// Defaults for a relay domain: 25 MiB messages, 50 recipients, 5 minutes per
    /// command as RFC 5321 suggests (10 s under stress, from 80% of 2,000 sessions, as
    /// Postfix does), data at 500 bytes/s at least, 30-minute sessions.
    pub fn new(relay_domain: impl Into<String>) -> Self {
        let relay_domain = relay_domain.into();
        Self {
            hostname: relay_domain.clone(),
            relay_domain,
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 50,
            max_errors: 10,
            max_commands: 1000,
            max_line_length: 2048,
            max_connections: 2000,
            max_connections_per_ip: 16,
            idle_timeout: Duration::from_secs(300),
            stress_timeout: Duration::from_secs(10),
            stress_percent: 80,
            min_data_rate: 500,
            session_timeout: Duration::from_secs(1800),
        }
    }
}
