//! File content shared by every emulated provider: literal or deterministic generated
//! bytes, SHA-256, cached digests and chunked streaming for downloads.
//!
//! Generated content is never materialised: byte `i` of `Generated { seed, .. }` is
//! byte `i % 8` (little-endian) of `splitmix64(seed + (i / 8 + 1) * GOLDEN)`, so any
//! range can be produced on the fly (several GB/s optimised; about 0.4 GB/s when
//! this crate is built at opt-level 0) and content is position-sensitive (a resume at
//! the wrong offset is detected). A 4 GiB file costs nothing until it is read; its
//! digests are computed once by streaming and cached in its [`Blob`].
//!
//! [`Content::Repeating`] serves a generated pattern over and over as slices of one shared
//! buffer: for benchmarks, where the stand-in provider should not take the CPU the pipeline is
//! measured on (a real provider's bytes cost the connector's machine nothing to produce).
//!
//! A provider's own content hash (Dropbox's `content_hash`, …) implements
//! [`ContentHasher`] in that provider's module.

use std::fmt;
use std::io;
use std::marker::PhantomData;
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use futures::Stream;
use sha2::{Digest, Sha256};

/// Bytes fed to a hasher at a time when digesting generated content (4 MiB).
const DIGEST_CHUNK: usize = 4 * 1024 * 1024;

/// Size of the chunks a download body is streamed in.
const STREAM_CHUNK: usize = 256 * 1024;

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The period of [`Content::Repeating`]: 1 MiB + 3 bytes, odd, so no power-of-two offset (a
/// granule, a part, a chunk) lands on the same bytes; a resume at a wrong offset still reads
/// different bytes unless it is off by a multiple of the period.
pub const REPEAT_PERIOD: u64 = 1024 * 1024 + 3;

/// Content of a file in an emulated provider.
#[derive(Clone, PartialEq, Eq)]
pub enum Content {
    /// Literal bytes.
    Bytes(Vec<u8>),
    /// `size` deterministic pseudo-random bytes derived from `seed`; produced on the fly.
    Generated {
        /// Length in bytes.
        size: u64,
        /// Seed: equal (size, seed) pairs give identical bytes.
        seed: u64,
    },
    /// `size` bytes repeating the first [`REPEAT_PERIOD`] bytes of `Generated { seed }`:
    /// byte `i` is byte `i % REPEAT_PERIOD` of that stream. Streamed without copying.
    Repeating {
        /// Length in bytes.
        size: u64,
        /// Seed of the repeated pattern.
        seed: u64,
    },
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Content::Bytes(b) if b.len() <= 64 => {
                write!(f, "Bytes({:?})", String::from_utf8_lossy(b))
            }
            Content::Bytes(b) => write!(f, "Bytes(<{} bytes>)", b.len()),
            Content::Generated { size, seed } => {
                f.debug_struct("Generated").field("size", size).field("seed", seed).finish()
            }
            Content::Repeating { size, seed } => {
                f.debug_struct("Repeating").field("size", size).field("seed", seed).finish()
            }
        }
    }
}

impl Content {
    /// UTF-8 text content.
    pub fn text(s: &str) -> Content {
        Content::Bytes(s.as_bytes().to_vec())
    }

    /// Generated content of `size` bytes.
    pub fn generated(size: u64, seed: u64) -> Content {
        Content::Generated { size, seed }
    }

    /// Content of `size` bytes repeating a generated pattern ([`Content::Repeating`]).
    pub fn repeating(size: u64, seed: u64) -> Content {
        Content::Repeating { size, seed }
    }

