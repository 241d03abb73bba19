//! The emulated Dropbox: accounts, each with a file tree and a change log.
//!
//! Paths are case-insensitive like Dropbox: every entry keeps `path_display` (the case
//! it was created with; parents keep their existing case) and `path_lower` (the key).
//! Entries live in `by_path`, a `BTreeMap` ordered by `path_lower`, so a prefix range
//! yields a subtree with every parent before its children.
//!
//! ## Change log
//! Every mutation appends records; a record's sequence number is its index + 1 and a
//! cursor stores how many records it has consumed. Records name a *path*, not an id:
//! - `Upsert` — something was created or changed at this path (add, modify, and the
//!   new path of every entry of a moved subtree);
//! - `Delete` — the entry at this path went away (delete, and the old path of a move).
//!   A deleted or moved folder gets ONE record for its own path, none per child.
//!
//! `list_folder/continue` ([`Tree::changes`]) replays records in scope and reports the
//! **current** state of each touched path, once per path, ordered by the path's last
//! record: the live entry if something is there now, else a `deleted` entry (skipped
//! when a later deletion of an ancestor already covers it). A folder that was deleted
//! and re-created at the same path is reported as `deleted` then `folder`, so a client
//! drops the stale children. Case-only renames append no record (spec: "Case-only
//! renames are not reported by continue").

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::time::SystemTime;

use rand::Rng;

use super::hash::DropboxContentHasher;
use super::wire::{FileMetadata, FolderMetadata, Metadata};
use super::{AccountId, EntryInfo};
use crate::content::{Blob, Content};
use crate::time::format_timestamp;

/// A file's content with its cached SHA-256 and `content_hash`.
pub(crate) type DropboxBlob = Blob<DropboxContentHasher>;

/// Errors of tree operations; mapped to Dropbox error shapes by the route handlers and
/// to [`super::ControlError`] by the control API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ModelError {
    /// Nothing at that path / id (`path/not_found`).
    NotFound,
    /// Expected a folder (`path/not_folder`).
    NotFolder,
    /// Expected a file (`path/not_file`).
    NotFile,
    /// Something is in the way (`path/conflict`), with a detail.
    Conflict(String),
    /// The path is syntactically wrong (`path/malformed_path`), with a detail.
    Malformed(String),
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelError::NotFound => f.write_str("not_found"),
            ModelError::NotFolder => f.write_str("not_folder"),
            ModelError::NotFile => f.write_str("not_file"),
            ModelError::Conflict(d) => write!(f, "conflict: {d}"),
            ModelError::Malformed(d) => write!(f, "malformed_path: {d}"),
        }
    }
}

/// One emulated user account's Dropbox data (its name and email belong to the OAuth
/// server's login accounts).
#[derive(Debug)]
pub(crate) struct Account {
    pub(crate) id: AccountId,
    /// Legacy numeric user id returned as `uid` by the token endpoint.
    pub(crate) uid: String,
    /// Root == home namespace (a personal, non-team account).
    pub(crate) namespace_id: String,
    pub(crate) tree: Tree,
}

/// What a path or id designates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    Root,
    Node(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) path_display: String,
    pub(crate) path_lower: String,
    pub(crate) kind: NodeKind,
}

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    Folder,
    File(FileData),
}

#[derive(Debug, Clone)]
pub(crate) struct FileData {
    pub(crate) rev: String,
    pub(crate) blob: Arc<DropboxBlob>,
    pub(crate) server_modified: SystemTime,
    pub(crate) client_modified: SystemTime,
}

impl Node {
    pub(crate) fn is_folder(&self) -> bool {
        matches!(self.kind, NodeKind::Folder)
    }

    pub(crate) fn file(&self) -> Option<&FileData> {
        match &self.kind {
            NodeKind::File(f) => Some(f),
            NodeKind::Folder => None,
        }
    }

