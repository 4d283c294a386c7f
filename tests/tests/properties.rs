//! Property tests (the stable toolchain has no `cargo fuzz`): generated input for the
//! message path and for the SMTP command parser.
//!
//! - Wherever and however a member's address is hidden in a reply, the composed
//!   message holds it nowhere, raw or decoded; also in attachments of non-text types
//!   written in Latin-1, Windows-1252, UTF-16 (either byte order) or Shift_JIS.
//! - Arbitrary bytes, and real messages with bytes changed, go through parsing,
//!   scrubbing and composing without a panic; so do arbitrary bytes through the
//!   BER rewriter and the CMS reader.
//! - Arbitrary command streams over a real socket get only well-formed replies, and
//!   nothing panics in any session.
//!
//! `PROPTEST_CASES=N` runs more cases than the defaults (256 for the message path, 48
//! for sessions).

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use maskrelay_compose::Scrubber;
use maskrelay_compose::build::{Draft, Sender, build};
use maskrelay_inbound::read::message::parse;
use maskrelay_tests::Backend;
use maskrelay_tests::gateway::TestGateway;
use maskrelay_tests::privacy::leaks;
use maskrelay_tests::smarthost::Smarthost;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ALICE: &str = "alice.liddell@example.com";
const BOB: &str = "bob.smith@example.net";
const ALICE_RELAY: &str = "aaaaaaaaaaaaaaaa@relay.test";
const BOB_RELAY: &str = "bbbbbbbbbbbbbbbb@relay.test";

/// Panics anywhere in this process, including session tasks that tokio would
/// otherwise survive silently.
fn panics() -> &'static AtomicUsize {
    static COUNT: OnceLock<&'static AtomicUsize> = OnceLock::new();
    COUNT.get_or_init(|| {
        let count: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            count.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
        count
    })
}

/// Parses, scrubs and composes `raw` as Bob's reply to Alice.
fn relay(raw: &[u8]) -> Option<Vec<u8>> {
    let message = parse(raw, "relay.test", false, 1_800_000_000)?;
    let mut scrubber = Scrubber::new("relay.test", false);
    scrubber.replace(BOB, BOB_RELAY);
    scrubber.replace(ALICE, ALICE_RELAY);
    let mut body = message.body.ok()?;
    body.scrub(&scrubber);
    build(&Draft {
        from: Sender::Member {
            name: "Bob",
            relay_address: BOB_RELAY,
            links: None,
        },
        org_name: "Club",
        reader_name: "Alice",
        reader_relay_address: ALICE_RELAY,
        message_id: "m@relay.test",
        in_reply_to: None,
        references: &[],
        date: 1_800_000_000,
        relay_domain: "relay.test",
        body: &body,
    })
    .ok()
}

fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Quoted-printable with a soft line break at `split` (as clients fold long lines).
fn quoted_printable(text: &str, split: usize) -> String {
    let mut out = String::new();
    for (i, b) in text.bytes().enumerate() {
        if i == split {
            out.push_str("=\r\n");
        }
        match b {
            b'=' | 0x80..=0xff => out.push_str(&format!("={b:02X}")),
            _ => out.push(b as char),
        }
    }
    out
}