    /// Length in bytes.
    pub fn len(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Generated { size, .. } | Content::Repeating { size, .. } => *size,
        }
    }

    /// True when the content has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copies bytes starting at `offset` into `buf`; returns how many were copied
    /// (less than `buf.len()` only at the end of the content).
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> usize {
        let len = self.len();
        if offset >= len {
            return 0;
        }
        let n = usize::try_from((len - offset).min(buf.len() as u64)).unwrap_or(buf.len());
        match self {
            Content::Bytes(b) => {
                // offset < len <= usize::MAX here.
                let start = offset as usize;
                buf[..n].copy_from_slice(&b[start..start + n]);
            }
            Content::Generated { seed, .. } => fill_generated(*seed, offset, &mut buf[..n]),
            Content::Repeating { seed, .. } => {
                let (mut at, mut rest) = (offset, &mut buf[..n]);
                while !rest.is_empty() {
                    let from = at % REPEAT_PERIOD;
                    let take = usize::try_from(REPEAT_PERIOD - from).unwrap_or(usize::MAX).min(rest.len());
                    let (head, tail) = rest.split_at_mut(take);
                    fill_generated(*seed, from, head);
                    (at, rest) = (at + take as u64, tail);
                }
            }
        }
        n
    }

    /// All bytes in memory. Meant for small contents in tests.
    pub fn to_vec(&self) -> Vec<u8> {
        match self {
            Content::Bytes(b) => b.clone(),
            Content::Generated { .. } | Content::Repeating { .. } => {
                let mut v = vec![0u8; usize::try_from(self.len()).unwrap_or(usize::MAX)];
                let n = self.read_at(0, &mut v);
                v.truncate(n);
                v
            }
        }
    }

    /// The content's digest by `H`, computed by streaming (generated content is never
    /// held in memory whole).
    pub fn digest<H: ContentHasher>(&self) -> String {
        let mut h = H::default();
        self.for_each_chunk(|c| h.update(c));
        h.finish_hex()
    }

    /// Lowercase hex SHA-256 of the whole content, computed by streaming.
    pub fn sha256_hex(&self) -> String {
        self.digest::<Sha256Hex>()
    }

    /// Calls `f` with consecutive pieces of the content, in order (literal bytes in one
    /// piece, generated bytes 4 MiB at a time, a repeating content's pattern once per period).
    pub fn for_each_chunk(&self, mut f: impl FnMut(&[u8])) {
        match self {
            Content::Bytes(b) => f(b),
            Content::Repeating { seed, size } => {
                let p = pattern(*seed, *size);
                let mut off = 0u64;
                while off < *size {
                    let from = usize::try_from(off % REPEAT_PERIOD).unwrap_or(0);
                    let n = usize::try_from(*size - off).unwrap_or(usize::MAX).min(p.len() - from);
                    f(&p[from..from + n]);
                    off += n as u64;
                }
            }
            Content::Generated { .. } => {
                let mut buf =
                    vec![0u8; DIGEST_CHUNK.min(usize::try_from(self.len()).unwrap_or(DIGEST_CHUNK))];
                let mut off = 0u64;
                loop {
                    let n = self.read_at(off, &mut buf);
                    if n == 0 {
                        break;
                    }
                    f(&buf[..n]);
                    off += n as u64;
                }
            }
        }
    }
}

/// A streaming hash over content bytes, finished as lowercase hex. The result must
/// depend only on the bytes, not on how they are split into `update` calls.
pub trait ContentHasher: Default {
    /// Feeds bytes.
    fn update(&mut self, data: &[u8]);
    /// The final digest as lowercase hex.
    fn finish_hex(self) -> String;
}

/// Plain SHA-256 as a [`ContentHasher`].
#[derive(Clone, Debug, Default)]
pub struct Sha256Hex(Sha256);

impl ContentHasher for Sha256Hex {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn finish_hex(self) -> String {
        hex::encode(self.0.finalize())
    }
}

/// SplitMix64 output for word `index` of the stream seeded with `seed`.
#[inline]
fn word(seed: u64, index: u64) -> u64 {
    let mut z = seed.wrapping_add(index.wrapping_add(1).wrapping_mul(GOLDEN));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `buf` with generated bytes `offset .. offset + buf.len()` of stream `seed`.
pub fn fill_generated(seed: u64, offset: u64, buf: &mut [u8]) {
    let mut idx = offset / 8;
    let skip = (offset % 8) as usize;
    let mut rest: &mut [u8] = buf;
    if skip != 0 {
        // Unaligned head: the tail bytes of the first word.
        let w = word(seed, idx).to_le_bytes();
        let take = (8 - skip).min(rest.len());
        rest[..take].copy_from_slice(&w[skip..skip + take]);
        rest = &mut rest[take..];
        idx += 1;
    }
    let mut chunks = rest.chunks_exact_mut(8);
    for c in &mut chunks {
        c.copy_from_slice(&word(seed, idx).to_le_bytes());
        idx += 1;
    }
    let tail = chunks.into_remainder();
    if !tail.is_empty() {
        let w = word(seed, idx).to_le_bytes();
        let n = tail.len();
        tail.copy_from_slice(&w[..n]);
    }
}

/// A stored file's content plus its lazily computed, cached digests: SHA-256 (what the
/// control API reports) and the provider's own hash `H` (what its wire format
/// carries). Each is computed on first use, independently, so a caller that needs one
/// never pays for the other.
pub(crate) struct Blob<H> {
    pub(crate) content: Content,
    sha256: OnceLock<String>,
    native: OnceLock<String>,
    hasher: PhantomData<fn() -> H>,
}

impl<H> fmt::Debug for Blob<H> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Blob").field("content", &self.content).finish_non_exhaustive()
    }
}

