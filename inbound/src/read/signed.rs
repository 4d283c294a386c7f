//! Signatures, keys and encryption: what a relay that rewrites mail cannot keep.
//!
//! Every S/MIME signature holds the signer's certificate, whose subject and
//! alternative names are their address; every OpenPGP key and many signatures hold
//! their user id. A rewritten message can never keep a valid signature anyway, so
//! signatures and keys are dropped and the signed content is relayed on its own.
//! An opaque-signed message (`application/pkcs7-mime`, signed-data) *is* its
//! signature: its CMS structure is parsed and what it signs is relayed. Encrypted
//! mail cannot be read, so it cannot be scrubbed: it is refused.

use cms::content_info::ContentInfo;
use cms::signed_data::SignedData;
use der::Decode;
use der::asn1::{ObjectIdentifier, OctetString};

/// Why a message cannot be relayed at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unrelayable {
    /// S/MIME enveloped data or PGP-encrypted content.
    Encrypted,
    /// An opaque-signed part whose structure could not be read.
    UnreadableSignedData,
}

/// What a part is, as far as signing and encryption go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Ordinary content.
    Content,
    /// A detached signature, a certificate or a public key: dropped.
    SignatureOrKey,
    /// Opaque-signed data: unwrap it.
    SignedData,
    /// Encrypted: refuse the message.
    Encrypted,
}

const SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");

/// Types that are only ever a signature, a certificate or a key.
const SIGNATURE_TYPES: &[&str] = &[
    "application/pkcs7-signature",
    "application/x-pkcs7-signature",
    "application/pgp-signature",
    "application/pgp-keys",
    "application/pkix-cert",
    "application/x-x509-ca-cert",
    "application/x-x509-user-cert",
    "application/x-pkcs7-certificates",
];

/// File name endings of signatures and certificates sent with a generic type.
const SIGNATURE_NAMES: &[&str] = &[".p7s", ".p7c", ".cer", ".crt"];

/// Classifies a leaf or multipart by its lower-case type, its `smime-type`
/// parameter and its file name.
pub fn kind(content_type: &str, smime_type: Option<&str>, file_name: Option<&str>) -> Kind {
    let smime_type = smime_type.map(str::to_ascii_lowercase);
    let name = file_name.map(str::to_ascii_lowercase).unwrap_or_default();
    match content_type {
        "multipart/encrypted" | "application/pgp-encrypted" => Kind::Encrypted,
        "application/pkcs7-mime" | "application/x-pkcs7-mime" => match smime_type.as_deref() {
            Some("signed-data") => Kind::SignedData,
            Some("certs-only") => Kind::SignatureOrKey,
            // enveloped-data, authEnveloped-data, compressed-data and clients that
            // leave the parameter out: a `.p7m` is signed or encrypted, and only
            // reading it tells which.
            _ if name.ends_with(".p7c") => Kind::SignatureOrKey,
            Some(_) => Kind::Encrypted,
            None => Kind::SignedData,
        },
        t if SIGNATURE_TYPES.contains(&t) => Kind::SignatureOrKey,
        _ if SIGNATURE_NAMES.iter().any(|n| name.ends_with(n)) => Kind::SignatureOrKey,
        _ if name.ends_with(".p7m") => Kind::SignedData,
        _ => Kind::Content,
    }
}

/// The content an opaque-signed CMS structure (DER, or BER as streaming signers
/// write it) signs: a MIME entity.
///
/// # Errors
/// [`Unrelayable::Encrypted`] if the structure is enveloped (encrypted) data,
/// [`Unrelayable::UnreadableSignedData`] if it cannot be read or signs nothing.
pub fn signed_content(der: &[u8]) -> Result<Vec<u8>, Unrelayable> {
    let info = match ContentInfo::from_der(der) {
        Ok(info) => info,
        Err(_) => {
            let der =
                crate::read::ber::to_der(der).map_err(|_| Unrelayable::UnreadableSignedData)?;
            ContentInfo::from_der(&der).map_err(|_| Unrelayable::UnreadableSignedData)?
        }
    };
    if info.content_type != SIGNED_DATA {
        // Enveloped, authenticated-enveloped, encrypted or compressed data: nothing
        // a reader could be given without the writer's keys or a decoder we lack.
        return Err(Unrelayable::Encrypted);
    }
    let signed: SignedData = info
        .content
        .decode_as()
        .map_err(|_| Unrelayable::UnreadableSignedData)?;
    let content = signed
        .encap_content_info
        .econtent
        .ok_or(Unrelayable::UnreadableSignedData)?;
    let octets: OctetString = content
        .decode_as()
        .map_err(|_| Unrelayable::UnreadableSignedData)?;
    Ok(octets.into_bytes())
}

