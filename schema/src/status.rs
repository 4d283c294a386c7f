//! Where a delivery stands: one type from the attempt through the stored row to the
//! API and the queue's command line, stored under the same name it is shown by.

use crate::sql::text_enum;

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    /// Waiting for its first attempt.
    Queued,
    /// Failed temporarily; waiting for its next attempt.
    Deferred,
    /// Accepted by the next server.
    Sent,
    /// Came back as a bounce.
    Bounced,
    /// Failed for good (a permanent refusal, or retried for too long).
    Failed,
    /// Not sent: the reader's address bounced for good meanwhile.
    Suppressed,
    /// Stopped by an operator or by erasure of a member.
    Cancelled,
}

impl DeliveryStatus {
    /// Every status, in the order a delivery can pass through them.
    pub const ALL: [DeliveryStatus; 7] = [
        DeliveryStatus::Queued,
        DeliveryStatus::Deferred,
        DeliveryStatus::Sent,
        DeliveryStatus::Bounced,
        DeliveryStatus::Failed,
        DeliveryStatus::Suppressed,
        DeliveryStatus::Cancelled,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Queued => "queued",
            DeliveryStatus::Deferred => "deferred",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Bounced => "bounced",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Suppressed => "suppressed",
            DeliveryStatus::Cancelled => "cancelled",
        }
    }

    /// Parses [`DeliveryStatus::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

text_enum!(DeliveryStatus);

/// What a bounce says of the reader's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BounceSeverity {
    /// Unusable for good (no such user, domain gone): one suppresses the address.
    Hard,
    /// Unusable for now (mailbox full, over quota): several in a week suppress it.
    Soft,
}

impl BounceSeverity {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            BounceSeverity::Hard => "hard",
            BounceSeverity::Soft => "soft",
        }
    }

    /// Parses [`BounceSeverity::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [BounceSeverity::Hard, BounceSeverity::Soft]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

text_enum!(BounceSeverity);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_by_its_name() {
        for status in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(DeliveryStatus::parse("delivered"), None);
        for severity in [BounceSeverity::Hard, BounceSeverity::Soft] {
            assert_eq!(BounceSeverity::parse(severity.as_str()), Some(severity));
        }
    }
}
