use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use crate::domain::{AssetEvent, ConnectionEvent};
use crate::midstate;
use crate::midstate::Crc64;
use crate::ports::{
    AssetEvents, AssetMeta, AssetSink, AssetUpload, CommitOutcome, ObjectDigest, SinkError, SinkResume,
};

/// What a [`MemorySink`] keeps per object: the digest and size, not the bytes, so tests can
/// sync gigabytes through it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub sha256: String,
    pub size: u64,
    pub meta: AssetMeta,
}

#[derive(Debug, Default)]
struct Inner {
    objects: Mutex<BTreeMap<String, StoredObject>>,
    open_uploads: AtomicU64,
    commits: AtomicU64,
    /// Original names whose uploads the sink refuses (a test's per-file sink failure).
    refused: Mutex<std::collections::BTreeSet<String>>,
    /// Suspended uploads by token: the key, the bytes held and the hash states there.
    suspended: Mutex<BTreeMap<String, Suspended>>,
    resumed: AtomicU64,
    /// Uploads are suspended in steps of this many bytes; 0: never (they abort).
    granule: AtomicU64,
}

/// A suspended upload: its key, the bytes it holds and its SHA-256 and CRC states there.
type Suspended = (String, u64, Vec<u8>, u64);

/// An asset sink that hashes what it receives and keeps only digests: it checks the CRC of
/// [`ObjectDigest`] as the production sinks do, and computes a SHA-256 of its own, so a test's
/// [`StoredObject::sha256`] is a witness independent of the engine. Uploads suspend in
/// steps of [`MemorySink::DEFAULT_GRANULE`] bytes (see [`MemorySink::with_granule`]).
#[derive(Debug, Clone)]
pub struct MemorySink {
    inner: Arc<Inner>,
}

impl Default for MemorySink {
    fn default() -> Self {
        Self::with_granule(Self::DEFAULT_GRANULE)
    }
}

impl MemorySink {
    /// S3's smallest part: the same step as the production sink for files up to 78 GiB.
    pub const DEFAULT_GRANULE: u64 = 8 * 1024 * 1024;

    pub fn new() -> Self {
        Self::default()
    }

    /// Uploads suspend in steps of `granule` bytes (0: they cannot be suspended).
    pub fn with_granule(granule: u64) -> Self {
        let sink = Self { inner: Arc::default() };
        sink.inner.granule.store(granule, Ordering::SeqCst);
        sink
    }

    /// From now on, uploads suspend in steps of `granule` bytes (0: they cannot be suspended).
    pub fn set_granule(&self, granule: u64) {
        self.inner.granule.store(granule, Ordering::SeqCst);
    }

    /// Uploads suspended and neither resumed nor discarded.
    pub fn suspended(&self) -> usize {
        self.inner.suspended.lock().expect("sink lock").len()
    }

    /// Uploads continued from a suspended state.
    pub fn resumed(&self) -> u64 {
        self.inner.resumed.load(Ordering::SeqCst)
    }
    pub fn objects(&self) -> BTreeMap<String, StoredObject> {
        self.inner.objects.lock().expect("sink lock").clone()
    }
    /// Uploads begun and neither committed nor aborted (a leak if non-zero after a run).
    pub fn open_uploads(&self) -> u64 {
        self.inner.open_uploads.load(Ordering::SeqCst)
    }
    /// Successful commits that created an object.
    pub fn created(&self) -> u64 {
        self.inner.commits.load(Ordering::SeqCst)
    }
    /// From now on, refuses to begin an upload of a file named `name` (`Unavailable`).
    pub fn refuse(&self, name: &str) {
        self.inner.refused.lock().expect("sink lock").insert(name.to_owned());
    }
}

struct MemoryUpload {
    inner: Arc<Inner>,
    key: String,
    meta: AssetMeta,
    hasher: Sha256,
    crc: Crc64,
    size: u64,
    /// The hash states at the last multiple of the granule.
    mark: Option<(u64, Vec<u8>, u64)>,
}

