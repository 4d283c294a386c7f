//! Replacing personal addresses in what members write.
//!
//! Mail clients repeat addresses everywhere: attribution lines ("On Tue, Bob
//! <bob@example.com> wrote:"), Outlook's quoted header block, `mailto:` links,
//! signatures, forwarded messages, calendar invitations, attachment names. A
//! [`Scrubber`] knows every address of every member of a conversation and the relay
//! address that stands for each; it replaces each occurrence in decoded text (the MIME
//! layer has already undone quoted-printable, base64 and charsets) and in HTML after
//! character references and percent escapes are decoded. With `remove_foreign` set, it
//! also blanks every other address that is not a relay address.
//!
//! Matching ignores case and word boundaries on purpose: a match inside a longer
//! address mangles that address, which is harmless, whereas a missed match is a leak.

mod address;
mod html;
mod view;

use std::borrow::Cow;
use std::ops::Range;

use view::{Edits, View, fold};

/// What replaces an address that belongs to no member of the conversation, when the
/// organisation asks for all addresses to go.
pub const REMOVED: &str = "[address removed]";

/// Knows which addresses to replace, and with what.
#[derive(Debug, Clone)]
pub struct Scrubber {
    /// Folded address and its replacement, longest first.
    known: Vec<(Vec<char>, String)>,
    relay_domain: String,
    folded_domain: Vec<char>,
    remove_foreign: bool,
}

impl Scrubber {
    /// A scrubber for a conversation on `relay_domain`.
    pub fn new(relay_domain: &str, remove_foreign: bool) -> Self {
        Self {
            known: Vec::new(),
            relay_domain: relay_domain.to_owned(),
            folded_domain: relay_domain.chars().map(fold).collect(),
            remove_foreign,
        }
    }

    /// The domain of relay addresses.
    pub fn relay_domain(&self) -> &str {
        &self.relay_domain
    }

    /// Replaces `address` (any case) with `replacement` from now on.
    pub fn replace(&mut self, address: &str, replacement: &str) {
        let folded: Vec<char> = address.trim().chars().map(fold).collect();
        if folded.is_empty() || self.known.iter().any(|(k, _)| *k == folded) {
            return;
        }
        self.known.push((folded, replacement.to_owned()));
        self.known.sort_by_key(|(k, _)| std::cmp::Reverse(k.len()));
    }

