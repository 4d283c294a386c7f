//! Telling a member's own reply from mail a machine wrote on their behalf.
//!
//! Vacation notices and other auto-replies often carry phone numbers and other
//! addresses, and delivery reports quote the failed message with its envelope, so
//! neither is relayed as if a member had written it. RFC 3834 (`Auto-Submitted`), the
//! headers common responders add instead, `Precedence`, the null reverse path of
//! RFC 5321 §4.5.5 and the report types of RFC 6522 are what give them away.

use mail_parser::{Message, MimeHeaders};

use crate::read::headers::{first_address, header_text};

/// What kind of message arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Written by the member.
    Personal,
    /// A vacation notice or other automatic answer.
    AutoReply,
    /// A delivery status notification or read receipt.
    DeliveryReport,
    /// A spam complaint or other feedback report, in RFC 5965's format or a
    /// provider's own (Outlook.com's, SpamCop's...).
    Complaint,
}

/// Subject prefixes vacation responders use when they set no header.
const AUTO_REPLY_SUBJECTS: &[&str] = &[
    "auto:",
    "automatic reply:",
    "auto reply:",
    "auto-reply:",
    "autoreply:",
    "out of office:",
    "out of office reply:",
    "abwesenheitsnotiz:",
    "automatische antwort:",
    "réponse automatique:",
    "respuesta automática:",
    "risposta automatica:",
];

/// Subject prefixes of the delivery reports MTAs write without RFC 3464's format.
const BOUNCE_SUBJECTS: &[&str] = &[
    "mail delivery failed",
    "failure notice",
    "delivery status notification",
    "undelivered mail returned to sender",
    "undeliverable:",
    "undeliverable mail",
    "undeliverable message",
    "returned mail:",
    "delivery failure",
    "mail system error - returned mail",
    "message delivery has failed",
    "mail could not be delivered",
    "delayed mail (still being retried)",
];

/// Addresses and domains that send only feedback reports (Outlook.com's JMRP,
/// SpamCop, AOL's older loop), whatever their format.
const FEEDBACK_SENDERS: &[&str] = &["staff@hotmail.com", "scomp@aol.net"];
const FEEDBACK_DOMAINS: &[&str] = &["reports.spamcop.net", "fbl.hotmail.com"];

/// Local parts and subjects of feedback reports outside RFC 5965; either counts only
/// with the reported message attached.
const FEEDBACK_LOCALS: &[&str] = &[
    "fbl",
    "feedbackloop",
    "feedback-loop",
    "feedback",
    "complaints",
    "abuse",
    "spam-report",
];
const FEEDBACK_SUBJECTS: &[&str] = &[
    "complaint about message from",
    "abuse report",
    "spam report",
    "spam complaint",
    "feedback loop",
    "fbl report",
    "email feedback report",
    "[spamcop",
];

/// Local parts only mail systems write from.
const MAIL_SYSTEM_SENDERS: &[&str] =
    &["mailer-daemon", "mailerdaemon", "postmaster", "post_master"];

/// Classifies a parsed message; `null_sender` is true for `MAIL FROM:<>`.
pub fn classify(message: &Message<'_>, null_sender: bool) -> Kind {
    if is_feedback_report(message) || looks_like_complaint(message) {
        return Kind::Complaint;
    }
    if is_report(message) || looks_like_bounce(message) {
        return Kind::DeliveryReport;
    }
    if null_sender || is_auto_reply(message) {
        // Only reports and automatic answers may use the null reverse path.
        return Kind::AutoReply;
    }
    Kind::Personal
}

fn is_report(message: &Message<'_>) -> bool {
    let Some(ct) = message.root_part().content_type() else {
        return false;
    };
    let subtype = ct.subtype().unwrap_or_default();
    (ct.ctype().eq_ignore_ascii_case("multipart") && subtype.eq_ignore_ascii_case("report"))
        || (ct.ctype().eq_ignore_ascii_case("message")
            && [
                "delivery-status",
                "disposition-notification",
                "feedback-report",
            ]
            .iter()
            .any(|s| subtype.eq_ignore_ascii_case(s)))
}

/// RFC 5965: `multipart/report; report-type=feedback-report`.
fn is_feedback_report(message: &Message<'_>) -> bool {
    message.root_part().content_type().is_some_and(|ct| {
        ct.ctype().eq_ignore_ascii_case("multipart")
            && ct
                .subtype()
                .is_some_and(|s| s.eq_ignore_ascii_case("report"))
            && ct
                .attribute("report-type")
                .is_some_and(|t| t.eq_ignore_ascii_case("feedback-report"))
    })
}

/// A provider's complaint in its own format: from a feedback-loop address, or from
/// a feedback-like sender or with a report-like subject, with the original attached.
fn looks_like_complaint(message: &Message<'_>) -> bool {
    let from = first_address(message)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let (local, domain) = from.rsplit_once('@').unwrap_or_default();
    if FEEDBACK_SENDERS.contains(&from.as_str()) || FEEDBACK_DOMAINS.contains(&domain) {
        return true;
    }
    let subject = message.subject().unwrap_or_default().trim().to_lowercase();
    let attached_original = message.parts.iter().any(|p| {
        matches!(p.body, mail_parser::PartType::Message(_))
            || p.content_type().is_some_and(|ct| {
                ct.subtype()
                    .is_some_and(|s| s.eq_ignore_ascii_case("rfc822-headers"))
            })
    });
    attached_original
        && (FEEDBACK_LOCALS.contains(&local)
            || FEEDBACK_SUBJECTS.iter().any(|s| subject.contains(s)))
}

