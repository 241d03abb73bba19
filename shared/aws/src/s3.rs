//! The asset sink on S3: streamed multipart uploads with bounded memory, create-only.
//!
//! - Part size is max(8 MiB, ceil(size / 10,000)) rounded up to a MiB, so any file fits S3's
//!   10,000 parts (8 MiB parts up to 78 GiB, beyond the default 50 GiB maximum). A file smaller
//!   than one part is a single PutObject.
//! - Parts go up in parallel, as the AWS CLI sends them: up to 8 of one upload at once, within
//!   a pool shared by every upload of the sink (16 parts by default, [`S3Sink::with_part_pool`]).
//!   Memory is therefore bounded per process, not per upload: the pool's parts in flight plus
//!   one part being filled per upload, whatever the sizes and however many transfers run.
//! - A part's buffer is used again once the part is stored: a large upload allocates its
//!   buffers once, and the spares go when the sink has no upload open. Allocated and freed per
//!   part (on one thread, freed on another, by the allocator's heaps, which keep what is freed),
//!   a 1 GiB upload's peak RSS wandered from ~90 MiB to 157 MiB.
//! - The object appears only at completion, with `If-None-Match: *`: a 412 means the key
//!   exists; it is success if that object's CRC-64 is ours (a redelivery), a conflict if not.
//!   A 409 (`ConditionalRequestConflict`: a concurrent conditional write of the key) is retried
//!   a few times with backoff; the parts, or the small body, are still at hand.
//! - Any failure aborts the multipart upload (the bucket's lifecycle rule catches the rest).
//! - The SDK sends a CRC32 checksum with every part (the upload is created with CRC32 as its
//!   algorithm); the CRC-64/NVME of the whole stream is checked against the caller's
//!   ([`ObjectDigest`]) before completing. It is computed part by part as each is sent, so its
//!   state after every part is known.
//! - Suspend and resume (a transfer cut by an invocation's deadline): `suspend` waits a bounded
//!   time for the parts in flight and keeps the longest run of parts 1..=n that are stored; the
//!   resume state is the upload id, n, the part size and the CRC state after part n (fixed
//!   size: no ETags). `resume` reads the parts' ETags back with ListParts and continues at part
//!   n + 1; `discard` aborts the upload.
//! - Metadata (`x-amz-meta-*`) carries the original name, source path, provider, provider id,
//!   content version and provider hash, percent-encoded (S3 metadata must be ASCII). S3 refuses
//!   more than 2 KB of user metadata (names and values together), and percent-encoding
//!   triples a non-ASCII name (a 300-character CJK name is ~2,700 bytes), so each field has a
//!   fixed budget ([`object_metadata`]): a value over it is cut at a character boundary before
//!   encoding and ends in `…~sha256:` + the first 16 hex digits of the full value's SHA-256,
//!   and `x-amz-meta-truncated` lists the fields cut (`original-name,source-path`). The whole
//!   set fits 2 KB by construction, whatever the lengths or scripts. The metadata is a
//!   convenience for whoever browses the bucket: the full, untruncated values live on the item
//!   record in the state store (name, path, provider id, revision, content hash).

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use extconn_core::midstate::Crc64;
use extconn_core::ports::{
    AssetMeta, AssetSink, AssetUpload, CommitOutcome, ObjectDigest, SinkError, SinkResume,
};
use sha2::{Digest, Sha256};
use std::collections::VecDeque;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::Instrument;

const MIB: u64 = 1024 * 1024;
const MIN_PART: u64 = 8 * MIB;
/// Parts of one upload in flight at most (the AWS CLI's default concurrency is 10).
pub const PARTS_PER_UPLOAD: usize = 8;
/// Parts in flight at most across every upload of one sink, by default.
pub const DEFAULT_PART_POOL: usize = 16;
/// Attempts of a create-only write answered 409.
const CONFLICT_ATTEMPTS: u32 = 4;

