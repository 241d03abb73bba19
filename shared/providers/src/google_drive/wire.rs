//! The literal Drive API v3 JSON shapes (provider-apis.md §1), and their mapping to the port's
//! types. Only the fields the connector uses are declared; unknown fields are ignored.
//!
//! `size` and `version` are int64 values **encoded as JSON strings** (§1.2, §7 item 5): they are
//! read as text and parsed here; a malformed number is treated as absent, never a failed page.

use chrono::{DateTime, Utc};
use extconn_core::ports::{Change, EntryKind, FolderEntry, RemoteItem};
use extconn_core::{FolderLocator, ItemKind};
use serde::Deserialize;

/// The folder MIME type.
pub const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
/// The shortcut MIME type.
pub const SHORTCUT_MIME: &str = "application/vnd.google-apps.shortcut";
/// Every Google-native (Docs Editors and other Workspace) type starts with this.
pub const GOOGLE_APPS_PREFIX: &str = "application/vnd.google-apps.";

/// The fields of a `File` the connector reads, as §1.2 gives them. Used by `files.list`,
/// `files.get` and inside `changes.list` (a superset of §1.3's selector, so a change carries
/// what a listing does: the shortcut target, `canDownload`, `headRevisionId`).
pub const FILE_FIELDS: &str = "id,name,mimeType,size,md5Checksum,sha256Checksum,modifiedTime,parents,trashed,\
driveId,version,headRevisionId,shortcutDetails,capabilities/canDownload,exportLinks,resourceKey";

/// The v1 export formats (ARCHITECTURE §4: Office formats; Drawings as PDF), one per native
/// type; `None` for a native type that has no export in v1 (forms, sites, maps, scripts, …).
pub fn export_formats(mime: &str) -> Option<&'static str> {
    Some(match mime {
        "application/vnd.google-apps.document" => {
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        }
        "application/vnd.google-apps.spreadsheet" => {
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
        }
        "application/vnd.google-apps.presentation" => {
            "application/vnd.openxmlformats-officedocument.presentationml.presentation"
        }
        "application/vnd.google-apps.drawing" => "application/pdf",
        _ => return None,
    })
}

/// The file extension of a v1 export format.
pub fn export_extension(format: &str) -> Option<&'static str> {
    Some(match format {
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document" => "docx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet" => "xlsx",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation" => "pptx",
        "application/pdf" => "pdf",
        _ => return None,
    })
}

/// The name an export is served under: the document's name with the format's extension
/// (`Q3 plan` → `Q3 plan.xlsx`), unless the name already ends with it (case-insensitively).
pub fn export_name(name: &str, format: &str) -> String {
    match export_extension(format) {
        Some(ext) if !name.to_lowercase().ends_with(&format!(".{ext}")) => format!("{name}.{ext}"),
        _ => name.to_owned(),
    }
}

/// `File` (the fields of [`FILE_FIELDS`]).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct File {
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub mime_type: String,
    /// int64 as a string; absent for folders and shortcuts.
    #[serde(default)]
    pub size: Option<String>,
    #[serde(default)]
    pub md5_checksum: Option<String>,
    #[serde(default)]
    pub sha256_checksum: Option<String>,
    /// RFC 3339; kept as text so a malformed value does not fail the page.
    #[serde(default)]
    pub modified_time: Option<String>,
    #[serde(default)]
    pub parents: Vec<String>,
    #[serde(default)]
    pub trashed: bool,
    #[serde(default)]
    pub drive_id: Option<String>,
    /// int64 as a string; moves on **every** server-side change, renames included.
    #[serde(default)]
    pub version: Option<String>,
    /// Blob files only; changes when a new content revision is uploaded.
    #[serde(default)]
    pub head_revision_id: Option<String>,
    #[serde(default)]
    pub shortcut_details: Option<ShortcutDetails>,
    #[serde(default)]
    pub capabilities: Option<FileCapabilities>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShortcutDetails {
    #[serde(default)]
    pub target_id: Option<String>,
    #[serde(default)]
    pub target_mime_type: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileCapabilities {
    /// Absent means unknown: treated as downloadable (the download then answers for itself).
    #[serde(default)]
    pub can_download: Option<bool>,
}

/// `FileList`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileList {
    #[serde(default)]
    pub files: Vec<File>,
    #[serde(default)]
    pub next_page_token: Option<String>,
    #[serde(default)]
    pub incomplete_search: bool,
}

