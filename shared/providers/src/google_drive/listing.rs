//! Account, folder picker, the connected folder's identity, one folder's children, and the
//! drive-wide change feed.

use extconn_core::ports::{
    AccountInfo, Change, EntryKind, FolderEntry, FolderPage, ListPage, ProviderError, RemoteItem,
};
use extconn_core::{FolderLocator, ItemKind, Secret};

use super::wire::{
    About, ChangeEntry, ChangeList, DriveList, FILE_FIELDS, FOLDER_MIME, File, FileList, RevisionList,
    SharedDrive, StartPageToken, parse_time,
};
use super::{GoogleDrive, segment};

/// `drives.list` pages hold at most 100 drives.
const DRIVES_PAGE_SIZE: &str = "100";

/// `GET /drive/v3/about?fields=user`: the account id is the user's `permissionId` (stable),
/// else the email.
pub(super) async fn account(g: &GoogleDrive, access: &Secret) -> Result<AccountInfo, ProviderError> {
    let a: About = g.get(access, "about", &[("fields", "user")]).await?;
    let account_id = a.user.permission_id.clone().or(a.user.email_address.clone()).ok_or_else(|| {
        ProviderError::Permanent("about.user has neither permissionId nor emailAddress".into())
    })?;
    Ok(AccountInfo { account_id, display_name: a.user.display_name, email: a.user.email_address })
}

