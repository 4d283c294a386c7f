//! Building the message a member receives, from scratch, with mail-builder.
//!
//! Every relayed message is built here, and so is every notice: no header of the
//! original is copied, so nothing the writer's mail client added (Received,
//! Return-Path, DKIM, X-Originating-IP, the original Message-ID…) can reach the
//! reader. The sender is always an address of the relay domain: a member's relay
//! address, with a footer telling the reader that replying keeps both addresses
//! private ([`crate::footer`]), or the organisation's no-reply address.

use mail_builder::MessageBuilder;
use mail_builder::headers::HeaderType;
use mail_builder::headers::address::Address;
use mail_builder::headers::content_type::ContentType;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::raw::Raw;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart};

use crate::content::{Body, Content, Mailbox, Nested, Part};
use crate::footer::{FooterLinks, add_footer, add_unsubscribe_footer};

/// Everything needed to build one outgoing message.
#[derive(Debug, Clone)]
pub struct Draft<'a> {
    /// Who the reader sees it from.
    pub from: Sender<'a>,
    /// The organisation's display name.
    pub org_name: &'a str,
    /// The reader's display name.
    pub reader_name: &'a str,
    /// The reader's own relay address in this conversation: the address the writer
    /// wrote to. The reader's real address is only in the SMTP envelope, never in
    /// the message, so no copy of the message (a forward, a bounce) carries it.
    pub reader_relay_address: &'a str,
    /// Our `Message-ID`, without angle brackets.
    pub message_id: &'a str,
    /// The relay `Message-ID` this message answers, if any.
    pub in_reply_to: Option<&'a str>,
    /// Relay `Message-ID`s of the thread so far, oldest first.
    pub references: &'a [String],
    /// Now, Unix seconds: the date when the writer's own is unknown.
    pub date: i64,
    /// The domain of relay addresses, for the ids of forwarded messages.
    pub relay_domain: &'a str,
    /// What was written, already scrubbed.
    pub body: &'a Body,
}

/// Who a message is from, as its reader sees it.
#[derive(Debug, Clone, Copy)]
pub enum Sender<'a> {
    /// A member, at the relay address standing for them: "Alice via Example Club".
    /// The footer says how to answer, and offers the reader its links.
    Member {
        /// The writer's display name ("Alice").
        name: &'a str,
        /// The writer's relay address, handed to the reader.
        relay_address: &'a str,
        /// One-click links for the reader, shown in the footer.
        links: Option<FooterLinks<'a>>,
    },
    /// The organisation itself, writing automatically (`Auto-Submitted`, RFC 3834)
    /// from an address of the relay domain that takes no answer.
    Organisation {
        /// That address.
        address: &'a str,
    },
    /// The organisation's staff, writing to many members at once (a broadcast):
    /// from the organisation's name at an address of the relay domain, marked as
    /// bulk, with the list headers of its category if members may leave it.
    Broadcast {
        /// That address.
        address: &'a str,
        /// The category's headers; none for a mandatory notice.
        list: Option<ListHeaders<'a>>,
    },
}

/// What a broadcast in a category carries so that mail clients offer to leave it:
/// `List-Id` (RFC 2919), `List-Unsubscribe` (RFC 2369) with its one-click `POST`
/// (RFC 8058).
#[derive(Debug, Clone, Copy)]
pub struct ListHeaders<'a> {
    /// The category's name, the phrase of `List-Id`.
    pub name: &'a str,
    /// The category's list id (`<category>.<organisation>.<relay domain>`).
    pub id: &'a str,
    /// The HTTPS link that unsubscribes the reader with one `POST`.
    pub unsubscribe_url: &'a str,
    /// The `mailto:` that does the same.
    pub unsubscribe_mailto: &'a str,
}

/// The trace header every relayed message carries, so that one coming back (a member
/// forwarding relayed mail to a relay address) is recognised as a loop.
pub const LOOP_HEADER: &str = "X-Loop";

/// Its value for a relay domain.
pub fn loop_mark(relay_domain: &str) -> String {
    format!("maskrelay@{relay_domain}")
}

/// The display name of a relayed writer: "Alice via Example Club".
pub fn via_name(writer_name: &str, org_name: &str) -> String {
    format!("{writer_name} via {org_name}")
}