/// `Change`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeEntry {
    /// `file` or `drive` (a shared drive's own metadata: ignored for file sync).
    #[serde(default)]
    pub change_type: Option<String>,
    /// Deleted for good **or access lost**; no `file` then.
    #[serde(default)]
    pub removed: bool,
    #[serde(default)]
    pub file_id: Option<String>,
    #[serde(default)]
    pub file: Option<File>,
}

/// `ChangeList`: `nextPageToken` on every page but the last, which has `newStartPageToken`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeList {
    #[serde(default)]
    pub changes: Vec<ChangeEntry>,
    #[serde(default)]
    pub next_page_token: Option<String>,
    #[serde(default)]
    pub new_start_page_token: Option<String>,
}

/// `StartPageToken`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartPageToken {
    pub start_page_token: String,
}

/// `About` with `fields=user`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct About {
    pub user: User,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(default)]
    pub display_name: String,
    #[serde(default)]
    pub email_address: Option<String>,
    /// The user's stable id within Drive (the account id).
    #[serde(default)]
    pub permission_id: Option<String>,
}

/// `DriveList` (shared drives).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveList {
    #[serde(default)]
    pub drives: Vec<SharedDrive>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SharedDrive {
    pub id: String,
    #[serde(default)]
    pub name: String,
}

impl SharedDrive {
    /// A shared drive's root folder id is the drive id (§1.2, [unverified] there): the locator
    /// carries it twice so that listings use `corpora=drive&driveId=`.
    pub fn into_entry(self) -> FolderEntry {
        FolderEntry {
            locator: FolderLocator { folder_id: self.id.clone(), drive_id: Some(self.id) },
            name: self.name,
            path: None,
            kind: EntryKind::Drive,
            selectable: true,
        }
    }
}

/// The two-level error body: `{"error":{"code":403,"message":"…","errors":[{"domain":"…",
/// "reason":"…","message":"…","locationType":"…","location":"…"}]}}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ErrorDetail {
    #[serde(default)]
    pub code: Option<u16>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub errors: Vec<ErrorItem>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorItem {
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub location: Option<String>,
}

impl ErrorBody {
    /// `None` for bodies that are not the API's error shape (HTML, plain text, OAuth errors).
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice(body).ok()
    }

    /// The first `errors[].reason` (`userRateLimitExceeded`, `notFound`, …).
    pub fn reason(&self) -> Option<&str> {
        self.error.errors.iter().find_map(|e| e.reason.as_deref())
    }

    /// The first `errors[].location` (`pageToken` on an invalid page token).
    pub fn location(&self) -> Option<&str> {
        self.error.errors.iter().find_map(|e| e.location.as_deref())
    }

    pub fn describe(&self) -> String {
        match (self.reason(), &self.error.message) {
            (Some(r), Some(m)) => format!("{r}: {m}"),
            (Some(r), None) => r.to_owned(),
            (None, Some(m)) => m.clone(),
            (None, None) => "no reason given".to_owned(),
        }
    }
}

/// RFC 3339 (`2026-05-01T10:00:00.000Z`) → a timestamp; `None` if malformed.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// `revisions.list` (`fields=nextPageToken,revisions(id,modifiedTime)`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RevisionList {
    #[serde(default)]
    pub revisions: Vec<Revision>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Revision {
    pub id: String,
    pub modified_time: Option<String>,
}

/// An int64-as-string (`"48213"`); `None` if absent or malformed.
pub fn parse_int(s: Option<&str>) -> Option<u64> {
    s.and_then(|v| v.trim().parse().ok())
}

