//! The evidence in a report: status codes and the text that explains the failure,
//! leaving out the returned message (it quotes the original, not the failure).

use mail_parser::{Message, MimeHeaders, PartType};

/// The parts of a report that explain the failure.
pub(super) struct Evidence {
    /// The first status code.
    pub(super) status: Option<String>,
    /// All the explaining text.
    pub(super) text: String,
    /// The per-recipient blocks of a `message/delivery-status` part, in order.
    pub(super) recipients: Vec<Block>,
}

/// What a report says about one recipient (`Final-Recipient:` and its fields).
#[derive(Default)]
pub(super) struct Block {
    /// Its `Status:`.
    pub(super) status: Option<String>,
    /// Its fields, `Diagnostic-Code:` among them.
    pub(super) text: String,
}

impl Evidence {
    pub(super) fn of(message: &Message<'_>) -> Self {
        let mut evidence = Self {
            status: None,
            text: String::new(),
            recipients: Vec::new(),
        };
        for part in &message.parts {
            let subtype = part
                .content_type()
                .and_then(|ct| ct.subtype())
                .unwrap_or_default()
                .to_ascii_lowercase();
            match &part.body {
                // The returned message is what failed, not why: skip it.
                PartType::Message(_) => {}
                _ if subtype == "rfc822-headers" || subtype == "rfc822" => {}
                PartType::Text(t) | PartType::Html(t) => evidence.read(t),
                PartType::Binary(b) | PartType::InlineBinary(b) => {
                    if subtype.contains("delivery-status") || subtype.contains("feedback") {
                        evidence.read(&String::from_utf8_lossy(b));
                    }
                }
                PartType::Multipart(_) => {}
            }
        }
        if evidence.status.is_none() {
            evidence.status = first_code(&evidence.text);
        }
        if evidence.recipients.len() < 2 {
            let sections = prose_sections(&evidence.text);
            if sections.len() >= 2 {
                evidence.recipients = sections;
            }
        }
        evidence
    }

    /// Takes `Status:` and `Diagnostic-Code:` fields, and the text up to the
    /// returned message's headers (which quote the original, not the failure).
    fn read(&mut self, text: &str) {
        let mut block = Block::default();
        let mut names_recipient = false;
        for line in text.lines() {
            let lower = line.trim_start().to_ascii_lowercase();
            if lower.starts_with("status:") {
                self.status = self.status.take().or_else(|| first_code(line));
                block.status = block.status.take().or_else(|| first_code(line));
            }
            if lower.starts_with("received:") || lower.starts_with("message-id:") {
                break;
            }
            let is_final = lower.starts_with("final-recipient:");
            // Blocks are separated by blank lines, but some MTAs (AOL's) leave the
            // line out: a second Final-Recipient starts a block too.
            if lower.is_empty()
                || (is_final && block.text.to_ascii_lowercase().contains("final-recipient:"))
            {
                self.end_block(std::mem::take(&mut block), names_recipient);
                names_recipient = false;
            }
            names_recipient |= is_final || lower.starts_with("original-recipient:");
            block.text.push_str(line);
            block.text.push('\n');
            self.text.push_str(line);
            self.text.push('\n');
        }
        self.end_block(block, names_recipient);
    }

    fn end_block(&mut self, block: Block, names_recipient: bool) {
        if names_recipient {
            self.recipients.push(block);
        }
    }
}

/// The paragraphs of prose that each begin with a recipient's address on a line of
/// its own (`<a@b>:`, `"a@b":`, `a@b:`), as qmail, Exim and many others write
/// them; empty unless two or more recipients are named.
fn prose_sections(text: &str) -> Vec<Block> {
    let mut sections: Vec<Block> = Vec::new();
    let mut addresses: Vec<String> = Vec::new();
    for line in text.lines() {
        if let Some(address) = leading_address(line)
            && !addresses.contains(&address)
        {
            addresses.push(address);
            sections.push(Block::default());
        }
        if let Some(section) = sections.last_mut() {
            section.text.push_str(line);
            section.text.push('\n');
        }
    }
    if sections.len() < 2 {
        return Vec::new();
    }
    for section in &mut sections {
        section.status = first_code(&section.text);
    }
    sections
}

/// The address a line starts with, when it is followed by nothing but `:` and
/// perhaps the start of an explanation.
fn leading_address(line: &str) -> Option<String> {
    let line = line.trim();
    let (address, rest) = if let Some(quoted) = line.strip_prefix('<') {
        quoted.split_once('>')?
    } else if let Some(quoted) = line.strip_prefix('"') {
        quoted.split_once('"')?
    } else {
        line.split_once(':').filter(|(a, _)| !a.contains(' '))?
    };
    let rest = rest.trim_start();
    let well_formed = address.contains('@') && !address.contains([' ', '<', '>']);
    (well_formed && (rest.is_empty() || rest.starts_with(':') || line.ends_with(':')))
        .then(|| address.to_ascii_lowercase())
}

/// The first enhanced status code (`class.subject.detail`, class 2, 4 or 5) in text.
pub(super) fn first_code(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if !matches!(b, b'2' | b'4' | b'5') || bytes.get(i + 1) != Some(&b'.') {
            continue;
        }
        if i > 0 && (bytes[i - 1].is_ascii_digit() || bytes[i - 1] == b'.') {
            continue;
        }
        let rest = &text[i + 2..];
        let subject: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if subject.is_empty() || subject.len() > 3 {
            continue;
        }
        let after = &rest[subject.len()..];
        let Some(after) = after.strip_prefix('.') else {
            continue;
        };
        let detail: String = after.chars().take_while(char::is_ascii_digit).collect();
        if detail.is_empty() || detail.len() > 3 {
            continue;
        }
        let end = after[detail.len()..].chars().next();
        if end.is_some_and(|c| c.is_ascii_digit() || c == '.') {
            continue;
        }
        return Some(format!("{}.{subject}.{detail}", b as char));
    }
    None
}
