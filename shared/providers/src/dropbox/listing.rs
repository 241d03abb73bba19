//! Account, folder picker, the connected folder's identity, full listing and changes.

use extconn_core::ports::{
    AccountInfo, Change, EntryKind, FolderEntry, FolderPage, ListPage, ProviderError, RemoteItem,
};
use extconn_core::{FolderLocator, ItemKind, Secret};
use serde::Deserialize;

use super::Dropbox;
use super::wire::{CursorArg, FullAccount, ListFolderArg, ListFolderResult, Metadata, PathArg};

/// `browse_folders` reads at most this many Dropbox pages to find at least one sub-folder
/// before returning a (possibly empty) page with a continuation token.
const BROWSE_MAX_PAGES_PER_CALL: usize = 8;

/// `POST /2/users/get_current_account` (no argument: no body).
pub(super) async fn account(dbx: &Dropbox, access: &Secret) -> Result<AccountInfo, ProviderError> {
    let a: FullAccount = dbx.rpc::<(), _>(access, "users/get_current_account", None).await?;
    Ok(AccountInfo { account_id: a.account_id, display_name: a.name.display_name, email: a.email })
}

/// The root is `""` at Dropbox, never `"/"` (provider-apis.md §7 item 10).
fn dropbox_path(p: &str) -> &str {
    if p == "/" { "" } else { p }
}

/// One level of sub-folders (`recursive: false`), paging with the Dropbox cursor.
pub(super) async fn browse_folders(
    dbx: &Dropbox,
    access: &Secret,
    parent: Option<&FolderLocator>,
    page: Option<&str>,
) -> Result<FolderPage, ProviderError> {
    let mut folders = Vec::new();
    let mut result = match page {
        Some(cursor) => continue_listing(dbx, access, cursor).await?,
        None => {
            let path = dropbox_path(parent.map_or("", |p| p.folder_id.as_str()));
            let arg = ListFolderArg {
                path,
                recursive: false,
                include_deleted: false,
                include_mounted_folders: true,
                include_non_downloadable_files: true,
                limit: dbx.cfg.page_limit,
            };
            dbx.rpc(access, "files/list_folder", Some(&arg)).await?
        }
    };
    let mut pages = 1;
    loop {
        let ListFolderResult { entries, cursor, has_more } = result;
        folders.extend(entries.into_iter().filter_map(|m| match m {
            Metadata::Folder(f) => Some(f.into_entry()),
            _ => None,
        }));
        if !has_more {
            return Ok(FolderPage { folders, next_page: None });
        }
        if !folders.is_empty() || pages >= BROWSE_MAX_PAGES_PER_CALL {
            return Ok(FolderPage { folders, next_page: Some(cursor) });
        }
        result = continue_listing(dbx, access, &cursor).await?;
        pages += 1;
    }
}

/// `POST /2/files/get_metadata` on the folder id: its current name and path. The root (`""`)
/// has no metadata at Dropbox (get_metadata refuses it); it is answered locally.
pub(super) async fn folder(
    dbx: &Dropbox,
    access: &Secret,
    folder: &FolderLocator,
) -> Result<FolderEntry, ProviderError> {
    if dropbox_path(&folder.folder_id).is_empty() {
        return Ok(FolderEntry {
            locator: FolderLocator { folder_id: String::new(), drive_id: None },
            name: String::new(),
            path: Some("/".into()),
            kind: EntryKind::Folder,
            selectable: true,
        });
    }
    match item(dbx, access, folder).await? {
        RemoteItem { kind: ItemKind::Folder, id, name, path, .. } => Ok(FolderEntry {
            locator: FolderLocator { folder_id: id, drive_id: None },
            name,
            path,
            kind: EntryKind::Folder,
            selectable: true,
        }),
        _ => Err(ProviderError::Permanent("the connected item is a file, not a folder".into())),
    }
}