impl File {
    /// What the port calls this file.
    ///
    /// - folder → `Folder`; shortcut → `Shortcut{target_id}`;
    /// - Docs / Sheets / Slides / Drawings → `Native{exports}` (one v1 format, see
    ///   [`export_formats`]); any other `application/vnd.google-apps.*` (forms, sites, maps,
    ///   scripts, …) → `Other{not_exportable}`;
    /// - `capabilities.canDownload == false` (download or export disabled by the owner) →
    ///   `Other{not_downloadable}`, for binary and native files alike;
    /// - anything else → `File`.
    pub fn kind(&self) -> ItemKind {
        if self.mime_type == FOLDER_MIME {
            return ItemKind::Folder;
        }
        if self.mime_type == SHORTCUT_MIME {
            let target_id = self.shortcut_details.as_ref().and_then(|d| d.target_id.clone());
            return ItemKind::Shortcut { target_id };
        }
        if self.capabilities.as_ref().and_then(|c| c.can_download) == Some(false) {
            return ItemKind::Other { reason: "not_downloadable".into() };
        }
        if self.mime_type.starts_with(GOOGLE_APPS_PREFIX) {
            return match export_formats(&self.mime_type) {
                Some(format) => ItemKind::Native { exports: vec![format.to_owned()] },
                None => ItemKind::Other { reason: "not_exportable".into() },
            };
        }
        ItemKind::File
    }

    /// The port's item. The content version the engine uses
    /// ([`RemoteItem::content_version`]: the hash, else the revision) is:
    ///
    /// - a binary file: `md5Checksum` (hash), `sha256Checksum` when Drive gives no md5; the
    ///   revision is `headRevisionId`, else `version`;
    /// - a native doc: no hash, no size (its export has neither until exported), and the
    ///   revision is **`modifiedTime`**, never `version`: `version` moves on a rename, a move or
    ///   a sharing change too, and would re-export the doc each time. provider-apis.md §1.5
    ///   names `version` "or `modifiedTime`" as the change key of native files; `modifiedTime`
    ///   is the one a move (a `parents` change) leaves alone. Whether Drive also bumps it on a
    ///   rename is not stated by the reference ([unverified]): when a doc's `modifiedTime`
    ///   moved together with its name or parent, the engine asks
    ///   `content_changed_since` (the doc's revisions, which only edits make) before
    ///   exporting it again. A native doc listed without `modifiedTime` falls back to
    ///   `version`.
    pub fn into_item(self) -> RemoteItem {
        let kind = self.kind();
        let native = matches!(kind, ItemKind::Native { .. });
        let (revision, content_hash, size) = if native {
            (self.modified_time.clone().or(self.version.clone()), None, None)
        } else if kind == ItemKind::Folder {
            (None, None, None)
        } else {
            let hash = self.md5_checksum.clone().or(self.sha256_checksum.clone());
            (self.head_revision_id.clone().or(self.version.clone()), hash, parse_int(self.size.as_deref()))
        };
        RemoteItem {
            modified_at: self.modified_time.as_deref().and_then(parse_time),
            id: self.id,
            drive_id: self.drive_id,
            parent_ids: self.parents,
            name: self.name,
            path: None,
            path_lower: None,
            kind,
            mime_type: Some(self.mime_type).filter(|m| !m.is_empty()),
            revision,
            content_hash,
            size,
        }
    }

    pub fn into_entry(self) -> FolderEntry {
        FolderEntry {
            locator: FolderLocator { folder_id: self.id, drive_id: self.drive_id },
            name: self.name,
            path: None,
            kind: EntryKind::Folder,
            selectable: true,
        }
    }
}

