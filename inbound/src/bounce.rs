//! Reading a bounce: what failed, how (the enhanced status code), why (a reason), and
//! whether trying again could ever help (hard) or might (soft).
//!
//! RFC 3464 reports carry `Status:` and `Diagnostic-Code:` in a
//! `message/delivery-status` part, but many MTAs (qmail, Exim's older texts, Exchange,
//! webmail providers) write only prose. So the evidence is every status code and
//! every line of text the report holds, searched for the phrases MTAs use. The
//! reasons and the hard/soft split follow sisimai's, so the parser can be measured on
//! its corpus: only a recipient that does not exist (`userunknown`), a domain that
//! does not exist (`hostunknown`), a domain that accepts no mail (`notaccept`, a null
//! MX) and an address that has moved (`hasmoved`) are hard.

use mail_parser::{Message, MimeHeaders, PartType};

/// Whether retrying can succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The address is unusable: suppress it at once.
    Hard,
    /// Perhaps later or from elsewhere: count it.
    Soft,
}

/// Why a delivery bounced (sisimai's names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// No such recipient.
    UserUnknown,
    /// No such domain.
    HostUnknown,
    /// The domain accepts no mail (null MX).
    NotAccept,
    /// The recipient has moved and left no forwarding.
    HasMoved,
    /// The mailbox is full.
    MailboxFull,
    /// The mailbox is disabled or suspended.
    Suspend,
    /// The message is too big.
    MesgTooBig,
    /// Refused as spam.
    SpamDetected,
    /// Refused for a virus.
    VirusDetected,
    /// The sender failed SPF, DKIM or DMARC there.
    AuthFailure,
    /// The sending address has no reverse DNS, or a bad one.
    RequirePtr,
    /// Refused because of the sending host's reputation or a block list.
    Blocked,
    /// Refused by a policy of the receiving site.
    PolicyViolation,
    /// Refused by a filter of the recipient.
    Filtered,
    /// Too many connections or messages: rate limited.
    TooManyConn,
    /// The receiving system had a problem.
    SystemError,
    /// Could not connect, or the connection broke.
    NetworkError,
    /// Retried until the sending MTA gave up.
    Expired,
    /// The sender was refused.
    Rejected,
    /// Some other reason.
    Undefined,
}

impl Reason {
    /// The name recorded and reported.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::UserUnknown => "userunknown",
            Reason::HostUnknown => "hostunknown",
            Reason::NotAccept => "notaccept",
            Reason::HasMoved => "hasmoved",
            Reason::MailboxFull => "mailboxfull",
            Reason::Suspend => "suspend",
            Reason::MesgTooBig => "mesgtoobig",
            Reason::SpamDetected => "spamdetected",
            Reason::VirusDetected => "virusdetected",
            Reason::AuthFailure => "authfailure",
            Reason::RequirePtr => "requireptr",
            Reason::Blocked => "blocked",
            Reason::PolicyViolation => "policyviolation",
            Reason::Filtered => "filtered",
            Reason::TooManyConn => "toomanyconn",
            Reason::SystemError => "systemerror",
            Reason::NetworkError => "networkerror",
            Reason::Expired => "expired",
            Reason::Rejected => "rejected",
            Reason::Undefined => "undefined",
        }
    }

    /// Hard or soft, as sisimai counts them.
    pub fn severity(self) -> Severity {
        match self {
            Reason::UserUnknown | Reason::HostUnknown | Reason::NotAccept | Reason::HasMoved => {
                Severity::Hard
            }
            _ => Severity::Soft,
        }
    }
}

/// What a bounce says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    /// The enhanced status code, if the report gives one (`5.1.1`).
    pub status: Option<String>,
    /// Why.
    pub reason: Reason,
    /// Hard or soft.
    pub severity: Severity,
}

