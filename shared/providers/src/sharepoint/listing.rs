//! Account, folder picker, the connected folder's identity, one folder's children, and the
//! drive-wide delta feed.
//!
//! Picker levels (a locator's shape tells which level it opens):
//! - top (`None`): the user's own OneDrive (`/me/drive`, a `Drive` entry) on the first page,
//!   then the tenant's sites (`/sites?search=*`, `Site` entries, not selectable), paged by
//!   their `@odata.nextLink`;
//! - a site (`drive_id: None`, the site id): its document libraries (`/sites/{id}/drives`),
//!   `Drive` entries selectable as their root folder;
//! - a folder or a library root (`drive_id: Some`): its child folders
//!   (`/drives/{d}/items/{i}/children`, items with a `folder` facet; packages skipped).
//!
//! A drive entry's locator is its root **item** id with the drive id (what the delta feed's
//! `parentReference.id` names), read with one `/drives/{d}/root` per drive.

use extconn_core::ports::{
    AccountInfo, EntryKind, FolderEntry, FolderPage, ListPage, ProviderError, RemoteItem,
};
use extconn_core::{FolderLocator, Secret};

use super::wire::{Collection, Drive, DriveItem, PICKER_SELECT, Site, User, to_changes};
use super::{SharePoint, drive_of, segment};

/// Pages of `start_cursor`'s `token=latest` walk before giving up (it answers one page).
const MAX_CURSOR_PAGES: usize = 100;

/// `GET /me`: the user's object id, display name, `mail` else `userPrincipalName`.
pub(super) async fn account(sp: &SharePoint, access: &Secret) -> Result<AccountInfo, ProviderError> {
    let u: User = sp.get(access, "me", &[("$select", "id,displayName,mail,userPrincipalName")]).await?;
    let email = u.mail.filter(|m| !m.is_empty()).or(u.user_principal_name);
    let display_name = u.display_name.filter(|n| !n.is_empty()).or(email.clone()).unwrap_or_default();
    Ok(AccountInfo { account_id: u.id, display_name, email })
}

/// A drive's root item id.
async fn root_id(sp: &SharePoint, access: &Secret, drive: &str) -> Result<String, ProviderError> {
    let root: DriveItem =
        sp.get(access, &format!("drives/{}/root", segment(drive)), &[("$select", "id")]).await?;
    Ok(root.id)
}

async fn drive_entry(
    sp: &SharePoint,
    access: &Secret,
    d: Drive,
    fallback: &str,
) -> Result<FolderEntry, ProviderError> {
    let root = root_id(sp, access, &d.id).await?;
    Ok(FolderEntry {
        locator: FolderLocator { folder_id: root, drive_id: Some(d.id) },
        name: d.name.filter(|n| !n.is_empty()).unwrap_or_else(|| fallback.to_owned()),
        path: None,
        kind: EntryKind::Drive,
        selectable: true,
    })
}

