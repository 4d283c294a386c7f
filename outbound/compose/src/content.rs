//! What a member wrote, as a MIME tree that keeps only what may be relayed.
//!
//! The inbound side reads a received message into this shape and the API builds one
//! from JSON; [`crate::build`] turns it back into MIME. The tree is the allowlist:
//! each part keeps its type, file name, language and content id, and nothing else of
//! its headers; a forwarded message keeps From, To, Cc, Date and Subject.

use crate::scrub::Scrubber;

/// A message's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    /// Subject line.
    pub subject: String,
    /// When the writer sent it (Unix seconds), if their client said and it is
    /// believable; relayed in UTC so that their time zone is not.
    pub date: Option<i64>,
    /// `Content-Language` of the message.
    pub language: Option<String>,
    /// The MIME tree.
    pub root: Part,
    /// The writer's signature or public key was taken out (it names their address);
    /// the footer tells the reader.
    pub signature_removed: bool,
}

/// One MIME part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Lower-case `type/subtype`.
    pub content_type: String,
    /// Set for attachments, or inline parts with a name.
    pub file_name: Option<String>,
    /// Set for inline parts referenced from HTML (`cid:`), without angle brackets.
    pub content_id: Option<String>,
    /// `Content-Language` of the part.
    pub language: Option<String>,
    /// Whether it is shown as an attachment rather than inline.
    pub attachment: bool,
    /// The charset text content is written back in, when not UTF-8: attachments
    /// (a CSV for Excel, a vCard) are read by programs that ignore MIME's charset
    /// label, so they keep the encoding they came in.
    pub charset: Option<String>,
    /// The content.
    pub content: Content,
}

/// The content of a part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Decoded text (any `text/*`, and text-like application types).
    Text(String),
    /// Bytes relayed as they are.
    Binary(Vec<u8>),
    /// A forwarded message (`message/rfc822`).
    Message(Box<Nested>),
    /// Children of a `multipart/*` part.
    Multipart(Vec<Part>),
}

/// A forwarded message, reduced to the headers a reader needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nested {
    /// Subject line.
    pub subject: Option<String>,
    /// Date, Unix seconds.
    pub date: Option<i64>,
    /// `From:` mailboxes.
    pub from: Vec<Mailbox>,
    /// `To:` mailboxes.
    pub to: Vec<Mailbox>,
    /// `Cc:` mailboxes.
    pub cc: Vec<Mailbox>,
    /// Its content.
    pub root: Part,
}

/// A name and address in a forwarded message's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// Display name.
    pub name: Option<String>,
    /// Address, if it was not removed.
    pub address: Option<String>,
}

impl Part {
    /// An inline text part.
    pub fn text(subtype: &str, text: impl Into<String>) -> Self {
        Self {
            content_type: format!("text/{subtype}"),
            file_name: None,
            content_id: None,
            language: None,
            attachment: false,
            charset: None,
            content: Content::Text(text.into()),
        }
    }

    /// A `multipart/<subtype>` part.
    pub fn multipart(subtype: &str, parts: Vec<Part>) -> Self {
        Self {
            content_type: format!("multipart/{subtype}"),
            file_name: None,
            content_id: None,
            language: None,
            attachment: false,
            charset: None,
            content: Content::Multipart(parts),
        }
    }

    /// Whether the part's type is `text/<subtype>`.
    pub fn is_text(&self, subtype: &str) -> bool {
        matches!(self.content, Content::Text(_))
            && self.content_type.strip_prefix("text/") == Some(subtype)
    }

    /// Replaces addresses in every text, HTML, file name and forwarded header.
    pub fn scrub(&mut self, scrubber: &Scrubber) {
        if let Some(name) = &mut self.file_name {
            *name = scrubber.text(name).into_owned();
        }
        match &mut self.content {
            Content::Text(text) => {
                let scrubbed = if self.content_type == "text/html" {
                    scrubber.html(text)
                } else {
                    scrubber.text(text)
                };
                *text = scrubbed.into_owned();
            }
            Content::Binary(_) => {}
            Content::Message(nested) => nested.scrub(scrubber),
            Content::Multipart(parts) => parts.iter_mut().for_each(|p| p.scrub(scrubber)),
        }
    }

