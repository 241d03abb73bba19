//! How the local sink's bytes reach its temp file: a writer on a blocking thread of the
//! upload's own ([`Writer`], [`Queue`]), fed by the upload ([`Feed`]).
//!
//! A large upload is written with direct I/O where the file system takes it (Linux `O_DIRECT`):
//! the upload copies what it receives into 2 MiB blocks aligned to 4 KiB, and the writer hands
//! each to the disk without the page cache. A multi-GiB import then neither evicts the
//! machine's page cache nor pays the kernel's copy into it, which costs more CPU than the
//! hashing on some machines (measured on a VM with free page reporting: 1.8 s of system time to
//! write 4 GiB into the page cache, 0.4–0.7 s direct). The copy into blocks is the upload's, so
//! that the writer thread does nothing but write: it is the pipeline's slowest stage. The last
//! bytes short of a block go through the ordinary handle. A file system that refuses the
//! direct handle, or a write through it (it wants larger blocks), gets ordinary writes from
//! that byte on: direct I/O is an optimisation, never a requirement.
//!
//! A small upload gathers the chunks it receives, as they are, into batches of 1 MiB, written
//! through the ordinary handle.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;

/// The alignment of direct writes: their memory, offset and length (the logical block size of
/// nearly every disk is 512 or 4,096 bytes).
pub(super) const BLOCK: usize = 4096;

/// A direct write: one block buffer.
const BLOCK_BUFFER: usize = 2 * 1024 * 1024;

/// Chunks gathered before an ordinary write.
const BATCH: usize = 1024 * 1024;

/// Jobs queued before [`Queue::push`] waits: the upload fills the next blocks while the writer
/// is busy, and the writer finds the next one waiting instead of idling while a thread is woken
/// for it (measured: a thread woken per batch left the disk idle a quarter of the time).
const DEPTH: usize = 3;

/// `BLOCK_BUFFER` bytes aligned to `BLOCK`, `len` of them filled: an over-allocated vector and
/// the offset of its first aligned byte (no unsafe code).
#[derive(Debug)]
struct Block {
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Block {
    fn new() -> Self {
        let buf = vec![0u8; BLOCK_BUFFER + BLOCK];
        // At most BLOCK - 1 for a byte pointer; the buffer has room for either.
        let start = buf.as_ptr().align_offset(BLOCK).min(BLOCK);
        Self { buf, start, len: 0 }
    }

    /// Appends as much of `bytes` as fits; returns how much.
    fn fill(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(BLOCK_BUFFER - self.len);
        let at = self.start + self.len;
        self.buf[at..at + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        n
    }

    fn is_full(&self) -> bool {
        self.len == BLOCK_BUFFER
    }

    fn bytes(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }
}

/// The temp file of one upload: blocking writes, on the upload's writer thread.
#[derive(Debug)]
pub(super) struct Writer {
    /// The ordinary handle: every byte when there is no direct handle, the tail otherwise.
    file: File,
    direct: Option<File>,
    /// Bytes on the file.
    pos: u64,
}

#[cfg(target_os = "linux")]
fn open_direct(path: &Path) -> Option<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).custom_flags(libc::O_DIRECT).open(path).ok()
}

#[cfg(not(target_os = "linux"))]
fn open_direct(_path: &Path) -> Option<File> {
    None
}

impl Writer {
    /// The file at `path`, written from byte `at` on; with direct I/O when `direct` is asked,
    /// `at` is a multiple of [`BLOCK`] and the file system takes it.
    pub(super) fn open(path: &Path, at: u64, direct: bool) -> std::io::Result<Self> {
        let file = std::fs::OpenOptions::new().write(true).open(path)?;
        let direct = (direct && at.is_multiple_of(BLOCK as u64)).then(|| open_direct(path)).flatten();
        Ok(Self { file, direct, pos: at })
    }

    /// Whether whole blocks go to the disk directly.
    pub(super) fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Writes `chunks`, in order, after what was written, through the ordinary handle.
    fn write(&mut self, chunks: &[Bytes]) -> std::io::Result<()> {
        // Unaligned from here: no direct write may follow.
        self.direct = None;
        for chunk in chunks {
            self.file.write_all_at(chunk, self.pos)?;
            self.pos += chunk.len() as u64;
        }
        Ok(())
    }

