//! Control API of the Dropbox emulator: in-process ([`DropboxControl`]) and over HTTP.
//!
//! The in-process methods panic on misuse (unknown account, a file in the way, …)
//! with a clear message, which is what a test helper should do; every panicking
//! method has a `try_` twin returning [`ControlError`].
//!
//! Methods returning [`EntryInfo`] include the file's `content_hash`; for generated
//! content it is computed (once, then cached) by streaming the bytes, which takes a
//! few seconds per GiB.
//!
//! The HTTP mirror of these methods (`/_control/dropbox/<op>`) is documented in
//! [`http`]; the provider-neutral [`crate::ProviderControl`] implementation is in
//! `neutral`.

pub mod http;
mod neutral;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use sha2::{Digest, Sha256};

use super::model::{Account, ModelError, Node, Tree, lower};
use super::{AccountId, CallRecord, DropboxState, DropboxUrls, Endpoint, EntryInfo};
use crate::content::Content;
use crate::control::ControlError;
use crate::faults::Fault;
use crate::oauth::Principal;
use crate::{SandboxConfig, Service, TimeSource};

pub(crate) use http::router;

fn from_model(e: ModelError, what: &str) -> ControlError {
    match e {
        ModelError::NotFound => ControlError::NotFound(what.to_string()),
        ModelError::NotFolder => ControlError::NotAFolder(what.to_string()),
        ModelError::NotFile => ControlError::NotAFile(what.to_string()),
        ModelError::Conflict(d) => ControlError::Conflict(d),
        ModelError::Malformed(d) => ControlError::Malformed(d),
    }
}

#[track_caller]
fn ok_or_panic<T>(op: &str, r: Result<T, ControlError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("extconn-sandbox dropbox control: {op}: {e}"),
    }
}

fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())] as char).collect()
}

/// Control handle of the Dropbox emulator. Cheap to clone; all clones see one state.
#[derive(Clone)]
pub struct DropboxControl {
    state: Arc<DropboxState>,
}

impl fmt::Debug for DropboxControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropboxControl").field("urls", &self.state.urls).finish()
    }
}

impl DropboxControl {
    /// The emulator for `config`'s Dropbox clients, its URLs under `base_url`.
    pub(crate) fn new(base_url: &str, clock: TimeSource, config: &SandboxConfig) -> Self {
        let clients = config.clients.iter().filter(|c| c.service == Service::Dropbox).cloned().collect();
        let ttl = config.access_token_ttl.unwrap_or(super::DEFAULT_ACCESS_TOKEN_TTL);
        let oauth = super::oauth::server(clients, ttl, Arc::clone(&clock));
        DropboxControl { state: Arc::new(DropboxState::new(base_url, clock, oauth)) }
    }

    pub(crate) fn state(&self) -> Arc<DropboxState> {
        Arc::clone(&self.state)
    }

    /// Base URLs of the emulated hosts.
    pub fn urls(&self) -> DropboxUrls {
        self.state.urls.clone()
    }

    // -- accounts and the authorize page ------------------------------------------

    /// Creates an account with an empty Dropbox; returns its `dbid:` id.
    pub fn create_account(&self, display_name: &str, email: &str) -> AccountId {
        const URLSAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let id = AccountId(format!("dbid:AA{}", random_string(URLSAFE, 33)));
        let mut rng = rand::rng();
        let account = Account {
            id: id.clone(),
            uid: rng.random_range(100_000_000u64..1_000_000_000).to_string(),
            namespace_id: rng.random_range(1_000_000_000u64..10_000_000_000).to_string(),
            tree: Tree::default(),
        };
        self.state.lock().accounts.push(account);
        // Last: the account can log in only once its Dropbox exists.
        self.state.oauth.add_account(Principal {
            id: id.0.clone(),
            display_name: display_name.to_string(),
            email: email.to_string(),
        });
        id
    }

    /// Ids of all accounts, in creation order.
    pub fn accounts(&self) -> Vec<AccountId> {
        self.state.lock().accounts.iter().map(|a| a.id.clone()).collect()
    }

    /// Chooses the account the authorize page logs in as (default: the first one).
    ///
    /// # Panics
    /// On an unknown account.
    #[track_caller]
    pub fn set_login_account(&self, acct: &AccountId) {
        ok_or_panic("set_login_account", self.try_set_login_account(acct));
    }

