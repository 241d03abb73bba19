//! How the local sink's bytes reach its temp file: blocking writes, run on tokio's blocking pool
//! by the sink.
//!
//! A large upload is written with direct I/O where the file system takes it (Linux `O_DIRECT`):
//! whole 4 KiB blocks from an aligned buffer go to the disk without passing through the page
//! cache. A multi-GiB import then neither evicts the machine's page cache nor pays the kernel's
//! copy into it, which costs more CPU than the hashing on some machines (measured on a VM with
//! free page reporting: 1.8 s of system time to write 4 GiB into the page cache, 0.4–0.7 s
//! direct). The bytes short of a block wait in the buffer; `finish` writes them through the
//! ordinary handle. A file system that refuses the direct handle, or a write through it (it
//! wants larger blocks), gets ordinary writes from that byte on: direct I/O is an optimisation,
//! never a requirement.

use std::fs::File;
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::Path;

use bytes::Bytes;

/// The alignment of direct writes: their memory, offset and length (the logical block size of
/// nearly every disk is 512 or 4,096 bytes).
pub(super) const BLOCK: usize = 4096;

/// The aligned buffer's size: gathered bytes go to the disk in writes of up to this much.
const BUFFER: usize = 2 * 1024 * 1024;

/// The temp file of one upload.
#[derive(Debug)]
pub(super) struct Writer {
    /// The ordinary handle: every byte when there is no direct handle, the tail otherwise.
    file: File,
    direct: Option<Direct>,
    /// Bytes on the file (not counting those waiting in the direct buffer).
    pos: u64,
}

#[derive(Debug)]
struct Direct {
    file: File,
    /// `BUFFER` bytes from `start` are aligned to `BLOCK`; `len` of them wait to be written.
    buf: Vec<u8>,
    start: usize,
    len: usize,
}

impl Direct {
    fn open(path: &Path) -> Option<Self> {
        let file = open_direct(path)?;
        let buf = vec![0u8; BUFFER + BLOCK];
        let start = buf.as_ptr().align_offset(BLOCK);
        (start < BLOCK).then_some(Self { file, buf, start, len: 0 })
    }

    fn waiting(&self) -> &[u8] {
        &self.buf[self.start..self.start + self.len]
    }

    /// Takes as much of `bytes` as fits; returns how much.
    fn take(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(BUFFER - self.len);
        let at = self.start + self.len;
        self.buf[at..at + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        n
    }

    /// The first `n` waiting bytes are written: the rest move to the front.
    fn drop_front(&mut self, n: usize) {
        self.buf.copy_within(self.start + n..self.start + self.len, self.start);
        self.len -= n;
    }
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
        let direct = (direct && at.is_multiple_of(BLOCK as u64)).then(|| Direct::open(path)).flatten();
        Ok(Self { file, direct, pos: at })
    }

    /// Whether whole blocks go to the disk directly.
    pub(super) fn is_direct(&self) -> bool {
        self.direct.is_some()
    }

    /// Writes `chunks`, in order, after what was written before.
    pub(super) fn write(&mut self, chunks: &[Bytes]) -> std::io::Result<()> {
        for chunk in chunks {
            let mut rest: &[u8] = chunk;
            while !rest.is_empty() {
                let Some(d) = &mut self.direct else {
                    self.file.write_all_at(rest, self.pos)?;
                    self.pos += rest.len() as u64;
                    break;
                };
                let n = d.take(rest);
                rest = &rest[n..];
                if d.len == BUFFER {
                    self.put_direct(BUFFER)?;
                }
            }
        }
        let whole = self.direct.as_ref().map_or(0, |d| d.len / BLOCK * BLOCK);
        self.put_direct(whole)
    }

    /// Writes the first `n` waiting bytes (a multiple of `BLOCK`) through the direct handle.
    fn put_direct(&mut self, n: usize) -> std::io::Result<()> {
        let Some(d) = &mut self.direct else { return Ok(()) };
        if n == 0 {
            return Ok(());
        }
        match d.file.write_all_at(&d.waiting()[..n], self.pos) {
            Ok(()) => {
                self.pos += n as u64;
                d.drop_front(n);
                Ok(())
            }
            // The file system wants larger blocks after all: ordinary writes from here on,
            // starting with these bytes again (any part the direct write took is overwritten).
            Err(e) if e.kind() == ErrorKind::InvalidInput => self.finish(),
            Err(e) => Err(e),
        }
    }

    /// Writes the bytes waiting in the direct buffer through the ordinary handle. Later
    /// writes, if any, are ordinary ones.
    pub(super) fn finish(&mut self) -> std::io::Result<()> {
        if let Some(d) = self.direct.take() {
            self.file.write_all_at(d.waiting(), self.pos)?;
            self.pos += d.len as u64;
        }
        Ok(())
    }

    /// Finishes, then cuts the file to `len` bytes, on the disk.
    pub(super) fn keep(&mut self, len: u64) -> std::io::Result<()> {
        self.finish()?;
        self.file.set_len(len)?;
        self.pos = len;
        self.file.sync_data()
    }
}

