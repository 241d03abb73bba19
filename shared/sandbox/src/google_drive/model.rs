//! One account's Drive: files by id (each with one parent), the My Drive root, shared
//! drives (whose root folder id is the drive id), and the change log behind page
//! tokens.
//!
//! Change log: every mutation appends one [`Change`] per touched file with a global,
//! increasing sequence number. A page token is the decimal sequence number of the
//! first change it has not seen yet; `changes.list` reports the *latest* state of
//! each touched file once (as Drive does), in the order of its last change.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::SystemTime;

use rand::Rng;

use super::Md5Hex;
use crate::content::Blob;

/// `application/vnd.google-apps.folder`.
pub(crate) const FOLDER_MIME: &str = "application/vnd.google-apps.folder";
/// `application/vnd.google-apps.shortcut`.
pub(crate) const SHORTCUT_MIME: &str = "application/vnd.google-apps.shortcut";
/// Prefix of Google-native (Docs Editors and other) types.
pub(crate) const GOOGLE_APPS_PREFIX: &str = "application/vnd.google-apps.";

/// Export formats the emulator accepts per native type (provider-apis.md §1.4).
pub(crate) fn export_formats(mime: &str) -> &'static [&'static str] {
    match mime {
        "application/vnd.google-apps.document" => &[
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            "application/pdf",
            "text/plain",
            "application/rtf",
            "application/vnd.oasis.opendocument.text",
            "text/html",
            "application/zip",
            "application/epub+zip",
            "text/markdown",
        ],
        "application/vnd.google-apps.spreadsheet" => &[
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/pdf",
            "application/vnd.oasis.opendocument.spreadsheet",
            "text/csv",
            "text/tab-separated-values",
            "application/zip",
        ],
        "application/vnd.google-apps.presentation" => &[
            "application/vnd.openxmlformats-officedocument.presentationml.presentation",
            "application/pdf",
            "application/vnd.oasis.opendocument.presentation",
            "text/plain",
            "image/jpeg",
            "image/png",
            "image/svg+xml",
        ],
        "application/vnd.google-apps.drawing" => {
            &["application/pdf", "image/jpeg", "image/png", "image/svg+xml"]
        }
        "application/vnd.google-apps.script" => &["application/vnd.google-apps.script+json"],
        _ => &[],
    }
}

/// What a file holds.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Folder,
    /// Binary content (downloadable with `alt=media`).
    Blob(Arc<Blob<Md5Hex>>),
    /// A Google-native file; `export` is what every export format returns (`None`:
    /// not exportable, like a Form).
    Native {
        export: Option<Arc<Blob<Md5Hex>>>,
    },
    /// A shortcut to another file.
    Shortcut {
        target_id: String,
        target_mime: String,
    },
}

/// One file or folder (roots included).
#[derive(Debug, Clone)]
pub(crate) struct File {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) mime_type: String,
    /// `None` only for a root (My Drive's or a shared drive's).
    pub(crate) parent: Option<String>,
    /// The shared drive holding it; `None` in My Drive.
    pub(crate) drive_id: Option<String>,
    pub(crate) explicitly_trashed: bool,
    /// Per-file, increasing on every change of the file (served as a string).
    pub(crate) version: u64,
    pub(crate) modified: SystemTime,
    /// When each content revision was made, oldest first (`revisions.list`; revision ids are
    /// their 1-based positions). Metadata changes make none.
    pub(crate) revisions: Vec<SystemTime>,
    pub(crate) body: Body,
    pub(crate) can_download: bool,
}

impl File {
    pub(crate) fn is_folder(&self) -> bool {
        matches!(self.body, Body::Folder)
    }

    pub(crate) fn blob(&self) -> Option<&Arc<Blob<Md5Hex>>> {
        match &self.body {
            Body::Blob(b) => Some(b),
            _ => None,
        }
    }
}

/// A shared drive.
#[derive(Debug, Clone)]
pub(crate) struct SharedDrive {
    pub(crate) id: String,
    pub(crate) name: String,
}

/// One entry of the change log.
#[derive(Debug, Clone)]
pub(crate) struct Change {
    pub(crate) seq: u64,
    pub(crate) file_id: String,
    /// The shared drive the file was in when it changed (`None`: My Drive).
    pub(crate) drive_id: Option<String>,
    pub(crate) time: SystemTime,
}

/// Why a mutation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ModelError {
    NotFound(String),
    NotAFolder(String),
    NotAFile(String),
    Conflict(String),
}