    /// Fallible [`DropboxControl::set_login_account`].
    pub fn try_set_login_account(&self, acct: &AccountId) -> Result<(), ControlError> {
        if self.state.oauth.set_login(&acct.0) {
            Ok(())
        } else {
            Err(ControlError::UnknownAccount(acct.0.clone()))
        }
    }

    /// Auto-approve: `GET /oauth2/authorize` redirects with a code at once (no page).
    pub fn set_auto_approve(&self, on: bool) {
        self.state.oauth.set_auto_approve(on);
    }

    /// Longest time a longpoll waits before answering `{"changes": false}` (default 1 s).
    pub fn set_longpoll_max_wait(&self, d: Duration) {
        self.state.lock().longpoll_max_wait = d;
    }

    // -- files ------------------------------------------------------------------

    /// Runs a mutation on an account's tree, wakes longpolls, and returns the
    /// (cloned) node with id `Ok(id)`; hashing happens after the lock is released.
    fn mutate(
        &self,
        acct: &AccountId,
        f: impl FnOnce(&mut Tree, std::time::SystemTime) -> Result<String, ControlError>,
    ) -> Result<Node, ControlError> {
        let now = self.state.now();
        let node = {
            let mut inner = self.state.lock();
            let a = inner.account_mut(&acct.0).ok_or_else(|| ControlError::UnknownAccount(acct.0.clone()))?;
            let id = f(&mut a.tree, now)?;
            a.tree.node(&id).cloned().ok_or(ControlError::NotFound(id))?
        };
        self.state.changed.notify_waiters();
        Ok(node)
    }

    fn resolve_id(tree: &Tree, path_or_id: &str) -> Result<String, ControlError> {
        tree.resolve_node(path_or_id).map(|n| n.id.clone()).map_err(|e| from_model(e, path_or_id))
    }

    /// Creates a folder (and missing parents); an existing folder is returned as is.
    ///
    /// # Panics
    /// On an unknown account or a file in the way.
    #[track_caller]
    pub fn add_folder(&self, acct: &AccountId, path: &str) -> EntryInfo {
        ok_or_panic("add_folder", self.try_add_folder(acct, path))
    }

    /// Fallible [`DropboxControl::add_folder`].
    pub fn try_add_folder(&self, acct: &AccountId, path: &str) -> Result<EntryInfo, ControlError> {
        self.mutate(acct, |t, _| t.add_folder(path).map_err(|e| from_model(e, path))).map(|n| n.info())
    }

    /// Creates a file (and missing parent folders). An existing file at that path is
    /// overwritten (same id, new rev), like an upload in `overwrite` mode.
    ///
    /// # Panics
    /// On an unknown account, a folder at the path or a file among the parents.
    #[track_caller]
    pub fn add_file(&self, acct: &AccountId, path: &str, content: Content) -> EntryInfo {
        ok_or_panic("add_file", self.try_add_file(acct, path, content))
    }

    /// Fallible [`DropboxControl::add_file`].
    pub fn try_add_file(
        &self,
        acct: &AccountId,
        path: &str,
        content: Content,
    ) -> Result<EntryInfo, ControlError> {
        self.mutate(acct, |t, now| t.put_file(path, content, now).map_err(|e| from_model(e, path)))
            .map(|n| n.info())
    }

    /// Replaces a file's content (new rev, new `server_modified`).
    ///
    /// # Panics
    /// On an unknown account, a missing entry or a folder.
    #[track_caller]
    pub fn modify_file(&self, acct: &AccountId, path_or_id: &str, content: Content) -> EntryInfo {
        ok_or_panic("modify_file", self.try_modify_file(acct, path_or_id, content))
    }

    /// Fallible [`DropboxControl::modify_file`].
    pub fn try_modify_file(
        &self,
        acct: &AccountId,
        path_or_id: &str,
        content: Content,
    ) -> Result<EntryInfo, ControlError> {
        self.mutate(acct, |t, now| {
            let id = Self::resolve_id(t, path_or_id)?;
            t.set_content(&id, content, now).map_err(|e| from_model(e, path_or_id))?;
            Ok(id)
        })
        .map(|n| n.info())
    }

    /// Renames or moves a file or folder (a folder moves with its subtree, ids are
    /// kept). Missing destination parents are created; the destination must be free
    /// (except for a case-only rename).
    ///
    /// # Panics
    /// On an unknown account, a missing source or an occupied destination.
    #[track_caller]
    pub fn move_entry(&self, acct: &AccountId, from: &str, to: &str) -> EntryInfo {
        ok_or_panic("move_entry", self.try_move_entry(acct, from, to))
    }

