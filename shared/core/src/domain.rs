//! The domain of ARCHITECTURE §4: grants, connections, items, runs, jobs, assets.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::ids::{ClientId, ConnectionId, GrantId, RunId, UserId};
use crate::secret::Secret;

pub type Timestamp = DateTime<Utc>;

/// The three services. These exact strings are the API's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    GoogleDrive,
    Sharepoint,
    Dropbox,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [Self::GoogleDrive, Self::Sharepoint, Self::Dropbox];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::GoogleDrive => "google_drive",
            Self::Sharepoint => "sharepoint",
            Self::Dropbox => "dropbox",
        }
    }

    /// The service's name as people know it (the console shows it; the API never spells one).
    pub fn display_name(self) -> &'static str {
        match self {
            Self::GoogleDrive => "Google Drive",
            Self::Sharepoint => "SharePoint",
            Self::Dropbox => "Dropbox",
        }
    }

    /// Parses the API string; `None` for anything else (the API answers 400 naming the field).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth token set as stored in the vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenSet {
    pub access_token: Secret,
    /// Dropbox and Google never rotate it; Microsoft does (the newest must be kept).
    pub refresh_token: Option<Secret>,
    /// `None` = the provider gave no lifetime (treated as long-lived).
    pub expires_at: Option<Timestamp>,
}

impl TokenSet {
    /// True when the access token is expired or expires within `margin`.
    pub fn needs_refresh(&self, now: Timestamp, margin: chrono::Duration) -> bool {
        self.expires_at.is_some_and(|t| t - margin <= now)
    }
}

/// A token set plus the vault's version counter (compare-and-set on write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionedTokens {
    pub tokens: TokenSet,
    pub version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantStatus {
    Active,
    ReauthRequired,
    /// No connection uses it any more: revoke at the provider and delete (retried until done).
    Revoking,
}

/// An authorised provider account of one client: one per (client, provider, account).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub client_id: ClientId,
    pub id: GrantId,
    pub provider: ProviderKind,
    pub account_id: String,
    pub account_name: String,
    pub account_email: Option<String>,
    /// Where the token set lives in the vault (never the tokens themselves).
    pub secret_ref: String,
    pub created_by: UserId,
    pub created_at: Timestamp,
    pub status: GrantStatus,
    /// True once a connection uses it; an unattached grant is usable only by `created_by`.
    pub attached: bool,
    /// The provider rate-limited the whole account until then (a grant-wide limit, e.g. Drive's
    /// `quotaExceeded`): every connection on the grant waits, in every worker. Written only by
    /// [`crate::ports::GrantStore::pause`], which never moves it earlier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_until: Option<Timestamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionStatus {
    Active,
    ReauthRequired,
    FolderUnavailable,
    /// The last run ended on a connection-wide failure (a listing that kept failing, the
    /// provider refusing our app); `status_reason` says which. Still due: the next scheduled or
    /// manual run tries again, and a successful one returns it to `Active`.
    Error,
    /// A run would have marked more files deleted than the mass-delete guard allows; nothing
    /// was applied. `held_deletions` says how many; an admin confirms or discards them.
    NeedsReview,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::ReauthRequired => "reauth_required",
            Self::FolderUnavailable => "folder_unavailable",
            Self::Error => "error",
            Self::NeedsReview => "needs_review",
        }
    }
}

/// The connected folder as the provider identifies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderLocator {
    /// Provider id (Dropbox `id:…`, Drive file id, Graph item id). Never a path.
    pub folder_id: String,
    /// Graph drive id / Drive shared-drive id, where the provider needs it. Unused by Dropbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncedBy {
    pub user_id: UserId,
    pub display_name: String,
}

/// v1 settings: fixed defaults, returned read-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filters {
    pub include_subfolders: bool,
    pub max_file_size: u64,
}

impl Default for Filters {
    fn default() -> Self {
        Self { include_subfolders: true, max_file_size: 50 * 1024 * 1024 * 1024 }
    }
}

