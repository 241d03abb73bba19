//! Microsoft's QuickXorHash (provider-apis.md §4.2): a 160-bit state into which byte
//! `i` of the stream is XORed at bit `(i * 11) mod 160` (wrapping from the last byte
//! of the state to the first), then the total length as a little-endian `u64` XORed
//! into the last 8 bytes. Graph serves it base64 (standard alphabet, padded).
//!
//! [`QuickXorHash`] streams: the bit position depends on the absolute offset, so the
//! result does not depend on how the input is split into `update` calls.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::content::ContentHasher;

const WIDTH_BITS: u64 = 160;
const SHIFT: u64 = 11;

/// Streaming QuickXorHash. As a [`ContentHasher`] it finishes as lowercase hex of the
/// 20 bytes (the sandbox's digest convention); [`QuickXorHash::finish_base64`] gives
/// Graph's form.
#[derive(Clone, Debug, Default)]
pub struct QuickXorHash {
    state: [u8; 20],
    len: u64,
}

impl QuickXorHash {
    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        // The bit position cycles every 160 bytes (160 * 11 ≡ 0 mod 160).
        let mut bit = (self.len % WIDTH_BITS) * SHIFT % WIDTH_BITS;
        for &b in data {
            let idx = (bit / 8) as usize;
            let v = u16::from(b) << (bit % 8);
            self.state[idx] ^= v as u8;
            self.state[(idx + 1) % 20] ^= (v >> 8) as u8;
            bit = (bit + SHIFT) % WIDTH_BITS;
        }
        self.len += data.len() as u64;
    }

    /// The final 20 bytes.
    pub fn finish(self) -> [u8; 20] {
        let mut s = self.state;
        for (k, lb) in self.len.to_le_bytes().iter().enumerate() {
            s[12 + k] ^= lb;
        }
        s
    }

    /// The final digest as Graph serves it (`file.hashes.quickXorHash`).
    pub fn finish_base64(self) -> String {
        STANDARD.encode(self.finish())
    }
}

impl ContentHasher for QuickXorHash {
    fn update(&mut self, data: &[u8]) {
        QuickXorHash::update(self, data);
    }

    fn finish_hex(self) -> String {
        hex::encode(self.finish())
    }
}

/// QuickXorHash of `data`, base64.
pub fn quick_xor_hash(data: &[u8]) -> String {
    let mut h = QuickXorHash::default();
    h.update(data);
    h.finish_base64()
}

/// The base64 form of a digest the sandbox keeps as hex.
pub(crate) fn hex_to_base64(hex_digest: &str) -> String {
    hex::decode(hex_digest).map(|b| STANDARD.encode(b)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Content;

    #[test]
    fn reference_vectors() {
        assert_eq!(quick_xor_hash(b""), "AAAAAAAAAAAAAAAAAAAAAAAAAAA=");
        assert_eq!(quick_xor_hash(&[0x4A]), "SgAAAAAAAAAAAAAAAQAAAAAAAAA=");
        assert_eq!(quick_xor_hash(b"hello world"), "aCgDG9jwBhDc4Q1yawMZAAAAAAA=");
        let mut h = QuickXorHash::default();
        h.update(b"hello world");
        assert_eq!(
            h.finish(),
            [104, 40, 3, 27, 216, 240, 6, 16, 220, 225, 13, 114, 107, 3, 25, 0, 0, 0, 0, 0]
        );
        let input = STANDARD
            .decode("QuzaF0+5ooig6OLEWeibZUENl8EaiXAQvK9UjBEauMeuFFDCtNcGs25BDtJGGbX90gH4VZvCCDNCq4s=")
            .expect("vector");
        assert_eq!(input.len(), 59);
        assert_eq!(quick_xor_hash(&input), "rggokuJq1OGNOfB6aDp2g4rdPgw=");
    }

    #[test]
    fn streaming_matches_one_shot_whatever_the_split() {
        let data = Content::generated(1000, 7).to_vec();
        let whole = quick_xor_hash(&data);
        for split in [1usize, 3, 19, 160, 161, 999] {
            let mut h = QuickXorHash::default();
            for chunk in data.chunks(split) {
                h.update(chunk);
            }
            assert_eq!(h.finish_base64(), whole, "split {split}");
        }
        let hexed = Content::Bytes(data).digest::<QuickXorHash>();
        assert_eq!(hex_to_base64(&hexed), whole);
    }
}