    /// Fallible [`DropboxControl::move_entry`].
    pub fn try_move_entry(&self, acct: &AccountId, from: &str, to: &str) -> Result<EntryInfo, ControlError> {
        self.mutate(acct, |t, now| {
            let id = Self::resolve_id(t, from)?;
            t.move_entry(&id, to, now).map_err(|e| from_model(e, to))?;
            Ok(id)
        })
        .map(|n| n.info())
    }

    /// Deletes a file or a folder with its subtree.
    ///
    /// # Panics
    /// On an unknown account or a missing entry.
    #[track_caller]
    pub fn delete(&self, acct: &AccountId, path_or_id: &str) {
        ok_or_panic("delete", self.try_delete(acct, path_or_id));
    }

    /// Fallible [`DropboxControl::delete`].
    pub fn try_delete(&self, acct: &AccountId, path_or_id: &str) -> Result<(), ControlError> {
        {
            let mut inner = self.state.lock();
            let a = inner.account_mut(&acct.0).ok_or_else(|| ControlError::UnknownAccount(acct.0.clone()))?;
            let id = Self::resolve_id(&a.tree, path_or_id)?;
            a.tree.delete(&id).map_err(|e| from_model(e, path_or_id))?;
        }
        self.state.changed.notify_waiters();
        Ok(())
    }

    /// Creates `files` files of `size_each` generated bytes under `root`, spread over
    /// folders `root/dNNNN` of `files_per_folder` files each (`fNNNNNN.bin`). Content
    /// seeds derive from `root` and the file index, so files differ from each other.
    /// Returns the files' infos in creation order.
    ///
    /// # Panics
    /// On an unknown account or a file in the way.
    #[track_caller]
    pub fn seed_tree(
        &self,
        acct: &AccountId,
        root: &str,
        files: usize,
        files_per_folder: usize,
        size_each: u64,
    ) -> Vec<EntryInfo> {
        ok_or_panic("seed_tree", self.try_seed_tree(acct, root, files, files_per_folder, size_each))
    }

    /// Fallible [`DropboxControl::seed_tree`].
    pub fn try_seed_tree(
        &self,
        acct: &AccountId,
        root: &str,
        files: usize,
        files_per_folder: usize,
        size_each: u64,
    ) -> Result<Vec<EntryInfo>, ControlError> {
        let nodes = self.seed_nodes(acct, root, files, files_per_folder, size_each)?;
        Ok(nodes.iter().map(|(n, _)| n.info()).collect())
    }

    /// [`DropboxControl::try_seed_tree`] without computing any hash: the new files with
    /// their parents' refs.
    fn seed_nodes(
        &self,
        acct: &AccountId,
        root: &str,
        files: usize,
        files_per_folder: usize,
        size_each: u64,
    ) -> Result<Vec<(Node, String)>, ControlError> {
        let per = files_per_folder.max(1);
        let root = root.trim_end_matches('/');
        let digest = Sha256::digest(lower(root).as_bytes());
        let mut base_bytes = [0u8; 8];
        base_bytes.copy_from_slice(&digest[..8]);
        let base = u64::from_le_bytes(base_bytes);
        let now = self.state.now();
        let seed = |a: &mut Account| -> Result<Vec<(Node, String)>, ControlError> {
            let mut out = Vec::with_capacity(files);
            for i in 0..files {
                let path = format!("{root}/d{:04}/f{i:06}.bin", i / per);
                let content = Content::Generated { size: size_each, seed: base.wrapping_add(i as u64) };
                let id = a.tree.put_file(&path, content, now).map_err(|e| from_model(e, &path))?;
                if let Some(n) = a.tree.node(&id) {
                    out.push((n.clone(), a.tree.parent_ref(n)));
                }
            }
            Ok(out)
        };
        let seeded = {
            let mut inner = self.state.lock();
            let a = inner.account_mut(&acct.0).ok_or_else(|| ControlError::UnknownAccount(acct.0.clone()))?;
            seed(a)
        };
        // Even a failed seed may have created files: wake longpolls.
        self.state.changed.notify_waiters();
        seeded
    }

    /// The entry at a path or id, if any.
    pub fn entry(&self, acct: &AccountId, path_or_id: &str) -> Option<EntryInfo> {
        let node = {
            let inner = self.state.lock();
            inner.account(&acct.0)?.tree.resolve_node(path_or_id).ok()?.clone()
        };
        Some(node.info())
    }