impl Filters {
    /// The default `max_file_size` before transfers could continue across invocations.
    pub const EARLIER_MAX_FILE_SIZE: u64 = 5 * 1024 * 1024 * 1024;

    /// The filters a connection saved under an earlier default takes today, if they differ.
    /// v1's filters are the product's defaults, read-only, so a stored value equal to an
    /// earlier default can only be that default.
    pub fn upgraded(&self) -> Option<Filters> {
        (self.max_file_size == Self::EARLIER_MAX_FILE_SIZE)
            .then(|| Filters { max_file_size: Filters::default().max_file_size, ..self.clone() })
    }
}

/// The per-connection sync lease: one run at a time, fenced by `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub holder: String,
    pub expires_at: Timestamp,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionCounters {
    pub files: u64,
    pub bytes: u64,
    pub failed: u64,
}

/// Where the provider listing stands. The cursor only ever covers stored files (I3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum SyncPosition {
    /// Nothing listed yet.
    Initial,
    /// A full listing is under way (initial import or after a cursor reset). `listing` tags the
    /// items it has seen; `resume` is the page cursor to continue from, if any page is done.
    /// By-parent listings (no recursive listing at the provider) also carry the change cursor
    /// taken before the listing began and the folders still to list, breadth-first (the head
    /// is the one `resume` belongs to).
    FullListing {
        listing: String,
        resume: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        start_cursor: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        pending: Vec<FolderLocator>,
    },
    /// Incremental: changes since `cursor`.
    Incremental { cursor: String },
}

impl SyncPosition {
    /// A fresh full listing tagged `listing`.
    pub fn full(listing: String) -> Self {
        Self::FullListing { listing, resume: None, start_cursor: None, pending: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    pub client_id: ClientId,
    pub id: ConnectionId,
    pub grant_id: GrantId,
    pub provider: ProviderKind,
    pub folder: FolderLocator,
    pub folder_name: String,
    pub folder_path: String,
    pub auto_sync: bool,
    pub sync_interval_secs: u64,
    pub status: ConnectionStatus,
    pub current_run_id: Option<RunId>,
    pub last_synced_at: Option<Timestamp>,
    pub synced_by: SyncedBy,
    pub created_at: Timestamp,
    pub position: SyncPosition,
    pub lease: Option<Lease>,
    /// Fencing version: incremented on every lease acquisition, never reset.
    pub lease_version: u64,
    pub counters: ConnectionCounters,
    pub filters: Filters,
    /// When the scheduler should next enqueue it (auto sync only).
    pub next_due_at: Option<Timestamp>,
    /// No provider call before this time (a rate-limit wait longer than one invocation).
    pub not_before: Option<Timestamp>,
    /// Why the status is what it is (`error`: the failure; `needs_review`: the held
    /// deletions), in words an admin can act on. Never carries secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// `needs_review`: how many files the held run would mark deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_deletions: Option<u64>,
    /// An admin confirmed the held deletions: the next run may mark up to this many files
    /// deleted past the guard (cleared when that run finishes its pass).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approved_deletions: Option<u64>,
}

impl Connection {
    pub fn key(&self) -> ConnKey {
        ConnKey { client_id: self.client_id.clone(), connection_id: self.id.clone() }
    }

    /// "syncing" is derived from an unexpired lease, never stored.
    pub fn is_syncing(&self, now: Timestamp) -> bool {
        self.lease.as_ref().is_some_and(|l| l.expires_at > now)
    }
}

/// A connection's identity: every store key is built from both parts (tenant isolation).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConnKey {
    pub client_id: ClientId,
    pub connection_id: ConnectionId,
}

/// Proof of holding a connection's lease. Every checkpoint and item write carries it; a store
/// refuses the write when the connection's `lease_version` moved on (or the connection is gone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub conn: ConnKey,
    pub version: u64,
    pub holder: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    Imported,
    Skipped,
    Failed,
    SourceDeleted,
}