/// Phrases, lower case, and the reason each gives away; the first table that matches
/// wins, so the reasons that make a bounce hard come first.
const PHRASES: &[(Reason, &[&str])] = &[
    (
        Reason::NotAccept,
        &[
            "null mx",
            "does not accept mail",
            "not accept any mail",
            "domain does not accept",
            "nullmx",
        ],
    ),
    (
        Reason::HasMoved,
        &[
            "has moved",
            "address has changed",
            "no longer at this address",
            "is no longer valid",
            "moved to",
        ],
    ),
    (
        Reason::HostUnknown,
        &[
            "host unknown",
            "unknown host",
            "host not found",
            "domain not found",
            "no such domain",
            "domain does not exist",
            "domain name not found",
            "host or domain name not found",
            "unrouteable mail domain",
            "unrouteable domain",
            "name or service not known",
            "nxdomain",
            "unknown domain",
            "domain is not valid",
            "no mx record",
            "no valid mx",
            "illegal host/domain",
            "bad destination host",
            "invalid domain",
            "domain lookup failed",
        ],
    ),
    (
        Reason::MailboxFull,
        &[
            "mailbox full",
            "mailbox is full",
            "over quota",
            "overquota",
            "quota exceeded",
            "exceeded storage",
            "exceeds the storage",
            "insufficient storage",
            "mailbox size limit",
            "out of storage",
            "too much mail",
            "full mailbox",
            "mail box full",
            "has exceeded",
        ],
    ),
    (
        Reason::Suspend,
        &[
            "suspended",
            "disabled",
            "inactive",
            "deactivated",
            "account has been closed",
            "account is locked",
            "temporarily unavailable",
            "expired account",
        ],
    ),
    (
        Reason::UserUnknown,
        &[
            "user unknown",
            "unknown user",
            "no such user",
            "user not found",
            "user doesn't exist",
            "user does not exist",
            "unknown recipient",
            "no such recipient",
            "recipient not found",
            "recipient unknown",
            "recipient does not exist",
            "invalid recipient",
            "mailbox not found",
            "mailbox does not exist",
            "no such mailbox",
            "no mailbox",
            "invalid mailbox",
            "not a valid mailbox",
            "account does not exist",
            "no such account",
            "account unknown",
            "addressee unknown",
            "address unknown",
            "address does not exist",
            "unknown address",
            "unrouteable address",
            "no such address",
            "bad destination mailbox",
            "is not a valid user",
            "not our customer",
            "does not have an account",
            "email account that you tried to reach does not exist",
            "unknown local part",
            "undeliverable address",
            "unknown or illegal alias",
            "no valid recipients",
            "this user doesn't have",
            "doesn't have a yahoo",
            "user invalid",
            "destination address does not exist",
            "no such person",
        ],
    ),
    (
        Reason::MesgTooBig,
        &[
            "message too large",
            "message is too large",
            "message size exceeds",
            "too big",
            "exceeds size limit",
            "size limit",
            "message too big",
        ],
    ),
    (Reason::VirusDetected, &["virus", "malware", "infected"]),
    (
        Reason::SpamDetected,
        &[
            "spam",
            "junk mail",
            "unsolicited",
            "bulk mail",
            "content rejected",
        ],
    ),
    (
        Reason::AuthFailure,
        &[
            "spf",
            "dkim",
            "dmarc",
            "not authenticated",
            "authentication required",
            "unauthenticated",
        ],
    ),
    (
        Reason::RequirePtr,
        &[
            "reverse dns",
            "ptr record",
            "reverse lookup",
            "no ptr",
            "rdns",
            "reverse-dns",
            "cannot resolve your address",
            "cannot find your hostname",
        ],
    ),
    (
        Reason::Blocked,
        &[
            "blocked",
            "blacklist",
            "blocklist",
            "block list",
            "black list",
            "denylist",
            "rbl",
            "spamhaus",
            "reputation",
            "poor reputation",
            "listed at",
            "listed in",
        ],
    ),
    (
        Reason::TooManyConn,
        &[
            "too many connections",
            "too many messages",
            "rate limit",
            "rate-limit",
            "throttl",
            "try again later",
        ],
    ),
    (
        Reason::Filtered,
        &[
            "filtered",
            "filter",
            "rejected by recipient",
            "not authorized",
        ],
    ),
    (
        Reason::Expired,
        &[
            "delivery time expired",
            "retry time",
            "retry timeout",
            "message expired",
            "could not be delivered for",
            "was not delivered within",
            "delivery attempts will continue",
            "have been unable to deliver",
            "timeout",
            "timed out",
            "expired",
        ],
    ),
    (
        Reason::NetworkError,
        &[
            "connection refused",
            "connection reset",
            "connection timed out",
            "network error",
            "no route to host",
            "lost connection",
            "could not connect",
            "unable to connect",
        ],
    ),
    (
        Reason::PolicyViolation,
        &["policy", "not permitted", "prohibited", "not allowed"],
    ),
    (
        Reason::SystemError,
        &[
            "system error",
            "internal error",
            "server error",
            "local error",
            "mail loop",
            "loops back",
            "too many hops",
        ],
    ),
    (
        Reason::Rejected,
        &["sender address rejected", "sender rejected", "rejected"],
    ),
];