pub(super) async fn browse_folders(
    sp: &SharePoint,
    access: &Secret,
    parent: Option<&FolderLocator>,
    page: Option<&str>,
) -> Result<FolderPage, ProviderError> {
    match parent {
        None => {
            let mut folders = Vec::new();
            if page.is_none() {
                // A user without a OneDrive (no licence, never provisioned) still sees the sites.
                match sp.get::<Drive>(access, "me/drive", &[("$select", "id,name,driveType")]).await {
                    Ok(d) => folders.push(drive_entry(sp, access, d, "OneDrive").await?),
                    Err(ProviderError::NotFound | ProviderError::Forbidden(_)) => {}
                    Err(e) => return Err(e),
                }
            }
            let sites: Collection<Site> = match page {
                Some(link) => sp.get_link(access, link).await?,
                None => sp.get(access, "sites", &[("search", "*")]).await?,
            };
            let sites = sp.checked(sites)?;
            folders.extend(sites.value.into_iter().map(|s| FolderEntry {
                name: s.display_name.or(s.name).unwrap_or_else(|| s.id.clone()),
                locator: FolderLocator { folder_id: s.id, drive_id: None },
                path: None,
                kind: EntryKind::Site,
                selectable: false,
            }));
            Ok(FolderPage { folders, next_page: sites.next_link })
        }
        Some(site @ FolderLocator { drive_id: None, .. }) => {
            let drives: Collection<Drive> = match page {
                Some(link) => sp.get_link(access, link).await?,
                None => {
                    let path = format!("sites/{}/drives", segment(&site.folder_id));
                    sp.get(access, &path, &[("$select", "id,name,driveType")]).await?
                }
            };
            let drives = sp.checked(drives)?;
            let mut folders = Vec::with_capacity(drives.value.len());
            for d in drives.value {
                folders.push(drive_entry(sp, access, d, "Documents").await?);
            }
            Ok(FolderPage { folders, next_page: drives.next_link })
        }
        Some(folder) => {
            let drive = drive_of(folder)?;
            let items: Collection<DriveItem> = match page {
                Some(link) => sp.get_link(access, link).await?,
                None => {
                    let path =
                        format!("drives/{}/items/{}/children", segment(drive), segment(&folder.folder_id));
                    let top = sp.cfg.page_size.to_string();
                    sp.get(access, &path, &[("$top", top.as_str()), ("$select", PICKER_SELECT)]).await?
                }
            };
            let items = sp.checked(items)?;
            let folders = items
                .value
                .into_iter()
                .filter(|i| i.folder.is_some() && i.package.is_none() && !i.is_deleted())
                .map(|i| i.into_entry(drive))
                .collect();
            Ok(FolderPage { folders, next_page: items.next_link })
        }
    }
}

/// `GET /drives/{d}/items/{i}`; a deleted item is `NotFound`.
pub(super) async fn get_item(
    sp: &SharePoint,
    access: &Secret,
    locator: &FolderLocator,
) -> Result<DriveItem, ProviderError> {
    let drive = drive_of(locator)?;
    let path = format!("drives/{}/items/{}", segment(drive), segment(&locator.folder_id));
    let item: DriveItem = sp.get(access, &path, &[]).await?;
    if item.is_deleted() {
        return Err(ProviderError::NotFound);
    }
    Ok(item)
}

/// `GET /drives/{d}`.
pub(super) async fn drive(sp: &SharePoint, access: &Secret, drive: &str) -> Result<Drive, ProviderError> {
    sp.get(access, &format!("drives/{}", segment(drive)), &[("$select", "id,name,driveType")]).await
}

/// The connected folder's identity: a folder, or a library's root (named after its drive).
pub(super) async fn folder(
    sp: &SharePoint,
    access: &Secret,
    folder: &FolderLocator,
) -> Result<FolderEntry, ProviderError> {
    if folder.drive_id.is_none() {
        return Err(ProviderError::Permanent("a site cannot be connected: pick one of its libraries".into()));
    }
    let drive = drive_of(folder)?;
    let raw = get_item(sp, access, folder).await?;
    let root = raw.is_root();
    let mut item = raw.into_item(drive);
    if !item.is_folder() {
        return Err(ProviderError::Permanent("the connected item is not a folder".into()));
    }
    if root {
        // A root item is called `root`: it is shown as its library.
        item.name = self::drive(sp, access, item.drive_id.as_deref().unwrap_or(drive))
            .await?
            .name
            .unwrap_or_default();
    }
    let kind = if item.parent_ids.is_empty() { EntryKind::Drive } else { EntryKind::Folder };
    Ok(FolderEntry { locator: item.locator(), name: item.name, path: None, kind, selectable: true })
}

/// One item by id; deleted → `NotFound`. A drive's root keeps Graph's name for it (`root`):
/// the engine asks for unknown parents, and a root only ends the walk up, so naming it after
/// its library (one more call) is left to [`folder`].
pub(super) async fn item(
    sp: &SharePoint,
    access: &Secret,
    locator: &FolderLocator,
) -> Result<RemoteItem, ProviderError> {
    let drive = drive_of(locator)?;
    Ok(get_item(sp, access, locator).await?.into_item(drive))
}

