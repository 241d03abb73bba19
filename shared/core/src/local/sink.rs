use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use serde_json::json;
use tokio::io::AsyncReadExt;

use super::writer::{BLOCK, Feed, Writer};
use crate::midstate::{self, Crc64};
use crate::ports::{AssetMeta, AssetSink, AssetUpload, CommitOutcome, ObjectDigest, SinkError, SinkResume};

/// Assets as files (see the module docs). Create-only: a commit publishes the object with a
/// hard link, which fails atomically if the key already exists. An upload is a temp file
/// under `tmp/`; suspended, the file stays (cut to a multiple of the granule) and its name
/// and CRC state are the resume state. The sink checks what it wrote by CRC-64/NVME against the
/// caller's [`ObjectDigest`], and an existing object under the key by the same CRC. A file of
/// [`LocalAssetSink::DIRECT_FROM`] bytes or more is written with direct I/O where the file
/// system takes it (see `writer.rs`).
#[derive(Debug, Clone)]
pub struct LocalAssetSink {
    root: PathBuf,
    granule: u64,
}

fn io(e: std::io::Error) -> SinkError {
    SinkError::Unavailable(e.to_string())
}

impl LocalAssetSink {
    /// Uploads suspend in steps of 8 MiB, as S3's smallest part.
    pub const DEFAULT_GRANULE: u64 = 8 * 1024 * 1024;

    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), granule: Self::DEFAULT_GRANULE }
    }

    /// Files of this size or more are written past the page cache, where the file system
    /// allows: below it, the page cache costs little and a direct write's wait would cost more.
    pub const DIRECT_FROM: u64 = 8 * 1024 * 1024;

    /// Uploads suspend in steps of `granule` bytes (at least 1).
    pub fn with_granule(mut self, granule: u64) -> Self {
        self.granule = granule.max(1);
        self
    }

    /// An upload into `tmp`, which holds `written` bytes summed by `crc`. Suspended again
    /// before the next granule, a resumed one keeps what it had: its start is marked.
    fn upload(
        &self,
        key: &str,
        meta: &AssetMeta,
        tmp: PathBuf,
        writer: Option<Writer>,
        crc: Crc64,
        written: u64,
    ) -> LocalUpload {
        LocalUpload {
            root: self.root.clone(),
            key: key.to_owned(),
            meta: meta.clone(),
            tmp,
            feed: writer.map(Feed::start),
            mark: (written > 0).then(|| (written, crc.state())),
            crc,
            written,
            granule: self.granule,
            keep: false,
        }
    }

    /// The temp file a resume state names: a bare file name this sink generates, never a path.
    fn suspended_file(&self, from: &SinkResume) -> Option<(PathBuf, Crc64)> {
        let (name, state) = from.state.split_once('/')?;
        let plain = name.strip_suffix(".part")?;
        if plain.is_empty() || !plain.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
            return None;
        }
        let crc = Crc64::resume(u64::from_str_radix(state, 16).ok().filter(|_| state.len() == 16)?);
        Some((self.root.join("tmp").join(name), crc))
    }

    /// The temp file `tmp`, written from byte `at` on: directly when the file is large, and
    /// suspends (at multiples of the granule) keep the writes aligned.
    async fn writer(&self, tmp: &Path, at: u64, meta: &AssetMeta) -> Result<Writer, SinkError> {
        let direct =
            meta.size.is_some_and(|s| s >= Self::DIRECT_FROM) && self.granule.is_multiple_of(BLOCK as u64);
        let tmp = tmp.to_path_buf();
        let writer = tokio::task::spawn_blocking(move || Writer::open(&tmp, at, direct))
            .await
            .map_err(writer_failed)?
            .map_err(io)?;
        if direct && !writer.is_direct() {
            tracing::debug!("the file system refused direct I/O: the large file goes through the page cache");
        }
        Ok(writer)
    }

    /// Where the object of `key` lives (it may not exist).
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.join("objects").join(key)
    }

    /// Temp files of uploads in progress (should be none after a run).
    pub fn temp_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.root.join("tmp"))
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default()
    }
}

fn finished() -> SinkError {
    SinkError::Unavailable("upload already finished".into())
}

fn writer_failed(e: tokio::task::JoinError) -> SinkError {
    SinkError::Unavailable(format!("the file writer failed: {e}"))
}

