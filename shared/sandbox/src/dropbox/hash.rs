//! Dropbox's `content_hash` (provider-apis.md §4.3).

use sha2::{Digest, Sha256};

use crate::content::{Content, ContentHasher};

/// Dropbox hashes content in blocks of this many bytes (4 MiB).
pub const BLOCK_SIZE: usize = 4 * 1024 * 1024;

/// Streaming Dropbox content hasher: SHA-256 of the concatenated SHA-256 digests of
/// consecutive 4 MiB blocks, lowercase hex. Block boundaries depend only on the byte
/// count, not on how the input is split.
#[derive(Clone, Debug, Default)]
pub struct DropboxContentHasher {
    overall: Sha256,
    block: Sha256,
    block_len: usize,
}

impl DropboxContentHasher {
    /// A fresh hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let take = (BLOCK_SIZE - self.block_len).min(data.len());
            self.block.update(&data[..take]);
            self.block_len += take;
            data = &data[take..];
            if self.block_len == BLOCK_SIZE {
                let digest = std::mem::take(&mut self.block).finalize();
                self.overall.update(digest);
                self.block_len = 0;
            }
        }
    }

    /// The final hash as 64 lowercase hex chars.
    pub fn finish_hex(mut self) -> String {
        if self.block_len > 0 {
            let digest = self.block.finalize();
            self.overall.update(digest);
        }
        hex::encode(self.overall.finalize())
    }
}

impl ContentHasher for DropboxContentHasher {
    fn update(&mut self, data: &[u8]) {
        DropboxContentHasher::update(self, data);
    }

    fn finish_hex(self) -> String {
        DropboxContentHasher::finish_hex(self)
    }
}

/// Dropbox `content_hash` of a byte slice.
pub fn content_hash(data: &[u8]) -> String {
    let mut h = DropboxContentHasher::new();
    h.update(data);
    h.finish_hex()
}

/// Dropbox `content_hash` of a content, computed by streaming.
pub fn content_hash_of(content: &Content) -> String {
    content.digest::<DropboxContentHasher>()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Vectors of provider-apis.md §4.3 (rclone dbhash_test.go; n × 'A').
    #[test]
    fn content_hash_vectors() {
        assert_eq!(content_hash(b""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
        assert_eq!(content_hash(b"A"), "1cd6ef71e6e0ff46ad2609d403dc3fee244417089aa4461245a4e4fe23a55e42");
        assert_eq!(
            content_hash(&vec![b'A'; 4_194_304]),
            "d4d63bac5b866c71620185392a8a6218ac1092454a2d16f820363b69852befa3"
        );
        assert_eq!(
            content_hash(&vec![b'A'; 4_194_305]),
            "8f553da8d00d0bf509d8470e242888be33019c20c0544811f5b2b89e98360b92"
        );
        assert_eq!(
            content_hash(b"hello world"),
            "bc62d4b80d9e36da29c16c5d4d9f11731f36052c72401a76c23c0fb5a9b74423"
        );
    }

    #[test]
    fn hasher_is_independent_of_chunking() {
        let data = Content::generated(BLOCK_SIZE as u64 * 2 + 12_345, 7).to_vec();
        let mut h = DropboxContentHasher::new();
        for piece in data.chunks(1_000_003) {
            h.update(piece);
        }
        assert_eq!(h.finish_hex(), content_hash(&data));
        assert_eq!(content_hash_of(&Content::Bytes(data.clone())), content_hash(&data));
        assert_eq!(content_hash_of(&Content::generated(data.len() as u64, 7)), content_hash(&data));
    }
}
