//! Group commit: the writes of concurrent callers share one database transaction and
//! one commit (one `fsync`), and each caller hears that its write is durable only
//! after that commit.
//!
//! Every acknowledgement used to cost a commit of its own; on SQLite, with one writer
//! at a time, sessions queued behind each other's `fsync`, waiting in SQLite's busy
//! handler (which sleeps). Now callers queue on a fair lock instead. The one holding
//! it works inside the open batch transaction under a savepoint of its own, releases
//! the savepoint and the lock, and waits; a committer task commits whatever the
//! batch holds once it gets the lock, which is after everyone who was already queued
//! has added their work. So under load one commit serves many callers, and alone a
//! caller waits for nothing but its own commit.
//!
//! A caller's failure undoes only its own work (`ROLLBACK TO` its savepoint); a
//! single statement run through `Grouped` has no savepoint (it would triple its
//! round trips), so its failure fails the batch. If even the rollback fails (the database rolled the whole transaction back by itself, as SQLite
//! does on a full disk), the batch is dropped with its connection and every caller in
//! it is told its write failed. A failed `COMMIT` likewise fails every caller of the
//! batch. Nobody is told "durable" unless the `COMMIT` that carried their work
//! succeeded.

use std::future::poll_fn;
use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;

use sqlx::any::{AnyArguments, AnyQueryResult, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, AnyConnection, AnyPool, Executor};
use tokio::sync::{Mutex, Notify, OwnedMutexGuard, watch};

use crate::backend::Backend;
use crate::error::{Result, StoreError};
use crate::write::WriteTx;

/// The outcome of a batch's `COMMIT`, shared with every caller in it.
type Outcome = std::result::Result<(), String>;

/// The batch transaction currently open, if any.
type Slot = Option<Batch>;

struct Batch {
    tx: WriteTx,
    committed: watch::Sender<Option<Outcome>>,
}

/// One store's group: where its batches are begun, the open batch, and the
/// committer's wake-up.
pub struct Group {
    pool: AnyPool,
    backend: Backend,
    open: Arc<Mutex<Slot>>,
    ready: Arc<Notify>,
    /// Writers queued for the lock: they will join the next batch.
    queued: AtomicUsize,
}

impl Group {
    /// A group beginning its batches on connections of `pool`, with its committer
    /// task running on the current tokio runtime.
    pub(crate) fn start(pool: AnyPool, backend: Backend) -> Self {
        let open = Arc::new(Mutex::new(None));
        let ready = Arc::new(Notify::new());
        tokio::spawn(commit_batches(Arc::downgrade(&open), ready.clone()));
        Self {
            pool,
            backend,
            open,
            ready,
            queued: AtomicUsize::new(0),
        }
    }

    /// Takes the lock on the batch, counted in [`Group::writers_queued`] while
    /// queued for it.
    async fn lock(&self) -> OwnedMutexGuard<Slot> {
        let mut acquire = pin!(self.open.clone().lock_owned());
        let mut queued = None;
        poll_fn(|cx| match acquire.as_mut().poll(cx) {
            Poll::Ready(slot) => Poll::Ready(slot),
            Poll::Pending => {
                // Counted only once really in the lock's queue.
                queued.get_or_insert_with(|| Queued::new(&self.queued));
                Poll::Pending
            }
        })
        .await
    }
}

/// One writer counted as queued; uncounted when it gets the lock or gives up.
struct Queued<'a>(&'a AtomicUsize);

impl<'a> Queued<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // Wakes the committer so that it sees the group gone and ends.
        self.ready.notify_one();
    }
}

/// Commits each batch once the callers queued before it have added their work.
async fn commit_batches(open: Weak<Mutex<Slot>>, ready: Arc<Notify>) {
    loop {
        ready.notified().await;
        let Some(open) = open.upgrade() else {
            return;
        };
        let mut slot = open.lock().await;
        if let Some(batch) = slot.take() {
            let outcome = batch.tx.commit().await.map_err(|e| e.to_string());
            if let Err(e) = &outcome {
                tracing::error!(error = %e, "a grouped commit failed; its writers are told");
            }
            batch.committed.send_replace(Some(outcome));
        }
    }
}

/// One caller's share of a batch transaction: the store's functions that take it
/// run their statements in it, then [`commit`](Self::commit) or
/// [`rollback`](Self::rollback).
/// Dropped without either, its work is rolled back (or, if that cannot be done, the
/// whole batch fails).
pub struct GroupTx {
    held: Option<OwnedMutexGuard<Slot>>,
    ready: Arc<Notify>,
    backend: Backend,
    /// Whether this work has a savepoint of its own. A single statement does not
    /// need one: `SAVEPOINT` and `RELEASE` would triple its round trips to the
    /// database; if it fails, the batch fails with it.
    savepoint: bool,
}

impl Group {
    /// Starts a write: a share of the batch transaction, under a savepoint.
    ///
    /// # Errors
    /// [`StoreError::Database`] if no connection is available or `BEGIN` fails (on
    /// SQLite also when a writer outside this store holds the lock past
    /// `busy_timeout`).
    pub(crate) async fn begin_write(&self) -> Result<GroupTx> {
        self.join_batch(true).await
    }

    /// A share of the batch for one statement, without a savepoint of its own.
    pub(crate) async fn begin_single(&self) -> Result<GroupTx> {
        self.join_batch(false).await
    }

    /// How many writers are waiting to add their work to a batch transaction.
    pub(crate) fn writers_queued(&self) -> usize {
        self.queued.load(Ordering::SeqCst)
    }

