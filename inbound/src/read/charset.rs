//! Reading bytes as text by what they are, not only by what their label says.
//!
//! Two kinds of mail get this wrong if labels are trusted:
//! - parts that are text but not typed `text/*` (a vCard as `application/octet-stream`
//!   in Latin-1, a CSV from Excel in Windows-1252, JSON in UTF-16): they carry
//!   addresses, so they must be read as text to be scrubbed;
//! - text declared in one charset and written in another (UTF-8 labelled `Big5`):
//!   decoding by the label turns it into mojibake and the writer's words are lost.
//!
//! Valid UTF-8 with non-ASCII characters is practically never an accident in a
//! legacy charset (its multi-byte sequences are too regular), so it wins over a
//! label that disagrees. A byte order mark wins over everything.

use std::borrow::Cow;

use encoding_rs::{Encoding, UTF_8};

/// Text decoded from bytes, and the charset it was read in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text.
    pub text: String,
    /// The charset the bytes were in.
    pub encoding: &'static Encoding,
}

/// The text of a `text/*` part, from its transfer-decoded bytes and the charset its
/// header declares. Never loses characters that some charset reads cleanly.
pub fn text(bytes: &[u8], declared: Option<&str>) -> Decoded {
    if let Some(decoded) = by_bom(bytes) {
        return decoded;
    }
    let label = declared.and_then(|l| Encoding::for_label(l.trim().as_bytes()));
    if let Ok(utf8) = std::str::from_utf8(bytes)
        && (label.is_none_or(|l| l == UTF_8) || !utf8.is_ascii())
    {
        return Decoded {
            text: utf8.to_owned(),
            encoding: UTF_8,
        };
    }
    if let Some(decoded) = label.and_then(|l| cleanly(bytes, l)) {
        return decoded;
    }
    if let Some(decoded) = cleanly(bytes, sniff(bytes)) {
        return decoded;
    }
    // Nothing reads it cleanly: keep what the label (or a byte-for-byte charset)
    // makes of it rather than nothing.
    let encoding = label.unwrap_or(encoding_rs::WINDOWS_1252);
    let (text, _) = encoding.decode_without_bom_handling(bytes);
    Decoded {
        text: text.into_owned(),
        encoding,
    }
}

/// The text in a part that is not typed as text, if its bytes are text a person
/// could read in some charset: a byte order mark, the declared charset, UTF-8, or
/// the charset they look like. `None` for binary content (images, PDFs, archives
/// hold control bytes that no text does).
pub fn readable(bytes: &[u8], declared: Option<&str>) -> Option<Decoded> {
    if bytes.is_empty() {
        return None;
    }
    if let Some(decoded) = by_bom(bytes) {
        return is_readable(&decoded.text).then_some(decoded);
    }
    // Every candidate below keeps ASCII's control bytes as they are, so one scan
    // rules out binary content before anything is decoded (ESC is allowed: the
    // ISO-2022 charsets switch with it).
    if bytes
        .iter()
        .any(|&b| (b < 0x20 && !b"\t\r\n\x0c\x1b".contains(&b)) || b == 0x7f)
    {
        return None;
    }
    let declared = declared.and_then(|l| Encoding::for_label(l.trim().as_bytes()));
    // A short text gives the detector little to go on, so the charsets text
    // attachments usually come in are tried after its guess. Binary content fails
    // them all alike: its control bytes are the same in every one of them.
    declared
        .into_iter()
        .chain([UTF_8, sniff(bytes)])
        .chain(LIKELY.iter().copied())
        .filter_map(|encoding| cleanly(bytes, encoding))
        .find(|decoded| is_readable(&decoded.text))
}

/// Legacy charsets of text attachments, most common first.
const LIKELY: &[&Encoding] = &[
    encoding_rs::WINDOWS_1252,
    encoding_rs::SHIFT_JIS,
    encoding_rs::EUC_JP,
    encoding_rs::GBK,
    encoding_rs::BIG5,
    encoding_rs::EUC_KR,
    encoding_rs::WINDOWS_1251,
    encoding_rs::ISO_8859_2,
];

/// Whether decoded text is free of control characters other than white space.
pub fn is_readable(text: &str) -> bool {
    !text
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n' | '\x0c'))
}

fn by_bom(bytes: &[u8]) -> Option<Decoded> {
    let (encoding, bom) = Encoding::for_bom(bytes)?;
    let rest = bytes.get(bom..)?;
    cleanly(rest, encoding)
}

/// `bytes` decoded in `encoding`, if no byte was malformed there.
fn cleanly(bytes: &[u8], encoding: &'static Encoding) -> Option<Decoded> {
    let text: Cow<'_, str> = encoding.decode_without_bom_handling_and_without_replacement(bytes)?;
    Some(Decoded {
        text: text.into_owned(),
        encoding,
    })
}

/// The legacy charset `bytes` most look like.
fn sniff(bytes: &[u8]) -> &'static Encoding {
    let mut detector = chardetng::EncodingDetector::new();
    detector.feed(bytes, true);
    detector.guess(None, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_labelled_as_a_legacy_charset_is_read_as_utf8() {
        let bytes = "會議 Grüße bob@example.com".as_bytes();
        for label in ["Big5", "iso-8859-1", "shift_jis", "windows-1252"] {
            let d = text(bytes, Some(label));
            assert_eq!(d.text, "會議 Grüße bob@example.com", "{label}");
        }
    }

    #[test]
    fn real_legacy_text_is_read_by_its_label() {
        let (big5, _, _) = encoding_rs::BIG5.encode("會議在星期二");
        assert_eq!(text(&big5, Some("big5")).text, "會議在星期二");
        assert_eq!(text(b"Gr\xfc\xdfe", Some("latin1")).text, "Grüße");
        // ASCII is ASCII whatever the label.
        assert_eq!(text(b"plain", Some("big5")).text, "plain");
    }

    #[test]
    fn a_wrong_label_falls_back_to_what_reads_cleanly() {
        // Shift_JIS bytes labelled UTF-8 are not lost to replacement characters.
        let (sjis, _, _) =
            encoding_rs::SHIFT_JIS.encode("こんにちは、会議の件です。よろしくお願いします。");
        let d = text(&sjis, Some("utf-8"));
        assert_eq!(d.encoding, encoding_rs::SHIFT_JIS);
        assert!(!d.text.contains('\u{fffd}'), "{}", d.text);
    }

    #[test]
    fn readable_finds_text_in_any_common_encoding() {
        let card = "BEGIN:VCARD\r\nFN:Zoë Müller\r\nEMAIL:zoe@example.com\r\nEND:VCARD\r\n";
        let (latin1, _, _) = encoding_rs::WINDOWS_1252.encode(card);
        assert_eq!(readable(&latin1, None).map(|d| d.text), Some(card.into()));
        let mut utf16: Vec<u8> = vec![0xff, 0xfe];
        utf16.extend(card.encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(readable(&utf16, None).map(|d| d.text), Some(card.into()));
        let mut utf16be: Vec<u8> = vec![0xfe, 0xff];
        utf16be.extend(card.encode_utf16().flat_map(u16::to_be_bytes));
        assert_eq!(readable(&utf16be, None).map(|d| d.text), Some(card.into()));
    }

    #[test]
    fn binary_content_is_not_readable() {
        assert_eq!(readable(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", None), None);
        assert_eq!(readable(b"PK\x03\x04\x14\0\x06\0", None), None);
        assert_eq!(readable(b"", None), None);
    }
}
