//! Finding things that look like email addresses in decoded text.
//!
//! Used where an organisation asks for every address to go, not only those of the
//! conversation's members. Generous on purpose: it is better to blank a string that
//! merely looks like an address than to let an address through.

use std::ops::Range;

fn is_local(c: char) -> bool {
    c.is_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c)
}

fn is_domain(c: char) -> bool {
    c.is_alphanumeric() || c == '-' || c == '.'
}

/// The character ranges of every address-like `local@domain.tld` in `chars`.
pub fn find(chars: &[char]) -> Vec<Range<usize>> {
    let mut found = Vec::new();
    let mut from = 0;
    for at in 0..chars.len() {
        if chars[at] != '@' || at < from {
            continue;
        }
        let mut start = at;
        while start > from && is_local(chars[start - 1]) {
            start -= 1;
        }
        while start < at && chars[start] == '.' {
            start += 1;
        }
        let mut end = at + 1;
        while end < chars.len() && is_domain(chars[end]) {
            end += 1;
        }
        while end > at + 1 && matches!(chars[end - 1], '.' | '-') {
            end -= 1;
        }
        if start == at || !plausible_domain(&chars[at + 1..end]) {
            continue;
        }
        found.push(start..end);
        from = end;
    }
    found
}

/// A domain with at least two labels and an alphabetic top-level label.
fn plausible_domain(domain: &[char]) -> bool {
    let domain: String = domain.iter().collect();
    let mut labels = domain.split('.');
    let Some(tld) = domain.rsplit('.').next() else {
        return false;
    };
    domain.contains('.')
        && labels.all(|l| !l.is_empty())
        && tld.chars().count() >= 2
        && tld.chars().all(char::is_alphabetic)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(s: &str) -> Vec<String> {
        let chars: Vec<char> = s.chars().collect();
        find(&chars)
            .into_iter()
            .map(|r| chars[r].iter().collect())
            .collect()
    }

    #[test]
    fn finds_addresses_in_prose_and_brackets() {
        assert_eq!(
            all("Write to <a.b+c@x.example.org>, or mailto:D@Y.CO. Thanks."),
            ["a.b+c@x.example.org", "D@Y.CO"]
        );
    }

    #[test]
    fn ignores_what_is_not_an_address() {
        assert!(all("@handle, a@b, x@localhost, 5@3.14, @").is_empty());
    }

    #[test]
    fn finds_international_addresses() {
        assert_eq!(all("jörg@bücher.de"), ["jörg@bücher.de"]);
    }
}
