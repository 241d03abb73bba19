//! Where imported bytes go (S3 on AWS, a data folder locally) and how the DAM hears of them.

use async_trait::async_trait;
use bytes::Bytes;

use crate::domain::{AssetEvent, ConnectionEvent, ProviderKind};

/// Object metadata (ARCHITECTURE §8). Names are kept as given; each sink encodes them safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetMeta {
    pub content_type: String,
    pub size: Option<u64>,
    pub original_name: String,
    pub source_path: String,
    pub provider: ProviderKind,
    pub provider_id: String,
    pub content_version: String,
    pub provider_hash: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    /// The object was written now.
    Created,
    /// An identical object (same SHA-256) was already there: a redelivery, not an error.
    AlreadyExists,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The bytes written do not hash to what the caller expected; nothing was kept.
    #[error("integrity check failed: expected sha256 {expected}, wrote {actual}")]
    Integrity { expected: String, actual: String },
    /// A different object already exists under the key (keys are content-versioned, so this
    /// means a bug or tampering, never a normal redelivery).
    #[error("a different object already exists under the key")]
    Conflict,
    #[error("asset sink unavailable: {0}")]
    Unavailable(String),
}

/// Create-only, streaming, two-phase: `begin` → `write`* → `commit(sha256)` | `abort`.
/// Nothing is visible under the key before a successful commit, and a failed or aborted upload
/// leaves nothing behind (no partial object, no temp file).
#[async_trait]
pub trait AssetSink: Send + Sync {
    async fn begin(&self, key: &str, meta: &AssetMeta) -> Result<Box<dyn AssetUpload>, SinkError>;
}

#[async_trait]
pub trait AssetUpload: Send {
    async fn write(&mut self, chunk: Bytes) -> Result<(), SinkError>;
    /// Publishes the object if the bytes written hash to `sha256_hex`.
    async fn commit(self: Box<Self>, sha256_hex: &str) -> Result<CommitOutcome, SinkError>;
    /// Discards everything written. Never fails loudly: cleanup is best effort (S3's lifecycle
    /// rule catches what it misses).
    async fn abort(self: Box<Self>);
}

#[async_trait]
pub trait AssetEvents: Send + Sync {
    async fn publish(&self, events: &[AssetEvent]) -> Result<(), SinkError>;
    /// Connection status changes (`reauth_required`, `error`, `needs_review`, back to
    /// `active`), on the same channel as asset events.
    async fn publish_connection(&self, events: &[ConnectionEvent]) -> Result<(), SinkError>;
}