    /// Plain text (a text part, a subject, a file name) with addresses replaced, as
    /// written, with percent escapes decoded and with character references decoded
    /// (clients that turn HTML into plain text leave `&lt;bob&#64;example.com&gt;`).
    pub fn text<'a>(&self, text: &'a str) -> Cow<'a, str> {
        in_pieces(text, false, |piece| {
            if !may_hold_address(piece) {
                return Cow::Borrowed(piece);
            }
            let mut edits = Edits::default();
            self.edit(&View::plain(piece, 0).percent_decoded(), &mut edits);
            if piece.contains('&') {
                self.edit(
                    &html::references_decoded(piece).percent_decoded(),
                    &mut edits,
                );
            }
            apply(piece, edits)
        })
    }

    /// HTML with addresses replaced in its text and in every attribute value, and
    /// anywhere else they are written out literally: `<bob@example.com>` in HTML is
    /// an unknown tag to a browser, but the bytes still carry the address.
    pub fn html<'a>(&self, html: &'a str) -> Cow<'a, str> {
        in_pieces(html, true, |piece| {
            if !may_hold_address(piece) {
                return Cow::Borrowed(piece);
            }
            let mut edits = Edits::default();
            for view in html::views(piece) {
                self.edit(&view, &mut edits);
            }
            self.edit(&View::plain(piece, 0).percent_decoded(), &mut edits);
            apply(piece, edits)
        })
    }

    /// Whether `text` still holds a known address or, with `remove_foreign`, any
    /// address outside the relay domain. Used to check a scrubbed result.
    pub fn finds_any(&self, text: &str) -> bool {
        let mut edits = Edits::default();
        self.edit(&View::plain(text, 0), &mut edits);
        !edits.is_empty()
    }

    fn edit(&self, view: &View, edits: &mut Edits) {
        let folded = view.folded();
        let known = self.known_matches(&folded);
        for (range, replacement) in &known {
            edits.replace(view, range.clone(), replacement);
        }
        if !self.remove_foreign {
            return;
        }
        // Both kinds of match hold exactly one `@`: they overlap only if they share it.
        let known_ats: std::collections::HashSet<usize> = known
            .iter()
            .filter_map(|(r, _)| (r.start..r.end).find(|&i| folded[i] == '@'))
            .collect();
        for range in address::find(&folded) {
            let shared = (range.start..range.end).any(|i| known_ats.contains(&i));
            if !shared && !self.is_relay(&folded[range.clone()]) {
                edits.replace(view, range, REMOVED);
            }
        }
    }

    /// Non-overlapping occurrences of known addresses, found from each `@`.
    fn known_matches(&self, folded: &[char]) -> Vec<(Range<usize>, &str)> {
        let mut found: Vec<(Range<usize>, &str)> = Vec::new();
        for at in (0..folded.len()).filter(|&i| folded[i] == '@') {
            for (needle, replacement) in &self.known {
                let Some(offset) = needle.iter().position(|&c| c == '@') else {
                    continue;
                };
                let Some(start) = at.checked_sub(offset) else {
                    continue;
                };
                let end = start + needle.len();
                // Matches come in order of their `@`; only the last can reach this one.
                let taken = found.last().is_some_and(|(r, _)| start < r.end);
                if !taken && folded.get(start..end) == Some(needle.as_slice()) {
                    found.push((start..end, replacement));
                    break;
                }
            }
        }
        found
    }

    fn is_relay(&self, address: &[char]) -> bool {
        let Some(at) = address.iter().rposition(|&c| c == '@') else {
            return false;
        };
        address[at + 1..] == self.folded_domain[..]
    }
}

/// Parts longer than this are scrubbed a piece at a time, so that the decoded views
/// (tens of bytes per character) stay small whatever the size of a part.
const PIECE: usize = 64 * 1024;

/// Runs `scrub` over `text` in pieces of about [`PIECE`] bytes, cut at whitespace,
/// which no address contains, and in HTML only outside tags, so that no address and
/// no tag is cut in two.
fn in_pieces<'a>(
    text: &'a str,
    html: bool,
    scrub: impl Fn(&'a str) -> Cow<'a, str>,
) -> Cow<'a, str> {
    if text.len() <= PIECE {
        return scrub(text);
    }
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let (mut start, mut in_tag) = (0, false);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'<' if html
                && bytes
                    .get(i + 1)
                    .is_some_and(|n| n.is_ascii_alphabetic() || b"/!?".contains(n)) =>
            {
                in_tag = true;
            }
            b'>' => in_tag = false,
            b' ' | b'\t' | b'\r' | b'\n' if !in_tag && i + 1 - start >= PIECE => {
                pieces.push(scrub(&text[start..=i]));
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(scrub(&text[start..]));
    if pieces.iter().all(|p| matches!(p, Cow::Borrowed(_))) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(pieces.concat())
}

/// Whether `text` has an `@` in any form the views decode (as itself, `%40`, or a
/// character reference): text without one holds no address, and is left unread.
fn may_hold_address(text: &str) -> bool {
    text.bytes().any(|b| matches!(b, b'@' | b'%' | b'&'))
}

