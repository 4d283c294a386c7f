//! A decoded view of encoded text that remembers where each character came from.
//!
//! Addresses hide behind encodings: `bob&#64;example.com` in HTML, `bob%40example.com`
//! in a link, `bob@<wbr>example.com` across a tag. The scrubber searches the decoded
//! characters, then edits the *source* at the spans those characters came from, so
//! that everything around an address stays byte for byte as the writer sent it.

use std::ops::Range;

/// One decoded character and the byte range of the source it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The character as read.
    pub ch: char,
    /// Where it came from in the source.
    pub span: Range<usize>,
}

/// A sequence of decoded characters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// The characters, in source order.
    pub chars: Vec<Decoded>,
}

impl View {
    /// Every character of `text` as itself, offset by `base` bytes.
    pub fn plain(text: &str, base: usize) -> Self {
        Self {
            chars: text
                .char_indices()
                .map(|(i, ch)| Decoded {
                    ch,
                    span: base + i..base + i + ch.len_utf8(),
                })
                .collect(),
        }
    }

    /// The view with `%XX` sequences decoded; a multi-byte UTF-8 sequence becomes one
    /// character spanning all of its escapes. Escapes that do not decode stay as they are.
    pub fn percent_decoded(self) -> Self {
        // Most text has no escapes: keep it rather than copy it.
        if !self.chars.iter().any(|d| d.ch == '%') {
            return self;
        }
        let chars = self.chars;
        let mut out = Vec::with_capacity(chars.len());
        let mut i = 0;
        while i < chars.len() {
            let Some((bytes, spans, next)) = escape_run(&chars, i) else {
                out.push(chars[i].clone());
                i += 1;
                continue;
            };
            match std::str::from_utf8(&bytes) {
                Ok(decoded) => {
                    let mut at = 0;
                    for ch in decoded.chars() {
                        let first = &spans[at];
                        let last = &spans[at + ch.len_utf8() - 1];
                        out.push(Decoded {
                            ch,
                            span: first.start..last.end,
                        });
                        at += ch.len_utf8();
                    }
                }
                Err(_) => out.extend_from_slice(&chars[i..next]),
            }
            i = next;
        }
        Self { chars: out }
    }

    /// The characters lower-cased one for one (a character whose lower case is longer
    /// stays as it is), so that character indices of the string equal view indices.
    pub fn folded(&self) -> Vec<char> {
        self.chars.iter().map(|d| fold(d.ch)).collect()
    }
}

/// Lower-cases a character if that keeps it a single character.
pub fn fold(ch: char) -> char {
    if ch.is_ascii() {
        return ch.to_ascii_lowercase();
    }
    let mut lower = ch.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => ch,
    }
}

/// A run of `%XX` escapes starting at `i`: the bytes, the span of each byte, and the
/// index after the run.
fn escape_run(chars: &[Decoded], mut i: usize) -> Option<(Vec<u8>, Vec<Range<usize>>, usize)> {
    let mut bytes = Vec::new();
    let mut spans = Vec::new();
    while let [pct, hi, lo, ..] = &chars[i..] {
        if pct.ch != '%' {
            break;
        }
        let (Some(h), Some(l)) = (hi.ch.to_digit(16), lo.ch.to_digit(16)) else {
            break;
        };
        bytes.push((h * 16 + l) as u8);
        spans.push(pct.span.start..lo.span.end);
        i += 3;
    }
    (!bytes.is_empty()).then_some((bytes, spans, i))
}

/// Edits to make to a source string: replace each span with new text.
#[derive(Debug, Default)]
pub struct Edits {
    edits: Vec<(Range<usize>, String)>,
}

impl Edits {
    /// Replaces the characters `range` of `view` with `replacement`: the first
    /// character's span takes the replacement and the others are deleted, so that
    /// markup between them (a tag inside an address) is left in place.
    pub fn replace(&mut self, view: &View, range: Range<usize>, replacement: &str) {
        let mut spans = view.chars[range].iter().map(|d| d.span.clone());
        let Some(first) = spans.next() else {
            return;
        };
        let mut current = first;
        let mut text = replacement.to_owned();
        for span in spans {
            if span.start == current.end {
                current.end = span.end;
            } else {
                self.edits.push((current, std::mem::take(&mut text)));
                current = span;
            }
        }
        self.edits.push((current, text));
    }

    /// Whether nothing is to change.
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }

    /// The source with every edit applied. Overlapping edits after the first are
    /// dropped, which cannot happen for edits made from non-overlapping matches.
    pub fn apply(mut self, source: &str) -> String {
        self.edits.sort_by_key(|(span, _)| span.start);
        let mut out = String::with_capacity(source.len());
        let mut at = 0;
        for (span, text) in self.edits {
            if span.start < at {
                continue;
            }
            out.push_str(source.get(at..span.start).unwrap_or_default());
            out.push_str(&text);
            at = span.end;
        }
        out.push_str(source.get(at..).unwrap_or_default());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(view: &View) -> String {
        view.chars.iter().map(|d| d.ch).collect()
    }

    #[test]
    fn percent_escapes_decode_to_one_character_each() {
        let v = View::plain("a%40b%C3%A9%zz%4", 0).percent_decoded();
        assert_eq!(text(&v), "a@bé%zz%4");
        assert_eq!(v.chars[1].span, 1..4);
        assert_eq!(v.chars[3].span, 5..11);
    }

    #[test]
    fn invalid_utf8_escapes_stay_as_written() {
        let v = View::plain("%FF%40", 0).percent_decoded();
        assert_eq!(text(&v), "%FF%40");
    }

    #[test]
    fn a_replacement_keeps_what_lies_between_its_characters() {
        let source = "x<b>ab</b>cd y";
        // A view that skips the tags: "xabcd y".
        let mut view = View::plain("x", 0);
        view.chars.extend(View::plain("ab", 4).chars);
        view.chars.extend(View::plain("cd y", 10).chars);
        let mut edits = Edits::default();
        edits.replace(&view, 1..5, "Z");
        assert_eq!(edits.apply(source), "x<b>Z</b> y");
    }
}
