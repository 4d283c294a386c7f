//! Encryption of personal data at rest, and the keyed blind index used to find it.
//!
//! One 32-byte master secret is expanded (HMAC-SHA-256 with fixed labels) into two
//! independent keys, so that the index key can never decrypt and the encryption key
//! never appears in an index. Ciphertext is `version || nonce || AES-256-GCM(data)`,
//! with the column's name as associated data so a value cannot be moved to another
//! column unnoticed.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::error::{Result, StoreError};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

/// The master secret from which every key of the store is derived.
#[derive(Clone)]
pub struct SecretKey([u8; 32]);

impl SecretKey {
    /// Parses 64 hexadecimal characters (surrounding white space ignored).
    ///
    /// # Errors
    /// [`StoreError::InvalidKey`] when the text is not exactly 32 bytes of hex.
    pub fn from_hex(text: &str) -> Result<Self> {
        let bytes = hex::decode(text.trim())
            .map_err(|e| StoreError::InvalidKey(format!("not hexadecimal: {e}")))?;
        let key: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
            StoreError::InvalidKey(format!("expected 32 bytes, found {}", b.len()))
        })?;
        Ok(Self(key))
    }

    /// A new random key from the operating system.
    ///
    /// # Errors
    /// [`StoreError::Random`] if the system generator fails.
    pub fn generate() -> Result<Self> {
        let mut key = [0u8; 32];
        fill_random(&mut key)?;
        Ok(Self(key))
    }

    /// The key as 64 lower-case hexadecimal characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

/// Encrypts and decrypts column values and computes blind indexes.
#[derive(Clone)]
pub struct Crypto {
    cipher: Aes256Gcm,
    index_key: [u8; 32],
    link_key: [u8; 32],
}

impl Crypto {
    /// Derives the encryption and index keys from the master secret.
    pub fn new(secret: &SecretKey) -> Self {
        let enc_key = derive(&secret.0, b"maskrelay/encryption/v1");
        let index_key = derive(&secret.0, b"maskrelay/blind-index/v1");
        let link_key = derive(&secret.0, b"maskrelay/links/v1");
        Self {
            cipher: Aes256Gcm::new(&enc_key.into()),
            index_key,
            link_key,
        }
    }

    /// Encrypts `plain` for storage in `column`.
    ///
    /// # Errors
    /// [`StoreError::Random`] if no nonce could be drawn.
    pub fn encrypt(&self, column: &'static str, plain: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        fill_random(&mut nonce)?;
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plain,
                    aad: column.as_bytes(),
                },
            )
            .map_err(|_| StoreError::Random("AES-GCM refused the input".into()))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts a value stored in `column`.
    ///
    /// # Errors
    /// [`StoreError::Decrypt`] if the value is malformed, tampered with or under another key.
    pub fn decrypt(&self, column: &'static str, stored: &[u8]) -> Result<Vec<u8>> {
        let bad = || StoreError::Decrypt { column };
        let (&version, rest) = stored.split_first().ok_or_else(bad)?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| bad())?;
        self.cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: sealed,
                    aad: column.as_bytes(),
                },
            )
            .map_err(|_| bad())
    }

    /// Decrypts a UTF-8 text value stored in `column`.
    ///
    /// # Errors
    /// As [`Crypto::decrypt`], and [`StoreError::Decrypt`] if the plaintext is not UTF-8.
    pub fn decrypt_text(&self, column: &'static str, stored: &[u8]) -> Result<String> {
        String::from_utf8(self.decrypt(column, stored)?).map_err(|_| StoreError::Decrypt { column })
    }

    /// The blind index of an email address: HMAC of its normalised form.
    ///
    /// Normalisation trims white space and lower-cases the whole address, because mail
    /// clients and people vary the case of the local part too.
    pub fn email_index(&self, address: &str) -> Vec<u8> {
        let normalised = address.trim().to_lowercase();
        derive(&self.index_key, normalised.as_bytes()).to_vec()
    }
}

