//! The one-click links in a message's footer: what each does, written into a signed
//! token here and read back here, and nowhere else.
//!
//! A token is the action's payload and a keyed MAC of it (see
//! `maskrelay_schema::crypto`), so a link only ever does what the footer it was
//! printed in offered, for the member it was sent to. The payload is the action's
//! name and its ids joined by dots (`block.<org>.<reader>.<writer>`): links already
//! in members' mailboxes keep working, so its form does not change.

use maskrelay_schema::{BroadcastId, CategoryId, Crypto, MemberId, OrgId};

/// What a footer link does when its reader follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkAction {
    /// The reader receives nothing more from the writer.
    Block {
        /// The organisation both belong to.
        org: OrgId,
        /// The member the link was sent to.
        reader: MemberId,
        /// The member they stop hearing from.
        writer: MemberId,
    },
    /// The reader receives no more member messages at all.
    Stop {
        /// The organisation the reader belongs to.
        org: OrgId,
        /// The member the link was sent to.
        reader: MemberId,
    },
    /// The reader reads a broadcast sent by link (`"delivery": "link"`) on the relay's
    /// web address.
    Read {
        /// The organisation that sent it.
        org: OrgId,
        /// The member the link was sent to.
        reader: MemberId,
        /// The broadcast.
        broadcast: BroadcastId,
    },
    /// The reader receives no more broadcasts of one category (`List-Unsubscribe`).
    Unsubscribe {
        /// The organisation the reader belongs to.
        org: OrgId,
        /// The member the link was sent to.
        reader: MemberId,
        /// The category they leave.
        category: CategoryId,
    },
}

/// Separates an action's name and ids in its payload; ids never hold one.
const SEPARATOR: char = '.';

impl LinkAction {
    /// The signed token that carries this action in a link.
    pub fn token(&self, crypto: &Crypto) -> String {
        crypto.sign_link(&self.payload())
    }

    /// The action a token carries, if the token was made by [`LinkAction::token`]
    /// with this key and not changed since.
    pub fn from_token(crypto: &Crypto, token: &str) -> Option<Self> {
        Self::from_payload(crypto.verify_link(token)?)
    }

    fn payload(&self) -> String {
        let parts: Vec<&str> = match self {
            LinkAction::Block {
                org,
                reader,
                writer,
            } => vec!["block", org.as_str(), reader.as_str(), writer.as_str()],
            LinkAction::Stop { org, reader } => vec!["stop", org.as_str(), reader.as_str()],
            LinkAction::Read {
                org,
                reader,
                broadcast,
            } => vec!["read", org.as_str(), reader.as_str(), broadcast.as_str()],
            LinkAction::Unsubscribe {
                org,
                reader,
                category,
            } => vec![
                "unsubscribe",
                org.as_str(),
                reader.as_str(),
                category.as_str(),
            ],
        };
        parts.join(&SEPARATOR.to_string())
    }

    fn from_payload(payload: &str) -> Option<Self> {
        let parts: Vec<&str> = payload.split(SEPARATOR).collect();
        match parts.as_slice() {
            ["block", org, reader, writer] => Some(LinkAction::Block {
                org: OrgId::from(*org),
                reader: MemberId::from(*reader),
                writer: MemberId::from(*writer),
            }),
            ["stop", org, reader] => Some(LinkAction::Stop {
                org: OrgId::from(*org),
                reader: MemberId::from(*reader),
            }),
            ["read", org, reader, broadcast] => Some(LinkAction::Read {
                org: OrgId::from(*org),
                reader: MemberId::from(*reader),
                broadcast: BroadcastId::from(*broadcast),
            }),
            ["unsubscribe", org, reader, category] => Some(LinkAction::Unsubscribe {
                org: OrgId::from(*org),
                reader: MemberId::from(*reader),
                category: CategoryId::from(*category),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maskrelay_schema::SecretKey;

    fn crypto() -> Crypto {
        match SecretKey::from_hex(&"07".repeat(32)) {
            Ok(key) => Crypto::new(&key),
            Err(e) => panic!("{e}"),
        }
    }

    fn actions() -> [LinkAction; 4] {
        [
            LinkAction::Block {
                org: OrgId::generate(),
                reader: MemberId::generate(),
                writer: MemberId::generate(),
            },
            LinkAction::Stop {
                org: OrgId::generate(),
                reader: MemberId::generate(),
            },
            LinkAction::Unsubscribe {
                org: OrgId::generate(),
                reader: MemberId::generate(),
                category: CategoryId::from("news"),
            },
            LinkAction::Read {
                org: OrgId::generate(),
                reader: MemberId::generate(),
                broadcast: BroadcastId::generate(),
            },
        ]
    }

    #[test]
    fn every_action_reads_back_from_its_token() {
        let c = crypto();
        for action in actions() {
            let token = action.token(&c);
            assert_eq!(LinkAction::from_token(&c, &token), Some(action));
        }
    }

    #[test]
    fn a_changed_token_does_nothing() {
        let c = crypto();
        for action in actions() {
            let token = action.token(&c);
            let (payload, mac) = token.rsplit_once('~').unwrap_or_default();
            // Another member's id in an otherwise valid link.
            let (LinkAction::Block { reader, .. }
            | LinkAction::Stop { reader, .. }
            | LinkAction::Unsubscribe { reader, .. }
            | LinkAction::Read { reader, .. }) = &action;
            let other = payload.replacen(reader.as_str(), "0190f3a2-7c1e", 1);
            assert_eq!(LinkAction::from_token(&c, &format!("{other}~{mac}")), None);
            // Another action for the same members.
            let swapped = payload.replacen(&payload[..payload.find('.').unwrap_or(0)], "stop", 1);
            if swapped != payload {
                assert_eq!(
                    LinkAction::from_token(&c, &format!("{swapped}~{mac}")),
                    None
                );
            }
            // A damaged MAC, or none.
            let last = if mac.ends_with('0') { '1' } else { '0' };
            let flipped = format!("{payload}~{}{last}", &mac[..mac.len() - 1]);
            assert_eq!(LinkAction::from_token(&c, &flipped), None);
            assert_eq!(LinkAction::from_token(&c, payload), None);
            // Another gateway's key.
            let elsewhere = match SecretKey::from_hex(&"08".repeat(32)) {
                Ok(key) => Crypto::new(&key),
                Err(e) => panic!("{e}"),
            };
            assert_eq!(LinkAction::from_token(&elsewhere, &token), None);
        }
    }

    #[test]
    fn links_sent_before_this_type_keep_working() {
        let c = crypto();
        let token = c.sign_link("block.o1.m2.m3");
        assert_eq!(
            LinkAction::from_token(&c, &token),
            Some(LinkAction::Block {
                org: OrgId::from("o1"),
                reader: MemberId::from("m2"),
                writer: MemberId::from("m3"),
            })
        );
        let unknown = c.sign_link("unsubscribe.o1.m2");
        assert_eq!(LinkAction::from_token(&c, &unknown), None);
    }
}