impl ChangeEntry {
    /// The port's change: `removed` → deleted by id; a trashed file → deleted by id (trash is
    /// gone for an import); a `drive` change (shared-drive metadata) → `None`.
    pub fn into_change(self) -> Option<Change> {
        if self.change_type.as_deref() == Some("drive") {
            return None;
        }
        let id = self.file_id.or_else(|| self.file.as_ref().map(|f| f.id.clone()));
        match self.file {
            Some(file) if !self.removed && !file.trashed => Some(Change::Upsert(file.into_item())),
            _ => id.map(|id| Change::Deleted { id: Some(id), path_lower: None }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// provider-apis.md §1.2, verbatim.
    const FILE_LIST: &str = r#"{"kind":"drive#fileList","incompleteSearch":false,"nextPageToken":"~!!~AI9...",
 "files":[
  {"id":"1AbC","name":"report.pdf","mimeType":"application/pdf","size":"48213",
   "md5Checksum":"5eb63bbbe01eeed093cb22bb8f5acdc3","sha256Checksum":"b94d27b9...",
   "modifiedTime":"2026-05-01T10:00:00.000Z","parents":["0BFolder"],"trashed":false,
   "version":"12"},
  {"id":"1Doc","name":"Plan","mimeType":"application/vnd.google-apps.document",
   "size":"1024","modifiedTime":"2026-05-02T09:00:00.000Z","parents":["0BFolder"],"trashed":false}
 ]}"#;

    /// provider-apis.md §1.3, verbatim except the elided md5.
    const CHANGE_LIST: &str = r#"{"kind":"drive#changeList","newStartPageToken":"12399",
 "changes":[
  {"kind":"drive#change","changeType":"file","fileId":"1AbC","removed":false,
   "time":"2026-05-03T08:00:00.000Z",
   "file":{"id":"1AbC","name":"report.pdf","mimeType":"application/pdf","size":"50000",
           "md5Checksum":"0123456789abcdef0123456789abcdef","parents":["0BFolder"],"trashed":false,"version":"13"}},
  {"kind":"drive#change","changeType":"file","fileId":"1Gone","removed":true,
   "time":"2026-05-03T08:01:00.000Z"}
 ]}"#;

    #[test]
    fn file_list_from_the_reference() {
        let list: FileList = serde_json::from_str(FILE_LIST).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list.next_page_token.as_deref(), Some("~!!~AI9..."));
        assert!(!list.incomplete_search);
        let items: Vec<RemoteItem> = list.files.into_iter().map(File::into_item).collect();
        assert_eq!(
            items[0],
            RemoteItem {
                id: "1AbC".into(),
                drive_id: None,
                parent_ids: vec!["0BFolder".into()],
                name: "report.pdf".into(),
                path: None,
                path_lower: None,
                kind: ItemKind::File,
                mime_type: Some("application/pdf".into()),
                revision: Some("12".into()),
                content_hash: Some("5eb63bbbe01eeed093cb22bb8f5acdc3".into()),
                size: Some(48_213),
                modified_at: parse_time("2026-05-01T10:00:00.000Z"),
            }
        );
        // A Doc: exported as docx, no size (its "size" is not the export's), versioned by time.
        let doc = &items[1];
        assert_eq!(
            doc.kind,
            ItemKind::Native {
                exports: vec![
                    "application/vnd.openxmlformats-officedocument.wordprocessingml.document".into()
                ]
            }
        );
        assert_eq!(doc.size, None);
        assert_eq!(doc.content_hash, None);
        assert_eq!(doc.content_version(), Some("2026-05-02T09:00:00.000Z"));
        assert_eq!(doc.parent_ids, ["0BFolder"]);
    }

