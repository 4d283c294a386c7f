//! Reading HTML the way a mail client shows it, for the scrubber.
//!
//! An HTML part yields several views: the text a reader sees (tags skipped, character
//! references and percent escapes decoded) and every attribute value (`href`, `title`,
//! `alt`…), decoded the same way. This is not a full HTML parser; it only needs to find
//! where text and attribute values are, and it never rewrites anything it did not
//! match, so markup it misreads passes through unchanged.

use super::view::{Decoded, View};

/// Tags that do not break a word: an address may run across them.
const INLINE_TAGS: &[&str] = &[
    "a", "abbr", "b", "bdi", "bdo", "code", "em", "font", "i", "mark", "s", "small", "span",
    "strong", "sub", "sup", "u", "wbr",
];

/// The text view and every attribute-value view of an HTML document.
pub fn views(html: &str) -> Vec<View> {
    let bytes = html.as_bytes();
    let mut text = Vec::new();
    let mut views = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if html[i..].starts_with("<!--") {
            // Comment delimiters are markup; what they enclose is searched as text,
            // because Outlook hides whole fragments of HTML inside conditional comments.
            i += 4;
            continue;
        }
        if html[i..].starts_with("-->") {
            i += 3;
            continue;
        }
        if bytes[i] == b'<' && bytes.get(i + 1).is_some_and(|b| starts_tag(*b)) {
            let (end, name) = tag(html, i, &mut views);
            if !INLINE_TAGS.contains(&name.as_str()) {
                text.push(Decoded {
                    ch: ' ',
                    span: i..i,
                });
            }
            i = end;
            continue;
        }
        let (decoded, next) = entity_or_char(html, i);
        text.push(decoded);
        i = next;
    }
    views.insert(0, View { chars: text }.percent_decoded());
    views
}

/// Plain text with its character references decoded and nothing else: the text that
/// clients converting HTML to plain text leave behind (`bob&#64;example.com`).
pub fn references_decoded(text: &str) -> View {
    let mut chars = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        let (decoded, next) = entity_or_char(text, i);
        chars.push(decoded);
        i = next;
    }
    View { chars }
}

fn starts_tag(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'/' || b == b'!' || b == b'?'
}

/// Reads the tag starting at `start`, pushing a view for each attribute value. Returns
/// the index after the tag and its lower-cased name.
fn tag(html: &str, start: usize, views: &mut Vec<View>) -> (usize, String) {
    let bytes = html.as_bytes();
    let mut i = start + 1;
    if bytes.get(i) == Some(&b'/') {
        i += 1;
    }
    let name_start = i;
    while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'-') {
        i += 1;
    }
    let name = html[name_start..i].to_ascii_lowercase();
    while i < bytes.len() && bytes[i] != b'>' {
        if bytes[i] != b'=' {
            i += 1;
            continue;
        }
        i += 1;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let (value_start, value_end, next) = match bytes.get(i) {
            Some(&q @ (b'"' | b'\'')) => {
                let end = html[i + 1..]
                    .find(q as char)
                    .map_or(bytes.len(), |p| i + 1 + p);
                (i + 1, end, (end + 1).min(bytes.len()))
            }
            _ => {
                let end = html[i..]
                    .find(|c: char| c.is_ascii_whitespace() || c == '>')
                    .map_or(bytes.len(), |p| i + p);
                (i, end, end)
            }
        };
        views.push(attribute_view(html, value_start, value_end));
        i = next;
    }
    ((i + 1).min(bytes.len()), name)
}

fn attribute_view(html: &str, start: usize, end: usize) -> View {
    let mut chars = Vec::new();
    let mut i = start;
    while i < end {
        let (decoded, next) = entity_or_char(&html[..end], i);
        chars.push(decoded);
        i = next;
    }
    View { chars }.percent_decoded()
}