/// What a provider item is. Only `File` and `Native` (exported) produce assets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ItemKind {
    File,
    Folder,
    /// A provider-native document with no bytes of its own (Google Docs, Sheets, …), imported
    /// as an export in one of these MIME types (the first is used).
    Native {
        exports: Vec<String>,
    },
    /// A link to another item (Drive shortcut): not imported; the target is imported where it
    /// lives in scope.
    Shortcut {
        target_id: Option<String>,
    },
    /// Anything else that cannot be imported, with a stable reason code.
    Other {
        reason: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub provider_id: String,
    pub parent_id: Option<String>,
    pub name: String,
    /// Display path from the connected folder's parent downwards (e.g. `/Brand Assets/logo.png`).
    pub path: String,
    /// Digest of the provider's lower-cased path, only where deletions come by path (Dropbox)
    /// and only while the item is live: the key of the path index (bounded, whatever the path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_key: Option<String>,
    pub kind: ItemKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mime_type: Option<String>,
    pub revision: Option<String>,
    pub content_hash: Option<String>,
    pub size: Option<u64>,
    pub state: ItemState,
    pub reason: Option<String>,
    pub attempts: u32,
    /// `failed`: when a later run may try it again (backoff growing over days, see
    /// [`retry_delay`]). The failed-items index is keyed by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
    /// `failed` / `skipped`: the last error in words (the stable code is `reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `failed`: the run that last failed it (a file fails a run once in its counters, however
    /// many invocations tried it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_in: Option<RunId>,
    /// `imported`: the bytes were kept although they differ from what the listing announced
    /// (SharePoint rewrites Office files on download), in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    pub asset_key: Option<String>,
    /// The full listing that last saw it (see [`SyncPosition::FullListing`]).
    pub seen_in: Option<String>,
    pub updated_at: Timestamp,
    /// A transfer an invocation's deadline cut, for the next one to continue.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<PartialTransfer>,
}

/// Where a transfer cut by an invocation's deadline stands (ARCHITECTURE §7 "Large files"):
/// fixed-size whatever the file's size — the sink's upload (an id, a part count, its own CRC
/// state), the bytes done and the states of the two sums the bytes are checked with (the
/// provider's hash, the engine's CRC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartialTransfer {
    /// The content version being transferred: a source changed since restarts from zero.
    pub version: String,
    /// The asset key the upload will publish.
    pub key: String,
    /// The sink's upload; `sink.offset` bytes are stored and hashed.
    pub sink: crate::ports::SinkResume,
    /// The CRC-64/NVME state of the bytes so far (what the sink's check at commit continues
    /// from). Absent in a checkpoint written before the engine kept one (it kept a SHA-256
    /// midstate, ignored now): that transfer starts over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crc64: Option<u64>,
    /// The provider hash's midstate (hex), when the connector verifies one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_hash: Option<String>,
    /// Invocations that continued it so far.
    pub resumes: u32,
}

impl Item {
    pub fn is_folder(&self) -> bool {
        self.kind == ItemKind::Folder
    }

    /// In the connection's scope tree now (not deleted or moved out).
    pub fn is_live(&self) -> bool {
        self.state != ItemState::SourceDeleted
    }
}

/// How long a file that failed `attempts` times waits before the next try: 15 minutes, then
/// 1 h, 4 h, 12 h, 1 day, 2 days, then every 4 days — never given up (a permission fixed a
/// week later still imports).
pub fn retry_delay(attempts: u32) -> chrono::Duration {
    const MINUTES: [i64; 7] = [15, 60, 240, 720, 1440, 2880, 5760];
    let i = (attempts.max(1) - 1) as usize;
    chrono::Duration::minutes(MINUTES[i.min(MINUTES.len() - 1)])
}

