//! Why a message could not be submitted.

use maskrelay_schema::{ExternalId, StoreError};
use thiserror::Error;

use crate::policy::Refusal;

/// Why a message could not be queued; in every case nothing of it was stored.
#[derive(Debug, Error)]
pub enum SubmitError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// The rules on who may write to whom refused submission number `index` of the
    /// ones submitted together.
    #[error("refused by the rules on who may write to whom: {}", refusal.reason().as_str())]
    Refused {
        /// Which submission.
        index: usize,
        /// Why.
        refusal: Refusal,
    },

    /// The reader has no address any more (erased meanwhile).
    #[error("member {0} has no address")]
    NoAddress(ExternalId),

    /// Building the message failed.
    #[error("could not build the message: {0}")]
    Compose(#[from] std::io::Error),

    /// The idempotency key was used concurrently; the caller should return the
    /// response recorded by the other request.
    #[error("idempotency key already recorded")]
    IdempotencyConflict,

    /// A broadcast's record could not be read back (written by another version).
    #[error("broadcast record unreadable: {0}")]
    Record(#[from] serde_json::Error),

    /// Other writers kept making the same new conversation at the same moment; the
    /// same request may be sent again.
    #[error("the conversation was being made by another writer; try again")]
    Contended,
}

impl SubmitError {
    /// True when the same submission may succeed later: the caller answers "try
    /// again" (SMTP `451`, HTTP `503`).
    pub fn is_unavailable(&self) -> bool {
        match self {
            SubmitError::Store(e) => e.is_unavailable(),
            SubmitError::Contended => true,
            _ => false,
        }
    }
}