/// The part size for an object of `size` bytes (unknown → the minimum).
pub fn part_size(size: Option<u64>) -> u64 {
    let needed = size.map_or(0, |s| s.div_ceil(10_000));
    needed.max(MIN_PART).div_ceil(MIB) * MIB
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode_meta(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// S3's limit on user metadata: every `x-amz-meta-*` name and value, in bytes, together.
pub const METADATA_LIMIT: usize = 2048;
const META_PREFIX: &str = "x-amz-meta-";
/// The flag listing the fields cut to fit.
const TRUNCATED: &str = "truncated";
/// Each field's budget for its encoded value, in bytes. The ids, version and hash of the
/// providers we know are far below theirs; names and paths are what gets cut.
const FIELDS: [(&str, usize); 6] = [
    ("original-name", 600),
    ("source-path", 760),
    ("provider", 40),
    ("provider-id", 192),
    ("content-version", 96),
    ("provider-hash", 96),
];
/// The encoded marker's length: `…~sha256:` (19 bytes encoded) and 16 hex digits.
const MARKER_LEN: usize = 19 + 16;

/// The budgets add up: every name with its prefix, every value at its budget, and the flag
/// naming every field, within the limit; every budget holds at least the marker.
const _: () = {
    let mut total = META_PREFIX.len() + TRUNCATED.len();
    let mut i = 0;
    while i < FIELDS.len() {
        let (name, budget) = FIELDS[i];
        assert!(budget >= MARKER_LEN);
        // The name twice: as a metadata name, and in the flag's value (with a comma).
        total += META_PREFIX.len() + name.len() + budget + name.len() + 1;
        i += 1;
    }
    assert!(total <= METADATA_LIMIT);
};

/// The object's user metadata (names without the `x-amz-meta-` prefix), within
/// [`METADATA_LIMIT`] whatever the values: see the module doc.
pub fn object_metadata(meta: &AssetMeta) -> Vec<(String, String)> {
    let values = [
        Some(meta.original_name.as_str()),
        Some(meta.source_path.as_str()),
        Some(meta.provider.as_str()),
        Some(meta.provider_id.as_str()),
        Some(meta.content_version.as_str()),
        meta.provider_hash.as_deref(),
    ];
    let mut out = Vec::with_capacity(FIELDS.len() + 1);
    let mut cut = Vec::new();
    for ((name, budget), value) in FIELDS.into_iter().zip(values) {
        let Some(value) = value else { continue };
        let (encoded, whole) = fit(value, budget);
        if !whole {
            cut.push(name);
        }
        out.push((name.to_owned(), encoded));
    }
    if !cut.is_empty() {
        out.push((TRUNCATED.to_owned(), cut.join(",")));
    }
    out
}

/// The size S3 counts for user metadata: `x-amz-meta-` names and values, in bytes.
pub fn metadata_size(metadata: &[(String, String)]) -> usize {
    metadata.iter().map(|(k, v)| META_PREFIX.len() + k.len() + v.len()).sum()
}

/// Bytes of `c` once percent-encoded by [`encode_meta`].
fn encoded_len(c: char) -> usize {
    if c.is_ascii_alphanumeric() || "-._~".contains(c) { 1 } else { 3 * c.len_utf8() }
}

/// `v` percent-encoded, and whether it is whole: if that is over `budget` bytes, the longest
/// prefix of whole characters that fits beside the marker, then the marker (`…~sha256:` and
/// 16 hex digits of the SHA-256 of all of `v`).
fn fit(v: &str, budget: usize) -> (String, bool) {
    let encoded = encode_meta(v);
    if encoded.len() <= budget {
        return (encoded, true);
    }
    let marker = format!("{}{}", encode_meta("…~sha256:"), hex::encode(&Sha256::digest(v.as_bytes())[..8]));
    debug_assert_eq!(marker.len(), MARKER_LEN);
    let room = budget.saturating_sub(marker.len());
    let (mut used, mut end) = (0, 0);
    for (i, c) in v.char_indices() {
        used += encoded_len(c);
        if used > room {
            break;
        }
        end = i + c.len_utf8();
    }
    (format!("{}{marker}", encode_meta(&v[..end])), false)
}

fn unavailable<E: std::error::Error + 'static>(e: SdkError<E>) -> SinkError {
    SinkError::Unavailable(DisplayErrorContext(&e).to_string())
}

fn status<E>(e: &SdkError<E>) -> Option<u16> {
    e.raw_response().map(|r| r.status().as_u16())
}

#[derive(Debug, Clone)]
pub struct S3Sink {
    client: Client,
    bucket: String,
    /// One permit per part in flight, shared by the sink's clones and uploads.
    parts: Arc<Semaphore>,
    /// Buffers of parts already stored, for the next parts (at most `spares` of them).
    buffers: Arc<std::sync::Mutex<Vec<BytesMut>>>,
    spares: usize,
    /// Uploads open: the last to close drops the spare buffers.
    open: Arc<std::sync::atomic::AtomicUsize>,
}

impl S3Sink {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self::with_part_pool(client, bucket, DEFAULT_PART_POOL)
    }

    /// A sink whose uploads together keep at most `parts` parts in flight (at least one).
    pub fn with_part_pool(client: Client, bucket: impl Into<String>, parts: usize) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            parts: Arc::new(Semaphore::new(parts.max(1))),
            buffers: Arc::default(),
            spares: parts.max(1),
            open: Arc::default(),
        }
    }

    /// The sink as an open upload holds it (see [`S3Upload`]'s `Drop`).
    fn opened(&self) -> S3Sink {
        self.open.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.clone()
    }

    /// A buffer for a part of `size` bytes: a spare one when there is one big enough (a file
    /// smaller than a part gets its own, exact).
    fn part_buffer(&self, size: usize) -> BytesMut {
        if size >= MIN_PART as usize {
            let mut spares = self.buffers.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(i) = spares.iter().position(|b| b.capacity() >= size) {
                return spares.swap_remove(i);
            }
        }
        BytesMut::with_capacity(size)
    }

    /// Keeps a stored part's buffer for a next part, when nothing else holds it any more.
    fn keep_buffer(buffers: &std::sync::Mutex<Vec<BytesMut>>, spares: usize, body: Bytes) {
        if let Ok(mut b) = body.try_into_mut() {
            b.clear();
            let mut kept = buffers.lock().unwrap_or_else(|p| p.into_inner());
            if b.capacity() >= MIN_PART as usize && kept.len() < spares {
                kept.push(b);
            }
        }
    }

    /// CRC-64/NVME of an existing object, streamed.
    async fn existing_crc64(&self, key: &str) -> Result<u64, SinkError> {
        let out = self.client.get_object().bucket(&self.bucket).key(key).send().await.map_err(unavailable)?;
        let mut body = out.body;
        let mut h = Crc64::new();
        while let Some(chunk) = body.try_next().await.map_err(|e| SinkError::Unavailable(e.to_string()))? {
            h.update(&chunk);
        }
        Ok(h.value())
    }
}