/// A job on the writer: a batch to write, the tail to finish, the file to keep.
pub(super) type Job = Box<dyn FnOnce(&mut Writer) -> std::io::Result<()> + Send>;

/// Jobs queued before [`Queue::push`] waits: the upload gathers the next batches while the
/// writer is busy, and the writer finds the next one waiting instead of idling while a thread
/// is woken for it (measured: a thread woken per batch left the disk idle a quarter of the time).
const DEPTH: usize = 4;

/// A [`Writer`] on a blocking thread of its own, running jobs in order. The first job that
/// fails fails the queue: later ones are skipped, and `push` and `settle` report it. Dropped,
/// the thread runs the jobs already queued, then closes the file.
#[derive(Debug)]
pub(super) struct Queue {
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
    pub(super) fn start(mut writer: Writer) -> Self {
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
    pub(super) async fn push(&mut self, job: Job) -> std::io::Result<()> {
        self.progress.borrow().check()?;
        self.jobs.send(job).await.map_err(|_| gone())?;
        self.pushed += 1;
        Ok(())
    }

    /// Waits until every job queued has run or been skipped; an error is the first that failed.
    pub(super) async fn settle(&mut self) -> std::io::Result<()> {
        let pushed = self.pushed;
        let p = self.progress.wait_for(|p| p.done >= pushed).await.map_err(|_| gone())?;
        p.check()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of `size` pattern bytes written in `chunk`-byte pieces, `per_batch` pieces a call.
    fn written(
        dir: &Path,
        size: usize,
        chunk: usize,
        per_batch: usize,
        direct: bool,
    ) -> (Vec<u8>, Vec<u8>, bool) {
        let data: Vec<u8> = (0..size).map(|i| (i * 31 % 251) as u8).collect();
        let path = dir.join(format!("{size}-{chunk}-{direct}.part"));
        File::create_new(&path).unwrap();
        let mut w = Writer::open(&path, 0, direct).unwrap();
        let was_direct = w.is_direct();
        let chunks: Vec<Bytes> = data.chunks(chunk).map(Bytes::copy_from_slice).collect();
        for batch in chunks.chunks(per_batch) {
            w.write(batch).unwrap();
        }
        w.finish().unwrap();
        (std::fs::read(&path).unwrap(), data, was_direct)
    }

    /// Whether this folder's file system takes direct I/O at all (tmpfs before Linux 6.6 does not).
    fn takes_direct(dir: &Path) -> bool {
        let probe = dir.join("probe");
        File::create_new(&probe).unwrap();
        open_direct(&probe).is_some()
    }

    #[test]
    fn every_byte_lands_in_order_whatever_the_chunking() {
        let dir = tempfile::tempdir().unwrap();
        let direct_here = takes_direct(dir.path());
        for (size, chunk, per_batch) in [
            (0, 1, 1),
            (1, 1, 1),
            (BLOCK - 1, 1000, 3),
            (BLOCK, BLOCK, 1),
            (BLOCK + 1, 7, 4000),
            (BUFFER, 409_600, 3),
            (BUFFER + BLOCK + 17, 409_600, 1),
            (3 * BUFFER + 5, 65_537, 16),
        ] {
            for direct in [false, true] {
                let (file, data, was_direct) = written(dir.path(), size, chunk, per_batch, direct);
                assert_eq!(file.len(), data.len(), "size {size} chunk {chunk} direct {direct}");
                assert!(file == data, "size {size} chunk {chunk} direct {direct}: bytes differ");
                assert_eq!(was_direct, direct && direct_here, "size {size}");
            }
        }
    }

    #[test]
    fn kept_file_is_cut_on_the_disk_and_continues_from_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.part");
        File::create_new(&path).unwrap();
        let data: Vec<u8> = (0..3 * BLOCK + 100).map(|i| (i % 253) as u8).collect();
        let mut w = Writer::open(&path, 0, true).unwrap();
        w.write(&[Bytes::copy_from_slice(&data)]).unwrap();
        w.keep(2 * BLOCK as u64).unwrap();
        drop(w);
        assert_eq!(std::fs::read(&path).unwrap(), &data[..2 * BLOCK]);

        let mut w = Writer::open(&path, 2 * BLOCK as u64, true).unwrap();
        assert_eq!(w.is_direct(), takes_direct(dir.path()));
        w.write(&[Bytes::copy_from_slice(&data[2 * BLOCK..])]).unwrap();
        w.finish().unwrap();
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
        let (mut q, path) = queued(dir.path(), true);
        for b in [&b"one "[..], b"two ", b"three"] {
            q.push(batch(b)).await.unwrap();
        }
        q.push(Box::new(Writer::finish)).await.unwrap();
        q.settle().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"one two three");

        let other = tempfile::tempdir().unwrap();
        // Ordinary writes, so that a job run after the failure would show in the file.
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
    async fn a_busy_writer_holds_back_the_upload_after_a_few_batches() {
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
}
