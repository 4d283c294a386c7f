//! Replies shaped the way real mail clients send them every day that once leaked an
//! address, were refused, or lost their text: signed and encrypted mail (made with
//! `openssl` and `gpg`), attachments in legacy encodings, character references in
//! plain text, an unquoted comma in `From:`, a mislabelled charset, complaints in a
//! provider's own format, and members who are no longer active.
//!
//! Each relayed reply is checked for (a) no address of either member in the bytes or
//! in any decoded view, including decoded armour and certificate fields, and (b) the
//! member's words intact.

use maskrelay_tests::conversation::{BOB, Conversation, EVERY_ADDRESS, visible};
use maskrelay_tests::privacy::leaks;
use maskrelay_tests::signing::Signer;
use maskrelay_tests::smarthost::Delivered;
use maskrelay_tests::{Backend, both_backends};
use serde_json::json;

/// What the footer says when a signature or key was taken out.
const SIGNATURE_NOTE: &str = "digital signature or public key was removed";

/// Bob's words, with his address in them as people write it.
const WORDS: &str = "Saturday at ten works. Write to me at Bob.Smith@example.net.";

/// Asserts that `delivered` carries no address of either member, in any form, and
/// shows every one of `words` (with Bob's relay address for his real one).
fn assert_clean(delivered: &Delivered, words: &[&str]) -> anyhow::Result<()> {
    let found = leaks(&delivered.data, &EVERY_ADDRESS);
    anyhow::ensure!(found.is_empty(), "{found:#?}");
    let bob_relay =
        maskrelay_tests::mail::from_address(&maskrelay_tests::mail::parse(&delivered.data)?);
    let text = visible(&delivered.data);
    for word in words {
        let word = word.replace(BOB, &bob_relay);
        anyhow::ensure!(text.contains(&word), "missing {word:?} in:\n{text}");
    }
    Ok(())
}

fn text_entity(text: &str) -> String {
    format!("Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n")
}

async fn smime_signed_replies_lose_only_their_signature(backend: Backend) -> anyhow::Result<()> {
    let c = Conversation::start(backend).await?;
    let signer = Signer::new("Bob Smith", BOB).await?;
    let entity = text_entity(WORDS);

    let detached = signer.smime_detached(&entity).await?;
    anyhow::ensure!(detached.contains("pkcs7-signature"), "{detached}");
    let raw = format!("{}{detached}", c.reply_headers("Re: Tennis? (detached)"));
    let first = c.relayed(&raw, 1).await?;
    assert_clean(&first, &[WORDS, SIGNATURE_NOTE])?;
    assert!(!first.text().contains("pkcs7"), "{}", first.text());
    // The content is relayed without the signature's wrapper.
    assert!(
        !first.text().contains("multipart/signed"),
        "{}",
        first.text()
    );

    let opaque = signer.smime_opaque(&entity).await?;
    anyhow::ensure!(opaque.contains("signed-data"), "{opaque}");
    let raw = format!("{}{opaque}", c.reply_headers("Re: Tennis? (opaque)"));
    let second = c.relayed(&raw, 2).await?;
    assert_clean(&second, &[WORDS, SIGNATURE_NOTE])?;
    assert!(!second.text().contains("pkcs7"), "{}", second.text());

    // Streaming signers write BER: indefinite lengths, the content in chunks.
    let long_words = format!("{WORDS}\r\n{}", "Long reply line. ".repeat(400));
    let streamed = signer
        .smime_opaque_streamed(&text_entity(&long_words))
        .await?;
    let raw = format!("{}{streamed}", c.reply_headers("Re: Tennis? (streamed)"));
    let third = c.relayed(&raw, 3).await?;
    assert_clean(
        &third,
        &[WORDS, SIGNATURE_NOTE, "Long reply line. Long reply line."],
    )?;
    Ok(())
}

