//! A steady stream of member replies, each carrying a numbered marker, and a tally of
//! how the gateway answered each: the ground truth for "every reply that got 250 is
//! delivered".

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::api::Api;
use crate::gateway::{send_mail, smtp_refusal};
use crate::mail;
use crate::smarthost::Smarthost;

/// Alice's address; she starts the conversation.
pub const ALICE: &str = "alice@example.com";
/// Bob's address; he writes the replies.
pub const BOB: &str = "bob@example.net";

/// How the replies are sent.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The member writing (envelope sender and `From:`).
    pub from: String,
    /// The relay address written to.
    pub to: String,
    /// Clients sending at once, each one reply after another.
    pub senders: usize,
    /// Pause of each client between replies.
    pub pause: Duration,
    /// Retry a reply refused with a 4xx after this pause, as a sending MTA would;
    /// `None` counts the refusal and moves on.
    pub retry_refused: Option<Duration>,
}

impl LoadSpec {
    /// Bob replying to `relay` from `senders` clients, pausing `pause` between
    /// replies, counting refusals without retrying them.
    pub fn bob(relay: &str, senders: usize, pause: Duration) -> Self {
        Self {
            from: BOB.into(),
            to: relay.to_owned(),
            senders,
            pause,
            retry_refused: None,
        }
    }
}

/// How the replies were answered so far.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Numbers of the replies answered `250`.
    pub accepted: BTreeSet<u64>,
    /// Replies refused, by reply code (`451`, `421`, …).
    pub refused: BTreeMap<String, u64>,
    /// Replies whose connection failed (the gateway was down).
    pub unreachable: u64,
    /// The longest a reply took from its first attempt to its `250`.
    pub slowest: Duration,
    /// Replies still being retried when the load stopped.
    pub abandoned: u64,
}

impl Tally {
    /// One line for the test's output, once [`ReplyLoad::finish`] found every
    /// accepted reply delivered, `duplicates` of them more than once.
    pub fn delivered_summary(&self, duplicates: usize) -> String {
        format!(
            "{} replies accepted, all delivered; {duplicates} delivered twice; refused: {:?}; \
             unreachable while down: {}",
            self.accepted.len(),
            self.refused,
            self.unreachable
        )
    }
}

