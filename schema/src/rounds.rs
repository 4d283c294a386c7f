//! Rounds: many callers' rows written by one statement in the group commit.
//!
//! Under load, callers of the same kind of write arrive continuously (replies to
//! store, deliveries to mark sent). Each used to run a statement of its own in the
//! batch transaction: a round trip to the database's thread, and a hand-off of the
//! batch's lock to the next caller's task, per row. Here the first caller of a
//! round spawns a task that waits for its turn in the group commit; everyone
//! arriving meanwhile adds a row to the same round; the task writes them all with
//! one statement and tells each the outcome of the `COMMIT` carrying it. The next
//! caller starts the next round, which queues behind this one.
//!
//! The task is spawned, so that no caller's cancellation can strand the others. A
//! caller that goes away after adding its row still has it written: that is the
//! "stored but not acknowledged" case every mail server has (the client tries
//! again, and a duplicate is possible, a loss is not).

use std::sync::{Arc, Mutex};

use tokio::sync::watch;

use crate::error::{Result, StoreError};
use crate::group::{Group, GroupTx};

/// How a round ended: `Ok`, or why none of it is stored.
type Outcome = Option<std::result::Result<(), String>>;

/// Rows waiting for the next round of one kind of write.
pub(crate) struct Rounds<T> {
    round: Mutex<Round<T>>,
}

struct Round<T> {
    rows: Vec<T>,
    outcome: watch::Sender<Outcome>,
    /// A round task exists that has not yet taken `rows`.
    gathering: bool,
}

impl<T> Default for Rounds<T> {
    fn default() -> Self {
        Self {
            round: Mutex::new(Round {
                rows: Vec::new(),
                outcome: watch::Sender::new(None),
                gathering: false,
            }),
        }
    }
}

/// One kind of write done in rounds: its rows and its statement.
pub(crate) trait RoundWrite: Send + Sync + 'static {
    /// A caller's row.
    type Row: Send + Sync + 'static;
    /// What the log says when a round fails.
    const WHAT: &'static str;
    /// Writes every row of a round in the batch transaction. Without a savepoint:
    /// if it fails, the batch fails with it and everyone in it is told to try again.
    fn write(tx: &mut GroupTx, rows: &[Self::Row]) -> impl Future<Output = Result<()>> + Send;
}

impl<T> Rounds<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Round<T>> {
        self.round.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many rows the round now gathering holds.
    pub(crate) fn gathering(&self) -> usize {
        self.lock().rows.len()
    }
}

/// Adds `row` to the next round of `W` gathering in `rounds`, written in `group`'s
/// batches, and waits until it is durable.
///
/// # Errors
/// [`StoreError::CommitFailed`] (or the statement's error) if the round's statement
/// or its `COMMIT` failed; then none of the round is stored.
pub(crate) async fn write_in_round<W: RoundWrite>(
    group: &Arc<Group>,
    rounds: &Arc<Rounds<W::Row>>,
    row: W::Row,
) -> Result<()> {
    let (mut outcome, start) = {
        let mut round = rounds.lock();
        round.rows.push(row);
        let start = !round.gathering;
        round.gathering = true;
        (round.outcome.subscribe(), start)
    };
    if start {
        tokio::spawn(run_round::<W>(Arc::clone(group), Arc::clone(rounds)));
    }
    match outcome.wait_for(Option::is_some).await.as_deref() {
        Ok(Some(Ok(()))) => Ok(()),
        Ok(Some(Err(e))) => Err(StoreError::CommitFailed(e.clone())),
        Ok(None) | Err(_) => Err(StoreError::CommitFailed(
            "the round's task ended without an outcome".to_owned(),
        )),
    }
}

/// Writes every row gathered until this task's turn in the group commit.
async fn run_round<W: RoundWrite>(group: Arc<Group>, rounds: Arc<Rounds<W::Row>>) {
    let tx = group.begin_single().await;
    let (rows, outcome) = {
        let mut round = rounds.lock();
        round.gathering = false;
        (
            std::mem::take(&mut round.rows),
            std::mem::replace(&mut round.outcome, watch::Sender::new(None)),
        )
    };
    let result = match tx {
        Ok(mut tx) => match W::write(&mut tx, &rows).await {
            Ok(()) => tx.commit().await,
            Err(e) => {
                tx.rollback().await;
                Err(e)
            }
        },
        Err(e) => Err(e),
    };
    if let Err(e) = &result {
        tracing::warn!(error = %e, rows = rows.len(), "could not {}", W::WHAT);
    }
    outcome.send_replace(Some(result.map_err(|e| e.to_string())));
}
