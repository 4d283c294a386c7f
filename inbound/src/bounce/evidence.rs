//! The evidence in a report: status codes and the text that explains the failure,
//! leaving out the returned message (it quotes the original, not the failure).

use mail_parser::{Message, MimeHeaders, PartType};

/// The parts of a report that explain the failure.
pub(super) struct Evidence {
    pub(super) status: Option<String>,
    pub(super) text: String,
}

impl Evidence {
    pub(super) fn of(message: &Message<'_>) -> Self {
        let mut evidence = Self {
            status: None,
            text: String::new(),
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
        evidence
    }

    /// Takes `Status:` and `Diagnostic-Code:` fields, and the text up to the
    /// returned message's headers (which quote the original, not the failure).
    fn read(&mut self, text: &str) {
        for line in text.lines() {
            let lower = line.trim_start().to_ascii_lowercase();
            if lower.starts_with("status:") && self.status.is_none() {
                self.status = first_code(line);
            }
            if lower.starts_with("received:") || lower.starts_with("message-id:") {
                break;
            }
            self.text.push_str(line);
            self.text.push('\n');
        }
    }
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
