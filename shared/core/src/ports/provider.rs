//! The provider connector port. A connector only speaks HTTP to one provider; every decision
//! (when to refresh, what to store, when to stop) is the use cases'.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::domain::{FolderLocator, ItemKind, ProviderKind, Timestamp, TokenSet};
use crate::secret::Secret;

/// Who a rate limit applies to (Drive's `userRateLimitExceeded` is the grant's; a 429 on one
/// download is that file's; most 429/503 are this request's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateScope {
    /// Retry this request after the wait.
    Request,
    /// This file is throttled (e.g. too many downloads of it): the run may go on with others.
    File,
    /// The whole grant (provider account) is throttled: every call of every connection on it waits.
    Grant,
}

/// How a provider call failed, classified for the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// 429 / 503 / Drive rate-limit 403: wait `retry_after` (or back off) and retry.
    #[error("rate limited (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration>, scope: RateScope },
    /// 5xx, connection reset, timeout: retry with backoff.
    #[error("transient provider failure: {0}")]
    Transient(String),
    /// The access token was refused (expired or revoked): refresh once, then retry.
    #[error("access token rejected")]
    Unauthorized,
    /// The grant is dead (`invalid_grant`, revoked app): the user must reconnect.
    #[error("reauthorization required: {0}")]
    Reauth(String),
    /// The provider refused *our app* (`invalid_client`, an unregistered redirect URI): an
    /// operator problem, never the user's — no grant is marked `reauth_required` for it.
    #[error("the provider refused this application's configuration: {0}")]
    Config(String),
    /// The stored cursor is no longer valid (Dropbox `reset`, Graph 410): re-list everything.
    #[error("cursor reset by the provider")]
    CursorReset,
    /// The item (or the connected folder) does not exist or is not accessible.
    #[error("not found at the provider")]
    NotFound,
    /// This file exists but cannot be imported as bytes (a form, a shortcut, an export over
    /// the provider's cap, download disabled). `reason` is a stable code (`export_too_large`,
    /// `not_downloadable`, …) shown per file.
    #[error("not importable: {reason}")]
    NotImportable { reason: String },
    /// The downloaded bytes do not match the provider's hash or announced size.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// The account may not read this item (HTTP 403 that is not a rate limit). For a file:
    /// `failed: access_denied`, retried with backoff (permissions change); for a listing: a
    /// connection-wide failure.
    #[error("access denied: {0}")]
    Forbidden(String),
    /// A request the provider will never accept (bad input, unsupported file).
    #[error("provider refused the request: {0}")]
    Permanent(String),
}

impl ProviderError {
    /// A rate limit on this request (the common case).
    pub fn rate_limited(retry_after: Option<Duration>) -> Self {
        Self::RateLimited { retry_after, scope: RateScope::Request }
    }

    /// The stable reason code a file that failed with this error is recorded with.
    pub fn reason_code(&self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Transient(_) => "provider_unavailable",
            Self::Unauthorized | Self::Reauth(_) => "unauthorized",
            Self::Config(_) => "provider_config",
            Self::CursorReset => "cursor_reset",
            Self::NotFound => "not_found",
            Self::NotImportable { .. } => "not_importable",
            Self::Integrity(_) => "hash_mismatch",
            Self::Forbidden(_) => "access_denied",
            Self::Permanent(_) => "provider_refused",
        }
    }

    /// Worth retrying later within or across runs.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient(_) | Self::Integrity(_))
    }
}

/// What a provider's change feed covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedScope {
    /// Only the connected folder's subtree (Dropbox): every upsert is in scope, a move out is
    /// reported as a deletion, and a folder moved in is reported with its whole subtree.
    Folder,
    /// A whole drive or account (Drive changes, Graph delta on the drive root): membership is
    /// decided by the core's scope tree, and a folder moved in reports no descendants.
    Drive,
}

/// The content hash a provider reports (and its connector verifies while streaming).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashAlgorithm {
    DropboxContentHash,
    Md5,
    Sha256,
    QuickXor,
    None,
}

