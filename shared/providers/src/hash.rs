//! Provider content hashes, computed while streaming.
//!
//! Dropbox `content_hash` (provider-apis.md §4.3): split the content into 4 MiB blocks (the
//! last one may be shorter), SHA-256 each block, concatenate the binary digests, SHA-256 that,
//! lowercase hex. Blocks are 4 MiB of *content*, whatever the chunking of the stream.

use extconn_core::midstate;
use sha2::{Digest, Sha256};

/// The Dropbox block size: 4 MiB of content.
pub const DROPBOX_BLOCK_SIZE: usize = 4 * 1024 * 1024;

/// Streaming Dropbox `content_hash`: feed chunks of any size with [`update`](Self::update),
/// then [`finalize`](Self::finalize). Memory use is constant (two SHA-256 states).
#[derive(Debug, Clone, Default)]
pub struct DropboxContentHasher {
    /// Hash of the digests of the completed blocks.
    overall: Sha256,
    /// Hash of the block being filled.
    block: Sha256,
    /// Bytes in the block being filled (`< DROPBOX_BLOCK_SIZE`).
    block_len: usize,
    total: u64,
}

impl DropboxContentHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, mut data: &[u8]) {
        self.total += data.len() as u64;
        while !data.is_empty() {
            let take = (DROPBOX_BLOCK_SIZE - self.block_len).min(data.len());
            let (head, rest) = data.split_at(take);
            self.block.update(head);
            self.block_len += take;
            data = rest;
            if self.block_len == DROPBOX_BLOCK_SIZE {
                let digest = self.block.finalize_reset();
                self.overall.update(digest);
                self.block_len = 0;
            }
        }
    }

    /// Bytes fed so far.
    pub fn bytes_hashed(&self) -> u64 {
        self.total
    }

    /// The lowercase hex `content_hash`. An empty input has no blocks: SHA-256 of nothing.
    pub fn finalize(mut self) -> String {
        if self.block_len > 0 {
            let digest = self.block.finalize();
            self.overall.update(digest);
        }
        hex::encode(self.overall.finalize())
    }

    /// One-shot convenience.
    pub fn digest(data: &[u8]) -> String {
        let mut h = Self::new();
        h.update(data);
        h.finalize()
    }
}

/// A content hash fed while streaming, whatever its algorithm (the verifier holds one).
pub trait StreamHasher: Send {
    fn update(&mut self, data: &[u8]);
    /// The state so far, for a transfer continued in another process (fixed-size bytes;
    /// [`Resumable::restore`] reads them back).
    fn save(&self) -> Vec<u8>;
    /// Lowercase hex (or the provider's own text form) of everything fed.
    fn finish(self: Box<Self>) -> String;
    /// The provider's name for it, for error messages (`content_hash`, `md5Checksum`, …).
    fn name(&self) -> &'static str;
}

/// A [`StreamHasher`] that can continue from a saved state.
pub trait Resumable: StreamHasher + Default + Sized + 'static {
    /// The hasher [`StreamHasher::save`] described; `None` for bytes that are not such a state.
    fn restore(state: &[u8]) -> Option<Self>;
}

impl StreamHasher for DropboxContentHasher {
    fn update(&mut self, data: &[u8]) {
        DropboxContentHasher::update(self, data);
    }
    /// The running hash over the completed blocks' digests, the block being filled, and the
    /// two counts: never a list of digests.
    fn save(&self) -> Vec<u8> {
        let mut out = midstate::save(&self.overall);
        out.extend_from_slice(&midstate::save(&self.block));
        out.extend_from_slice(&(self.block_len as u64).to_le_bytes());
        out.extend_from_slice(&self.total.to_le_bytes());
        out
    }
    fn finish(self: Box<Self>) -> String {
        self.finalize()
    }
    fn name(&self) -> &'static str {
        "content_hash"
    }
}