/// A string literal of the `q` language: in single quotes, `\` and `'` escaped (§1.2).
pub(super) fn q_literal(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The query pairs every listing inside `locator`'s drive takes: `corpora=drive&driveId=` in a
/// shared drive, the user's corpus otherwise.
fn corpus(locator: &FolderLocator) -> Vec<(&'static str, &str)> {
    match &locator.drive_id {
        Some(d) => vec![("corpora", "drive"), ("driveId", d.as_str())],
        None => Vec::new(),
    }
}

/// The picker. At the top: My Drive (its real root id, so that items' `parents` match it) and
/// the shared drives (`drives.list`, paged by its own token); below: one folder's sub-folders.
pub(super) async fn browse_folders(
    g: &GoogleDrive,
    access: &Secret,
    parent: Option<&FolderLocator>,
    page: Option<&str>,
) -> Result<FolderPage, ProviderError> {
    let Some(parent) = parent else {
        let mut folders = Vec::new();
        if page.is_none() {
            let root = get_file(g, access, "root").await?;
            folders.push(FolderEntry {
                locator: FolderLocator { folder_id: root.id, drive_id: None },
                name: "My Drive".into(),
                path: None,
                kind: EntryKind::Drive,
                selectable: true,
            });
        }
        let mut query = vec![("pageSize", DRIVES_PAGE_SIZE), ("fields", "nextPageToken,drives(id,name)")];
        if let Some(p) = page {
            query.push(("pageToken", p));
        }
        let drives: DriveList = g.get(access, "drives", &query).await?;
        folders.extend(drives.drives.into_iter().map(SharedDrive::into_entry));
        return Ok(FolderPage { folders, next_page: drives.next_page_token });
    };
    let q = format!(
        "{} in parents and mimeType = {} and trashed = false",
        q_literal(&parent.folder_id),
        q_literal(FOLDER_MIME)
    );
    let list =
        files_list(g, access, parent, &q, "nextPageToken,files(id,name,parents,driveId)", page).await?;
    Ok(FolderPage {
        folders: list.files.into_iter().map(File::into_entry).collect(),
        next_page: list.next_page_token,
    })
}

/// `files.list` of query `q` inside `parent`'s drive, one page of the configured size.
async fn files_list(
    g: &GoogleDrive,
    access: &Secret,
    parent: &FolderLocator,
    q: &str,
    fields: &str,
    page: Option<&str>,
) -> Result<FileList, ProviderError> {
    let page_size = g.cfg.page_size.to_string();
    let mut query = vec![
        ("q", q),
        ("pageSize", page_size.as_str()),
        ("fields", fields),
        ("supportsAllDrives", "true"),
        ("includeItemsFromAllDrives", "true"),
    ];
    query.extend(corpus(parent));
    if let Some(p) = page {
        query.push(("pageToken", p));
    }
    g.get(access, "files", &query).await
}

/// `files.get` with the connector's fields (`root` is My Drive's alias).
async fn get_file(g: &GoogleDrive, access: &Secret, id: &str) -> Result<File, ProviderError> {
    let path = format!("files/{}", segment(id));
    g.get(access, &path, &[("fields", FILE_FIELDS), ("supportsAllDrives", "true")]).await
}

/// The connected folder's current identity: a shared drive's root is named by `drives.get`,
/// anything else by `files.get`; trashed → `NotFound`.
pub(super) async fn folder(
    g: &GoogleDrive,
    access: &Secret,
    folder: &FolderLocator,
) -> Result<FolderEntry, ProviderError> {
    if folder.drive_id.as_deref() == Some(folder.folder_id.as_str()) {
        let path = format!("drives/{}", segment(&folder.folder_id));
        let d: SharedDrive = g.get(access, &path, &[("fields", "id,name")]).await?;
        return Ok(d.into_entry());
    }
    match item(g, access, folder).await? {
        RemoteItem { kind: ItemKind::Folder, id, name, drive_id, .. } => Ok(FolderEntry {
            locator: FolderLocator { folder_id: id, drive_id },
            name,
            path: None,
            kind: EntryKind::Folder,
            selectable: true,
        }),
        _ => Err(ProviderError::Permanent("the connected item is a file, not a folder".into())),
    }
}

/// `files.get` by id; a trashed item is gone (`NotFound`), like a deleted one.
pub(super) async fn item(
    g: &GoogleDrive,
    access: &Secret,
    locator: &FolderLocator,
) -> Result<RemoteItem, ProviderError> {
    let file = get_file(g, access, &locator.folder_id).await?;
    if file.trashed {
        return Err(ProviderError::NotFound);
    }
    Ok(file.into_item())
}

/// `changes.getStartPageToken` (with the shared drive's `driveId` for a folder in one), taken
/// before the by-parent listing.
pub(super) async fn start_cursor(
    g: &GoogleDrive,
    access: &Secret,
    folder: &FolderLocator,
) -> Result<String, ProviderError> {
    let mut query = vec![("supportsAllDrives", "true")];
    if let Some(d) = &folder.drive_id {
        query.push(("driveId", d.as_str()));
    }
    let t: StartPageToken = g.get(access, "changes/startPageToken", &query).await?;
    Ok(t.start_page_token)
}

/// One folder's direct children that are not trashed, a page at a time (`nextPageToken`).
pub(super) async fn list_children(
    g: &GoogleDrive,
    access: &Secret,
    parent: &FolderLocator,
    page: Option<&str>,
) -> Result<ListPage, ProviderError> {
    let q = format!("{} in parents and trashed = false", q_literal(&parent.folder_id));
    let fields = format!("nextPageToken,incompleteSearch,files({FILE_FIELDS})");
    let list = files_list(g, access, parent, &q, &fields, page).await?;
    if list.incomplete_search {
        tracing::warn!("Drive answered a folder listing with incompleteSearch: true");
    }
    let changes = list.files.into_iter().map(|f| Change::Upsert(f.into_item())).collect();
    Ok(match list.next_page_token {
        Some(token) => ListPage { changes, cursor: token, has_more: true },
        None => ListPage { changes, cursor: String::new(), has_more: false },
    })
}

/// `changes.list` from `cursor`: every page but the last has `nextPageToken` (`has_more`), the
/// last has `newStartPageToken` (the cursor to store). A page with neither is refused.
pub(super) async fn list_changes(
    g: &GoogleDrive,
    access: &Secret,
    folder: &FolderLocator,
    cursor: &str,
) -> Result<ListPage, ProviderError> {
    let fields = format!(
        "nextPageToken,newStartPageToken,changes(changeType,removed,fileId,time,driveId,file({FILE_FIELDS}))"
    );
    let page_size = g.cfg.page_size.to_string();
    let mut query = vec![
        ("pageToken", cursor),
        ("pageSize", page_size.as_str()),
        ("fields", fields.as_str()),
        ("supportsAllDrives", "true"),
        ("includeItemsFromAllDrives", "true"),
    ];
    if let Some(d) = &folder.drive_id {
        query.push(("driveId", d.as_str()));
    }
    let list: ChangeList = g.get(access, "changes", &query).await?;
    to_page(list)
}

fn to_page(list: ChangeList) -> Result<ListPage, ProviderError> {
    let changes: Vec<Change> = list.changes.into_iter().filter_map(ChangeEntry::into_change).collect();
    match (list.next_page_token, list.new_start_page_token) {
        (Some(next), _) => Ok(ListPage { changes, cursor: next, has_more: true }),
        (None, Some(new_start)) => Ok(ListPage { changes, cursor: new_start, has_more: false }),
        (None, None) => Err(ProviderError::Transient(
            "changes.list answered with neither nextPageToken nor newStartPageToken".into(),
        )),
    }
}

/// Whether a native doc's content changed after `since` (the `modifiedTime` recorded as its
/// content version): any revision made later. Revisions are made by edits only, never by a
/// rename or a move, so this tells the two apart whatever `modifiedTime` does on a rename.
/// `None` when `since` is not a time or Drive lists no revisions.
pub(super) async fn content_changed_since(
    g: &GoogleDrive,
    access: &Secret,
    item: &RemoteItem,
    since: &str,
) -> Result<Option<bool>, ProviderError> {
    let Some(since) = parse_time(since) else { return Ok(None) };
    let path = format!("files/{}/revisions", segment(&item.id));
    let mut page: Option<String> = None;
    let mut seen = false;
    loop {
        let mut query = vec![("pageSize", "1000"), ("fields", "nextPageToken,revisions(id,modifiedTime)")];
        if let Some(p) = &page {
            query.push(("pageToken", p.as_str()));
        }
        let list: RevisionList = g.get(access, &path, &query).await?;
        for r in &list.revisions {
            seen = true;
            if r.modified_time.as_deref().and_then(parse_time).is_some_and(|t| t > since) {
                return Ok(Some(true));
            }
        }
        match list.next_page_token {
            Some(next) => page = Some(next),
            None => return Ok(seen.then_some(false)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_literals_are_escaped() {
        assert_eq!(q_literal("1AbC"), "'1AbC'");
        assert_eq!(q_literal(r"a'b\c"), r"'a\'b\\c'");
    }

    #[test]
    fn change_pages_carry_the_right_cursor() {
        let mid: ChangeList =
            serde_json::from_str(r#"{"nextPageToken":"p2","changes":[]}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(to_page(mid), Ok(ListPage { changes: vec![], cursor: "p2".into(), has_more: true }));
        let last: ChangeList = serde_json::from_str(
            r#"{"newStartPageToken":"12399","changes":[{"changeType":"file","fileId":"1Gone","removed":true}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            to_page(last),
            Ok(ListPage {
                changes: vec![Change::Deleted { id: Some("1Gone".into()), path_lower: None }],
                cursor: "12399".into(),
                has_more: false
            })
        );
        let neither: ChangeList = serde_json::from_str(r#"{"changes":[]}"#).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(to_page(neither), Err(ProviderError::Transient(_))));
    }
}