    #[test]
    fn a_renamed_doc_keeps_its_content_version() {
        let before = r#"{"id":"1Doc","name":"Plan","mimeType":"application/vnd.google-apps.document",
            "modifiedTime":"2026-05-02T09:00:00.000Z","parents":["A"],"version":"40"}"#;
        let after = r#"{"id":"1Doc","name":"Plan (final)","mimeType":"application/vnd.google-apps.document",
            "modifiedTime":"2026-05-02T09:00:00.000Z","parents":["B"],"version":"41"}"#;
        let a = serde_json::from_str::<File>(before).unwrap_or_else(|e| panic!("{e}")).into_item();
        let b = serde_json::from_str::<File>(after).unwrap_or_else(|e| panic!("{e}")).into_item();
        assert_eq!(a.content_version(), b.content_version());
        // A binary file's content version is its md5, whatever its version.
        let f = r#"{"id":"1F","name":"a.bin","mimeType":"application/octet-stream","size":"3",
            "md5Checksum":"abc","version":"99","headRevisionId":"0B-rev"}"#;
        let f = serde_json::from_str::<File>(f).unwrap_or_else(|e| panic!("{e}")).into_item();
        assert_eq!(f.content_version(), Some("abc"));
        assert_eq!(f.revision.as_deref(), Some("0B-rev"));
    }

    #[test]
    fn change_list_from_the_reference() {
        let list: ChangeList = serde_json::from_str(CHANGE_LIST).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list.new_start_page_token.as_deref(), Some("12399"));
        assert_eq!(list.next_page_token, None);
        let changes: Vec<Change> = list.changes.into_iter().filter_map(ChangeEntry::into_change).collect();
        assert_eq!(changes.len(), 2);
        let Change::Upsert(item) = &changes[0] else { panic!("{:?}", changes[0]) };
        assert_eq!(
            (item.id.as_str(), item.size, item.revision.as_deref()),
            ("1AbC", Some(50_000), Some("13"))
        );
        // `removed` has no file: deleted by its id.
        assert_eq!(changes[1], Change::Deleted { id: Some("1Gone".into()), path_lower: None });
    }

    #[test]
    fn trashed_and_drive_changes() {
        let body = r#"{"nextPageToken":"p2","changes":[
            {"changeType":"file","fileId":"T","removed":false,
             "file":{"id":"T","name":"t","mimeType":"text/plain","trashed":true,"parents":["P"]}},
            {"changeType":"drive","driveId":"0AD","removed":false},
            {"changeType":"file","fileId":"S","removed":false,"file":{"id":"S","name":"link",
             "mimeType":"application/vnd.google-apps.shortcut","parents":["P"],"driveId":"0AD",
             "shortcutDetails":{"targetId":"X","targetMimeType":"application/pdf"}}}]}"#;
        let list: ChangeList = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(list.next_page_token.as_deref(), Some("p2"));
        let changes: Vec<Change> = list.changes.into_iter().filter_map(ChangeEntry::into_change).collect();
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[0], Change::Deleted { id: Some("T".into()), path_lower: None });
        let Change::Upsert(s) = &changes[1] else { panic!() };
        assert_eq!(s.kind, ItemKind::Shortcut { target_id: Some("X".into()) });
        assert_eq!(s.drive_id.as_deref(), Some("0AD"));
    }

    #[test]
    fn an_export_is_named_with_its_format_extension_once() {
        let docx = export_formats("application/vnd.google-apps.document").unwrap();
        assert_eq!(export_name("Q3 plan", docx), "Q3 plan.docx");
        assert_eq!(export_name("Brief.DOCX", docx), "Brief.DOCX", "already named so");
        assert_eq!(export_name("notes.txt", docx), "notes.txt.docx");
        let pdf = export_formats("application/vnd.google-apps.drawing").unwrap();
        assert_eq!(export_name("Logo sketch", pdf), "Logo sketch.pdf");
        assert_eq!(export_name("x", "text/plain"), "x", "an unknown format adds nothing");
    }

    fn kind_of(mime: &str, can_download: Option<bool>) -> ItemKind {
        File {
            id: "x".into(),
            name: "x".into(),
            mime_type: mime.into(),
            size: None,
            md5_checksum: None,
            sha256_checksum: None,
            modified_time: None,
            parents: vec![],
            trashed: false,
            drive_id: None,
            version: None,
            head_revision_id: None,
            shortcut_details: None,
            capabilities: Some(FileCapabilities { can_download }),
        }
        .kind()
    }

    #[test]
    fn kinds_and_export_formats() {
        let native = |m: &str| ItemKind::Native { exports: vec![m.to_owned()] };
        assert_eq!(kind_of(FOLDER_MIME, None), ItemKind::Folder);
        assert_eq!(kind_of(SHORTCUT_MIME, None), ItemKind::Shortcut { target_id: None });
        assert_eq!(
            kind_of("application/vnd.google-apps.spreadsheet", Some(true)),
            native("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        );
        assert_eq!(
            kind_of("application/vnd.google-apps.presentation", None),
            native("application/vnd.openxmlformats-officedocument.presentationml.presentation")
        );
        assert_eq!(kind_of("application/vnd.google-apps.drawing", None), native("application/pdf"));
        for m in ["form", "site", "map", "script", "jam", "vid"] {
            assert_eq!(
                kind_of(&format!("application/vnd.google-apps.{m}"), None),
                ItemKind::Other { reason: "not_exportable".into() },
                "{m}"
            );
        }
        let no = ItemKind::Other { reason: "not_downloadable".into() };
        assert_eq!(kind_of("application/pdf", Some(false)), no);
        assert_eq!(kind_of("application/vnd.google-apps.document", Some(false)), no);
        assert_eq!(kind_of("application/pdf", None), ItemKind::File);
    }

    #[test]
    fn string_numbers_and_bad_values_do_not_fail_the_page() {
        let body = r#"{"files":[{"id":"1","name":"a","mimeType":"text/plain","size":"not a number",
            "modifiedTime":"yesterday","version":"7"},
            {"id":"2","name":"b","mimeType":"text/plain","size":"9007199254740993"}]}"#;
        let list: FileList = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}"));
        let items: Vec<RemoteItem> = list.files.into_iter().map(File::into_item).collect();
        assert_eq!((items[0].size, items[0].modified_at), (None, None));
        assert_eq!(items[0].revision.as_deref(), Some("7"));
        assert_eq!(items[1].size, Some(9_007_199_254_740_993));
        // A number where Drive sends a string is not the API's shape: rejected.
        assert!(serde_json::from_str::<File>(r#"{"id":"1","size":5}"#).is_err());
    }

    #[test]
    fn error_bodies_from_the_reference() {
        let e = ErrorBody::parse(
            br#"{"error":{"code":403,"message":"User Rate Limit Exceeded",
 "errors":[{"domain":"usageLimits","reason":"userRateLimitExceeded","message":"User Rate Limit Exceeded"}]}}"#,
        )
        .unwrap_or_else(|| panic!("error body"));
        assert_eq!(e.reason(), Some("userRateLimitExceeded"));
        assert_eq!(e.error.code, Some(403));
        assert_eq!(e.describe(), "userRateLimitExceeded: User Rate Limit Exceeded");
        let e = ErrorBody::parse(br#"{"error":{"code":403,"message":"Only files with binary content can be downloaded. Use Export with Docs Editors files.",
 "errors":[{"domain":"global","reason":"fileNotDownloadable","message":"Only files with binary content can be downloaded. Use Export with Docs Editors files.","locationType":"parameter","location":"alt"}]}}"#)
        .unwrap_or_else(|| panic!("error body"));
        assert_eq!((e.reason(), e.location()), (Some("fileNotDownloadable"), Some("alt")));
        assert!(ErrorBody::parse(b"<html>").is_none());
        assert!(ErrorBody::parse(br#"{"error":"invalid_grant"}"#).is_none());
    }

    #[test]
    fn about_user_and_drives() {
        let a: About = serde_json::from_str(
            r#"{"user":{"kind":"drive#user","displayName":"Ada L","photoLink":"https://x",
                "me":true,"permissionId":"0123456789","emailAddress":"ada@example.com"}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.user.permission_id.as_deref(), Some("0123456789"));
        assert_eq!(a.user.email_address.as_deref(), Some("ada@example.com"));
        let d: DriveList = serde_json::from_str(
            r#"{"kind":"drive#driveList","nextPageToken":"n","drives":[{"kind":"drive#drive","id":"0AD","name":"Team"}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let entry = d.drives.into_iter().next().map(SharedDrive::into_entry);
        assert_eq!(
            entry,
            Some(FolderEntry {
                locator: FolderLocator { folder_id: "0AD".into(), drive_id: Some("0AD".into()) },
                name: "Team".into(),
                path: None,
                kind: EntryKind::Drive,
                selectable: true,
            })
        );
        let t: StartPageToken =
            serde_json::from_str(r#"{"kind":"drive#startPageToken","startPageToken":"12345"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.start_page_token, "12345");
    }
}