impl<H: ContentHasher + 'static> Blob<H> {
    pub(crate) fn new(content: Content) -> Arc<Self> {
        Arc::new(Blob { content, sha256: OnceLock::new(), native: OnceLock::new(), hasher: PhantomData })
    }

    /// The provider's hash; computes it on first use (blocking; may take a while for
    /// big generated content, so async callers first await [`Blob::native_hash_async`]).
    pub(crate) fn native_hash(&self) -> &str {
        self.native.get_or_init(|| self.content.digest::<H>())
    }

    /// SHA-256 of the content; computed on first use (blocking).
    pub(crate) fn sha256(&self) -> &str {
        self.sha256.get_or_init(|| self.content.sha256_hex())
    }

    /// Computes the provider's hash on a blocking thread if it is not cached yet.
    pub(crate) async fn native_hash_async(self: &Arc<Self>) {
        if self.native.get().is_some() {
            return;
        }
        if self.content.len() <= DIGEST_CHUNK as u64 {
            self.native_hash();
            return;
        }
        let me = Arc::clone(self);
        let _ = tokio::task::spawn_blocking(move || {
            me.native_hash();
        })
        .await;
    }
}

/// The pattern a [`Content::Repeating`] of `size` bytes repeats (its first period, or all of it
/// when shorter).
fn pattern(seed: u64, size: u64) -> Vec<u8> {
    let mut p = vec![0u8; usize::try_from(REPEAT_PERIOD.min(size)).unwrap_or(0)];
    fill_generated(seed, 0, &mut p);
    p
}

