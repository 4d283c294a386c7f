//! The footer under a member's message: who it is from and through whom, that
//! answering keeps both addresses private, and the reader's one-click links (see
//! [`crate::link`]).

use crate::content::Part;

/// Links the reader can follow from the footer.
#[derive(Debug, Clone, Copy)]
pub struct FooterLinks<'a> {
    /// Blocks the writer for the reader.
    pub block: &'a str,
    /// Turns off all member messages for the reader.
    pub stop: &'a str,
}

/// What the footer of one message says.
struct Footer<'a> {
    writer_name: &'a str,
    org_name: &'a str,
    links: Option<FooterLinks<'a>>,
    signature_removed: bool,
}

/// Appends the footer to the text and HTML a reader sees; a message with neither
/// gets a text part in front, so that the footer is never lost.
pub(crate) fn add_footer(
    root: &mut Part,
    writer_name: &str,
    org_name: &str,
    links: Option<FooterLinks<'_>>,
    signature_removed: bool,
) {
    let footer = Footer {
        writer_name,
        org_name,
        links,
        signature_removed,
    };
    append(root, &footer.text(), &footer.html());
}

/// Appends the line under a broadcast in a category: why the reader gets it, and
/// the link that unsubscribes them from that category alone.
pub(crate) fn add_unsubscribe_footer(
    root: &mut Part,
    org_name: &str,
    category_name: &str,
    unsubscribe_url: &str,
) {
    let text = format!(
        "-- \r\nYou receive \"{category_name}\" as a member of {org_name}. \
         Unsubscribe from \"{category_name}\": {unsubscribe_url}"
    );
    let html = format!(
        "<hr><p style=\"font-size:small;color:#666\">You receive &quot;{category}&quot; as a \
         member of {org}. <a href=\"{url}\">Unsubscribe from &quot;{category}&quot;</a></p>",
        category = escape_html(category_name),
        org = escape_html(org_name),
        url = escape_html(unsubscribe_url)
    );
    append(root, &text, &html);
}

/// Appends a footer to the text and HTML a reader sees; a message with neither
/// gets a text part in front, so that the footer is never lost.
fn append(root: &mut Part, text: &str, html: &str) {
    let mut placed = false;
    if let Some(plain) = root.main_text_mut("plain") {
        plain.push_str("\r\n\r\n");
        plain.push_str(text);
        placed = true;
    }
    if let Some(body) = root.main_text_mut("html") {
        match body.to_ascii_lowercase().rfind("</body>") {
            Some(at) => body.insert_str(at, html),
            None => {
                body.push('\n');
                body.push_str(html);
            }
        }
        placed = true;
    }
    if !placed {
        let original = std::mem::replace(root, Part::text("plain", ""));
        *root = Part::multipart("mixed", vec![Part::text("plain", text), original]);
    }
}

impl Footer<'_> {
    fn text(&self) -> String {
        let writer = self.writer_name;
        let mut footer = format!(
            "-- \r\nYou received this message from {writer} through {}. Reply to this email \
             to answer {writer}; your email addresses stay private.",
            self.org_name
        );
        if self.signature_removed {
            footer.push_str("\r\n");
            footer.push_str(SIGNATURE_NOTE);
        }
        if let Some(links) = &self.links {
            footer.push_str(&format!(
                "\r\nBlock {writer}: {}\r\nStop all messages from members of {}: {}",
                links.block, self.org_name, links.stop
            ));
        }
        footer
    }

    fn html(&self) -> String {
        let writer = escape_html(self.writer_name);
        let org = escape_html(self.org_name);
        let links = self.links.as_ref().map_or(String::new(), |l| {
            format!(
                "<br><a href=\"{}\">Block {writer}</a> &middot; \
                 <a href=\"{}\">Stop all messages from members of {org}</a>",
                escape_html(l.block),
                escape_html(l.stop)
            )
        });
        let signature = if self.signature_removed {
            format!("<br>{}", escape_html(SIGNATURE_NOTE))
        } else {
            String::new()
        };
        format!(
            "<hr><p style=\"font-size:small;color:#666\">You received this message from \
             {writer} through {org}. Reply to this email to answer {writer}; your email \
             addresses stay private.{signature}{links}</p>"
        )
    }
}

/// The footer line for a message whose signature or key was taken out. It names
/// nobody: the signature may have been on a message the writer forwarded.
const SIGNATURE_NOTE: &str = "A digital signature or public key was removed from this message, \
                              because it carries an email address.";

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