    fn rename_content_ids(&mut self, relay_domain: &str, renamed: &mut Vec<(String, String)>) {
        if let Some(old) = self.content_id.take() {
            let salt = maskrelay_schema::tokens::random_token(12).unwrap_or_default();
            let new = format!("part{}.{salt}@{relay_domain}", renamed.len() + 1);
            renamed.push((old, new.clone()));
            self.content_id = Some(new);
        }
        match &mut self.content {
            Content::Message(nested) => nested.root.rename_content_ids(relay_domain, renamed),
            Content::Multipart(parts) => parts
                .iter_mut()
                .for_each(|p| p.rename_content_ids(relay_domain, renamed)),
            Content::Text(_) | Content::Binary(_) => {}
        }
    }

    fn relink_content_ids(&mut self, renamed: &[(String, String)]) {
        match &mut self.content {
            Content::Text(html) if self.content_type == "text/html" => {
                if let Some(relinked) = relink(html, renamed) {
                    *html = relinked;
                }
            }
            Content::Message(nested) => nested.root.relink_content_ids(renamed),
            Content::Multipart(parts) => {
                parts.iter_mut().for_each(|p| p.relink_content_ids(renamed))
            }
            Content::Text(_) | Content::Binary(_) => {}
        }
    }

    /// The first inline text part of `subtype` reached through multiparts only (the
    /// part a reader sees as the message, not an attachment or a forwarded message).
    pub fn main_text_mut(&mut self, subtype: &str) -> Option<&mut String> {
        if self.attachment {
            return None;
        }
        let is_it = self.is_text(subtype);
        match &mut self.content {
            Content::Text(text) if is_it => Some(text),
            Content::Multipart(parts) => parts.iter_mut().find_map(|p| p.main_text_mut(subtype)),
            _ => None,
        }
    }
}

