//! The literal Dropbox API v2 JSON shapes (provider-apis.md §3), and their mapping to the port's
//! types. Only the fields the connector uses are declared; unknown fields are ignored.

use chrono::{DateTime, Utc};
use extconn_core::ports::{Change, EntryKind, FolderEntry, RemoteItem};
use extconn_core::{FolderLocator, ItemKind};
use serde::{Deserialize, Serialize};

/// `Metadata`, a union on `.tag`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = ".tag", rename_all = "snake_case")]
pub enum Metadata {
    File(FileMetadata),
    Folder(FolderMetadata),
    /// No `id`: a deletion names a path only.
    Deleted(DeletedMetadata),
    /// A tag this connector does not know (the union is open); skipped with a warning.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FileMetadata {
    pub name: String,
    pub id: String,
    /// `null` when the file is in a folder that is not mounted.
    #[serde(default)]
    pub path_lower: Option<String>,
    #[serde(default)]
    pub path_display: Option<String>,
    /// `%Y-%m-%dT%H:%M:%SZ`. Kept as text: a malformed value must not fail the whole page.
    #[serde(default)]
    pub server_modified: Option<String>,
    /// Client-controlled, display only; never used for change detection.
    #[serde(default)]
    pub client_modified: Option<String>,
    pub rev: String,
    pub size: u64,
    #[serde(default)]
    pub content_hash: Option<String>,
    /// Absent means downloadable (the field is newer than most files' metadata).
    #[serde(default = "yes")]
    pub is_downloadable: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FolderMetadata {
    pub name: String,
    pub id: String,
    #[serde(default)]
    pub path_lower: Option<String>,
    #[serde(default)]
    pub path_display: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeletedMetadata {
    pub name: String,
    #[serde(default)]
    pub path_lower: Option<String>,
    #[serde(default)]
    pub path_display: Option<String>,
}

/// `list_folder` and `list_folder/continue` result.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ListFolderResult {
    pub entries: Vec<Metadata>,
    pub cursor: String,
    pub has_more: bool,
}

/// `list_folder` argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListFolderArg<'a> {
    pub path: &'a str,
    pub recursive: bool,
    pub include_deleted: bool,
    pub include_mounted_folders: bool,
    pub include_non_downloadable_files: bool,
    pub limit: u32,
}

/// `list_folder/continue` argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CursorArg<'a> {
    pub cursor: &'a str,
}

/// `get_metadata` and `download` argument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathArg<'a> {
    pub path: &'a str,
}

/// `users/get_current_account` result (the fields used).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FullAccount {
    pub account_id: String,
    pub name: Name,
    #[serde(default)]
    pub email: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Name {
    pub display_name: String,
}

/// The error envelope of every non-2xx JSON answer:
/// `{"error_summary": "path/not_found/..", "error": {".tag": "path", "path": {".tag": "not_found"}}}`.
/// `error` is kept as a value: each route has its own union, and 429 has no `.tag` at the top.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ErrorEnvelope {
    #[serde(default)]
    pub error_summary: Option<String>,
    #[serde(default)]
    pub error: serde_json::Value,
}

impl ErrorEnvelope {
    /// Parses a body; `None` for plain text (Dropbox's 400s) or other non-envelope bodies.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let env: Self = serde_json::from_slice(body).ok()?;
        (env.error_summary.is_some() || env.error.is_object()).then_some(env)
    }

    /// The chain of nested union tags: `{".tag":"path","path":{".tag":"not_found"}}` →
    /// `["path", "not_found"]`; `{".tag":"reset"}` → `["reset"]`.
    pub fn tags(&self) -> Vec<&str> {
        let mut out = Vec::new();
        let mut v = &self.error;
        while let Some(tag) = v.get(".tag").and_then(|t| t.as_str()) {
            out.push(tag);
            match v.get(tag) {
                Some(inner) if inner.is_object() => v = inner,
                _ => break,
            }
        }
        out
    }

    /// 429's `error.retry_after` (seconds).
    pub fn retry_after(&self) -> Option<u64> {
        self.error.get("retry_after").and_then(|v| v.as_u64())
    }

    /// 429's `error.reason[.tag]` (`too_many_requests`, `too_many_write_operations`).
    pub fn reason(&self) -> Option<&str> {
        self.error.get("reason").and_then(|r| r.get(".tag")).and_then(|t| t.as_str())
    }

    /// What to put in a message: the summary, else the tags.
    pub fn describe(&self) -> String {
        match &self.error_summary {
            Some(s) => s.clone(),
            None => self.tags().join("/"),
        }
    }
}

