//! Account, folder picker, the connected folder's identity, full listing and changes.

use extconn_core::ports::{AccountInfo, Change, FolderEntry, FolderPage, ListPage, ProviderError};
use extconn_core::{FolderLocator, Secret};

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
    parent: Option<&str>,
    page: Option<&str>,
) -> Result<FolderPage, ProviderError> {
    let mut folders = Vec::new();
    let mut result = match page {
        Some(cursor) => continue_listing(dbx, access, cursor).await?,
        None => {
            let path = dropbox_path(parent.unwrap_or(""));
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
        return Ok(FolderEntry { id: String::new(), name: String::new(), path: "/".into() });
    }
    let arg = PathArg { path: dropbox_path(&folder.folder_id) };
    let m: Metadata = dbx.rpc(access, "files/get_metadata", Some(&arg)).await?;
    match m {
        Metadata::Folder(f) => Ok(f.into_entry()),
        Metadata::Deleted(_) => Err(ProviderError::NotFound),
        Metadata::File(_) => {
            Err(ProviderError::Permanent("the connected item is a file, not a folder".into()))
        }
        Metadata::Unknown => Err(ProviderError::Permanent("the connected item is not a folder".into())),
    }
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
        None => {
            let arg = ListFolderArg {
                path: dropbox_path(&folder.folder_id),
                recursive: true,
                include_deleted: false,
                include_mounted_folders: true,
                include_non_downloadable_files: true,
                limit: dbx.cfg.page_limit,
            };
            dbx.rpc(access, "files/list_folder", Some(&arg)).await?
        }
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
