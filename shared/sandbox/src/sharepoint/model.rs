//! The tenant: users (each with a OneDrive for Business drive), sites (each with
//! document libraries), drives with their items by id, and each drive's change log.
//!
//! Change log: every mutation appends one [`Change`] per touched item to the drive's
//! log, numbered from one tenant-wide, increasing sequence. A change keeps a snapshot
//! of the item as it was right after the change (`None`: deleted), which the delta
//! feed needs for `set_duplicate_items` (an earlier state of an item, then its latest).
//! Moving or renaming a folder logs only the folder (Graph does not re-emit the
//! subtree: paths are not in delta); deleting a folder logs the folder, then every item
//! below it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use rand::Rng;

use super::quickxor::QuickXorHash;
use crate::content::Blob;

/// Stored file content with its cached QuickXorHash and SHA-256.
pub(crate) type SpBlob = Blob<QuickXorHash>;

/// `driveType` of the drives the sandbox has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DriveType {
    /// A user's OneDrive for Business.
    Business,
    /// A SharePoint site's document library.
    DocumentLibrary,
}

impl DriveType {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            DriveType::Business => "business",
            DriveType::DocumentLibrary => "documentLibrary",
        }
    }
}

/// A person of the tenant (also an OAuth login).
#[derive(Debug, Clone)]
pub(crate) struct User {
    /// GUID: the `oid` of the id_token and `/me`'s `id`.
    pub(crate) id: String,
    pub(crate) display_name: String,
    pub(crate) mail: String,
    pub(crate) upn: String,
    /// The user's OneDrive for Business drive.
    pub(crate) drive_id: String,
}

/// A site collection's root web.
#[derive(Debug, Clone)]
pub(crate) struct SiteRec {
    /// `{host},{site collection guid},{web guid}`.
    pub(crate) id: String,
    /// The URL segment (`Marketing` for `/sites/Marketing`).
    pub(crate) name: String,
    pub(crate) display_name: String,
    pub(crate) web_url: String,
    pub(crate) created: SystemTime,
    /// Its libraries' drive ids, the default "Documents" first.
    pub(crate) drives: Vec<String>,
}

/// Who owns a drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Owner {
    /// A user's OneDrive: only that user may read it.
    User(String),
    /// A site's library: every account of the tenant may read it.
    Site(String),
}

/// A file or folder (a drive's root included).
#[derive(Debug, Clone)]
pub(crate) struct Item {
    pub(crate) id: String,
    /// Upper-case GUID inside the `eTag` / `cTag` strings.
    pub(crate) guid: String,
    pub(crate) name: String,
    /// `None` only for the drive's root.
    pub(crate) parent: Option<String>,
    /// Grows on every change (the `eTag`'s number).
    pub(crate) version: u64,
    /// Grows on content changes only (the `cTag`'s number).
    pub(crate) content_version: u64,
    pub(crate) created: SystemTime,
    /// `lastModifiedDateTime`: any change.
    pub(crate) modified: SystemTime,
    /// `fileSystemInfo.lastModifiedDateTime`: content changes only.
    pub(crate) content_modified: SystemTime,
    /// `None` for a folder.
    pub(crate) blob: Option<Arc<SpBlob>>,
    pub(crate) mime_type: String,
}

impl Item {
    pub(crate) fn is_folder(&self) -> bool {
        self.blob.is_none()
    }
}

/// One entry of a drive's change log.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) seq: u64,
    pub(crate) item_id: String,
    /// The item right after the change; `None` when it was deleted.
    pub(crate) snapshot: Option<Item>,
}

/// Why a mutation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ModelError {
    NotFound(String),
    NotAFolder(String),
    NotAFile(String),
    Conflict(String),
}

/// A drive: a OneDrive for Business or a document library.
#[derive(Debug)]
pub(crate) struct Drive {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) drive_type: DriveType,
    pub(crate) owner: Owner,
    pub(crate) web_url: String,
    pub(crate) created: SystemTime,
    pub(crate) root_id: String,
    pub(crate) items: BTreeMap<String, Item>,
    pub(crate) changes: Vec<Change>,
    /// Deleted items' last parent (delta tombstones carry `parentReference.id`).
    pub(crate) tombstones: HashMap<String, String>,
}

