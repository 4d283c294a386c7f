//! Reading what the smarthost received.

use mail_parser::{Message, MessageParser};

/// Parses delivered bytes.
///
/// # Errors
/// If the bytes are not a message.
pub fn parse(raw: &[u8]) -> anyhow::Result<Message<'_>> {
    MessageParser::default()
        .parse(raw)
        .ok_or_else(|| anyhow::anyhow!("delivered bytes are not a message"))
}

/// The address in `From:`.
pub fn from_address(m: &Message<'_>) -> String {
    m.from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .unwrap_or_default()
        .to_owned()
}

/// The display name in `From:`.
pub fn from_name(m: &Message<'_>) -> String {
    m.from()
        .and_then(|a| a.first())
        .and_then(|a| a.name())
        .unwrap_or_default()
        .to_owned()
}

/// The ids in a header such as `References`, without angle brackets.
pub fn ids(value: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    match value {
        mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
        mail_parser::HeaderValue::TextList(l) => l.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// Asserts that `needle` occurs nowhere in `raw`, whatever its case.
///
/// # Errors
/// Naming where it was found.
pub fn assert_absent(raw: &[u8], needle: &str) -> anyhow::Result<()> {
    let haystack = String::from_utf8_lossy(raw).to_lowercase();
    match haystack.find(&needle.to_lowercase()) {
        Some(at) => anyhow::bail!(
            "{needle} leaked at byte {at}: …{}…",
            &haystack[at.saturating_sub(80)..(at + needle.len() + 20).min(haystack.len())]
        ),
        None => Ok(()),
    }
}

/// A delivery status notification for `verp`, as Postfix writes one when the mail
/// server of `reader` refused it with `status` and `diagnostic`.
pub fn delivery_report(verp: &str, reader: &str, status: &str, diagnostic: &str) -> String {
    format!(
        "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)\r\nTo: {verp}\r\n\
         Subject: Undelivered Mail Returned to Sender\r\nAuto-Submitted: auto-replied\r\n\
         MIME-Version: 1.0\r\n\
         Content-Type: multipart/report; report-type=delivery-status; boundary=\"r\"\r\n\r\n\
         --r\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.example.net.\r\n\
         I'm sorry to have to inform you that your message could not be delivered.\r\n\r\n\
         <{reader}>: host mx.example.net said: {diagnostic}\r\n\
         --r\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.net\r\n\r\n\
         Final-Recipient: rfc822; {reader}\r\nAction: failed\r\nStatus: {status}\r\n\
         Diagnostic-Code: smtp; {diagnostic}\r\n\
         --r\r\nContent-Type: text/rfc822-headers\r\n\r\nFrom: x@relay.test\r\nSubject: Tennis?\r\n\
         --r--\r\n"
    )
}
