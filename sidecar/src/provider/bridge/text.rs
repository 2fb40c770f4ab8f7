//! Strings read from the chat answers and chunks the bridges restate, borrowed from the
//! event where the text needs no unescaping: a bridged stream reads every event it
//! restates, so a copy per delta would be a copy per token.

use std::borrow::Cow;

use serde::Deserialize;

/// A string of a chat answer or chunk, borrowed when it has no escapes. (`Cow` borrows
/// only as a direct field marked `borrow`, never inside an `Option`, hence the newtype.)
#[derive(Debug, Default, Deserialize)]
pub struct Str<'a>(#[serde(borrow)] pub Cow<'a, str>);

impl Str<'_> {
    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The text of an optional string, empty when absent.
pub fn text<'s>(value: &'s Option<Str<'_>>) -> &'s str {
    value.as_ref().map_or("", Str::as_str)
}