impl Resumable for DropboxContentHasher {
    fn restore(state: &[u8]) -> Option<Self> {
        let one = midstate::save(&Sha256::new()).len();
        if state.len() != 2 * one + 16 {
            return None;
        }
        let (overall, rest) = state.split_at(one);
        let (block, counts) = rest.split_at(one);
        let block_len = u64::from_le_bytes(counts[..8].try_into().ok()?);
        let total = u64::from_le_bytes(counts[8..].try_into().ok()?);
        let block_len = usize::try_from(block_len).ok().filter(|l| *l < DROPBOX_BLOCK_SIZE)?;
        (total % DROPBOX_BLOCK_SIZE as u64 == block_len as u64).then_some(())?;
        Some(Self {
            overall: midstate::restore(overall)?,
            block: midstate::restore(block)?,
            block_len,
            total,
        })
    }
}

/// Plain SHA-256, lowercase hex (Drive `sha256Checksum`).
#[derive(Debug, Clone, Default)]
pub struct Sha256Hasher(Sha256);

impl StreamHasher for Sha256Hasher {
    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    fn save(&self) -> Vec<u8> {
        midstate::save(&self.0)
    }
    fn finish(self: Box<Self>) -> String {
        hex::encode(self.0.finalize())
    }
    fn name(&self) -> &'static str {
        "sha256"
    }
}

impl Resumable for Sha256Hasher {
    fn restore(state: &[u8]) -> Option<Self> {
        midstate::restore(state).map(Self)
    }
}

/// Plain MD5, lowercase hex (Drive `md5Checksum`, provider-apis.md §4.1).
#[derive(Debug, Clone, Default)]
pub struct Md5Hasher(md5::Md5);

impl Md5Hasher {
    pub fn new() -> Self {
        Self::default()
    }

    /// One-shot convenience.
    pub fn digest(data: &[u8]) -> String {
        use md5::Digest as _;
        hex::encode(md5::Md5::digest(data))
    }
}

impl StreamHasher for Md5Hasher {
    fn update(&mut self, data: &[u8]) {
        md5::Digest::update(&mut self.0, data);
    }
    fn save(&self) -> Vec<u8> {
        midstate::save(&self.0)
    }
    fn finish(self: Box<Self>) -> String {
        hex::encode(md5::Digest::finalize(self.0))
    }
    fn name(&self) -> &'static str {
        "md5Checksum"
    }
}

impl Resumable for Md5Hasher {
    fn restore(state: &[u8]) -> Option<Self> {
        midstate::restore(state).map(Self)
    }
}

/// Microsoft's `quickXorHash` (provider-apis.md §4.2): a 160-bit state where byte `i` of the
/// stream is XORed in at bit `(i * 11) mod 160` (the overflow of its top bits wrapping from
/// byte 19 to byte 0), then the total length (u64, little-endian) XORed into the last 8 bytes.
/// Graph prints it in base64. Streaming: the position is the absolute offset, so chunk
/// boundaries do not matter.
#[derive(Debug, Clone, Default)]
pub struct QuickXorHasher {
    state: [u8; 20],
    len: u64,
}

impl QuickXorHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, data: &[u8]) {
        // (i * 11) mod 160 depends only on i mod 160.
        let mut bit = ((self.len % 160) * 11 % 160) as usize;
        for &b in data {
            let (idx, sh) = (bit / 8, bit % 8);
            let v = u16::from(b) << sh;
            self.state[idx] ^= v as u8;
            self.state[(idx + 1) % 20] ^= (v >> 8) as u8;
            bit = (bit + 11) % 160;
        }
        self.len += data.len() as u64;
    }

    /// The 20 bytes of the hash.
    pub fn finalize_bytes(mut self) -> [u8; 20] {
        for (k, b) in self.len.to_le_bytes().iter().enumerate() {
            self.state[12 + k] ^= b;
        }
        self.state
    }

    /// The hash as Graph prints it: standard base64 with padding.
    pub fn finalize(self) -> String {
        base64_encode(&self.finalize_bytes())
    }

    /// One-shot convenience (base64).
    pub fn digest(data: &[u8]) -> String {
        let mut h = Self::new();
        h.update(data);
        h.finalize()
    }

    /// A listed `quickXorHash` in the form the [`StreamHasher`] of this type prints (lowercase
    /// hex of the 20 bytes): Graph sends base64, and hex was seen from OneDrive personal
    /// (§4.2), so both are read. `None` for anything that is not 20 bytes in either form.
    ///
    /// Hex, not base64, is the compared form because the verifier compares case-insensitively
    /// (for the hex digests of the other providers), which base64 does not allow.
    pub fn normalize(listed: &str) -> Option<String> {
        let t = listed.trim();
        if t.len() == 40 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Some(t.to_ascii_lowercase());
        }
        let bytes = base64_decode(t)?;
        (bytes.len() == 20).then(|| hex::encode(bytes))
    }
}

