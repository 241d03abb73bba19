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
//! ## HTTP control routes
//!
//! All `POST {base}/_control/dropbox/<op>` with a JSON body (`GET .../urls` too); they
//! answer JSON, or 400 `{"error": "..."}`. `account_id` is the `dbid:` string;
//! `content` is `{"text": ".."}`, `{"base64": ".."}` or `{"generated": {"size": N,
//! "seed": S}}`.
//!
//! | op | body | answer |
//! |---|---|---|
//! | `urls` | – | `DropboxUrls` |
//! | `accounts` | `{display_name, email}` | `{"account_id"}` |
//! | `login_account` | `{account_id}` | `{}` |
//! | `auto_approve` | `{enabled}` | `{}` |
//! | `longpoll_max_wait` | `{millis}` | `{}` |
//! | `add_folder` | `{account_id, path}` | `EntryInfo` |
//! | `add_file` | `{account_id, path, content}` | `EntryInfo` |
//! | `modify_file` | `{account_id, path, content}` (`path` may be `id:`) | `EntryInfo` |
//! | `move_entry` | `{account_id, from, to}` | `EntryInfo` |
//! | `delete` | `{account_id, path}` | `{}` |
//! | `seed_tree` | `{account_id, root, files, files_per_folder, size_each}` | `[EntryInfo]` |
//! | `entry` | `{account_id, path}` | `EntryInfo` or `null` |
//! | `list_files` | `{account_id, under}` | `[EntryInfo]` |
//! | `sha256` | `{account_id, id}` | `{"sha256"}` |
//! | `mint_tokens` | `{account_id, client_id}` | `{"access_token","refresh_token"}` |
//! | `expire_access_tokens`, `revoke_all`, `reset_cursors`, `reset_counters`, `clear_faults` | – | `{}` |
//! | `inject` | `{endpoint, fault, times}` | `{}` |
//! | `calls` | `{endpoint}` | `{"count"}` |
//! | `call_log` | – | `[{"endpoint","at_unix_ms","status"}]` |
//! | `canaries` | – | `["..."]` |
//!
//! `endpoint` is the [`Endpoint`] variant name (`"ListFolder"`, `"Download"`, …).
//! `fault` is one of `{"rate_limit":{"retry_after_secs":N}}`, `{"server_error":503}`,
//! `{"truncate":{"after_bytes":N}}`, `"corrupt_same_length"`, `"short_chunked"`,
//! `"invalid_grant"`, `"expired_token"`, `{"latency_ms":N}`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use rand::Rng;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::content::Content;
use super::faults::{CallRecord, Endpoint, Fault};
use super::model::{Account, ModelError, Node, Tree, lower};
use super::oauth::DEFAULT_SCOPE;
use super::{AccountId, DropboxState, DropboxUrls, EntryInfo};
use crate::{SandboxConfig, TimeSource};

/// Why a control operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ControlError {
    /// No account with that id.
    UnknownAccount(String),
    /// Nothing at that path or id.
    NotFound(String),
    /// A folder was required.
    NotAFolder(String),
    /// A file was required.
    NotAFile(String),
    /// Something is in the way (existing entry, file as parent, move into itself…).
    Conflict(String),
    /// Invalid path syntax.
    Malformed(String),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::UnknownAccount(a) => write!(f, "unknown account {a}"),
            ControlError::NotFound(p) => write!(f, "not found: {p}"),
            ControlError::NotAFolder(p) => write!(f, "not a folder: {p}"),
            ControlError::NotAFile(p) => write!(f, "not a file: {p}"),
            ControlError::Conflict(d) => write!(f, "conflict: {d}"),
            ControlError::Malformed(d) => write!(f, "malformed path: {d}"),
        }
    }
}

