//! Dropbox API v2 emulator (provider-apis.md §3).
//!
//! The provider-neutral machinery lives at the crate's top level (OAuth server, fault
//! book, content, control scaffolding, clock); this module holds only what is
//! Dropbox's:
//! - `model`: accounts' case-insensitive trees and their change log;
//! - [`hash`]: the `content_hash` hasher;
//! - `cursor`: opaque `list_folder` cursors;
//! - `oauth`: the OAuth server's Dropbox settings and wire format;
//! - `rpc`: `users/get_current_account`, `files/list_folder[/continue|/get_latest_cursor]`,
//!   `files/get_metadata`, and the notify host's `list_folder/longpoll`;
//! - `download`: the content host's `files/download` with `Range`;
//! - `endpoints`: the emulated endpoints ([`Endpoint`]), their [`crate::Op`] classes and the
//!   wording of injected faults;
//! - `wire`: JSON shapes and error bodies;
//! - [`control`]: the in-process [`DropboxControl`], its HTTP mirror
//!   (`/_control/dropbox/<op>`) and its [`crate::ProviderControl`] implementation.
//!
//! ## Fidelity notes (choices where provider-apis.md is silent or unverified)
//!
//! - A missing `Authorization` header answers 401 `invalid_access_token` (real
//!   Dropbox answers a 400 plain-text "Must provide HTTP header \"Authorization\"").
//! - A recursive listing of a non-root folder starts with the folder's own entry.
//! - `continue` reports the *current* state of each touched path once (not a journal
//!   replay); deletions are reported whatever `include_deleted` says; a deleted folder
//!   is one `deleted` entry; a folder deleted and re-created is `deleted` + `folder`;
//!   a path added and removed between two calls shows up as `deleted`; case-only
//!   renames are not reported (spec).
//! - Moved files get a new `rev` (same id, same `content_hash`) (unverified).
//! - A cursor whose listed folder no longer exists gets 409 `path/not_found`; a cursor
//!   this server never issued (or issued to another user) gets a 400 plain text.
//! - Longpoll waits at most `longpoll_max_wait` (default 1 s) and never sends `backoff`.
//! - OAuth: a code is burnt by its first exchange attempt; `invalid_client` is 401; a
//!   confidential client (non-empty secret) must always send its secret, even with
//!   PKCE; `token_access_type` `online`/`legacy`/absent all give a short-lived token
//!   without refresh token; `force_reapprove` and `include_granted_scopes` are ignored.
//! - Scopes are enforced (401 `missing_scope`) when the authorize request named some.
//! - One personal (non-team) namespace per account; `Dropbox-API-Path-Root` and
//!   `Dropbox-API-Select-User` are ignored; no old revisions (`rev:` resolves current
//!   revisions only); every file is downloadable; `client_modified` equals
//!   `server_modified` at creation.

// Route helpers return a ready-made error `Response` as their `Err`; boxing it would
// only add noise to every handler.
#![allow(clippy::result_large_err)]

pub mod control;
mod cursor;
pub(crate) mod download;
mod endpoints;
pub mod hash;
mod model;
mod oauth;
mod rpc;
mod wire;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use crate::TimeSource;
use crate::faults::Faults;
use crate::oauth::OAuthServer;
use model::Account;

pub use crate::content::Content;
pub use crate::control::ControlError;
pub use crate::faults::Fault;
pub use control::DropboxControl;
pub use endpoints::Endpoint;
pub use hash::{DropboxContentHasher, content_hash};

/// One served call of the Dropbox emulator.
pub type CallRecord = crate::faults::CallRecord<Endpoint>;

/// A Dropbox account id (`dbid:...`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccountId(pub String);

impl AccountId {
    /// The `dbid:...` string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for AccountId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Control-API view of an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryInfo {
    /// `id:` + 22 url-safe chars; stable across renames and moves.
    pub id: String,
    /// Last path component, display case.
    pub name: String,
    /// Path in display case.
    pub path_display: String,
    /// Lowercased path.
    pub path_lower: String,
    /// Folder or file.
    pub is_folder: bool,
    /// Files: current revision (≥ 9 lowercase hex chars).
    pub rev: Option<String>,
    /// Files: size in bytes.
    pub size: Option<u64>,
    /// Files: Dropbox content hash.
    pub content_hash: Option<String>,
}