/// `POST /2/files/get_metadata` by id: a file or a folder; deleted → `NotFound`. The account
/// root (`""`) has no metadata at Dropbox; it is answered as a nameless folder.
pub(super) async fn item(
    dbx: &Dropbox,
    access: &Secret,
    locator: &FolderLocator,
) -> Result<RemoteItem, ProviderError> {
    if dropbox_path(&locator.folder_id).is_empty() {
        return Ok(RemoteItem {
            id: String::new(),
            drive_id: None,
            parent_ids: Vec::new(),
            name: String::new(),
            path: Some(String::new()),
            path_lower: Some(String::new()),
            kind: ItemKind::Folder,
            mime_type: None,
            revision: None,
            content_hash: None,
            size: None,
            modified_at: None,
        });
    }
    let arg = PathArg { path: dropbox_path(&locator.folder_id) };
    let m: Metadata = dbx.rpc(access, "files/get_metadata", Some(&arg)).await?;
    match m {
        Metadata::Folder(f) => Ok(f.into_item()),
        Metadata::File(f) => Ok(f.into_item()),
        Metadata::Deleted(_) => Err(ProviderError::NotFound),
        Metadata::Unknown => {
            Err(ProviderError::Permanent("an item of a kind this connector does not know".into()))
        }
    }
}

#[derive(Deserialize)]
struct LatestCursor {
    cursor: String,
}

/// `POST /2/files/list_folder/get_latest_cursor`: the recursive listing's cursor as of now,
/// without listing anything.
pub(super) async fn start_cursor(
    dbx: &Dropbox,
    access: &Secret,
    folder: &FolderLocator,
) -> Result<String, ProviderError> {
    let arg = full_arg(dbx, folder);
    let r: LatestCursor = dbx.rpc(access, "files/list_folder/get_latest_cursor", Some(&arg)).await?;
    Ok(r.cursor)
}

fn full_arg<'a>(dbx: &Dropbox, folder: &'a FolderLocator) -> ListFolderArg<'a> {
    ListFolderArg {
        path: dropbox_path(&folder.folder_id),
        recursive: true,
        include_deleted: false,
        include_mounted_folders: true,
        include_non_downloadable_files: true,
        limit: dbx.cfg.page_limit,
    }
}

/// One folder's direct children (`recursive: false`), a page at a time.
pub(super) async fn list_children(
    dbx: &Dropbox,
    access: &Secret,
    parent: &FolderLocator,
    page: Option<&str>,
) -> Result<ListPage, ProviderError> {
    let result = match page {
        Some(cursor) => continue_listing(dbx, access, cursor).await?,
        None => {
            let arg = ListFolderArg { recursive: false, ..full_arg(dbx, parent) };
            dbx.rpc(access, "files/list_folder", Some(&arg)).await?
        }
    };
    Ok(to_page(result))
}

/// A page of the recursive listing of the connected folder. The first page comes from
/// `list_folder` on the folder id, the next ones from `continue` with the previous cursor.
pub(super) async fn list_full(
    dbx: &Dropbox,
    access: &Secret,
    folder: &FolderLocator,
    resume: Option<&str>,
) -> Result<ListPage, ProviderError> {
    let result = match resume {
        Some(cursor) => continue_listing(dbx, access, cursor).await?,
        None => dbx.rpc(access, "files/list_folder", Some(&full_arg(dbx, folder))).await?,
    };
    Ok(to_page(result))
}

/// Changes since `cursor` (`continue`); `CursorReset` on 409 `reset`.
pub(super) async fn list_changes(
    dbx: &Dropbox,
    access: &Secret,
    cursor: &str,
) -> Result<ListPage, ProviderError> {
    Ok(to_page(continue_listing(dbx, access, cursor).await?))
}

async fn continue_listing(
    dbx: &Dropbox,
    access: &Secret,
    cursor: &str,
) -> Result<ListFolderResult, ProviderError> {
    dbx.rpc(access, "files/list_folder/continue", Some(&CursorArg { cursor })).await
}

/// Entries in Dropbox's order (they must be applied in order).
fn to_page(result: ListFolderResult) -> ListPage {
    let changes: Vec<Change> = result
        .entries
        .into_iter()
        .filter_map(|m| {
            let change = m.into_change();
            if change.is_none() {
                tracing::warn!("skipping a Dropbox listing entry of an unknown kind");
            }
            change
        })
        .collect();
    ListPage { changes, cursor: result.cursor, has_more: result.has_more }
}
