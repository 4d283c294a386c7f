//! Threading: which conversation a message goes into, with which relay addresses,
//! and which of our earlier messages it answers, so that it stays in its thread in
//! every mail client.
//!
//! A message is composed before it is stored, whether it starts a conversation or
//! continues one: a thread that does not exist yet is made up here (`Placement`
//! says so), and stored with the message in the submission's transaction.

use maskrelay_schema::controls::Barriers;
use maskrelay_schema::conversations::Thread;
use maskrelay_schema::orgs::Org;
use maskrelay_schema::{Direction, Store};

pub use maskrelay_schema::routing::REFERENCES;

use crate::error::SubmitError;

/// What a reply's route has already read of its conversation (see
/// `maskrelay_schema::routing`), so that none of it is read again.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    /// The thread the reply continues, if its relay addresses all exist.
    pub thread: Option<&'a Thread>,
    /// Our `Message-ID`s of the conversation's latest messages, oldest first.
    pub references: &'a [String],
    /// Blocks and suppressions between the two members.
    pub barriers: Barriers,
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Placement {
    /// Its thread.
    pub(crate) thread: Thread,
    /// Our `Message-ID`s of the conversation's latest messages, oldest first.
    pub(crate) references: Vec<String>,
    /// The two members already share a conversation.
    pub(crate) in_conversation: bool,
    /// Some of the thread was made up here and must be stored with the message.
    pub(crate) to_make: bool,
}

/// The thread of `direction` in `org`: as the route read it, or as the store has
/// it, or made up where it does not exist yet.
///
/// # Errors
/// [`SubmitError::Store`] if the look-up fails or no token can be drawn.
pub(crate) async fn place(
    store: &Store,
    org: &Org,
    direction: Direction<'_>,
    known: Option<&Known<'_>>,
) -> Result<Placement, SubmitError> {
    if let Some(Known {
        thread: Some(thread),
        references,
        ..
    }) = known
    {
        return Ok(Placement {
            thread: (*thread).clone(),
            references: references.to_vec(),
            in_conversation: true,
            to_make: false,
        });
    }
    let parts = store.thread_parts(&org.id, direction, REFERENCES).await?;
    let in_conversation = known.is_some() || parts.conversation_id.is_some();
    let (thread, to_make) = match parts.complete() {
        Some(thread) => (thread, false),
        None => (parts.completed()?, true),
    };
    Ok(Placement {
        thread,
        references: parts.references,
        in_conversation,
        to_make,
    })
}

/// The message a new one answers: the one its writer answered, if it is ours and in
/// this thread; else the thread's latest.
pub(crate) fn parent<'a>(
    in_reply_to: Option<&'a str>,
    references: &'a [String],
) -> Option<&'a str> {
    match in_reply_to {
        Some(answered) if references.iter().any(|r| r == answered) => Some(answered),
        _ => references.last().map(String::as_str),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_answers_what_its_writer_answered_if_it_is_in_the_thread() {
        let refs = vec!["a@relay".to_owned(), "b@relay".to_owned()];
        assert_eq!(parent(Some("a@relay"), &refs), Some("a@relay"));
        assert_eq!(parent(Some("elsewhere@x"), &refs), Some("b@relay"));
        assert_eq!(parent(None, &refs), Some("b@relay"));
        assert_eq!(parent(Some("a@relay"), &[]), None);
    }
}
