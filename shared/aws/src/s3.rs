//! The asset sink on S3: streamed multipart uploads with bounded memory, create-only.
//!
//! - Part size is max(8 MiB, ceil(size / 10,000)) rounded up to a MiB, so any file up to the
//!   5 GiB limit fits S3's 10,000 parts; at most two parts are in flight, so memory stays near
//!   three parts whatever the size. A file smaller than one part is a single PutObject.
//! - The object appears only at completion, with `If-None-Match: *`: a 412 means the key
//!   exists; it is success if that object's SHA-256 is ours (a redelivery), a conflict if not.
//!   A 409 (`ConditionalRequestConflict`: a concurrent conditional write of the key) is retried
//!   a few times with backoff; the parts, or the small body, are still at hand.
//! - Any failure aborts the multipart upload (the bucket's lifecycle rule catches the rest).
//! - The SDK sends a CRC32 checksum with every part; the SHA-256 of the whole stream is checked
//!   against the caller's before completing.
//! - Metadata (`x-amz-meta-*`) carries the original name, source path and provider ids,
//!   percent-encoded (S3 metadata must be ASCII).

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::{Bytes, BytesMut};
use extconn_core::ports::{AssetMeta, AssetSink, AssetUpload, CommitOutcome, SinkError};
use sha2::{Digest, Sha256};
use tokio::task::JoinSet;

const MIB: u64 = 1024 * 1024;
const MIN_PART: u64 = 8 * MIB;
const MAX_IN_FLIGHT: usize = 2;
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
}

impl S3Sink {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }

    /// SHA-256 of an existing object, streamed.
    async fn existing_sha256(&self, key: &str) -> Result<String, SinkError> {
        let out = self.client.get_object().bucket(&self.bucket).key(key).send().await.map_err(unavailable)?;
        let mut body = out.body;
        let mut h = Sha256::new();
        while let Some(chunk) = body.try_next().await.map_err(|e| SinkError::Unavailable(e.to_string()))? {
            h.update(&chunk);
        }
        Ok(hex::encode(h.finalize()))
    }
}

struct Multipart {
    upload_id: String,
    next_part: i32,
    done: Vec<CompletedPart>,
    in_flight: JoinSet<Result<CompletedPart, SinkError>>,
}

struct S3Upload {
    sink: S3Sink,
    key: String,
    meta: AssetMeta,
    part_size: usize,
    buf: BytesMut,
    sha: Sha256,
    multipart: Option<Multipart>,
}

#[async_trait]
impl AssetSink for S3Sink {
    async fn begin(&self, key: &str, meta: &AssetMeta) -> Result<Box<dyn AssetUpload>, SinkError> {
        let part = usize::try_from(part_size(meta.size)).unwrap_or(usize::MAX);
        Ok(Box::new(S3Upload {
            sink: self.clone(),
            key: key.to_owned(),
            meta: meta.clone(),
            part_size: part,
            buf: BytesMut::new(),
            sha: Sha256::new(),
            multipart: None,
        }))
    }
}

impl S3Upload {
    fn metadata(&self) -> Vec<(&'static str, String)> {
        let m = &self.meta;
        let mut v = vec![
            ("original-name", encode_meta(&m.original_name)),
            ("source-path", encode_meta(&m.source_path)),
            ("provider", m.provider.as_str().to_owned()),
            ("provider-id", encode_meta(&m.provider_id)),
            ("content-version", encode_meta(&m.content_version)),
        ];
        if let Some(h) = &m.provider_hash {
            v.push(("provider-hash", encode_meta(h)));
        }
        v
    }

    /// Sends the buffered bytes as the next part (waiting first if two are in flight).
    async fn flush_part(&mut self) -> Result<(), SinkError> {
        if self.multipart.is_none() {
            let mut req = self
                .sink
                .client
                .create_multipart_upload()
                .bucket(&self.sink.bucket)
                .key(&self.key)
                .content_type(&self.meta.content_type);
            for (k, v) in self.metadata() {
                req = req.metadata(k, v);
            }
            let out = req.send().await.map_err(unavailable)?;
            let upload_id = out.upload_id.ok_or_else(|| SinkError::Unavailable("no upload id".into()))?;
            self.multipart =
                Some(Multipart { upload_id, next_part: 1, done: Vec::new(), in_flight: JoinSet::new() });
        }
        let mp = self.multipart.as_mut().ok_or_else(|| SinkError::Unavailable("no upload".into()))?;
        while mp.in_flight.len() >= MAX_IN_FLIGHT {
            let part =
                mp.in_flight.join_next().await.ok_or_else(|| SinkError::Unavailable("no part".into()))?;
            mp.done.push(part.map_err(|e| SinkError::Unavailable(e.to_string()))??);
        }
        let body: Bytes = self.buf.split().freeze();
        let (client, bucket, key, upload_id, number) = (
            self.sink.client.clone(),
            self.sink.bucket.clone(),
            self.key.clone(),
            mp.upload_id.clone(),
            mp.next_part,
        );
        mp.next_part += 1;
        mp.in_flight.spawn(async move {
            let out = client
                .upload_part()
                .bucket(bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(unavailable)?;
            Ok(CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag)
                .set_checksum_crc32(out.checksum_crc32)
                .build())
        });
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
    async fn resolve_existing(&self, sha: &str) -> Result<CommitOutcome, SinkError> {
        if self.sink.existing_sha256(&self.key).await? == sha {
            Ok(CommitOutcome::AlreadyExists)
        } else {
            Err(SinkError::Conflict)
        }
    }

    async fn finish(&mut self, sha256_hex: &str) -> Result<CommitOutcome, SinkError> {
        let actual = hex::encode(std::mem::take(&mut self.sha).finalize());
        if actual != sha256_hex {
            return Err(SinkError::Integrity { expected: sha256_hex.to_owned(), actual });
        }
        if self.multipart.is_none() {
            let body = self.buf.split().freeze();
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
                    Err(e) if status(&e) == Some(412) => return self.resolve_existing(&actual).await,
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
                Err(e) if status(&e) == Some(412) => return self.resolve_existing(&actual).await,
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

#[async_trait]
impl AssetUpload for S3Upload {
    async fn write(&mut self, chunk: Bytes) -> Result<(), SinkError> {
        self.sha.update(&chunk);
        self.buf.extend_from_slice(&chunk);
        while self.buf.len() >= self.part_size {
            let rest = self.buf.split_off(self.part_size);
            let r = self.flush_part().await;
            self.buf = rest;
            if let Err(e) = r {
                self.abort_multipart().await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn commit(mut self: Box<Self>, sha256_hex: &str) -> Result<CommitOutcome, SinkError> {
        let r = self.finish(sha256_hex).await;
        // Whatever happened, no multipart upload is left behind.
        self.abort_multipart().await;
        r
    }

    async fn abort(mut self: Box<Self>) {
        self.abort_multipart().await;
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

    #[test]
    fn metadata_is_ascii_and_reversible_in_spirit() {
        assert_eq!(encode_meta("naïve \"x\"\r\n/.."), "na%C3%AFve%20%22x%22%0D%0A%2F..");
        assert!(encode_meta("日本語.jpg").is_ascii());
    }
}
