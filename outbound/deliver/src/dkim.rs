//! DKIM for the relay domain: making keys, the TXT records that publish them, and
//! signing every message on its way out.
//!
//! Mailbox providers (Gmail's and Yahoo's 2024 sender rules) junk or refuse mail
//! without a DKIM signature aligned with `From:`. Every relayed message is from the
//! relay domain, so it is signed with `d=` the relay domain: once with Ed25519 and
//! once with RSA when keys of both kinds exist (RFC 8463: receivers that do not know
//! Ed25519 yet verify the RSA one). Keys are made with aws-lc-rs (mail-auth's own
//! generator pulls in the `rsa` crate, which has an open advisory).
//!
//! Rotation: the newest active key of each algorithm signs; older ones stay active
//! (published, so that mail in transit still verifies) until they are retired.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use mail_auth::common::crypto::{DkimKey as SigningKey, Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use maskrelay_schema::Store;
use maskrelay_schema::dkim::{DkimAlgorithm, DkimKey};

/// Headers signed, in this order. `From` twice, and `List-Unsubscribe`/`-Post`
/// whether present or not: a header listed once more than the message has is
/// "oversigned", so that nobody can add one without breaking the signature.
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

/// Why a key could not be made or used.
#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    /// The crypto library could not make a key.
    #[error("could not generate a {0} key")]
    Generate(&'static str),
    /// A stored key is not a key of its algorithm.
    #[error("DKIM key {selector:?} cannot be used: {reason}")]
    BadKey {
        /// Its selector.
        selector: String,
        /// What the crypto library said.
        reason: String,
    },
}

/// A new key pair.
pub struct NewKey {
    /// PKCS#8 DER, to be stored encrypted.
    pub private_key: Vec<u8>,
    /// What `p=` publishes.
    pub public_key: Vec<u8>,
}

/// Makes a key: Ed25519, or RSA-2048 (the size receivers expect; 1024 is refused by
/// some, 4096 does not fit one DNS string and is slow to sign).
///
/// # Errors
/// [`DkimError::Generate`] if the crypto library fails.
pub fn generate(algorithm: DkimAlgorithm) -> Result<NewKey, DkimError> {
    use aws_lc_rs::encoding::AsDer;
    use aws_lc_rs::signature::KeyPair;
    match algorithm {
        DkimAlgorithm::Ed25519 => {
            let rng = aws_lc_rs::rand::SystemRandom::new();
            let pkcs8 = aws_lc_rs::signature::Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(|_| DkimError::Generate("Ed25519"))?;
            let pair = aws_lc_rs::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
                .map_err(|_| DkimError::Generate("Ed25519"))?;
            Ok(NewKey {
                private_key: pkcs8.as_ref().to_vec(),
                // RFC 8463: the bare 32-byte key, not wrapped in SubjectPublicKeyInfo.
                public_key: pair.public_key().as_ref().to_vec(),
            })
        }
        DkimAlgorithm::Rsa => {
            let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
                .map_err(|_| DkimError::Generate("RSA"))?;
            let private: aws_lc_rs::encoding::Pkcs8V1Der<'_> =
                pair.as_der().map_err(|_| DkimError::Generate("RSA"))?;
            let public: aws_lc_rs::encoding::PublicKeyX509Der<'_> = pair
                .public_key()
                .as_der()
                .map_err(|_| DkimError::Generate("RSA"))?;
            Ok(NewKey {
                private_key: private.as_ref().to_vec(),
                // SubjectPublicKeyInfo, as `openssl rsa -pubout` writes it and every
                // verifier (Mail::DKIM among them) reads it.
                public_key: public.as_ref().to_vec(),
            })
        }
    }
}

/// The TXT record of a key: `v=DKIM1; k=...; p=...`.
pub fn txt_record(algorithm: DkimAlgorithm, public_key: &[u8]) -> String {
    format!(
        "v=DKIM1; k={}; p={}",
        algorithm.as_str(),
        base64::engine::general_purpose::STANDARD.encode(public_key)
    )
}

/// A TXT value cut into the strings of at most 255 bytes that DNS carries
/// (RFC 1035 §3.3.14; a DKIM verifier joins them back).
pub fn txt_strings(record: &str) -> Vec<&str> {
    // The record is ASCII (base64 and tags), so any byte boundary is a char boundary.
    record
        .as_bytes()
        .chunks(255)
        .filter_map(|chunk| std::str::from_utf8(chunk).ok())
        .collect()
}