/// Builds the RFC 5322 bytes of a draft.
///
/// # Errors
/// Only if writing into memory fails, which it does not in practice.
pub fn build(draft: &Draft<'_>) -> std::io::Result<Vec<u8>> {
    let body = draft.body;
    let mut builder =
        MessageBuilder::new().header(LOOP_HEADER, Raw::new(loop_mark(draft.relay_domain)));
    builder = match draft.from {
        Sender::Member {
            name,
            relay_address,
            ..
        } => builder.from(Address::new_address(
            Some(via_name(name, draft.org_name)),
            relay_address.to_owned(),
        )),
        Sender::Organisation { address } => builder
            .header("Auto-Submitted", Raw::new("auto-replied"))
            .from(Address::new_address(
                Some(draft.org_name.to_owned()),
                address.to_owned(),
            )),
        Sender::Broadcast { address, list } => {
            let mut b = builder
                .header("Precedence", Raw::new("bulk"))
                .from(Address::new_address(
                    Some(draft.org_name.to_owned()),
                    address.to_owned(),
                ));
            if let Some(list) = list {
                b = b
                    // `phrase <id>` has a mailbox's form: written as one, the
                    // phrase is quoted or encoded as it needs.
                    .header(
                        "List-Id",
                        Address::new_address(Some(list.name.to_owned()), list.id.to_owned()),
                    )
                    .header(
                        "List-Unsubscribe",
                        Raw::new(format!(
                            "<{}>, <{}>",
                            list.unsubscribe_url, list.unsubscribe_mailto
                        )),
                    )
                    .header(
                        "List-Unsubscribe-Post",
                        Raw::new("List-Unsubscribe=One-Click"),
                    );
            }
            b
        }
    };
    builder = builder
        .to(Address::new_address(
            Some(draft.reader_name.to_owned()).filter(|n| !n.is_empty()),
            draft.reader_relay_address.to_owned(),
        ))
        .subject(body.subject.clone())
        .message_id(draft.message_id.to_owned())
        .date(body.date.unwrap_or(draft.date));
    if let Some(parent) = draft.in_reply_to {
        builder = builder.in_reply_to(parent.to_owned());
    }
    if !draft.references.is_empty() {
        builder = builder.references(MessageId::new_list(draft.references.iter().cloned()));
    }
    if let Some(language) = body.language.as_deref().filter(|l| is_token_list(l)) {
        builder = builder.header("Content-Language", Text::new(language.to_owned()));
    }
    let mut root = body.root.clone();
    match draft.from {
        Sender::Member { name, links, .. } => add_footer(
            &mut root,
            name,
            draft.org_name,
            links,
            body.signature_removed,
        ),
        Sender::Broadcast {
            list: Some(list), ..
        } => add_unsubscribe_footer(&mut root, draft.org_name, list.name, list.unsubscribe_url),
        Sender::Broadcast { list: None, .. } | Sender::Organisation { .. } => {}
    }
    builder
        .body(mime(&root, draft.relay_domain)?)
        .write_to_vec()
}

/// The MIME part for a content part, recursively.
fn mime(part: &Part, relay_domain: &str) -> std::io::Result<MimePart<'static>> {
    let content_type = if is_mime_type(&part.content_type) {
        part.content_type.clone()
    } else {
        "application/octet-stream".to_owned()
    };
    let mut mime = match &part.content {
        Content::Text(text) => match in_charset(text, part.charset.as_deref()) {
            Some((charset, bytes)) => MimePart::new(
                ContentType::new(content_type).attribute("charset", charset),
                BodyPart::Binary(bytes.into()),
            ),
            None => MimePart::new(
                ContentType::new(content_type).attribute("charset", "utf-8"),
                BodyPart::Text(text.clone().into()),
            ),
        },
        Content::Binary(data) => MimePart::new(content_type, BodyPart::Binary(data.clone().into())),
        Content::Multipart(parts) => {
            let children = parts
                .iter()
                .map(|p| mime(p, relay_domain))
                .collect::<std::io::Result<Vec<_>>>()?;
            MimePart::new(content_type, BodyPart::Multipart(children))
        }
        Content::Message(nested) => {
            let bytes = nested_message(nested, relay_domain)?;
            let encoding = if bytes.is_ascii() { "7bit" } else { "8bit" };
            MimePart::new("message/rfc822", BodyPart::Binary(bytes.into()))
                .transfer_encoding(encoding)
        }
    };
    if let Some(language) = part.language.as_deref().filter(|l| is_token_list(l)) {
        mime = mime.language(language.to_owned());
    }
    if let Some(cid) = part.content_id.as_deref().filter(|c| is_content_id(c)) {
        mime = mime.cid(cid.to_owned());
    }
    let disposition = match (&part.file_name, part.attachment) {
        (Some(name), true) => {
            Some(ContentType::new("attachment").attribute("filename", name.clone()))
        }
        (None, true) => Some(ContentType::new("attachment")),
        (Some(name), false) => Some(ContentType::new("inline").attribute("filename", name.clone())),
        (None, false) => None,
    };
    if let Some(disposition) = disposition {
        mime = mime.header("Content-Disposition", HeaderType::ContentType(disposition));
    }
    Ok(mime)
}

