//! Google Drive API v3 emulator (provider-apis.md §1, §4.1).
//!
//! Files:
//! - `model`: accounts' files by id (single parent), My Drive root, shared drives,
//!   trash, native docs with their export body, shortcuts, and the change log;
//! - `wire`: `File` JSON and the two-level error body;
//! - `api`: `about`, `files.list`, `files.get`, `changes.getStartPageToken`,
//!   `changes.list`, `drives.list`;
//! - `download`: `files.get?alt=media` (with `Range`) and `files.export`;
//! - `oauth`: Google's settings of the shared OAuth server, token and revoke wire;
//! - [`control`]: [`GoogleDriveControl`], its [`crate::ProviderControl`]
//!   implementation and the HTTP mirror under `/_control/google_drive`.
//!
//! ## URL layout
//!
//! | Real host | Sandbox prefix | Routes |
//! |---|---|---|
//! | `accounts.google.com` | `{base}/google_drive/accounts` | `GET /o/oauth2/v2/auth` (consent page), `POST /o/oauth2/v2/auth/decision` |
//! | `oauth2.googleapis.com` | `{base}/google_drive/oauth2` | `POST /token`, `POST /revoke` |
//! | `www.googleapis.com` | `{base}/google_drive/www` | `GET /drive/v3/about`, `/drive/v3/files`, `/drive/v3/files/{id}` (`alt=media` downloads), `/drive/v3/files/{id}/export`, `/drive/v3/files/{id}/revisions`, `/drive/v3/changes/startPageToken`, `/drive/v3/changes`, `/drive/v3/drives`, `/drive/v3/drives/{id}` |
//!
//! ## Fidelity notes (choices where provider-apis.md is silent or unverified)
//!
//! - `fields` is honoured with Google's selector syntax (`a,b(c,d),e/f`) on every JSON
//!   answer; a member the resource does not have is a 400 `invalidParameter` ("Invalid
//!   field selection"), as on Drive, and `about.get` requires `fields`. Without
//!   `fields`, a response carries every field the emulator knows (Drive would send a
//!   default subset), under their real names (`size`, `version` as strings;
//!   `md5Checksum`, `sha256Checksum`, `headRevisionId` for blobs only; `parents`,
//!   `driveId`, `trashed`, `capabilities.canDownload`, `shortcutDetails`, `exportLinks`).
//! - `alt=media` answers carry the file's own `Content-Type`.
//! - Revisions (`revisions.list`) are made by content changes only; whether a rename or a
//!   move also moves `modifiedTime` is a per-account switch
//!   (`set_metadata_touches_modified`, off by default), as the documentation leaves it open.
//! - `q` understands `'<id>' in parents`, `trashed = true|false`, `mimeType = '…'`,
//!   `mimeType != '…'` and `name = '…'`, joined by `and`; anything else is a 400
//!   `invalid` on `q`. Without `trashed = false`, trashed files are listed.
//! - `files.list` sorts by name then id; `pageSize` defaults to 100 and is capped at
//!   1000; page tokens are `~!!~<offset>` and assume the same query.
//! - Shared drives: a shared drive's root folder id is the drive id. Items in shared
//!   drives are listed only with `includeItemsFromAllDrives=true` (and
//!   `supportsAllDrives=true`); `files.get`/downloads of them need
//!   `supportsAllDrives=true` (else 404). `corpora=drive` requires `driveId`.
//! - Change log: a page token is a decimal sequence number; `changes.list` returns the
//!   latest state of each file changed since the token once. Without `driveId` it
//!   covers My Drive (plus shared drives when `includeItemsFromAllDrives=true`); with
//!   `driveId`, that drive only. Trashing a folder logs the folder and every file below
//!   it (`trashed` is inherited); moving a folder logs only the folder (unless it
//!   changes drive); a permanent delete logs a `removed:true` change (no `file`) for
//!   each file of the subtree. `includeRemoved=false` drops removals. No `changeType:
//!   drive` changes are produced. Tokens below a `reset_cursors()` floor get 400
//!   `invalid` on `pageToken` (real Drive tokens do not expire).
//! - `version` is per file and grows on every change of the file (content, rename,
//!   move, trash); native docs' `size` is a made-up figure (not the export size).
//! - Export: every export format of a native type returns the same stored bytes
//!   (with the requested `Content-Type`); exports above 10 MiB (10 485 760 bytes) get
//!   403 `exportSizeLimitExceeded`; a type without export (a Form) or a binary file
//!   gets 403 `fileNotExportable`; an unknown format 400 `badRequest`.
//! - `alt=media` on any `application/vnd.google-apps.*` (docs, folders, shortcuts)
//!   → 403 `fileNotDownloadable`; `capabilities.canDownload=false` → 403
//!   `cannotDownloadFile`. Per-file errors can be set with
//!   [`GoogleDriveControl::set_file_error`] (e.g. 403 `insufficientFilePermissions`).
//! - Faults: [`crate::Fault::RateLimit`] is 429 `rateLimitExceeded` with `Retry-After`;
//!   [`crate::Fault::ServerError`]`(403)` is 403 `userRateLimitExceeded` (§1.6: the
//!   usual Drive rate-limit answer); other 5xx are `backendError`.
//! - Bearer failures are 401 `authError` ("Invalid Credentials"); scopes are not
//!   enforced on API calls.
//! - OAuth: `access_type=offline` returns a refresh token on the first code exchange
//!   of an account and client, later ones only with `prompt=consent`; refreshing
//!   never returns a new refresh token; the callback has no `scope` parameter; the
//!   "testing mode" 7-day refresh-token expiry is not emulated.

