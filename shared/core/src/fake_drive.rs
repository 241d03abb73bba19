//! A test connector with a **drive-wide** change feed and no paths, in memory: the shape of
//! Google Drive's `changes.list` and Graph's root delta, without HTTP. It lets the engine's
//! scope-by-ancestry logic be tested before (and besides) the real Drive and Graph connectors:
//! changes anywhere in the account are reported, items carry parent ids only, a folder moved
//! in is reported alone (its descendants are not), and there is no recursive listing.
//!
//! Mutations go through [`FakeDrive`]'s methods; every one appends to the change log, which
//! `list_changes` serves from a numeric cursor, `page_size` entries at a time, each entry the
//! item's *current* state (or a removal), as Drive does. Counters record provider calls.
//!
//! Faults for the engine's failure tests: listings failing a number of times, a file whose
//! downloads always fail, a refused token refresh, and large synthetic files whose download is
//! throttled on the test's virtual clock (each chunk advances it by its transfer time).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;

use crate::domain::{FolderLocator, ItemKind, ProviderKind, TokenSet};
use crate::ports::provider::AuthorizeRequest;
use crate::ports::*;
use crate::secret::Secret;

#[derive(Debug, Clone)]
struct Node {
    parent: Option<String>,
    name: String,
    folder: bool,
    content: Vec<u8>,
    version: u64,
    /// A synthetic file of this many bytes (never held in memory): a 256 KiB block of the
    /// seed's pattern, repeated (seed 0: zeros).
    synthetic: Option<(u64, u8)>,
}

/// Injected faults (see the module docs).
#[derive(Default)]
struct Faults {
    listing: std::collections::VecDeque<ProviderError>,
    downloads: BTreeMap<String, ProviderError>,
    refresh: Option<ProviderError>,
    throttle: Option<(Arc<crate::memory::ManualClock>, u64)>,
}

#[derive(Debug, Default)]
struct State {
    nodes: BTreeMap<String, Node>,
    /// The change log: item ids in order of change.
    log: Vec<String>,
    /// Cursors below this position answer `CursorReset`.
    oldest_valid: usize,
    next_id: u64,
}

/// Provider calls made, by kind.
#[derive(Debug, Default)]
pub struct Calls {
    pub item: AtomicU64,
    pub children: AtomicU64,
    pub changes: AtomicU64,
    pub download: AtomicU64,
    /// Bytes of file content served by downloads.
    pub bytes_served: AtomicU64,
}

#[derive(Debug, Clone)]
pub struct FakeDrive {
    state: Arc<Mutex<State>>,
    calls: Arc<Calls>,
    page_size: usize,
    faults: Arc<Mutex<Faults>>,
}

impl std::fmt::Debug for Faults {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faults").field("listing", &self.listing).field("downloads", &self.downloads).finish()
    }
}

/// The id of the drive's root folder (the account's top, never connected in tests).
pub const DRIVE_ROOT: &str = "root";