/// One account.
#[derive(Debug)]
pub(crate) struct Account {
    /// Also the `permissionId` that `about.user` reports: the identity the connector keeps.
    pub(crate) id: String,
    pub(crate) root_id: String,
    pub(crate) files: BTreeMap<String, File>,
    pub(crate) drives: Vec<SharedDrive>,
    pub(crate) changes: Vec<Change>,
    /// Whether a rename, move, trash or capability change also moves `modifiedTime` (the
    /// documentation leaves it open; tests run both ways). Off by default.
    pub(crate) metadata_touches_modified: bool,
}

/// A Drive-looking id: 33 url-safe characters starting with `1` (roots: `0A…`).
pub(crate) fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    let tail: String =
        (0..(33 - prefix.len())).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect();
    format!("{prefix}{tail}")
}

impl Account {
    pub(crate) fn new(id: String, now: SystemTime) -> Self {
        let root_id = new_id("0A");
        let mut files = BTreeMap::new();
        files.insert(
            root_id.clone(),
            File {
                id: root_id.clone(),
                name: "My Drive".into(),
                mime_type: FOLDER_MIME.into(),
                parent: None,
                drive_id: None,
                explicitly_trashed: false,
                version: 1,
                modified: now,
                revisions: Vec::new(),
                body: Body::Folder,
                can_download: true,
            },
        );
        Account {
            id,
            root_id,
            files,
            drives: Vec::new(),
            changes: Vec::new(),
            metadata_touches_modified: false,
        }
    }

    /// `root` is an alias of My Drive's root id.
    pub(crate) fn resolve<'a>(&'a self, id: &'a str) -> &'a str {
        if id == "root" { &self.root_id } else { id }
    }

    pub(crate) fn file(&self, id: &str) -> Option<&File> {
        self.files.get(self.resolve(id))
    }

    /// True when explicitly trashed or inside a trashed folder.
    pub(crate) fn trashed(&self, f: &File) -> bool {
        let mut cur = Some(f);
        let mut hops = 0;
        while let Some(c) = cur {
            if c.explicitly_trashed {
                return true;
            }
            hops += 1;
            if hops > 10_000 {
                break;
            }
            cur = c.parent.as_deref().and_then(|p| self.files.get(p));
        }
        false
    }

    /// Ids of `id` and everything below it.
    pub(crate) fn subtree(&self, id: &str) -> Vec<String> {
        let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
        for f in self.files.values() {
            if let Some(p) = &f.parent {
                children.entry(p.as_str()).or_default().push(f.id.as_str());
            }
        }
        let mut out = vec![id.to_string()];
        let mut i = 0;
        while i < out.len() {
            if let Some(kids) = children.get(out[i].as_str()) {
                out.extend(kids.iter().map(|k| k.to_string()));
            }
            i += 1;
        }
        out
    }

    fn folder(&self, id: &str) -> Result<&File, ModelError> {
        let f = self.file(id).ok_or_else(|| ModelError::NotFound(id.to_string()))?;
        if !f.is_folder() {
            return Err(ModelError::NotAFolder(id.to_string()));
        }
        Ok(f)
    }

    /// Adds a child of folder `parent`; returns its id.
    pub(crate) fn add(
        &mut self,
        seq: &mut u64,
        parent: &str,
        name: &str,
        mime_type: &str,
        body: Body,
        now: SystemTime,
    ) -> Result<String, ModelError> {
        let p = self.folder(parent)?;
        let (parent, drive_id) = (p.id.clone(), p.drive_id.clone());
        let id = new_id("1");
        self.files.insert(
            id.clone(),
            File {
                id: id.clone(),
                name: name.to_string(),
                mime_type: mime_type.to_string(),
                parent: Some(parent),
                drive_id,
                explicitly_trashed: false,
                version: 1,
                modified: now,
                revisions: vec![now],
                body,
                can_download: true,
            },
        );
        self.log(seq, &id, now);
        Ok(id)
    }

    /// Appends a change for `id` (its current drive).
    pub(crate) fn log(&mut self, seq: &mut u64, id: &str, now: SystemTime) {
        let drive_id = self.files.get(id).and_then(|f| f.drive_id.clone());
        self.changes.push(Change { seq: *seq, file_id: id.to_string(), drive_id, time: now });
        *seq += 1;
    }

    /// Changes a file's content in place (bumps its version and modified time, logs a change).
    pub(crate) fn update(
        &mut self,
        seq: &mut u64,
        id: &str,
        now: SystemTime,
        f: impl FnOnce(&mut File) -> Result<(), ModelError>,
    ) -> Result<String, ModelError> {
        self.change(seq, id, now, true, f)
    }