    /// Writes `block` after what was written: its whole 4 KiB blocks directly, if the writer
    /// is direct, and the rest (of a last, partial block) through the ordinary handle.
    fn put(&mut self, block: &Block) -> std::io::Result<()> {
        let bytes = block.bytes();
        let whole = match self.direct {
            Some(_) => bytes.len() / BLOCK * BLOCK,
            None => 0,
        };
        if let Some(direct) = &self.direct
            && whole > 0
        {
            match direct.write_all_at(&bytes[..whole], self.pos) {
                Ok(()) => self.pos += whole as u64,
                // The file system wants larger blocks after all: ordinary writes from here on,
                // these bytes again first (any part the direct write took is overwritten).
                Err(e) if e.kind() == ErrorKind::InvalidInput => {
                    return self.write(&[Bytes::copy_from_slice(bytes)]);
                }
                Err(e) => return Err(e),
            }
        }
        match &bytes[whole..] {
            [] => Ok(()),
            rest => self.write(&[Bytes::copy_from_slice(rest)]),
        }
    }

    /// Cuts the file to `len` bytes, on the disk.
    pub(super) fn keep(&mut self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)?;
        self.pos = len;
        self.file.sync_data()
    }
}

/// A job on the writer: a batch or a block to write, the file to keep.
pub(super) type Job = Box<dyn FnOnce(&mut Writer) -> std::io::Result<()> + Send>;

/// A [`Writer`] on a blocking thread of its own, running jobs in order. The first job that
/// fails fails the queue: later ones are skipped, and `push` and `settle` report it. Dropped,
/// the thread runs the jobs already queued, then closes the file.
#[derive(Debug)]
struct Queue {
    jobs: tokio::sync::mpsc::Sender<Job>,
    progress: tokio::sync::watch::Receiver<Progress>,
    pushed: u64,
}

#[derive(Debug, Clone, Default)]
struct Progress {
    done: u64,
    failed: Option<(ErrorKind, String)>,
}

impl Progress {
    fn check(&self) -> std::io::Result<()> {
        match &self.failed {
            Some((kind, message)) => Err(std::io::Error::new(*kind, message.clone())),
            None => Ok(()),
        }
    }
}

fn gone() -> std::io::Error {
    std::io::Error::other("the file writer stopped")
}

impl Queue {
    fn start(mut writer: Writer) -> Self {
        let (jobs, mut queued) = tokio::sync::mpsc::channel::<Job>(DEPTH);
        let (report, progress) = tokio::sync::watch::channel(Progress::default());
        tokio::task::spawn_blocking(move || {
            while let Some(job) = queued.blocking_recv() {
                let failed = report.borrow().failed.is_some();
                let outcome = if failed { Ok(()) } else { job(&mut writer) };
                report.send_modify(|p| {
                    p.done += 1;
                    if let Err(e) = outcome {
                        p.failed.get_or_insert((e.kind(), e.to_string()));
                    }
                });
            }
        });
        Self { jobs, progress, pushed: 0 }
    }

    /// Queues `job`, waiting while [`DEPTH`] jobs wait; an error is an earlier job's.
    async fn push(&mut self, job: Job) -> std::io::Result<()> {
        self.progress.borrow().check()?;
        self.jobs.send(job).await.map_err(|_| gone())?;
        self.pushed += 1;
        Ok(())
    }

    /// Waits until every job queued has run or been skipped; an error is the first that failed.
    async fn settle(&mut self) -> std::io::Result<()> {
        let pushed = self.pushed;
        let p = self.progress.wait_for(|p| p.done >= pushed).await.map_err(|_| gone())?;
        p.check()
    }
}

/// The upload's side of its writer: what it is given, gathered and queued in order.
#[derive(Debug)]
pub(super) struct Feed {
    queue: Queue,
    gather: Gather,
}

#[derive(Debug)]
enum Gather {
    /// Ordinary writes: chunks as they came, `len` bytes of them.
    Chunks { pending: Vec<Bytes>, len: usize },
    /// Direct writes: the block being filled, and the blocks the writer is done with.
    Blocks { filling: Option<Block>, spare: Arc<Mutex<Vec<Block>>> },
}

impl Feed {
    pub(super) fn start(writer: Writer) -> Self {
        let gather = match writer.is_direct() {
            true => Gather::Blocks { filling: None, spare: Arc::default() },
            false => Gather::Chunks { pending: Vec::new(), len: 0 },
        };
        Self { queue: Queue::start(writer), gather }
    }

