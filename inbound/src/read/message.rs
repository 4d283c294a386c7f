//! Reading a received message: who it claims to be from, which of our messages it
//! answers, and what the member wrote.

use mail_parser::MessageParser;
use maskrelay_compose::Body;
use maskrelay_compose::build::{LOOP_HEADER, loop_mark};

use crate::read::classify::{Kind, classify};
use crate::read::headers::{first_address, header_ids};
use crate::read::mime;
use crate::read::signed::Unrelayable;

/// What the listener needs from a received message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    /// The first address in the `From:` header (`From: Smith, Bob <bob@x>`, with its
    /// comma unquoted, reads as two mailboxes, the first without an address); `None`
    /// if the header holds no address at all.
    pub from: Option<String>,
    /// The first of our `Message-ID`s it answers (`In-Reply-To`, else `References`).
    pub in_reply_to: Option<String>,
    /// Whether a member or a machine wrote it.
    pub kind: Kind,
    /// It carries our own loop mark: it was relayed by this gateway before.
    pub looped: bool,
    /// How many `Received` headers it carries.
    pub hops: usize,
    /// What may be relayed of it, or why nothing can be.
    pub body: Result<Body, Unrelayable>,
}

/// Parses raw RFC 5322 bytes; `None` if they are not a message at all.
/// `null_sender` is true for `MAIL FROM:<>`; `now` is Unix seconds.
pub fn parse(
    raw: &[u8],
    relay_domain: &str,
    null_sender: bool,
    now: i64,
) -> Option<InboundMessage> {
    let message = MessageParser::default().parse(raw)?;
    let from = first_address(&message).map(str::to_owned);
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
    let mark = loop_mark(relay_domain);
    let looped = message.headers().iter().any(|h| {
        h.name.as_str().eq_ignore_ascii_case(LOOP_HEADER)
            && h.value
                .as_text()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case(&mark))
    });
    let hops = message
        .headers()
        .iter()
        .filter(|h| h.name.as_str().eq_ignore_ascii_case("received"))
        .count();
    Some(InboundMessage {
        from,
        in_reply_to,
        looped,
        hops,
        kind: classify(&message, null_sender),
        body: mime::body(&message, now),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use maskrelay_compose::{Content, Part};

    const RELAY: &str = "relay.test";

    const NOW: i64 = 1_800_000_000;

    fn read(raw: &[u8]) -> Option<InboundMessage> {
        parse(raw, RELAY, false, NOW)
    }

    fn texts(part: &Part) -> Vec<(String, String)> {
        match &part.content {
            Content::Text(t) => vec![(part.content_type.clone(), t.clone())],
            Content::Multipart(parts) => parts.iter().flat_map(texts).collect(),
            Content::Message(m) => texts(&m.root),
            Content::Binary(_) => Vec::new(),
        }
    }

    #[test]
    fn reads_sender_subject_date_and_text() {
        let raw = b"From: Bob <Bob@Example.net>\r\nTo: x@relay.test\r\nSubject: Re: Hi\r\nDate: Tue, 3 Mar 2026 10:02:00 +0100\r\n\r\nThanks!\r\n";
        let m = read(raw);
        let m = m.as_ref();
        assert_eq!(m.and_then(|m| m.from.as_deref()), Some("Bob@Example.net"));
        assert_eq!(
            m.map(|m| m.body.as_ref().map_or("", |b| b.subject.as_str())),
            Some("Re: Hi")
        );
        assert_eq!(
            m.and_then(|m| m.body.as_ref().ok().and_then(|b| b.date)),
            Some(1_772_528_520)
        );
        assert_eq!(m.map(|m| m.kind), Some(Kind::Personal));
        assert_eq!(
            m.and_then(|m| m.body.as_ref().ok().map(|b| texts(&b.root))),
            Some(vec![("text/plain".into(), "Thanks!\r\n".into())])
        );
    }

    #[test]
    fn dates_from_the_future_are_not_believed() {
        let raw = b"From: b@x\r\nDate: Fri, 1 Jan 2100 00:00:00 +0000\r\n\r\nx\r\n";
        assert_eq!(
            read(raw).and_then(|m| m.body.ok().and_then(|b| b.date)),
            None
        );
    }

    #[test]
    fn finds_our_parent_in_in_reply_to_or_references() {
        let raw = b"From: b@x\r\nIn-Reply-To: <other@gmail.com>\r\nReferences: <a@relay.test> <b@RELAY.test> <c@gmail.com>\r\n\r\nx\r\n";
        assert_eq!(
            read(raw).and_then(|m| m.in_reply_to),
            Some("b@RELAY.test".into())
        );
        let raw = b"From: b@x\r\nIn-Reply-To: <p@relay.test>\r\n\r\nx\r\n";
        assert_eq!(
            read(raw).and_then(|m| m.in_reply_to),
            Some("p@relay.test".into())
        );
    }

    #[test]
    fn keeps_the_mime_structure_and_decodes_every_text() {
        let raw = concat!(
            "From: b@x\r\nSubject: s\r\nMIME-Version: 1.0\r\nContent-Language: de\r\n",
            "Content-Type: multipart/mixed; boundary=\"B\"\r\n\r\n",
            "--B\r\nContent-Type: multipart/alternative; boundary=\"A\"\r\n\r\n",
            "--A\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nGr=FC=DFe bob@exa=\r\nmple.com\r\n",
            "--A\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPHA+cmljaDwvcD4=\r\n--A--\r\n",
            "--B\r\nContent-Type: image/png\r\nContent-Disposition: attachment; filename=\"a.png\"\r\n",
            "X-Secret: dropped\r\nContent-Transfer-Encoding: base64\r\n\r\niVBORw0KGgoA\r\n",
            "--B\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=notes.txt\r\n",
            "Content-Transfer-Encoding: base64\r\n\r\nY2FsbCBib2JAZXhhbXBsZS5jb20=\r\n",
            "--B\r\nContent-Type: text/calendar\r\nContent-Disposition: attachment; filename=invite.ics\r\n\r\nORGANIZER:mailto:bob@example.com\r\n",
            "--B--\r\n"
        );
        let body = read(raw.as_bytes()).and_then(|m| m.body.ok());
        let Some(body) = body else {
            panic!("not parsed");
        };
        assert_eq!(body.language.as_deref(), Some("de"));
        assert_eq!(
            texts(&body.root),
            vec![
                ("text/plain".into(), "Grüße bob@example.com".into()),
                ("text/html".into(), "<p>rich</p>".into()),
                // Readable bytes are text to the scrubber, whatever their type says.
                (
                    "application/octet-stream".into(),
                    "call bob@example.com".into()
                ),
                (
                    "text/calendar".into(),
                    "ORGANIZER:mailto:bob@example.com".into()
                ),
            ]
        );
        let Content::Multipart(top) = &body.root.content else {
            panic!("{body:?}");
        };
        assert_eq!(top[0].content_type, "multipart/alternative");
        assert_eq!(top[1].file_name.as_deref(), Some("a.png"));
        assert!(top[1].attachment);
        assert_eq!(
            top[1].content,
            Content::Binary(b"\x89PNG\r\n\x1a\n\0".to_vec())
        );
        assert!(!format!("{body:?}").contains("dropped"));
    }

    #[test]
    fn forwarded_messages_are_read_with_their_headers() {
        let raw = concat!(
            "From: b@x\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n",
            "--B\r\nContent-Type: text/plain\r\n\r\nsee below\r\n",
            "--B\r\nContent-Type: message/rfc822\r\n\r\n",
            "From: =?utf-8?q?J=C3=B6rg?= <joerg@example.de>\r\nTo: bob@example.com\r\nSubject: Orig\r\nReceived: from secret\r\n\r\ninner\r\n",
            "--B--\r\n"
        );
        let body = read(raw.as_bytes()).and_then(|m| m.body.ok());
        let dump = format!("{body:?}");
        assert!(
            dump.contains("Jörg") && dump.contains("joerg@example.de"),
            "{dump}"
        );
        assert!(dump.contains("inner") && !dump.contains("secret"), "{dump}");
    }

    #[test]
    fn an_unquoted_comma_in_the_name_still_finds_the_address() {
        let raw = b"From: Smith, Bob <bob@example.com>\r\n\r\nx\r\n";
        assert_eq!(
            read(raw).and_then(|m| m.from),
            Some("bob@example.com".into())
        );
        let raw = b"From: Bob Smith\r\n\r\nx\r\n";
        assert_eq!(read(raw).and_then(|m| m.from), None);
    }

    #[test]
    fn text_mislabelled_as_big5_keeps_its_characters() {
        let raw = concat!(
            "From: b@x\r\nContent-Type: multipart/alternative; boundary=B\r\n\r\n",
            "--B\r\nContent-Type: text/plain; charset=Big5\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
            "Gr=C3=BC=C3=9Fe, =E6=9C=83=E8=AD=B0\r\n",
            "--B\r\nContent-Type: text/html; charset=big5\r\nContent-Transfer-Encoding: base64\r\n\r\n",
            "PHA+R3LDvMOfZTwvcD4=\r\n",
            "--B--\r\n"
        );
        let body = read(raw.as_bytes()).and_then(|m| m.body.ok());
        assert_eq!(
            body.map(|b| texts(&b.root)),
            Some(vec![
                ("text/plain".into(), "Grüße, 會議".into()),
                ("text/html".into(), "<p>Grüße</p>".into()),
            ])
        );
    }

    #[test]
    fn a_latin1_attachment_of_any_type_is_read_as_text() {
        let raw = concat!(
            "From: b@x\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n",
            "--B\r\nContent-Type: text/plain\r\n\r\nsee the card\r\n",
            "--B\r\nContent-Type: application/octet-stream; name=bob.vcf\r\nContent-Transfer-Encoding: base64\r\n\r\n",
            "QkVHSU46VkNBUkQNCkZOOlpv6yBN/GxsZXINCkVNQUlMOnpvZUBleGFtcGxlLmNvbQ0KRU5EOlZDQVJEDQo=\r\n",
            "--B--\r\n"
        );
        let body = read(raw.as_bytes()).and_then(|m| m.body.ok());
        let Some(Content::Multipart(parts)) = body.map(|b| b.root.content) else {
            panic!("not parsed");
        };
        assert_eq!(
            parts[1].content,
            Content::Text(
                "BEGIN:VCARD\r\nFN:Zoë Müller\r\nEMAIL:zoe@example.com\r\nEND:VCARD\r\n".into()
            )
        );
        assert_eq!(parts[1].charset.as_deref(), Some("windows-1252"));
    }

    #[test]
    fn a_key_sent_as_a_text_file_is_dropped_and_noted() {
        let raw = concat!(
            "From: b@x\r\nContent-Type: multipart/mixed; boundary=\"=_k1\"\r\n\r\n",
            "--=_k1\r\nContent-Type: text/plain\r\n\r\nmy key is attached\r\n",
            "--=_k1\r\nContent-Type: text/plain; name=\"OpenPGP_0xB0B.asc\"\r\n",
            "Content-Disposition: attachment; filename=\"OpenPGP_0xB0B.asc\"\r\n\r\n",
            "-----BEGIN PGP PUBLIC KEY BLOCK-----\r\n\r\nmDMEZ\r\n=AbCd\r\n-----END PGP PUBLIC KEY BLOCK-----\r\n",
            "--=_k1--\r\n"
        );
        let body = read(raw.as_bytes()).and_then(|m| m.body.ok());
        assert_eq!(
            body.as_ref().map(|b| b.signature_removed),
            Some(true),
            "{body:?}"
        );
        assert_eq!(
            body.map(|b| texts(&b.root)),
            Some(vec![("text/plain".into(), "my key is attached".into())])
        );
    }
}
