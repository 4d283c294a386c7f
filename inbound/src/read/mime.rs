//! Reading a parsed message into the tree that may be relayed.
//!
//! Only what [`maskrelay_compose::content`] can hold survives: part types, file
//! names, content ids, languages, decoded text, bytes, and the reader-facing headers
//! of forwarded messages. Every other header of every part is left behind here.

use std::borrow::Cow;

use mail_parser::decoders::base64::base64_decode;
use mail_parser::decoders::quoted_printable::quoted_printable_decode;
use mail_parser::{
    Addr, DateTime, Encoding, HeaderValue, Message, MessageParser, MessagePart, MimeHeaders,
    PartType,
};
use maskrelay_compose::{Body, Content, Mailbox, Nested, Part};

use crate::read::charset;
use crate::read::signed::{self, Unrelayable};

/// Deeper MIME nesting than this is dropped: no mail client writes it, and it would
/// otherwise cost a stack frame per level.
const MAX_DEPTH: usize = 32;

/// Dates further ahead than this (seconds) are not believed.
const MAX_CLOCK_SKEW: i64 = 24 * 3600;

/// The relayable content of a message; `now` is Unix seconds.
///
/// # Errors
/// [`Unrelayable`] if the message is encrypted, or opaque-signed in a way that
/// cannot be unpacked.
pub fn body(message: &Message<'_>, now: i64) -> Result<Body, Unrelayable> {
    let mut reader = Reader {
        now,
        signature_removed: false,
    };
    let root = reader
        .part(message, 0, 0)?
        .unwrap_or_else(|| Part::text("plain", ""));
    Ok(Body {
        subject: message.subject().unwrap_or_default().to_owned(),
        date: believable(message.date(), now),
        language: language(message.root_part().content_language()),
        root,
        signature_removed: reader.signature_removed,
    })
}

/// Reads one message's tree, remembering whether a signature or key was dropped.
struct Reader {
    now: i64,
    signature_removed: bool,
}

impl Reader {
    /// The part `id` of `message`; `None` if it is a signature or key, dropped.
    fn part(
        &mut self,
        message: &Message<'_>,
        id: u32,
        depth: usize,
    ) -> Result<Option<Part>, Unrelayable> {
        let Some(p) = message.part(id).filter(|_| depth <= MAX_DEPTH) else {
            return Ok(Some(Part {
                content: Content::Binary(Vec::new()),
                ..Part::text("plain", "")
            }));
        };
        let mut content_type = content_type(p);
        let attribute = |name: &str| p.content_type().and_then(|ct| ct.attribute(name));
        let file_name = p.attachment_name();
        match signed::kind(&content_type, attribute("smime-type"), file_name) {
            signed::Kind::Encrypted => return Err(Unrelayable::Encrypted),
            signed::Kind::SignatureOrKey => {
                self.signature_removed = true;
                return Ok(None);
            }
            signed::Kind::SignedData => return self.signed_data(p, depth).map(Some),
            signed::Kind::Content => {}
        }
        let declared = attribute("charset");
        let mut charset = None;
        let content = match &p.body {
            PartType::Text(t) | PartType::Html(t) => {
                match self.text(text_of(message, p, t, declared))? {
                    Some(text) => Content::Text(text),
                    None => return Ok(None),
                }
            }
            PartType::Binary(b) | PartType::InlineBinary(b) => {
                match charset::readable(b, declared) {
                    Some(decoded) => {
                        charset = Some(decoded.encoding.name().to_owned());
                        match self.text(decoded.text)? {
                            Some(text) => Content::Text(text),
                            None => return Ok(None),
                        }
                    }
                    None => Content::Binary(b.to_vec()),
                }
            }
            PartType::Message(m) => Content::Message(Box::new(self.nested(m, depth + 1)?)),
            PartType::Multipart(ids) => {
                let mut children = ids.as_slice();
                if content_type == "multipart/signed" {
                    // RFC 1847: the first part is the content, the second its
                    // signature. Relay the content alone, without the wrapper.
                    self.signature_removed = true;
                    if let Some(&first) = ids.first() {
                        return self.part(message, first, depth + 1);
                    }
                    children = &[];
                }
                let mut parts = Vec::with_capacity(children.len());
                for &child in children {
                    parts.extend(self.part(message, child, depth + 1)?);
                }
                Content::Multipart(parts)
            }
        };
        if content_type.starts_with("multipart/") && !matches!(content, Content::Multipart(_)) {
            // A multipart without a usable boundary was read as one leaf; say so.
            content_type = match content {
                Content::Text(_) => "text/plain".to_owned(),
                _ => "application/octet-stream".to_owned(),
            };
        }
        Ok(Some(Part {
            content_type,
            file_name: file_name.map(str::to_owned),
            content_id: p.content_id().map(str::to_owned),
            language: language(p.content_language()),
            attachment: p.content_disposition().is_some_and(|d| d.is_attachment()),
            charset,
            content,
        }))
    }