/// `2015-05-12T15:50:38Z` → a timestamp; `None` if malformed.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

impl FileMetadata {
    /// Dropbox gives no parent ids: the core resolves parents by path (`path_lower`).
    pub fn into_item(self) -> RemoteItem {
        RemoteItem {
            modified_at: self.server_modified.as_deref().and_then(parse_time),
            path: self.path_display,
            path_lower: self.path_lower,
            id: self.id,
            drive_id: None,
            parent_ids: Vec::new(),
            name: self.name,
            kind: if self.is_downloadable {
                ItemKind::File
            } else {
                // Dropbox Paper docs and the like: `is_downloadable: false`.
                ItemKind::Other { reason: "not_downloadable".into() }
            },
            mime_type: None,
            revision: Some(self.rev),
            content_hash: self.content_hash,
            size: Some(self.size),
        }
    }
}

impl FolderMetadata {
    pub fn into_item(self) -> RemoteItem {
        RemoteItem {
            path: self.path_display,
            path_lower: self.path_lower,
            id: self.id,
            drive_id: None,
            parent_ids: Vec::new(),
            name: self.name,
            kind: ItemKind::Folder,
            mime_type: None,
            revision: None,
            content_hash: None,
            size: None,
            modified_at: None,
        }
    }

    pub fn into_entry(self) -> FolderEntry {
        FolderEntry {
            locator: FolderLocator { folder_id: self.id, drive_id: None },
            name: self.name,
            path: self.path_display,
            kind: EntryKind::Folder,
            selectable: true,
        }
    }
}

impl Metadata {
    /// The port's change for a listing entry; `None` for an unknown tag.
    pub fn into_change(self) -> Option<Change> {
        match self {
            Metadata::File(f) => Some(Change::Upsert(f.into_item())),
            Metadata::Folder(f) => Some(Change::Upsert(f.into_item())),
            Metadata::Deleted(d) => Some(Change::Deleted { id: None, path_lower: d.path_lower }),
            Metadata::Unknown => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// provider-apis.md §3.2, verbatim.
    const LIST_FOLDER: &str = r#"{"entries":[
  {".tag":"folder","name":"math","id":"id:a4ayc_80_OEAAAAAAAAAXz",
   "path_lower":"/homework/math","path_display":"/Homework/math"},
  {".tag":"file","name":"Prime_Numbers.txt","id":"id:a4ayc_80_OEAAAAAAAAAXw",
   "path_lower":"/homework/math/prime_numbers.txt","path_display":"/Homework/math/Prime_Numbers.txt",
   "client_modified":"2015-05-12T15:50:38Z","server_modified":"2015-05-12T15:50:38Z",
   "rev":"a1c10ce0dd78","size":7212,"is_downloadable":true,
   "content_hash":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}],
 "cursor":"ZtkX9_EHj3x7PMkVuFIhwKYXEpwpLwyxp9vMKomUhllil9q7eWiAu","has_more":false}"#;