impl FakeDrive {
    pub fn new(page_size: usize) -> Self {
        let mut st = State::default();
        st.nodes.insert(
            DRIVE_ROOT.into(),
            Node {
                parent: None,
                name: "My Drive".into(),
                folder: true,
                content: Vec::new(),
                version: 1,
                synthetic: None,
            },
        );
        Self {
            state: Arc::new(Mutex::new(st)),
            calls: Arc::new(Calls::default()),
            page_size: page_size.max(1),
            faults: Arc::default(),
        }
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next `times` listing requests (`list_changes`, `list_children`) answer `error`.
    pub fn fail_listing(&self, error: ProviderError, times: usize) {
        self.faults().listing.extend(std::iter::repeat_n(error, times));
    }

    /// Every download of `id` answers `error` (`None`: serves it again).
    pub fn fail_download(&self, id: &str, error: Option<ProviderError>) {
        match error {
            Some(e) => self.faults().downloads.insert(id.to_owned(), e),
            None => self.faults().downloads.remove(id),
        };
    }

    /// Every token refresh answers `error` (`None`: refreshes again).
    pub fn fail_refresh(&self, error: Option<ProviderError>) {
        self.faults().refresh = error;
    }

    /// Downloads stream at `bytes_per_sec` on `clock`: each chunk advances it by its time.
    pub fn throttle(&self, clock: Arc<crate::memory::ManualClock>, bytes_per_sec: u64) {
        self.faults().throttle = Some((clock, bytes_per_sec.max(1)));
    }

    /// A file of `size` zero bytes, streamed without ever being held in memory.
    pub fn add_large_file(&self, parent: &str, name: &str, size: u64) -> String {
        let id = self.add(parent, name, false, b"");
        self.lock().nodes.get_mut(&id).expect("just added").synthetic = Some((size, 0));
        id
    }

    /// A new version of a large file: the same size, the content of pattern `seed` (not 0).
    pub fn rewrite_large_file(&self, id: &str, seed: u8) {
        let mut st = self.lock();
        let n = st.nodes.get_mut(id).expect("a large file");
        let size = n.synthetic.expect("a large file").0;
        n.synthetic = Some((size, seed));
        n.version += 1;
    }

    /// SHA-256 (hex) of a large file's content of `size` bytes and pattern `seed`.
    pub fn large_sha256(size: u64, seed: u8) -> String {
        use sha2::{Digest, Sha256};
        let block = synthetic_block(seed);
        let mut h = Sha256::new();
        let mut left = size;
        while left > 0 {
            let n = left.min(block.len() as u64);
            h.update(&block[..n as usize]);
            left -= n;
        }
        hex::encode(h.finalize())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn calls(&self) -> &Calls {
        &self.calls
    }

    fn add(&self, parent: &str, name: &str, folder: bool, content: &[u8]) -> String {
        let mut st = self.lock();
        st.next_id += 1;
        let id = format!("f{:05}", st.next_id);
        st.nodes.insert(
            id.clone(),
            Node {
                parent: Some(parent.into()),
                name: name.into(),
                folder,
                content: content.to_vec(),
                version: 1,
                synthetic: None,
            },
        );
        st.log.push(id.clone());
        id
    }

    pub fn add_folder(&self, parent: &str, name: &str) -> String {
        self.add(parent, name, true, b"")
    }

    pub fn add_file(&self, parent: &str, name: &str, content: &[u8]) -> String {
        self.add(parent, name, false, content)
    }

    fn change(&self, id: &str, f: impl FnOnce(&mut Node)) {
        let mut st = self.lock();
        let Some(n) = st.nodes.get_mut(id) else { panic!("fake drive: no item {id}") };
        f(n);
        n.version += 1;
        st.log.push(id.to_owned());
    }

    pub fn modify(&self, id: &str, content: &[u8]) {
        self.change(id, |n| n.content = content.to_vec());
    }

    pub fn rename(&self, id: &str, name: &str) {
        self.change(id, |n| n.name = name.into());
    }

    /// Moves an item under another parent. Like Drive, only the moved item is reported.
    pub fn move_to(&self, id: &str, parent: &str) {
        self.change(id, |n| n.parent = Some(parent.into()));
    }

    /// Removes an item and its subtree; only the item itself is reported (`removed`).
    pub fn delete(&self, id: &str) {
        let mut st = self.lock();
        let mut gone = vec![id.to_owned()];
        let mut i = 0;
        while i < gone.len() {
            let cur = gone[i].clone();
            gone.extend(
                st.nodes.iter().filter(|(_, n)| n.parent.as_deref() == Some(&cur)).map(|(k, _)| k.clone()),
            );
            i += 1;
        }
        for g in &gone {
            st.nodes.remove(g);
        }
        st.log.push(id.to_owned());
    }

    /// Every cursor issued so far becomes invalid (`CursorReset`).
    pub fn reset_cursors(&self) {
        let mut st = self.lock();
        st.oldest_valid = st.log.len();
    }

    pub fn parent_of(&self, id: &str) -> Option<String> {
        self.lock().nodes.get(id).and_then(|n| n.parent.clone())
    }

    /// Every file under `folder` (recursively): id → (name, content).
    pub fn files_under(&self, folder: &str) -> BTreeMap<String, (String, Vec<u8>)> {
        let st = self.lock();
        st.nodes
            .iter()
            .filter(|(id, n)| !n.folder && Self::under(&st, id, folder))
            .map(|(id, n)| (id.clone(), (n.name.clone(), n.content.clone())))
            .collect()
    }

    /// Every folder under `folder` (recursively, not itself).
    pub fn folders_under(&self, folder: &str) -> Vec<String> {
        let st = self.lock();
        st.nodes
            .iter()
            .filter(|(id, n)| n.folder && *id != folder && Self::under(&st, id, folder))
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn under(st: &State, id: &str, folder: &str) -> bool {
        let mut cur = st.nodes.get(id).and_then(|n| n.parent.clone());
        let mut depth = 0;
        while let Some(p) = cur {
            if p == folder {
                return true;
            }
            depth += 1;
            if depth > 1000 {
                return false;
            }
            cur = st.nodes.get(&p).and_then(|n| n.parent.clone());
        }
        false
    }

    fn remote(id: &str, n: &Node) -> RemoteItem {
        RemoteItem {
            id: id.to_owned(),
            drive_id: None,
            parent_ids: n.parent.iter().cloned().collect(),
            name: n.name.clone(),
            path: None,
            path_lower: None,
            kind: if n.folder { ItemKind::Folder } else { ItemKind::File },
            mime_type: (!n.folder).then(|| "application/octet-stream".to_owned()),
            revision: Some(n.version.to_string()),
            content_hash: (!n.folder).then(|| match n.synthetic {
                Some((size, seed)) => format!("pattern-{seed}-{size}"),
                None => sha256_hex(&n.content),
            }),
            size: (!n.folder).then_some(n.synthetic.map_or(n.content.len() as u64, |(size, _)| size)),
            modified_at: None,
        }
    }
}

const SYNTHETIC_BLOCK: usize = 256 * 1024;

/// The block a synthetic file of pattern `seed` repeats: two seeds' blocks differ, so an object
/// mixing two versions' bytes does not hash as either.
fn synthetic_block(seed: u8) -> Bytes {
    if seed == 0 {
        static ZEROS: [u8; SYNTHETIC_BLOCK] = [0; SYNTHETIC_BLOCK];
        return Bytes::from_static(&ZEROS);
    }
    let mut x = u32::from(seed).wrapping_mul(0x9E37_79B9) | 1;
    let block: Vec<u8> = (0..SYNTHETIC_BLOCK)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    Bytes::from(block)
}

fn sha256_hex(b: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(b))
}

#[async_trait]
impl Provider for FakeDrive {
    fn kind(&self) -> ProviderKind {
        ProviderKind::GoogleDrive
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            feed_scope: FeedScope::Drive,
            recursive_listing: false,
            listing_has_paths: false,
            deletions_by_path: false,
            unique_paths: false,
            hash: HashAlgorithm::Sha256,
        }
    }

    fn accepts_id(&self, id: &str) -> bool {
        !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric())
    }