    /// Wire metadata. Computes the content hash if needed (blocking); async callers
    /// first await [`Blob::native_hash_async`].
    pub(crate) fn metadata(&self) -> Metadata {
        match &self.kind {
            NodeKind::Folder => Metadata::Folder(FolderMetadata {
                name: self.name.clone(),
                path_lower: self.path_lower.clone(),
                path_display: self.path_display.clone(),
                id: self.id.clone(),
            }),
            NodeKind::File(f) => Metadata::File(FileMetadata {
                name: self.name.clone(),
                path_lower: self.path_lower.clone(),
                path_display: self.path_display.clone(),
                id: self.id.clone(),
                client_modified: format_timestamp(f.client_modified),
                server_modified: format_timestamp(f.server_modified),
                rev: f.rev.clone(),
                size: f.blob.content.len(),
                is_downloadable: true,
                content_hash: f.blob.native_hash().to_string(),
            }),
        }
    }

    /// Control-API view (computes the content hash if needed; blocking).
    pub(crate) fn info(&self) -> EntryInfo {
        let file = self.file();
        EntryInfo {
            id: self.id.clone(),
            name: self.name.clone(),
            path_display: self.path_display.clone(),
            path_lower: self.path_lower.clone(),
            is_folder: file.is_none(),
            rev: file.map(|f| f.rev.clone()),
            size: file.map(|f| f.blob.content.len()),
            content_hash: file.map(|f| f.blob.native_hash().to_string()),
        }
    }
}

/// A listing or change entry, snapshotted so it can be serialised outside the lock.
#[derive(Debug, Clone)]
pub(crate) enum Entry {
    Live(Node),
    Deleted { path_lower: String, path_display: String },
}

impl Entry {
    pub(crate) fn blob(&self) -> Option<&Arc<DropboxBlob>> {
        match self {
            Entry::Live(n) => n.file().map(|f| &f.blob),
            Entry::Deleted { .. } => None,
        }
    }

    pub(crate) fn metadata(&self) -> Metadata {
        match self {
            Entry::Live(n) => n.metadata(),
            Entry::Deleted { path_lower, path_display } => Metadata::deleted(path_lower, path_display),
        }
    }
}

#[derive(Debug, Clone)]
enum Change {
    Upsert { path_lower: String, path_display: String },
    Delete { path_lower: String, path_display: String },
}

impl Change {
    fn path_lower(&self) -> &str {
        match self {
            Change::Upsert { path_lower, .. } | Change::Delete { path_lower, .. } => path_lower,
        }
    }
}

/// The part of the tree a cursor follows.
#[derive(Debug, Clone)]
pub(crate) struct Scope {
    /// Current `path_lower` of the listed folder (`""` for the root).
    pub(crate) folder_lower: String,
    pub(crate) recursive: bool,
}

impl Scope {
    /// The listed folder's own entry is part of a recursive listing of a non-root folder.
    fn includes_self(&self) -> bool {
        self.recursive && !self.folder_lower.is_empty()
    }

    fn contains(&self, p: &str) -> bool {
        if p == self.folder_lower {
            return self.includes_self();
        }
        match p.strip_prefix(self.folder_lower.as_str()).and_then(|r| r.strip_prefix('/')) {
            Some(rest) => self.recursive || !rest.contains('/'),
            None => false,
        }
    }

    fn prefix(&self) -> String {
        format!("{}/", self.folder_lower)
    }

    /// Exclusive upper bound of the subtree range (`'0'` sorts right after `'/'`).
    fn end(&self) -> String {
        format!("{}0", self.folder_lower)
    }
}

/// A page of an initial listing.
#[derive(Debug)]
pub(crate) struct ListPage {
    pub(crate) entries: Vec<Entry>,
    /// Position after the last entry, relative to the folder (`""` = the folder's own
    /// entry), or `None` when the listing is complete.
    pub(crate) next: Option<String>,
}

