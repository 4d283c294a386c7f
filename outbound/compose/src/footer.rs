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
    let mut placed = false;
    if let Some(text) = root.main_text_mut("plain") {
        text.push_str("\r\n\r\n");
        text.push_str(&footer.text());
        placed = true;
    }
    if let Some(html) = root.main_text_mut("html") {
        let footer = footer.html();
        match html.to_ascii_lowercase().rfind("</body>") {
            Some(at) => html.insert_str(at, &footer),
            None => {
                html.push('\n');
                html.push_str(&footer);
            }
        }
        placed = true;
    }
    if !placed {
        let original = std::mem::replace(root, Part::text("plain", ""));
        *root = Part::multipart("mixed", vec![Part::text("plain", footer.text()), original]);
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