const SIGNED_BEGIN: &str = "-----BEGIN PGP SIGNED MESSAGE-----";
const ENCRYPTED_BEGIN: &str = "-----BEGIN PGP MESSAGE-----";
/// Armour blocks removed from text, each with its end line.
const ARMOUR: &[(&str, &str)] = &[
    (
        "-----BEGIN PGP SIGNATURE-----",
        "-----END PGP SIGNATURE-----",
    ),
    (
        "-----BEGIN PGP PUBLIC KEY BLOCK-----",
        "-----END PGP PUBLIC KEY BLOCK-----",
    ),
];

/// Whether text holds PGP-encrypted armour.
pub fn has_encrypted_armour(text: &str) -> bool {
    text.lines().any(|l| l.trim_end() == ENCRYPTED_BEGIN)
}

/// Text with inline OpenPGP signing taken out: the `BEGIN PGP SIGNED MESSAGE` line
/// and its armour headers, dash-escaping (RFC 4880 §7.1), and every signature and
/// public key block. `None` if there was none.
pub fn strip_inline(text: &str) -> Option<String> {
    if !text.contains("-----BEGIN PGP ") {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut lines = text.split_inclusive('\n');
    let mut in_signed = false;
    while let Some(line) = lines.next() {
        let bare = line.trim_end();
        if bare == SIGNED_BEGIN {
            // Armour headers ("Hash: SHA256") run to the first empty line.
            for header in lines.by_ref() {
                if header.trim_end().is_empty() {
                    break;
                }
            }
            in_signed = true;
            changed = true;
            continue;
        }
        if let Some((_, end)) = ARMOUR.iter().find(|(begin, _)| bare == *begin) {
            for inner in lines.by_ref() {
                if inner.trim_end() == *end {
                    break;
                }
            }
            in_signed = false;
            changed = true;
            continue;
        }
        match line.strip_prefix("- ") {
            Some(unescaped) if in_signed => out.push_str(unescaped),
            _ => out.push_str(line),
        }
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_and_names_are_classified() {
        assert_eq!(
            kind("application/pkcs7-signature", None, Some("smime.p7s")),
            Kind::SignatureOrKey
        );
        assert_eq!(
            kind("application/octet-stream", None, Some("SMIME.P7S")),
            Kind::SignatureOrKey
        );
        assert_eq!(
            kind("application/pgp-keys", None, Some("OpenPGP_0xABCD.asc")),
            Kind::SignatureOrKey
        );
        assert_eq!(
            kind("application/pkcs7-mime", Some("signed-data"), None),
            Kind::SignedData
        );
        assert_eq!(
            kind("application/x-pkcs7-mime", Some("enveloped-data"), None),
            Kind::Encrypted
        );
        assert_eq!(
            kind("application/pkcs7-mime", None, Some("smime.p7m")),
            Kind::SignedData
        );
        assert_eq!(kind("multipart/encrypted", None, None), Kind::Encrypted);
        assert_eq!(kind("image/png", None, Some("a.png")), Kind::Content);
    }

    #[test]
    fn inline_signatures_and_keys_are_stripped() {
        let text = "-----BEGIN PGP SIGNED MESSAGE-----\r\nHash: SHA256\r\n\r\nSee you Saturday.\r\n- -- \r\nBob\r\n-----BEGIN PGP SIGNATURE-----\r\n\r\niQEzBAEBCAAdFiEE\r\n=abcd\r\n-----END PGP SIGNATURE-----\r\nafter\r\n-----BEGIN PGP PUBLIC KEY BLOCK-----\r\nmQINBF\r\n-----END PGP PUBLIC KEY BLOCK-----\r\n";
        assert_eq!(
            strip_inline(text).as_deref(),
            Some("See you Saturday.\r\n-- \r\nBob\r\nafter\r\n")
        );
        assert_eq!(strip_inline("- not signed\r\n"), None);
    }

    #[test]
    fn encrypted_armour_is_recognised() {
        assert!(has_encrypted_armour(
            "hi\n-----BEGIN PGP MESSAGE-----\n\nhQEMA\n-----END PGP MESSAGE-----\n"
        ));
        assert!(!has_encrypted_armour(
            "about -----BEGIN PGP MESSAGE----- blocks"
        ));
    }

    #[test]
    fn garbage_is_unreadable_signed_data() {
        assert_eq!(
            signed_content(b"not DER at all"),
            Err(Unrelayable::UnreadableSignedData)
        );
    }
}
