//! Random tokens: relay tokens (the local parts of masked addresses), the random
//! parts of our Message-IDs and content ids, and API keys.

use crate::crypto::fill_random;
use crate::error::Result;

/// Characters of random tokens (Message-IDs, content ids) and of the relay tokens
/// handed out before syllabic ones: lower-case letters and digits, which survive
/// every mail client and every case-folding MTA unchanged.
const TOKEN_ALPHABET: &[u8; 36] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// Length of those earlier relay tokens (36^16, about 2^82.7); still accepted.
pub const TOKEN_LEN: usize = 16;

/// Consonants and vowels of relay tokens. Spam filters take a local part with five
/// consonants in a row for a random one (SpamAssassin's `HK_RANDOM_FROM`), and a
/// random `[a-z0-9]` token has such a run more often than not; alternating
/// consonant and vowel never does, and reads like a name ("kobamitu…"). Letters
/// that look alike or are rarely pronounced one way (c, h, j, q, w, x, y) are left out.
const CONSONANTS: &[u8; 14] = b"bdfgklmnprstvz";
const VOWELS: &[u8; 5] = b"aeiou";

/// Syllables of a relay token: 70^14 is about 2^85.8, above the 80 bits we promise.
pub const TOKEN_SYLLABLES: usize = 14;

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

/// A new relay token (the local part of a masked address): fourteen random
/// consonant-vowel syllables.
///
/// # Errors
/// [`crate::StoreError::Random`] if the system generator fails.
pub fn relay_token() -> Result<String> {
    let mut out = String::with_capacity(2 * TOKEN_SYLLABLES);
    let mut buf = [0u8; 64];
    while out.len() < 2 * TOKEN_SYLLABLES {
        fill_random(&mut buf)?;
        // 210 is the largest multiple of 70 (syllables) below 256: rejecting bytes
        // above it keeps every syllable equally likely.
        for &b in buf.iter().filter(|&&b| b < 210) {
            if out.len() == 2 * TOKEN_SYLLABLES {
                break;
            }
            let syllable = usize::from(b % 70);
            out.push(char::from(CONSONANTS[syllable / 5]));
            out.push(char::from(VOWELS[syllable % 5]));
        }
    }
    Ok(out)
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

/// True if `s` has the shape of a relay token: syllabic, or of the earlier form
/// (addresses already handed out keep working).
pub fn is_relay_token(s: &str) -> bool {
    let bytes = s.as_bytes();
    let syllabic = bytes.len() == 2 * TOKEN_SYLLABLES
        && bytes
            .chunks(2)
            .all(|p| CONSONANTS.contains(&p[0]) && VOWELS.contains(&p[1]));
    let earlier = bytes.len() == TOKEN_LEN && bytes.iter().all(|b| TOKEN_ALPHABET.contains(b));
    syllabic || earlier
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
    fn relay_tokens_never_look_random_to_spam_filters() -> Result<()> {
        for _ in 0..2000 {
            let token = relay_token()?;
            assert_eq!(token.len(), 28);
            // HK_RANDOM_FROM: five consonants or five vowels in a row.
            let runs = |set: &[u8]| {
                token
                    .as_bytes()
                    .split(|b| !set.contains(b))
                    .map(<[u8]>::len)
                    .max()
                    .unwrap_or(0)
            };
            assert!(
                runs(b"bcdfgjklmnpqrtvwxz") < 5 && runs(b"aeiouy") < 5,
                "{token}"
            );
        }
        // Tokens handed out before keep working.
        assert!(is_relay_token("k7q2mx9d4pabcdef"));
        Ok(())
    }

    #[test]
    fn token_shape_check_rejects_other_strings() {
        assert!(!is_relay_token("ABCDEFGHIJKLMNOP"));
        assert!(!is_relay_token("abc"));
        assert!(!is_relay_token("abcdefghijklmno-"));
        assert!(is_relay_token("kobamitukobamitukobamitukoba"));
        assert!(!is_relay_token("kobamitukobamitukobamituko"));
        assert!(!is_relay_token("kabamitukobamitukobamitukobq"));
    }

    #[test]
    fn token_characters_cover_the_alphabet() -> Result<()> {
        let sample = random_token(4000)?;
        for &c in TOKEN_ALPHABET {
            assert!(sample.as_bytes().contains(&c), "missing {}", c as char);
        }
        Ok(())
    }
}
