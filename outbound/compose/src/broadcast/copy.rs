//! One member's copy of a broadcast: from the organisation's name at the relay
//! domain, in its language, with the list headers and footer of its category
//! (unless it is mandatory), composed by the same builder as every other message.

use maskrelay_schema::BroadcastId;
use maskrelay_schema::broadcasts::Broadcast;
use maskrelay_schema::categories::Category;
use maskrelay_schema::clock::now_ms;
use maskrelay_schema::members::Member;
use maskrelay_schema::orgs::Org;
use maskrelay_schema::tokens::random_token;

use crate::broadcast::spec::BroadcastSpec;
use crate::build::{Draft, ListHeaders, Sender, build};
use crate::content::Body;
use crate::error::SubmitError;
use crate::link::LinkAction;
use crate::scrub::Scrubber;
use crate::submit::Submitter;

/// What every copy of one broadcast shares.
pub(crate) struct Common<'a> {
    pub(crate) org: &'a Org,
    pub(crate) broadcast: &'a Broadcast,
    /// The category, unless the broadcast is mandatory.
    pub(crate) category: Option<&'a Category>,
    /// The content, in its language, scrubbed.
    pub(crate) body: Body,
    /// For a broadcast sent by link, the start of its text, scrubbed, shown above
    /// each reader's own link.
    pub(crate) teaser: Option<String>,
}

impl<'a> Common<'a> {
    pub(crate) fn new(
        submitter: &Submitter,
        org: &'a Org,
        broadcast: &'a Broadcast,
        category: Option<&'a Category>,
        spec: &BroadcastSpec,
    ) -> Self {
        let html = spec
            .html
            .as_deref()
            .map(|html| match spec.language.as_deref() {
                Some(language) => with_lang(html, language),
                None => html.to_owned(),
            });
        let mut body = Body::from_text(spec.subject.clone(), &spec.text, html.as_deref());
        body.language.clone_from(&spec.language);
        // Staff write to many: no member's address belongs in it, and with the
        // organisation's setting no address but the relay's at all.
        let scrubber = Scrubber::new(
            submitter.relay_domain(),
            org.settings.remove_foreign_addresses,
        );
        body.scrub(&scrubber);
        let teaser = spec
            .by_link
            .then(|| scrubber.text(&teaser(&spec.text)).into_owned());
        Self {
            org,
            broadcast,
            category,
            body,
            teaser,
        }
    }
}

/// The reader's copy: our `Message-ID` for it, and its bytes.
pub(crate) fn compose(
    submitter: &Submitter,
    common: &Common<'_>,
    reader: &Member,
) -> Result<(String, Vec<u8>), SubmitError> {
    let relay_domain = submitter.relay_domain();
    let noreply = format!("noreply@{relay_domain}");
    let from = reply_address(&common.broadcast.id, relay_domain);
    let unsubscribe = common.category.map(|category| {
        let action = LinkAction::Unsubscribe {
            org: common.org.id.clone(),
            reader: reader.id.clone(),
            category: category.id.clone(),
        };
        let token = action.token(submitter.store().crypto());
        (
            submitter.link(&action),
            format!(
                "mailto:{}@{relay_domain}?subject={token}",
                UNSUBSCRIBE_LOCAL
            ),
            format!("{}.{}.{relay_domain}", category.id, common.org.id),
        )
    });
    let list = match (common.category, &unsubscribe) {
        (Some(category), Some((url, mailto, id))) => Some(ListHeaders {
            name: &category.name,
            id,
            unsubscribe_url: url,
            unsubscribe_mailto: mailto,
        }),
        _ => None,
    };
    let by_link;
    let body = match &common.teaser {
        None => &common.body,
        Some(teaser) => {
            let url = submitter.link(&LinkAction::Read {
                org: common.org.id.clone(),
                reader: reader.id.clone(),
                broadcast: common.broadcast.id.clone(),
            });
            let text = format!("{teaser}\r\n\r\nRead the whole message: {url}\r\n");
            let mut short = Body::from_text(common.body.subject.clone(), &text, None);
            short.language.clone_from(&common.body.language);
            by_link = short;
            &by_link
        }
    };
    let message_id = format!("{}@{relay_domain}", random_token(24)?);
    let content = build(&Draft {
        from: Sender::Broadcast {
            address: &from,
            list,
        },
        org_name: &common.org.name,
        reader_name: reader.name.as_deref().unwrap_or(""),
        reader_relay_address: &noreply,
        message_id: &message_id,
        in_reply_to: None,
        references: &[],
        date: now_ms() / 1000,
        relay_domain,
        body,
    })?;
    tracing::trace!(broadcast_id = %common.broadcast.id, "copy composed");
    Ok((message_id, content))
}

/// The local part of the relay domain's address that unsubscribes whoever writes to
/// it from the category named by the signed token in the subject.
pub const UNSUBSCRIBE_LOCAL: &str = "unsubscribe";

/// How the local part of a broadcast's own address begins; the broadcast's id
/// follows. Answers to it are the broadcast's replies (see its reply policy).
pub const REPLY_LOCAL_PREFIX: &str = "bcast-";

/// The address a broadcast's copies come from.
pub fn reply_address(broadcast: &BroadcastId, relay_domain: &str) -> String {
    format!("{REPLY_LOCAL_PREFIX}{broadcast}@{relay_domain}")
}

/// How much of a broadcast sent by link its email shows.
const TEASER_CHARS: usize = 280;

/// The start of `text`: up to [`TEASER_CHARS`] characters, cut after a word, with
/// an ellipsis when something was left out.
fn teaser(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= TEASER_CHARS {
        return text.to_owned();
    }
    let cut: String = text.chars().take(TEASER_CHARS).collect();
    let at_word = cut.rfind(char::is_whitespace).unwrap_or(cut.len());
    format!("{}…", cut[..at_word].trim_end())
}

/// The HTML with `lang` on its root element, so that screen readers read it in
/// its language: added to an `<html>` tag that has none, or around the whole.
fn with_lang(html: &str, language: &str) -> String {
    // The API takes only language tags; anything else is left out, never written
    // into markup.
    if language.is_empty()
        || !language
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    {
        return html.to_owned();
    }
    let lower = html.to_ascii_lowercase();
    if let Some(at) = lower.find("<html") {
        let end = lower[at..].find('>').map_or(lower.len(), |e| at + e);
        if lower[at..end].contains("lang=") {
            return html.to_owned();
        }
        let mut out = html.to_owned();
        out.insert_str(at + "<html".len(), &format!(" lang=\"{language}\""));
        return out;
    }
    format!("<html lang=\"{language}\"><body>{html}</body></html>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_teaser_ends_after_a_word() {
        assert_eq!(teaser("  Short.  "), "Short.");
        let long = "word ".repeat(100);
        let t = teaser(&long);
        assert!(t.ends_with("word…"), "{t}");
        assert!(t.chars().count() <= TEASER_CHARS + 1);
    }

    #[test]
    fn the_root_element_carries_the_language() {
        assert_eq!(
            with_lang("<p>Hola</p>", "es"),
            "<html lang=\"es\"><body><p>Hola</p></body></html>"
        );
        assert_eq!(
            with_lang("<HTML><body>x</body></HTML>", "cy"),
            "<HTML lang=\"cy\"><body>x</body></HTML>"
        );
        assert_eq!(
            with_lang("<html lang=\"fr\"><body>x</body></html>", "de"),
            "<html lang=\"fr\"><body>x</body></html>"
        );
    }
}