/// `text` encoded in `charset` with the charset's name, when it is a charset other
/// than UTF-8 that can hold every character (scrubbing only puts ASCII in).
fn in_charset(text: &str, charset: Option<&str>) -> Option<(&'static str, Vec<u8>)> {
    let encoding = encoding_rs::Encoding::for_label(charset?.as_bytes())?;
    // UTF-16's encoder writes UTF-8 (WHATWG): such parts are relabelled as UTF-8.
    if encoding == encoding_rs::UTF_8 || encoding.output_encoding() != encoding {
        return None;
    }
    let (bytes, _, unmappable) = encoding.encode(text);
    (!unmappable).then(|| (encoding.name(), bytes.into_owned()))
}

/// A forwarded message, rebuilt with only the headers a reader needs.
fn nested_message(nested: &Nested, relay_domain: &str) -> std::io::Result<Vec<u8>> {
    let id = format!(
        "{}@{relay_domain}",
        maskrelay_schema::tokens::random_token(24).map_err(std::io::Error::other)?
    );
    let mut builder = MessageBuilder::new().message_id(id);
    if let Some(from) = addresses(&nested.from) {
        builder = builder.from(from);
    }
    if let Some(to) = addresses(&nested.to) {
        builder = builder.to(to);
    }
    if let Some(cc) = addresses(&nested.cc) {
        builder = builder.cc(cc);
    }
    if let Some(subject) = &nested.subject {
        builder = builder.subject(subject.clone());
    }
    if let Some(date) = nested.date {
        builder = builder.date(date);
    }
    builder
        .body(mime(&nested.root, relay_domain)?)
        .write_to_vec()
}

/// A header value for mailboxes; one whose address was removed shows its name alone
/// (as an empty group, the only way RFC 5322 lets a name stand without an address).
fn addresses(mailboxes: &[Mailbox]) -> Option<Address<'static>> {
    let list: Vec<Address<'static>> = mailboxes
        .iter()
        .filter_map(|m| match (&m.name, &m.address) {
            (name, Some(address)) => Some(Address::new_address(name.clone(), address.clone())),
            (Some(name), None) => Some(Address::new_group(Some(name.clone()), Vec::new())),
            (None, None) => None,
        })
        .collect();
    (!list.is_empty()).then(|| Address::new_list(list))
}

/// `type/subtype` made only of RFC 2045 token characters.
fn is_mime_type(s: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    s.split_once('/')
        .is_some_and(|(t, sub)| token(t) && token(sub))
}

/// A `Content-Language` value: language tags separated by commas.
fn is_token_list(s: &str) -> bool {
    s.len() <= 200
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b',' || b == b' ')
}