struct Multipart {
    upload_id: String,
    next_part: i32,
    done: Vec<CompletedPart>,
    in_flight: JoinSet<Result<CompletedPart, SinkError>>,
    /// The CRC state after each of the latest parts sent (part number, state).
    marks: VecDeque<(i32, u64)>,
}

/// Parts whose CRC state is kept: more than can be in flight, so the state after the last
/// stored part of a suspended upload is always among them.
const MARKS_KEPT: usize = PARTS_PER_UPLOAD * 2 + 2;

/// What a suspended upload's [`SinkResume::state`] holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct Suspended {
    upload_id: String,
    /// Parts 1..=parts are stored.
    parts: i32,
    part_size: u64,
    /// CRC-64/NVME state after them.
    crc64: u64,
}

struct S3Upload {
    sink: S3Sink,
    key: String,
    meta: AssetMeta,
    part_size: usize,
    buf: BytesMut,
    crc: Crc64,
    multipart: Option<Multipart>,
}

#[async_trait]
impl AssetSink for S3Sink {
    async fn begin(&self, key: &str, meta: &AssetMeta) -> Result<Box<dyn AssetUpload>, SinkError> {
        let part = usize::try_from(part_size(meta.size)).unwrap_or(usize::MAX);
        Ok(Box::new(S3Upload {
            sink: self.opened(),
            key: key.to_owned(),
            meta: meta.clone(),
            part_size: part,
            buf: BytesMut::new(),
            crc: Crc64::new(),
            multipart: None,
        }))
    }

    fn granule(&self, size: Option<u64>) -> Option<u64> {
        Some(part_size(size))
    }

    async fn resume(
        &self,
        key: &str,
        meta: &AssetMeta,
        from: &SinkResume,
    ) -> Result<Box<dyn AssetUpload>, SinkError> {
        let bad = |why: &str| SinkError::Unavailable(format!("cannot resume the upload: {why}"));
        let st: Suspended = serde_json::from_str(&from.state).map_err(|_| bad("unreadable state"))?;
        let part = part_size(meta.size);
        if st.part_size != part || st.parts < 1 || from.offset != st.parts as u64 * part {
            return Err(bad("the state does not match the object"));
        }
        let done = self.stored_parts(key, &st.upload_id, st.parts).await?;
        Ok(Box::new(S3Upload {
            sink: self.opened(),
            key: key.to_owned(),
            meta: meta.clone(),
            part_size: usize::try_from(part).unwrap_or(usize::MAX),
            buf: BytesMut::new(),
            multipart: Some(Multipart {
                upload_id: st.upload_id,
                next_part: st.parts + 1,
                done,
                in_flight: JoinSet::new(),
                // Suspended again before another part is stored, it keeps what it had.
                marks: VecDeque::from([(st.parts, st.crc64)]),
            }),
            crc: Crc64::resume(st.crc64),
        }))
    }