impl std::error::Error for ControlError {}

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
    pub(crate) fn new(base_url: String, clock: TimeSource, config: &SandboxConfig) -> Self {
        let state =
            DropboxState::new(&base_url, clock, config.access_token_ttl, config.dropbox_clients.clone());
        DropboxControl { state: Arc::new(state) }
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
            display_name: display_name.to_string(),
            email: email.to_string(),
            uid: rng.random_range(100_000_000u64..1_000_000_000).to_string(),
            namespace_id: rng.random_range(1_000_000_000u64..10_000_000_000).to_string(),
            tree: Tree::default(),
        };
        self.state.lock().accounts.push(account);
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
        let mut inner = self.state.lock();
        if inner.account(&acct.0).is_none() {
            return Err(ControlError::UnknownAccount(acct.0.clone()));
        }
        inner.login_account = Some(acct.clone());
        Ok(())
    }

    /// Auto-approve: `GET /oauth2/authorize` redirects with a code at once (no page).
    pub fn set_auto_approve(&self, on: bool) {
        self.state.lock().auto_approve = on;
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
        let per = files_per_folder.max(1);
        let root = root.trim_end_matches('/');
        let digest = Sha256::digest(lower(root).as_bytes());
        let mut base_bytes = [0u8; 8];
        base_bytes.copy_from_slice(&digest[..8]);
        let base = u64::from_le_bytes(base_bytes);
        let now = self.state.now();
        let nodes: Vec<Node> = {
            let mut inner = self.state.lock();
            let a = inner.account_mut(&acct.0).ok_or_else(|| ControlError::UnknownAccount(acct.0.clone()))?;
            let mut out = Vec::with_capacity(files);
            for i in 0..files {
                let path = format!("{root}/d{:04}/f{i:06}.bin", i / per);
                let content = Content::Generated { size: size_each, seed: base.wrapping_add(i as u64) };
                let id = a.tree.put_file(&path, content, now).map_err(|e| from_model(e, &path))?;
                if let Some(n) = a.tree.node(&id) {
                    out.push(n.clone());
                }
            }
            out
        };
        self.state.changed.notify_waiters();
        Ok(nodes.iter().map(Node::info).collect())
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
        Ok(blob.content.sha256_hex())
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
        let expires_at = self.state.now() + self.state.access_token_ttl;
        let mut inner = self.state.lock();
        if inner.account(&acct.0).is_none() {
            return Err(ControlError::UnknownAccount(acct.0.clone()));
        }
        let rt = inner.oauth.new_refresh(client_id, acct, DEFAULT_SCOPE);
        let at = inner.oauth.new_access(acct, DEFAULT_SCOPE, Some(&rt), expires_at);
        Ok((at, rt))
    }

    /// Every access token issued so far now answers 401 `expired_access_token`
    /// (refresh tokens stay valid; new access tokens are fine).
    pub fn expire_access_tokens(&self) {
        self.state.lock().oauth.expire_all_access();
    }

    /// Revokes every access and refresh token issued so far.
    pub fn revoke_all(&self) {
        self.state.lock().oauth.revoke_all();
    }

    /// Every secret issued or seen: access/refresh tokens, codes, registered client
    /// secrets and received PKCE verifiers (in first-seen order).
    pub fn canaries(&self) -> Vec<String> {
        self.state.lock().oauth.canaries()
    }

    // -- cursors, faults, counters ---------------------------------------------

    /// Invalidates every cursor issued so far: they get 409 `reset`.
    pub fn reset_cursors(&self) {
        self.state.lock().epoch += 1;
        self.state.changed.notify_waiters();
    }

    /// The next `times` calls of `endpoint` get `fault` (FIFO after faults already queued).
    pub fn inject(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        self.state.faults().inject(endpoint, fault, times);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.state.faults().clear_faults();
    }

    /// Calls of an endpoint since start or the last [`DropboxControl::reset_counters`].
    pub fn calls(&self, endpoint: Endpoint) -> u64 {
        self.state.faults().calls(endpoint)
    }

    /// Zeroes the counters and clears the call log.
    pub fn reset_counters(&self) {
        self.state.faults().reset_counters();
    }

    /// Every call since start or the last reset, in arrival order.
    pub fn call_log(&self) -> Vec<CallRecord> {
        self.state.faults().call_log()
    }
}