/// A page of changes.
#[derive(Debug)]
pub(crate) struct ChangePage {
    pub(crate) entries: Vec<Entry>,
    /// Sequence consumed so far (store in the next cursor).
    pub(crate) seq: u64,
    pub(crate) has_more: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Tree {
    nodes: HashMap<String, Node>,
    by_path: BTreeMap<String, String>,
    /// Deleted paths with nothing there now (for `include_deleted`): lower → display.
    tombstones: BTreeMap<String, String>,
    log: Vec<Change>,
    rev_counter: u64,
}

/// Splits `/a/b` into components; `""` and `"/"` are the root.
pub(crate) fn split_path(path: &str) -> Result<Vec<&str>, ModelError> {
    if path.is_empty() || path == "/" {
        return Ok(Vec::new());
    }
    let rest = path
        .strip_prefix('/')
        .ok_or_else(|| ModelError::Malformed(format!("path must start with '/': {path:?}")))?;
    let parts: Vec<&str> = rest.split('/').collect();
    for p in &parts {
        if p.is_empty() {
            return Err(ModelError::Malformed(format!("empty path component in {path:?}")));
        }
        if *p == "." || *p == ".." {
            return Err(ModelError::Malformed(format!("'.' and '..' are not allowed: {path:?}")));
        }
    }
    Ok(parts)
}

/// Case folding used for `path_lower`.
pub(crate) fn lower(s: &str) -> String {
    s.to_lowercase()
}

fn random_id() -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut rng = rand::rng();
    let s: String = (0..22).map(|_| ALPHABET[rng.random_range(0..64)] as char).collect();
    format!("id:{s}")
}

/// `(path_lower, path_display)` of an ancestor chain: `"/a/b/c"` → `"/a"`, `"/a/b"`.
fn ancestors(p: &str) -> impl Iterator<Item = &str> {
    p.match_indices('/').filter(|(i, _)| *i > 0).map(move |(i, _)| &p[..i])
}

impl Tree {
    /// Number of change records so far (the sequence a new cursor starts at).
    pub(crate) fn seq(&self) -> u64 {
        self.log.len() as u64
    }

    pub(crate) fn node(&self, id: &str) -> Option<&Node> {
        self.nodes.get(id)
    }

    pub(crate) fn node_at(&self, path_lower: &str) -> Option<&Node> {
        self.by_path.get(path_lower).and_then(|id| self.nodes.get(id))
    }

    /// Display path of a deleted path with nothing there now.
    pub(crate) fn tombstone(&self, path_lower: &str) -> Option<&String> {
        self.tombstones.get(path_lower)
    }

    /// `""`/`"/"` → root; `id:...`; `rev:...` (current revisions only); `/path`.
    pub(crate) fn resolve(&self, path_or_id: &str) -> Result<Target, ModelError> {
        if path_or_id.is_empty() || path_or_id == "/" {
            return Ok(Target::Root);
        }
        if path_or_id.starts_with("id:") {
            return self
                .nodes
                .contains_key(path_or_id)
                .then(|| Target::Node(path_or_id.to_string()))
                .ok_or(ModelError::NotFound);
        }
        if let Some(rev) = path_or_id.strip_prefix("rev:") {
            return self
                .nodes
                .values()
                .find(|n| n.file().is_some_and(|f| f.rev == rev))
                .map(|n| Target::Node(n.id.clone()))
                .ok_or(ModelError::NotFound);
        }
        split_path(path_or_id)?;
        self.by_path.get(&lower(path_or_id)).map(|id| Target::Node(id.clone())).ok_or(ModelError::NotFound)
    }

    /// Resolves to a node (the root is not an entry).
    pub(crate) fn resolve_node(&self, path_or_id: &str) -> Result<&Node, ModelError> {
        match self.resolve(path_or_id)? {
            Target::Root => Err(ModelError::NotFound),
            Target::Node(id) => self.nodes.get(&id).ok_or(ModelError::NotFound),
        }
    }

    /// `path_display` of a folder target (`""` for the root), or `NotFolder`.
    pub(crate) fn folder_display(&self, t: &Target) -> Result<String, ModelError> {
        match t {
            Target::Root => Ok(String::new()),
            Target::Node(id) => {
                let n = self.nodes.get(id).ok_or(ModelError::NotFound)?;
                if n.is_folder() { Ok(n.path_display.clone()) } else { Err(ModelError::NotFolder) }
            }
        }
    }