/// Phrases that place a refusal after the message data was sent.
const AFTER_DATA: &[&str] = &[
    "end of data",
    "in reply to data",
    "after data",
    "after end of",
];

/// What a status code alone says, when no phrase did.
fn by_status(status: &str) -> Option<Reason> {
    let mut parts = status.split('.');
    let class = parts.next()?;
    let subject = parts.next()?;
    let detail = parts.next()?;
    Some(match (class, subject, detail) {
        ("5", "1", "1") => Reason::UserUnknown,
        ("5", "1", "2") => Reason::HostUnknown,
        ("5", "1", "10") => Reason::NotAccept,
        ("5", "1", "6") => Reason::HasMoved,
        (_, "2", "2") => Reason::MailboxFull,
        (_, "2", "1") => Reason::Suspend,
        (_, "3", "4") | (_, "2", "3") => Reason::MesgTooBig,
        (_, "4", "7") => Reason::Expired,
        (_, "4", "1") | (_, "4", "2") => Reason::NetworkError,
        (_, "4", "4") => Reason::HostUnknown,
        (_, "7", "25") => Reason::RequirePtr,
        (_, "7", "1") => Reason::Rejected,
        (_, "7", "26") | (_, "7", "23") | (_, "7", "27") => Reason::AuthFailure,
        (_, "7", _) => Reason::PolicyViolation,
        (_, "3", _) => Reason::SystemError,
        _ => return None,
    })
}

/// Reads a bounce. `None` if it holds no sign of a failed delivery at all.
pub fn parse(message: &Message<'_>) -> Option<Bounce> {
    let evidence = Evidence::of(message);
    if evidence.text.is_empty() && evidence.status.is_none() {
        return None;
    }
    let text = evidence.text.to_lowercase();
    let by_phrase = PHRASES
        .iter()
        .find(|(_, phrases)| phrases.iter().any(|p| text.contains(p)))
        .map(|(reason, _)| *reason);
    let by_code = evidence.status.as_deref().and_then(by_status);
    // A code that names a hard reason is the MTA's own verdict; otherwise the prose
    // is more precise than a generic 5.0.0 or 5.7.1.
    let mut reason = match (by_code, by_phrase) {
        (_, Some(phrase)) if phrase.severity() == Severity::Hard => phrase,
        (Some(code), _) if code.severity() == Severity::Hard => code,
        (_, Some(phrase)) => phrase,
        (Some(code), None) => code,
        (None, None) => Reason::Undefined,
    };
    // A recipient refused only after the message was sent (at the end of DATA) was
    // accepted as an address: what refused it was a filter looking at the content.
    if reason == Reason::UserUnknown && AFTER_DATA.iter().any(|p| text.contains(p)) {
        reason = Reason::Filtered;
    }
    Some(Bounce {
        status: evidence.status,
        reason,
        severity: reason.severity(),
    })
}

/// The parts of a report that explain the failure.
struct Evidence {
    status: Option<String>,
    text: String,
}