/// One way of hiding `address` in a message; returns the whole message.
fn hide(address: &str, how: u8, split: usize, filler: &str) -> String {
    let head = |ct: &str, cte: &str| {
        format!(
            "From: {BOB}\r\nTo: {ALICE_RELAY}\r\nSubject: Re: x\r\nMIME-Version: 1.0\r\nContent-Type: {ct}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n"
        )
    };
    let text = format!("{filler} On Tue, Someone <{address}> wrote: {filler}");
    let (at_local, at_domain) = address.split_once('@').unwrap_or((address, ""));
    match how % 13 {
        0 => format!(
            "{}{}\r\n",
            head("text/plain; charset=utf-8", "quoted-printable"),
            quoted_printable(&text, split % (text.len() + 1))
        ),
        1 => format!(
            "{}{}\r\n",
            head("text/plain; charset=utf-8", "base64"),
            base64(text.as_bytes())
        ),
        2 => format!(
            "{}<p>{filler} {at_local}&#64;{at_domain}</p>\r\n",
            head("text/html; charset=utf-8", "8bit")
        ),
        3 => format!(
            "{}<a href=\"mailto:{}\">x</a>\r\n",
            head("text/html; charset=utf-8", "8bit"),
            address.replace('@', "%40")
        ),
        4 => format!(
            "{}{at_local}<span>@</span><b>{at_domain}</b> {filler}\r\n",
            head("text/html; charset=utf-8", "8bit")
        ),
        5 => format!(
            "From: {BOB}\r\nTo: {ALICE_RELAY}\r\nSubject: =?utf-8?B?{}?=\r\n\r\n{filler}\r\n",
            base64(text.as_bytes())
        ),
        6 => format!(
            "{}--b\r\nContent-Type: text/plain\r\n\r\n{filler}\r\n--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=utf-8''{}.txt\r\n\r\nx\r\n--b--\r\n",
            head("multipart/mixed; boundary=b", "7bit"),
            address.replace('@', "%40")
        ),
        7 => format!(
            "{}--b\r\nContent-Type: text/plain\r\n\r\nsee below\r\n--b\r\nContent-Type: message/rfc822\r\n\r\nFrom: X <{address}>\r\nSubject: fwd\r\n\r\n{text}\r\n--b--\r\n",
            head("multipart/mixed; boundary=b", "7bit")
        ),
        8 => format!(
            "{}BEGIN:VCARD\r\nEMAIL:{}\r\nEND:VCARD\r\n",
            head("text/vcard; charset=utf-8", "8bit"),
            address.to_uppercase()
        ),
        9 => format!(
            "{}{}\r\n",
            head("text/html; charset=utf-8", "base64"),
            base64(
                format!(
                    "<p>{filler}</p><p>&lt;{}&gt;</p>",
                    address.replace('.', "&period;")
                )
                .as_bytes()
            )
        ),
        // Plain text converted from HTML by the writer's client.
        10 => format!(
            "{}{filler} &lt;{at_local}&#64;{}&gt; {filler}\r\n",
            head("text/plain; charset=utf-8", "8bit"),
            at_domain.replace('.', "&period;")
        ),
        // UTF-8 labelled as a legacy charset.
        11 => format!(
            "{}{}\r\n",
            head("text/plain; charset=Big5", "base64"),
            base64(format!("會議 {text}").as_bytes())
        ),
        // A signature part holding the address as certificates do, in plain bytes.
        _ => format!(
            "{}--s\r\nContent-Type: text/plain\r\n\r\n{filler}\r\n--s\r\n\
             Content-Type: application/pkcs7-signature; name=smime.p7s\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--s--\r\n",
            head(
                "multipart/signed; protocol=\"application/pkcs7-signature\"; boundary=s",
                "7bit"
            ),
            base64(
                &[
                    b"\x30\x82\x01\x0a\x81\x15".as_slice(),
                    address.as_bytes(),
                    b"\x00\x01"
                ]
                .concat()
            )
        ),
    }
}

/// Text in one of the charsets attachments come in; `None` if the charset cannot
/// hold it. UTF-16 carries its byte order mark.
fn encode(text: &str, charset: u8) -> Option<(Vec<u8>, &'static str)> {
    let utf16 = |be: bool| {
        let mut out = if be {
            vec![0xfe, 0xff]
        } else {
            vec![0xff, 0xfe]
        };
        for unit in text.encode_utf16() {
            out.extend(if be {
                unit.to_be_bytes()
            } else {
                unit.to_le_bytes()
            });
        }
        out
    };
    let legacy = |encoding: &'static encoding_rs::Encoding| {
        let (bytes, _, unmappable) = encoding.encode(text);
        (!unmappable).then(|| bytes.into_owned())
    };
    Some(match charset % 5 {
        0 => (legacy(encoding_rs::WINDOWS_1252)?, "iso-8859-1"),
        1 => (legacy(encoding_rs::WINDOWS_1252)?, "windows-1252"),
        2 => (utf16(false), "utf-16"),
        3 => (utf16(true), "utf-16"),
        _ => (legacy(encoding_rs::SHIFT_JIS)?, "shift_jis"),
    })
}

/// Types that are not `text/*` but often hold text.
const NON_TEXT_TYPES: &[&str] = &[
    "application/octet-stream",
    "application/vnd.ms-excel",
    "application/ics",
    "application/json",
    "application/x-vcard",
    "application/x-unknown",
];