    /// Changes a file's metadata in place: name, parent, trashed, capabilities. `version`
    /// moves (it moves on any change); `modifiedTime` moves only when the account's
    /// `metadata_touches_modified` is on. Drive's documentation does not settle whether a
    /// rename bumps it (provider-apis.md §1.5 leaves it open), so the emulator does either;
    /// no revision is made either way.
    pub(crate) fn update_meta(
        &mut self,
        seq: &mut u64,
        id: &str,
        now: SystemTime,
        f: impl FnOnce(&mut File) -> Result<(), ModelError>,
    ) -> Result<String, ModelError> {
        self.change(seq, id, now, false, f)
    }

    fn change(
        &mut self,
        seq: &mut u64,
        id: &str,
        now: SystemTime,
        content: bool,
        f: impl FnOnce(&mut File) -> Result<(), ModelError>,
    ) -> Result<String, ModelError> {
        let id = self.resolve(id).to_string();
        let file = self.files.get_mut(&id).ok_or_else(|| ModelError::NotFound(id.clone()))?;
        f(file)?;
        file.version += 1;
        if content {
            file.revisions.push(now);
        }
        if content || self.metadata_touches_modified {
            file.modified = now;
        }
        self.log(seq, &id, now);
        Ok(id)
    }

    /// Moves (and/or renames) a file; a folder takes its subtree along (only the
    /// folder itself is logged, unless it changes drive).
    pub(crate) fn move_to(
        &mut self,
        seq: &mut u64,
        id: &str,
        new_parent: Option<&str>,
        new_name: Option<&str>,
        now: SystemTime,
    ) -> Result<String, ModelError> {
        let id = self.resolve(id).to_string();
        let f = self.files.get(&id).ok_or_else(|| ModelError::NotFound(id.clone()))?;
        if f.parent.is_none() {
            return Err(ModelError::Conflict("a root cannot be moved".into()));
        }
        let mut drive_change = None;
        let parent = match new_parent {
            Some(p) => {
                let p = self.folder(p)?;
                if self.subtree(&id).contains(&p.id) {
                    return Err(ModelError::Conflict("cannot move a folder into itself".into()));
                }
                if p.drive_id != f.drive_id {
                    drive_change = Some(p.drive_id.clone());
                }
                Some(p.id.clone())
            }
            None => None,
        };
        if let Some(drive) = drive_change {
            for sub in self.subtree(&id).into_iter().skip(1) {
                if let Some(s) = self.files.get_mut(&sub) {
                    s.drive_id = drive.clone();
                    s.version += 1;
                }
                self.log(seq, &sub, now);
            }
            if let Some(f) = self.files.get_mut(&id) {
                f.drive_id = drive;
            }
        }
        self.update_meta(seq, &id, now, |f| {
            if let Some(p) = parent {
                f.parent = Some(p);
            }
            if let Some(n) = new_name {
                f.name = n.to_string();
            }
            Ok(())
        })
    }

    /// Trashes or restores a file; every file below it changes its `trashed` too and
    /// is logged.
    pub(crate) fn set_trashed(
        &mut self,
        seq: &mut u64,
        id: &str,
        on: bool,
        now: SystemTime,
    ) -> Result<String, ModelError> {
        let id = self.resolve(id).to_string();
        self.update_meta(seq, &id, now, |f| {
            if f.parent.is_none() {
                return Err(ModelError::Conflict("a root cannot be trashed".into()));
            }
            f.explicitly_trashed = on;
            Ok(())
        })?;
        for sub in self.subtree(&id).into_iter().skip(1) {
            if let Some(s) = self.files.get_mut(&sub) {
                s.version += 1;
            }
            self.log(seq, &sub, now);
        }
        Ok(id)
    }

    /// Deletes a file or a folder with its subtree permanently (each one becomes a
    /// `removed` change).
    pub(crate) fn delete(&mut self, seq: &mut u64, id: &str, now: SystemTime) -> Result<(), ModelError> {
        let id = self.resolve(id).to_string();
        let f = self.files.get(&id).ok_or_else(|| ModelError::NotFound(id.clone()))?;
        if f.parent.is_none() {
            return Err(ModelError::Conflict("a root cannot be deleted".into()));
        }
        for sub in self.subtree(&id) {
            self.log(seq, &sub, now);
            self.files.remove(&sub);
        }
        Ok(())
    }

    /// Adds a shared drive (its root folder has the drive's id); returns the id.
    pub(crate) fn add_drive(&mut self, name: &str, now: SystemTime) -> String {
        let id = new_id("0A");
        self.drives.push(SharedDrive { id: id.clone(), name: name.to_string() });
        self.files.insert(
            id.clone(),
            File {
                id: id.clone(),
                name: name.to_string(),
                mime_type: FOLDER_MIME.into(),
                parent: None,
                drive_id: Some(id.clone()),
                explicitly_trashed: false,
                version: 1,
                modified: now,
                revisions: Vec::new(),
                body: Body::Folder,
                can_download: true,
            },
        );
        id
    }
}