/// The character at `i`, decoding a character reference if one starts there.
fn entity_or_char(html: &str, i: usize) -> (Decoded, usize) {
    let rest = &html[i..];
    if rest.starts_with('&')
        && let Some((ch, len)) = entity(rest)
    {
        return (
            Decoded {
                ch,
                span: i..i + len,
            },
            i + len,
        );
    }
    let ch = rest.chars().next().unwrap_or(' ');
    (
        Decoded {
            ch,
            span: i..i + ch.len_utf8(),
        },
        i + ch.len_utf8(),
    )
}

/// Decodes a character reference at the start of `s` (which starts with `&`): the
/// character and the length of the reference. Unknown names decode to a space, so
/// that they separate words as they would on screen.
fn entity(s: &str) -> Option<(char, usize)> {
    let body = &s[1..];
    if let Some(num) = body.strip_prefix('#') {
        let (radix, digits_at) = match num.as_bytes().first() {
            Some(b'x' | b'X') => (16, 2),
            _ => (10, 1),
        };
        let digits: String = s[1 + digits_at..]
            .chars()
            .take_while(|c| c.is_digit(radix))
            .take(8)
            .collect();
        let code = u32::from_str_radix(&digits, radix).ok()?;
        let mut len = 1 + digits_at + digits.len();
        if s[len..].starts_with(';') {
            len += 1;
        }
        return Some((char::from_u32(code).unwrap_or(' '), len));
    }
    let name: String = body
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .take(32)
        .collect();
    if name.is_empty() || !body[name.len()..].starts_with(';') {
        return None;
    }
    Some((named(&name).unwrap_or(' '), name.len() + 2))
}

/// Named references for the characters that can appear in an address or around one.
fn named(name: &str) -> Option<char> {
    Some(match name {
        "commat" => '@',
        "period" => '.',
        "hyphen" | "dash" => '-',
        "lowbar" | "UnderBar" => '_',
        "plus" => '+',
        "equals" => '=',
        "num" => '#',
        "dollar" => '$',
        "percnt" => '%',
        "amp" | "AMP" => '&',
        "apos" => '\'',
        "ast" | "midast" => '*',
        "sol" => '/',
        "quest" => '?',
        "Hat" => '^',
        "grave" | "DiacriticalGrave" => '`',
        "lcub" | "lbrace" => '{',
        "verbar" | "vert" | "VerticalLine" => '|',
        "rcub" | "rbrace" => '}',
        "tilde" => '~',
        "excl" => '!',
        "colon" => ':',
        "semi" => ';',
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "quot" | "QUOT" => '"',
        "lsqb" | "lbrack" => '[',
        "rsqb" | "rbrack" => ']',
        "lpar" => '(',
        "rpar" => ')',
        "comma" => ',',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(html: &str) -> Vec<String> {
        views(html)
            .iter()
            .map(|v| v.chars.iter().map(|d| d.ch).collect())
            .collect()
    }

    #[test]
    fn text_skips_tags_and_decodes_references() {
        let t = texts("<p>bob&#64;ex<b>am</b>ple&period;com &amp; &nbsp;x</p>");
        assert_eq!(t[0], " bob@example.com &  x ");
    }

    #[test]
    fn attribute_values_are_views_of_their_own() {
        let t = texts(
            r#"<a href="mailto:bob%40example.com" title='B&#x40;x'>hi</a><img src=cid:a%2Eb>"#,
        );
        assert_eq!(t[1..], ["mailto:bob@example.com", "B@x", "cid:a.b"]);
    }

    #[test]
    fn block_tags_separate_words() {
        let t = texts("<td>a@b.com</td><td>next</td>");
        assert_eq!(t[0], " a@b.com  next ");
    }

    #[test]
    fn comments_are_searched_as_text() {
        let t = texts("<!--[if mso]>a@b.c<![endif]-->");
        assert!(t[0].contains("a@b.c"), "{t:?}");
    }

    #[test]
    fn broken_markup_does_not_panic() {
        for s in [
            "<",
            "<a href=",
            "<a href=\"x",
            "&#",
            "&#x;",
            "&#99999999999;",
            "&",
            "<!--",
            "é<é",
        ] {
            let _ = views(s);
        }
    }
}
