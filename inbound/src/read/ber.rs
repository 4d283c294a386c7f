//! BER to DER, as far as CMS needs it.
//!
//! Signing software that streams (OpenSSL with `-stream`, and mail clients built on
//! streaming encoders) writes CMS in BER: indefinite lengths ended by `00 00`, and
//! the signed content as a constructed OCTET STRING in chunks. The `der` crate reads
//! only DER, so such a structure is rewritten first: every length made definite and
//! every constructed OCTET STRING joined into one primitive string. Nothing is
//! verified, so nothing else about the encoding needs to change.

/// Why bytes could not be rewritten.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotBer;

/// Deeper nesting than this is refused; CMS signed data nests about a dozen levels.
const MAX_DEPTH: usize = 64;

const OCTET_STRING: u8 = 0x04;
const CONSTRUCTED: u8 = 0x20;

/// One BER element rewritten as DER; bytes after it are ignored.
///
/// # Errors
/// [`NotBer`] if the bytes are not a well-formed BER element.
pub fn to_der(ber: &[u8]) -> Result<Vec<u8>, NotBer> {
    let mut out = Vec::with_capacity(ber.len());
    element(ber, &mut out, 0)?;
    Ok(out)
}

/// Rewrites the element at the start of `input` into `out`; returns its length in
/// `input`.
fn element(input: &[u8], out: &mut Vec<u8>, depth: usize) -> Result<usize, NotBer> {
    if depth > MAX_DEPTH {
        return Err(NotBer);
    }
    let tag_len = tag_length(input)?;
    let tag = &input[..tag_len];
    let constructed = tag[0] & CONSTRUCTED != 0;
    let (length, length_len) = length(input.get(tag_len..).ok_or(NotBer)?)?;
    let body_start = tag_len + length_len;
    let rest = input.get(body_start..).ok_or(NotBer)?;
    if !constructed {
        let length = length.ok_or(NotBer)?;
        let value = rest.get(..length).ok_or(NotBer)?;
        out.extend_from_slice(tag);
        put_length(value.len(), out);
        out.extend_from_slice(value);
        return Ok(body_start + length);
    }
    let (children, used) = children(rest, length, depth)?;
    if tag == [OCTET_STRING | CONSTRUCTED] {
        // A chunked OCTET STRING: DER allows only the primitive form.
        let mut joined = Vec::new();
        octets(&children, &mut joined)?;
        out.push(OCTET_STRING);
        put_length(joined.len(), out);
        out.extend_from_slice(&joined);
    } else {
        out.extend_from_slice(tag);
        put_length(children.len(), out);
        out.extend_from_slice(&children);
    }
    Ok(body_start + used)
}

/// The DER of the elements inside a constructed element, and how many bytes of
/// `rest` they (and an end-of-contents marker) took.
fn children(rest: &[u8], length: Option<usize>, depth: usize) -> Result<(Vec<u8>, usize), NotBer> {
    let mut out = Vec::new();
    match length {
        Some(length) => {
            let body = rest.get(..length).ok_or(NotBer)?;
            let mut at = 0;
            while at < body.len() {
                at += element(&body[at..], &mut out, depth + 1)?;
            }
            Ok((out, length))
        }
        None => {
            let mut at = 0;
            loop {
                match rest.get(at..at + 2) {
                    Some([0, 0]) => return Ok((out, at + 2)),
                    Some(_) => at += element(&rest[at..], &mut out, depth + 1)?,
                    None => return Err(NotBer),
                }
            }
        }
    }
}

/// The contents of DER OCTET STRING elements, concatenated.
fn octets(der: &[u8], out: &mut Vec<u8>) -> Result<(), NotBer> {
    let mut at = 0;
    while at < der.len() {
        let rest = &der[at..];
        if rest[0] != OCTET_STRING {
            return Err(NotBer);
        }
        let (length, length_len) = length(rest.get(1..).ok_or(NotBer)?)?;
        let length = length.ok_or(NotBer)?;
        let value = rest
            .get(1 + length_len..1 + length_len + length)
            .ok_or(NotBer)?;
        out.extend_from_slice(value);
        at += 1 + length_len + length;
    }
    Ok(())
}

/// How many bytes the identifier at the start of `input` takes.
fn tag_length(input: &[u8]) -> Result<usize, NotBer> {
    let first = *input.first().ok_or(NotBer)?;
    if first & 0x1f != 0x1f {
        return Ok(1);
    }
    // High tag number: base-128 digits, the last without its top bit.
    let end = input
        .iter()
        .skip(1)
        .take(4)
        .position(|b| b & 0x80 == 0)
        .ok_or(NotBer)?;
    Ok(end + 2)
}

/// The length at the start of `input` (`None` for indefinite) and how many bytes it
/// takes.
fn length(input: &[u8]) -> Result<(Option<usize>, usize), NotBer> {
    let first = *input.first().ok_or(NotBer)?;
    match first {
        0x80 => Ok((None, 1)),
        n if n < 0x80 => Ok((Some(usize::from(n)), 1)),
        n => {
            let count = usize::from(n & 0x7f);
            if count > 4 {
                return Err(NotBer);
            }
            let digits = input.get(1..1 + count).ok_or(NotBer)?;
            let value = digits
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            Ok((Some(value), 1 + count))
        }
    }
}

/// Writes a definite length in its shortest form.
fn put_length(length: usize, out: &mut Vec<u8>) {
    if length < 0x80 {
        out.push(length as u8);
        return;
    }
    let bytes = length.to_be_bytes();
    let skip = bytes.iter().take_while(|&&b| b == 0).count();
    out.push(0x80 | (bytes.len() - skip) as u8);
    out.extend_from_slice(&bytes[skip..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indefinite_lengths_and_chunked_strings_become_der() {
        // SEQUENCE (indefinite) { [0] (indefinite) { OCTET STRING chunks "he" "llo" } }
        let ber = [
            0x30, 0x80, 0xa0, 0x80, 0x24, 0x80, 0x04, 0x02, b'h', b'e', 0x04, 0x03, b'l', b'l',
            b'o', 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        ];
        assert_eq!(
            to_der(&ber),
            Ok(vec![
                0x30, 0x09, 0xa0, 0x07, 0x04, 0x05, b'h', b'e', b'l', b'l', b'o'
            ])
        );
    }

    #[test]
    fn der_stays_as_it_is() {
        let der = [0x30, 0x06, 0x02, 0x01, 0x05, 0x04, 0x01, 0xff];
        assert_eq!(to_der(&der), Ok(der.to_vec()));
        let mut long = vec![0x04, 0x81, 0xc8];
        long.extend([7u8; 200]);
        assert_eq!(to_der(&long), Ok(long.clone()));
    }

    #[test]
    fn malformed_input_is_an_error_not_a_panic() {
        for bad in [
            &[][..],
            &[0x30],
            &[0x30, 0x80, 0x04, 0x01],
            &[0x04, 0x85, 1, 2, 3, 4, 5],
            &[0x04, 0x80, 0x00, 0x00],
            &[0x1f, 0x81, 0x81, 0x81, 0x81, 0x81],
            &[0x30, 0x05, 0x04, 0x09, 0x00],
        ] {
            assert_eq!(to_der(bad), Err(NotBer), "{bad:?}");
        }
        let deep: Vec<u8> = std::iter::repeat_n([0x30u8, 0x80], 100).flatten().collect();
        assert_eq!(to_der(&deep), Err(NotBer));
    }
}