/// The path index key: a digest of the provider's lower-cased path, so no path is too long
/// for a store key.
pub fn path_key(path_lower: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(path_lower.as_bytes())[..16])
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Initial,
    Schedule,
    Manual,
    Webhook,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    Succeeded,
    Partial,
    Failed,
    ReauthRequired,
    /// Stopped by the mass-delete guard before applying anything it held (the connection is
    /// `needs_review`).
    NeedsReview,
}

impl RunStatus {
    pub fn is_open(self) -> bool {
        matches!(self, Self::Queued | Self::Running)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunCounters {
    pub scanned: u64,
    pub imported: u64,
    pub updated: u64,
    pub skipped: u64,
    pub failed: u64,
    pub source_deleted: u64,
    pub bytes: u64,
}

impl RunCounters {
    pub fn add(&mut self, o: &RunCounters) {
        self.scanned += o.scanned;
        self.imported += o.imported;
        self.updated += o.updated;
        self.skipped += o.skipped;
        self.failed += o.failed;
        self.source_deleted += o.source_deleted;
        self.bytes += o.bytes;
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncRun {
    pub conn: ConnKey,
    pub id: RunId,
    pub trigger: Trigger,
    pub actor: Option<UserId>,
    pub status: RunStatus,
    pub queued_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub counters: RunCounters,
    /// How many worker invocations carried it (continuations included).
    pub invocations: u32,
    pub error: Option<String>,
    /// Consecutive steps whose listing failed for the same reason (`error`); reset by progress.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failure_streak: u32,
    /// Retry every failed file now, whatever its backoff says (`retry-failed`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retry_failed: bool,
    /// Files listed and waiting for their transfer right now (set when a batch starts, 0 when
    /// it is done or the run ends): `counters.scanned + transferring` is how many files the run
    /// has found so far, which the console shows as "done of found".
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub transferring: u64,
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

impl SyncRun {
    /// A new `queued` run of `conn`, asked for by `actor` (none for the scheduler).
    pub fn queued(conn: ConnKey, trigger: Trigger, actor: Option<UserId>, now: Timestamp) -> Self {
        Self {
            conn,
            id: RunId::generate_at(now),
            trigger,
            actor,
            status: RunStatus::Queued,
            queued_at: now,
            started_at: None,
            finished_at: None,
            counters: RunCounters::default(),
            invocations: 0,
            error: None,
            failure_streak: 0,
            retry_failed: false,
            transferring: 0,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A queue message: ids only, never tokens (ARCHITECTURE §8).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    pub client_id: ClientId,
    pub connection_id: ConnectionId,
    pub trigger: Trigger,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<UserId>,
    /// A continuation of `run_id` after a deadline or a long rate-limit wait.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub continuation: bool,
    /// Remove what a deleted connection left behind (its items and runs), page by page: no
    /// run, no provider request. Acted on only once the connection record is gone.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub purge: bool,
}

impl Job {
    pub fn conn(&self) -> ConnKey {
        ConnKey { client_id: self.client_id.clone(), connection_id: self.connection_id.clone() }
    }

    /// A new run's first job (no run yet, no requester: a schedule's or a test's).
    pub fn start(conn: &ConnKey, trigger: Trigger) -> Job {
        Job {
            client_id: conn.client_id.clone(),
            connection_id: conn.connection_id.clone(),
            trigger,
            run_id: None,
            requested_by: None,
            continuation: false,
            purge: false,
        }
    }

    /// The purge job of a deleted connection.
    pub fn purge(conn: &ConnKey) -> Job {
        Job { purge: true, ..Job::start(conn, Trigger::Manual) }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AssetEventKind {
    Imported,
    Updated,
    MetadataUpdated,
    SourceDeleted,
}

/// A connection's status changed (ARCHITECTURE §7): published beside asset events so the DAM
/// can tell its admins that a connection needs attention, and when it is healthy again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionEvent {
    pub client_id: ClientId,
    pub connection_id: ConnectionId,
    pub provider: ProviderKind,
    pub folder_name: String,
    pub status: ConnectionStatus,
    pub previous_status: ConnectionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_deletions: Option<u64>,
    pub at: Timestamp,
}

/// Who did what to which record (ARCHITECTURE §4 audit events). Never carries tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub client_id: ClientId,
    pub actor: UserId,
    /// e.g. `connection.create`, `connection.refresh`, `grant.reconnect`.
    pub action: String,
    /// The record acted on, e.g. `connection/con_…`.
    pub target: String,
    pub at: Timestamp,
}

/// What the DAM learns about an asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetEvent {
    pub kind: AssetEventKind,
    pub client_id: ClientId,
    pub connection_id: ConnectionId,
    pub provider: ProviderKind,
    pub provider_id: String,
    pub asset_key: Option<String>,
    pub name: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_path: Option<String>,
    pub size: Option<u64>,
    pub content_hash: Option<String>,
    pub at: Timestamp,
}

/// The object key of one content version of one provider item (ARCHITECTURE §7, §8):
/// tenant-prefixed, deterministic, and free of any user text (names live in metadata), so a
/// redelivered job computes the same key and a create-only write makes it a no-op.
pub fn asset_key(conn: &ConnKey, provider_item_id: &str, content_version: &str) -> String {
    use sha2::{Digest, Sha256};
    let h = |s: &str| hex::encode(&Sha256::digest(s.as_bytes())[..16]);
    format!("{}/{}/{}/{}", conn.client_id, conn.connection_id, h(provider_item_id), h(content_version))
}

/// Content-Type from a file name's extension (Dropbox sends none). Unknown → octet-stream.
pub fn content_type_for(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "tif" | "tiff" => "image/tiff",
        "heic" => "image/heic",
        "psd" => "image/vnd.adobe.photoshop",
        "pdf" => "application/pdf",
        "ai" | "eps" => "application/postscript",
        "mp4" => "video/mp4",
        "mov" => "video/quicktime",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "txt" => "text/plain",
        "csv" => "text/csv",
        "json" => "application/json",
        "zip" => "application/zip",
        "doc" => "application/msword",
        "xls" => "application/vnd.ms-excel",
        "ppt" => "application/vnd.ms-powerpoint",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> ConnKey {
        ConnKey { client_id: ClientId::parse("acme").unwrap(), connection_id: ConnectionId::generate() }
    }

    #[test]
    fn asset_keys_are_deterministic_tenant_prefixed_and_name_free() {
        let c = conn();
        let a = asset_key(&c, "id:../../etc/passwd", "rev1");
        assert_eq!(a, asset_key(&c, "id:../../etc/passwd", "rev1"));
        assert!(a.starts_with(&format!("acme/{}/", c.connection_id)));
        assert!(!a.contains(".."));
        assert_ne!(a, asset_key(&c, "id:../../etc/passwd", "rev2"), "content version is part of the key");
        assert_ne!(a, asset_key(&conn(), "id:../../etc/passwd", "rev1"), "connection is part of the key");
        assert!(a.len() < 200);
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type_for("IMG_0001.JPG"), "image/jpeg");
        assert_eq!(content_type_for("noext"), "application/octet-stream");
        assert_eq!(content_type_for("a.tar.gz"), "application/octet-stream");
    }

    #[test]
    fn job_bodies_carry_ids_only_and_reject_unknown_fields() {
        let job = Job {
            client_id: ClientId::parse("acme").unwrap(),
            connection_id: ConnectionId::generate(),
            trigger: Trigger::Manual,
            run_id: None,
            requested_by: None,
            continuation: false,
            purge: false,
        };
        let body = serde_json::to_string(&job).unwrap();
        assert_eq!(serde_json::from_str::<Job>(&body).unwrap(), job);
        let extra = body.replace('}', ",\"access_token\":\"x\"}");
        assert!(serde_json::from_str::<Job>(&extra).is_err());
    }
}