    /// All live files under a folder path (`""` = everything), recursively, in path order.
    pub fn list_files(&self, acct: &AccountId, under_path: &str) -> Vec<EntryInfo> {
        let nodes: Vec<Node> = {
            let inner = self.state.lock();
            let Some(a) = inner.account(&acct.0) else {
                return Vec::new();
            };
            let folder_lower = lower(under_path.trim_end_matches('/'));
            a.tree.files_under(&folder_lower).into_iter().cloned().collect()
        };
        nodes.iter().map(Node::info).collect()
    }

    /// A file's content (cheap for generated content: it is a recipe, not bytes).
    pub fn content_of(&self, acct: &AccountId, path_or_id: &str) -> Option<Content> {
        let inner = self.state.lock();
        let n = inner.account(&acct.0)?.tree.resolve_node(path_or_id).ok()?;
        n.file().map(|f| f.blob.content.clone())
    }

    /// Lowercase hex SHA-256 of a file's full content, computed by streaming.
    ///
    /// # Panics
    /// On an unknown account, a missing entry or a folder.
    #[track_caller]
    pub fn sha256_of(&self, acct: &AccountId, id: &str) -> String {
        ok_or_panic("sha256_of", self.try_sha256_of(acct, id))
    }

    /// Fallible [`DropboxControl::sha256_of`].
    pub fn try_sha256_of(&self, acct: &AccountId, path_or_id: &str) -> Result<String, ControlError> {
        let blob = {
            let inner = self.state.lock();
            let a = inner.account(&acct.0).ok_or_else(|| ControlError::UnknownAccount(acct.0.clone()))?;
            let n = a.tree.resolve_node(path_or_id).map_err(|e| from_model(e, path_or_id))?;
            let f = n.file().ok_or_else(|| ControlError::NotAFile(path_or_id.to_string()))?;
            Arc::clone(&f.blob)
        };
        Ok(blob.sha256().to_string())
    }

    // -- tokens -------------------------------------------------------------------

    /// Mints an offline grant (access + refresh token, all scopes) for an account and
    /// client without the browser flow. The client id need not be registered, but
    /// refreshing at the token endpoint authenticates it like any other request.
    ///
    /// # Panics
    /// On an unknown account.
    #[track_caller]
    pub fn mint_tokens(&self, acct: &AccountId, client_id: &str) -> (String, String) {
        ok_or_panic("mint_tokens", self.try_mint_tokens(acct, client_id))
    }

    /// Fallible [`DropboxControl::mint_tokens`].
    pub fn try_mint_tokens(
        &self,
        acct: &AccountId,
        client_id: &str,
    ) -> Result<(String, String), ControlError> {
        let t = self
            .state
            .oauth
            .mint(&acct.0, client_id)
            .ok_or_else(|| ControlError::UnknownAccount(acct.0.clone()))?;
        Ok((t.access_token, t.refresh_token))
    }

    /// Every access token issued so far now answers 401 `expired_access_token`
    /// (refresh tokens stay valid; new access tokens are fine).
    pub fn expire_access_tokens(&self) {
        self.state.oauth.expire_all_access();
    }

    /// Revokes every access and refresh token issued so far.
    pub fn revoke_all(&self) {
        self.state.oauth.revoke_all();
    }

    /// Every secret issued or seen: access/refresh tokens, codes, registered client
    /// secrets and received PKCE verifiers (in first-seen order).
    pub fn canaries(&self) -> Vec<String> {
        self.state.oauth.canaries()
    }

    // -- cursors, faults, counters ---------------------------------------------

    /// Invalidates every cursor issued so far: they get 409 `reset`.
    pub fn reset_cursors(&self) {
        self.state.lock().epoch += 1;
        self.state.changed.notify_waiters();
    }

    /// The next `times` calls of `endpoint` get `fault` (FIFO after faults already queued).
    pub fn inject(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        self.state.faults.inject(endpoint, fault, times);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// Calls of an endpoint since start or the last [`DropboxControl::reset_counters`].
    pub fn calls(&self, endpoint: Endpoint) -> u64 {
        self.state.faults.calls(endpoint)
    }

    /// Zeroes the counters and clears the call log.
    pub fn reset_counters(&self) {
        self.state.faults.reset_counters();
    }

    /// Every call since start or the last reset, in arrival order.
    pub fn call_log(&self) -> Vec<CallRecord> {
        self.state.faults.call_log()
    }
}