/// An address of Alice or Bob in mixed case.
fn participant() -> impl Strategy<Value = String> {
    (prop::bool::ANY, prop::collection::vec(prop::bool::ANY, 32)).prop_map(|(alice, upper)| {
        let address = if alice { ALICE } else { BOB };
        address
            .chars()
            .zip(upper.into_iter().cycle())
            .map(|(c, up)| if up { c.to_ascii_uppercase() } else { c })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(std::env::var("PROPTEST_CASES").ok().and_then(|c| c.parse().ok()).unwrap_or(256)))]

    #[test]
    fn a_hidden_address_never_survives(
        address in participant(),
        how in 0u8..13,
        split in 0usize..200,
        filler in "[a-zA-Z0-9 äöü€.,;:!?()\\-]{0,40}",
    ) {
        let raw = hide(&address, how, split, &filler);
        let out = relay(raw.as_bytes());
        prop_assert!(out.is_some(), "not relayed: {raw}");
        let found = leaks(&out.unwrap_or_default(), &[ALICE, BOB]);
        prop_assert!(found.is_empty(), "{found:?}\nfrom:\n{raw}");
    }

    #[test]
    fn an_address_in_a_legacy_encoded_attachment_never_survives(
        address in participant(),
        charset in 0u8..5,
        ctype in prop::sample::select(NON_TEXT_TYPES),
        declared in prop::bool::ANY,
        before in "[a-zA-Z0-9 äöüéß€.,;:()\\-]{0,40}",
        after in "[a-zA-Z0-9 会議日本語です。、]{0,20}",
    ) {
        // Shift_JIS has no umlauts and Windows-1252 no kanji: keep what each can hold.
        let text = match charset % 5 {
            0 | 1 => format!("{before}\r\nEMAIL:{address}\r\nNOTE:x\r\n"),
            2 | 3 => format!("{before}\r\nEMAIL:{address}\r\n{after}\r\n"),
            _ => format!("NOTE:{after}\r\nEMAIL:{address}\r\n{after}\r\n"),
        };
        let Some((bytes, label)) = encode(&text, charset) else {
            return Ok(());
        };
        let param = if declared { format!("; charset={label}") } else { String::new() };
        let raw = format!(
            "From: {BOB}\r\nTo: {ALICE_RELAY}\r\nSubject: card\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/mixed; boundary=b\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nattached\r\n\
             --b\r\nContent-Type: {ctype}{param}\r\nContent-Disposition: attachment; filename=card\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n--b--\r\n",
            base64(&bytes)
        );
        let out = relay(raw.as_bytes());
        prop_assert!(out.is_some(), "not relayed: {raw}");
        let found = leaks(&out.unwrap_or_default(), &[ALICE, BOB]);
        prop_assert!(found.is_empty(), "{found:?}\nfrom {label}:\n{text}");
    }

    #[test]
    fn arbitrary_bytes_never_panic(raw in prop::collection::vec(any::<u8>(), 0..4096)) {
        let before = panics().load(Ordering::SeqCst);
        let _ = relay(&raw);
        prop_assert_eq!(panics().load(Ordering::SeqCst), before);
    }

    #[test]
    fn arbitrary_cms_never_panics(
        raw in prop::collection::vec(any::<u8>(), 0..2048),
        prefix in prop::sample::select(vec![&[][..], &[0x30, 0x80][..], &[0x30, 0x80, 0x06, 0x09][..], &[0x24, 0x80][..]]),
    ) {
        let before = panics().load(Ordering::SeqCst);
        let bytes = [prefix, raw.as_slice()].concat();
        let _ = maskrelay_inbound::read::ber::to_der(&bytes);
        let _ = maskrelay_inbound::read::signed::signed_content(&bytes);
        prop_assert_eq!(panics().load(Ordering::SeqCst), before);
    }

    #[test]
    fn damaged_real_mail_never_panics(
        sample in 0usize..1000,
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..40),
    ) {
        let mut raw = corpus_sample(sample);
        for (at, byte, op) in edits {
            if raw.is_empty() {
                break;
            }
            let i = at.index(raw.len());
            match op {
                0 => raw[i] = byte,
                1 => raw.insert(i, byte),
                _ => { raw.remove(i); }
            }
        }
        let before = panics().load(Ordering::SeqCst);
        let _ = relay(&raw);
        prop_assert_eq!(panics().load(Ordering::SeqCst), before);
    }
}

/// One of the real messages in the corpus.
fn corpus_sample(n: usize) -> Vec<u8> {
    static ALL: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    let all = ALL.get_or_init(|| {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("resources/corpus");
        let mut found = Vec::new();
        for dir in [
            "talon/standard_replies",
            "mail-parser/rfc",
            "mail-parser/thirdparty",
            "mail-parser/malformed",
            "sisimai/bsd",
        ] {
            if let Ok(entries) = std::fs::read_dir(root.join(dir)) {
                let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                paths.sort();
                found.extend(paths.into_iter().filter_map(|p| std::fs::read(p).ok()));
            }
        }
        found
    });
    all.get(n % all.len().max(1)).cloned().unwrap_or_default()
}