    /// The ref of the folder an entry is in: that folder's id, or `""` for the root.
    pub(crate) fn parent_ref(&self, n: &Node) -> String {
        match n.path_lower.rfind('/') {
            Some(i) if i > 0 => self.by_path.get(&n.path_lower[..i]).cloned().unwrap_or_default(),
            _ => String::new(),
        }
    }

    /// `path_lower` of a folder target (`""` for the root), or `NotFolder`.
    pub(crate) fn folder_lower(&self, t: &Target) -> Result<String, ModelError> {
        match t {
            Target::Root => Ok(String::new()),
            Target::Node(id) => {
                let n = self.nodes.get(id).ok_or(ModelError::NotFound)?;
                if n.is_folder() { Ok(n.path_lower.clone()) } else { Err(ModelError::NotFolder) }
            }
        }
    }

    fn next_rev(&mut self) -> String {
        self.rev_counter += 1;
        // A counter prefix keeps revs unique; ≥ 11 lowercase hex chars.
        format!("{:x}{:08x}", 0x100 + self.rev_counter, rand::rng().random::<u32>())
    }

    fn record_upsert(&mut self, n: &Node) {
        self.log
            .push(Change::Upsert { path_lower: n.path_lower.clone(), path_display: n.path_display.clone() });
    }

    fn insert_node(&mut self, node: Node) {
        self.tombstones.remove(&node.path_lower);
        self.record_upsert(&node);
        self.by_path.insert(node.path_lower.clone(), node.id.clone());
        self.nodes.insert(node.id.clone(), node);
    }

    /// Walks `parts`, creating missing folders; returns `(path_lower, path_display)` of
    /// the last one (`("", "")` for none).
    fn ensure_folders(&mut self, parts: &[&str]) -> Result<(String, String), ModelError> {
        let (mut pl, mut pd) = (String::new(), String::new());
        for part in parts {
            let cl = format!("{pl}/{}", lower(part));
            match self.node_at(&cl) {
                Some(n) if n.is_folder() => {
                    pd = n.path_display.clone();
                }
                Some(n) => {
                    return Err(ModelError::Conflict(format!("{} is a file", n.path_display)));
                }
                None => {
                    pd = format!("{pd}/{part}");
                    self.insert_node(Node {
                        id: random_id(),
                        name: (*part).to_string(),
                        path_display: pd.clone(),
                        path_lower: cl.clone(),
                        kind: NodeKind::Folder,
                    });
                }
            }
            pl = cl;
        }
        Ok((pl, pd))
    }

    /// Creates a folder and its missing parents; an existing folder is returned as is.
    pub(crate) fn add_folder(&mut self, path: &str) -> Result<String, ModelError> {
        let parts = split_path(path)?;
        if parts.is_empty() {
            return Err(ModelError::Malformed("the root folder always exists".into()));
        }
        let (pl, _) = self.ensure_folders(&parts)?;
        self.by_path.get(&pl).cloned().ok_or(ModelError::NotFound)
    }

    /// Creates a file (and missing parents). An existing file at the path is
    /// overwritten in place (same id, new rev), like an upload in `overwrite` mode.
    pub(crate) fn put_file(
        &mut self,
        path: &str,
        content: Content,
        now: SystemTime,
    ) -> Result<String, ModelError> {
        let parts = split_path(path)?;
        let Some((name, parents)) = parts.split_last() else {
            return Err(ModelError::Malformed("a file cannot be the root".into()));
        };
        let (pl, pd) = self.ensure_folders(parents)?;
        let path_lower = format!("{pl}/{}", lower(name));
        if let Some(existing) = self.node_at(&path_lower) {
            if existing.is_folder() {
                return Err(ModelError::Conflict(format!("{} is a folder", existing.path_display)));
            }
            let id = existing.id.clone();
            self.set_content(&id, content, now)?;
            return Ok(id);
        }
        let rev = self.next_rev();
        let id = random_id();
        self.insert_node(Node {
            id: id.clone(),
            name: (*name).to_string(),
            path_display: format!("{pd}/{name}"),
            path_lower,
            kind: NodeKind::File(FileData {
                rev,
                blob: Blob::new(content),
                server_modified: now,
                client_modified: now,
            }),
        });
        Ok(id)
    }