const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A OneDrive-for-Business-looking item id: `01` + 32 base32 characters.
pub(crate) fn new_item_id() -> String {
    let mut rng = rand::rng();
    let tail: String = (0..32).map(|_| BASE32[rng.random_range(0..BASE32.len())] as char).collect();
    format!("01{tail}")
}

/// A drive id: `b!` + 64 url-safe base64 characters.
pub(crate) fn new_drive_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    let tail: String = (0..64).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("b!{tail}")
}

pub(crate) fn new_guid() -> String {
    uuid::Uuid::new_v4().hyphenated().to_string()
}

impl Drive {
    pub(crate) fn new(
        name: &str,
        drive_type: DriveType,
        owner: Owner,
        web_url: String,
        now: SystemTime,
    ) -> Self {
        let root_id = new_item_id();
        let mut items = BTreeMap::new();
        items.insert(
            root_id.clone(),
            Item {
                id: root_id.clone(),
                guid: new_guid().to_uppercase(),
                name: "root".into(),
                parent: None,
                version: 1,
                content_version: 1,
                created: now,
                modified: now,
                content_modified: now,
                blob: None,
                mime_type: String::new(),
            },
        );
        Drive {
            id: new_drive_id(),
            name: name.to_string(),
            drive_type,
            owner,
            web_url,
            created: now,
            root_id,
            items,
            changes: Vec::new(),
            tombstones: HashMap::new(),
        }
    }

    /// `root` is an alias of the root's id.
    pub(crate) fn resolve<'a>(&'a self, id: &'a str) -> &'a str {
        if id == "root" { &self.root_id } else { id }
    }

    pub(crate) fn item(&self, id: &str) -> Option<&Item> {
        self.items.get(self.resolve(id))
    }

    /// Live children of folder `id`, by name (case-insensitive), then id.
    pub(crate) fn children(&self, id: &str) -> Vec<&Item> {
        let mut v: Vec<&Item> = self.items.values().filter(|i| i.parent.as_deref() == Some(id)).collect();
        v.sort_by(|a, b| a.name.to_lowercase().cmp(&b.name.to_lowercase()).then(a.id.cmp(&b.id)));
        v
    }

    /// The item's path below the root (`/A/b.txt`; the root: `""`).
    pub(crate) fn path(&self, id: &str) -> String {
        let mut parts = Vec::new();
        let mut cur = self.items.get(id);
        while let Some(i) = cur {
            let Some(p) = &i.parent else { break };
            parts.push(i.name.as_str());
            if parts.len() > 10_000 {
                break;
            }
            cur = self.items.get(p);
        }
        parts.reverse();
        parts.iter().map(|p| format!("/{p}")).collect()
    }

    /// Ancestors of `id`, root first (not `id` itself).
    pub(crate) fn ancestors(&self, id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = self.items.get(id).and_then(|i| i.parent.clone());
        while let Some(p) = cur {
            if out.len() > 10_000 {
                break;
            }
            cur = self.items.get(&p).and_then(|i| i.parent.clone());
            out.push(p);
        }
        out.reverse();
        out
    }

    /// `id` and everything below it, parents before children.
    pub(crate) fn subtree(&self, id: &str) -> Vec<String> {
        let mut kids: HashMap<&str, Vec<&str>> = HashMap::new();
        for i in self.items.values() {
            if let Some(p) = &i.parent {
                kids.entry(p.as_str()).or_default().push(i.id.as_str());
            }
        }
        let mut out = vec![id.to_string()];
        let mut n = 0;
        while n < out.len() {
            if let Some(k) = kids.get(out[n].as_str()) {
                out.extend(k.iter().map(|s| s.to_string()));
            }
            n += 1;
        }
        out
    }

    /// Depth-first order of the whole tree, children by name: the first enumeration.
    pub(crate) fn tree_order(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack = vec![self.root_id.clone()];
        while let Some(id) = stack.pop() {
            let kids: Vec<String> = self.children(&id).iter().rev().map(|i| i.id.clone()).collect();
            out.push(id);
            stack.extend(kids);
        }
        out
    }

    fn folder(&self, id: &str) -> Result<&Item, ModelError> {
        let f = self.item(id).ok_or_else(|| ModelError::NotFound(id.to_string()))?;
        if !f.is_folder() {
            return Err(ModelError::NotAFolder(id.to_string()));
        }
        Ok(f)
    }