    /// Text with inline OpenPGP signatures and keys taken out; `None` if nothing
    /// else was in it (a key sent as an `.asc` file). Encrypted armour refuses the
    /// message.
    fn text(&mut self, text: String) -> Result<Option<String>, Unrelayable> {
        if signed::has_encrypted_armour(&text) {
            return Err(Unrelayable::Encrypted);
        }
        let Some(stripped) = signed::strip_inline(&text) else {
            return Ok(Some(text));
        };
        self.signature_removed = true;
        Ok((!stripped.trim().is_empty()).then_some(stripped))
    }

    /// The content an opaque-signed part signs, read as the part it stands for.
    fn signed_data(&mut self, p: &MessagePart<'_>, depth: usize) -> Result<Part, Unrelayable> {
        let inner = signed::signed_content(p.contents())?;
        let entity = MessageParser::default()
            .parse(&inner)
            .ok_or(Unrelayable::UnreadableSignedData)?;
        self.signature_removed = true;
        Ok(self
            .part(&entity, 0, depth + 1)?
            .unwrap_or_else(|| Part::text("plain", "")))
    }

    fn nested(&mut self, m: &Message<'_>, depth: usize) -> Result<Nested, Unrelayable> {
        let mailboxes = |a: Option<&mail_parser::Address<'_>>| -> Vec<Mailbox> {
            a.map(|a| a.iter().map(mailbox).collect())
                .unwrap_or_default()
        };
        Ok(Nested {
            subject: m.subject().map(str::to_owned),
            date: believable(m.date(), self.now),
            from: mailboxes(m.from()),
            to: mailboxes(m.to()),
            cc: mailboxes(m.cc()),
            root: self
                .part(m, 0, depth)?
                .unwrap_or_else(|| Part::text("plain", "")),
        })
    }
}

/// The text of a `text/*` part. mail-parser decodes by the declared charset alone
/// (and without its `full_encoding` feature, legacy multi-byte charsets not at all),
/// so a part with another declared charset, or whose decoding lost characters, is
/// decoded again from its bytes by [`charset::text`].
fn text_of(
    message: &Message<'_>,
    p: &MessagePart<'_>,
    parsed: &str,
    declared: Option<&str>,
) -> String {
    let is_utf8_label = declared.is_none_or(|c| {
        let c = c.trim();
        c.eq_ignore_ascii_case("utf-8") || c.eq_ignore_ascii_case("us-ascii")
    });
    if is_utf8_label && !parsed.contains('\u{fffd}') {
        return parsed.to_owned();
    }
    match transfer_decoded(message, p) {
        Some(bytes) => charset::text(&bytes, declared).text,
        None => parsed.to_owned(),
    }
}

/// A part's body with its transfer encoding undone, before any charset.
fn transfer_decoded<'a>(message: &'a Message<'_>, p: &MessagePart<'_>) -> Option<Cow<'a, [u8]>> {
    let raw = message
        .raw_message()
        .get(p.raw_body_offset() as usize..p.raw_end_offset() as usize)?;
    match p.encoding {
        Encoding::None => Some(Cow::Borrowed(raw)),
        Encoding::QuotedPrintable => quoted_printable_decode(raw).map(Cow::Owned),
        Encoding::Base64 => base64_decode(raw).map(Cow::Owned),
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
