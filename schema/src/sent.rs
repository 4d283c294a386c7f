//! Marking deliveries sent, many per statement.
//!
//! Under load the worker finishes deliveries continuously, and each used to be
//! marked with a statement of its own (a round trip to the database's thread, in a
//! batch transaction shared with everyone else). Here the first delivery to finish
//! starts a marker task, which waits for its turn in the group commit; every
//! delivery finishing meanwhile joins it, and the task marks them all with one
//! statement and tells each the outcome of the batch's `COMMIT`. The next to finish
//! starts the next marker, which queues behind this one.
//!
//! The task is spawned, so that no caller's cancellation can strand the others.

use std::sync::Mutex;

use tokio::sync::watch;

use crate::db::{Backend, Store};
use crate::error::{Result, StoreError};
use crate::ids::now_ms;
use crate::queue::{DeliveryStatus, finish_set};

/// How a round ended: `Ok`, or why none of it is stored.
type Outcome = Option<std::result::Result<(), String>>;

/// Deliveries waiting to be marked sent, and who hears the outcome.
#[derive(Default)]
pub(crate) struct SentMarks {
    round: Mutex<Round>,
}

struct Round {
    ids: Vec<String>,
    outcome: watch::Sender<Outcome>,
    /// A marker task exists that has not yet taken `ids`.
    gathering: bool,
}

impl Default for Round {
    fn default() -> Self {
        Self {
            ids: Vec::new(),
            outcome: watch::Sender::new(None),
            gathering: false,
        }
    }
}

impl SentMarks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Round> {
        self.round.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store {
    /// How many deliveries wait to be marked sent in the round now gathering.
    pub fn marks_gathering(&self) -> usize {
        self.sent.lock().ids.len()
    }

    /// Records that a delivery was accepted by the next server: its content and
    /// recipient go (content stays if the organisation keeps it), marked together
    /// with the others finishing meanwhile. `Ok` once durable.
    ///
    /// # Errors
    /// [`StoreError::CommitFailed`] if the statement or the commit failed; then none
    /// of the round is marked, and the caller tries again.
    pub async fn mark_sent(&self, delivery_id: &str) -> Result<()> {
        let (mut outcome, start) = {
            let mut round = self.sent.lock();
            round.ids.push(delivery_id.to_owned());
            let start = !round.gathering;
            round.gathering = true;
            (round.outcome.subscribe(), start)
        };
        if start {
            tokio::spawn(mark_round(self.clone()));
        }
        match outcome.wait_for(Option::is_some).await.as_deref() {
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(e))) => Err(StoreError::CommitFailed(e.clone())),
            Ok(None) | Err(_) => Err(StoreError::CommitFailed(
                "the marking task ended without an outcome".to_owned(),
            )),
        }
    }
}

/// Marks every delivery gathered until this task's turn in the group commit.
async fn mark_round(store: Store) {
    let tx = store.begin_single().await;
    let (ids, outcome) = {
        let mut round = store.sent.lock();
        round.gathering = false;
        let ids = std::mem::take(&mut round.ids);
        (
            ids,
            std::mem::replace(&mut round.outcome, watch::Sender::new(None)),
        )
    };
    let result = match tx {
        Ok(mut tx) => {
            let marked = mark(&store, &ids).execute(tx.conn()).await;
            tx.end(marked).await.map(|_| ())
        }
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        tracing::warn!(error = %e, deliveries = ids.len(), "could not mark deliveries sent");
    }
    outcome.send_replace(Some(result.map_err(|e| e.to_string())));
}

/// The statement marking `ids` sent, the ids passed as one JSON array.
fn mark<'q>(
    store: &Store,
    ids: &[String],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let sql = match store.backend() {
        Backend::Sqlite => concat!(
            "UPDATE deliveries SET status = $1, last_error = NULL, ",
            finish_set!(),
            " WHERE id IN (SELECT value FROM json_each($3))"
        ),
        Backend::Postgres => concat!(
            "UPDATE deliveries SET status = $1, last_error = NULL, ",
            finish_set!(),
            " WHERE id IN (SELECT jsonb_array_elements_text(CAST($3 AS jsonb)))"
        ),
    };
    let ids = serde_json::Value::from(ids.to_vec()).to_string();
    sqlx::query(sql)
        .bind(DeliveryStatus::Sent.as_str())
        .bind(now_ms())
        .bind(ids)
}
