//! `list_folder` cursors.
//!
//! A cursor is opaque to clients: base64url (no padding) of a small JSON document with
//! the account, the listed folder (its id, `""` for the root — so a cursor follows the
//! folder across renames), the listing arguments, the change-log sequence it has
//! consumed, the position inside an unfinished initial listing, and the reset epoch.
//! `reset_cursors()` bumps the epoch; older cursors then get 409 `reset`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Cursor {
    /// Account id.
    #[serde(rename = "a")]
    pub(crate) account: String,
    /// Listed folder id, `""` for the root.
    #[serde(rename = "f")]
    pub(crate) folder: String,
    #[serde(rename = "r")]
    pub(crate) recursive: bool,
    #[serde(rename = "d")]
    pub(crate) include_deleted: bool,
    /// Page size requested by `list_folder` (also used by `continue`).
    #[serde(rename = "l")]
    pub(crate) limit: u32,
    /// Change-log sequence: for an unfinished listing, where the listing started;
    /// afterwards, how many records have been reported.
    #[serde(rename = "s")]
    pub(crate) seq: u64,
    /// Position inside an unfinished initial listing (relative path of the last entry
    /// returned; `""` = the folder's own entry). `None` once the listing is complete.
    #[serde(rename = "o", default, skip_serializing_if = "Option::is_none")]
    pub(crate) pos: Option<String>,
    /// Reset epoch the cursor was issued in.
    #[serde(rename = "e")]
    pub(crate) epoch: u64,
}

impl Cursor {
    pub(crate) fn encode(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(json)
    }

    /// `None` for anything that is not a cursor this sandbox issued.
    pub(crate) fn decode(s: &str) -> Option<Cursor> {
        let bytes = URL_SAFE_NO_PAD.decode(s.trim()).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let c = Cursor {
            account: "dbid:AAx".into(),
            folder: "id:abc".into(),
            recursive: true,
            include_deleted: false,
            limit: 2000,
            seq: 42,
            pos: Some("/a/b".into()),
            epoch: 1,
        };
        let s = c.encode();
        assert!(s.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_'));
        assert_eq!(Cursor::decode(&s), Some(c));
        assert_eq!(Cursor::decode("not a cursor"), None);
        assert_eq!(Cursor::decode("eyJ4IjoxfQ"), None); // {"x":1}
    }
}