    #[test]
    fn list_folder_result_from_the_reference() {
        let r: ListFolderResult = serde_json::from_str(LIST_FOLDER).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(r.cursor, "ZtkX9_EHj3x7PMkVuFIhwKYXEpwpLwyxp9vMKomUhllil9q7eWiAu");
        assert!(!r.has_more);
        let changes: Vec<Change> = r.entries.into_iter().filter_map(Metadata::into_change).collect();
        assert_eq!(
            changes,
            vec![
                Change::Upsert(RemoteItem {
                    id: "id:a4ayc_80_OEAAAAAAAAAXz".into(),
                    drive_id: None,
                    parent_ids: vec![],
                    name: "math".into(),
                    path: Some("/Homework/math".into()),
                    path_lower: Some("/homework/math".into()),
                    kind: ItemKind::Folder,
                    mime_type: None,
                    revision: None,
                    content_hash: None,
                    size: None,
                    modified_at: None,
                }),
                Change::Upsert(RemoteItem {
                    id: "id:a4ayc_80_OEAAAAAAAAAXw".into(),
                    drive_id: None,
                    parent_ids: vec![],
                    name: "Prime_Numbers.txt".into(),
                    path: Some("/Homework/math/Prime_Numbers.txt".into()),
                    path_lower: Some("/homework/math/prime_numbers.txt".into()),
                    kind: ItemKind::File,
                    mime_type: None,
                    revision: Some("a1c10ce0dd78".into()),
                    content_hash: Some(
                        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into()
                    ),
                    size: Some(7212),
                    modified_at: parse_time("2015-05-12T15:50:38Z"),
                }),
            ]
        );
        assert_eq!(parse_time("2015-05-12T15:50:38Z").map(|t| t.timestamp()), Some(1_431_445_838));
    }