#![allow(clippy::result_large_err)]

mod api;
pub mod control;
mod download;
mod model;
mod oauth;
pub mod office;
mod revisions;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use md5::Digest as _;
use serde::{Deserialize, Serialize};

use crate::content::ContentHasher;
use crate::faults::{FaultReplies, Faults};
use crate::oauth::OAuthServer;
use crate::{Op, TimeSource};
use model::Account;

pub use control::GoogleDriveControl;

/// One served call of the Drive emulator.
pub type CallRecord = crate::faults::CallRecord<Endpoint>;

/// Exports larger than this get 403 `exportSizeLimitExceeded` ("10MB").
pub const EXPORT_LIMIT: u64 = 10 * 1024 * 1024;

/// Lifetime of access tokens unless the configuration says otherwise (Google: 3599 s).
pub(crate) const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3599);

/// MD5 as a [`ContentHasher`] (Drive's `md5Checksum`).
#[derive(Clone, Default)]
pub struct Md5Hex(md5::Md5);

impl fmt::Debug for Md5Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Md5Hex")
    }
}

impl ContentHasher for Md5Hex {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn finish_hex(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// An emulated Drive endpoint (for fault injection and counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Endpoint {
    /// `GET /o/oauth2/v2/auth`.
    Authorize,
    /// `POST /token`.
    Token,
    /// `POST /revoke`.
    Revoke,
    /// `GET /drive/v3/about`.
    About,
    /// `GET /drive/v3/files`.
    FilesList,
    /// `GET /drive/v3/files/{id}` (metadata).
    FilesGet,
    /// `GET /drive/v3/files/{id}?alt=media`.
    Download,
    /// `GET /drive/v3/files/{id}/export`.
    Export,
    /// `GET /drive/v3/changes/startPageToken`.
    StartPageToken,
    /// `GET /drive/v3/changes`.
    ChangesList,
    /// `GET /drive/v3/drives`.
    DrivesList,
    /// `GET /drive/v3/files/{id}/revisions`.
    RevisionsList,
    /// `GET /drive/v3/drives/{id}`.
    DrivesGet,
}

impl Endpoint {
    /// The endpoint an operation class maps to. `files.list` is [`Op::List`] (every
    /// page); exports are counted apart from downloads ([`Endpoint::Export`] belongs to
    /// no class, nor does `drives.list`).
    pub fn of(op: Op) -> Endpoint {
        match op {
            Op::Authorize => Endpoint::Authorize,
            Op::Token => Endpoint::Token,
            Op::Revoke => Endpoint::Revoke,
            Op::Account => Endpoint::About,
            Op::List => Endpoint::FilesList,
            Op::StartCursor => Endpoint::StartPageToken,
            Op::Changes => Endpoint::ChangesList,
            Op::Metadata => Endpoint::FilesGet,
            Op::Download => Endpoint::Download,
        }
    }
}

struct DriveFaultReplies;

impl FaultReplies for DriveFaultReplies {
    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        wire::too_many_requests(retry_after_secs)
    }

    fn server_error(&self, status: u16) -> Response {
        wire::server_error(status)
    }

    fn invalid_grant(&self) -> Response {
        wire::oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "Token has been expired or revoked.")
    }

    fn expired_token(&self) -> Response {
        wire::auth_error()
    }
}