/// What the engine may rely on (ARCHITECTURE §7 "Ports").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    pub feed_scope: FeedScope,
    /// A full listing of a folder's subtree exists ([`Provider::list_full`]); otherwise the
    /// engine lists folder by folder ([`Provider::list_children`]), breadth-first, after taking
    /// [`Provider::start_cursor`].
    pub recursive_listing: bool,
    /// Listings carry display paths; otherwise the core derives them from the tree.
    pub listing_has_paths: bool,
    /// Some deletions name only a path (Dropbox): the core keeps a path index for them, and
    /// resolves parents by path when items carry no parent ids.
    pub deletions_by_path: bool,
    /// A path names at most one item (Dropbox). A new id at a stored path replaced that item.
    /// False where duplicate names are legal (Drive).
    pub unique_paths: bool,
    pub hash: HashAlgorithm,
}

/// The provider account behind a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub account_id: String,
    pub display_name: String,
    pub email: Option<String>,
}

/// What a picker entry is, for the console's tree (only folders and libraries' roots can be
/// connected; sites and drives are levels to open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    Folder,
    /// A drive: My Drive, a shared drive, a document library.
    Drive,
    /// A SharePoint site (holds libraries).
    Site,
}

/// One entry in the picker, or the connected folder's current identity. The locator flows
/// unchanged from the picker into the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderEntry {
    pub locator: FolderLocator,
    pub name: String,
    /// Display path where the provider has one; `None` where it does not (the console shows
    /// breadcrumbs instead).
    pub path: Option<String>,
    pub kind: EntryKind,
    /// Can be connected as is (a site cannot; a folder or a library's root can).
    pub selectable: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderPage {
    pub folders: Vec<FolderEntry>,
    /// Opaque; pass back to get the next page.
    pub next_page: Option<String>,
}

/// A file or folder as the provider describes it now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteItem {
    pub id: String,
    /// Graph drive id / Drive shared-drive id, where the provider needs it to address the item.
    pub drive_id: Option<String>,
    /// Parent folder ids. Empty where the provider reports none (Dropbox: the core resolves the
    /// parent by path) or for a drive's root. Drive may report several (legacy multi-parent).
    pub parent_ids: Vec<String>,
    pub name: String,
    /// Display path, where the provider reports one.
    pub path: Option<String>,
    /// The provider's own comparison form of the path (Dropbox `path_lower`), where deletions
    /// can name only a path.
    pub path_lower: Option<String>,
    pub kind: ItemKind,
    pub mime_type: Option<String>,
    /// Changes whenever the content changes (Dropbox `rev`, Drive `version`, Graph `cTag`).
    pub revision: Option<String>,
    /// The provider's content hash in its own algorithm (see [`Capabilities::hash`]).
    pub content_hash: Option<String>,
    /// Bytes; `None` for exports (Google-native files have no size until exported).
    pub size: Option<u64>,
    pub modified_at: Option<Timestamp>,
}

impl RemoteItem {
    /// What identifies this *content*: a new asset is written only when it changes. Prefer
    /// the content hash (a rename or a metadata-only change keeps it), else the revision.
    pub fn content_version(&self) -> Option<&str> {
        self.content_hash.as_deref().or(self.revision.as_deref())
    }

    pub fn is_folder(&self) -> bool {
        self.kind == ItemKind::Folder
    }

    /// The address of this item at the provider.
    pub fn locator(&self) -> FolderLocator {
        FolderLocator { folder_id: self.id.clone(), drive_id: self.drive_id.clone() }
    }
}

/// One entry of a listing page, in the provider's order (which must be applied in order).
// Nearly every entry is an upsert: boxing it would add an allocation per entry for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Upsert(RemoteItem),
    /// Gone (deleted, trashed, or out of the feed's reach). Dropbox deletions carry a path but
    /// no id; a deleted folder stands for its whole subtree.
    Deleted {
        id: Option<String>,
        path_lower: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    pub changes: Vec<Change>,
    /// Opaque; resumes after this page.
    pub cursor: String,
    pub has_more: bool,
}

/// What to download: the item as listed, from `offset` (a resumed transfer; the connector
/// asks for a byte range), with the size expected when known (exports have none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadRequest {
    pub item: RemoteItem,
    pub offset: u64,
    pub expected_size: Option<u64>,
    /// A resumed transfer: the provider hash's state after `offset` bytes, as the verifier
    /// recorded it in [`Download::marks`] — so the whole content is still checked against the
    /// provider's hash. `None` from a non-zero offset: only the size can be checked.
    pub hash_state: Option<Vec<u8>>,
    /// Record the provider hash's state in [`Download::marks`] at each multiple of this many
    /// bytes of the file (0: none; the engine asks for the sink's granule).
    pub mark_every: u64,
}

