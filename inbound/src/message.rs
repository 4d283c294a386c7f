//! Reading a received message: who it claims to be from, which of our messages it
//! answers, and what the member wrote.

use mail_parser::{MessageParser, MimeHeaders, PartType};
use maskrelay_outbound::{Attachment, Body};

/// What the listener needs from a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// Address in the `From:` header, if any.
    pub from: Option<String>,
    /// The first of our `Message-ID`s it answers (`In-Reply-To`, else `References`).
    pub in_reply_to: Option<String>,
    /// What the member wrote, decoded.
    pub body: Body,
}

/// Parses raw RFC 5322 bytes; `None` if they are not a message at all.
pub fn parse(raw: &[u8], relay_domain: &str) -> Option<InboundMessage> {
    let message = MessageParser::default().parse(raw)?;
    let from = message
        .from()
        .and_then(|a| a.first())
        .and_then(|a| a.address())
        .map(str::to_owned);
    let ours = |id: &&str| {
        id.rsplit_once('@')
            .is_some_and(|(_, domain)| domain.eq_ignore_ascii_case(relay_domain))
    };
    let in_reply_to = header_ids(message.in_reply_to())
        .into_iter()
        .rev()
        .find(|id| ours(&id.as_str()))
        .or_else(|| {
            header_ids(message.references())
                .into_iter()
                .rev()
                .find(|id| ours(&id.as_str()))
        });
    let text = join(message.text_bodies().filter_map(|p| match &p.body {
        PartType::Text(t) => Some(t.as_ref()),
        _ => None,
    }));
    let html = join(message.html_bodies().filter_map(|p| match &p.body {
        PartType::Html(h) => Some(h.as_ref()),
        _ => None,
    }));
    let attachments = message
        .attachments()
        .map(|part| {
            let content_type = part
                .content_type()
                .map(|ct| match ct.subtype() {
                    Some(sub) => format!("{}/{}", ct.ctype(), sub),
                    None => ct.ctype().to_owned(),
                })
                .unwrap_or_else(|| "application/octet-stream".to_owned());
            let data = match &part.body {
                // A forwarded message travels as its raw bytes.
                PartType::Message(m) => m.raw_message().to_vec(),
                _ => part.contents().to_vec(),
            };
            Attachment {
                content_type,
                file_name: part.attachment_name().unwrap_or("attachment").to_owned(),
                content_id: part.content_id().map(str::to_owned),
                data,
            }
        })
        .collect();
    Some(InboundMessage {
        from,
        in_reply_to,
        body: Body {
            subject: message.subject().unwrap_or_default().to_owned(),
            text,
            html,
            attachments,
        },
    })
}

fn header_ids(value: &mail_parser::HeaderValue<'_>) -> Vec<String> {
    match value {
        mail_parser::HeaderValue::Text(t) => vec![t.to_string()],
        mail_parser::HeaderValue::TextList(list) => list.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

fn join<'a>(parts: impl Iterator<Item = &'a str>) -> Option<String> {
    let parts: Vec<&str> = parts.collect();
    (!parts.is_empty()).then(|| parts.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELAY: &str = "relay.test";

    #[test]
    fn reads_sender_subject_and_text() {
        let raw = b"From: Bob <Bob@Example.net>\r\nTo: x@relay.test\r\nSubject: Re: Hi\r\n\r\nThanks!\r\n";
        let m = parse(raw, RELAY);
        let m = m.as_ref();
        assert_eq!(m.and_then(|m| m.from.as_deref()), Some("Bob@Example.net"));
        assert_eq!(m.map(|m| m.body.subject.as_str()), Some("Re: Hi"));
        assert_eq!(m.and_then(|m| m.body.text.as_deref()), Some("Thanks!\r\n"));
        assert_eq!(m.and_then(|m| m.body.html.as_deref()), None);
    }

    #[test]
    fn finds_our_parent_in_in_reply_to_or_references() {
        let raw = b"From: b@x\r\nIn-Reply-To: <other@gmail.com>\r\nReferences: <a@relay.test> <b@RELAY.test> <c@gmail.com>\r\n\r\nx\r\n";
        assert_eq!(
            parse(raw, RELAY).and_then(|m| m.in_reply_to),
            Some("b@RELAY.test".into())
        );
        let raw = b"From: b@x\r\nIn-Reply-To: <p@relay.test>\r\n\r\nx\r\n";
        assert_eq!(
            parse(raw, RELAY).and_then(|m| m.in_reply_to),
            Some("p@relay.test".into())
        );
    }

    #[test]
    fn keeps_html_and_attachments() {
        let raw = concat!(
            "From: b@x\r\nSubject: s\r\nMIME-Version: 1.0\r\n",
            "Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n",
            "--B\r\nContent-Type: multipart/alternative; boundary=\"A\"\r\n\r\n",
            "--A\r\nContent-Type: text/plain\r\n\r\nplain\r\n",
            "--A\r\nContent-Type: text/html\r\n\r\n<p>rich</p>\r\n--A--\r\n",
            "--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"a.pdf\"\r\n",
            "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--B--\r\n"
        );
        let m = parse(raw.as_bytes(), RELAY);
        let body = m.map(|m| m.body).unwrap_or_default();
        assert_eq!(body.text.as_deref(), Some("plain"));
        assert_eq!(body.html.as_deref(), Some("<p>rich</p>"));
        assert_eq!(body.attachments.len(), 1);
        assert_eq!(body.attachments[0].file_name, "a.pdf");
        assert_eq!(body.attachments[0].content_type, "application/pdf");
        assert_eq!(body.attachments[0].data, b"%PDF-");
    }
}
