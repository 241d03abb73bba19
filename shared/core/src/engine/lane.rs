//! The engine's SHA-256 of one transfer, with the states a suspend needs (taken as the bytes
//! pass each multiple of the sink's granule). A large file is hashed on a thread of its own,
//! so the hash runs beside the download's own check and the sink's write instead of adding to
//! them (the pipeline's rate is then its slowest stage, not the sum of three hashes); a small
//! one is hashed inline, where a thread would cost more than it saves.

use std::collections::VecDeque;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::midstate;
use crate::ports::HashMarks;

/// Files at least this large get a hashing thread.
const THREADED_FROM: u64 = 4 * 1024 * 1024;
/// Chunks queued for the thread at most: bounded memory, and backpressure on the download.
const QUEUED: usize = 16;

/// The hash and its marks (offset, state), the latest [`HashMarks::KEPT`].
pub(crate) struct Hashed {
    pub sha: Sha256,
    pub marks: VecDeque<(u64, Vec<u8>)>,
}

pub(crate) struct State {
    hashed: Hashed,
    pos: u64,
    every: u64,
}

impl State {
    fn feed(&mut self, bytes: &[u8]) {
        for (piece, mark) in midstate::pieces(self.pos, self.every, bytes) {
            self.hashed.sha.update(piece);
            if let Some(at) = mark {
                if self.hashed.marks.len() == HashMarks::KEPT {
                    self.hashed.marks.pop_front();
                }
                self.hashed.marks.push_back((at, midstate::save(&self.hashed.sha)));
            }
        }
        self.pos += bytes.len() as u64;
    }
}

pub(crate) enum Lane {
    Inline(State),
    Thread { tx: mpsc::Sender<Bytes>, done: tokio::task::JoinHandle<Hashed> },
}

impl Lane {
    /// Continues `sha`, which covers the first `pos` bytes (marked there), for a file of `size`.
    pub(crate) fn start(sha: Sha256, pos: u64, every: u64, size: Option<u64>) -> Lane {
        let mut marks = VecDeque::new();
        if pos > 0 {
            marks.push_back((pos, midstate::save(&sha)));
        }
        let mut state = State { hashed: Hashed { sha, marks }, pos, every };
        if size.unwrap_or(0).saturating_sub(pos) < THREADED_FROM {
            return Lane::Inline(state);
        }
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUED);
        let done = tokio::task::spawn_blocking(move || {
            while let Some(bytes) = rx.blocking_recv() {
                state.feed(&bytes);
            }
            state.hashed
        });
        Lane::Thread { tx, done }
    }

    pub(crate) async fn feed(&mut self, bytes: Bytes) {
        match self {
            Lane::Inline(state) => state.feed(&bytes),
            // A closed channel means the thread is gone; `finish` reports it.
            Lane::Thread { tx, .. } => drop(tx.send(bytes).await),
        }
    }

    /// Everything fed, hashed. `None` only if the hashing thread died.
    pub(crate) async fn finish(self) -> Option<Hashed> {
        match self {
            Lane::Inline(state) => Some(state.hashed),
            Lane::Thread { tx, done } => {
                drop(tx);
                done.await.ok()
            }
        }
    }
}
