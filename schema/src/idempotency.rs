//! Idempotency keys: a retried API call returns the first call's answer.

use sqlx::Row;

use crate::clock::now_ms;
use crate::db::Store;
use crate::error::Result;
use crate::group::GroupTx;
use crate::ids::OrgId;

/// The answer recorded for an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedResponse {
    /// Fingerprint of the request that first used the key.
    pub request_hash: Vec<u8>,
    /// The response body that was sent.
    pub response: String,
}

/// Records the response to a request made with an idempotency key, in the same
/// transaction as the work it acknowledges.
///
/// # Errors
/// [`crate::StoreError`] with [`crate::StoreError::is_unique_violation`] true if the
/// key was recorded meanwhile by a concurrent request.
pub async fn record_idempotent_response(
    tx: &mut GroupTx,
    org_id: &OrgId,
    key: &str,
    request_hash: &[u8],
    response: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO idempotency_keys (org_id, idem_key, request_hash, response, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(org_id)
    .bind(key)
    .bind(request_hash)
    .bind(response)
    .bind(now_ms())
    .execute(tx.conn())
    .await?;
    Ok(())
}

impl Store {
    /// The response recorded for `key`, if any.
    ///
    /// # Errors
    /// [`crate::StoreError`] if the query fails.
    pub async fn idempotent_response(
        &self,
        org_id: &OrgId,
        key: &str,
    ) -> Result<Option<RecordedResponse>> {
        let row = sqlx::query(
            "SELECT request_hash, response FROM idempotency_keys WHERE org_id = $1 AND idem_key = $2",
        )
        .bind(org_id)
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| -> Result<RecordedResponse> {
            Ok(RecordedResponse {
                request_hash: r.try_get("request_hash")?,
                response: r.try_get("response")?,
            })
        })
        .transpose()
    }
}