/// Streams bytes `start..end` of a content in chunks of at most 256 KiB.
pub(crate) fn stream_range<H: Send + Sync + 'static>(
    blob: Arc<Blob<H>>,
    start: u64,
    end: u64,
) -> impl Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
    // A repeating content's pattern, generated once per download; chunks are slices of it.
    let pattern = match &blob.content {
        Content::Repeating { seed, size } => Bytes::from(pattern(*seed, *size)),
        _ => Bytes::new(),
    };
    futures::stream::unfold(start, move |pos| {
        let blob = Arc::clone(&blob);
        let pattern = pattern.clone();
        async move {
            if pos >= end {
                return None;
            }
            let n = usize::try_from((end - pos).min(STREAM_CHUNK as u64)).unwrap_or(STREAM_CHUNK);
            let chunk = match &blob.content {
                Content::Bytes(b) => {
                    // pos < end <= len, so the casts are in range.
                    Bytes::copy_from_slice(&b[pos as usize..pos as usize + n])
                }
                Content::Generated { seed, .. } => {
                    let mut buf = BytesMut::zeroed(n);
                    fill_generated(*seed, pos, &mut buf);
                    buf.freeze()
                }
                Content::Repeating { .. } => {
                    // Up to the pattern's end: a chunk at the wrap is shorter.
                    let from = usize::try_from(pos % REPEAT_PERIOD).unwrap_or(0);
                    pattern.slice(from..(from + n).min(pattern.len()))
                }
            };
            let n = chunk.len();
            Some((Ok(chunk), pos + n as u64))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_bytes_are_deterministic_and_offset_consistent() {
        let c = Content::generated(1000, 42);
        let all = c.to_vec();
        assert_eq!(all.len(), 1000);
        assert_eq!(all, Content::generated(1000, 42).to_vec());
        assert_ne!(all, Content::generated(1000, 43).to_vec());
        for start in [0u64, 1, 3, 7, 8, 9, 500, 993, 999] {
            for len in [0usize, 1, 2, 7, 8, 9, 17, 64] {
                let mut buf = vec![0u8; len];
                let n = c.read_at(start, &mut buf);
                let end = (start as usize + len).min(1000);
                assert_eq!(n, end - start as usize);
                assert_eq!(&buf[..n], &all[start as usize..end], "start {start} len {len}");
            }
        }
        assert_eq!(c.read_at(1000, &mut [0u8; 4]), 0);
        // Not trivially constant.
        assert!(all.iter().filter(|&&b| b == all[0]).count() < 50);
    }

    #[test]
    fn repeating_content_repeats_its_pattern_and_streams_the_same_bytes() {
        let p = REPEAT_PERIOD;
        let size = 3 * p + 1000;
        let c = Content::repeating(size, 5);
        let pattern = Content::generated(p, 5).to_vec();
        let all = c.to_vec();
        assert_eq!(all.len() as u64, size);
        for k in 0..3 {
            let at = usize::try_from(k * p).unwrap();
            assert_eq!(&all[at..at + pattern.len()], &pattern[..], "period {k}");
        }
        assert_eq!(&all[usize::try_from(3 * p).unwrap()..], &pattern[..1000]);
        // Reads across a wrap.
        let mut buf = vec![0u8; 10];
        assert_eq!(c.read_at(p - 4, &mut buf), 10);
        assert_eq!(&buf[..4], &pattern[pattern.len() - 4..]);
        assert_eq!(&buf[4..], &pattern[..6]);
        // Streamed from an offset: the same bytes, no chunk over the stream's size.
        let blob: Arc<Blob<Sha256Hex>> = Blob::new(c.clone());
        let streamed = futures::executor::block_on(async {
            use futures::TryStreamExt;
            stream_range(blob, p - 7, size)
                .try_fold(Vec::new(), |mut v, b| async move {
                    assert!(b.len() <= STREAM_CHUNK);
                    v.extend_from_slice(&b);
                    Ok(v)
                })
                .await
        })
        .unwrap();
        assert_eq!(streamed, &all[usize::try_from(p - 7).unwrap()..]);
        assert_eq!(c.sha256_hex(), {
            let mut h = Sha256::new();
            h.update(&all);
            hex::encode(h.finalize())
        });
        // Shorter than a period: the pattern's start.
        assert_eq!(Content::repeating(100, 5).sha256_hex(), Content::generated(100, 5).sha256_hex());
    }

    #[test]
    fn reads_across_generation_blocks() {
        const GEN_BLOCK: usize = 64 * 1024;
        let size = GEN_BLOCK as u64 * 3 + 123;
        let c = Content::generated(size, 9);
        let all = c.to_vec();
        assert_eq!(all.len() as u64, size);
        // Blocks differ from each other.
        assert_ne!(all[..GEN_BLOCK], all[GEN_BLOCK..2 * GEN_BLOCK]);
        let b = GEN_BLOCK as u64;
        for start in [0, 5, b - 3, b, b + 1, 2 * b - 8, 3 * b, 3 * b + 100] {
            for len in [1usize, 7, 8, 100, GEN_BLOCK, GEN_BLOCK + 9, 2 * GEN_BLOCK] {
                let mut buf = vec![0u8; len];
                let n = c.read_at(start, &mut buf);
                let s = start as usize;
                let end = (s + len).min(all.len());
                assert_eq!(n, end - s);
                assert_eq!(&buf[..n], &all[s..end], "start {start} len {len}");
            }
        }
    }

    #[test]
    fn sha256_matches_plain_sha256_whatever_the_representation() {
        let c = Content::text("hello world");
        assert_eq!(c.sha256_hex(), "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
        // Generated content longer than one digest chunk hashes like its bytes.
        let g = Content::generated(DIGEST_CHUNK as u64 + 4097, 11);
        let bytes = g.to_vec();
        assert_eq!(g.sha256_hex(), hex::encode(Sha256::digest(&bytes)));
        assert_eq!(Content::Bytes(bytes).sha256_hex(), g.sha256_hex());
    }

    #[derive(Default)]
    struct Count(u64);

    impl ContentHasher for Count {
        fn update(&mut self, data: &[u8]) {
            self.0 += data.len() as u64;
        }
        fn finish_hex(self) -> String {
            format!("{:x}", self.0)
        }
    }

    #[test]
    fn blob_caches_each_digest_separately() {
        let blob: Arc<Blob<Count>> = Blob::new(Content::generated(5000, 1));
        assert!(blob.native.get().is_none() && blob.sha256.get().is_none());
        assert_eq!(blob.native_hash(), "1388");
        assert!(blob.sha256.get().is_none(), "the provider hash does not compute SHA-256");
        assert_eq!(blob.sha256(), Content::generated(5000, 1).sha256_hex());
    }

    #[tokio::test]
    async fn stream_range_yields_exact_bytes() {
        use futures::StreamExt;
        let c = Content::generated(700_001, 5);
        let all = c.to_vec();
        let blob: Arc<Blob<Sha256Hex>> = Blob::new(c);
        let mut got = Vec::new();
        let mut s = Box::pin(stream_range(blob, 3, 600_000));
        while let Some(chunk) = s.next().await {
            got.extend_from_slice(&chunk.expect("chunk"));
        }
        assert_eq!(got, &all[3..600_000]);
    }
}
