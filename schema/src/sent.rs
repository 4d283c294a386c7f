//! Marking deliveries sent, many per statement.
//!
//! Under load the worker finishes deliveries continuously; those finishing together
//! are marked by one statement, in a round of [`crate::rounds`].

use crate::db::{Backend, Store};
use crate::error::Result;
use crate::group::GroupTx;
use crate::ids::now_ms;
use crate::queue::{DeliveryStatus, finish_set};
use crate::rounds::{RoundWrite, Rounds, write_in_round};

/// Deliveries marked sent in rounds (see [`crate::rounds`]).
pub(crate) struct SentMarks;

impl RoundWrite for SentMarks {
    type Row = String;
    const WHAT: &'static str = "mark deliveries sent";

    fn rounds(store: &Store) -> &Rounds<String> {
        &store.sent
    }

    async fn write(store: &Store, tx: &mut GroupTx, ids: &[String]) -> Result<()> {
        mark(store, ids).execute(tx.conn()).await?;
        Ok(())
    }
}

impl Store {
    /// How many deliveries wait to be marked sent in the round now gathering.
    pub fn marks_gathering(&self) -> usize {
        self.sent.gathering()
    }

    /// Records that a delivery was accepted by the next server: its content and
    /// recipient go (content stays if the organisation keeps it), marked together
    /// with the others finishing meanwhile. `Ok` once durable.
    ///
    /// # Errors
    /// [`crate::StoreError::CommitFailed`] if the statement or the commit failed;
    /// then none of the round is marked, and the caller tries again.
    pub async fn mark_sent(&self, delivery_id: &str) -> Result<()> {
        write_in_round::<SentMarks>(self, delivery_id.to_owned()).await
    }
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