    async fn discard(&self, key: &str, from: &SinkResume) {
        if let Ok(st) = serde_json::from_str::<Suspended>(&from.state) {
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&st.upload_id)
                .send()
                .await;
        }
    }
}

impl S3Sink {
    /// Parts 1..=`parts` of a multipart upload, read back with ListParts (1,000 a page). Any
    /// missing — or the upload gone — is an error: the caller starts over.
    async fn stored_parts(
        &self,
        key: &str,
        upload_id: &str,
        parts: i32,
    ) -> Result<Vec<CompletedPart>, SinkError> {
        let mut done = Vec::with_capacity(usize::try_from(parts).unwrap_or(0));
        let mut marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_parts()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .set_part_number_marker(marker.take())
                .send()
                .await
                .map_err(unavailable)?;
            for p in out.parts.unwrap_or_default() {
                let Some(n) = p.part_number.filter(|n| *n <= parts) else { continue };
                // Only parts sent before the suspend count; a later one is sent again.
                if usize::try_from(n).is_ok_and(|n| n == done.len() + 1) {
                    done.push(
                        CompletedPart::builder()
                            .part_number(n)
                            .set_e_tag(p.e_tag)
                            .set_checksum_crc32(p.checksum_crc32)
                            .build(),
                    );
                }
            }
            match (out.is_truncated, out.next_part_number_marker) {
                (Some(true), Some(next)) if done.len() < usize::try_from(parts).unwrap_or(0) => {
                    marker = Some(next)
                }
                _ => break,
            }
        }
        if done.len() != usize::try_from(parts).unwrap_or(usize::MAX) {
            return Err(SinkError::Unavailable(format!(
                "the suspended upload holds {} of its {parts} parts",
                done.len()
            )));
        }
        Ok(done)
    }
}

impl S3Upload {
    fn metadata(&self) -> Vec<(String, String)> {
        object_metadata(&self.meta)
    }