impl DownloadRequest {
    /// The whole file, as listed.
    pub fn whole(item: &RemoteItem) -> Self {
        Self { expected_size: item.size, item: item.clone(), offset: 0, hash_state: None, mark_every: 0 }
    }
}

/// A download in progress. `stream` yields the bytes; the connector verifies size and the
/// provider's hash *while streaming* and reports a mismatch as a final `Err(Integrity)`, so a
/// consumer must read to the end and store nothing unless the stream ended without error.
/// From a non-zero offset the connector can only check the size (the hash covers the whole
/// file): the consumer verifies the whole content.
pub struct Download {
    /// The item as actually served (its revision and hash may be newer than the listing's).
    pub item: RemoteItem,
    pub content_type: Option<String>,
    /// The file name the served bytes carry when it is not the item's name: an export adds its
    /// format's extension (Drive's "Brief" is served as "Brief.docx"). The asset's original
    /// name; the item keeps the source's name.
    pub file_name: Option<String>,
    pub stream: BoxStream<'static, Result<Bytes, ProviderError>>,
    /// Set by the stream, before it ends without error, when the bytes were kept despite a
    /// known provider quirk (SharePoint rewrites Office files, so their hash and size may not
    /// match the listing's): the item is imported with this warning shown.
    pub warning: DownloadWarning,
    /// The provider hash's states, recorded by the verifier as the stream passes each multiple
    /// of [`DownloadRequest::mark_every`] (empty when the connector verifies no hash).
    pub marks: HashMarks,
}

/// States of a download's provider hash at byte offsets of the file, recorded by the
/// connector's verifier and read by the engine when it suspends a transfer. Cheap to clone;
/// bounded: the latest [`HashMarks::KEPT`].
#[derive(Debug, Clone, Default)]
pub struct HashMarks(Option<std::sync::Arc<std::sync::Mutex<Marks>>>);

/// (offset, state), oldest first.
type Marks = std::collections::VecDeque<(u64, Vec<u8>)>;

impl HashMarks {
    /// Marks kept: the sink's durable offset trails the bytes read by the parts in flight.
    pub const KEPT: usize = 64;

    /// The marks of a download whose bytes are checked against a provider hash.
    pub fn verified() -> Self {
        Self(Some(Default::default()))
    }

    /// The marks of a download that must never be continued from an offset, because the
    /// provider may serve its bytes differently the next time (SharePoint rewrites Office
    /// files as they are downloaded): none is recorded, so a cut transfer keeps nothing and
    /// the file starts over from byte 0.
    pub fn never_resumed() -> Self {
        Self::verified()
    }

    /// Whether a resume must carry the provider hash's state at its offset: the download
    /// checks a provider hash, or cannot be resumed at all.
    pub fn verifies(&self) -> bool {
        self.0.is_some()
    }

    pub fn record(&self, offset: u64, state: Vec<u8>) {
        if let Some(m) = &self.0 {
            let mut m = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if m.len() == Self::KEPT {
                m.pop_front();
            }
            m.push_back((offset, state));
        }
    }

    /// The state after `offset` bytes, if it was recorded and is still kept.
    pub fn at(&self, offset: u64) -> Option<Vec<u8>> {
        let m = self.0.as_ref()?.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        m.iter().rev().find(|(o, _)| *o == offset).map(|(_, s)| s.clone())
    }
}

/// A write-once note a download's stream leaves for the engine (see [`Download::warning`]).
/// Cheap to clone: the connector keeps one clone inside its stream.
#[derive(Debug, Clone, Default)]
pub struct DownloadWarning(std::sync::Arc<std::sync::OnceLock<String>>);

impl DownloadWarning {
    /// Records `text` (words shown to the admin, no secrets); the first call wins.
    pub fn set(&self, text: impl Into<String>) {
        let _ = self.0.set(text.into());
    }

    pub fn get(&self) -> Option<&str> {
        self.0.get().map(String::as_str)
    }
}

impl std::fmt::Debug for Download {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Download").field("item", &self.item).finish_non_exhaustive()
    }
}

/// Authorization request parameters chosen by the OAuth use case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizeRequest {
    pub state: Secret,
    /// base64url(SHA-256(verifier)), S256.
    pub pkce_challenge: String,
    pub redirect_uri: String,
}