impl Evidence {
    fn of(message: &Message<'_>) -> Self {
        let mut evidence = Self {
            status: None,
            text: String::new(),
        };
        for part in &message.parts {
            let subtype = part
                .content_type()
                .and_then(|ct| ct.subtype())
                .unwrap_or_default()
                .to_ascii_lowercase();
            match &part.body {
                // The returned message is what failed, not why: skip it.
                PartType::Message(_) => {}
                _ if subtype == "rfc822-headers" || subtype == "rfc822" => {}
                PartType::Text(t) | PartType::Html(t) => evidence.read(t),
                PartType::Binary(b) | PartType::InlineBinary(b) => {
                    if subtype.contains("delivery-status") || subtype.contains("feedback") {
                        evidence.read(&String::from_utf8_lossy(b));
                    }
                }
                PartType::Multipart(_) => {}
            }
        }
        if evidence.status.is_none() {
            evidence.status = first_code(&evidence.text);
        }
        evidence
    }

    /// Takes `Status:` and `Diagnostic-Code:` fields, and the text up to the
    /// returned message's headers (which quote the original, not the failure).
    fn read(&mut self, text: &str) {
        for line in text.lines() {
            let lower = line.trim_start().to_ascii_lowercase();
            if lower.starts_with("status:") && self.status.is_none() {
                self.status = first_code(line);
            }
            if lower.starts_with("received:") || lower.starts_with("message-id:") {
                break;
            }
            self.text.push_str(line);
            self.text.push('\n');
        }
    }
}

/// The first enhanced status code (`class.subject.detail`, class 2, 4 or 5) in text.
fn first_code(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if !matches!(b, b'2' | b'4' | b'5') || bytes.get(i + 1) != Some(&b'.') {
            continue;
        }
        if i > 0 && (bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b'.') {
            continue;
        }
        let rest = &text[i + 2..];
        let subject: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if subject.is_empty() || subject.len() > 3 {
            continue;
        }
        let after = &rest[subject.len()..];
        let Some(after) = after.strip_prefix('.') else {
            continue;
        };
        let detail: String = after.chars().take_while(char::is_ascii_digit).collect();
        if detail.is_empty() || detail.len() > 3 {
            continue;
        }
        let end = after[detail.len()..].chars().next();
        if end.is_some_and(|c| c.is_ascii_digit() || c == '.') {
            continue;
        }
        return Some(format!("{}.{subject}.{detail}", b as char));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bounce(raw: &str) -> Option<Bounce> {
        mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .and_then(|m| parse(&m))
    }

    #[test]
    fn rfc3464_status_and_diagnostic_are_read() {
        let raw = concat!(
            "From: MAILER-DAEMON@mx.example\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n",
            "--b\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n",
            "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n\r\n",
            "Final-Recipient: rfc822; x@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n",
            "Diagnostic-Code: smtp; 550 5.1.1 <x@example.org>: Recipient address rejected\r\n",
            "--b--\r\n"
        );
        assert_eq!(
            bounce(raw),
            Some(Bounce {
                status: Some("5.1.1".into()),
                reason: Reason::UserUnknown,
                severity: Severity::Hard,
            })
        );
    }

    #[test]
    fn prose_bounces_are_read_by_their_phrases() {
        let full = "From: postmaster@x\r\nSubject: failure notice\r\n\r\nSorry. <a@b.example>:\r\n552 mailbox is full\r\n";
        let b = bounce(full);
        assert_eq!(b.as_ref().map(|b| b.reason), Some(Reason::MailboxFull));
        assert_eq!(b.map(|b| b.severity), Some(Severity::Soft));
        let nohost =
            "From: postmaster@x\r\n\r\n<a@nowhere.example>: Host or domain name not found\r\n";
        assert_eq!(bounce(nohost).map(|b| b.severity), Some(Severity::Hard));
    }

    #[test]
    fn status_codes_are_found_in_text() {
        assert_eq!(first_code("550 5.1.1 <x>"), Some("5.1.1".into()));
        assert_eq!(first_code("version 1.5.1.1 and 4.7.2611"), None);
        assert_eq!(
            first_code("said: 451 4.7.1 try later"),
            Some("4.7.1".into())
        );
    }
}
