//! Hash states that outlive a process. A transfer cut by an invocation's deadline carries the
//! state of every hash it computes to the next invocation (ARCHITECTURE §7 "Large files"):
//! the hasher's words, its length and its partial block — a fixed size whatever was hashed,
//! never the data.
//!
//! [`Crc64`] is the sinks' check of what they store against what the engine hashed
//! ([`crate::ports::ObjectDigest`]); its state is one word.

pub use sha2::digest::common::hazmat::SerializableState;
use sha2::digest::common::hazmat::SerializedState;

/// The state of `hasher` (any RustCrypto hasher: SHA-256, MD5, …) as bytes.
pub fn save<H: SerializableState>(hasher: &H) -> Vec<u8> {
    hasher.serialize().to_vec()
}

/// A hasher from [`save`]'s bytes; `None` when they are not a state of `H`.
pub fn restore<H: SerializableState>(bytes: &[u8]) -> Option<H> {
    let state = SerializedState::<H>::try_from(bytes).ok()?;
    H::deserialize(&state).ok()
}

/// CRC-64/NVME over a stream, resumable from [`Crc64::state`]. A sink computes it over the
/// bytes it stores and the engine over the bytes it hands the sink; they must agree at commit.
/// A CRC, not a second SHA-256: it catches bytes lost, doubled or misplaced between the two
/// (a resume at the wrong offset, a part dropped) for a small fraction of a SHA-256's cost
/// (carry-less multiplication: tens of GB/s where SHA-256 runs at under 2).
#[derive(Clone, Copy)]
pub struct Crc64(crc_fast::Digest);

impl Crc64 {
    pub fn new() -> Self {
        Self(crc_fast::Digest::new(crc_fast::CrcAlgorithm::Crc64Nvme))
    }

    /// Continues the stream whose [`Crc64::state`] was `state`.
    pub fn resume(state: u64) -> Self {
        Self(crc_fast::Digest::new_with_init_state(crc_fast::CrcAlgorithm::Crc64Nvme, state))
    }

    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    /// The running state: what [`Crc64::resume`] continues from.
    pub fn state(&self) -> u64 {
        self.0.get_state()
    }

    /// The checksum of everything fed so far.
    pub fn value(&self) -> u64 {
        self.0.finalize()
    }

    /// The checksum of `data`.
    pub fn of(data: &[u8]) -> u64 {
        let mut c = Self::new();
        c.update(data);
        c.value()
    }
}

impl Default for Crc64 {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Crc64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Crc64({:016x})", self.state())
    }
}

/// `data`, which starts at byte `pos` of a stream, cut where the stream reaches a non-zero
/// multiple of `every`: each piece comes with `Some(offset)` when the stream stands at such a
/// multiple right after it, so a hasher fed piece by piece can record its state exactly
/// there, whatever the chunking. `every == 0` cuts nothing.
pub fn pieces(pos: u64, every: u64, data: &[u8]) -> impl Iterator<Item = (&[u8], Option<u64>)> {
    let mut at = pos;
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let take = match every {
            0 => rest.len(),
            _ => usize::try_from(every - at % every).unwrap_or(usize::MAX).min(rest.len()),
        };
        let (head, tail) = rest.split_at(take);
        rest = tail;
        at += take as u64;
        Some((head, (every > 0 && at.is_multiple_of(every)).then_some(at)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn a_restored_sha256_ends_as_the_uncut_one() {
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for cut in [0, 1, 63, 64, 65, 4_097, 9_999, 10_000] {
            let mut h = Sha256::new();
            h.update(&data[..cut]);
            let saved = save(&h);
            assert!(saved.len() <= 40 + 65, "fixed size: {}", saved.len());
            let mut r: Sha256 = restore(&saved).expect("restores");
            r.update(&data[cut..]);
            assert_eq!(r.finalize(), Sha256::digest(&data), "cut at {cut}");
        }
        assert!(restore::<Sha256>(b"not a state").is_none());
    }

    #[test]
    fn a_resumed_crc64_ends_as_the_uncut_one() {
        // The check value of CRC-64/NVME (the CRC catalogue's "123456789").
        assert_eq!(Crc64::of(b"123456789"), 0xae8b_1486_0a79_9888);
        let data: Vec<u8> = (0..10_000u32).map(|i| (i * 7 % 251) as u8).collect();
        for cut in [0, 1, 15, 16, 4_097, 10_000] {
            let mut c = Crc64::new();
            c.update(&data[..cut]);
            let mut r = Crc64::resume(c.state());
            r.update(&data[cut..]);
            assert_eq!(r.value(), Crc64::of(&data), "cut at {cut}");
        }
        let mut moved = data.clone();
        moved.swap(0, 1);
        assert_ne!(Crc64::of(&moved), Crc64::of(&data), "order matters");
    }

    #[test]
    fn marks_fall_on_multiples_whatever_the_chunks() {
        let mut fed = Vec::new();
        let mut marks = Vec::new();
        let mut pos = 3;
        for chunk in [&b"abcde"[..], b"", b"fghijklmnopq", b"r"] {
            for (piece, mark) in pieces(pos, 4, chunk) {
                fed.extend_from_slice(piece);
                if let Some(at) = mark {
                    marks.push((at, fed.len()));
                }
            }
            pos += chunk.len() as u64;
        }
        assert_eq!(fed, b"abcdefghijklmnopqr");
        // Absolute offsets 4, 8, …, 20 with pos starting at 3: after 1, 5, 9, 13, 17 bytes fed.
        assert_eq!(marks, [(4, 1), (8, 5), (12, 9), (16, 13), (20, 17)]);
        assert_eq!(pieces(0, 0, b"xyz").collect::<Vec<_>>(), [(&b"xyz"[..], None)]);
    }
}
