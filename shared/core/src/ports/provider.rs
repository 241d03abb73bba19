//! The provider connector port. A connector only speaks HTTP to one provider; every decision
//! (when to refresh, what to store, when to stop) is the use cases'.

use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::domain::{FolderLocator, ProviderKind, Timestamp, TokenSet};
use crate::secret::Secret;

/// How a provider call failed, classified for the engine.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    /// 429 / 503 / Drive rate-limit 403: wait `retry_after` (or back off) and retry.
    #[error("rate limited (retry after {retry_after:?})")]
    RateLimited { retry_after: Option<Duration> },
    /// 5xx, connection reset, timeout: retry with backoff.
    #[error("transient provider failure: {0}")]
    Transient(String),
    /// The access token was refused (expired or revoked): refresh once, then retry.
    #[error("access token rejected")]
    Unauthorized,
    /// The grant is dead (`invalid_grant`, revoked app): the user must reconnect.
    #[error("reauthorization required: {0}")]
    Reauth(String),
    /// The stored cursor is no longer valid (Dropbox `reset`, Graph 410): re-list everything.
    #[error("cursor reset by the provider")]
    CursorReset,
    /// The item (or the connected folder) does not exist or is not accessible.
    #[error("not found at the provider")]
    NotFound,
    /// The downloaded bytes do not match the provider's hash or announced size.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// A request the provider will never accept (bad input, unsupported file, no permission).
    #[error("provider refused the request: {0}")]
    Permanent(String),
}

impl ProviderError {
    /// Worth retrying later within or across runs.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RateLimited { .. } | Self::Transient(_) | Self::Integrity(_))
    }
}

/// The provider account behind a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountInfo {
    pub account_id: String,
    pub display_name: String,
    pub email: Option<String>,
}

/// One folder in the picker, or the connected folder's current identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderEntry {
    pub id: String,
    pub name: String,
    pub path: String,
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
    pub parent_id: Option<String>,
    pub name: String,
    pub path: String,
    pub path_lower: String,
    pub is_folder: bool,
    /// Changes whenever the content changes (Dropbox `rev`, Drive `version`, Graph `cTag`).
    pub revision: Option<String>,
    /// The provider's content hash in its own algorithm (Dropbox `content_hash`).
    pub content_hash: Option<String>,
    pub size: Option<u64>,
    pub modified_at: Option<Timestamp>,
    /// False for files the provider cannot serve as bytes (would need an export).
    pub downloadable: bool,
}

impl RemoteItem {
    /// What identifies this *content*: a new asset is written only when it changes. Prefer
    /// the content hash (a rename or a metadata-only change keeps it), else the revision.
    pub fn content_version(&self) -> Option<&str> {
        self.content_hash.as_deref().or(self.revision.as_deref())
    }
}

/// One entry of a listing page, in the provider's order (which must be applied in order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Upsert(RemoteItem),
    /// Gone from scope. Dropbox deletions carry a path but no id; a deleted folder stands for
    /// its whole subtree.
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

/// A download in progress. `stream` yields the bytes; the connector verifies size and the
/// provider's hash *while streaming* and reports a mismatch as a final `Err(Integrity)`, so a
/// consumer must read to the end and store nothing unless the stream ended without error.
pub struct Download {
    /// The item as actually served (its revision and hash may be newer than the listing's).
    pub item: RemoteItem,
    pub content_type: Option<String>,
    pub stream: BoxStream<'static, Result<Bytes, ProviderError>>,
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

#[async_trait]
pub trait Provider: Send + Sync {
    fn kind(&self) -> ProviderKind;
    /// The URL to send the admin's browser to (offline access, PKCE S256, read-only scopes).
    fn authorize_url(&self, req: &AuthorizeRequest) -> Result<String, ProviderError>;
    async fn exchange_code(
        &self,
        code: &Secret,
        pkce_verifier: &Secret,
        redirect_uri: &str,
    ) -> Result<TokenSet, ProviderError>;
    /// HTTP refresh only; single-flight and storage are the token use case's job. The result
    /// keeps the old refresh token when the provider returns none.
    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, ProviderError>;
    async fn revoke(&self, tokens: &TokenSet) -> Result<(), ProviderError>;
    async fn account(&self, access: &Secret) -> Result<AccountInfo, ProviderError>;
    /// One level of sub-folders of `parent` (`None` = the account's root).
    async fn browse_folders(
        &self,
        access: &Secret,
        parent: Option<&str>,
        page: Option<&str>,
    ) -> Result<FolderPage, ProviderError>;
    /// The folder's current name and path; `NotFound` if deleted or inaccessible.
    async fn folder(&self, access: &Secret, folder: &FolderLocator) -> Result<FolderEntry, ProviderError>;
    /// A full listing of the folder's subtree, a page at a time (`resume` = the last page's
    /// cursor). The final page's cursor is the change cursor for [`Provider::list_changes`].
    async fn list_full(
        &self,
        access: &Secret,
        folder: &FolderLocator,
        resume: Option<&str>,
    ) -> Result<ListPage, ProviderError>;
    /// Changes since `cursor`, a page at a time; `CursorReset` when the cursor expired.
    async fn list_changes(
        &self,
        access: &Secret,
        folder: &FolderLocator,
        cursor: &str,
    ) -> Result<ListPage, ProviderError>;
    async fn download(&self, access: &Secret, item: &RemoteItem) -> Result<Download, ProviderError>;
}