fn apply(source: &str, edits: Edits) -> Cow<'_, str> {
    if edits.is_empty() {
        Cow::Borrowed(source)
    } else {
        Cow::Owned(edits.apply(source))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrubber(remove_foreign: bool) -> Scrubber {
        let mut s = Scrubber::new("relay.test", remove_foreign);
        s.replace("bob@example.com", "bbbb@relay.test");
        s.replace("Bob.Smith@Work.example", "bbbb@relay.test");
        s.replace("alice@example.org", "aaaa@relay.test");
        s
    }

    #[test]
    fn attribution_lines_get_relay_addresses() {
        let out =
            scrubber(false).text("On Tue, Bob <BOB@Example.COM> wrote:\n> hi alice@example.org");
        assert_eq!(
            out,
            "On Tue, Bob <bbbb@relay.test> wrote:\n> hi aaaa@relay.test"
        );
    }

    #[test]
    fn secondary_addresses_are_replaced_too() {
        let out =
            scrubber(false).text("From: bob.smith@work.example [mailto:bob.smith@work.example]");
        assert_eq!(out, "From: bbbb@relay.test [mailto:bbbb@relay.test]");
    }

    #[test]
    fn percent_escaped_addresses_in_text_are_replaced() {
        let out = scrubber(false).text("https://x.example/u/bob%40example.com?x=1");
        assert_eq!(out, "https://x.example/u/bbbb@relay.test?x=1");
    }

    #[test]
    fn character_references_in_plain_text_are_replaced() {
        let out = scrubber(true).text(
            "Bob Smith &lt;bob&#64;example&period;com&gt; cc &lt;carol&#x40;x.example&gt; a &amp; b",
        );
        assert_eq!(
            out,
            "Bob Smith &lt;bbbb@relay.test&gt; cc &lt;[address removed]&gt; a &amp; b"
        );
    }

    #[test]
    fn html_entities_links_and_split_tags_are_replaced() {
        let s = scrubber(false);
        let html = concat!(
            "<a href=\"mailto:bob%40example.com\">bob&#64;example&period;com</a> ",
            "<span>alice@</span><b>example.org</b> <a href='MAILTO:Alice&#x40;Example.org'>x</a>"
        );
        let out = s.html(html);
        assert!(!s.finds_any(&out), "{out}");
        assert_eq!(
            out,
            concat!(
                "<a href=\"mailto:bbbb@relay.test\">bbbb@relay.test</a> ",
                "<span>aaaa@relay.test</span><b></b> <a href='MAILTO:aaaa@relay.test'>x</a>"
            )
        );
    }

    #[test]
    fn other_addresses_stay_unless_the_organisation_removes_them() {
        let text = "cc carol@elsewhere.net and bob@example.com, reply to x@relay.test";
        assert_eq!(
            scrubber(false).text(text),
            "cc carol@elsewhere.net and bbbb@relay.test, reply to x@relay.test"
        );
        assert_eq!(
            scrubber(true).text(text),
            "cc [address removed] and bbbb@relay.test, reply to x@relay.test"
        );
    }

    #[test]
    fn addresses_that_look_like_tags_are_replaced() {
        let s = scrubber(true);
        let out = s.html("To: Alice <alice@example.org>, Carol <carol@x.example><br>");
        assert_eq!(
            out,
            "To: Alice <aaaa@relay.test>, Carol <[address removed]><br>"
        );
    }

    #[test]
    fn long_parts_are_scrubbed_in_pieces_without_missing_an_address() {
        let s = scrubber(true);
        let mut html = String::new();
        let mut expected = String::new();
        for i in 0..20_000 {
            html.push_str(&format!(
                "<p title=\"x{i}\">mail BOB@example.com or c{i}@x.example</p>\n"
            ));
            expected.push_str(&format!(
                "<p title=\"x{i}\">mail bbbb@relay.test or [address removed]</p>\n"
            ));
        }
        assert!(html.len() > 10 * PIECE);
        assert_eq!(s.html(&html), expected);
        let text = html.replace("<p", "").replace("</p>", "");
        assert!(!s.finds_any(&s.text(&text)));
    }

    #[test]
    fn text_without_addresses_is_borrowed_unchanged() {
        assert!(matches!(
            scrubber(true).text("nothing here @ all"),
            Cow::Borrowed(_)
        ));
        assert!(matches!(
            scrubber(true).html("<p>a &amp; b</p>"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn an_address_inside_a_longer_one_is_still_replaced() {
        assert_eq!(
            scrubber(false).text("jimbob@example.com.au"),
            "jimbbbb@relay.test.au"
        );
    }
}