/// Base URLs of the four emulated Dropbox hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropboxUrls {
    /// Stands for `https://www.dropbox.com` (`{www_base}/oauth2/authorize`).
    pub www_base: String,
    /// Stands for `https://api.dropboxapi.com` (`{api_base}/oauth2/token`, `{api_base}/2/...`).
    pub api_base: String,
    /// Stands for `https://content.dropboxapi.com` (`{content_base}/2/files/download`).
    pub content_base: String,
    /// Stands for `https://notify.dropboxapi.com` (`{notify_base}/2/files/list_folder/longpoll`).
    pub notify_base: String,
}

impl DropboxUrls {
    pub(crate) fn new(base_url: &str) -> Self {
        DropboxUrls {
            www_base: format!("{base_url}/dropbox/www"),
            api_base: format!("{base_url}/dropbox/api"),
            content_base: format!("{base_url}/dropbox/content"),
            notify_base: format!("{base_url}/dropbox/notify"),
        }
    }

    /// `{www_base}/oauth2/authorize`.
    pub fn authorize_url(&self) -> String {
        format!("{}/oauth2/authorize", self.www_base)
    }

    /// `{api_base}/oauth2/token`.
    pub fn token_url(&self) -> String {
        format!("{}/oauth2/token", self.api_base)
    }
}

/// Default longest wait of a longpoll (real Dropbox: 30–480 s plus jitter).
pub(crate) const DEFAULT_LONGPOLL_MAX_WAIT: Duration = Duration::from_secs(1);

/// Lifetime of access tokens unless the configuration says otherwise (as Dropbox).
pub(crate) const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(14_400);

/// Server-side state shared by the routes and the control handle.
pub(crate) struct DropboxState {
    pub(crate) urls: DropboxUrls,
    clock: TimeSource,
    /// Accounts' identities (display name, email), the consent page and all tokens.
    pub(crate) oauth: OAuthServer,
    pub(crate) faults: Faults<Endpoint>,
    inner: Mutex<Inner>,
    /// Woken on every tree mutation (longpoll waits on it).
    pub(crate) changed: Notify,
}

impl fmt::Debug for DropboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropboxState").field("urls", &self.urls).finish_non_exhaustive()
    }
}

/// Dropbox's own mutable state, behind one mutex that is never held across an
/// `.await` (the OAuth server and the fault book have their own).
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) accounts: Vec<Account>,
    /// Bumped by `reset_cursors()`.
    pub(crate) epoch: u64,
    pub(crate) longpoll_max_wait: Duration,
}

impl Inner {
    pub(crate) fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id.0 == id)
    }

    pub(crate) fn account_mut(&mut self, id: &str) -> Option<&mut Account> {
        self.accounts.iter_mut().find(|a| a.id.0 == id)
    }
}

impl DropboxState {
    pub(crate) fn new(base_url: &str, clock: TimeSource, oauth: OAuthServer) -> Self {
        DropboxState {
            urls: DropboxUrls::new(base_url),
            faults: Faults::new(Arc::clone(&clock), endpoints::DropboxFaultReplies),
            clock,
            oauth,
            inner: Mutex::new(Inner {
                accounts: Vec::new(),
                epoch: 0,
                longpoll_max_wait: DEFAULT_LONGPOLL_MAX_WAIT,
            }),
            changed: Notify::new(),
        }
    }

    /// "Now" per the configured time source.
    pub(crate) fn now(&self) -> SystemTime {
        (self.clock)()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// All Dropbox routes, under `/dropbox/{www,api,content,notify}`.
pub(crate) fn router(state: Arc<DropboxState>) -> Router {
    Router::new()
        .route("/dropbox/www/oauth2/authorize", get(oauth::authorize))
        .route(oauth::DECISION_PATH, post(oauth::decision))
        .route("/dropbox/api/oauth2/token", post(oauth::token))
        .route("/dropbox/api/2/auth/token/revoke", post(oauth::revoke))
        .route("/dropbox/api/2/users/get_current_account", post(rpc::get_current_account))
        .route("/dropbox/api/2/files/list_folder", post(rpc::list_folder))
        .route("/dropbox/api/2/files/list_folder/continue", post(rpc::list_folder_continue))
        .route("/dropbox/api/2/files/list_folder/get_latest_cursor", post(rpc::get_latest_cursor))
        .route("/dropbox/api/2/files/get_metadata", post(rpc::get_metadata))
        .route("/dropbox/content/2/files/download", post(download::download))
        .route("/dropbox/notify/2/files/list_folder/longpoll", post(rpc::longpoll))
        .with_state(state)
}
