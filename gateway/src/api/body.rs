//! Reading JSON bodies and their fields, with errors that name the field.
//!
//! Bodies are read as JSON values and fields checked one by one, rather than
//! deserialised into structs, so that every problem is reported with the name of the
//! field and a sentence, not a serde message.

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::error::ApiError;

/// A JSON object from a request body.
pub struct JsonObject(pub Map<String, Value>);

/// Parses a body as a JSON object.
///
/// # Errors
/// 413 if the body was over the limit, 400 if it is not JSON, 422 if not an object.
pub fn parse(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<JsonObject, ApiError> {
    let bytes = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit)
        } else {
            ApiError::bad_json(rejection.body_text())
        }
    })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(JsonObject(map)),
        Ok(_) => Err(ApiError::invalid(
            "body",
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::bad_json(e)),
    }
}

impl JsonObject {
    /// A required string field.
    ///
    /// # Errors
    /// 422 naming the field if it is missing or not a string.
    pub fn required_str(&self, field: &str) -> Result<&str, ApiError> {
        match self.0.get(field) {
            Some(Value::String(s)) => Ok(s),
            None | Some(Value::Null) => {
                Err(ApiError::invalid(field, format!("{field} is required")))
            }
            Some(_) => Err(ApiError::invalid(
                field,
                format!("{field} must be a string"),
            )),
        }
    }

    /// An optional string field.
    ///
    /// # Errors
    /// 422 naming the field if it is present but not a string.
    pub fn optional_str(&self, field: &str) -> Result<Option<&str>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(ApiError::invalid(
                field,
                format!("{field} must be a string"),
            )),
        }
    }

    /// An optional boolean field.
    ///
    /// # Errors
    /// 422 naming the field if it is present but not `true` or `false`.
    pub fn optional_bool(&self, field: &str) -> Result<Option<bool>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(ApiError::invalid(
                field,
                format!("{field} must be true or false"),
            )),
        }
    }

    /// An optional whole number within `range`.
    ///
    /// # Errors
    /// 422 naming the field if it is present but not such a number.
    pub fn optional_int(
        &self,
        field: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.as_i64().is_some_and(|n| range.contains(&n)) => {
                Ok(n.as_i64())
            }
            Some(_) => Err(ApiError::invalid(
                field,
                format!(
                    "{field} must be a whole number from {} to {}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    /// An optional array of at most `max` strings.
    ///
    /// # Errors
    /// 422 naming the field if it is present but not such an array.
    pub fn optional_str_list(&self, field: &str, max: usize) -> Result<Vec<&str>, ApiError> {
        let invalid = || {
            ApiError::invalid(
                field,
                format!("{field} must be an array of at most {max} strings"),
            )
        };
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) if items.len() <= max => items
                .iter()
                .map(|v| v.as_str().ok_or_else(invalid))
                .collect(),
            Some(_) => Err(invalid()),
        }
    }

    /// Whether the field is present as `null` (asked to be cleared).
    pub fn has_null(&self, field: &str) -> bool {
        matches!(self.0.get(field), Some(Value::Null))
    }

    /// The names of fields present that are not in `known`.
    pub fn unknown_fields(&self, known: &[&str]) -> Option<String> {
        self.0
            .keys()
            .find(|k| !known.contains(&k.as_str()))
            .cloned()
    }

    /// An optional object field.
    ///
    /// # Errors
    /// 422 naming the field if it is present but not an object.
    pub fn optional_object(&self, field: &str) -> Result<Option<&Map<String, Value>>, ApiError> {
        match self.0.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(o)) => Ok(Some(o)),
            Some(_) => Err(ApiError::invalid(
                field,
                format!("{field} must be a JSON object"),
            )),
        }
    }
}

/// Checks that an address has the shape `local@domain`, within RFC 5321's lengths
/// and without characters that could break a header.
///
/// # Errors
/// 422 naming `field`.
pub fn check_email<'a>(field: &str, address: &'a str) -> Result<&'a str, ApiError> {
    let invalid = |why: &str| {
        ApiError::invalid(
            field,
            format!("{field} is not a valid email address: {why}"),
        )
    };
    let address = address.trim();
    if address.len() > 254 {
        return Err(invalid("longer than 254 characters"));
    }
    if address
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "<>,;\"()[]\\".contains(c))
    {
        return Err(invalid(
            "contains a space or a character not allowed in an address",
        ));
    }
    let (local, domain) = address
        .rsplit_once('@')
        .ok_or_else(|| invalid("missing @"))?;
    if local.is_empty() || local.len() > 64 || local.contains('@') {
        return Err(invalid("the part before @ must be 1 to 64 characters"));
    }
    if domain.is_empty()
        || domain.starts_with('.')
        || domain.ends_with('.')
        || domain.contains("..")
    {
        return Err(invalid("the domain is malformed"));
    }
    Ok(address)
}

/// Checks a single-line text that will become a header (a name or a subject).
///
/// # Errors
/// 422 naming `field` if it has line breaks or is longer than `max` characters.
pub fn check_line(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    if value.contains(['\r', '\n']) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be a single line"),
        ));
    }
    if value.chars().count() > max {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be at most {max} characters"),
        ));
    }
    Ok(())
}

/// Checks a directory id from the URL.
///
/// # Errors
/// 422 naming `field` if empty, too long or containing control characters.
pub fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    if id.is_empty() || id.len() > 128 || id.chars().any(char::is_control) {
        return Err(ApiError::invalid(
            field,
            format!("{field} must be 1 to 128 printable characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_addresses() {
        for ok in [
            "bob@example.com",
            "a.b+tag@sub.example.co.uk",
            "x@localhost",
        ] {
            assert!(check_email("email", ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed_addresses() {
        for bad in [
            "",
            "bob",
            "@example.com",
            "bob@",
            "bob@@x",
            "b ob@x.com",
            "bob@x..com",
            "<bob@x.com>",
            "bob@x.com\r\nBcc: e@x",
        ] {
            assert!(check_email("email", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn header_text_must_be_one_line() {
        assert!(check_line("subject", "Hello", 998).is_ok());
        assert!(check_line("subject", "Hello\r\nBcc: x@y", 998).is_err());
        assert!(check_line("subject", &"x".repeat(999), 998).is_err());
    }
}
