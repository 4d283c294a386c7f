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

mod evidence;
mod reason;

use mail_parser::Message;

use evidence::Evidence;
pub use maskrelay_schema::BounceSeverity;
pub use reason::Reason;
use reason::{AFTER_DATA, AT_RCPT, NO_ACCOUNT, PHRASES, by_status};

/// What a bounce says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounce {
    /// The enhanced status code, if the report gives one (`5.1.1`).
    pub status: Option<String>,
    /// Why.
    pub reason: Reason,
    /// Hard or soft.
    pub severity: BounceSeverity,
}

/// Reads a bounce: the verdict on its first recipient (a report to a VERP address
/// concerns one delivery, so one recipient). `None` if it holds no sign of a failed
/// delivery at all.
pub fn parse(message: &Message<'_>) -> Option<Bounce> {
    parse_all(message).into_iter().next()
}

/// Reads a bounce: one verdict per recipient it reports on (one in all when it
/// does not say recipient by recipient). Empty if it holds no sign of a failed
/// delivery at all.
pub fn parse_all(message: &Message<'_>) -> Vec<Bounce> {
    let evidence = Evidence::of(message);
    if evidence.text.is_empty() && evidence.status.is_none() {
        return Vec::new();
    }
    let text = evidence.text.to_lowercase();
    if evidence.recipients.is_empty() {
        return vec![verdict(evidence.status, "", &text)];
    }
    evidence
        .recipients
        .into_iter()
        .map(|block| {
            let status = block.status.or_else(|| evidence.status.clone());
            verdict(status, &block.text.to_lowercase(), &text)
        })
        .collect()
}

/// The verdict from a status code and two texts, lower case: what the report says
/// of this recipient (`own`) and all it says (`all`).
fn verdict(status: Option<String>, own: &str, all: &str) -> Bounce {
    let phrase_in = |text: &str| {
        PHRASES
            .iter()
            .find(|(_, phrases)| phrases.iter().any(|p| text.contains(p)))
            .map(|(reason, _)| *reason)
    };
    let by_phrase = phrase_in(own).or_else(|| phrase_in(all));
    let by_code = status.as_deref().and_then(by_status);
    // A code that names a hard reason is the MTA's own verdict; otherwise the prose
    // is more precise than a generic 5.0.0 or 5.7.1.
    let mut reason = match (by_code, by_phrase) {
        (_, Some(phrase)) if phrase.severity() == BounceSeverity::Hard => phrase,
        (Some(code), _) if code.severity() == BounceSeverity::Hard => code,
        (_, Some(phrase)) => phrase,
        (Some(code), None) => code,
        (None, None) => Reason::Undefined,
    };
    // A recipient refused only after the message was sent (at the end of DATA) was
    // accepted as an address: what refused it was a filter looking at the content.
    // An explicit 5.1.1 ("bad destination mailbox address") is the MTA's own word.
    let after_data = AFTER_DATA.iter().any(|p| all.contains(p))
        && !AT_RCPT.iter().any(|p| all.contains(p))
        && !NO_ACCOUNT.iter().any(|p| all.contains(p));
    if reason == Reason::UserUnknown && after_data && status.as_deref() != Some("5.1.1") {
        reason = Reason::Filtered;
    }
    Bounce {
        status,
        reason,
        severity: reason.severity(),
    }
}

#[cfg(test)]
mod tests {
    use super::evidence::first_code;
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
                severity: BounceSeverity::Hard,
            })
        );
    }

    #[test]
    fn prose_bounces_are_read_by_their_phrases() {
        let full = "From: postmaster@x\r\nSubject: failure notice\r\n\r\nSorry. <a@b.example>:\r\n552 mailbox is full\r\n";
        let b = bounce(full);
        assert_eq!(b.as_ref().map(|b| b.reason), Some(Reason::MailboxFull));
        assert_eq!(b.map(|b| b.severity), Some(BounceSeverity::Soft));
        let nohost =
            "From: postmaster@x\r\n\r\n<a@nowhere.example>: Host or domain name not found\r\n";
        assert_eq!(
            bounce(nohost).map(|b| b.severity),
            Some(BounceSeverity::Hard)
        );
    }

    fn all(raw: &str) -> Vec<(Reason, BounceSeverity)> {
        mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .map(|m| parse_all(&m))
            .unwrap_or_default()
            .into_iter()
            .map(|b| (b.reason, b.severity))
            .collect()
    }

    #[test]
    fn each_recipient_gets_its_own_verdict() {
        // AOL leaves out the blank line before the first recipient's block.
        let dsn = concat!(
            "From: MAILER-DAEMON@mx.example\r\nContent-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n",
            "--b\r\nContent-Type: text/plain\r\n\r\nThe mailbox is full, or the user is unknown.\r\n",
            "--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example\r\n",
            "Final-Recipient: rfc822; full@example.org\r\nAction: failed\r\nStatus: 5.2.2\r\n",
            "Diagnostic-Code: smtp; 550 5.2.2 Mailbox Full\r\n\r\n",
            "Final-Recipient: rfc822; gone@example.org\r\nAction: failed\r\nStatus: 5.1.1\r\n",
            "Diagnostic-Code: smtp; 550 5.1.1 User Unknown\r\n",
            "--b--\r\n"
        );
        assert_eq!(
            all(dsn),
            [
                (Reason::MailboxFull, BounceSeverity::Soft),
                (Reason::UserUnknown, BounceSeverity::Hard)
            ]
        );
        let prose = concat!(
            "From: MAILER-DAEMON@mx.example\r\nSubject: failure\r\n\r\n",
            "\"one@example.org\":\r\nSMTP error after RCPT command:\r\n550 5.1.1 User Unknown\r\n",
            "\"two@example.org\":\r\nSMTP error after RCPT command:\r\n552 5.2.2 Mailbox Full\r\n"
        );
        assert_eq!(
            all(prose),
            [
                (Reason::UserUnknown, BounceSeverity::Hard),
                (Reason::MailboxFull, BounceSeverity::Soft)
            ]
        );
    }

    #[test]
    fn user_unknown_after_data_is_a_filter_unless_the_account_is_said_not_to_exist() {
        let transcript = |reply: &str| {
            format!(
                "From: MAILER-DAEMON@mx.example\r\nSubject: Returned mail\r\n\r\n\
                 ... while talking to mx.example.org.:\r\n>>> DATA\r\n<<< {reply}\r\n"
            )
        };
        assert_eq!(
            all(&transcript("550 Unknown user kijitora@example.org")),
            [(Reason::Filtered, BounceSeverity::Soft)]
        );
        assert_eq!(
            all(&transcript(
                "554 This user doesn't have a yahoo.com account"
            )),
            [(Reason::UserUnknown, BounceSeverity::Hard)]
        );
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
