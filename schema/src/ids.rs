//! Identifiers, one type per kind: an organisation's id cannot be passed where a
//! member's is wanted, and a member's id in this store cannot be mistaken for the
//! directory's own id for that member. All are text in the database (sqlx's `Any`
//! driver carries no UUID type); the ones we make are time-ordered UUIDs (v7).

use crate::sql::text_newtype;

/// Declares an id type: text inside, compared and hashed as text, shown as itself,
/// bound into SQL as text.
macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl From<String> for $name {
            fn from(id: String) -> Self {
                Self(id)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                Self(id.to_owned())
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        text_newtype!($name);
    };
}

/// Declares that we make ids of this kind: a new time-ordered one each time.
macro_rules! made_here {
    ($($name:ident),*) => {
        $(impl $name {
            /// A new id, ordered by creation time.
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }
        })*
    };
}

id_type!(
    /// An organisation.
    OrgId
);
id_type!(
    /// A member, as this store knows them; never shown to the directory, which has
    /// its own ([`ExternalId`]).
    MemberId
);
id_type!(
    /// The directory's own id for one of its members: what the API speaks.
    ExternalId
);
id_type!(
    /// A conversation between two members.
    ConversationId
);
id_type!(
    /// A message relayed in a conversation.
    MessageId
);
id_type!(
    /// The delivery of a message to its reader.
    DeliveryId
);

id_type!(
    /// A broadcast: one message from the organisation to many members.
    BroadcastId
);
id_type!(
    /// A category of broadcasts (`news`, `events`), named by the organisation;
    /// members unsubscribe from one at a time.
    CategoryId
);

made_here!(
    OrgId,
    MemberId,
    ConversationId,
    MessageId,
    DeliveryId,
    BroadcastId
);

/// Who writes to whom: the two members of one message, named so that they cannot be
/// passed the wrong way round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Direction<'a> {
    /// The member writing.
    pub writer: &'a MemberId,
    /// The member reading.
    pub reader: &'a MemberId,
}

impl<'a> Direction<'a> {
    /// The two members in the order a conversation stores them, whoever writes.
    pub(crate) fn ordered(self) -> (&'a MemberId, &'a MemberId) {
        if self.writer <= self.reader {
            (self.writer, self.reader)
        } else {
            (self.reader, self.writer)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation_time() {
        let a = MessageId::generate();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(MessageId::generate() > a);
    }

    #[test]
    fn a_conversation_orders_its_members_the_same_either_way() {
        let (a, b) = (MemberId::from("a"), MemberId::from("b"));
        let there = Direction {
            writer: &a,
            reader: &b,
        };
        let back = Direction {
            writer: &b,
            reader: &a,
        };
        assert_eq!(there.ordered(), back.ordered());
        assert_eq!(there.ordered(), (&a, &b));
    }
}
