//! The literal Graph v1.0 JSON shapes (provider-apis.md §2), and their
//! mapping to the port's types. Only the fields the connector uses are declared; unknown fields
//! are ignored. `size` is a JSON number (unlike Drive's strings).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use extconn_core::ports::{Change, EntryKind, FolderEntry, RemoteItem};
use extconn_core::{FolderLocator, ItemKind};
use serde::Deserialize;

/// The `$select` of picker listings: enough to keep folders and drop packages.
pub const PICKER_SELECT: &str = "id,name,folder,package,parentReference";

/// A collection page: `value`, and at most one of `@odata.nextLink` / `@odata.deltaLink`
/// (a delta page ends with exactly one of them).
#[derive(Debug, Clone, Deserialize)]
pub struct Collection<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    #[serde(rename = "@odata.nextLink", default)]
    pub next_link: Option<String>,
    #[serde(rename = "@odata.deltaLink", default)]
    pub delta_link: Option<String>,
}

/// `driveItem`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriveItem {
    pub id: String,
    /// Absent on deleted items of business drives.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub e_tag: Option<String>,
    /// Moves on content changes only; absent on ODB creates/modifies in delta, and on deletes.
    #[serde(default)]
    pub c_tag: Option<String>,
    #[serde(default)]
    pub last_modified_date_time: Option<String>,
    #[serde(default)]
    pub parent_reference: Option<ItemReference>,
    #[serde(default)]
    pub file: Option<FileFacet>,
    #[serde(default)]
    pub folder: Option<serde_json::Value>,
    /// Present (`{}`) on a drive's root item.
    #[serde(default)]
    pub root: Option<serde_json::Value>,
    /// OneNote notebooks and other bundles.
    #[serde(default)]
    pub package: Option<serde_json::Value>,
    #[serde(default)]
    pub deleted: Option<serde_json::Value>,
    /// An item that lives in another drive (a shortcut or a shared item).
    #[serde(default)]
    pub remote_item: Option<serde_json::Value>,
}

/// `itemReference` (`path` never in delta).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ItemReference {
    #[serde(default)]
    pub drive_id: Option<String>,
    /// `personal`, `business`, `documentLibrary`.
    #[serde(default)]
    pub drive_type: Option<String>,
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub site_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileFacet {
    #[serde(default)]
    pub mime_type: Option<String>,
    #[serde(default)]
    pub hashes: Option<Hashes>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Hashes {
    /// base64 (the only hash on business drives).
    #[serde(default)]
    pub quick_xor_hash: Option<String>,
}

/// `drive`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Drive {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `business` (a user's OneDrive for Business), `documentLibrary`, `personal`.
    #[serde(default)]
    pub drive_type: Option<String>,
}

/// `site`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Site {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
}

/// `user` (`/me`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub mail: Option<String>,
    #[serde(default)]
    pub user_principal_name: Option<String>,
}

/// Graph's error body: `{"error":{"code","message","innerError":{"code",…,"innerError"?}}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    pub error: GraphError,
}

#[derive(Debug, Clone, Deserialize)]
pub struct GraphError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(rename = "innerError", alias = "innererror", default)]
    pub inner_error: Option<Box<InnerError>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct InnerError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(rename = "innerError", alias = "innererror", default)]
    pub inner_error: Option<Box<InnerError>>,
}

impl ErrorBody {
    /// `None` for anything that is not a Graph error document (HTML, an OAuth error).
    pub fn parse(body: &[u8]) -> Option<Self> {
        serde_json::from_slice(body).ok()
    }

    /// Every code, outermost first (the top-level code, then each nested `innerError`'s).
    pub fn codes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.error.code.as_deref().into_iter().collect();
        let mut inner = self.error.inner_error.as_deref();
        // Bounded: a hostile body cannot make this loop long (serde limits nesting anyway).
        while let Some(e) = inner.filter(|_| out.len() < 32) {
            out.extend(e.code.as_deref());
            inner = e.inner_error.as_deref();
        }
        out
    }

    /// `code (inner codes): message` for an error message (Graph messages hold no secrets).
    pub fn describe(&self) -> String {
        let codes = self.codes().join("/");
        match &self.error.message {
            Some(m) => format!("{codes}: {}", crate::http::snippet(m.as_bytes())),
            None => codes,
        }
    }
}

pub fn parse_time(s: &str) -> Option<chrono::DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

impl DriveItem {
    pub fn is_root(&self) -> bool {
        self.root.is_some()
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.is_some()
    }