impl Crypto {
    /// A token for a link in a message: `payload` and a keyed MAC of it, so that a
    /// link cannot be made for anyone else. `payload` must not contain `~`.
    pub fn sign_link(&self, payload: &str) -> String {
        let mac = derive(&self.link_key, payload.as_bytes());
        format!("{payload}~{LINK_MAC_TAG}{}", hex::encode(&mac[..16]))
    }

    /// The envelope sender of a delivery (VERP): `b-<delivery id>-<mac>`, local part
    /// only. Bounces come back to it, naming their delivery; the MAC (64 bits of
    /// HMAC, hex) keeps anyone from forging bounces for deliveries they guess.
    pub fn verp_local(&self, delivery_id: &str) -> String {
        let mac = derive(&self.link_key, format!("verp:{delivery_id}").as_bytes());
        format!("b-{delivery_id}-{}", hex::encode(&mac[..8]))
    }

    /// The delivery id in a VERP local part made by [`Crypto::verp_local`], if its
    /// MAC is right (any case: some MTAs lower- or upper-case addresses).
    pub fn verify_verp(&self, local: &str) -> Option<String> {
        let local = local.to_ascii_lowercase();
        let rest = local.strip_prefix("b-")?;
        let (id, _) = rest.rsplit_once('-')?;
        same_secret(&self.verp_local(id), &local).then(|| id.to_owned())
    }

    /// The payload of a token made by [`Crypto::sign_link`], if its MAC is right.
    pub fn verify_link<'a>(&self, token: &'a str) -> Option<&'a str> {
        let (payload, mac) = token.rsplit_once('~')?;
        // Links sent before the tag was added still work.
        let mac = mac.strip_prefix(LINK_MAC_TAG).unwrap_or(mac);
        let expected = hex::encode(&derive(&self.link_key, payload.as_bytes())[..16]);
        same_secret(mac, &expected).then_some(payload)
    }
}

/// Written before a link's MAC. Bare, 32 hex digits after `~` look like a Bitcoin
/// address to SpamAssassin about one time in sixty (a word of 26 to 35 base58
/// characters starting with 1 or 3: `PDS_BTC_ID`, a point towards spam); behind a
/// letter they are no word of their own.
const LINK_MAC_TAG: &str = "k";

/// Whether two MACs are equal, compared in constant time: a MAC is a secret until
/// it is right, and an early exit would tell an attacker how much of it is.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// SHA-256 of a value; used for API keys and request fingerprints, which are already
/// high-entropy or not secret, so no key is needed.
pub fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest;
    Sha256::digest(data).to_vec()
}

fn derive(key: &[u8; 32], label: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so construction cannot fail for 32 bytes.
    let mut mac = match <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(label);
    mac.finalize().into_bytes().into()
}

