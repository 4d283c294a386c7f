//! Building the message a member receives.
//!
//! Every relayed message is built here from scratch: no header of the original is
//! copied, so nothing the writer's mail client added (Received, Return-Path, DKIM,
//! X-Originating-IP, the original Message-ID…) can reach the reader. The sender is
//! always a relay address, and a footer tells the reader that replying keeps both
//! addresses private.

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::message_id::MessageId;

/// A file carried along with a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// MIME type, e.g. `application/pdf`.
    pub content_type: String,
    /// File name shown to the reader.
    pub file_name: String,
    /// Set for inline parts referenced from HTML (`cid:`).
    pub content_id: Option<String>,
    /// Decoded content.
    pub data: Vec<u8>,
}

/// The content of a message, as written by a member.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Body {
    /// Subject line.
    pub subject: String,
    /// Plain-text part, if any.
    pub text: Option<String>,
    /// HTML part, if any.
    pub html: Option<String>,
    /// Attachments.
    pub attachments: Vec<Attachment>,
}

/// Everything needed to build one outgoing message.
#[derive(Debug, Clone)]
pub struct Draft<'a> {
    /// The writer's display name ("Alice").
    pub sender_name: &'a str,
    /// The writer's relay address, handed to the reader.
    pub sender_relay_address: &'a str,
    /// The organisation's display name.
    pub org_name: &'a str,
    /// The reader's display name.
    pub recipient_name: &'a str,
    /// The reader's real address (their own; it is not disclosed to anyone else).
    pub recipient_address: &'a str,
    /// Our `Message-ID`, without angle brackets.
    pub message_id: &'a str,
    /// The relay `Message-ID` this message answers, if any.
    pub in_reply_to: Option<&'a str>,
    /// Relay `Message-ID`s of the thread so far, oldest first.
    pub references: &'a [String],
    /// Date header, Unix seconds.
    pub date: i64,
    /// What the member wrote.
    pub body: &'a Body,
}

/// The display name of a relayed sender: "Alice via Example Club".
pub fn via_name(sender_name: &str, org_name: &str) -> String {
    format!("{sender_name} via {org_name}")
}

/// Builds the RFC 5322 bytes of a draft.
///
/// # Errors
/// Only if writing into memory fails, which it does not in practice.
pub fn compose(draft: &Draft<'_>) -> std::io::Result<Vec<u8>> {
    let body = draft.body;
    let mut builder = MessageBuilder::new()
        .from(Address::new_address(
            Some(via_name(draft.sender_name, draft.org_name)),
            draft.sender_relay_address.to_owned(),
        ))
        .to(Address::new_address(
            Some(draft.recipient_name.to_owned()),
            draft.recipient_address.to_owned(),
        ))
        .subject(body.subject.clone())
        .message_id(draft.message_id.to_owned())
        .date(draft.date);
    if let Some(parent) = draft.in_reply_to {
        builder = builder.in_reply_to(parent.to_owned());
    }
    if !draft.references.is_empty() {
        builder = builder.references(MessageId::new_list(draft.references.iter().cloned()));
    }
    let text = body
        .text
        .as_deref()
        .map(|t| format!("{t}\r\n\r\n{}", text_footer(draft)));
    let html = body
        .html
        .as_deref()
        .map(|h| format!("{h}\n{}", html_footer(draft)));
    // A message always has a readable part, so that the footer is never lost.
    let text = match (&text, &html) {
        (None, None) => Some(text_footer(draft)),
        _ => text,
    };
    if let Some(text) = text {
        builder = builder.text_body(text);
    }
    if let Some(html) = html {
        builder = builder.html_body(html);
    }
    for a in &body.attachments {
        builder = match &a.content_id {
            Some(cid) => builder.inline(a.content_type.clone(), cid.clone(), a.data.clone()),
            None => builder.attachment(a.content_type.clone(), a.file_name.clone(), a.data.clone()),
        };
    }
    builder.write_to_vec()
}

fn text_footer(draft: &Draft<'_>) -> String {
    format!(
        "-- \r\nYou received this message from {} through {}. Reply to this email to answer \
         {}; your email addresses stay private.",
        draft.sender_name, draft.org_name, draft.sender_name
    )
}

fn html_footer(draft: &Draft<'_>) -> String {
    let sender = escape_html(draft.sender_name);
    format!(
        "<hr><p style=\"font-size:small;color:#666\">You received this message from {sender} \
         through {}. Reply to this email to answer {sender}; your email addresses stay \
         private.</p>",
        escape_html(draft.org_name)
    )
}

/// Escapes text for inclusion in HTML element content.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft<'a>(body: &'a Body, refs: &'a [String]) -> Draft<'a> {
        Draft {
            sender_name: "Alice",
            sender_relay_address: "k7q2mx9d4pabcdef@relay.example.org",
            org_name: "Example Club",
            recipient_name: "Bob",
            recipient_address: "bob@example.net",
            message_id: "m2@relay.example.org",
            in_reply_to: Some("m1@relay.example.org"),
            references: refs,
            date: 1_700_000_000,
            body,
        }
    }

    /// The message as text, with quoted-printable soft line breaks joined so that
    /// phrases can be searched whole.
    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).replace("=\r\n", "")
    }

    #[test]
    fn sender_is_the_relay_address_with_a_via_name() -> std::io::Result<()> {
        let body = Body {
            subject: "Hi".into(),
            text: Some("Hello Bob".into()),
            ..Body::default()
        };
        let out = text(&compose(&draft(&body, &[]))?);
        assert!(
            out.contains("From: \"Alice via Example Club\" <k7q2mx9d4pabcdef@relay.example.org>"),
            "{out}"
        );
        assert!(out.contains("Message-ID: <m2@relay.example.org>"), "{out}");
        assert!(out.contains("In-Reply-To: <m1@relay.example.org>"), "{out}");
        assert!(out.contains("Reply to this email to answer Alice"), "{out}");
        Ok(())
    }

    #[test]
    fn references_list_the_thread() -> std::io::Result<()> {
        let body = Body {
            subject: "Re: Hi".into(),
            text: Some("x".into()),
            ..Body::default()
        };
        let refs = vec![
            "m0@relay.example.org".to_owned(),
            "m1@relay.example.org".to_owned(),
        ];
        let out = text(&compose(&draft(&body, &refs))?);
        assert!(
            out.contains("<m0@relay.example.org>") && out.contains("References:"),
            "{out}"
        );
        Ok(())
    }

    #[test]
    fn html_footer_escapes_names() -> std::io::Result<()> {
        let body = Body {
            subject: "Hi".into(),
            html: Some("<p>Hello</p>".into()),
            ..Body::default()
        };
        let mut d = draft(&body, &[]);
        d.sender_name = "<script>";
        let out = text(&compose(&d)?);
        assert!(out.contains("&lt;script&gt;"), "{out}");
        assert!(!out.contains("from <script>"), "{out}");
        Ok(())
    }

    #[test]
    fn an_empty_message_still_carries_the_footer() -> std::io::Result<()> {
        let body = Body {
            subject: "Hi".into(),
            ..Body::default()
        };
        let out = text(&compose(&draft(&body, &[]))?);
        assert!(out.contains("your email addresses stay private"), "{out}");
        Ok(())
    }
}