#[async_trait]
impl AssetSink for MemorySink {
    async fn begin(&self, key: &str, meta: &AssetMeta) -> Result<Box<dyn AssetUpload>, SinkError> {
        if self.inner.refused.lock().expect("sink lock").contains(&meta.original_name) {
            return Err(SinkError::Unavailable(format!("refused {}", meta.original_name)));
        }
        self.inner.open_uploads.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(MemoryUpload {
            inner: self.inner.clone(),
            key: key.to_owned(),
            meta: meta.clone(),
            hasher: Sha256::new(),
            crc: Crc64::new(),
            size: 0,
            mark: None,
        }))
    }

    fn granule(&self, _size: Option<u64>) -> Option<u64> {
        Some(self.inner.granule.load(Ordering::SeqCst)).filter(|g| *g > 0)
    }

    async fn resume(
        &self,
        key: &str,
        meta: &AssetMeta,
        from: &SinkResume,
    ) -> Result<Box<dyn AssetUpload>, SinkError> {
        let gone = || SinkError::Unavailable(format!("no suspended upload {}", from.state));
        let mut suspended = self.inner.suspended.lock().expect("sink lock");
        let (k, offset, state, crc) = suspended.get(&from.state).ok_or_else(gone)?;
        if k != key || *offset != from.offset {
            return Err(gone());
        }
        let hasher = midstate::restore(state).ok_or_else(gone)?;
        let (state, crc) = (state.clone(), *crc);
        suspended.remove(&from.state);
        self.inner.open_uploads.fetch_add(1, Ordering::SeqCst);
        self.inner.resumed.fetch_add(1, Ordering::SeqCst);
        Ok(Box::new(MemoryUpload {
            inner: self.inner.clone(),
            key: key.to_owned(),
            meta: meta.clone(),
            hasher,
            crc: Crc64::resume(crc),
            size: from.offset,
            // Suspended again before the next granule, it keeps what it had.
            mark: Some((from.offset, state, crc)),
        }))
    }

    async fn discard(&self, _key: &str, from: &SinkResume) {
        self.inner.suspended.lock().expect("sink lock").remove(&from.state);
    }
}

#[async_trait]
impl AssetUpload for MemoryUpload {
    async fn write(&mut self, chunk: Bytes) -> Result<(), SinkError> {
        let every = self.inner.granule.load(Ordering::SeqCst);
        for (piece, mark) in midstate::pieces(self.size, every, &chunk) {
            self.hasher.update(piece);
            self.crc.update(piece);
            if let Some(at) = mark {
                self.mark = Some((at, midstate::save(&self.hasher), self.crc.state()));
            }
        }
        self.size += chunk.len() as u64;
        Ok(())
    }

    async fn commit(self: Box<Self>, digest: &ObjectDigest) -> Result<CommitOutcome, SinkError> {
        self.inner.open_uploads.fetch_sub(1, Ordering::SeqCst);
        digest.check(self.crc.value())?;
        let actual = hex::encode(self.hasher.finalize());
        let mut objects = self.inner.objects.lock().expect("sink lock");
        if let Some(existing) = objects.get(&self.key) {
            return if existing.sha256 == actual {
                Ok(CommitOutcome::AlreadyExists)
            } else {
                Err(SinkError::Conflict)
            };
        }
        objects.insert(
            self.key.clone(),
            StoredObject { sha256: actual, size: self.size, meta: self.meta.clone() },
        );
        self.inner.commits.fetch_add(1, Ordering::SeqCst);
        Ok(CommitOutcome::Created)
    }

    async fn abort(self: Box<Self>) {
        self.inner.open_uploads.fetch_sub(1, Ordering::SeqCst);
    }

    async fn suspend(self: Box<Self>, _within: std::time::Duration) -> Option<SinkResume> {
        self.inner.open_uploads.fetch_sub(1, Ordering::SeqCst);
        let (offset, state, crc) = self.mark?;
        let token = crate::ids::RunId::generate().to_string();
        self.inner.suspended.lock().expect("sink lock").insert(token.clone(), (self.key, offset, state, crc));
        Some(SinkResume { offset, state: token })
    }
}

/// Collects asset events in order.
#[derive(Debug, Default)]
pub struct MemoryEvents {
    events: Mutex<Vec<AssetEvent>>,
    connection_events: Mutex<Vec<ConnectionEvent>>,
}

impl MemoryEvents {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn all(&self) -> Vec<AssetEvent> {
        self.events.lock().expect("events lock").clone()
    }
    /// Connection status changes, in order.
    pub fn connection_events(&self) -> Vec<ConnectionEvent> {
        self.connection_events.lock().expect("events lock").clone()
    }
}

#[async_trait]
impl AssetEvents for MemoryEvents {
    async fn publish(&self, events: &[AssetEvent]) -> Result<(), SinkError> {
        self.events.lock().expect("events lock").extend_from_slice(events);
        Ok(())
    }
    async fn publish_connection(&self, events: &[ConnectionEvent]) -> Result<(), SinkError> {
        self.connection_events.lock().expect("events lock").extend_from_slice(events);
        Ok(())
    }
}