    fn authorize_url(&self, req: &AuthorizeRequest) -> Result<String, ProviderError> {
        Ok(format!("https://fake-drive.invalid/auth?redirect_uri={}", req.redirect_uri))
    }

    async fn exchange_code(&self, _: &Secret, _: &Secret, _: &str) -> Result<TokenSet, ProviderError> {
        Ok(TokenSet {
            access_token: Secret::new("fake-access"),
            refresh_token: Some(Secret::new("fake-refresh")),
            expires_at: None,
        })
    }

    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, ProviderError> {
        if let Some(e) = self.faults().refresh.clone() {
            return Err(e);
        }
        let mut fresh = tokens.clone();
        // Long-lived, so a test that expired the token to force a refresh moves on.
        fresh.expires_at = None;
        Ok(fresh)
    }

    async fn revoke(&self, _: &TokenSet) -> Result<(), ProviderError> {
        Ok(())
    }

    async fn account(&self, _: &Secret) -> Result<AccountInfo, ProviderError> {
        Ok(AccountInfo { account_id: "fake-account".into(), display_name: "Fake Drive".into(), email: None })
    }

    async fn browse_folders(
        &self,
        _: &Secret,
        parent: Option<&FolderLocator>,
        _: Option<&str>,
    ) -> Result<FolderPage, ProviderError> {
        let st = self.lock();
        let parent = parent.map_or(DRIVE_ROOT, |p| p.folder_id.as_str());
        let folders = st
            .nodes
            .iter()
            .filter(|(_, n)| n.folder && n.parent.as_deref() == Some(parent))
            .map(|(id, n)| FolderEntry {
                locator: FolderLocator { folder_id: id.clone(), drive_id: None },
                name: n.name.clone(),
                path: None,
                kind: EntryKind::Folder,
                selectable: true,
            })
            .collect();
        Ok(FolderPage { folders, next_page: None })
    }

    async fn folder(&self, access: &Secret, folder: &FolderLocator) -> Result<FolderEntry, ProviderError> {
        let it = self.item(access, folder).await?;
        Ok(FolderEntry {
            locator: it.locator(),
            name: it.name,
            path: None,
            kind: EntryKind::Folder,
            selectable: true,
        })
    }

