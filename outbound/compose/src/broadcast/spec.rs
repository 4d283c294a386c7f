//! What a broadcast says and to whom, as recorded (encrypted) with it and read back
//! by every instance that expands it.

use std::collections::BTreeMap;

use maskrelay_schema::members::Member;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Who a broadcast is for, before the rule on who may receive it
/// ([`crate::policy::may_receive`]) removes anyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Audience {
    /// Every member of the organisation.
    All,
    /// Members matching every condition given.
    Filter {
        /// The member's status is one of these (any, if empty).
        statuses: Vec<String>,
        /// For each attribute, the values of which the member's must be one (or,
        /// for a list, contain one).
        attributes: BTreeMap<String, Vec<String>>,
    },
    /// These members, by the directory's ids.
    Members(Vec<String>),
}

impl Audience {
    /// Whether `member` is in the audience.
    pub fn includes(&self, member: &Member) -> bool {
        match self {
            Audience::All => true,
            Audience::Members(ids) => ids.iter().any(|id| id == member.external_id.as_str()),
            Audience::Filter {
                statuses,
                attributes,
            } => {
                (statuses.is_empty() || statuses.iter().any(|s| s == member.status.as_str()))
                    && attributes.iter().all(|(name, wanted)| {
                        member
                            .attributes
                            .get(name)
                            .is_some_and(|value| matches(value, wanted))
                    })
            }
        }
    }
}

/// Whether an attribute's value equals one of `wanted`, or, for an array, holds an
/// element that does. Numbers and booleans compare as they are written in JSON.
fn matches(value: &Value, wanted: &[String]) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|item| scalar_matches(item, wanted)),
        other => scalar_matches(other, wanted),
    }
}

fn scalar_matches(value: &Value, wanted: &[String]) -> bool {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null | Value::Array(_) | Value::Object(_) => return false,
    };
    wanted.contains(&text)
}

/// A broadcast's audience and content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastSpec {
    /// Who it is for.
    pub audience: Audience,
    /// Subject line.
    pub subject: String,
    /// Plain text.
    pub text: String,
    /// HTML, if given.
    pub html: Option<String>,
    /// Its language (BCP 47), for `Content-Language` and the HTML's `lang`.
    pub language: Option<String>,
    /// Sent as a short teaser and a personal link to read it on the relay's web
    /// address (`"delivery": "link"`), rather than whole.
    #[serde(default)]
    pub by_link: bool,
}

impl BroadcastSpec {
    /// As recorded.
    ///
    /// # Errors
    /// Only if serialising fails, which it does not for these types.
    pub fn to_bytes(&self) -> serde_json::Result<Vec<u8>> {
        serde_json::to_vec(self)
    }

    /// As read back.
    ///
    /// # Errors
    /// If the record is not a spec this version wrote.
    pub fn from_bytes(bytes: &[u8]) -> serde_json::Result<Self> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use maskrelay_schema::members::MemberStatus;
    use maskrelay_schema::{ExternalId, MemberId, OrgId};
    use serde_json::json;

    fn member(status: MemberStatus, attributes: Value) -> Member {
        Member {
            id: MemberId::from("m"),
            org_id: OrgId::from("o"),
            external_id: ExternalId::from("ana"),
            status,
            email: Some("ana@example.net".into()),
            other_emails: Vec::new(),
            accepts_messages: true,
            name: Some("Ana".into()),
            attributes,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn filter(statuses: &[&str], attributes: &[(&str, &[&str])]) -> Audience {
        Audience::Filter {
            statuses: statuses.iter().map(|s| (*s).to_owned()).collect(),
            attributes: attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.iter().map(|s| (*s).to_owned()).collect()))
                .collect(),
        }
    }

    #[test]
    fn filters_combine_with_and_and_lists_match_any_element() {
        let ana = member(
            MemberStatus::Active,
            json!({"location": "London", "plan": ["Flex", "Desk"], "floor": 3}),
        );
        assert!(filter(&["active"], &[("location", &["London", "Paris"])]).includes(&ana));
        assert!(filter(&[], &[("plan", &["Fixed", "Flex"])]).includes(&ana));
        assert!(filter(&[], &[("floor", &["3"])]).includes(&ana));
        assert!(!filter(&["inactive"], &[]).includes(&ana));
        assert!(!filter(&[], &[("location", &["London"]), ("plan", &["Fixed"])]).includes(&ana));
        assert!(!filter(&[], &[("desk", &["1"])]).includes(&ana));
        assert!(Audience::Members(vec!["bob".into(), "ana".into()]).includes(&ana));
        assert!(!Audience::Members(vec!["bob".into()]).includes(&ana));
    }

    #[test]
    fn a_spec_reads_back_as_written() -> serde_json::Result<()> {
        let spec = BroadcastSpec {
            audience: filter(&["active"], &[("location", &["London"])]),
            subject: "Hello".into(),
            text: "Hi all".into(),
            html: None,
            language: Some("en-GB".into()),
            by_link: true,
        };
        assert_eq!(BroadcastSpec::from_bytes(&spec.to_bytes()?)?, spec);
        Ok(())
    }
}