/// Pieces that command streams are made of: real verbs with odd arguments, and noise.
fn command_piece(relay: &str) -> impl Strategy<Value = Vec<u8>> + use<> {
    let rcpt = format!("RCPT TO:<{relay}>\r\n");
    let reply = format!("From: bob@example.net\r\nTo: {relay}\r\nSubject: Re\r\n\r\nhi\r\n.\r\n");
    let open = format!("EHLO x\r\nMAIL FROM:<bob@example.net>\r\n{rcpt}DATA\r\n");
    let whole = format!("{open}{reply}");
    let known: &'static [String] = Box::leak(vec![rcpt, reply, open, whole].into_boxed_slice());
    prop_oneof![
        3 => prop::sample::select(known).prop_map(String::into_bytes),
        8 => prop::sample::select(vec![
            "EHLO x\r\n", "HELO x\r\n", "MAIL FROM:<bob@example.net>\r\n", "MAIL FROM:<>\r\n",
            "RCPT TO:<aaaaaaaaaaaaaaaa@relay.test>\r\n", "RCPT TO:<x@elsewhere.example>\r\n",
            "DATA\r\n", "Subject: x\r\n\r\nbody\r\n.\r\n", "RSET\r\n", "NOOP\r\n", "VRFY x\r\n",
            "HELP\r\n", "BDAT 5 LAST\r\nabcde", "BDAT 0\r\n", "AUTH PLAIN AAAA\r\n",
            "MAIL FROM:<a@b> SIZE=99999999999\r\n", "MAIL FROM:<a@b> BODY=8BITMIME SMTPUTF8\r\n",
            "RCPT TO:<\"odd local\"@relay.test> NOTIFY=NEVER\r\n", "\r\n", ".\r\n", "..\r\n",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..64),
        1 => "[A-Z]{1,8}( [ -~]{0,80})?\r\n".prop_map(String::into_bytes),
        1 => Just(vec![b'A'; 1200]),
    ]
}

#[test]
fn arbitrary_command_streams_get_well_formed_replies() -> anyhow::Result<()> {
    let cases: usize = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(48);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let before = panics().load(Ordering::SeqCst);
    let (sink, gw, relay) = runtime.block_on(async {
        let sink = Smarthost::start().await?;
        let gw = TestGateway::start(Backend::Sqlite, &sink).await?;
        gw.member("alice", "alice@example.com", "Alice").await?;
        gw.member("bob", "bob@example.net", "Bob").await?;
        gw.message("alice", "bob", "Hello", "Hi").await?;
        let first = sink.wait_for(1, Duration::from_secs(10)).await?.remove(0);
        let relay =
            maskrelay_tests::mail::from_address(&maskrelay_tests::mail::parse(&first.data)?);
        anyhow::Ok((sink, gw, relay))
    })?;
    let addr = gw.smtp_addr();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(
        u32::try_from(cases).unwrap_or(48),
    ));
    let stream = prop::collection::vec(command_piece(&relay), 0..24);
    let accepted = AtomicUsize::new(0);
    let result = runner.run(&stream, |pieces| {
        let mut bytes: Vec<u8> = pieces.concat();
        // Whatever state the stream left the session in, end it.
        bytes.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
        let replies = runtime
            .block_on(session(addr, bytes))
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let relayed = replies.matches("Message accepted").count();
        accepted.fetch_add(relayed, Ordering::Relaxed);
        for line in replies.lines() {
            let ok = line.len() >= 4
                && line.as_bytes()[..3].iter().all(u8::is_ascii_digit)
                && matches!(line.as_bytes()[3], b' ' | b'-');
            prop_assert!(ok, "malformed reply line {line:?} in:\n{replies}");
        }
        Ok(())
    });
    runtime.block_on(gw.stop());
    drop(sink);
    println!(
        "sessions: {cases}; messages accepted along the way: {}",
        accepted.load(Ordering::Relaxed)
    );
    result.map_err(|e| anyhow::anyhow!("{e}"))?;
    assert_eq!(
        panics().load(Ordering::SeqCst),
        before,
        "a session panicked"
    );
    Ok(())
}

/// Sends `bytes` in one go and reads every reply until the server closes.
async fn session(addr: std::net::SocketAddr, bytes: Vec<u8>) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    let (mut read, mut write) = stream.split();
    let reader = async {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut out)).await;
        out
    };
    let writer = async {
        // The server may close early (too many errors); that is not a failure.
        let _ = write.write_all(&bytes).await;
    };
    let (out, ()) = tokio::join!(reader, writer);
    Ok(String::from_utf8_lossy(&out).into_owned())
}
