//! Reading a parsed message into the tree that may be relayed.
//!
//! Only what [`maskrelay_outbound::content`] can hold survives: part types, file
//! names, content ids, languages, decoded text, bytes, and the reader-facing headers
//! of forwarded messages. Every other header of every part is left behind here.

use mail_parser::{Addr, DateTime, HeaderValue, Message, MessagePart, MimeHeaders, PartType};
use maskrelay_outbound::{Body, Content, Mailbox, Nested, Part};

/// Deeper MIME nesting than this is dropped: no mail client writes it, and it would
/// otherwise cost a stack frame per level.
const MAX_DEPTH: usize = 32;

/// Dates further ahead than this (seconds) are not believed.
const MAX_CLOCK_SKEW: i64 = 24 * 3600;

/// The relayable content of a message; `now` is Unix seconds.
pub fn body(message: &Message<'_>, now: i64) -> Body {
    Body {
        subject: message.subject().unwrap_or_default().to_owned(),
        date: believable(message.date(), now),
        language: language(message.root_part().content_language()),
        root: part(message, 0, 0, now),
    }
}

fn part(message: &Message<'_>, id: u32, depth: usize, now: i64) -> Part {
    let Some(p) = message.part(id).filter(|_| depth <= MAX_DEPTH) else {
        return Part {
            content: Content::Binary(Vec::new()),
            ..Part::text("plain", "")
        };
    };
    let mut content_type = content_type(p);
    let content = match &p.body {
        PartType::Text(t) | PartType::Html(t) => Content::Text(t.to_string()),
        PartType::Binary(b) | PartType::InlineBinary(b) => match std::str::from_utf8(b) {
            Ok(text) if is_readable(text) => Content::Text(text.to_owned()),
            _ => Content::Binary(b.to_vec()),
        },
        PartType::Message(m) => Content::Message(Box::new(nested(m, depth + 1, now))),
        PartType::Multipart(ids) => Content::Multipart(
            ids.iter()
                .map(|&i| part(message, i, depth + 1, now))
                .collect(),
        ),
    };
    if content_type.starts_with("multipart/") && !matches!(content, Content::Multipart(_)) {
        // A multipart without a usable boundary was read as one leaf; say so.
        content_type = match content {
            Content::Text(_) => "text/plain".to_owned(),
            _ => "application/octet-stream".to_owned(),
        };
    }
    Part {
        content_type,
        file_name: p.attachment_name().map(str::to_owned),
        content_id: p.content_id().map(str::to_owned),
        language: language(p.content_language()),
        attachment: p.content_disposition().is_some_and(|d| d.is_attachment()),
        content,
    }
}

fn nested(m: &Message<'_>, depth: usize, now: i64) -> Nested {
    let mailboxes = |a: Option<&mail_parser::Address<'_>>| -> Vec<Mailbox> {
        a.map(|a| a.iter().map(mailbox).collect())
            .unwrap_or_default()
    };
    Nested {
        subject: m.subject().map(str::to_owned),
        date: believable(m.date(), now),
        from: mailboxes(m.from()),
        to: mailboxes(m.to()),
        cc: mailboxes(m.cc()),
        root: part(m, 0, depth, now),
    }
}

fn mailbox(a: &Addr<'_>) -> Mailbox {
    Mailbox {
        name: a.name().map(str::to_owned),
        address: a.address().map(str::to_owned),
    }
}

/// Lower-case `type/subtype`; `text/plain` when absent, as RFC 2045 says.
fn content_type(p: &MessagePart<'_>) -> String {
    match p.content_type() {
        Some(ct) => match ct.subtype() {
            Some(sub) => format!("{}/{}", ct.ctype(), sub).to_ascii_lowercase(),
            None => ct.ctype().to_ascii_lowercase(),
        },
        None => "text/plain".to_owned(),
    }
}

/// Whether bytes that decoded as UTF-8 are text a person could read. Such parts are
/// scrubbed whatever their declared type: calendar invitations, contact cards, JSON,
/// `.txt` files sent as `application/octet-stream` and broken multiparts all carry
/// addresses, and binary formats (images, PDFs, archives) are practically never
/// valid UTF-8 free of control characters.
fn is_readable(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n' | '\x0c'))
}

fn language(value: &HeaderValue<'_>) -> Option<String> {
    match value {
        HeaderValue::Text(t) => Some(t.to_string()),
        HeaderValue::TextList(list) => Some(list.join(", ")),
        _ => None,
    }
}

fn believable(date: Option<&DateTime>, now: i64) -> Option<i64> {
    let ts = date?.to_timestamp();
    // Before 2000 or in the future: a wrong clock, not the writer's time.
    (946_684_800..=now + MAX_CLOCK_SKEW)
        .contains(&ts)
        .then_some(ts)
}
