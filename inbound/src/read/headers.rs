//! Reading the few headers the listener looks at: the first address in `From:`, a
//! header's text by name, and the message ids of `In-Reply-To` and `References`.

use mail_parser::{HeaderValue, Message};

/// The first address in `From:`, skipping mailboxes that have only a name.
pub(crate) fn first_address<'a>(message: &'a Message<'_>) -> Option<&'a str> {
    message
        .from()?
        .iter()
        .find_map(|a| a.address().filter(|a| a.contains('@')))
}

/// The message ids in an `In-Reply-To` or `References` header, in order.
pub(crate) fn header_ids(value: &HeaderValue<'_>) -> Vec<String> {
    match value {
        HeaderValue::Text(t) => vec![t.to_string()],
        HeaderValue::TextList(list) => list.iter().map(|t| t.to_string()).collect(),
        _ => Vec::new(),
    }
}

/// The text of the first header called `name` (any case), if present.
pub(crate) fn header_text(message: &Message<'_>, name: &str) -> Option<String> {
    message
        .headers()
        .iter()
        .find(|h| h.name.as_str().eq_ignore_ascii_case(name))
        .map(|h| match &h.value {
            HeaderValue::Text(t) => t.to_string(),
            HeaderValue::TextList(list) => list.join(", "),
            _ => String::new(),
        })
}
