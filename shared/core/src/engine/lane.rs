//! The stages of one transfer beside the download: the engine's SHA-256, with the states a
//! suspend needs (taken as the bytes pass each multiple of the sink's granule), and the sink's
//! writes. For a large file each runs on its own (a blocking thread, a task), fed through a
//! bounded queue, so the three hashes of a transfer — the connector's check of the provider's
//! hash, the engine's SHA-256 and the sink's own — run side by side and the pipeline's rate is
//! its slowest stage, not their sum. A small file's run inline, where a thread or a task would
//! cost more than it saves.

use std::collections::VecDeque;

use bytes::Bytes;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use tracing::Instrument;

use crate::midstate;
use crate::ports::{AssetUpload, HashMarks, SinkError};

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

/// The sink's writes of one transfer: a large file's run in a task of their own, so the sink's
/// work (S3 buffering its parts, the local sink's file and hash) runs beside the download's
/// instead of after it; a small file's are made inline.
pub(crate) enum SinkLane {
    Inline(Box<dyn AssetUpload>),
    Task {
        tx: mpsc::Sender<Bytes>,
        done: tokio::task::JoinHandle<(Box<dyn AssetUpload>, Result<(), SinkError>)>,
    },
}

impl SinkLane {
    pub(crate) fn start(mut upload: Box<dyn AssetUpload>, size: Option<u64>) -> SinkLane {
        if size.unwrap_or(0) < THREADED_FROM {
            return SinkLane::Inline(upload);
        }
        let (tx, mut rx) = mpsc::channel::<Bytes>(QUEUED);
        let done = tokio::spawn(
            async move {
                while let Some(bytes) = rx.recv().await {
                    if let Err(e) = upload.write(bytes).await {
                        return (upload, Err(e));
                    }
                }
                (upload, Ok(()))
            }
            .in_current_span(),
        );
        SinkLane::Task { tx, done }
    }

    /// Writes `bytes` (queues them). An error: the sink failed; `finish` says how.
    pub(crate) async fn write(&mut self, bytes: Bytes) -> Result<(), SinkError> {
        match self {
            SinkLane::Inline(upload) => upload.write(bytes).await,
            SinkLane::Task { tx, .. } => {
                tx.send(bytes).await.map_err(|_| SinkError::Unavailable("the sink stopped".into()))
            }
        }
    }

    /// The upload back, once everything queued is written, with the first write error.
    pub(crate) async fn finish(self) -> (Option<Box<dyn AssetUpload>>, Result<(), SinkError>) {
        match self {
            SinkLane::Inline(upload) => (Some(upload), Ok(())),
            SinkLane::Task { tx, done } => {
                drop(tx);
                match done.await {
                    Ok((upload, written)) => (Some(upload), written),
                    Err(e) => (None, Err(SinkError::Unavailable(format!("the sink's writer failed: {e}")))),
                }
            }
        }
    }
}