    /// Takes `chunk`; waits while the writer is [`DEPTH`] jobs behind. An error is an earlier
    /// write's: the file is unusable.
    pub(super) async fn write(&mut self, chunk: Bytes) -> std::io::Result<()> {
        match &mut self.gather {
            Gather::Chunks { pending, len } => {
                *len += chunk.len();
                pending.push(chunk);
                if *len >= BATCH {
                    self.push_gathered().await?;
                }
            }
            Gather::Blocks { .. } => {
                let mut rest: &[u8] = &chunk;
                while !rest.is_empty() {
                    let Gather::Blocks { filling, spare } = &mut self.gather else { break };
                    let block = filling.get_or_insert_with(|| {
                        let reused = spare.lock().unwrap_or_else(|p| p.into_inner()).pop();
                        reused.unwrap_or_else(Block::new)
                    });
                    rest = &rest[block.fill(rest)..];
                    if block.is_full() {
                        self.push_gathered().await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Queues what was gathered: the pending chunks, or the block being filled (the writer
    /// gives it back once written).
    async fn push_gathered(&mut self) -> std::io::Result<()> {
        let job: Job = match &mut self.gather {
            Gather::Chunks { pending, len } if !pending.is_empty() => {
                let pending = std::mem::take(pending);
                *len = 0;
                Box::new(move |w| w.write(&pending))
            }
            Gather::Blocks { filling, spare } if filling.is_some() => {
                let Some(mut block) = filling.take() else { return Ok(()) };
                let spare = spare.clone();
                Box::new(move |w| {
                    let written = w.put(&block);
                    block.len = 0;
                    spare.lock().unwrap_or_else(|p| p.into_inner()).push(block);
                    written
                })
            }
            _ => return Ok(()),
        };
        self.queue.push(job).await
    }

    /// Everything given, written; then `last`, if any; then the writer is done.
    pub(super) async fn close(mut self, last: Option<Job>) -> std::io::Result<()> {
        self.push_gathered().await?;
        if let Some(last) = last {
            self.queue.push(last).await?;
        }
        self.queue.settle().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Whether this folder's file system takes direct I/O at all (tmpfs before Linux 6.6 does not).
    fn takes_direct(dir: &Path) -> bool {
        let probe = dir.join("probe");
        File::create_new(&probe).unwrap();
        open_direct(&probe).is_some()
    }

    fn pattern(size: usize) -> Vec<u8> {
        (0..size).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// `data` fed in `chunk`-byte pieces into a new file under `dir`, from byte 0; the file's
    /// bytes and whether the writes were direct.
    async fn fed(dir: &Path, data: &[u8], chunk: usize, direct: bool) -> (Vec<u8>, bool) {
        let path = dir.join(format!("{}-{chunk}-{direct}.part", data.len()));
        File::create_new(&path).unwrap();
        let w = Writer::open(&path, 0, direct).unwrap();
        let was_direct = w.is_direct();
        let mut feed = Feed::start(w);
        for piece in data.chunks(chunk) {
            feed.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        feed.close(None).await.unwrap();
        (std::fs::read(&path).unwrap(), was_direct)
    }

    #[tokio::test]
    async fn every_byte_lands_in_order_whatever_the_chunking() {
        let dir = tempfile::tempdir().unwrap();
        let direct_here = takes_direct(dir.path());
        for (size, chunk) in [
            (0, 1),
            (1, 1),
            (BLOCK - 1, 1000),
            (BLOCK, BLOCK),
            (BLOCK + 1, 7),
            (BLOCK_BUFFER, 409_600),
            (BLOCK_BUFFER + BLOCK + 17, 409_600),
            (3 * BLOCK_BUFFER + 5, 65_537),
            (2 * BATCH + 3, 300_001),
        ] {
            let data = pattern(size);
            for direct in [false, true] {
                let (file, was_direct) = fed(dir.path(), &data, chunk, direct).await;
                assert_eq!(file.len(), data.len(), "size {size} chunk {chunk} direct {direct}");
                assert!(file == data, "size {size} chunk {chunk} direct {direct}: bytes differ");
                assert_eq!(was_direct, direct && direct_here, "size {size}");
            }
        }
    }

    #[tokio::test]
    async fn a_kept_file_is_cut_on_the_disk_and_continues_from_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.part");
        File::create_new(&path).unwrap();
        let data = pattern(BLOCK_BUFFER + 3 * BLOCK + 100);
        let cut = (BLOCK_BUFFER + BLOCK) as u64;
        let mut feed = Feed::start(Writer::open(&path, 0, true).unwrap());
        feed.write(Bytes::copy_from_slice(&data)).await.unwrap();
        feed.close(Some(Box::new(move |w| w.keep(cut)))).await.unwrap();
        assert!(std::fs::read(&path).unwrap() == data[..BLOCK_BUFFER + BLOCK]);

        let w = Writer::open(&path, cut, true).unwrap();
        assert_eq!(w.is_direct(), takes_direct(dir.path()));
        let mut feed = Feed::start(w);
        feed.write(Bytes::copy_from_slice(&data[BLOCK_BUFFER + BLOCK..])).await.unwrap();
        feed.close(None).await.unwrap();
        assert!(std::fs::read(&path).unwrap() == data);

        // From an offset that is not a whole block: ordinary writes.
        let w = Writer::open(&path, 5, true).unwrap();
        assert!(!w.is_direct());
    }

    fn queued(dir: &Path, direct: bool) -> (Queue, std::path::PathBuf) {
        let path = dir.join("q.part");
        File::create_new(&path).unwrap();
        (Queue::start(Writer::open(&path, 0, direct).unwrap()), path)
    }

    fn batch(bytes: &'static [u8]) -> Job {
        Box::new(move |w| w.write(&[Bytes::from_static(bytes)]))
    }

    #[tokio::test]
    async fn queued_jobs_run_in_order_and_the_first_failure_stops_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, path) = queued(dir.path(), false);
        for b in [&b"one "[..], b"two ", b"three"] {
            q.push(batch(b)).await.unwrap();
        }
        q.settle().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one two three");

        let other = tempfile::tempdir().unwrap();
        let (mut q, path) = queued(other.path(), false);
        // All queued before the writer starts on them.
        let (release, held) = std::sync::mpsc::channel::<()>();
        q.push(Box::new(move |_| held.recv().map_err(std::io::Error::other))).await.unwrap();
        q.push(Box::new(|_| Err(std::io::Error::other("disk on fire")))).await.unwrap();
        q.push(batch(b"skipped")).await.unwrap();
        release.send(()).unwrap();
        let err = q.settle().await.unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{err}");
        // Later jobs are refused with the same error; none after the failure ran.
        let again = q.push(batch(b"refused")).await.unwrap_err();
        assert!(again.to_string().contains("disk on fire"), "{again}");
        assert_eq!(std::fs::read(&path).unwrap(), b"");
    }

    #[tokio::test]
    async fn a_busy_writer_holds_back_the_upload_after_a_few_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _path) = queued(dir.path(), true);
        let (release, held) = std::sync::mpsc::channel::<()>();
        q.push(Box::new(move |_| held.recv().map_err(std::io::Error::other))).await.unwrap();
        // The writer holds the first job: the channel takes DEPTH more, then `push` waits.
        for _ in 0..DEPTH {
            q.push(batch(b"x")).await.unwrap();
        }
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(200), q.push(batch(b"y"))).await;
        assert!(waiting.is_err(), "a push past the queue's depth waits for the writer");
        release.send(()).unwrap();
        q.push(batch(b"z")).await.unwrap();
        q.settle().await.unwrap();
    }

    #[tokio::test]
    async fn blocks_are_reused_not_allocated_per_write() {
        let dir = tempfile::tempdir().unwrap();
        if !takes_direct(dir.path()) {
            return;
        }
        let path = dir.path().join("r.part");
        File::create_new(&path).unwrap();
        let mut feed = Feed::start(Writer::open(&path, 0, true).unwrap());
        let data = pattern(BLOCK_BUFFER);
        for _ in 0..20 {
            feed.write(Bytes::copy_from_slice(&data)).await.unwrap();
        }
        feed.queue.settle().await.unwrap();
        let Gather::Blocks { spare, .. } = &feed.gather else { panic!("direct writes gather blocks") };
        let spares = spare.lock().unwrap().len();
        // 20 blocks written, at most DEPTH + 2 ever allocated.
        assert!((1..=DEPTH + 2).contains(&spares), "{spares} blocks allocated for 20 writes");
        feed.close(None).await.unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 20 * BLOCK_BUFFER as u64);
    }
}