    /// The item's drive: its `parentReference.driveId`, else `drive` (the drive it was read from).
    pub fn drive_id(&self, drive: &str) -> String {
        self.parent_reference.as_ref().and_then(|p| p.drive_id.clone()).unwrap_or_else(|| drive.to_owned())
    }

    pub fn drive_type(&self) -> Option<&str> {
        self.parent_reference.as_ref().and_then(|p| p.drive_type.as_deref())
    }

    pub fn kind(&self) -> ItemKind {
        let other = |r: &str| ItemKind::Other { reason: r.to_owned() };
        if self.package.is_some() {
            other("package")
        } else if self.folder.is_some() {
            ItemKind::Folder
        } else if self.file.is_some() {
            ItemKind::File
        } else if self.remote_item.is_some() {
            other("remote_item")
        } else {
            other("not_a_file")
        }
    }

    /// The port's item, read from `drive`. The content version is the `quickXorHash` (a rename
    /// or a move keeps it), the revision `cTag` (content changes only) else `eTag`; folders have
    /// neither (their tags move with their children). A root has no parent.
    pub fn into_item(self, drive: &str) -> RemoteItem {
        let kind = self.kind();
        let file = kind == ItemKind::File;
        let drive_id = self.drive_id(drive);
        let parent_ids = match (&self.parent_reference, self.is_root()) {
            (Some(p), false) => p.id.iter().cloned().collect(),
            _ => Vec::new(),
        };
        let content_hash = if file {
            self.file.as_ref().and_then(|f| f.hashes.as_ref()).and_then(|h| h.quick_xor_hash.clone())
        } else {
            None
        };
        RemoteItem {
            modified_at: self.last_modified_date_time.as_deref().and_then(parse_time),
            mime_type: self.file.and_then(|f| f.mime_type),
            revision: if file { self.c_tag.or(self.e_tag) } else { None },
            content_hash,
            size: if file { self.size } else { None },
            id: self.id,
            drive_id: Some(drive_id),
            parent_ids,
            name: self.name.unwrap_or_default(),
            path: None,
            path_lower: None,
            kind,
        }
    }

    /// A picker entry for a folder of `drive`.
    pub fn into_entry(self, drive: &str) -> FolderEntry {
        let drive_id = self.drive_id(drive);
        FolderEntry {
            locator: FolderLocator { folder_id: self.id, drive_id: Some(drive_id) },
            name: self.name.unwrap_or_default(),
            path: None,
            kind: EntryKind::Folder,
            selectable: true,
        }
    }
}

