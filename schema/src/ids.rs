//! Identifiers, relay tokens, API keys and the clock.

use crate::crypto::fill_random;
use crate::error::Result;

/// Characters of relay tokens: lower-case letters and digits, which survive every mail
/// client and every case-folding MTA unchanged.
const TOKEN_ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Length of a relay token: 36^16 is about 2^82.7, above the 80 bits we promise.
pub const TOKEN_LEN: usize = 16;

/// A new time-ordered unique id (UUID v7), as text.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Current time in Unix milliseconds.
pub fn now_ms() -> i64 {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// A random string of `len` characters from `[a-z0-9]`, without modulo bias.
///
/// # Errors
/// [`crate::StoreError::Random`] if the system generator fails.
pub fn random_token(len: usize) -> Result<String> {
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        fill_random(&mut buf)?;
        // 252 is the largest multiple of 36 below 256: rejecting bytes above it keeps
        // every character equally likely.
        for &b in buf.iter().filter(|&&b| b < 252) {
            if out.len() == len {
                break;
            }
            out.push(char::from(TOKEN_ALPHABET[usize::from(b % 36)]));
        }
    }
    Ok(out)
}

/// A new relay token (the local part of a masked address).
///
/// # Errors
/// [`crate::StoreError::Random`] if the system generator fails.
pub fn relay_token() -> Result<String> {
    random_token(TOKEN_LEN)
}

/// A new API key: a recognisable prefix and 160 random bits.
///
/// # Errors
/// [`crate::StoreError::Random`] if the system generator fails.
pub fn api_key() -> Result<String> {
    let mut bytes = [0u8; 20];
    fill_random(&mut bytes)?;
    Ok(format!("mrk_{}", hex::encode(bytes)))
}

/// True if `s` has the shape of a relay token.
pub fn is_relay_token(s: &str) -> bool {
    s.len() == TOKEN_LEN && s.bytes().all(|b| TOKEN_ALPHABET.contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_tokens_are_lowercase_alphanumeric_and_distinct() -> Result<()> {
        let a = relay_token()?;
        let b = relay_token()?;
        assert!(is_relay_token(&a), "{a}");
        assert_ne!(a, b);
        Ok(())
    }

    #[test]
    fn token_shape_check_rejects_other_strings() {
        assert!(!is_relay_token("ABCDEFGHIJKLMNOP"));
        assert!(!is_relay_token("abc"));
        assert!(!is_relay_token("abcdefghijklmno-"));
    }

    #[test]
    fn token_characters_cover_the_alphabet() -> Result<()> {
        let sample = random_token(4000)?;
        for &c in TOKEN_ALPHABET {
            assert!(sample.as_bytes().contains(&c), "missing {}", c as char);
        }
        Ok(())
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let a = new_id();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(new_id() > a);
    }
}