    async fn item(&self, _: &Secret, locator: &FolderLocator) -> Result<RemoteItem, ProviderError> {
        self.calls.item.fetch_add(1, Ordering::Relaxed);
        let st = self.lock();
        st.nodes
            .get(&locator.folder_id)
            .map(|n| Self::remote(&locator.folder_id, n))
            .ok_or(ProviderError::NotFound)
    }

    async fn start_cursor(&self, _: &Secret, _: &FolderLocator) -> Result<String, ProviderError> {
        Ok(self.lock().log.len().to_string())
    }

    async fn list_children(
        &self,
        _: &Secret,
        parent: &FolderLocator,
        page: Option<&str>,
    ) -> Result<ListPage, ProviderError> {
        self.calls.children.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = self.faults().listing.pop_front() {
            return Err(e);
        }
        let st = self.lock();
        if !st.nodes.contains_key(&parent.folder_id) {
            return Err(ProviderError::NotFound);
        }
        let from: usize =
            page.map_or(Ok(0), str::parse).map_err(|_| ProviderError::Permanent("bad page".into()))?;
        let kids: Vec<Change> = st
            .nodes
            .iter()
            .filter(|(_, n)| n.parent.as_deref() == Some(parent.folder_id.as_str()))
            .skip(from)
            .take(self.page_size + 1)
            .map(|(id, n)| Change::Upsert(Self::remote(id, n)))
            .collect();
        let has_more = kids.len() > self.page_size;
        let changes: Vec<Change> = kids.into_iter().take(self.page_size).collect();
        Ok(ListPage { cursor: (from + changes.len()).to_string(), changes, has_more })
    }

    async fn list_changes(
        &self,
        _: &Secret,
        _: &FolderLocator,
        cursor: &str,
    ) -> Result<ListPage, ProviderError> {
        self.calls.changes.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = self.faults().listing.pop_front() {
            return Err(e);
        }
        let st = self.lock();
        let from: usize = cursor.parse().map_err(|_| ProviderError::CursorReset)?;
        if from < st.oldest_valid || from > st.log.len() {
            return Err(ProviderError::CursorReset);
        }
        let to = (from + self.page_size).min(st.log.len());
        let changes = st.log[from..to]
            .iter()
            .map(|id| match st.nodes.get(id) {
                Some(n) => Change::Upsert(Self::remote(id, n)),
                None => Change::Deleted { id: Some(id.clone()), path_lower: None },
            })
            .collect();
        Ok(ListPage { changes, cursor: to.to_string(), has_more: to < st.log.len() })
    }

    async fn download(&self, _: &Secret, req: &DownloadRequest) -> Result<Download, ProviderError> {
        self.calls.download.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = self.faults().downloads.get(&req.item.id).cloned() {
            return Err(e);
        }
        let throttle = self.faults().throttle.clone();
        let st = self.lock();
        let n = st.nodes.get(&req.item.id).filter(|n| !n.folder).ok_or(ProviderError::NotFound)?;
        let item = Self::remote(&req.item.id, n);
        if let Some((size, seed)) = n.synthetic {
            // Chunks end on block boundaries, so a chunk is a slice of the block.
            let block = synthetic_block(seed);
            let calls = self.calls.clone();
            let stream = futures::stream::unfold(req.offset.min(size), move |at| {
                let (throttle, block, calls) = (throttle.clone(), block.clone(), calls.clone());
                async move {
                    if at == size {
                        return None;
                    }
                    let within = (at % SYNTHETIC_BLOCK as u64) as usize;
                    let n = (size - at).min((SYNTHETIC_BLOCK - within) as u64);
                    if let Some((clock, rate)) = throttle {
                        clock.advance(std::time::Duration::from_secs_f64(n as f64 / rate as f64));
                    }
                    calls.bytes_served.fetch_add(n, Ordering::Relaxed);
                    Some((Ok(block.slice(within..within + n as usize)), at + n))
                }
            })
            .boxed();
            return Ok(Download {
                item,
                content_type: Some("application/octet-stream".into()),
                file_name: None,
                stream,
                warning: Default::default(),
                marks: Default::default(),
            });
        }
        let from = usize::try_from(req.offset).unwrap_or(usize::MAX).min(n.content.len());
        let body = Bytes::copy_from_slice(&n.content[from..]);
        let stream = futures::stream::iter([Ok(body)]).boxed();
        Ok(Download {
            item,
            content_type: Some("application/octet-stream".into()),
            file_name: None,
            stream,
            warning: Default::default(),
            marks: Default::default(),
        })
    }
}