impl StreamHasher for QuickXorHasher {
    fn update(&mut self, data: &[u8]) {
        QuickXorHasher::update(self, data);
    }
    /// The 160-bit state and the length: the position of the next byte follows from it.
    fn save(&self) -> Vec<u8> {
        let mut out = self.state.to_vec();
        out.extend_from_slice(&self.len.to_le_bytes());
        out
    }
    /// Lowercase hex (see [`QuickXorHasher::normalize`]).
    fn finish(self: Box<Self>) -> String {
        hex::encode(self.finalize_bytes())
    }
    fn name(&self) -> &'static str {
        "quickXorHash"
    }
}

impl Resumable for QuickXorHasher {
    fn restore(state: &[u8]) -> Option<Self> {
        let (s, len) = state.split_at_checked(20)?;
        Some(Self { state: s.try_into().ok()?, len: u64::from_le_bytes(len.try_into().ok()?) })
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding (RFC 4648 §4). Hashes only: a handful of bytes.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(B64[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64, padding optional; `None` on any other character or a bad length.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let t = text.trim_end_matches('=');
    if t.len() % 4 == 1 || text.len() - t.len() > 2 {
        return None;
    }
    let mut out = Vec::with_capacity(t.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in t.bytes() {
        let v = B64.iter().position(|&x| x == c)? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a_times(n: usize) -> Vec<u8> {
        vec![b'A'; n]
    }

    #[test]
    fn vectors_from_provider_apis_4_3() {
        assert_eq!(
            DropboxContentHasher::digest(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            DropboxContentHasher::digest(b"hello world"),
            "bc62d4b80d9e36da29c16c5d4d9f11731f36052c72401a76c23c0fb5a9b74423"
        );
        assert_eq!(
            DropboxContentHasher::digest(&a_times(1)),
            "1cd6ef71e6e0ff46ad2609d403dc3fee244417089aa4461245a4e4fe23a55e42"
        );
        assert_eq!(
            DropboxContentHasher::digest(&a_times(4_194_304)),
            "d4d63bac5b866c71620185392a8a6218ac1092454a2d16f820363b69852befa3"
        );
        assert_eq!(
            DropboxContentHasher::digest(&a_times(4_194_305)),
            "8f553da8d00d0bf509d8470e242888be33019c20c0544811f5b2b89e98360b92"
        );
    }

    #[test]
    fn md5_vectors_from_provider_apis_4_1() {
        assert_eq!(Md5Hasher::digest(b"hello world"), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        assert_eq!(Md5Hasher::digest(b""), "d41d8cd98f00b204e9800998ecf8427e");
        let mut h: Box<dyn StreamHasher> = Box::new(Md5Hasher::new());
        for part in [&b"hel"[..], b"", b"lo wor", b"ld"] {
            h.update(part);
        }
        assert_eq!(h.name(), "md5Checksum");
        assert_eq!(h.finish(), "5eb63bbbe01eeed093cb22bb8f5acdc3");
        let mut s: Box<dyn StreamHasher> = Box::new(Sha256Hasher::default());
        s.update(b"hello world");
        assert_eq!(s.finish(), "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
    }

    #[test]
    fn not_a_plain_sha256() {
        // A single block still hashes twice: sha256(sha256(block)).
        let plain = hex::encode(Sha256::digest(b"hello world"));
        assert_ne!(DropboxContentHasher::digest(b"hello world"), plain);
        let twice = hex::encode(Sha256::digest(Sha256::digest(b"hello world")));
        assert_eq!(DropboxContentHasher::digest(b"hello world"), twice);
    }

    /// xorshift64*: deterministic, no dependency.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        // Three blocks and a bit, with varied content so a misplaced block boundary shows.
        let len = 3 * DROPBOX_BLOCK_SIZE + 12_345;
        let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8 ^ (i >> 20) as u8).collect();
        let expected = DropboxContentHasher::digest(&data);
        // Reference: explicit blocks.
        let mut outer = Sha256::new();
        for block in data.chunks(DROPBOX_BLOCK_SIZE) {
            outer.update(Sha256::digest(block));
        }
        assert_eq!(expected, hex::encode(outer.finalize()));

        for round in 0..24 {
            let mut h = DropboxContentHasher::new();
            let mut pos = 0;
            while pos < len {
                // Mix tiny, odd and larger-than-a-block chunks (and empty ones).
                let max = match round % 4 {
                    0 if round == 0 => 7,
                    0 => 4_099,
                    1 => 65_537,
                    2 => DROPBOX_BLOCK_SIZE + 3,
                    _ => 2 * DROPBOX_BLOCK_SIZE,
                };
                let n = rng.below(max + 1).min(len - pos);
                h.update(&data[pos..pos + n]);
                pos += n;
            }
            assert_eq!(h.bytes_hashed(), len as u64);
            assert_eq!(h.finalize(), expected, "round {round}");
        }
    }

    #[test]
    fn split_exactly_at_block_boundary() {
        let data = a_times(DROPBOX_BLOCK_SIZE + 1);
        let mut h = DropboxContentHasher::new();
        h.update(&data[..DROPBOX_BLOCK_SIZE]);
        h.update(&[]);
        h.update(&data[DROPBOX_BLOCK_SIZE..]);
        assert_eq!(h.finalize(), "8f553da8d00d0bf509d8470e242888be33019c20c0544811f5b2b89e98360b92");
    }

    #[test]
    fn quickxor_vectors_from_provider_apis_4_2() {
        assert_eq!(QuickXorHasher::digest(b""), "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert_eq!(QuickXorHasher::digest(&[0x4A]), "SgAAAAAAAAAAAAAAAQAAAAAAAAA=");
        assert_eq!(QuickXorHasher::digest(b"hello world"), "aCgDG9jwBhDc4Q1yawMZAAAAAAA=");
        let mut h = QuickXorHasher::new();
        h.update(b"hello world");
        assert_eq!(
            h.finalize_bytes(),
            [104, 40, 3, 27, 216, 240, 6, 16, 220, 225, 13, 114, 107, 3, 25, 0, 0, 0, 0, 0]
        );
        let rclone =
            base64_decode("QuzaF0+5ooig6OLEWeibZUENl8EaiXAQvK9UjBEauMeuFFDCtNcGs25BDtJGGbX90gH4VZvCCDNCq4s=")
                .unwrap_or_default();
        assert_eq!(rclone.len(), 59);
        assert_eq!(QuickXorHasher::digest(&rclone), "rggokuJq1OGNOfB6aDp2g4rdPgw=");
        // Streamed in odd chunks (and past the 160-byte period), through the trait.
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = QuickXorHasher::digest(&data);
        let mut s: Box<dyn StreamHasher> = Box::new(QuickXorHasher::new());
        for part in data.chunks(37) {
            s.update(part);
            s.update(&[]);
        }
        assert_eq!(s.name(), "quickXorHash");
        let hex = s.finish();
        assert_eq!(Some(hex.clone()), QuickXorHasher::normalize(&whole));
        assert_eq!(hex::decode(&hex).ok().map(|b| base64_encode(&b)), Some(whole));
    }

    #[test]
    fn quickxor_listed_forms() {
        let hex = "6828031bd8f00610dce10d726b03190000000000";
        assert_eq!(QuickXorHasher::normalize("aCgDG9jwBhDc4Q1yawMZAAAAAAA=").as_deref(), Some(hex));
        assert_eq!(QuickXorHasher::normalize("aCgDG9jwBhDc4Q1yawMZAAAAAAA").as_deref(), Some(hex));
        assert_eq!(QuickXorHasher::normalize(&hex.to_uppercase()).as_deref(), Some(hex));
        for bad in ["", "aCgD", "not base64!", "aCgDG9jwBhDc4Q1yawMZAAAAAAAA", "===="] {
            assert_eq!(QuickXorHasher::normalize(bad), None, "{bad:?}");
        }
        for n in 0..8usize {
            let data: Vec<u8> = (0..n as u8).map(|b| b.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64_encode(&data)), Some(data));
        }
        assert_eq!(base64_encode(b"hello"), "aGVsbG8=");
    }
}