async fn crc64_of_file(path: &Path) -> std::io::Result<u64> {
    let mut f = tokio::fs::File::open(path).await?;
    let mut h = Crc64::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.value())
}

struct LocalUpload {
    root: PathBuf,
    key: String,
    meta: AssetMeta,
    tmp: PathBuf,
    /// The temp file's writer, on a thread of its own; gone once the upload is finished.
    feed: Option<Feed>,
    crc: Crc64,
    written: u64,
    granule: u64,
    /// The CRC state at the last multiple of the granule.
    mark: Option<(u64, u64)>,
    /// Suspended: the temp file outlives the upload.
    keep: bool,
}

#[async_trait]
impl AssetSink for LocalAssetSink {
    async fn begin(&self, key: &str, meta: &AssetMeta) -> Result<Box<dyn AssetUpload>, SinkError> {
        let tmp_dir = self.root.join("tmp");
        tokio::fs::create_dir_all(&tmp_dir).await.map_err(io)?;
        let tmp = tmp_dir.join(format!("{}.part", crate::ids::RunId::generate()));
        tokio::fs::File::create_new(&tmp).await.map_err(io)?;
        let mut upload = self.upload(key, meta, tmp, None, Crc64::new(), 0);
        // Opened once the upload owns the file: a failure here leaves no temp file (Drop).
        upload.feed = Some(Feed::start(self.writer(&upload.tmp, 0, meta).await?));
        Ok(Box::new(upload))
    }

    fn granule(&self, _size: Option<u64>) -> Option<u64> {
        Some(self.granule)
    }

    async fn resume(
        &self,
        key: &str,
        meta: &AssetMeta,
        from: &SinkResume,
    ) -> Result<Box<dyn AssetUpload>, SinkError> {
        let (tmp, crc) = self
            .suspended_file(from)
            .ok_or_else(|| SinkError::Unavailable("not a suspended upload of this sink".into()))?;
        let file = tokio::fs::OpenOptions::new().write(true).open(&tmp).await.map_err(io)?;
        let len = file.metadata().await.map_err(io)?.len();
        if len < from.offset {
            return Err(SinkError::Unavailable(format!(
                "the suspended upload holds {len} of {} bytes",
                from.offset
            )));
        }
        // Bytes past the offset (none, unless a suspend was cut short) are written again.
        file.set_len(from.offset).await.map_err(io)?;
        drop(file);
        let writer = self.writer(&tmp, from.offset, meta).await?;
        Ok(Box::new(self.upload(key, meta, tmp, Some(writer), crc, from.offset)))
    }

    async fn discard(&self, _key: &str, from: &SinkResume) {
        if let Some((tmp, _)) = self.suspended_file(from) {
            let _ = tokio::fs::remove_file(tmp).await;
        }
    }
}

impl LocalUpload {
    /// Everything received, written; then `last`, if any; then the writer is done.
    async fn close(&mut self, last: Option<super::writer::Job>) -> Result<(), SinkError> {
        self.feed.take().ok_or_else(finished)?.close(last).await.map_err(io)
    }

    async fn publish(&mut self, digest: &ObjectDigest) -> Result<CommitOutcome, SinkError> {
        self.close(None).await?;
        digest.check(self.crc.value())?;
        let target = self.root.join("objects").join(&self.key);
        if let Some(dir) = target.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        let outcome = match tokio::fs::hard_link(&self.tmp, &target).await {
            Ok(()) => CommitOutcome::Created,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                if crc64_of_file(&target).await.map_err(io)? == digest.crc64 {
                    CommitOutcome::AlreadyExists
                } else {
                    return Err(SinkError::Conflict);
                }
            }
            Err(e) => return Err(io(e)),
        };
        if outcome == CommitOutcome::Created {
            self.write_meta(digest).await?;
        }
        Ok(outcome)
    }

    async fn write_meta(&self, digest: &ObjectDigest) -> Result<(), SinkError> {
        let m = &self.meta;
        let doc = json!({
            "key": self.key,
            "content_type": m.content_type,
            "size": m.size,
            "checksum": ObjectDigest::label(digest.crc64),
            "original_name": m.original_name,
            "source_path": m.source_path,
            "provider": m.provider,
            "provider_id": m.provider_id,
            "content_version": m.content_version,
            "provider_hash": m.provider_hash,
        });
        let path = self.root.join("meta").join(format!("{}.json", self.key));
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        let tmp = path.with_extension("json.tmp");
        tokio::fs::write(&tmp, serde_json::to_vec_pretty(&doc).unwrap_or_default()).await.map_err(io)?;
        tokio::fs::rename(&tmp, &path).await.map_err(io)
    }
}