/// The running load.
pub struct ReplyLoad {
    tally: Arc<Mutex<Tally>>,
    next: Arc<AtomicU64>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl ReplyLoad {
    /// Starts sending to whatever address `target` holds; `None` pauses sending
    /// (the gateway is being restarted).
    pub fn start(target: watch::Receiver<Option<SocketAddr>>, spec: LoadSpec) -> Self {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let next = Arc::new(AtomicU64::new(1));
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        for _ in 0..spec.senders.max(1) {
            let (tally, next, stop, spec) = (
                Arc::clone(&tally),
                Arc::clone(&next),
                stop.clone(),
                spec.clone(),
            );
            let mut target = target.clone();
            tasks.spawn(async move {
                while !stop.is_cancelled() {
                    let addr = *target.borrow_and_update();
                    let Some(addr) = addr else {
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            _ = target.changed() => continue,
                        }
                    };
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let first_attempt = tokio::time::Instant::now();
                    loop {
                        let result = send_mail(addr, &spec.from, &spec.to, &spec.message(n)).await;
                        let retry = record(&tally, n, &smtp_refusal(result), first_attempt)
                            .then_some(spec.retry_refused)
                            .flatten();
                        let Some(pause) = retry else { break };
                        tokio::select! {
                            _ = stop.cancelled() => {
                                tally.lock().unwrap_or_else(|p| p.into_inner()).abandoned += 1;
                                break;
                            }
                            _ = tokio::time::sleep(pause) => {}
                        }
                    }
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(spec.pause) => {}
                    }
                }
            });
        }
        Self {
            tally,
            next,
            stop,
            tasks,
        }
    }

    /// The tally so far.
    pub fn tally(&self) -> Tally {
        self.tally.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The number the next reply will carry: every reply numbered from here on was
    /// sent after this call.
    pub fn next_number(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }

    /// Waits until `done` holds for the tally, checking every 50 ms.
    ///
    /// # Errors
    /// Saying `what` did not happen within `bound`, with the tally.
    pub async fn wait_until(
        &self,
        what: &str,
        bound: Duration,
        done: impl Fn(&Tally) -> bool,
    ) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + bound;
        loop {
            let tally = self.tally();
            if done(&tally) {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                anyhow::bail!("{what} did not happen within {bound:?}; tally: {tally:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `more` replies beyond those accepted so far are accepted.
    ///
    /// # Errors
    /// Saying `what` did not happen within a minute, with the tally.
    pub async fn accept_more(&self, what: &str, more: usize) -> anyhow::Result<()> {
        let wanted = self.tally().accepted.len() + more;
        self.wait_until(what, Duration::from_secs(60), |t| {
            t.accepted.len() >= wanted
        })
        .await
    }

    /// Stops sending and waits until every accepted reply has reached `sink`; the
    /// final tally and how many replies arrived more than once.
    ///
    /// # Errors
    /// Naming the replies still missing after a minute.
    pub async fn finish(self, sink: &Smarthost) -> anyhow::Result<(Tally, usize)> {
        let tally = self.stop().await;
        let seen = wait_delivered(sink, &tally.accepted, Duration::from_secs(60)).await?;
        let duplicates = seen.values().filter(|&&n| n > 1).count();
        Ok((tally, duplicates))
    }

    /// Stops sending, waits for replies in flight, and returns the final tally.
    pub async fn stop(mut self) -> Tally {
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.tally()
    }
}

/// Counts how reply `n` was answered; true if it was a temporary refusal (4xx).
fn record(tally: &Mutex<Tally>, n: u64, answer: &str, first_attempt: tokio::time::Instant) -> bool {
    let mut t = tally.lock().unwrap_or_else(|p| p.into_inner());
    match answer.split_whitespace().next() {
        Some("accepted") => {
            t.accepted.insert(n);
            t.slowest = t.slowest.max(first_attempt.elapsed());
            false
        }
        Some(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()) => {
            *t.refused.entry(code.to_owned()).or_default() += 1;
            code.starts_with('4')
        }
        _ => {
            t.unreachable += 1;
            false
        }
    }
}

impl LoadSpec {
    /// Reply number `n`, as the load sends it.
    pub fn message(&self, n: u64) -> Vec<u8> {
        format!(
            "From: Bob <{from}>\r\nTo: <{to}>\r\nSubject: Re: load {n}\r\n\
             Message-ID: <load-{n}@example.net>\r\n\r\nload-marker-{n}-end\r\n",
            from = self.from,
            to = self.to,
        )
        .into_bytes()
    }
}

/// Registers Alice and Bob and sends Bob a message from Alice; returns the relay
/// address Bob answers to (the `From:` of what he received).
///
/// # Errors
/// If the API refuses or the message does not reach `sink` within 30 s.
pub async fn open_conversation(api: &Api, sink: &Smarthost) -> anyhow::Result<String> {
    api.member("alice", ALICE, "Alice").await?;
    api.member("bob", BOB, "Bob").await?;
    let before = sink.delivered().len();
    let (status, body) = api
        .message("alice", "bob", "Hello", "Shall we talk?")
        .await?;
    anyhow::ensure!(status == 202, "POST /v1/messages: {status} {body}");
    let delivered = sink.wait_for(before + 1, Duration::from_secs(30)).await?;
    let last = delivered
        .last()
        .ok_or_else(|| anyhow::anyhow!("nothing delivered"))?;
    Ok(mail::from_address(&mail::parse(&last.data)?))
}

/// Waits until every reply in `accepted` has reached `sink`; returns how many times
/// each marker arrived.
///
/// # Errors
/// Naming the replies still missing after `bound`.
pub async fn wait_delivered(
    sink: &Smarthost,
    accepted: &BTreeSet<u64>,
    bound: Duration,
) -> anyhow::Result<BTreeMap<u64, u64>> {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        let delivered = sink.delivered();
        let seen = arrivals(
            delivered
                .iter()
                .map(|d| d.text())
                .collect::<Vec<_>>()
                .iter()
                .map(String::as_str),
        );
        let missing: Vec<u64> = accepted
            .iter()
            .filter(|n| !seen.contains_key(n))
            .copied()
            .collect();
        if missing.is_empty() {
            return Ok(seen);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!(
                "{} of {} replies answered 250 were never delivered within {bound:?}: {missing:?}",
                missing.len(),
                accepted.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The numbers of the load markers in a delivered message.
pub fn markers(text: &str) -> Vec<u64> {
    text.split("load-marker-")
        .skip(1)
        .filter_map(|rest| rest.split_once("-end").and_then(|(n, _)| n.parse().ok()))
        .collect()
}

/// How many times each marker arrived, over all delivered messages.
pub fn arrivals<'a>(texts: impl IntoIterator<Item = &'a str>) -> BTreeMap<u64, u64> {
    let mut seen = BTreeMap::new();
    for text in texts {
        for n in markers(text) {
            *seen.entry(n).or_default() += 1;
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_are_found_and_counted() {
        assert_eq!(
            markers("x load-marker-12-end y load-marker-3-end"),
            vec![12, 3]
        );
        assert_eq!(markers("load-marker-x-end"), Vec::<u64>::new());
        let seen = arrivals(["load-marker-1-end", "load-marker-1-end load-marker-2-end"]);
        assert_eq!(seen.get(&1), Some(&2));
        assert_eq!(seen.get(&2), Some(&1));
    }
}