    /// Sends the buffered bytes as the next part, once fewer than [`PARTS_PER_UPLOAD`] of this
    /// upload are in flight and the sink's pool has room (a permit travels with the part).
    async fn flush_part(&mut self) -> Result<(), SinkError> {
        if self.multipart.is_none() {
            let mut req = self
                .sink
                .client
                .create_multipart_upload()
                .bucket(&self.sink.bucket)
                .key(&self.key)
                .content_type(&self.meta.content_type)
                // The parts' CRC32s, declared: S3 (and the emulator) combine them at completion
                // instead of checksumming the whole object again.
                .checksum_algorithm(ChecksumAlgorithm::Crc32);
            for (k, v) in self.metadata() {
                req = req.metadata(k, v);
            }
            let out = req.send().await.map_err(unavailable)?;
            let upload_id = out.upload_id.ok_or_else(|| SinkError::Unavailable("no upload id".into()))?;
            self.multipart = Some(Multipart {
                upload_id,
                next_part: 1,
                done: Vec::new(),
                in_flight: JoinSet::new(),
                marks: VecDeque::new(),
            });
        }
        let mp = self.multipart.as_mut().ok_or_else(|| SinkError::Unavailable("no upload".into()))?;
        while mp.in_flight.len() >= PARTS_PER_UPLOAD {
            let part =
                mp.in_flight.join_next().await.ok_or_else(|| SinkError::Unavailable("no part".into()))?;
            mp.done.push(part.map_err(|e| SinkError::Unavailable(e.to_string()))??);
        }
        let permit = self
            .sink
            .parts
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| SinkError::Unavailable("the part pool is closed".into()))?;
        // The whole buffer, not a split: nothing else keeps a reference to it, so once the part
        // is stored the buffer can serve the next one.
        let body: Bytes = std::mem::take(&mut self.buf).freeze();
        self.crc.update(&body);
        if mp.marks.len() == MARKS_KEPT {
            mp.marks.pop_front();
        }
        mp.marks.push_back((mp.next_part, self.crc.state()));
        let (client, bucket, key, upload_id, number) = (
            self.sink.client.clone(),
            self.sink.bucket.clone(),
            self.key.clone(),
            mp.upload_id.clone(),
            mp.next_part,
        );
        let (buffers, spares) = (self.sink.buffers.clone(), self.sink.spares);
        mp.next_part += 1;
        mp.in_flight.spawn(
            async move {
                let _permit = permit;
                let out = client
                    .upload_part()
                    .bucket(bucket)
                    .key(key)
                    .upload_id(upload_id)
                    .part_number(number)
                    .body(ByteStream::from(body.clone()))
                    .send()
                    .await;
                S3Sink::keep_buffer(&buffers, spares, body);
                let out = out.map_err(unavailable)?;
                Ok(CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag)
                    .set_checksum_crc32(out.checksum_crc32)
                    .build())
            }
            // A spawned part keeps the caller's span (the invocation's request id, the run).
            .in_current_span(),
        );
        Ok(())
    }

    async fn abort_multipart(&mut self) {
        if let Some(mut mp) = self.multipart.take() {
            mp.in_flight.abort_all();
            let _ = self
                .sink
                .client
                .abort_multipart_upload()
                .bucket(&self.sink.bucket)
                .key(&self.key)
                .upload_id(&mp.upload_id)
                .send()
                .await;
        }
    }

    /// A 412 on completion: the key exists. Ours if its bytes are ours.
    async fn resolve_existing(&self, digest: &ObjectDigest) -> Result<CommitOutcome, SinkError> {
        if self.sink.existing_crc64(&self.key).await? == digest.crc64 {
            Ok(CommitOutcome::AlreadyExists)
        } else {
            Err(SinkError::Conflict)
        }
    }

    async fn finish(&mut self, digest: &ObjectDigest) -> Result<CommitOutcome, SinkError> {
        if self.multipart.is_none() {
            let body = self.buf.split().freeze();
            self.crc.update(&body);
            digest.check(self.crc.value())?;
            for attempt in 1..=CONFLICT_ATTEMPTS {
                let mut req = self
                    .sink
                    .client
                    .put_object()
                    .bucket(&self.sink.bucket)
                    .key(&self.key)
                    .content_type(&self.meta.content_type)
                    .if_none_match("*")
                    .body(ByteStream::from(body.clone()));
                for (k, v) in self.metadata() {
                    req = req.metadata(k, v);
                }
                match req.send().await {
                    Ok(_) => return Ok(CommitOutcome::Created),
                    Err(e) if status(&e) == Some(412) => return self.resolve_existing(digest).await,
                    Err(e) if status(&e) == Some(409) && attempt < CONFLICT_ATTEMPTS => {
                        conflict_pause(attempt).await
                    }
                    Err(e) => return Err(unavailable(e)),
                }
            }
            return Err(SinkError::Unavailable("conditional write conflict persisted".into()));
        }
        if !self.buf.is_empty() {
            self.flush_part().await?;
        }
        digest.check(self.crc.value())?;
        let mp = self.multipart.as_mut().ok_or_else(|| SinkError::Unavailable("no upload".into()))?;
        while let Some(part) = mp.in_flight.join_next().await {
            mp.done.push(part.map_err(|e| SinkError::Unavailable(e.to_string()))??);
        }
        mp.done.sort_by_key(|p| p.part_number);
        let parts = CompletedMultipartUpload::builder().set_parts(Some(mp.done.clone())).build();
        let upload_id = mp.upload_id.clone();
        for attempt in 1..=CONFLICT_ATTEMPTS {
            let r = self
                .sink
                .client
                .complete_multipart_upload()
                .bucket(&self.sink.bucket)
                .key(&self.key)
                .upload_id(&upload_id)
                .if_none_match("*")
                .multipart_upload(parts.clone())
                .send()
                .await;
            match r {
                Ok(_) => {
                    self.multipart = None;
                    return Ok(CommitOutcome::Created);
                }
                Err(e) if status(&e) == Some(412) => return self.resolve_existing(digest).await,
                Err(e) if status(&e) == Some(409) && attempt < CONFLICT_ATTEMPTS => {
                    conflict_pause(attempt).await
                }
                Err(e) => return Err(unavailable(e)),
            }
        }
        Err(SinkError::Unavailable("conditional write conflict persisted".into()))
    }
}