/// A `Content-ID` we can write back without breaking the header.
fn is_content_id(s: &str) -> bool {
    s.len() <= 250
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && b != b'<' && b != b'>')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_alice(name: &str) -> Sender<'_> {
        Sender::Member {
            name,
            relay_address: "k7q2mx9d4pabcdef@relay.example.org",
            links: Some(FooterLinks {
                block: "https://relay.example.org/v1/links/block~x",
                stop: "https://relay.example.org/v1/links/stop~y",
            }),
        }
    }

    fn draft<'a>(body: &'a Body, refs: &'a [String]) -> Draft<'a> {
        Draft {
            from: from_alice("Alice"),
            org_name: "Example Club",
            reader_name: "Bob",
            reader_relay_address: "b0b0b0b0b0b0b0b0@relay.example.org",
            message_id: "m2@relay.example.org",
            in_reply_to: Some("m1@relay.example.org"),
            references: refs,
            date: 1_700_000_000,
            relay_domain: "relay.example.org",
            body,
        }
    }

    /// The message as text, with quoted-printable soft line breaks joined so that
    /// phrases can be searched whole.
    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).replace("=\r\n", "")
    }

    fn parsed(bytes: &[u8]) -> mail_parser::Message<'_> {
        mail_parser::MessageParser::default()
            .parse(bytes)
            .unwrap_or_default()
    }

    #[test]
    fn sender_and_recipient_are_relay_addresses() -> std::io::Result<()> {
        let body = Body::from_text("Hi", "Hello Bob", None);
        let out = text(&build(&draft(&body, &[]))?);
        assert!(
            out.contains("From: \"Alice via Example Club\" <k7q2mx9d4pabcdef@relay.example.org>"),
            "{out}"
        );
        assert!(
            out.contains("To: \"Bob\" <b0b0b0b0b0b0b0b0@relay.example.org>"),
            "{out}"
        );
        assert!(out.contains("Message-ID: <m2@relay.example.org>"), "{out}");
        assert!(out.contains("In-Reply-To: <m1@relay.example.org>"), "{out}");
        assert!(
            out.starts_with("X-Loop: maskrelay@relay.example.org\r\n"),
            "{out}"
        );
        assert!(out.contains("Reply to this email to answer Alice"), "{out}");
        assert!(
            out.contains("Block Alice: https://relay.example.org/v1/links/block~x"),
            "{out}"
        );
        Ok(())
    }

    #[test]
    fn the_organisation_writes_automatically_without_a_members_footer() -> std::io::Result<()> {
        let body = Body::from_text("Your message could not be delivered", "Sorry.", None);
        let mut d = draft(&body, &[]);
        d.from = Sender::Organisation {
            address: "noreply@relay.example.org",
        };
        let out = text(&build(&d)?);
        assert!(
            out.contains("From: \"Example Club\" <noreply@relay.example.org>"),
            "{out}"
        );
        assert!(out.contains("Auto-Submitted: auto-replied"), "{out}");
        assert!(out.contains("X-Loop: maskrelay@relay.example.org"), "{out}");
        assert!(!out.contains("Reply to this email"), "{out}");
        Ok(())
    }

    #[test]
    fn the_writers_date_is_kept_in_utc() -> std::io::Result<()> {
        let mut body = Body::from_text("Hi", "x", None);
        body.date = Some(1_600_000_000);
        let out = text(&build(&draft(&body, &[]))?);
        assert!(
            out.contains("Date: Sun, 13 Sep 2020 12:26:40 +0000"),
            "{out}"
        );
        Ok(())
    }

    #[test]
    fn references_list_the_thread() -> std::io::Result<()> {
        let body = Body::from_text("Re: Hi", "x", None);
        let refs = vec![
            "m0@relay.example.org".to_owned(),
            "m1@relay.example.org".to_owned(),
        ];
        let out = text(&build(&draft(&body, &refs))?);
        assert!(
            out.contains("<m0@relay.example.org>") && out.contains("References:"),
            "{out}"
        );
        Ok(())
    }

    #[test]
    fn html_footer_escapes_names_and_goes_inside_the_body() -> std::io::Result<()> {
        let body = Body::from_text("Hi", "x", Some("<html><body><p>Hello</p></body></html>"));
        let mut d = draft(&body, &[]);
        d.from = from_alice("<script>");
        let bytes = build(&d)?;
        let html = parsed(&bytes).body_html(0).unwrap_or_default().into_owned();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("from <script>"), "{html}");
        assert!(
            html.contains("<a href=\"https://relay.example.org/v1/links/stop~y\">"),
            "{html}"
        );
        assert!(
            html.contains("Example Club</a></p></body></html>"),
            "{html}"
        );
        Ok(())
    }

    #[test]
    fn a_message_without_text_gets_the_footer_in_front() -> std::io::Result<()> {
        let mut image = Part::text("plain", "");
        image.content_type = "image/png".into();
        image.content = Content::Binary(vec![0x89, b'P', b'N', b'G']);
        image.attachment = true;
        image.file_name = Some("a.png".into());
        let body = Body {
            subject: "Hi".into(),
            date: None,
            language: None,
            root: image,
            signature_removed: false,
        };
        let bytes = build(&draft(&body, &[]))?;
        let m = parsed(&bytes);
        assert!(
            m.body_text(0)
                .is_some_and(|t| t.contains("your email addresses stay private"))
        );
        assert_eq!(
            m.attachment(0)
                .and_then(|a| mail_parser::MimeHeaders::attachment_name(a)),
            Some("a.png")
        );
        Ok(())
    }

    #[test]
    fn forwarded_messages_keep_their_structure_and_only_reader_headers() -> std::io::Result<()> {
        let nested = Nested {
            subject: Some("Original".into()),
            date: Some(1_600_000_000),
            from: vec![Mailbox {
                name: Some("Carol".into()),
                address: Some("k@relay.example.org".into()),
            }],
            to: vec![Mailbox {
                name: Some("Dave".into()),
                address: None,
            }],
            cc: vec![],
            root: Part::text("plain", "forwarded text"),
        };
        let forwarded = Part {
            content_type: "message/rfc822".into(),
            attachment: true,
            content: Content::Message(Box::new(nested)),
            ..Part::text("plain", "")
        };
        let body = Body {
            subject: "Fwd".into(),
            date: None,
            language: Some("en".into()),
            root: Part::multipart("mixed", vec![Part::text("plain", "see below"), forwarded]),
            signature_removed: false,
        };
        let bytes = build(&draft(&body, &[]))?;
        let out = text(&bytes);
        assert!(out.contains("Content-Language: en"), "{out}");
        assert!(out.contains("Content-Type: message/rfc822"), "{out}");
        assert!(out.contains("To: \"Dave\":;"), "{out}");
        let m = parsed(&bytes);
        let inner = m.attachment(0).and_then(|a| a.message());
        assert_eq!(inner.and_then(|i| i.subject()), Some("Original"));
        assert!(
            inner
                .and_then(|i| i.body_text(0))
                .is_some_and(|t| t.contains("forwarded text"))
        );
        Ok(())
    }

    #[test]
    fn unsafe_types_and_ids_are_not_written_back() -> std::io::Result<()> {
        let mut part = Part::text("plain", "");
        part.content_type = "image/png\r\nBcc: x@y.z".into();
        part.content = Content::Binary(vec![1, 2, 3]);
        part.content_id = Some("a>\r\nBcc: x@y.z".into());
        let body = Body {
            subject: "s".into(),
            date: None,
            language: Some("en\r\nBcc: x@y.z".into()),
            root: Part::multipart("mixed", vec![Part::text("plain", "x"), part]),
            signature_removed: false,
        };
        let out = text(&build(&draft(&body, &[]))?);
        assert!(!out.contains("Bcc"), "{out}");
        assert!(out.contains("application/octet-stream"), "{out}");
        Ok(())
    }

    #[test]
    fn legacy_attachments_keep_their_charset_and_removed_signatures_are_noted()
    -> std::io::Result<()> {
        let mut csv = Part::text("plain", "Name;Adresse\r\nZoë;z@relay.example.org\r\n");
        csv.content_type = "application/vnd.ms-excel".into();
        csv.attachment = true;
        csv.charset = Some("windows-1252".into());
        let mut json = Part::text("plain", "{\"a\":\"ü\"}");
        json.content_type = "application/json".into();
        json.charset = Some("UTF-16LE".into());
        let body = Body {
            subject: "s".into(),
            date: None,
            language: None,
            root: Part::multipart("mixed", vec![Part::text("plain", "hi"), csv, json]),
            signature_removed: true,
        };
        let bytes = build(&draft(&body, &[]))?;
        let m = parsed(&bytes);
        let csv = m.attachment(0).map(|a| a.contents().to_vec());
        assert_eq!(
            csv.as_deref(),
            Some(&b"Name;Adresse\r\nZo\xeb;z@relay.example.org\r\n"[..])
        );
        let out = text(&bytes);
        assert!(
            out.contains("charset=\"windows-1252\"") || out.contains("charset=windows-1252"),
            "{out}"
        );
        // UTF-16 cannot be written back by encoding_rs: it becomes UTF-8, labelled so.
        assert_eq!(
            m.attachment(1).map(|a| a.contents().to_vec()),
            Some("{\"a\":\"ü\"}".as_bytes().to_vec())
        );
        assert!(
            m.body_text(0)
                .is_some_and(|t| t.contains("digital signature or public key was removed")),
            "{out}"
        );
        Ok(())
    }
}
