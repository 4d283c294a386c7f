//! The process's file limit: every SMTP session, database connection and delivery
//! holds a descriptor, and the common soft limit of 1,024 is below the default
//! `smtp.max_connections`. At start the soft limit is raised to the hard one (as Go's
//! runtime and many servers do); if that is still too low, the log says so.

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};

/// Descriptors kept for everything but SMTP sessions (database, HTTP, deliveries).
const RESERVE: u64 = 256;

/// Raises the soft file limit to the hard one; warns if it cannot hold `sessions`.
pub fn raise_for(sessions: usize) {
    let limit = getrlimit(Resource::Nofile);
    let wanted = u64::try_from(sessions)
        .unwrap_or(u64::MAX)
        .saturating_add(RESERVE);
    let raised = match (limit.current, limit.maximum) {
        (Some(current), Some(maximum)) if current < maximum => {
            let new = Rlimit {
                current: Some(maximum),
                maximum: Some(maximum),
            };
            match setrlimit(Resource::Nofile, new) {
                Ok(()) => Some(maximum),
                Err(e) => {
                    tracing::debug!(error = %e, "could not raise the file limit");
                    Some(current)
                }
            }
        }
        (current, _) => current,
    };
    if let Some(files) = raised
        && files < wanted
    {
        tracing::warn!(
            file_limit = files,
            wanted,
            "the file limit is below smtp.max_connections plus a reserve: raise it \
             (LimitNOFILE= in the systemd unit, ulimit -n) or lower smtp.max_connections"
        );
    }
}