    /// Names are unique in a folder, case-insensitively (`except`: the item being renamed).
    fn check_free(&self, parent: &str, name: &str, except: Option<&str>) -> Result<(), ModelError> {
        let lower = name.to_lowercase();
        let taken = self.items.values().any(|i| {
            i.parent.as_deref() == Some(parent)
                && i.name.to_lowercase() == lower
                && Some(i.id.as_str()) != except
        });
        if taken {
            return Err(ModelError::Conflict(format!("an item named {name:?} already exists in the folder")));
        }
        Ok(())
    }

    fn log(&mut self, seq: &mut u64, id: &str) {
        let snapshot = self.items.get(id).cloned();
        self.changes.push(Change { seq: *seq, item_id: id.to_string(), snapshot });
        *seq += 1;
    }

    /// Adds a folder (`blob: None`) or a file in folder `parent`; returns its id.
    pub(crate) fn add(
        &mut self,
        seq: &mut u64,
        parent: &str,
        name: &str,
        blob: Option<Arc<SpBlob>>,
        mime_type: &str,
        now: SystemTime,
    ) -> Result<String, ModelError> {
        let parent = self.folder(parent)?.id.clone();
        self.check_free(&parent, name, None)?;
        let id = new_item_id();
        self.items.insert(
            id.clone(),
            Item {
                id: id.clone(),
                guid: new_guid().to_uppercase(),
                name: name.to_string(),
                parent: Some(parent),
                version: 1,
                content_version: 1,
                created: now,
                modified: now,
                content_modified: now,
                blob,
                mime_type: mime_type.to_string(),
            },
        );
        self.log(seq, &id);
        Ok(id)
    }

    /// Replaces a file's content: new `eTag` and `cTag`.
    pub(crate) fn set_content(
        &mut self,
        seq: &mut u64,
        id: &str,
        blob: Arc<SpBlob>,
        now: SystemTime,
    ) -> Result<String, ModelError> {
        let id = self.resolve(id).to_string();
        let item = self.items.get_mut(&id).ok_or_else(|| ModelError::NotFound(id.clone()))?;
        if item.is_folder() {
            return Err(ModelError::NotAFile(id));
        }
        item.blob = Some(blob);
        item.version += 1;
        item.content_version += 1;
        item.modified = now;
        item.content_modified = now;
        self.log(seq, &id);
        Ok(id)
    }

    /// Moves and/or renames an item within the drive: new `eTag`, same `cTag`. Only the
    /// item itself is logged, a folder's subtree is not.
    pub(crate) fn move_to(
        &mut self,
        seq: &mut u64,
        id: &str,
        new_parent: Option<&str>,
        new_name: Option<&str>,
        now: SystemTime,
    ) -> Result<String, ModelError> {
        let id = self.resolve(id).to_string();
        let item = self.items.get(&id).ok_or_else(|| ModelError::NotFound(id.clone()))?;
        let Some(old_parent) = item.parent.clone() else {
            return Err(ModelError::Conflict("the root cannot be moved".into()));
        };
        let parent = match new_parent {
            Some(p) => {
                let p = self.folder(p)?.id.clone();
                if self.subtree(&id).contains(&p) {
                    return Err(ModelError::Conflict("cannot move a folder into itself".into()));
                }
                p
            }
            None => old_parent,
        };
        let name = new_name.map(str::to_string).unwrap_or_else(|| item.name.clone());
        self.check_free(&parent, &name, Some(&id))?;
        if let Some(item) = self.items.get_mut(&id) {
            item.parent = Some(parent);
            item.name = name;
            item.version += 1;
            item.modified = now;
        }
        self.log(seq, &id);
        Ok(id)
    }

    /// Deletes an item (a folder with its subtree): the folder is logged first, then
    /// each item below it.
    pub(crate) fn delete(&mut self, seq: &mut u64, id: &str) -> Result<Vec<String>, ModelError> {
        let id = self.resolve(id).to_string();
        let item = self.items.get(&id).ok_or_else(|| ModelError::NotFound(id.clone()))?;
        if item.parent.is_none() {
            return Err(ModelError::Conflict("the root cannot be deleted".into()));
        }
        let gone = self.subtree(&id);
        for sub in &gone {
            if let Some(i) = self.items.remove(sub) {
                self.tombstones.insert(sub.clone(), i.parent.unwrap_or_default());
            }
            self.log(seq, sub);
        }
        Ok(gone)
    }
}