    async fn join_batch(&self, savepoint: bool) -> Result<GroupTx> {
        let mut slot = self.lock().await;
        if slot.is_none() {
            *slot = Some(Batch {
                tx: WriteTx::begin(&self.pool, self.backend).await?,
                committed: watch::channel(None).0,
            });
        }
        let Some(batch) = slot.as_mut() else {
            return Err(StoreError::CommitFailed("no open transaction".to_owned()));
        };
        if savepoint && let Err(e) = batch.tx.execute("SAVEPOINT grouped").await {
            fail_batch(&mut slot);
            return Err(e.into());
        }
        Ok(GroupTx {
            held: Some(slot),
            ready: self.ready.clone(),
            backend: self.backend,
            savepoint,
        })
    }
}

/// Drops the open batch: its connection is closed (the database rolls it back) and
/// every caller waiting on it is told it failed.
fn fail_batch(slot: &mut Slot) {
    if slot.take().is_some() {
        tracing::error!("a grouped transaction failed; its writers are told");
    }
}

impl GroupTx {
    /// The database the batch runs on, for statements written per dialect.
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// The batch's connection, for this writer's statements.
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
        match self.held.as_deref_mut() {
            Some(Some(batch)) => &mut batch.tx,
            // `held` is emptied only by the methods that consume `self`, and a slot
            // holding a `GroupTx` always has its batch.
            _ => unreachable!("a GroupTx always holds its batch"),
        }
    }

    /// The batch's connection, for tests of the group itself, which run statements
    /// of their own on tables of their own (feature `testing`).
    #[cfg(feature = "testing")]
    pub fn connection(&mut self) -> &mut AnyConnection {
        self.conn()
    }

    /// Adds this work to the batch and waits for the batch's `COMMIT`. `Ok` means it is
    /// durable.
    ///
    /// # Errors
    /// [`StoreError::CommitFailed`] if the savepoint could not be released or the
    /// batch's `COMMIT` failed; then none of this work is stored.
    pub async fn commit(mut self) -> Result<()> {
        let Some(mut slot) = self.held.take() else {
            return Err(StoreError::CommitFailed(
                "transaction already ended".to_owned(),
            ));
        };
        let Some(batch) = slot.as_mut() else {
            return Err(StoreError::CommitFailed(
                "transaction already ended".to_owned(),
            ));
        };
        if self.savepoint
            && let Err(e) = batch.tx.execute("RELEASE SAVEPOINT grouped").await
        {
            fail_batch(&mut slot);
            return Err(StoreError::CommitFailed(e.to_string()));
        }
        let mut committed = batch.committed.subscribe();
        drop(slot);
        self.ready.notify_one();
        let outcome = committed.wait_for(Option::is_some).await.map(|o| o.clone());
        match outcome {
            Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(e))) => Err(StoreError::CommitFailed(e)),
            Ok(None) | Err(_) => Err(StoreError::CommitFailed(
                "the transaction this write was grouped with failed".to_owned(),
            )),
        }
    }

    /// Commits after a statement that succeeded; rolls back after one that failed.
    pub(crate) async fn end<T>(self, statement: std::result::Result<T, sqlx::Error>) -> Result<T> {
        match statement {
            Ok(value) => {
                self.commit().await?;
                Ok(value)
            }
            Err(e) => {
                self.rollback().await;
                Err(e.into())
            }
        }
    }

    /// Undoes this work on purpose (nothing to write after all); others' work in the
    /// batch stays.
    pub async fn rollback(mut self) {
        if let Some(slot) = self.held.take() {
            undo(slot, &self.ready, self.savepoint).await;
        }
    }
}

/// Rolls back one caller's savepoint, or fails the batch if it cannot (or there is
/// none), and lets the committer end a batch that may now hold nobody's work.
async fn undo(mut slot: OwnedMutexGuard<Slot>, ready: &Notify, savepoint: bool) {
    if let Some(batch) = slot.as_mut() {
        let undone = savepoint
            && match batch.tx.execute("ROLLBACK TO SAVEPOINT grouped").await {
                Ok(_) => batch.tx.execute("RELEASE SAVEPOINT grouped").await.is_ok(),
                Err(_) => false,
            };
        if !undone {
            fail_batch(&mut slot);
        }
    }
    drop(slot);
    ready.notify_one();
}

impl Drop for GroupTx {
    fn drop(&mut self) {
        let Some(mut slot) = self.held.take() else {
            return;
        };
        // An early return or a cancelled caller: undo its work without blocking the
        // others, keeping the lock until that is done.
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let (ready, savepoint) = (self.ready.clone(), self.savepoint);
                runtime.spawn(async move { undo(slot, &ready, savepoint).await });
            }
            Err(_) => {
                fail_batch(&mut slot);
                self.ready.notify_one();
            }
        }
    }
}

/// A single statement run as a grouped write of its own (without a savepoint: if
/// it fails, so does its batch), in the group of whatever holds one (the store).
pub(crate) trait Grouped {
    /// Executes it in the batch and waits for the batch's commit.
    async fn grouped(self, on: &impl AsRef<Group>) -> Result<AnyQueryResult>;
    /// Like [`Grouped::grouped`], returning the rows the statement returns.
    async fn grouped_rows(self, on: &impl AsRef<Group>) -> Result<Vec<AnyRow>>;
}

impl<'q> Grouped for Query<'q, Any, AnyArguments> {
    async fn grouped(self, on: &impl AsRef<Group>) -> Result<AnyQueryResult> {
        let mut tx = on.as_ref().begin_single().await?;
        let done = self.execute(tx.conn()).await;
        tx.end(done).await
    }

    async fn grouped_rows(self, on: &impl AsRef<Group>) -> Result<Vec<AnyRow>> {
        let mut tx = on.as_ref().begin_single().await?;
        let rows = self.fetch_all(tx.conn()).await;
        tx.end(rows).await
    }
}