/// The record in zone-file syntax, for the selector under `domain`.
pub fn zone_line(
    selector: &str,
    domain: &str,
    algorithm: DkimAlgorithm,
    public_key: &[u8],
) -> String {
    let record = txt_record(algorithm, public_key);
    let strings: Vec<String> = txt_strings(&record)
        .into_iter()
        .map(|s| format!("\"{s}\""))
        .collect();
    format!(
        "{selector}._domainkey.{domain}. IN TXT ( {} )",
        strings.join(" ")
    )
}

/// Whether `selector` is a usable selector: DNS labels of letters, digits and
/// hyphens, separated by dots (RFC 6376 §3.1).
pub fn is_selector(selector: &str) -> bool {
    !selector.is_empty()
        && selector.len() <= 63
        && selector.split('.').all(|label| {
            !label.is_empty()
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Signs messages with the newest active key of each algorithm.
pub struct Signer {
    signers: Vec<(String, DkimSigner<SigningKey, Done>)>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("selectors", &self.selectors())
            .finish()
    }
}

impl Signer {
    /// A signer for `domain` from the stored keys (retired ones are ignored).
    ///
    /// # Errors
    /// [`DkimError::BadKey`] if the newest key of an algorithm cannot be read.
    pub fn new(domain: &str, keys: &[DkimKey]) -> Result<Self, DkimError> {
        let mut signers = Vec::new();
        for algorithm in [DkimAlgorithm::Ed25519, DkimAlgorithm::Rsa] {
            let newest = keys
                .iter()
                .filter(|k| k.algorithm == algorithm && k.retired_at.is_none())
                .max_by(|a, b| (a.created_at, &a.selector).cmp(&(b.created_at, &b.selector)));
            let Some(key) = newest else {
                continue;
            };
            let bad = |reason: String| DkimError::BadKey {
                selector: key.selector.clone(),
                reason,
            };
            let signing: SigningKey = match algorithm {
                DkimAlgorithm::Ed25519 => Ed25519Key::from_pkcs8_der(&key.private_key)
                    .map_err(|e| bad(e.to_string()))?
                    .into(),
                DkimAlgorithm::Rsa => RsaKey::<Sha256>::from_key_der(
                    rustls_pki_types::PrivateKeyDer::Pkcs8(key.private_key.clone().into()),
                )
                .map_err(|e| bad(e.to_string()))?
                .into(),
            };
            let signer = DkimSigner::from_key(signing)
                .domain(domain)
                .selector(&key.selector)
                .headers(SIGNED_HEADERS.iter().copied())
                .header_canonicalization(Canonicalization::Relaxed)
                .body_canonicalization(Canonicalization::Relaxed);
            signers.push((key.selector.clone(), signer));
        }
        Ok(Self { signers })
    }

    /// No key: messages go out unsigned.
    pub fn is_empty(&self) -> bool {
        self.signers.is_empty()
    }

    /// The selectors that sign.
    pub fn selectors(&self) -> Vec<&str> {
        self.signers.iter().map(|(s, _)| s.as_str()).collect()
    }

    /// `message` with a `DKIM-Signature` header in front for each key.
    ///
    /// # Errors
    /// The crypto library's message if a signature cannot be made.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, String> {
        let mut headers = String::new();
        for (selector, signer) in &self.signers {
            let signature = signer
                .sign(message)
                .map_err(|e| format!("DKIM signing with {selector:?} failed: {e}"))?;
            headers.push_str(&signature.to_header());
        }
        let mut out = Vec::with_capacity(headers.len() + message.len());
        out.extend_from_slice(headers.as_bytes());
        out.extend_from_slice(message);
        Ok(out)
    }
}

/// The signer, read again from the store every `reload`, so that keys made or
/// retired by `maskrelay dkim` on any instance take effect everywhere.
pub struct KeyCache {
    domain: String,
    reload: Duration,
    state: Mutex<Option<(Instant, Arc<Signer>)>>,
}

impl KeyCache {
    /// An empty cache for `domain`.
    pub fn new(domain: String, reload: Duration) -> Self {
        Self {
            domain,
            reload,
            state: Mutex::new(None),
        }
    }

    /// The current signer, reloaded if it is older than `reload`. When the store
    /// cannot be read or a key is unusable, the previous signer stays (and the
    /// fault is logged).
    pub async fn current(&self, store: &Store) -> Arc<Signer> {
        let previous = {
            let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            match &*state {
                Some((at, signer)) if at.elapsed() < self.reload => return Arc::clone(signer),
                Some((_, signer)) => Some(Arc::clone(signer)),
                None => None,
            }
        };
        let loaded = match store.dkim_keys(false).await {
            Ok(keys) => Signer::new(&self.domain, &keys).map_err(|e| e.to_string()),
            Err(e) => Err(format!("cannot read DKIM keys: {e}")),
        };
        let signer = match loaded {
            Ok(signer) => {
                let changed = previous
                    .as_ref()
                    .is_none_or(|p| p.selectors() != signer.selectors());
                if changed && !signer.is_empty() {
                    tracing::info!(selectors = ?signer.selectors(), "DKIM signing keys loaded");
                }
                Arc::new(signer)
            }
            Err(e) => {
                tracing::error!(error = %e, "DKIM keys not reloaded; signing with the previous ones");
                previous.unwrap_or_else(|| {
                    Arc::new(Signer {
                        signers: Vec::new(),
                    })
                })
            }
        };
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), Arc::clone(&signer)));
        signer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mail_auth::common::parse::TxtRecordParser;
    use mail_auth::common::verify::DomainKey;

    fn key(selector: &str, algorithm: DkimAlgorithm, created_at: i64) -> (DkimKey, NewKey) {
        let made = generate(algorithm).unwrap_or_else(|e| panic!("{e}"));
        (
            DkimKey {
                selector: selector.into(),
                algorithm,
                private_key: made.private_key.clone(),
                public_key: made.public_key.clone(),
                created_at,
                retired_at: None,
            },
            made,
        )
    }

    #[test]
    fn records_parse_and_split_into_dns_strings() {
        for algorithm in [DkimAlgorithm::Ed25519, DkimAlgorithm::Rsa] {
            let (_, made) = key("s", algorithm, 0);
            let record = txt_record(algorithm, &made.public_key);
            assert!(
                DomainKey::parse(record.as_bytes()).is_ok(),
                "mail-auth cannot read {record}"
            );
            let strings = txt_strings(&record);
            assert!(strings.iter().all(|s| s.len() <= 255));
            assert_eq!(strings.concat(), record);
        }
        let line = zone_line("s1", "relay.test", DkimAlgorithm::Ed25519, &[0; 32]);
        assert!(line.starts_with("s1._domainkey.relay.test. IN TXT ( \"v=DKIM1; k=ed25519; p="));
    }

    #[test]
    fn the_newest_active_key_of_each_algorithm_signs() {
        let (old_ed, _) = key("old-ed", DkimAlgorithm::Ed25519, 1);
        let (new_ed, _) = key("new-ed", DkimAlgorithm::Ed25519, 2);
        let (mut retired_rsa, _) = key("retired-rsa", DkimAlgorithm::Rsa, 3);
        retired_rsa.retired_at = Some(4);
        let (rsa, _) = key("rsa", DkimAlgorithm::Rsa, 1);
        let signer = Signer::new("relay.test", &[old_ed, new_ed, retired_rsa, rsa])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(signer.selectors(), vec!["new-ed", "rsa"]);
        let message = b"From: a@relay.test\r\nTo: b@relay.test\r\nSubject: s\r\n\r\nbody\r\n";
        let signed = signer.sign(message).unwrap_or_else(|e| panic!("{e}"));
        let text = String::from_utf8_lossy(&signed);
        assert_eq!(text.matches("DKIM-Signature:").count(), 2, "{text}");
        assert!(
            text.contains("a=ed25519-sha256") && text.contains("a=rsa-sha256"),
            "{text}"
        );
        assert!(text.contains("c=relaxed/relaxed"), "{text}");
        assert!(text.ends_with("\r\n\r\nbody\r\n"), "{text}");
    }

    #[test]
    fn selectors_are_dns_labels() {
        assert!(is_selector("mr2026-11"));
        assert!(is_selector("a.b"));
        for bad in ["", "-x", "x-", "a..b", "a b", "a_b", &"x".repeat(64)] {
            assert!(!is_selector(bad), "{bad}");
        }
    }
}
