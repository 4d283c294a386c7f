//! `GET /metrics`: the SMTP listener's counters in Prometheus' text format. No API
//! key: counters carry no personal data and scrapers rarely hold one; keep the API's
//! address private or filter the path at the proxy if that matters.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::state::AppState;

/// The counters, one `# HELP`/`# TYPE` block each.
pub async fn get(State(state): State<AppState>) -> impl IntoResponse {
    let s = &state.listener_stats;
    let metrics = [
        (
            "smtp_sessions_open",
            "gauge",
            "SMTP sessions open now",
            &s.sessions_open,
        ),
        (
            "smtp_stress_mode",
            "gauge",
            "1 while the SMTP listener is in stress mode",
            &s.stressed,
        ),
        (
            "smtp_stress_episodes_total",
            "counter",
            "Times stress mode began",
            &s.stress_episodes,
        ),
        (
            "smtp_connections_refused_busy_total",
            "counter",
            "Connections refused: every session busy",
            &s.refused_busy,
        ),
        (
            "smtp_connections_refused_per_ip_total",
            "counter",
            "Connections refused: too many from one address",
            &s.refused_per_ip,
        ),
        (
            "smtp_sessions_reclaimed_total",
            "counter",
            "Idle sessions closed to make room under stress",
            &s.reclaimed,
        ),
        (
            "smtp_sessions_timed_out_total",
            "counter",
            "Sessions closed because input was not in time",
            &s.timed_out,
        ),
    ];
    let mut body = String::new();
    for (name, kind, help, value) in metrics {
        let _ = write!(
            body,
            "# HELP maskrelay_{name} {help}\n# TYPE maskrelay_{name} {kind}\nmaskrelay_{name} {}\n",
            value.load(Ordering::Relaxed)
        );
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
}