    /// Replaces a file's content: new rev, new `server_modified`/`client_modified`.
    pub(crate) fn set_content(
        &mut self,
        id: &str,
        content: Content,
        now: SystemTime,
    ) -> Result<(), ModelError> {
        let rev = self.next_rev();
        let node = self.nodes.get_mut(id).ok_or(ModelError::NotFound)?;
        let NodeKind::File(f) = &mut node.kind else {
            return Err(ModelError::NotFile);
        };
        f.rev = rev;
        f.blob = Blob::new(content);
        f.server_modified = now;
        f.client_modified = now;
        let snapshot = node.clone();
        self.record_upsert(&snapshot);
        Ok(())
    }

    /// Moves or renames an entry (a folder moves with its subtree; ids are kept).
    /// Missing destination parents are created. Moved files get a new rev
    /// (an unverified assumption: Dropbox revs follow the path). A case-only rename
    /// changes `path_display` but records no change (see module docs).
    pub(crate) fn move_entry(&mut self, id: &str, to: &str, now: SystemTime) -> Result<(), ModelError> {
        let node = self.nodes.get(id).ok_or(ModelError::NotFound)?.clone();
        let to_parts = split_path(to)?;
        let Some((to_name, to_parents)) = to_parts.split_last() else {
            return Err(ModelError::Malformed("cannot move onto the root".into()));
        };
        let to_lower = lower(to);
        let case_only = to_lower == node.path_lower;
        if !case_only {
            if to_lower.starts_with(&format!("{}/", node.path_lower)) {
                return Err(ModelError::Conflict("cannot move a folder into itself".into()));
            }
            if let Some(other) = self.node_at(&to_lower) {
                return Err(ModelError::Conflict(format!("{} already exists", other.path_display)));
            }
        }
        let (_, parent_display) = self.ensure_folders(to_parents)?;
        let new_display = format!("{parent_display}/{to_name}");

        // The subtree: the node itself plus every path under it, parents first.
        let old_lower = node.path_lower.clone();
        let old_display = node.path_display.clone();
        let mut ids = vec![node.id.clone()];
        if node.is_folder() {
            let scope = Scope { folder_lower: old_lower.clone(), recursive: true };
            ids.extend(
                self.by_path
                    .range(scope.prefix()..scope.end())
                    .filter(|(p, _)| p.starts_with(&scope.prefix()))
                    .map(|(_, id)| id.clone()),
            );
        }
        for id in &ids {
            if let Some(n) = self.nodes.get(id) {
                self.by_path.remove(&n.path_lower);
            }
        }
        if !case_only {
            self.log
                .push(Change::Delete { path_lower: old_lower.clone(), path_display: old_display.clone() });
            self.tombstones.insert(old_lower.clone(), old_display.clone());
        }
        for (i, id) in ids.iter().enumerate() {
            let rev = if case_only { None } else { Some(self.next_rev()) };
            let Some(n) = self.nodes.get_mut(id) else {
                continue;
            };
            // Byte offsets are safe: lowercasing is applied per component the same way.
            let suffix_lower = n.path_lower.get(old_lower.len()..).unwrap_or_default().to_string();
            let suffix_display = n.path_display.get(old_display.len()..).unwrap_or_default().to_string();
            n.path_lower = format!("{to_lower}{suffix_lower}");
            n.path_display = format!("{new_display}{suffix_display}");
            if i == 0 {
                n.name = (*to_name).to_string();
            }
            if let (Some(rev), NodeKind::File(f)) = (rev, &mut n.kind) {
                f.rev = rev;
                f.server_modified = now;
            }
            let snapshot = n.clone();
            self.by_path.insert(snapshot.path_lower.clone(), snapshot.id.clone());
            if !case_only {
                self.tombstones.remove(&snapshot.path_lower);
                self.record_upsert(&snapshot);
            }
        }
        Ok(())
    }

