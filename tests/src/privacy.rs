//! Checking delivered mail for personal addresses, independently of the gateway's own
//! scrubber: the raw bytes, then every part decoded (transfer encoding, charset,
//! encoded-words in headers, HTML character references, percent escapes).

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

/// Everything a reader could see in a message, decoded: one `(where, text)` per
/// header of every part, part body, attachment name, recursively through forwarded
/// messages. HTML bodies appear twice: as written and as text.
pub fn decoded_views(raw: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    match MessageParser::default().parse(raw) {
        Some(m) => collect(&m, "message", &mut out),
        None => out.push(("unparsed".into(), String::from_utf8_lossy(raw).into_owned())),
    }
    out
}

fn collect(m: &Message<'_>, path: &str, out: &mut Vec<(String, String)>) {
    for (i, part) in m.parts.iter().enumerate() {
        let at = format!("{path}/part{i}");
        for h in part.headers() {
            out.push((
                format!("{at}/header {}", h.name.as_str()),
                format!("{:?}", h.value),
            ));
        }
        if let Some(name) = part.attachment_name() {
            out.push((format!("{at}/file name"), name.to_owned()));
        }
        match &part.body {
            PartType::Text(t) => out.push((format!("{at}/text"), t.to_string())),
            PartType::Html(h) => {
                out.push((format!("{at}/html"), h.to_string()));
                out.push((
                    format!("{at}/html decoded"),
                    percent_decode(&decode_references(h)),
                ));
                out.push((format!("{at}/html as text"), html_to_text(h)));
            }
            PartType::Binary(b) | PartType::InlineBinary(b) => {
                out.push((
                    format!("{at}/bytes"),
                    String::from_utf8_lossy(b).into_owned(),
                ));
            }
            PartType::Message(inner) => collect(inner, &format!("{at}/forwarded"), out),
            PartType::Multipart(_) => {}
        }
    }
}

/// Where each of `addresses` occurs in `raw`, case-insensitively, raw or decoded.
pub fn leaks(raw: &[u8], addresses: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    let mut views = vec![("raw".to_owned(), String::from_utf8_lossy(raw).into_owned())];
    views.extend(decoded_views(raw));
    for (at, text) in &views {
        let lower = text.to_lowercase();
        for address in addresses {
            if let Some(pos) = lower.find(&address.to_lowercase()) {
                let start = floor(&lower, pos.saturating_sub(60));
                let end = floor(&lower, (pos + address.len() + 20).min(lower.len()));
                found.push(format!("{address} in {at}: …{}…", &lower[start..end]));
            }
        }
    }
    found
}

/// Every address-like `local@domain.tld` in the decoded views whose domain is not
/// `relay_domain`.
pub fn foreign_addresses(raw: &[u8], relay_domain: &str) -> Vec<String> {
    decoded_views(raw)
        .into_iter()
        .flat_map(|(at, text)| {
            addresses_in(&text)
                .into_iter()
                .filter(|a| {
                    !a.to_lowercase()
                        .ends_with(&format!("@{}", relay_domain.to_lowercase()))
                })
                .map(move |a| format!("{a} in {at}"))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Address-like tokens: a run of local-part characters, `@`, and a dotted domain
/// whose last label is alphabetic.
pub fn addresses_in(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let local = |c: char| c.is_alphanumeric() || "._%+-'".contains(c);
    let domain = |c: char| c.is_alphanumeric() || c == '.' || c == '-';
    let mut found = Vec::new();
    for (at, _) in chars.iter().enumerate().filter(|(_, c)| **c == '@') {
        let mut start = at;
        while start > 0 && local(chars[start - 1]) {
            start -= 1;
        }
        let mut end = at + 1;
        while end < chars.len() && domain(chars[end]) {
            end += 1;
        }
        let host: String = chars[at + 1..end].iter().collect();
        let host = host.trim_end_matches(['.', '-']);
        let tld_ok = host
            .rsplit_once('.')
            .is_some_and(|(_, tld)| tld.len() >= 2 && tld.chars().all(char::is_alphabetic));
        if start < at && tld_ok {
            let local: String = chars[start..at].iter().collect();
            found.push(format!("{local}@{host}"));
        }
    }
    found
}

/// HTML as a reader sees it: tags dropped, character references and percent escapes
/// decoded.
pub fn html_to_text(html: &str) -> String {
    let mut text = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            _ if !in_tag => text.push(c),
            _ => {}
        }
    }
    percent_decode(&decode_references(&text))
}

fn decode_references(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest.find(';').filter(|&e| e <= 12);
        let decoded = end.and_then(|e| {
            let name = &rest[1..e];
            let code =
                if let Some(hex) = name.strip_prefix("#x").or_else(|| name.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = name.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    match name {
                        "amp" => Some(38),
                        "lt" => Some(60),
                        "gt" => Some(62),
                        "quot" => Some(34),
                        "nbsp" => Some(32),
                        "commat" => Some(64),
                        "period" => Some(46),
                        _ => None,
                    }
                };
            code.and_then(char::from_u32).map(|c| (c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn floor(s: &str, mut at: usize) -> usize {
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// `text` without whitespace and without any word holding an `@`, for comparing
/// what a member wrote with what was delivered (where addresses were replaced).
pub fn comparable(text: &str) -> String {
    text.split_whitespace()
        .filter(|w| !w.contains('@'))
        .collect::<String>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_addresses_hidden_by_encodings() {
        let raw = concat!(
            "From: x@relay.test\r\nSubject: =?utf-8?q?Bob_=3Cbob=40example=2Ecom=3E?=\r\n",
            "Content-Type: text/html\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n",
            "<a href=3D\"mailto:al%69ce%40example.org\">alice&#64;exam=\r\nple.org</a>\r\n"
        );
        let found = leaks(raw.as_bytes(), &["bob@example.com", "alice@example.org"]);
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("bob@example.com in message/part0/header")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|f| f.starts_with("alice@example.org in message/part0/html as text")),
            "{found:?}"
        );
        assert!(
            found.iter().any(|f| f
                .starts_with("alice@example.org in message/part0/html decoded: …<a href=\"mailto")),
            "{found:?}"
        );
    }

    #[test]
    fn relay_addresses_are_not_foreign() {
        let raw = b"From: a@relay.test\r\n\r\nwrite to b@relay.test or carol@x.example\r\n";
        assert_eq!(
            foreign_addresses(raw, "relay.test"),
            vec!["carol@x.example in message/part0/text".to_owned()]
        );
    }
}