/// A page of delta (or children) items as the port's changes, read from `drive`:
/// - a `deleted` item is a deletion by id (business drives send no `name` for it);
/// - the drive's root item is left out (see the module docs);
/// - the feed shows each item's latest state and may repeat an item ("last occurrence wins"):
///   only the **last** occurrence of an id is kept, at its place. Emitting the earlier ones
///   too would be wrong, not just wasteful: the engine treats an id upserted anywhere in a
///   page as alive (a rename in path-keyed feeds), so an item created then deleted in one page
///   would survive.
pub fn to_changes(items: Vec<DriveItem>, drive: &str) -> Vec<Change> {
    let mut last: HashMap<&str, usize> = HashMap::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        last.insert(item.id.as_str(), i);
    }
    let keep: Vec<bool> =
        items.iter().enumerate().map(|(i, it)| last.get(it.id.as_str()) == Some(&i)).collect();
    items
        .into_iter()
        .zip(keep)
        .filter(|(item, keep)| *keep && !item.is_root())
        .map(|(item, _)| {
            if item.is_deleted() {
                Change::Deleted { id: Some(item.id), path_lower: None }
            } else {
                Change::Upsert(item.into_item(drive))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// provider-apis.md §2.2, verbatim (with the elided times filled in).
    const CHILDREN: &str = r#"{"value":[
  {"id":"01ABC","name":"report.pdf","size":48213,
   "eTag":"\"{A1B2...},3\"","cTag":"\"c:{A1B2...},2\"",
   "createdDateTime":"2026-04-01T10:00:00Z","lastModifiedDateTime":"2026-05-01T10:00:00Z",
   "parentReference":{"driveType":"documentLibrary","driveId":"b!xyz","id":"01PARENT","path":"/drives/b!xyz/root:/Shared/Reports","siteId":"contoso.sharepoint.com,..."},
   "file":{"mimeType":"application/pdf","hashes":{"quickXorHash":"aCgDG9jwBhDc4Q1yawMZAAAAAAA="}},
   "fileSystemInfo":{"createdDateTime":"2026-04-01T10:00:00Z","lastModifiedDateTime":"2026-05-01T10:00:00Z"}},
  {"id":"01DEF","name":"Sub","size":0,"folder":{"childCount":4},"parentReference":{"driveId":"b!xyz","id":"01PARENT"}}
 ],
 "@odata.nextLink":"https://graph.microsoft.com/v1.0/drives/b!xyz/items/01PARENT/children?$top=1000&$skiptoken=abc"}"#;

    /// provider-apis.md §2.3, verbatim except the elided hash.
    const DELTA: &str = r#"{"value":[
  {"id":"01DEF","name":"Sub","folder":{"childCount":4},"parentReference":{"driveId":"b!xyz","id":"01PARENT"}},
  {"id":"01ABC","name":"report.pdf","size":50000,"file":{"mimeType":"application/pdf","hashes":{"quickXorHash":"SgAAAAAAAAAAAAAAAQAAAAAAAAA="}},
   "parentReference":{"driveId":"b!xyz","id":"01PARENT"},"lastModifiedDateTime":"2026-05-03T08:00:00Z"},
  {"id":"01GONE","deleted":{"state":"deleted"},"parentReference":{"driveId":"b!xyz","id":"01PARENT"}}
 ],
 "@odata.deltaLink":"https://graph.microsoft.com/v1.0/drives/b!xyz/root/delta?token=MzslMjM0"}"#;

    #[test]
    fn children_from_the_reference() {
        let page: Collection<DriveItem> = serde_json::from_str(CHILDREN).unwrap_or_else(|e| panic!("{e}"));
        assert!(page.next_link.as_deref().is_some_and(|l| l.contains("$skiptoken=abc")));
        assert_eq!(page.delta_link, None);
        let changes = to_changes(page.value, "b!other");
        let Change::Upsert(file) = &changes[0] else { panic!("{:?}", changes[0]) };
        assert_eq!(
            file,
            &RemoteItem {
                id: "01ABC".into(),
                drive_id: Some("b!xyz".into()),
                parent_ids: vec!["01PARENT".into()],
                name: "report.pdf".into(),
                path: None,
                path_lower: None,
                kind: ItemKind::File,
                mime_type: Some("application/pdf".into()),
                revision: Some("\"c:{A1B2...},2\"".into()),
                content_hash: Some("aCgDG9jwBhDc4Q1yawMZAAAAAAA=".into()),
                size: Some(48_213),
                modified_at: parse_time("2026-05-01T10:00:00Z"),
            }
        );
        let Change::Upsert(folder) = &changes[1] else { panic!() };
        assert_eq!(
            (folder.kind.clone(), folder.size, folder.revision.clone()),
            (ItemKind::Folder, None, None)
        );
        assert_eq!(
            folder.locator(),
            FolderLocator { folder_id: "01DEF".into(), drive_id: Some("b!xyz".into()) }
        );
    }

    #[test]
    fn delta_from_the_reference_with_a_nameless_deletion() {
        let page: Collection<DriveItem> = serde_json::from_str(DELTA).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(page.next_link, None);
        assert!(page.delta_link.is_some());
        let changes = to_changes(page.value, "b!xyz");
        assert_eq!(changes.len(), 3);
        let Change::Upsert(f) = &changes[1] else { panic!() };
        // ODB omits cTag in delta: the eTag (absent here too) or nothing; the hash is the version.
        assert_eq!(
            (f.size, f.revision.as_deref(), f.content_version()),
            (Some(50_000), None, Some("SgAAAAAAAAAAAAAAAQAAAAAAAAA="))
        );
        assert_eq!(changes[2], Change::Deleted { id: Some("01GONE".into()), path_lower: None });
    }

    #[test]
    fn duplicates_last_wins_and_roots_and_packages() {
        let body = r#"{"value":[
  {"id":"ROOT","name":"root","root":{},"folder":{"childCount":3},"parentReference":{"driveId":"b!d","driveType":"documentLibrary"}},
  {"id":"A","name":"a.txt","size":1,"file":{},"parentReference":{"driveId":"b!d","id":"ROOT"}},
  {"id":"B","name":"b.txt","size":1,"file":{},"parentReference":{"driveId":"b!d","id":"ROOT"}},
  {"id":"A","deleted":{"state":"deleted"},"parentReference":{"driveId":"b!d","id":"ROOT"}},
  {"id":"B","name":"b2.txt","size":2,"file":{},"parentReference":{"driveId":"b!d","id":"F"}},
  {"id":"N","name":"Notes","package":{"type":"oneNote"},"parentReference":{"driveId":"b!d","id":"ROOT"}},
  {"id":"C","deleted":{"state":"deleted"},"parentReference":{"driveId":"b!d","id":"ROOT"}},
  {"id":"C","name":"back.txt","size":3,"file":{},"parentReference":{"driveId":"b!d","id":"ROOT"}}
 ],"@odata.nextLink":"https://graph.microsoft.com/v1.0/drives/b!d/root/delta?token=x"}"#;
        let page: Collection<DriveItem> = serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}"));
        let changes = to_changes(page.value, "b!d");
        let summary: Vec<String> = changes
            .iter()
            .map(|c| match c {
                Change::Upsert(i) => format!("+{}:{}:{:?}", i.id, i.name, i.kind),
                Change::Deleted { id, .. } => format!("-{}", id.as_deref().unwrap_or("?")),
            })
            .collect();
        assert_eq!(
            summary,
            ["-A", "+B:b2.txt:File", "+N:Notes:Other { reason: \"package\" }", "+C:back.txt:File"]
        );
        // No id is both upserted and deleted in one page.
        let Change::Upsert(b) = &changes[1] else { panic!() };
        assert_eq!((b.parent_ids.as_slice(), b.size), (&["F".to_owned()][..], Some(2)));
    }

    #[test]
    fn a_root_item_has_no_parent() {
        let root: DriveItem = serde_json::from_str(
            r#"{"id":"ROOT","name":"root","root":{},"folder":{"childCount":0},"parentReference":{"driveId":"b!d","driveType":"business"}}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(root.drive_type(), Some("business"));
        let item = root.into_item("b!d");
        assert!(item.parent_ids.is_empty() && item.is_folder());
    }

    #[test]
    fn drives_sites_users() {
        let d: Collection<Drive> = serde_json::from_str(
            r#"{"value":[{"id":"b!abc-_1","name":"Documents","driveType":"documentLibrary","webUrl":"https://contoso.sharepoint.com/Shared%20Documents","createdDateTime":"2026-01-01T00:00:00Z","owner":{"group":{"displayName":"Team"}}}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(d.value[0].drive_type.as_deref(), Some("documentLibrary"));
        let s: Collection<Site> = serde_json::from_str(
            r#"{"value":[{"id":"contoso.sharepoint.com,2C712604-1370-44E7-A1F5-426573FDA80A,2D2244C3-251A-49EA-93A8-39E1C3A060FE","name":"marketing","displayName":"Marketing","webUrl":"https://contoso.sharepoint.com/sites/marketing"}],
            "@odata.nextLink":"https://graph.microsoft.com/v1.0/sites?search=*&$skiptoken=s2"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.value[0].display_name.as_deref(), Some("Marketing"));
        assert!(s.next_link.is_some());
        let u: User = serde_json::from_str(
            r#"{"id":"87d349ed-44d7-43e1-9a83-5f2406dee5bd","displayName":"Megan Bowen","mail":null,"userPrincipalName":"MeganB@contoso.onmicrosoft.com"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (u.mail, u.user_principal_name.as_deref()),
            (None, Some("MeganB@contoso.onmicrosoft.com"))
        );
    }

    #[test]
    fn error_bodies_with_nested_inner_errors() {
        let e = ErrorBody::parse(
            br#"{"error":{"code":"activityLimitReached","message":"The request has been throttled",
 "innerError":{"code":"throttledRequest","date":"2026-05-01T10:00:00","request-id":"r","client-request-id":"c",
 "innerError":{"code":"resourceUnitLimit"}}}}"#,
        )
        .unwrap_or_else(|| panic!("error body"));
        assert_eq!(e.codes(), ["activityLimitReached", "throttledRequest", "resourceUnitLimit"]);
        assert!(
            e.describe().starts_with("activityLimitReached/throttledRequest/resourceUnitLimit: The request")
        );
        let lower = ErrorBody::parse(br#"{"error":{"code":"a","innererror":{"code":"b"}}}"#)
            .unwrap_or_else(|| panic!());
        assert_eq!(lower.codes(), ["a", "b"]);
        assert!(ErrorBody::parse(b"<html>").is_none());
        assert!(ErrorBody::parse(br#"{"error":"invalid_grant"}"#).is_none());
    }
}