    /// Deletes an entry (a folder with its subtree): one `Delete` record for its path.
    pub(crate) fn delete(&mut self, id: &str) -> Result<(), ModelError> {
        let node = self.nodes.get(id).ok_or(ModelError::NotFound)?.clone();
        let scope = Scope { folder_lower: node.path_lower.clone(), recursive: true };
        let under: Vec<String> = self
            .by_path
            .range(scope.prefix()..scope.end())
            .filter(|(p, _)| p.starts_with(&scope.prefix()))
            .map(|(p, _)| p.clone())
            .collect();
        for p in under.iter().chain(std::iter::once(&node.path_lower)) {
            if let Some(id) = self.by_path.remove(p) {
                self.nodes.remove(&id);
            }
        }
        self.log.push(Change::Delete {
            path_lower: node.path_lower.clone(),
            path_display: node.path_display.clone(),
        });
        self.tombstones.insert(node.path_lower, node.path_display);
        Ok(())
    }

    /// All live files under a folder (recursive), in path order.
    pub(crate) fn files_under(&self, folder_lower: &str) -> Vec<&Node> {
        let scope = Scope { folder_lower: folder_lower.to_string(), recursive: true };
        self.by_path
            .range(scope.prefix()..scope.end())
            .filter(|(p, _)| p.starts_with(&scope.prefix()))
            .filter_map(|(_, id)| self.nodes.get(id))
            .filter(|n| !n.is_folder())
            .collect()
    }