    #[test]
    fn deleted_entries_have_no_id_and_order_is_kept() {
        let body = r#"{"entries":[
            {".tag":"deleted","name":"old.txt","path_lower":"/homework/old.txt","path_display":"/Homework/old.txt"},
            {".tag":"file","name":"new.txt","id":"id:N","path_lower":"/homework/new.txt",
             "path_display":"/Homework/new.txt","server_modified":"2020-01-01T00:00:00Z","rev":"0123456789a","size":0},
            {".tag":"deleted","name":"sub","path_lower":"/homework/sub","path_display":"/Homework/sub","is_restorable":true}
        ],"cursor":"c2","has_more":true}"#;
        let r: ListFolderResult = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}"));
        assert!(r.has_more);
        let changes: Vec<Change> = r.entries.into_iter().filter_map(Metadata::into_change).collect();
        assert_eq!(changes.len(), 3);
        assert_eq!(changes[0], Change::Deleted { id: None, path_lower: Some("/homework/old.txt".into()) });
        let Change::Upsert(item) = &changes[1] else { panic!("{:?}", changes[1]) };
        // No is_downloadable and no content_hash: downloadable, hash unknown.
        assert!(item.kind == ItemKind::File && item.content_hash.is_none() && item.size == Some(0));
        assert_eq!(changes[2], Change::Deleted { id: None, path_lower: Some("/homework/sub".into()) });
    }

    #[test]
    fn unknown_tags_and_bad_times_do_not_fail_the_page() {
        let body = r#"{"entries":[
            {".tag":"symlink_of_the_future","name":"x"},
            {".tag":"file","name":"a","id":"id:A","path_lower":"/a","path_display":"/a",
             "server_modified":"not a time","rev":"0123456789a","size":5,"is_downloadable":false}
        ],"cursor":"c","has_more":false}"#;
        let r: ListFolderResult = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}"));
        let changes: Vec<Change> = r.entries.into_iter().filter_map(Metadata::into_change).collect();
        assert_eq!(changes.len(), 1);
        let Change::Upsert(item) = &changes[0] else { panic!() };
        assert_eq!(item.modified_at, None);
        assert_eq!(item.kind, ItemKind::Other { reason: "not_downloadable".into() });
    }

    #[test]
    fn a_file_without_id_is_rejected() {
        let body = r#"{".tag":"file","name":"a","path_lower":"/a","rev":"0123456789a","size":5}"#;
        assert!(serde_json::from_str::<Metadata>(body).is_err());
    }

    #[test]
    fn arguments_serialise_as_documented() {
        let arg = ListFolderArg {
            path: "id:a4ayc_80_OEAAAAAAAAAXw",
            recursive: true,
            include_deleted: false,
            include_mounted_folders: true,
            include_non_downloadable_files: true,
            limit: 2000,
        };
        assert_eq!(
            serde_json::to_string(&arg).unwrap_or_default(),
            r#"{"path":"id:a4ayc_80_OEAAAAAAAAAXw","recursive":true,"include_deleted":false,"include_mounted_folders":true,"include_non_downloadable_files":true,"limit":2000}"#
        );
        assert_eq!(
            serde_json::to_string(&CursorArg { cursor: "c" }).unwrap_or_default(),
            r#"{"cursor":"c"}"#
        );
    }

    #[test]
    fn error_envelopes_from_the_reference() {
        let e = ErrorEnvelope::parse(
            br#"{"error_summary":"path/not_found/..","error":{".tag":"path","path":{".tag":"not_found"}}}"#,
        )
        .unwrap_or_else(|| panic!("envelope"));
        assert_eq!(e.tags(), ["path", "not_found"]);
        assert_eq!(e.describe(), "path/not_found/..");

        let e = ErrorEnvelope::parse(br#"{"error_summary":"reset/..","error":{".tag":"reset"}}"#)
            .unwrap_or_else(|| panic!("envelope"));
        assert_eq!(e.tags(), ["reset"]);

        let e = ErrorEnvelope::parse(
            br#"{"error_summary":"expired_access_token/..","error":{".tag":"expired_access_token"}}"#,
        )
        .unwrap_or_else(|| panic!("envelope"));
        assert_eq!(e.tags(), ["expired_access_token"]);

        let e = ErrorEnvelope::parse(
            br#"{"error_summary":"too_many_requests/..","error":{"reason":{".tag":"too_many_requests"},"retry_after":300}}"#,
        )
        .unwrap_or_else(|| panic!("envelope"));
        assert_eq!(e.retry_after(), Some(300));
        assert_eq!(e.reason(), Some("too_many_requests"));
        assert!(e.tags().is_empty());

        // missing_scope carries a sibling field, not a nested union.
        let e = ErrorEnvelope::parse(
            br#"{"error_summary":"missing_scope/..","error":{".tag":"missing_scope","required_scope":"files.content.read"}}"#,
        )
        .unwrap_or_else(|| panic!("envelope"));
        assert_eq!(e.tags(), ["missing_scope"]);
    }

    #[test]
    fn plain_text_bodies_are_not_envelopes() {
        assert!(ErrorEnvelope::parse(
            b"Error in call to API function \"files/list_folder\": Specify the root folder as an empty string rather than as \"/\"."
        )
        .is_none());
        assert!(ErrorEnvelope::parse(b"").is_none());
        assert!(ErrorEnvelope::parse(b"<html>503</html>").is_none());
        assert!(ErrorEnvelope::parse(br#"{"unrelated":true}"#).is_none());
        assert!(ErrorEnvelope::parse(b"null").is_none());
    }

    #[test]
    fn current_account() {
        let body = r#"{"account_id":"dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc",
            "name":{"given_name":"Franz","surname":"Ferdinand","familiar_name":"Franz",
                    "display_name":"Franz Ferdinand (Personal)","abbreviated_name":"FF"},
            "email":"franz@example.com","email_verified":true,"disabled":false,"country":"US",
            "locale":"en","referral_link":"https://db.tt/ZITNuhtI","is_paired":false,
            "account_type":{".tag":"basic"},
            "root_info":{".tag":"user","root_namespace_id":"3235641","home_namespace_id":"3235641"}}"#;
        let a: FullAccount = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.account_id, "dbid:AAH4f99T0taONIb-OurWxbNQ6ywGRopQngc");
        assert_eq!(a.name.display_name, "Franz Ferdinand (Personal)");
        assert_eq!(a.email.as_deref(), Some("franz@example.com"));
    }
}
