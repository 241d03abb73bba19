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
    /// The bytes written do not hash to what the caller expected; nothing was kept. The values
    /// name their algorithm (`crc64nvme:…`).
    #[error("integrity check failed: expected {expected}, wrote {actual}")]
    Integrity { expected: String, actual: String },
    /// A different object already exists under the key (keys are content-versioned, so this
    /// means a bug or tampering, never a normal redelivery).
    #[error("a different object already exists under the key")]
    Conflict,
    #[error("asset sink unavailable: {0}")]
    Unavailable(String),
}

/// What the caller computed over an object's bytes as it wrote them, for [`AssetUpload::commit`]:
/// their CRC-64/NVME ([`crate::midstate::Crc64`]). The sink computes its own over what it
/// stores and publishes nothing on a mismatch — a byte lost, doubled or misplaced between the
/// caller and the sink. It is also how a sink tells that an object already under the key is
/// the same object (`AlreadyExists`): keys name the content version, so a different object
/// there means a bug (which a 64-bit CRC misses once in 2^64) or tampering (a forged CRC needs
/// write access to the store, which could as well replace the object after us).
/// (Whether the bytes are the provider's is the connector's check, against the provider's
/// own hash, before they reach the caller.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObjectDigest {
    pub crc64: u64,
}

impl ObjectDigest {
    /// The digest of `bytes` held whole (small objects, tests).
    pub fn of(bytes: &[u8]) -> Self {
        Self { crc64: crate::midstate::Crc64::of(bytes) }
    }

    /// As a sink writes it (metadata, messages): `crc64nvme:` and 16 hex digits.
    pub fn label(crc64: u64) -> String {
        format!("crc64nvme:{crc64:016x}")
    }

    /// [`SinkError::Integrity`] unless the sink's own CRC, `stored`, is this digest's.
    pub fn check(&self, stored: u64) -> Result<(), SinkError> {
        match stored == self.crc64 {
            true => Ok(()),
            false => {
                Err(SinkError::Integrity { expected: Self::label(self.crc64), actual: Self::label(stored) })
            }
        }
    }
}

/// Where a suspended upload stands (ARCHITECTURE §7 "Large files"): enough for
/// [`AssetSink::resume`] to continue it in another process. Fixed-size whatever the object's
/// size: an upload id or a temp file's name and a hash midstate, never the bytes or a list of
/// parts.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SinkResume {
    /// Bytes the sink holds durably: the next write is byte `offset` of the object.
    pub offset: u64,
    /// The sink's own state, opaque to everyone else.
    pub state: String,
}

/// Create-only, streaming, two-phase: `begin` → `write`* → `commit(sha256)` | `abort`.
/// Nothing is visible under the key before a successful commit, and a failed or aborted upload
/// leaves nothing behind (no partial object, no temp file).
///
/// Resumable (optional): `write`* → `suspend` keeps what is durable — a multiple of
/// [`granule`](AssetSink::granule) bytes — and returns a [`SinkResume`]; `resume` in any
/// process continues from it, `discard` drops it. A sink that cannot resume keeps the
/// defaults: `suspend` aborts, `resume` refuses.
#[async_trait]
pub trait AssetSink: Send + Sync {
    async fn begin(&self, key: &str, meta: &AssetMeta) -> Result<Box<dyn AssetUpload>, SinkError>;

    /// The step, in bytes, at which an upload of an object of `size` bytes can be suspended
    /// (S3: the part size). `None`: it cannot be.
    fn granule(&self, _size: Option<u64>) -> Option<u64> {
        None
    }

    /// Continues the upload `from` describes, of the same `key` and `meta`. `Err` when it is
    /// gone (expired, aborted, its temp file removed) or unreadable: the caller starts over.
    async fn resume(
        &self,
        _key: &str,
        _meta: &AssetMeta,
        _from: &SinkResume,
    ) -> Result<Box<dyn AssetUpload>, SinkError> {
        Err(SinkError::Unavailable("this sink cannot resume an upload".into()))
    }

    /// Drops a suspended upload that will not be resumed. Best effort, like `abort`.
    async fn discard(&self, _key: &str, _from: &SinkResume) {}
}

#[async_trait]
pub trait AssetUpload: Send {
    async fn write(&mut self, chunk: Bytes) -> Result<(), SinkError>;
    /// Publishes the object if the bytes written are those `digest` was computed over.
    async fn commit(self: Box<Self>, digest: &ObjectDigest) -> Result<CommitOutcome, SinkError>;
    /// Discards everything written. Never fails loudly: cleanup is best effort (S3's lifecycle
    /// rule catches what it misses).
    async fn abort(self: Box<Self>);

    /// Stops writing and keeps the longest durable prefix — a multiple of the sink's granule —
    /// waiting at most `within` for writes still in flight. `None`: nothing could be kept,
    /// and the upload was aborted.
    async fn suspend(self: Box<Self>, _within: std::time::Duration) -> Option<SinkResume> {
        self.abort().await;
        None
    }
}

#[async_trait]
pub trait AssetEvents: Send + Sync {
    async fn publish(&self, events: &[AssetEvent]) -> Result<(), SinkError>;
    /// Connection status changes (`reauth_required`, `error`, `needs_review`, back to
    /// `active`), on the same channel as asset events.
    async fn publish_connection(&self, events: &[ConnectionEvent]) -> Result<(), SinkError>;
}