/// Base URLs of the three emulated Google hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GoogleDriveUrls {
    /// Stands for `https://accounts.google.com` (`{accounts_base}/o/oauth2/v2/auth`).
    pub accounts_base: String,
    /// Stands for `https://oauth2.googleapis.com` (`/token`, `/revoke`).
    pub token_base: String,
    /// Stands for `https://www.googleapis.com` (`/drive/v3/...`).
    pub api_base: String,
}

impl GoogleDriveUrls {
    pub(crate) fn new(base_url: &str) -> Self {
        GoogleDriveUrls {
            accounts_base: format!("{base_url}/google_drive/accounts"),
            token_base: format!("{base_url}/google_drive/oauth2"),
            api_base: format!("{base_url}/google_drive/www"),
        }
    }

    /// `{accounts_base}/o/oauth2/v2/auth`.
    pub fn authorize_url(&self) -> String {
        format!("{}/o/oauth2/v2/auth", self.accounts_base)
    }

    /// `{token_base}/token`.
    pub fn token_url(&self) -> String {
        format!("{}/token", self.token_base)
    }

    /// `{token_base}/revoke`.
    pub fn revoke_url(&self) -> String {
        format!("{}/revoke", self.token_base)
    }
}

/// A per-file error answered by downloads and exports of that file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FileError {
    pub(crate) status: u16,
    pub(crate) reason: String,
    /// A `Retry-After` header (seconds) on the answer, when set.
    pub(crate) retry_after_secs: Option<u64>,
}

/// Drive's mutable state (one mutex, never held across an `.await`).
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) accounts: Vec<Account>,
    /// The next change's sequence number (global).
    pub(crate) seq: u64,
    /// Page tokens below this are rejected (`reset_cursors`).
    pub(crate) token_floor: u64,
    pub(crate) file_errors: HashMap<String, FileError>,
    /// `(account, client)` pairs that already got a refresh token from a code exchange.
    pub(crate) refresh_issued: HashSet<(String, String)>,
}

impl Inner {
    pub(crate) fn account(&self, id: &str) -> Option<&Account> {
        self.accounts.iter().find(|a| a.id == id)
    }
}

/// Server-side state shared by the routes and the control handle.
pub(crate) struct DriveState {
    pub(crate) urls: GoogleDriveUrls,
    clock: TimeSource,
    pub(crate) oauth: OAuthServer,
    pub(crate) faults: Faults<Endpoint>,
    inner: Mutex<Inner>,
}

impl fmt::Debug for DriveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DriveState").field("urls", &self.urls).finish_non_exhaustive()
    }
}

impl DriveState {
    pub(crate) fn new(base_url: &str, clock: TimeSource, oauth: OAuthServer) -> Self {
        DriveState {
            urls: GoogleDriveUrls::new(base_url),
            faults: Faults::new(Arc::clone(&clock), DriveFaultReplies),
            clock,
            oauth,
            inner: Mutex::new(Inner {
                accounts: Vec::new(),
                seq: 100,
                token_floor: 0,
                file_errors: HashMap::new(),
                refresh_issued: HashSet::new(),
            }),
        }
    }

    pub(crate) fn now(&self) -> SystemTime {
        (self.clock)()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// All Drive routes, under `/google_drive/{accounts,oauth2,www}`.
pub(crate) fn router(state: Arc<DriveState>) -> Router {
    Router::new()
        .route("/google_drive/accounts/o/oauth2/v2/auth", get(oauth::authorize))
        .route(oauth::DECISION_PATH, post(oauth::decision))
        .route("/google_drive/oauth2/token", post(oauth::token))
        .route("/google_drive/oauth2/revoke", post(oauth::revoke))
        .route("/google_drive/www/drive/v3/about", get(api::about))
        .route("/google_drive/www/drive/v3/files", get(api::files_list))
        .route("/google_drive/www/drive/v3/files/{id}", get(download::files_get))
        .route("/google_drive/www/drive/v3/files/{id}/export", get(download::export))
        .route("/google_drive/www/drive/v3/files/{id}/revisions", get(revisions::revisions_list))
        .route("/google_drive/www/drive/v3/changes/startPageToken", get(api::start_page_token))
        .route("/google_drive/www/drive/v3/changes", get(api::changes_list))
        .route("/google_drive/www/drive/v3/drives", get(api::drives_list))
        .route("/google_drive/www/drive/v3/drives/{id}", get(api::drives_get))
        .with_state(state)
}

/// Query parameters (last value wins).
pub(crate) type Query = HashMap<String, String>;

pub(crate) fn query(raw: Option<&str>) -> Query {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect()
}

pub(crate) fn flag(q: &Query, name: &str) -> bool {
    q.get(name).is_some_and(|v| v == "true")
}