async fn pgp_signatures_and_keys_are_dropped(backend: Backend) -> anyhow::Result<()> {
    let c = Conversation::start(backend).await?;
    let signer = Signer::new("Bob Smith", BOB).await?;
    let key = signer.pgp_public_key().await?;
    anyhow::ensure!(key.contains("BEGIN PGP PUBLIC KEY BLOCK"), "{key}");

    // Thunderbird: PGP/MIME, the key attached inside what is signed.
    let entity = format!(
        "Content-Type: multipart/mixed; boundary=\"inner\"\r\n\r\n\
         --inner\r\n{}\
         --inner\r\nContent-Type: application/pgp-keys; name=\"OpenPGP_0xB0B.asc\"\r\n\
         Content-Disposition: attachment; filename=\"OpenPGP_0xB0B.asc\"\r\n\r\n{key}\
         --inner--\r\n",
        text_entity(WORDS)
    );
    let signature = signer.pgp_detached(&entity).await?;
    let raw = format!(
        "{}Content-Type: multipart/signed; micalg=pgp-sha256; \
         protocol=\"application/pgp-signature\"; boundary=\"outer\"\r\n\r\n\
         --outer\r\n{entity}\r\n--outer\r\n\
         Content-Type: application/pgp-signature; name=\"OpenPGP_signature.asc\"\r\n\
         Content-Disposition: attachment; filename=\"OpenPGP_signature.asc\"\r\n\r\n\
         {signature}--outer--\r\n",
        c.reply_headers("Re: Tennis? (PGP/MIME)")
    );
    let first = c.relayed(&raw, 1).await?;
    assert_clean(&first, &[WORDS, SIGNATURE_NOTE])?;
    assert!(!first.text().contains("BEGIN PGP"), "{}", first.text());
    assert!(
        !first.text().contains("multipart/signed"),
        "{}",
        first.text()
    );

    // Inline: a clear-signed text, with the key pasted below it.
    let clearsigned = signer
        .pgp_clearsigned(&format!("{WORDS}\r\n- dashes stay\r\n"))
        .await?;
    let raw = format!(
        "{}Content-Type: text/plain; charset=utf-8\r\n\r\n{clearsigned}\r\nMy key:\r\n{key}",
        c.reply_headers("Re: Tennis? (inline)")
    );
    let second = c.relayed(&raw, 2).await?;
    assert_clean(
        &second,
        &[WORDS, "- dashes stay", "My key:", SIGNATURE_NOTE],
    )?;
    assert!(!second.text().contains("BEGIN PGP"), "{}", second.text());
    Ok(())
}

async fn encrypted_and_unreadable_signed_mail_is_refused(backend: Backend) -> anyhow::Result<()> {
    let c = Conversation::start(backend).await?;
    let signer = Signer::new("Bob Smith", BOB).await?;
    let smime = signer.smime_encrypted(&text_entity(WORDS)).await?;
    let pgp = signer.pgp_encrypted(WORDS).await?;
    let refused = [
        ("S/MIME", format!("{}{smime}", c.reply_headers("s"))),
        (
            "PGP/MIME",
            format!(
                "{}Content-Type: multipart/encrypted; protocol=\"application/pgp-encrypted\"; \
                 boundary=\"e\"\r\n\r\n--e\r\nContent-Type: application/pgp-encrypted\r\n\r\n\
                 Version: 1\r\n--e\r\nContent-Type: application/octet-stream; name=\"encrypted.asc\"\r\n\r\n\
                 {pgp}--e--\r\n",
                c.reply_headers("p")
            ),
        ),
        (
            "inline PGP",
            format!(
                "{}Content-Type: text/plain\r\n\r\n{pgp}",
                c.reply_headers("i")
            ),
        ),
    ];
    for (what, raw) in &refused {
        let refusal = c.bob_refused(raw).await;
        assert!(
            refusal.starts_with("550") && refusal.contains("without encryption"),
            "{what}: {refusal}"
        );
    }
    let broken = format!(
        "{}Content-Type: application/pkcs7-mime; smime-type=signed-data; name=smime.p7m\r\n\
         Content-Transfer-Encoding: base64\r\n\r\nMIAGCSqGSIb3DQEHAqCAMIACAQExDzANBglghkgBZQMEAgEFADCABgkqhkiG9w0BBwGggCSABA==\r\n",
        c.reply_headers("b")
    );
    let refusal = c.bob_refused(&broken).await;
    assert!(
        refusal.starts_with("550") && refusal.contains("without a digital signature"),
        "{refusal}"
    );
    c.nothing_relayed_after(0).await
}