// ---------------------------------------------------------------------------------
// HTTP mirror

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ContentSpec {
    Text(String),
    Base64(String),
    Generated { size: u64, seed: u64 },
}

impl ContentSpec {
    fn into_content(self) -> Result<Content, String> {
        Ok(match self {
            ContentSpec::Text(s) => Content::text(&s),
            ContentSpec::Base64(b) => Content::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|e| format!("content.base64: {e}"))?,
            ),
            ContentSpec::Generated { size, seed } => Content::Generated { size, seed },
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FaultSpec {
    RateLimit { retry_after_secs: u64 },
    ServerError(u16),
    Truncate { after_bytes: u64 },
    CorruptSameLength,
    ShortChunked,
    InvalidGrant,
    ExpiredToken,
    LatencyMs(u64),
}

impl From<FaultSpec> for Fault {
    fn from(f: FaultSpec) -> Fault {
        match f {
            FaultSpec::RateLimit { retry_after_secs } => Fault::RateLimit { retry_after_secs },
            FaultSpec::ServerError(c) => Fault::ServerError(c),
            FaultSpec::Truncate { after_bytes } => Fault::Truncate { after_bytes },
            FaultSpec::CorruptSameLength => Fault::CorruptSameLength,
            FaultSpec::ShortChunked => Fault::ShortChunked,
            FaultSpec::InvalidGrant => Fault::InvalidGrant,
            FaultSpec::ExpiredToken => Fault::ExpiredToken,
            FaultSpec::LatencyMs(ms) => Fault::Latency(Duration::from_millis(ms)),
        }
    }
}

/// Routes under `/_control/dropbox`.
pub(crate) fn router(ctl: DropboxControl) -> Router {
    Router::new()
        .route(
            "/_control/dropbox/urls",
            get(|State(c): State<DropboxControl>| async move { axum::Json(c.urls()) }),
        )
        .route("/_control/dropbox/{op}", post(control_op))
        .with_state(ctl)
}

async fn control_op(State(ctl): State<DropboxControl>, Path(op): Path<String>, body: Bytes) -> Response {
    // Hashing big generated content blocks: keep it off the async workers.
    let result = tokio::task::spawn_blocking(move || dispatch(&ctl, &op, &body)).await;
    match result {
        Ok(Ok(v)) => (StatusCode::OK, axum::Json(v)).into_response(),
        Ok(Err(msg)) => (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": msg }))).into_response(),
        Err(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({ "error": e.to_string() }))).into_response()
        }
    }
}

fn arg<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| format!("bad request body: {e}"))
}