fn is_auto_reply(message: &Message<'_>) -> bool {
    let header = |name: &str| header_text(message, name);
    if header("auto-submitted").is_some_and(|v| !v.trim().eq_ignore_ascii_case("no")) {
        return true;
    }
    if [
        "x-autoreply",
        "x-autorespond",
        "x-autogenerated",
        "x-auto-response",
    ]
    .iter()
    .any(|h| header(h).is_some())
    {
        return true;
    }
    if header("precedence").is_some_and(|v| {
        let v = v.trim().to_ascii_lowercase();
        v == "bulk" || v == "junk" || v == "list" || v == "auto_reply"
    }) {
        return true;
    }
    let subject = message.subject().unwrap_or_default().trim().to_lowercase();
    AUTO_REPLY_SUBJECTS.iter().any(|p| subject.starts_with(p))
}

fn looks_like_bounce(message: &Message<'_>) -> bool {
    let from = first_address(message)
        .unwrap_or_default()
        .to_ascii_lowercase();
    let local = from.split('@').next().unwrap_or_default();
    let subject = message.subject().unwrap_or_default().trim().to_lowercase();
    MAIL_SYSTEM_SENDERS.contains(&local)
        || header_text(message, "x-failed-recipients").is_some()
        || BOUNCE_SUBJECTS.iter().any(|p| subject.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(raw: &str, null_sender: bool) -> Kind {
        mail_parser::MessageParser::default()
            .parse(raw.as_bytes())
            .map_or(Kind::Personal, |m| classify(&m, null_sender))
    }

    #[test]
    fn a_plain_reply_is_personal() {
        assert_eq!(
            kind(
                "From: b@x.org\r\nSubject: Re: Auto parts\r\n\r\nhi\r\n",
                false
            ),
            Kind::Personal
        );
        assert_eq!(
            kind("From: b@x.org\r\nAuto-Submitted: no\r\n\r\nhi\r\n", false),
            Kind::Personal
        );
    }

    #[test]
    fn auto_reply_headers_and_subjects_are_recognised() {
        for raw in [
            "Auto-Submitted: auto-replied\r\n\r\nx",
            "X-Autoreply: yes\r\n\r\nx",
            "X-Autorespond: yes\r\n\r\nx",
            "Precedence: bulk\r\n\r\nx",
            "Precedence: JUNK\r\n\r\nx",
            "Subject: Automatic reply: Hello\r\n\r\nx",
            "Subject: Out of Office: back Monday\r\n\r\nx",
        ] {
            assert_eq!(kind(raw, false), Kind::AutoReply, "{raw}");
        }
    }

    #[test]
    fn reports_and_null_senders_are_recognised() {
        let dsn = "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n";
        assert_eq!(kind(dsn, false), Kind::DeliveryReport);
        let bounce = "From: MAILER-DAEMON@mx.example\r\nSubject: Hi\r\n\r\nx";
        assert_eq!(kind(bounce, false), Kind::DeliveryReport);
        let bounce = "From: mx@mx.example\r\nSubject: failure notice\r\n\r\nx";
        assert_eq!(kind(bounce, false), Kind::DeliveryReport);
        assert_eq!(kind("From: b@x.org\r\n\r\nx", true), Kind::AutoReply);
    }

    #[test]
    fn complaints_in_any_format_are_recognised() {
        let arf = "Content-Type: multipart/report; report-type=feedback-report; boundary=b\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n";
        assert_eq!(kind(arf, false), Kind::Complaint);
        let jmrp =
            "From: staff@hotmail.com\r\nSubject: complaint about message from 192.0.2.1\r\n\r\nx";
        assert_eq!(kind(jmrp, false), Kind::Complaint);
        let attached = |from: &str, subject: &str| {
            format!(
                "From: {from}\r\nSubject: {subject}\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n\
                 --b\r\nContent-Type: text/plain\r\n\r\nreport\r\n\
                 --b\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@relay.test\r\n\r\nspam\r\n--b--\r\n"
            )
        };
        assert_eq!(
            kind(&attached("fbl@isp.example", "Report"), false),
            Kind::Complaint
        );
        assert_eq!(
            kind(
                &attached("noc@isp.example", "Abuse report for 192.0.2.1"),
                false
            ),
            Kind::Complaint
        );
        // A member forwarding a message is still a member.
        assert_eq!(
            kind(&attached("bob@x.org", "Fwd: booking"), false),
            Kind::Personal
        );
        assert_eq!(
            kind(
                "From: b@x.org\r\nSubject: abuse report\r\n\r\nno attachment",
                false
            ),
            Kind::Personal
        );
    }
}