async fn legacy_encoded_attachments_are_scrubbed(backend: Backend) -> anyhow::Result<()> {
    use base64::Engine;
    let c = Conversation::start(backend).await?;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let latin1 = |text: &str| encoding_rs::WINDOWS_1252.encode(text).0.into_owned();
    let vcard = format!("BEGIN:VCARD\r\nFN:Zoë Müller\r\nEMAIL:{BOB}\r\nEND:VCARD\r\n");
    let csv = format!("Name;Adresse;Betrag\r\nZoë;{BOB};12 €\r\n");
    let ics = format!(
        "BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nSUMMARY:Réunion\r\nORGANIZER:mailto:{BOB}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    );
    let json = format!("{{\"name\":\"Zoë\",\"email\":\"{BOB}\"}}");
    let mut utf16 = vec![0xff, 0xfe];
    utf16.extend(json.encode_utf16().flat_map(u16::to_le_bytes));
    let part = |ctype: &str, name: &str, bytes: &[u8]| {
        format!(
            "--m\r\nContent-Type: {ctype}\r\nContent-Disposition: attachment; filename=\"{name}\"\r\n\
             Content-Transfer-Encoding: base64\r\n\r\n{}\r\n",
            b64(bytes)
        )
    };
    let raw = format!(
        "{}Content-Type: multipart/mixed; boundary=\"m\"\r\n\r\n\
         --m\r\nContent-Type: text/plain\r\n\r\nfiles attached\r\n{}{}{}{}--m--\r\n",
        c.reply_headers("Re: Tennis? (files)"),
        part("application/octet-stream", "bob.vcf", &latin1(&vcard)),
        part("application/vnd.ms-excel", "scores.csv", &latin1(&csv)),
        part("application/ics", "invite.ics", &latin1(&ics)),
        part("application/json", "me.json", &utf16),
    );
    let delivered = c.relayed(&raw, 1).await?;
    assert_clean(
        &delivered,
        &[
            "FN:Zoë Müller",
            &format!("EMAIL:{BOB}"),
            &format!("Zoë;{BOB};12 €"),
            "SUMMARY:Réunion",
            &format!("ORGANIZER:mailto:{BOB}"),
            &format!("\"email\":\"{BOB}\""),
        ],
    )?;
    // The spreadsheet is still in Windows-1252, for Excel.
    let m = maskrelay_tests::mail::parse(&delivered.data)?;
    let csv_bytes = m
        .attachments()
        .find(|a| mail_parser::MimeHeaders::attachment_name(*a) == Some("scores.csv"))
        .map(|a| a.contents().to_vec())
        .unwrap_or_default();
    assert!(
        csv_bytes.contains(&0x80) && csv_bytes.contains(&0xeb),
        "{csv_bytes:?}"
    );
    Ok(())
}

async fn references_and_escapes_in_plain_text_are_scrubbed(backend: Backend) -> anyhow::Result<()> {
    let c = Conversation::start(backend).await?;
    let raw = format!(
        "{}Content-Type: text/plain; charset=utf-8\r\n\r\n\
         See you then.\r\n\r\nOn Tue, Alice Liddell &lt;alice.liddell&#64;example&period;com&gt; wrote:\r\n\
         &gt; Bob Smith &lt;Bob.Smith&#x40;example.net&gt; https://x.example/u/bob%40home.example\r\n",
        c.reply_headers("Re: Tennis?")
    );
    let delivered = c.relayed(&raw, 1).await?;
    assert_clean(&delivered, &["See you then.", "On Tue, Alice Liddell &lt;"])?;
    Ok(())
}

async fn an_unquoted_comma_in_from_is_still_the_member(backend: Backend) -> anyhow::Result<()> {
    let c = Conversation::start(backend).await?;
    let raw = format!(
        "From: Smith, Bob <{BOB}>\r\nTo: {}\r\nSubject: Re: Tennis?\r\n\r\n{WORDS}\r\n",
        c.alice_relay
    );
    let delivered = c.relayed(&raw, 1).await?;
    assert_clean(&delivered, &[WORDS])?;

    let no_address = format!(
        "From: Bob Smith\r\nTo: {}\r\nSubject: Re: Tennis?\r\n\r\nhi\r\n",
        c.alice_relay
    );
    let refusal = c.bob_refused(&no_address).await;
    assert!(
        refusal.starts_with("550") && refusal.contains("From: header"),
        "{refusal}"
    );
    c.nothing_relayed_after(1).await
}

async fn a_mislabelled_charset_keeps_every_character(backend: Backend) -> anyhow::Result<()> {
    let c = Conversation::start(backend).await?;
    let words = "會議改到星期六 — Grüße, Zoë";
    let raw = format!(
        "{}Content-Type: text/plain; charset=Big5\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{words}\r\n",
        c.reply_headers("Re: Tennis?")
    );
    let delivered = c.relayed(&raw, 1).await?;
    assert_clean(&delivered, &[words])?;
    Ok(())
}

async fn complaints_in_a_providers_own_format_are_recorded(backend: Backend) -> anyhow::Result<()> {
    let c = Conversation::start(backend).await?;
    // Outlook.com's JMRP: from its staff address, the reported message attached.
    let jmrp = format!(
        "From: staff@hotmail.com\r\nTo: {}\r\nSubject: complaint about message from 192.0.2.7\r\n\
         MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"j\"\r\n\r\n\
         --j\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report for an email message \
         received from IP 192.0.2.7\r\n--j\r\nContent-Type: message/rfc822\r\n\r\n{}--j--\r\n",
        c.alice_relay,
        c.first.text()
    );
    // A smaller provider's loop: a feedback address and a report-like subject.
    let fbl = format!(
        "From: fbl@isp.example\r\nTo: {}\r\nSubject: Spam report\r\nMIME-Version: 1.0\r\n\
         Content-Type: multipart/mixed; boundary=\"f\"\r\n\r\n--f\r\nContent-Type: text/plain\r\n\r\n\
         A user marked this as spam.\r\n--f\r\nContent-Type: message/rfc822\r\n\r\n\
         From: x@relay.test\r\nSubject: Tennis?\r\n\r\nHi\r\n--f--\r\n",
        c.alice_relay
    );
    for (sender, raw) in [("staff@hotmail.com", &jmrp), ("fbl@isp.example", &fbl)] {
        let answer = maskrelay_tests::gateway::send_mail_to(
            c.gw.smtp_addr(),
            Some(sender),
            &[&c.alice_relay],
            raw.as_bytes(),
        )
        .await?;
        assert!(answer.contains("recorded"), "{sender}: {answer}");
    }
    let conv = c.metadata().await?;
    assert_eq!(conv["complaints_recorded"], 2, "{conv}");
    c.nothing_relayed_after(0).await
}

async fn inactive_members_are_refused_by_mail_too(backend: Backend) -> anyhow::Result<()> {
    let c = Conversation::start(backend).await?;
    let reply = |n: u32| {
        format!(
            "{}Content-Type: text/plain\r\n\r\nreply {n}\r\n",
            c.reply_headers("Re: Tennis?")
        )
    };
    let set_status = |id: &'static str, status: &'static str| {
        let (email, other, name) = if id == "bob" {
            (BOB, maskrelay_tests::conversation::BOB_HOME, "Bob")
        } else {
            (
                maskrelay_tests::conversation::ALICE,
                maskrelay_tests::conversation::ALICE_WORK,
                "Alice",
            )
        };
        let body = json!({"email": email, "name": name, "other_emails": [other], "status": status});
        let gw = &c.gw;
        async move { gw.member_json(id, &body).await }
    };

    set_status("bob", "inactive").await?;
    let refusal = c.bob_refused(&reply(1)).await;
    assert!(
        refusal.starts_with("550") && refusal.contains("5.7.1") && refusal.contains("not active"),
        "{refusal}"
    );
    set_status("bob", "active").await?;
    set_status("alice", "inactive").await?;
    let refusal = c.bob_refused(&reply(2)).await;
    assert!(
        refusal.starts_with("550")
            && refusal.contains("5.7.1")
            && refusal.contains("no longer an active member"),
        "{refusal}"
    );
    // The API says the same, through the same rule.
    let (status, answer) = c.gw.message("bob", "alice", "s", "t").await?;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(answer["error"]["code"], "inactive_member", "{answer}");

    let conv = c.metadata().await?;
    assert_eq!(
        conv["replies_refused"],
        json!({"reader_inactive": 1, "writer_inactive": 1}),
        "{conv}"
    );

    // Reactivated, the same relay address works again in the same conversation.
    set_status("alice", "active").await?;
    c.nothing_relayed_after(0).await
}

both_backends!(
    smime_signed_replies_lose_only_their_signature,
    pgp_signatures_and_keys_are_dropped,
    encrypted_and_unreadable_signed_mail_is_refused,
    legacy_encoded_attachments_are_scrubbed,
    references_and_escapes_in_plain_text_are_scrubbed,
    an_unquoted_comma_in_from_is_still_the_member,
    a_mislabelled_charset_keeps_every_character,
    complaints_in_a_providers_own_format_are_recorded,
    inactive_members_are_refused_by_mail_too,
);