#[async_trait]
impl AssetUpload for LocalUpload {
    async fn write(&mut self, chunk: Bytes) -> Result<(), SinkError> {
        // Committed or suspended: unusable. (A failed write shows at a later one, or the end.)
        let feed = self.feed.as_mut().ok_or_else(finished)?;
        for (piece, mark) in midstate::pieces(self.written, self.granule, &chunk) {
            self.crc.update(piece);
            if let Some(at) = mark {
                self.mark = Some((at, self.crc.state()));
            }
        }
        self.written += chunk.len() as u64;
        feed.write(chunk).await.map_err(io)
    }

    async fn commit(mut self: Box<Self>, digest: &ObjectDigest) -> Result<CommitOutcome, SinkError> {
        // The temp file goes in every case (Drop removes it).
        self.publish(digest).await
    }

    async fn abort(self: Box<Self>) {}

    async fn suspend(mut self: Box<Self>, _within: std::time::Duration) -> Option<SinkResume> {
        let (offset, state) = self.mark.take()?;
        // The mark may fall inside the pending bytes: they are written, then cut there.
        self.close(Some(Box::new(move |w| w.keep(offset)))).await.ok()?;
        let name = self.tmp.file_name()?.to_str()?.to_owned();
        self.keep = true;
        Some(SinkResume { offset, state: format!("{name}/{state:016x}") })
    }
}

impl Drop for LocalUpload {
    /// An upload abandoned for any reason (abort, error, a cancelled task) leaves no temp file;
    /// a suspended one leaves exactly its own.
    fn drop(&mut self) {
        self.feed.take();
        if !self.keep {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ProviderKind;

    fn meta() -> AssetMeta {
        AssetMeta {
            content_type: "text/plain".into(),
            size: Some(5),
            original_name: "a\r\n.txt".into(),
            source_path: "/x/a.txt".into(),
            provider: ProviderKind::Dropbox,
            provider_id: "id:1".into(),
            content_version: "v".into(),
            provider_hash: None,
        }
    }

    fn digest(b: &[u8]) -> ObjectDigest {
        ObjectDigest::of(b)
    }

    #[tokio::test]
    async fn create_only_identical_is_already_exists_and_nothing_leaks() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalAssetSink::new(dir.path());
        for expected in [CommitOutcome::Created, CommitOutcome::AlreadyExists] {
            let mut up = sink.begin("c/k/1", &meta()).await.unwrap();
            up.write(Bytes::from_static(b"hel")).await.unwrap();
            up.write(Bytes::from_static(b"lo")).await.unwrap();
            assert_eq!(up.commit(&digest(b"hello")).await.unwrap(), expected);
        }
        assert_eq!(std::fs::read(sink.object_path("c/k/1")).unwrap(), b"hello");
        assert!(sink.temp_files().is_empty());

        let mut up = sink.begin("c/k/1", &meta()).await.unwrap();
        up.write(Bytes::from_static(b"HELLO")).await.unwrap();
        assert_eq!(up.commit(&digest(b"HELLO")).await, Err(SinkError::Conflict));
        assert_eq!(std::fs::read(sink.object_path("c/k/1")).unwrap(), b"hello");
        assert!(sink.temp_files().is_empty());
    }

    #[tokio::test]
    async fn wrong_hash_abort_and_drop_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let sink = LocalAssetSink::new(dir.path());
        let mut up = sink.begin("c/k/2", &meta()).await.unwrap();
        up.write(Bytes::from_static(b"hello")).await.unwrap();
        assert!(matches!(up.commit(&digest(b"other")).await, Err(SinkError::Integrity { .. })));
        assert!(!sink.object_path("c/k/2").exists());

        let mut up = sink.begin("c/k/3", &meta()).await.unwrap();
        up.write(Bytes::from_static(b"x")).await.unwrap();
        up.abort().await;
        let mut up = sink.begin("c/k/4", &meta()).await.unwrap();
        up.write(Bytes::from_static(b"x")).await.unwrap();
        drop(up);
        assert!(sink.temp_files().is_empty());
        assert!(!sink.object_path("c/k/3").exists() && !sink.object_path("c/k/4").exists());
    }
}