/// `html` with every `cid:` link to a renamed id pointing at its new name, in one
/// pass; `None` if no link changed.
fn relink(html: &str, renamed: &[(String, String)]) -> Option<String> {
    let names: std::collections::HashMap<&str, &str> = renamed
        .iter()
        .map(|(old, new)| (old.as_str(), new.as_str()))
        .collect();
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    let mut changed = false;
    while let Some(at) = rest
        .as_bytes()
        .windows(4)
        .position(|w| w.eq_ignore_ascii_case(b"cid:"))
    {
        let after = &rest[at + 4..];
        let end = after
            .find(|c: char| c.is_whitespace() || "\"'<>()".contains(c))
            .unwrap_or(after.len());
        out.push_str(&rest[..at]);
        match names.get(&after[..end]) {
            Some(new) => {
                out.push_str("cid:");
                out.push_str(new);
                changed = true;
            }
            None => out.push_str(&rest[at..at + 4 + end]),
        }
        rest = &after[end..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

impl Nested {
    fn scrub(&mut self, scrubber: &Scrubber) {
        if let Some(subject) = &mut self.subject {
            *subject = scrubber.text(subject).into_owned();
        }
        for mailbox in self.from.iter_mut().chain(&mut self.to).chain(&mut self.cc) {
            mailbox.scrub(scrubber);
        }
        self.root.scrub(scrubber);
    }
}

impl Mailbox {
    fn scrub(&mut self, scrubber: &Scrubber) {
        if let Some(name) = &mut self.name {
            *name = scrubber.text(name).into_owned();
        }
        if let Some(address) = &self.address {
            let scrubbed = scrubber.text(address);
            // What replaced a removed address is not an address.
            self.address = scrubbed.contains('@').then(|| scrubbed.into_owned());
        }
    }
}

impl Body {
    /// Content written through the API: plain text, optionally with an HTML version.
    pub fn from_text(subject: impl Into<String>, text: &str, html: Option<&str>) -> Self {
        let root = match html {
            Some(html) => Part::multipart(
                "alternative",
                vec![Part::text("plain", text), Part::text("html", html)],
            ),
            None => Part::text("plain", text),
        };
        Self {
            subject: subject.into(),
            date: None,
            language: None,
            root,
            signature_removed: false,
        }
    }

    /// Replaces addresses everywhere, including the subject.
    ///
    /// Content ids are renamed first: clients build them from the writer's domain
    /// or address (`part1.0605@example.com`), and the `cid:` links in HTML must follow.
    pub fn scrub(&mut self, scrubber: &Scrubber) {
        let mut renamed = Vec::new();
        self.root
            .rename_content_ids(scrubber.relay_domain(), &mut renamed);
        if !renamed.is_empty() {
            self.root.relink_content_ids(&renamed);
        }
        self.subject = scrubber.text(&self.subject).into_owned();
        self.root.scrub(scrubber);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cid_links_follow_renamed_content_ids() {
        let renamed = vec![("a@x".to_owned(), "part1@relay".to_owned())];
        let html = r#"<img src="cid:a@x"><img src='CID:a@x'><img src="cid:other">cid:a@xy"#;
        assert_eq!(
            relink(html, &renamed).as_deref(),
            Some(
                r#"<img src="cid:part1@relay"><img src='cid:part1@relay'><img src="cid:other">cid:a@xy"#
            )
        );
        assert_eq!(relink("<p>no links</p>", &renamed), None);
    }

    #[test]
    fn content_ids_are_renamed_and_html_follows() {
        let mut image = Part::text("plain", "");
        image.content_type = "image/png".into();
        image.content = Content::Binary(vec![1, 2, 3]);
        image.content_id = Some("img1.0605@bob.example".into());
        let html = Part::text("html", "<img src=\"cid:img1.0605@bob.example\">");
        let mut body = Body {
            subject: "s".into(),
            date: None,
            language: None,
            signature_removed: false,
            root: Part::multipart("related", vec![html, image]),
        };
        body.scrub(&Scrubber::new("relay.test", false));
        let Content::Multipart(parts) = &body.root.content else {
            panic!("{body:?}");
        };
        let cid = parts[1].content_id.clone().unwrap_or_default();
        assert!(
            cid.starts_with("part1.") && cid.ends_with("@relay.test"),
            "{cid}"
        );
        assert_eq!(
            parts[0].content,
            Content::Text(format!("<img src=\"cid:{cid}\">"))
        );
        assert!(!format!("{body:?}").contains("bob.example"));
    }

    #[test]
    fn main_text_skips_attachments_and_forwarded_messages() {
        let mut attached = Part::text("plain", "attached");
        attached.attachment = true;
        let forwarded = Part {
            content: Content::Message(Box::new(Nested {
                subject: None,
                date: None,
                from: vec![],
                to: vec![],
                cc: vec![],
                root: Part::text("plain", "forwarded"),
            })),
            ..Part::text("plain", "")
        };
        let mut root = Part::multipart(
            "mixed",
            vec![attached, forwarded, Part::text("html", "<p>main</p>")],
        );
        assert_eq!(root.main_text_mut("plain"), None);
        assert_eq!(
            root.main_text_mut("html").map(|t| t.as_str()),
            Some("<p>main</p>")
        );
    }

    #[test]
    fn scrubbing_reaches_names_subjects_and_forwarded_headers() {
        let mut s = Scrubber::new("relay.test", true);
        s.replace("bob@example.com", "b@relay.test");
        let mut file = Part::text("plain", "bob@example.com");
        file.file_name = Some("card-bob@example.com.vcf".into());
        file.attachment = true;
        let forwarded = Part {
            content_type: "message/rfc822".into(),
            content: Content::Message(Box::new(Nested {
                subject: Some("from carol@x.example".into()),
                date: None,
                from: vec![Mailbox {
                    name: Some("Bob (bob@example.com)".into()),
                    address: Some("bob@example.com".into()),
                }],
                to: vec![Mailbox {
                    name: None,
                    address: Some("carol@x.example".into()),
                }],
                cc: vec![],
                root: Part::text("html", "<a href=mailto:bob@example.com>x</a>"),
            })),
            ..Part::text("plain", "")
        };
        let mut body = Body {
            subject: "Re: bob@example.com".into(),
            date: None,
            language: None,
            signature_removed: false,
            root: Part::multipart("mixed", vec![file, forwarded]),
        };
        body.scrub(&s);
        let dump = format!("{body:?}");
        assert!(
            !dump.contains("bob@example.com") && !dump.contains("carol@"),
            "{dump}"
        );
        assert!(dump.contains("card-b@relay.test.vcf"), "{dump}");
        assert!(dump.contains("address: None"), "{dump}");
    }
}