/// The deltaLink of `root/delta?token=latest` (now, skipping history), taken before the
/// by-parent listing. Always the drive root: `/items/{id}/delta` is 501 on business drives.
pub(super) async fn start_cursor(
    sp: &SharePoint,
    access: &Secret,
    folder: &FolderLocator,
) -> Result<String, ProviderError> {
    let drive = drive_of(folder)?;
    let mut page: Collection<DriveItem> =
        sp.get(access, &format!("drives/{}/root/delta", segment(drive)), &[("token", "latest")]).await?;
    for _ in 0..MAX_CURSOR_PAGES {
        let checked = sp.checked(page)?;
        match (checked.delta_link, checked.next_link) {
            (Some(delta), _) => return Ok(delta),
            (None, Some(next)) => page = sp.get_link(access, &next).await?,
            (None, None) => break,
        }
    }
    Err(ProviderError::Transient("delta?token=latest answered no deltaLink".into()))
}

/// One folder's children, a page at a time (`@odata.nextLink` is the page cursor).
pub(super) async fn list_children(
    sp: &SharePoint,
    access: &Secret,
    parent: &FolderLocator,
    page: Option<&str>,
) -> Result<ListPage, ProviderError> {
    let drive = drive_of(parent)?;
    let items: Collection<DriveItem> = match page {
        Some(link) => sp.get_link(access, link).await?,
        None => {
            let path = format!("drives/{}/items/{}/children", segment(drive), segment(&parent.folder_id));
            let top = sp.cfg.page_size.to_string();
            sp.get(access, &path, &[("$top", top.as_str())]).await?
        }
    };
    let items = sp.checked(items)?;
    let changes = to_changes(items.value, drive);
    Ok(match items.next_link {
        Some(next) => ListPage { changes, cursor: next, has_more: true },
        None => ListPage { changes, cursor: String::new(), has_more: false },
    })
}

/// Follows the stored link: a page with `@odata.nextLink` has more (the nextLink is the
/// cursor), the one with `@odata.deltaLink` is the last (the deltaLink is the next cursor). A
/// stale link answers 410 → `CursorReset`.
pub(super) async fn list_changes(
    sp: &SharePoint,
    access: &Secret,
    folder: &FolderLocator,
    cursor: &str,
) -> Result<ListPage, ProviderError> {
    let drive = drive_of(folder)?;
    let page: Collection<DriveItem> = sp.get_link(access, cursor).await?;
    to_page(sp.checked(page)?, drive)
}

fn to_page(page: Collection<DriveItem>, drive: &str) -> Result<ListPage, ProviderError> {
    let changes = to_changes(page.value, drive);
    match (page.next_link, page.delta_link) {
        (Some(next), _) => Ok(ListPage { changes, cursor: next, has_more: true }),
        (None, Some(delta)) => Ok(ListPage { changes, cursor: delta, has_more: false }),
        (None, None) => Err(ProviderError::Transient(
            "a delta page carried neither @odata.nextLink nor @odata.deltaLink".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use extconn_core::ports::Change;

    #[test]
    fn delta_pages_carry_the_right_cursor() {
        let parse =
            |s: &str| serde_json::from_str::<Collection<DriveItem>>(s).unwrap_or_else(|e| panic!("{e}"));
        let mid = parse(
            r#"{"value":[],"@odata.nextLink":"https://graph.microsoft.com/v1.0/drives/b!d/root/delta?token=p2"}"#,
        );
        assert_eq!(
            to_page(mid, "b!d"),
            Ok(ListPage {
                changes: vec![],
                cursor: "https://graph.microsoft.com/v1.0/drives/b!d/root/delta?token=p2".into(),
                has_more: true
            })
        );
        let last = parse(
            r#"{"value":[{"id":"G","deleted":{"state":"deleted"},"parentReference":{"driveId":"b!d","id":"P"}}],
            "@odata.deltaLink":"https://graph.microsoft.com/v1.0/drives/b!d/root/delta?token=d1"}"#,
        );
        let page = to_page(last, "b!d").unwrap_or_else(|e| panic!("{e}"));
        assert!(!page.has_more && page.cursor.ends_with("token=d1"));
        assert_eq!(page.changes, [Change::Deleted { id: Some("G".into()), path_lower: None }]);
        assert!(matches!(to_page(parse(r#"{"value":[]}"#), "b!d"), Err(ProviderError::Transient(_))));
    }
}
