//! Checking delivered mail for personal addresses, independently of the gateway's own
//! scrubber: the raw bytes, then every part decoded (transfer encoding, charset,
//! encoded-words in headers, HTML character references, percent escapes), bytes read
//! in the charsets text comes in (Windows-1252, UTF-16 either way round, Shift_JIS),
//! and base64 found inside any of those (PGP armour, PEM certificates) decoded in
//! turn. Certificates and OpenPGP packets hold addresses as plain bytes, so a
//! signature or key that slipped through is found once its armour is undone.

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
            PartType::Text(t) => {
                out.push((format!("{at}/text"), t.to_string()));
                // Plain text converted from HTML keeps its references (`&#64;`).
                out.push((
                    format!("{at}/text decoded"),
                    percent_decode(&decode_references(t)),
                ));
                armour_views(t, &format!("{at}/text"), out);
            }
            PartType::Html(h) => {
                out.push((format!("{at}/html"), h.to_string()));
                out.push((
                    format!("{at}/html decoded"),
                    percent_decode(&decode_references(h)),
                ));
                out.push((format!("{at}/html as text"), html_to_text(h)));
            }
            PartType::Binary(b) | PartType::InlineBinary(b) => {
                bytes_views(b, &format!("{at}/bytes"), out);
            }
            PartType::Message(inner) => collect(inner, &format!("{at}/forwarded"), out),
            PartType::Multipart(_) => {}
        }
    }
}

/// Bytes read every way text could be in them.
fn bytes_views(bytes: &[u8], at: &str, out: &mut Vec<(String, String)>) {
    let utf8 = String::from_utf8_lossy(bytes).into_owned();
    armour_views(&utf8, at, out);
    out.push((at.to_owned(), utf8));
    for encoding in [
        encoding_rs::WINDOWS_1252,
        encoding_rs::UTF_16LE,
        encoding_rs::UTF_16BE,
        encoding_rs::SHIFT_JIS,
    ] {
        let (text, _) = encoding.decode_without_bom_handling(bytes);
        out.push((format!("{at} as {}", encoding.name()), text.into_owned()));
    }
    // ASCII in UTF-16 or in a BMPString, whatever the alignment.
    let ascii: Vec<u8> = bytes.iter().copied().filter(|&b| b != 0).collect();
    out.push((
        format!("{at} without NULs"),
        String::from_utf8_lossy(&ascii).into_owned(),
    ));
}

/// Runs of base64 in `text` (armour bodies, PEM blocks, base64 pasted into text),
/// decoded and read as bytes, to two levels (base64 inside base64).
fn armour_views(text: &str, at: &str, out: &mut Vec<(String, String)>) {
    armour_views_at(text, at, out, 2);
}

fn armour_views_at(text: &str, at: &str, out: &mut Vec<(String, String)>, depth: u8) {
    use base64::Engine;
    if depth == 0 {
        return;
    }
    for (i, run) in base64_runs(text).into_iter().enumerate() {
        let engine = base64::engine::general_purpose::STANDARD_NO_PAD;
        let Ok(decoded) = engine.decode(run.trim_end_matches('=')) else {
            continue;
        };
        let at = format!("{at}/base64 run {i}");
        let utf8 = String::from_utf8_lossy(&decoded).into_owned();
        armour_views_at(&utf8, &at, out, depth - 1);
        let ascii: Vec<u8> = decoded.iter().copied().filter(|&b| b != 0).collect();
        out.push((at.clone(), utf8));
        out.push((
            format!("{at} without NULs"),
            String::from_utf8_lossy(&ascii).into_owned(),
        ));
    }
}

/// Maximal runs of at least 24 base64 characters, across line breaks; armour
/// checksum lines (`=abcd`) end a run.
fn base64_runs(text: &str) -> Vec<String> {
    let mut runs = Vec::new();
    let mut run = String::new();
    let flush = |run: &mut String, runs: &mut Vec<String>| {
        if run.len() >= 24 {
            runs.push(std::mem::take(run));
        }
        run.clear();
    };
    for line in text.lines() {
        let line = line.trim();
        let is_base64 = !line.is_empty()
            && !line.starts_with('=')
            && line
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
        if is_base64 {
            run.push_str(line);
            if line.ends_with('=') {
                flush(&mut run, &mut runs);
            }
        } else {
            flush(&mut run, &mut runs);
        }
    }
    flush(&mut run, &mut runs);
    runs
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
/// `relay_domain`, each once, with the first view it was seen in.
pub fn foreign_addresses(raw: &[u8], relay_domain: &str) -> Vec<String> {
    let relay = format!("@{}", relay_domain.to_lowercase());
    let mut seen = std::collections::HashSet::new();
    let mut found = Vec::new();
    for (at, text) in decoded_views(raw) {
        for address in addresses_in(&text) {
            let lower = address.to_lowercase();
            if !lower.ends_with(&relay) && seen.insert(lower) {
                found.push(format!("{address} in {at}"));
            }
        }
    }
    found
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
    fn finds_addresses_inside_armour_and_other_encodings() {
        use base64::Engine;
        let engine = base64::engine::general_purpose::STANDARD;
        // An OpenPGP user id packet and a DER IA5String, base64-armoured.
        let packet = engine.encode(b"\xb4\x1eBob Smith <bob@example.com>\x89\x02\x33\x04");
        let text = format!(
            "hi\r\n-----BEGIN PGP PUBLIC KEY BLOCK-----\r\n\r\n{packet}\r\n=AbCd\r\n-----END PGP PUBLIC KEY BLOCK-----\r\n"
        );
        let raw = format!("From: x@relay.test\r\n\r\n{text}");
        let found = leaks(raw.as_bytes(), &["bob@example.com"]);
        assert!(found.iter().any(|f| f.contains("base64 run")), "{found:?}");
        let utf16: Vec<u8> = "EMAIL:bob@example.com"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        let raw = format!(
            "From: x@relay.test\r\nContent-Type: application/x-card\r\nContent-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            engine.encode(&utf16)
        );
        let found = leaks(raw.as_bytes(), &["bob@example.com"]);
        assert!(found.iter().any(|f| f.contains("UTF-16BE")), "{found:?}");
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