fn to_json<T: serde::Serialize>(v: T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

fn dispatch(ctl: &DropboxControl, op: &str, body: &[u8]) -> Result<Value, String> {
    #[derive(Deserialize)]
    struct Acct {
        account_id: AccountId,
    }
    #[derive(Deserialize)]
    struct AcctPath {
        account_id: AccountId,
        path: String,
    }
    #[derive(Deserialize)]
    struct AcctContent {
        account_id: AccountId,
        path: String,
        content: ContentSpec,
    }
    let err = |e: ControlError| e.to_string();
    let done = Ok(json!({}));
    match op {
        "accounts" => {
            #[derive(Deserialize)]
            struct A {
                display_name: String,
                email: String,
            }
            let a: A = arg(body)?;
            Ok(json!({ "account_id": ctl.create_account(&a.display_name, &a.email) }))
        }
        "login_account" => {
            let a: Acct = arg(body)?;
            ctl.try_set_login_account(&a.account_id).map_err(err)?;
            done
        }
        "auto_approve" => {
            #[derive(Deserialize)]
            struct A {
                enabled: bool,
            }
            ctl.set_auto_approve(arg::<A>(body)?.enabled);
            done
        }
        "longpoll_max_wait" => {
            #[derive(Deserialize)]
            struct A {
                millis: u64,
            }
            ctl.set_longpoll_max_wait(Duration::from_millis(arg::<A>(body)?.millis));
            done
        }
        "add_folder" => {
            let a: AcctPath = arg(body)?;
            to_json(ctl.try_add_folder(&a.account_id, &a.path).map_err(err)?)
        }
        "add_file" => {
            let a: AcctContent = arg(body)?;
            to_json(ctl.try_add_file(&a.account_id, &a.path, a.content.into_content()?).map_err(err)?)
        }
        "modify_file" => {
            let a: AcctContent = arg(body)?;
            to_json(ctl.try_modify_file(&a.account_id, &a.path, a.content.into_content()?).map_err(err)?)
        }
        "move_entry" => {
            #[derive(Deserialize)]
            struct A {
                account_id: AccountId,
                from: String,
                to: String,
            }
            let a: A = arg(body)?;
            to_json(ctl.try_move_entry(&a.account_id, &a.from, &a.to).map_err(err)?)
        }
        "delete" => {
            let a: AcctPath = arg(body)?;
            ctl.try_delete(&a.account_id, &a.path).map_err(err)?;
            done
        }
        "seed_tree" => {
            #[derive(Deserialize)]
            struct A {
                account_id: AccountId,
                root: String,
                files: usize,
                files_per_folder: usize,
                size_each: u64,
            }
            let a: A = arg(body)?;
            to_json(
                ctl.try_seed_tree(&a.account_id, &a.root, a.files, a.files_per_folder, a.size_each)
                    .map_err(err)?,
            )
        }
        "entry" => {
            let a: AcctPath = arg(body)?;
            to_json(ctl.entry(&a.account_id, &a.path))
        }
        "list_files" => {
            #[derive(Deserialize)]
            struct A {
                account_id: AccountId,
                #[serde(default)]
                under: String,
            }
            let a: A = arg(body)?;
            to_json(ctl.list_files(&a.account_id, &a.under))
        }
        "sha256" => {
            #[derive(Deserialize)]
            struct A {
                account_id: AccountId,
                id: String,
            }
            let a: A = arg(body)?;
            Ok(json!({ "sha256": ctl.try_sha256_of(&a.account_id, &a.id).map_err(err)? }))
        }
        "mint_tokens" => {
            #[derive(Deserialize)]
            struct A {
                account_id: AccountId,
                client_id: String,
            }
            let a: A = arg(body)?;
            let (at, rt) = ctl.try_mint_tokens(&a.account_id, &a.client_id).map_err(err)?;
            Ok(json!({ "access_token": at, "refresh_token": rt }))
        }
        "expire_access_tokens" => {
            ctl.expire_access_tokens();
            done
        }
        "revoke_all" => {
            ctl.revoke_all();
            done
        }
        "reset_cursors" => {
            ctl.reset_cursors();
            done
        }
        "reset_counters" => {
            ctl.reset_counters();
            done
        }
        "clear_faults" => {
            ctl.clear_faults();
            done
        }
        "inject" => {
            #[derive(Deserialize)]
            struct A {
                endpoint: Endpoint,
                fault: FaultSpec,
                #[serde(default = "one")]
                times: u32,
            }
            fn one() -> u32 {
                1
            }
            let a: A = arg(body)?;
            ctl.inject(a.endpoint, a.fault.into(), a.times);
            done
        }
        "calls" => {
            #[derive(Deserialize)]
            struct A {
                endpoint: Endpoint,
            }
            Ok(json!({ "count": ctl.calls(arg::<A>(body)?.endpoint) }))
        }
        "call_log" => Ok(Value::Array(
            ctl.call_log()
                .into_iter()
                .map(|r| {
                    let ms = r.at.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
                    json!({ "endpoint": r.endpoint, "at_unix_ms": ms, "status": r.status })
                })
                .collect(),
        )),
        "canaries" => to_json(ctl.canaries()),
        "account" => {
            let a: Acct = arg(body)?;
            let inner = ctl.state.lock();
            let acct =
                inner.account(&a.account_id.0).ok_or_else(|| format!("unknown account {}", a.account_id))?;
            Ok(json!({ "account_id": acct.id, "display_name": acct.display_name, "email": acct.email }))
        }
        other => Err(format!("unknown control operation {other:?}")),
    }
}