    /// One page of an initial listing of `scope`, starting after the relative position
    /// `after` (see [`ListPage::next`]). Parents always precede children.
    pub(crate) fn list_page(
        &self,
        scope: &Scope,
        include_deleted: bool,
        after: Option<&str>,
        limit: usize,
    ) -> ListPage {
        let prefix = scope.prefix();
        let mut entries = Vec::new();
        if after.is_none()
            && scope.includes_self()
            && let Some(n) = self.node_at(&scope.folder_lower)
        {
            entries.push((String::new(), Entry::Live(n.clone())));
        }
        let start = match after {
            None | Some("") => Bound::Included(prefix.clone()),
            Some(rel) => Bound::Excluded(format!("{}{rel}", scope.folder_lower)),
        };
        let range = (start, Bound::Excluded(scope.end()));
        let keep = |p: &String| p.starts_with(&prefix) && scope.contains(p);
        let mut live = self.by_path.range::<String, _>(range.clone()).filter(|(p, _)| keep(p)).peekable();
        // Without include_deleted the tombstone range is empty ([end, end)).
        let dead_range = if include_deleted {
            range
        } else {
            (Bound::Included(scope.end()), Bound::Excluded(scope.end()))
        };
        let mut dead = self.tombstones.range::<String, _>(dead_range).filter(|(p, _)| keep(p)).peekable();
        // Merge the two ordered streams; take one extra to learn whether more remain.
        while entries.len() <= limit {
            let take_live = match (live.peek(), dead.peek()) {
                (Some((lp, _)), Some((dp, _))) => lp < dp,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (p, e) = if take_live {
                let Some((p, id)) = live.next() else { break };
                let Some(n) = self.nodes.get(id) else {
                    continue;
                };
                (p, Entry::Live(n.clone()))
            } else {
                let Some((p, display)) = dead.next() else {
                    break;
                };
                (p, Entry::Deleted { path_lower: p.clone(), path_display: display.clone() })
            };
            let rel = p.get(scope.folder_lower.len()..).unwrap_or_default().to_string();
            entries.push((rel, e));
        }
        let next = if entries.len() > limit {
            entries.truncate(limit);
            entries.last().map(|(rel, _)| rel.clone())
        } else {
            None
        };
        ListPage { entries: entries.into_iter().map(|(_, e)| e).collect(), next }
    }

    /// Changes in `scope` after sequence `since`, covering at most `limit` distinct
    /// paths (approximate, as Dropbox's `limit`). See the module docs for the rules.
    pub(crate) fn changes(&self, scope: &Scope, since: u64, limit: usize) -> ChangePage {
        struct Touch<'a> {
            last: u64,
            /// Display path of the last record.
            display: &'a str,
            /// Display path of the last `Delete` record, if any.
            deleted: Option<&'a str>,
        }
        let mut touched: HashMap<&str, Touch<'_>> = HashMap::new();
        let mut last_delete: HashMap<&str, u64> = HashMap::new();
        let mut i = usize::try_from(since).unwrap_or(usize::MAX).min(self.log.len());
        let mut has_more = false;
        while i < self.log.len() {
            let rec = &self.log[i];
            let p = rec.path_lower();
            let in_scope = scope.contains(p);
            if in_scope && !touched.contains_key(p) && touched.len() >= limit {
                has_more = true;
                break;
            }
            let seq = i as u64 + 1;
            let (display, deleted) = match rec {
                Change::Upsert { path_display, .. } => (path_display.as_str(), false),
                Change::Delete { path_display, .. } => {
                    last_delete.insert(p, seq);
                    (path_display.as_str(), true)
                }
            };
            if in_scope {
                let t = touched.entry(p).or_insert(Touch { last: seq, display, deleted: None });
                t.last = seq;
                t.display = display;
                if deleted {
                    t.deleted = Some(display);
                }
            }
            i += 1;
        }
        let mut order: Vec<(&str, Touch<'_>)> = touched.into_iter().collect();
        order.sort_by_key(|(_, t)| t.last);
        let mut entries = Vec::new();
        for (p, t) in order {
            match self.node_at(p) {
                Some(n) => {
                    if let Some(old_display) = t.deleted.filter(|_| n.is_folder()) {
                        entries.push(Entry::Deleted {
                            path_lower: p.to_string(),
                            path_display: old_display.to_string(),
                        });
                    }
                    entries.push(Entry::Live(n.clone()));
                }
                None => {
                    let covered = ancestors(p).any(|a| last_delete.get(a).is_some_and(|&s| s > t.last));
                    if !covered {
                        entries.push(Entry::Deleted {
                            path_lower: p.to_string(),
                            path_display: t.display.to_string(),
                        });
                    }
                }
            }
        }
        ChangePage { entries, seq: i as u64, has_more }
    }

    /// True if any record in scope follows `since` (for longpoll).
    pub(crate) fn has_changes(&self, scope: &Scope, since: u64) -> bool {
        let start = usize::try_from(since).unwrap_or(usize::MAX).min(self.log.len());
        self.log[start..].iter().any(|r| scope.contains(r.path_lower()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> SystemTime {
        SystemTime::UNIX_EPOCH
    }

    fn describe(entries: &[Entry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| match e {
                Entry::Live(n) if n.is_folder() => format!("folder {}", n.path_display),
                Entry::Live(n) => format!("file {}", n.path_display),
                Entry::Deleted { path_display, .. } => format!("deleted {path_display}"),
            })
            .collect()
    }

    fn root_scope() -> Scope {
        Scope { folder_lower: String::new(), recursive: true }
    }

    #[test]
    fn paths_are_case_insensitive_and_parents_keep_their_case() {
        let mut t = Tree::default();
        t.put_file("/Docs/A.txt", Content::text("a"), t0()).expect("put");
        t.put_file("/docs/b.txt", Content::text("b"), t0()).expect("put");
        let b = t.resolve_node("/DOCS/B.TXT").expect("found");
        assert_eq!(b.path_display, "/Docs/b.txt");
        assert_eq!(b.path_lower, "/docs/b.txt");
        assert!(matches!(t.resolve("/docs/"), Err(ModelError::Malformed(_))));
        assert_eq!(t.resolve("/nope"), Err(ModelError::NotFound));
    }

    #[test]
    fn listing_orders_parents_first_and_pages_by_position() {
        let mut t = Tree::default();
        for p in ["/a/x.txt", "/a b/y.txt", "/a/sub/z.txt", "/a-c.txt"] {
            t.put_file(p, Content::text(p), t0()).expect("put");
        }
        let scope = Scope { folder_lower: "/a".into(), recursive: true };
        let page = t.list_page(&scope, false, None, 10);
        assert_eq!(
            describe(&page.entries),
            ["folder /a", "folder /a/sub", "file /a/sub/z.txt", "file /a/x.txt"]
        );
        assert!(page.next.is_none());
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = t.list_page(&scope, false, after.as_deref(), 1);
            all.extend(describe(&page.entries));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(all, ["folder /a", "folder /a/sub", "file /a/sub/z.txt", "file /a/x.txt"]);
        let flat = Scope { folder_lower: String::new(), recursive: false };
        assert_eq!(
            describe(&t.list_page(&flat, false, None, 10).entries),
            ["folder /a", "folder /a b", "file /a-c.txt"]
        );
    }

    #[test]
    fn changes_collapse_to_current_state() {
        let mut t = Tree::default();
        let id = t.put_file("/f/a.txt", Content::text("1"), t0()).expect("put");
        t.put_file("/f/sub/b.txt", Content::text("2"), t0()).expect("put");
        let since = t.seq();
        t.set_content(&id, Content::text("3"), t0()).expect("modify");
        t.set_content(&id, Content::text("4"), t0()).expect("modify");
        t.move_entry(&id, "/f/renamed.txt", t0()).expect("move");
        let sub = t.resolve_node("/f/sub").expect("sub").id.clone();
        t.delete(&sub).expect("delete");
        let page = t.changes(&root_scope(), since, 100);
        assert_eq!(describe(&page.entries), ["deleted /f/a.txt", "file /f/renamed.txt", "deleted /f/sub"]);
        assert!(!page.has_more);
        assert_eq!(page.seq, t.seq());
    }

    #[test]
    fn deleting_and_recreating_a_folder_reports_deleted_then_folder() {
        let mut t = Tree::default();
        t.put_file("/f/old.txt", Content::text("1"), t0()).expect("put");
        let since = t.seq();
        let f = t.resolve_node("/f").expect("f").id.clone();
        t.delete(&f).expect("delete");
        t.put_file("/F/new.txt", Content::text("2"), t0()).expect("put");
        let page = t.changes(&root_scope(), since, 100);
        assert_eq!(describe(&page.entries), ["deleted /f", "folder /F", "file /F/new.txt"]);
    }

    #[test]
    fn case_only_rename_is_not_reported() {
        let mut t = Tree::default();
        let id = t.put_file("/a.txt", Content::text("1"), t0()).expect("put");
        let since = t.seq();
        t.move_entry(&id, "/A.TXT", t0()).expect("rename");
        assert!(t.changes(&root_scope(), since, 100).entries.is_empty());
        assert_eq!(t.resolve_node("/a.txt").expect("found").path_display, "/A.TXT");
    }

    #[test]
    fn changes_page_by_distinct_paths() {
        let mut t = Tree::default();
        let since = t.seq();
        for i in 0..5 {
            t.put_file(&format!("/x{i}.txt"), Content::text("x"), t0()).expect("put");
        }
        let p1 = t.changes(&root_scope(), since, 2);
        assert_eq!(describe(&p1.entries), ["file /x0.txt", "file /x1.txt"]);
        assert!(p1.has_more);
        let p2 = t.changes(&root_scope(), p1.seq, 2);
        let p3 = t.changes(&root_scope(), p2.seq, 2);
        assert_eq!(describe(&p3.entries), ["file /x4.txt"]);
        assert!(!p3.has_more);
    }

    #[test]
    fn moving_a_folder_into_itself_is_refused() {
        let mut t = Tree::default();
        let id = t.add_folder("/a/b").expect("mkdir");
        let a = t.resolve_node("/a").expect("a").id.clone();
        assert!(matches!(t.move_entry(&a, "/a/b/c", t0()), Err(ModelError::Conflict(_))));
        assert!(t.node(&id).is_some());
    }
}