/// Fills `buf` from the operating system's secure random generator.
///
/// # Errors
/// [`StoreError::Random`] if the generator fails.
pub fn fill_random(buf: &mut [u8]) -> Result<()> {
    getrandom::fill(buf).map_err(|e| StoreError::Random(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crypto() -> Crypto {
        Crypto::new(&SecretKey([7u8; 32]))
    }

    #[test]
    fn verp_addresses_name_their_delivery_and_cannot_be_forged() {
        let c = crypto();
        let id = "0190f3a2-7c1e-7d3b-9a4e-2f6b8c1d0e9f";
        let local = c.verp_local(id);
        assert!(
            local.starts_with("b-0190f3a2-") && local.len() <= 64,
            "{local}"
        );
        assert_eq!(c.verify_verp(&local).as_deref(), Some(id));
        assert_eq!(c.verify_verp(&local.to_uppercase()).as_deref(), Some(id));
        let other = Crypto::new(&SecretKey([8u8; 32]));
        assert_eq!(other.verify_verp(&local), None);
        let forged = local.replace("0190f3a2", "0190f3a3");
        assert_eq!(c.verify_verp(&forged), None);
        assert_eq!(c.verify_verp("b-x"), None);
        assert_eq!(c.verify_verp("bounces"), None);
    }

    /// SpamAssassin's `__BITCOIN_ID` (legacy form): a whole word of 26 to 35 base58
    /// characters starting with 1 or 3.
    fn looks_like_bitcoin(text: &str) -> bool {
        const BASE58: &str = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
        text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|word| {
                (26..=35).contains(&word.len())
                    && word.starts_with(['1', '3'])
                    && word.chars().all(|c| BASE58.contains(c))
            })
    }

    #[test]
    fn link_tokens_never_look_like_bitcoin_addresses() {
        let c = crypto();
        assert!(looks_like_bitcoin(
            "pay 1BoatSLRHtKNngkdXEeobR76b53LETtpyT now"
        ));
        for i in 0..5000 {
            let link = c.sign_link(&format!("stop.org{i}.member{i}"));
            assert!(!looks_like_bitcoin(&link), "{link}");
            assert!(c.verify_link(&link).is_some());
        }
    }

    #[test]
    fn links_signed_before_the_tag_still_verify() {
        let c = crypto();
        let payload = "stop.o.m";
        let untagged = format!(
            "{payload}~{}",
            hex::encode(&derive(&c.link_key, payload.as_bytes())[..16])
        );
        assert_eq!(c.verify_link(&untagged), Some(payload));
    }

    #[test]
    fn link_tokens_verify_only_unchanged() -> Result<()> {
        let c = Crypto::new(&SecretKey::generate()?);
        let token = c.sign_link("block.a.b");
        assert_eq!(c.verify_link(&token), Some("block.a.b"));
        assert_eq!(c.verify_link(&token.replace("block.a", "block.x")), None);
        assert_eq!(c.verify_link("block.a.b~00"), None);
        let other = Crypto::new(&SecretKey::generate()?);
        assert_eq!(other.verify_link(&token), None);
        Ok(())
    }

    #[test]
    fn encrypt_then_decrypt_round_trips() -> Result<()> {
        let c = crypto();
        let sealed = c.encrypt("members.email", b"bob@example.com")?;
        assert!(!sealed.windows(3).any(|w| w == b"bob"));
        assert_eq!(c.decrypt("members.email", &sealed)?, b"bob@example.com");
        Ok(())
    }

    #[test]
    fn ciphertext_moved_to_another_column_is_rejected() -> Result<()> {
        let c = crypto();
        let sealed = c.encrypt("members.email", b"bob@example.com")?;
        assert!(matches!(
            c.decrypt("members.name", &sealed),
            Err(StoreError::Decrypt { .. })
        ));
        Ok(())
    }

    #[test]
    fn a_different_key_cannot_decrypt() -> Result<()> {
        let sealed = crypto().encrypt("members.email", b"x")?;
        let other = Crypto::new(&SecretKey([8u8; 32]));
        assert!(other.decrypt("members.email", &sealed).is_err());
        Ok(())
    }

    #[test]
    fn truncated_ciphertext_is_an_error_not_a_panic() {
        let c = crypto();
        for len in 0..20 {
            assert!(c.decrypt("members.email", &vec![1u8; len]).is_err());
        }
    }

    #[test]
    fn email_index_ignores_case_and_spaces_but_not_the_address() {
        let c = crypto();
        assert_eq!(
            c.email_index(" Bob@Example.COM "),
            c.email_index("bob@example.com")
        );
        assert_ne!(
            c.email_index("bob@example.com"),
            c.email_index("bob@example.org")
        );
        let other = Crypto::new(&SecretKey([8u8; 32]));
        assert_ne!(
            other.email_index("bob@example.com"),
            c.email_index("bob@example.com")
        );
    }

    #[test]
    fn key_hex_round_trips_and_rejects_bad_lengths() -> Result<()> {
        let key = SecretKey::generate()?;
        assert_eq!(SecretKey::from_hex(&key.to_hex())?.0, key.0);
        assert!(SecretKey::from_hex("abcd").is_err());
        assert!(SecretKey::from_hex(&"zz".repeat(32)).is_err());
        Ok(())
    }
}
