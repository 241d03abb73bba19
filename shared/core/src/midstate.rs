//! Hash states that outlive a process. A transfer cut by an invocation's deadline carries the
//! state of every hash it computes to the next invocation (ARCHITECTURE §7 "Large files"):
//! the hasher's words, its length and its partial block — a fixed size whatever was hashed,
//! never the data.

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
