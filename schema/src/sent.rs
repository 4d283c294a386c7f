//! Marking deliveries sent, many per statement.
//!
//! Under load the worker finishes deliveries continuously; those finishing together
//! are marked by one statement, in a round (see `rounds`).

use crate::backend::Backend;
use crate::clock::now_ms;
use crate::db::Store;
use crate::error::Result;
use crate::group::GroupTx;
use crate::ids::DeliveryId;
use crate::queue::finish_set;
use crate::rounds::{RoundWrite, write_in_round};
use crate::status::DeliveryStatus;

/// Deliveries marked sent in rounds (see [`crate::rounds`]).
struct SentMarks;

impl RoundWrite for SentMarks {
    type Row = DeliveryId;
    const WHAT: &'static str = "mark deliveries sent";

    async fn write(tx: &mut GroupTx, ids: &[DeliveryId]) -> Result<()> {
        mark(tx.backend(), ids).execute(tx.conn()).await?;
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
    pub async fn mark_sent(&self, delivery: &DeliveryId) -> Result<()> {
        write_in_round::<SentMarks>(&self.group, &self.sent, delivery.clone()).await
    }
}

/// The statement marking `ids` sent, the ids passed as one JSON array.
fn mark<'q>(
    backend: Backend,
    ids: &[DeliveryId],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    let sql = match backend {
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
    let ids =
        serde_json::Value::from(ids.iter().map(DeliveryId::as_str).collect::<Vec<_>>()).to_string();
    sqlx::query(sql)
        .bind(DeliveryStatus::Sent)
        .bind(now_ms())
        .bind(ids)
}
