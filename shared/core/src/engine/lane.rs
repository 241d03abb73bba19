//! What runs beside one transfer's download: the engine's CRC-64 of the bytes it hands the
//! sink, with the states a suspend needs (taken as the bytes pass each multiple of the sink's
//! granule), and the sink's writes. The CRC runs inline (tens of GB/s); for a large file the
//! sink's writes run in a task of their own, fed through a bounded queue, so the connector's
//! check of the provider's hash (the one cryptographic hash of a transfer) and the sink's work
//! run side by side and the pipeline's rate is its slower stage, not their sum. A small file's
//! writes are made inline, where a task would cost more than it saves.

use std::collections::VecDeque;

use bytes::Bytes;
use tokio::sync::mpsc;

use tracing::Instrument;

use crate::midstate::{self, Crc64};
use crate::ports::{AssetUpload, HashMarks, SinkError};

/// Files at least this large get a writing task.
const TASK_FROM: u64 = 4 * 1024 * 1024;
/// Chunks queued for the task at most: bounded memory, and backpressure on the download.
const QUEUED: usize = 8;

/// The CRC of the bytes so far and its marks (offset, state), the latest [`HashMarks::KEPT`].
pub(crate) struct Summed {
    pub crc: Crc64,
    marks: VecDeque<(u64, u64)>,
    pos: u64,
    every: u64,
}

impl Summed {
    /// Continues `crc`, which covers the first `pos` bytes (marked there); marks every `every`
    /// bytes (0: never).
    pub(crate) fn start(crc: Crc64, pos: u64, every: u64) -> Summed {
        let marks = if pos > 0 { VecDeque::from([(pos, crc.state())]) } else { VecDeque::new() };
        Summed { crc, marks, pos, every }
    }

    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        for (piece, mark) in midstate::pieces(self.pos, self.every, bytes) {
            self.crc.update(piece);
            if let Some(at) = mark {
                if self.marks.len() == HashMarks::KEPT {
                    self.marks.pop_front();
                }
                self.marks.push_back((at, self.crc.state()));
            }
        }
        self.pos += bytes.len() as u64;
    }

    /// The CRC state at `offset`, if marked.
    pub(crate) fn at(&self, offset: u64) -> Option<u64> {
        self.marks.iter().rev().find(|(o, _)| *o == offset).map(|(_, s)| *s)
    }
}

/// The sink's writes of one transfer: a large file's run in a task of their own, so the sink's
/// work (S3 buffering its parts, the local sink's file and CRC) runs beside the download's
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
        if size.unwrap_or(0) < TASK_FROM {
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