async fn conflict_pause(attempt: u32) {
    tokio::time::sleep(std::time::Duration::from_millis(100 * 2u64.pow(attempt))).await;
}

impl Drop for S3Upload {
    /// The last upload open drops the spare part buffers: an idle sink holds no part memory.
    fn drop(&mut self) {
        if self.sink.open.fetch_sub(1, std::sync::atomic::Ordering::SeqCst) == 1 {
            self.sink.buffers.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}

#[async_trait]
impl AssetUpload for S3Upload {
    async fn write(&mut self, mut chunk: Bytes) -> Result<(), SinkError> {
        while !chunk.is_empty() {
            if self.buf.capacity() == 0 {
                // Each part fills one allocation of its own size, reserved up front (grown as it
                // fills, a buffer is copied at each doubling and may end up twice the part): a
                // spare from a stored part, or a new one.
                let size = self.meta.size.map_or(usize::MAX, |s| usize::try_from(s).unwrap_or(usize::MAX));
                self.buf = self.sink.part_buffer(self.part_size.min(size));
            }
            let take = chunk.len().min(self.part_size - self.buf.len());
            self.buf.extend_from_slice(&chunk.split_to(take));
            if self.buf.len() == self.part_size
                && let Err(e) = self.flush_part().await
            {
                self.abort_multipart().await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>, digest: &ObjectDigest) -> Result<CommitOutcome, SinkError> {
        let r = self.finish(digest).await;
        // Whatever happened, no multipart upload is left behind.
        self.abort_multipart().await;
        r
    }

    async fn abort(mut self: Box<Self>) {
        self.abort_multipart().await;
    }

    async fn suspend(mut self: Box<Self>, within: std::time::Duration) -> Option<SinkResume> {
        let mp = self.multipart.as_mut()?;
        // The buffered tail is not stored: it is downloaded again by the resume.
        let until = tokio::time::Instant::now() + within;
        while let Ok(Some(part)) = tokio::time::timeout_at(until, mp.in_flight.join_next()).await {
            if let Ok(Ok(part)) = part {
                mp.done.push(part);
            }
        }
        mp.in_flight.abort_all();
        let mut numbers: Vec<i32> = mp.done.iter().filter_map(|p| p.part_number).collect();
        numbers.sort_unstable();
        let stored = numbers.iter().zip(1..).take_while(|(n, i)| **n == *i).count();
        let parts = i32::try_from(stored).unwrap_or(0);
        let state = mp.marks.iter().find(|(n, _)| *n == parts).map(|(_, s)| *s);
        let Some(crc64) = state.filter(|_| parts > 0) else {
            self.abort_multipart().await;
            return None;
        };
        let part_size = self.part_size as u64;
        let st = Suspended { upload_id: mp.upload_id.clone(), parts, part_size, crc64 };
        // Suspended, not aborted: the upload outlives this value (discard or the lifecycle rule
        // ends it if it is never resumed).
        self.multipart = None;
        Some(SinkResume { offset: parts as u64 * part_size, state: serde_json::to_string(&st).ok()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes_fit_10000_parts() {
        assert_eq!(part_size(None), 8 * MIB);
        assert_eq!(part_size(Some(10)), 8 * MIB);
        let five_gib = 5 * 1024 * MIB;
        assert_eq!(part_size(Some(five_gib)), 8 * MIB);
        let big = 200 * 1024 * MIB;
        let p = part_size(Some(big));
        assert!(big.div_ceil(p) <= 10_000 && p.is_multiple_of(MIB), "{p}");
    }

    fn meta(name: &str, path: &str) -> AssetMeta {
        AssetMeta {
            content_type: "image/jpeg".into(),
            size: Some(1),
            original_name: name.into(),
            source_path: path.into(),
            provider: extconn_core::ProviderKind::Dropbox,
            provider_id: "id:a4ayc_80_OEAAAAAAAAAXw".into(),
            content_version: "015f9e2a3b1c0000000".into(),
            provider_hash: Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into()),
        }
    }

    fn get<'a>(md: &'a [(String, String)], k: &str) -> Option<&'a str> {
        md.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    fn decode(v: &str) -> String {
        let b = v.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).expect("hex"));
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).expect("a cut at a character boundary decodes to UTF-8")
    }

    /// Within the limit, ASCII, and every cut value is a prefix of the original, the marker
    /// and the digest of the original.
    fn check(m: &AssetMeta) -> Vec<(String, String)> {
        let md = object_metadata(m);
        assert!(metadata_size(&md) <= METADATA_LIMIT, "{} bytes: {md:?}", metadata_size(&md));
        assert!(md.iter().all(|(k, v)| k.is_ascii() && v.is_ascii()), "{md:?}");
        let cut: Vec<&str> = get(&md, "truncated").map(|f| f.split(',').collect()).unwrap_or_default();
        let full = [
            ("original-name", m.original_name.as_str()),
            ("source-path", m.source_path.as_str()),
            ("provider-id", m.provider_id.as_str()),
            ("content-version", m.content_version.as_str()),
        ];
        for (k, original) in full {
            let v = get(&md, k).expect("field present");
            if cut.contains(&k) {
                let d = decode(v);
                let (head, digest) = d.rsplit_once("…~sha256:").expect("marker");
                assert!(original.starts_with(head) && head.len() < original.len(), "{k}: {d}");
                assert_eq!(digest, &hex::encode(Sha256::digest(original.as_bytes()))[..16], "{k}");
                assert!(!head.is_empty(), "{k}: something of the value is kept");
            } else {
                assert_eq!(v, encode_meta(original), "{k}: a value that fits is unchanged");
            }
        }
        md
    }

    #[test]
    fn short_metadata_is_unchanged() {
        let m = meta("Brand film (final) — é.mp4", "/Brand Assets/Video/Brand film (final) — é.mp4");
        let md = check(&m);
        assert_eq!(get(&md, "truncated"), None);
        assert_eq!(get(&md, "original-name"), Some(encode_meta(&m.original_name).as_str()));
        assert_eq!(get(&md, "provider"), Some("dropbox"));
        assert_eq!(get(&md, "provider-id"), Some("id%3Aa4ayc_80_OEAAAAAAAAAXw"));
        assert_eq!(get(&md, "provider-hash"), m.provider_hash.as_deref());
        assert_eq!(md.len(), 6);
    }

    #[test]
    fn metadata_stays_within_2_kb_whatever_the_names() {
        // A 300-character CJK name alone percent-encodes to 2,700 bytes.
        let cjk: String = "日本語の資料写真素材".chars().cycle().take(300).collect();
        assert_eq!(encode_meta(&cjk).len(), 2700);
        let path_1200 = format!("/{}", "Brand Assets/Photos/".repeat(60));
        let path_1200 = &path_1200[..1200];
        let md = check(&meta(&format!("{cjk}.jpg"), path_1200));
        assert_eq!(get(&md, "truncated"), Some("original-name,source-path"));

        let cjk_path = format!("/{cjk}/{cjk}.jpg");
        let md = check(&meta(&format!("{cjk}.jpg"), &cjk_path));
        assert_eq!(get(&md, "truncated"), Some("original-name,source-path"));

        let emoji: String = "😀🎉👩‍👩‍👧".chars().cycle().take(250).collect();
        let md = check(&meta(&emoji, &format!("/{emoji}/{emoji}")));
        assert_eq!(get(&md, "truncated"), Some("original-name,source-path"));

        // Long ids, version and hash too: everything is cut, still within the limit.
        let mut m = meta(&cjk, &cjk_path);
        m.provider_id = format!("id:{}", "é".repeat(1000));
        m.content_version = "\"{F0F0F0F0-1234-5678-9ABC-DEF012345678},2\"".repeat(20);
        m.provider_hash = Some("QXJlIHdlIHRoZXJlIHlldD8=".repeat(50));
        let md = check(&m);
        assert_eq!(
            get(&md, "truncated"),
            Some("original-name,source-path,provider-id,content-version,provider-hash")
        );
        assert!(metadata_size(&md) <= METADATA_LIMIT);
    }

    #[test]
    fn metadata_within_the_limit_at_every_length() {
        for c in ['a', ' ', 'é', '日', '😀'] {
            for len in (0..1500).step_by(7) {
                let v: String = std::iter::repeat_n(c, len).collect();
                check(&meta(&v, &format!("/{v}/{v}")));
            }
        }
    }

    #[test]
    fn metadata_is_ascii_and_reversible_in_spirit() {
        assert_eq!(encode_meta("naïve \"x\"\r\n/.."), "na%C3%AFve%20%22x%22%0D%0A%2F..");
        assert!(encode_meta("日本語.jpg").is_ascii());
    }
}