fn unsupported<T>(what: &str) -> Result<T, ProviderError> {
    Err(ProviderError::Permanent(format!("{what} is not supported by this provider")))
}

/// A provider connector. Every call takes the access token; none refreshes, retries or stores
/// anything (that is the use cases'). Which listing calls the engine uses follows
/// [`Provider::capabilities`]; the others answer `Permanent("… not supported")`.
#[async_trait]
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;
    fn capabilities(&self) -> Capabilities;
    /// Whether `id` has the shape of this provider's item ids (checked before any call, so a
    /// malformed id from a client is a 400 naming the field).
    fn accepts_id(&self, id: &str) -> bool;

    /// The URL to send the admin's browser to (offline access, PKCE S256, read-only scopes).
    fn authorize_url(&self, req: &AuthorizeRequest) -> Result<String, ProviderError>;
    async fn exchange_code(
        &self,
        code: &Secret,
        pkce_verifier: &Secret,
        redirect_uri: &str,
    ) -> Result<TokenSet, ProviderError>;
    /// HTTP refresh only; single-flight and storage are the token use case's job. The result
    /// carries the rotated refresh token when the provider rotates (Microsoft), else the old one.
    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, ProviderError>;
    /// Revokes the grant where the provider can (Microsoft cannot: deleting the secret is all).
    async fn revoke(&self, tokens: &TokenSet) -> Result<(), ProviderError>;
    async fn account(&self, access: &Secret) -> Result<AccountInfo, ProviderError>;

    /// One level of the picker under `parent` (`None` = the top: the account's root, its
    /// drives, or its sites).
    async fn browse_folders(
        &self,
        access: &Secret,
        parent: Option<&FolderLocator>,
        page: Option<&str>,
    ) -> Result<FolderPage, ProviderError>;
    /// The folder's current identity; `NotFound` if deleted or inaccessible.
    async fn folder(&self, access: &Secret, folder: &FolderLocator) -> Result<FolderEntry, ProviderError>;
    /// One item by id (an unknown parent met in a drive-wide feed). `NotFound` if gone.
    async fn item(&self, access: &Secret, locator: &FolderLocator) -> Result<RemoteItem, ProviderError>;

    /// Whether `item`'s content changed after `since`, a content version this connector
    /// reported for it earlier. The engine asks only when a listing moved an exported
    /// document's content version *and* its name or place in the same change, which is
    /// ambiguous for a connector whose content version may also move on a rename (Drive's
    /// `modifiedTime`). `Some(false)`: a rename or move only (the asset stays); `Some(true)` or
    /// `None` (cannot tell, the default): a new version is exported.
    async fn content_changed_since(
        &self,
        _access: &Secret,
        _item: &RemoteItem,
        _since: &str,
    ) -> Result<Option<bool>, ProviderError> {
        Ok(None)
    }

    /// A change cursor for `folder`'s feed as of now, taken *before* a by-parent full listing
    /// so that nothing changed during the listing is missed.
    async fn start_cursor(&self, access: &Secret, folder: &FolderLocator) -> Result<String, ProviderError>;
    /// A full recursive listing of the folder's subtree, a page at a time (`resume` = the last
    /// page's cursor). The final page's cursor is the change cursor for [`Provider::list_changes`].
    /// Only where [`Capabilities::recursive_listing`].
    async fn list_full(
        &self,
        _access: &Secret,
        _folder: &FolderLocator,
        _resume: Option<&str>,
    ) -> Result<ListPage, ProviderError> {
        unsupported("a recursive listing")
    }
    /// The direct children of `parent`, a page at a time (`page` = the last page's cursor;
    /// `has_more` false on the last page, whose cursor means nothing).
    async fn list_children(
        &self,
        access: &Secret,
        parent: &FolderLocator,
        page: Option<&str>,
    ) -> Result<ListPage, ProviderError>;
    /// Changes since `cursor`, a page at a time; `CursorReset` when the cursor expired.
    async fn list_changes(
        &self,
        access: &Secret,
        folder: &FolderLocator,
        cursor: &str,
    ) -> Result<ListPage, ProviderError>;
    async fn download(&self, access: &Secret, req: &DownloadRequest) -> Result<Download, ProviderError>;
}
