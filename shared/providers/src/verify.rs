//! Verified streaming, for every connector: the body passes through hashed and counted, and
//! ends with a final `Err(Integrity)` instead of a clean end when it is shorter or longer than
//! announced or its hash differs from the provider's. Memory: one chunk at a time, and for a
//! large body the [`READ_AHEAD`] chunks its reader keeps ready.

use bytes::Bytes;
use extconn_core::midstate;
use extconn_core::ports::{DownloadRequest, HashMarks, ProviderError};
use futures::stream::{BoxStream, StreamExt};
use tracing::Instrument;

use crate::hash::{Resumable, StreamHasher};
use crate::http::transport_error;

/// What the served bytes must match. From a non-zero offset the hash is checked over the whole
/// file only when the request carries the hash's state at that offset ([`resumed_hash`]);
/// without it, only the size of the rest.
/// The provider's hash, and a hasher of its algorithm.
pub type Check = (String, Box<dyn StreamHasher>);

#[derive(Default)]
pub struct Expect {
    /// Bytes this response must carry; `None` for exports, whose size is known only at the end.
    pub size: Option<u64>,
    /// The provider's hash and a hasher of its algorithm (fed from byte `start`).
    pub hash: Option<Check>,
    /// Where this response starts in the file.
    pub start: u64,
    /// The hasher's state is recorded in `marks` at each multiple of this many bytes of the
    /// file (0: never).
    pub mark_every: u64,
    pub marks: HashMarks,
}

impl Expect {
    /// What a response to `req` must match, its states recorded as `req` asks (hand
    /// [`Expect::marks`] to the [`extconn_core::ports::Download`]).
    pub fn for_request(req: &DownloadRequest, size: Option<u64>, hash: Option<Check>) -> Self {
        let marks = if hash.is_some() { HashMarks::verified() } else { HashMarks::default() };
        Self { size, hash, start: req.offset, mark_every: req.mark_every, marks }
    }
}

/// The provider's hash `expected` with a hasher of type `H` for `req`: fresh from byte 0,
/// continued from `req.hash_state` from a non-zero offset; `None` from an offset without a
/// state (only the size can be checked then). A state that does not restore is an integrity
/// failure: the transfer starts over.
pub fn resumed_hash<H: Resumable>(
    req: &DownloadRequest,
    expected: Option<String>,
) -> Result<Option<Check>, ProviderError> {
    let Some(expected) = expected else { return Ok(None) };
    let hasher = match (req.offset, &req.hash_state) {
        (0, _) => H::default(),
        (_, None) => return Ok(None),
        (_, Some(state)) => H::restore(state).ok_or_else(|| {
            ProviderError::Integrity("the saved hash state of the resumed transfer is unreadable".into())
        })?,
    };
    Ok(Some((expected, Box::new(hasher))))
}

impl std::fmt::Debug for Expect {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Expect")
            .field("size", &self.size)
            .field("hash", &self.hash.as_ref().map(|(h, _)| h))
            .finish()
    }
}

struct Verifier {
    inner: BoxStream<'static, Result<Bytes, ProviderError>>,
    hasher: Option<Box<dyn StreamHasher>>,
    start: u64,
    mark_every: u64,
    marks: HashMarks,
    expected_hash: Option<String>,
    expected_size: Option<u64>,
    seen: u64,
}

/// A `reqwest` body, verified (transport failures become `Transient`).
pub fn verified(
    inner: BoxStream<'static, reqwest::Result<Bytes>>,
    expect: Expect,
) -> BoxStream<'static, Result<Bytes, ProviderError>> {
    let size = expect.size;
    verified_stream(read_ahead(inner.map(|r| r.map_err(transport_error)).boxed(), size), expect)
}

/// `body` read ahead by a task of its own ([`ReadAhead`]) when it is at least
/// [`READ_AHEAD_FROM`] bytes long; as it is otherwise (a small or unsized body).
pub fn read_ahead(
    body: BoxStream<'static, Result<Bytes, ProviderError>>,
    size: Option<u64>,
) -> BoxStream<'static, Result<Bytes, ProviderError>> {
    match size {
        Some(size) if size >= READ_AHEAD_FROM => ReadAhead::start(body),
        _ => body,
    }
}

/// Bodies at least this large are read ahead of the hash.
pub const READ_AHEAD_FROM: u64 = 4 * 1024 * 1024;
/// Chunks a large body's reader keeps ready (a chunk is what one socket read returned, at
/// most hyper's read buffer: about 400 KiB).
pub const READ_AHEAD: usize = 4;

/// A large body read by a task of its own into a queue of [`READ_AHEAD`] chunks. hyper reads
/// the socket only when its single-chunk slot is empty, so read straight by the hasher the
/// socket waits while a chunk is hashed and the hash waits while the next is read: on this
/// path the hash is the limit, and with the read ahead of it it never waits for the network
/// while bytes are there to read. Dropped, the stream stops its reader, which drops the
/// response (the connection closes).
struct ReadAhead {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, ProviderError>>,
    reader: tokio::task::JoinHandle<()>,
}

impl ReadAhead {
    fn start(
        mut inner: BoxStream<'static, Result<Bytes, ProviderError>>,
    ) -> BoxStream<'static, Result<Bytes, ProviderError>> {
        let (tx, rx) = tokio::sync::mpsc::channel(READ_AHEAD);
        let reader = tokio::spawn(
            async move {
                while let Some(chunk) = inner.next().await {
                    let failed = chunk.is_err();
                    if tx.send(chunk).await.is_err() || failed {
                        break;
                    }
                }
            }
            .in_current_span(),
        );
        ReadAhead { rx, reader }.boxed()
    }
}

impl futures::Stream for ReadAhead {
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

pub fn verified_stream(
    inner: BoxStream<'static, Result<Bytes, ProviderError>>,
    expect: Expect,
) -> BoxStream<'static, Result<Bytes, ProviderError>> {
    let (expected_hash, hasher) = match expect.hash {
        Some((h, hasher)) => (Some(h), Some(hasher)),
        None => (None, None),
    };
    let state = Verifier {
        inner,
        hasher,
        start: expect.start,
        mark_every: expect.mark_every,
        marks: expect.marks,
        expected_hash,
        expected_size: expect.size,
        seen: 0,
    };
    futures::stream::unfold(Some(state), |state| async move {
        let mut st = state?;
        loop {
            match st.inner.next().await {
                Some(Ok(chunk)) if chunk.is_empty() => continue,
                Some(Ok(chunk)) => {
                    if let Some(h) = st.hasher.as_mut() {
                        for (piece, mark) in midstate::pieces(st.start + st.seen, st.mark_every, &chunk) {
                            h.update(piece);
                            if let Some(at) = mark {
                                st.marks.record(at, h.save());
                            }
                        }
                    }
                    st.seen += chunk.len() as u64;
                    if let Some(size) = st.expected_size
                        && st.seen > size
                    {
                        let err =
                            ProviderError::Integrity(format!("body longer than the announced {size} bytes"));
                        return Some((Err(err), None));
                    }
                    return Some((Ok(chunk), Some(st)));
                }
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    if let Some(size) = st.expected_size
                        && st.seen != size
                    {
                        let err =
                            ProviderError::Integrity(format!("short body: {} of {size} bytes", st.seen));
                        return Some((Err(err), None));
                    }
                    let (Some(hasher), Some(expected)) = (st.hasher.take(), st.expected_hash.take()) else {
                        return None;
                    };
                    let name = hasher.name();
                    let hash = hasher.finish();
                    if expected.eq_ignore_ascii_case(&hash) {
                        return None;
                    }
                    let err = ProviderError::Integrity(format!(
                        "{name} mismatch: served {expected}, computed {hash}"
                    ));
                    return Some((Err(err), None));
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::DropboxContentHasher;
    use futures::stream;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn dbx(size: u64, hash: Option<&str>) -> Expect {
        Expect {
            size: Some(size),
            hash: hash
                .map(|h| (h.to_owned(), Box::new(DropboxContentHasher::new()) as Box<dyn StreamHasher>)),
            ..Expect::default()
        }
    }

    fn chunks(parts: &[&'static [u8]]) -> BoxStream<'static, Result<Bytes, ProviderError>> {
        stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>()).boxed()
    }

    async fn collect(
        s: BoxStream<'static, Result<Bytes, ProviderError>>,
    ) -> Vec<Result<Bytes, ProviderError>> {
        s.collect().await
    }

    const HELLO_HASH: &str = "bc62d4b80d9e36da29c16c5d4d9f11731f36052c72401a76c23c0fb5a9b74423";

    #[tokio::test]
    async fn good_body_ends_cleanly() {
        let out =
            collect(verified_stream(chunks(&[b"hello", b"", b" world"]), dbx(11, Some(HELLO_HASH)))).await;
        let bytes: Vec<u8> =
            out.iter().flat_map(|r| r.as_ref().map(|b| b.to_vec()).unwrap_or_default()).collect();
        assert!(out.iter().all(Result::is_ok), "{out:?}");
        assert_eq!(bytes, b"hello world");
        // Uppercase hex from a server is the same hash.
        let out =
            collect(verified_stream(chunks(&[b"hello world"]), dbx(11, Some(&HELLO_HASH.to_uppercase()))))
                .await;
        assert!(out.iter().all(Result::is_ok));
    }

    #[tokio::test]
    async fn short_body_ends_with_integrity_error() {
        let out = collect(verified_stream(chunks(&[b"hello"]), dbx(11, Some(HELLO_HASH)))).await;
        assert!(
            matches!(out.last(), Some(Err(ProviderError::Integrity(m))) if m.contains("short")),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn long_body_ends_with_integrity_error() {
        let out = collect(verified_stream(chunks(&[b"hello world", b"!"]), dbx(11, None))).await;
        assert!(matches!(out.last(), Some(Err(ProviderError::Integrity(_)))), "{out:?}");
        assert_eq!(out.len(), 2);
    }

    #[tokio::test]
    async fn same_length_corruption_ends_with_integrity_error() {
        let out = collect(verified_stream(chunks(&[b"hellO world"]), dbx(11, Some(HELLO_HASH)))).await;
        assert!(
            matches!(out.last(), Some(Err(ProviderError::Integrity(m))) if m.contains("content_hash")),
            "{out:?}"
        );
    }

    #[tokio::test]
    async fn transport_failure_is_final_and_transient() {
        let inner = stream::iter(vec![
            Ok(Bytes::from_static(b"hello")),
            Err(ProviderError::Transient("connection reset".into())),
            Ok(Bytes::from_static(b" world")),
        ])
        .boxed();
        let out = collect(verified_stream(inner, dbx(11, Some(HELLO_HASH)))).await;
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(matches!(out[1], Err(ProviderError::Transient(_))));
    }

    #[tokio::test]
    async fn missing_hash_checks_size_only() {
        let out = collect(verified_stream(chunks(&[b"abc"]), dbx(3, None))).await;
        assert!(out.iter().all(Result::is_ok));
        let out = collect(verified_stream(chunks(&[b"ab"]), dbx(3, None))).await;
        assert!(matches!(out.last(), Some(Err(ProviderError::Integrity(_)))));
    }

    #[tokio::test]
    async fn unknown_size_is_not_checked_but_the_hash_is() {
        let none = Expect::default();
        let out = collect(verified_stream(chunks(&[b"any", b"thing"]), none)).await;
        assert!(out.iter().all(Result::is_ok));
        let wrong = Expect {
            size: None,
            hash: Some((
                HELLO_HASH.to_owned(),
                Box::new(DropboxContentHasher::new()) as Box<dyn StreamHasher>,
            )),
            ..Expect::default()
        };
        let out = collect(verified_stream(chunks(&[b"hello"]), wrong)).await;
        assert!(matches!(out.last(), Some(Err(ProviderError::Integrity(_)))), "{out:?}");
    }

    fn owned(data: &[u8], chunk: usize) -> BoxStream<'static, Result<Bytes, ProviderError>> {
        let parts: Vec<_> = data.chunks(chunk).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        stream::iter(parts).boxed()
    }

    /// A download cut where a mark was recorded, then continued from that mark's state (as the
    /// engine does across invocations), checks the whole file against the provider's hash: the
    /// same bytes pass, a remainder that changed fails.
    async fn resumed_check<H: Resumable>() {
        const MIB: usize = 1024 * 1024;
        let data: Vec<u8> = (0..10 * MIB + 12_345).map(|i| (i.wrapping_mul(131) ^ (i >> 9)) as u8).collect();
        let mut whole = H::default();
        whole.update(&data);
        let expected = Box::new(whole).finish();
        let (every, cut) = (3 * MIB as u64, 6 * MIB);

        let first = DownloadRequest {
            mark_every: every,
            ..DownloadRequest::whole(&extconn_core::ports::RemoteItem {
                id: "f".into(),
                drive_id: None,
                parent_ids: Vec::new(),
                name: "f.bin".into(),
                path: None,
                path_lower: None,
                kind: extconn_core::ItemKind::File,
                mime_type: None,
                revision: None,
                content_hash: None,
                size: Some(data.len() as u64),
                modified_at: None,
            })
        };
        let hash = resumed_hash::<H>(&first, Some(expected.clone())).expect("hasher");
        let expect = Expect::for_request(&first, Some(data.len() as u64), hash);
        let marks = expect.marks.clone();
        let mut s = verified_stream(owned(&data, 1_000_003), expect);
        let mut read = 0;
        while read < cut + 1_000_003 {
            read += s.next().await.expect("a chunk").expect("bytes").len();
        }
        drop(s);
        let state = marks.at(cut as u64).expect("a state recorded at the cut");

        for (rest, ok) in [(data[cut..].to_vec(), true), ([&data[cut..data.len() - 1], b"!"].concat(), false)]
        {
            let req =
                DownloadRequest { offset: cut as u64, hash_state: Some(state.clone()), ..first.clone() };
            let hash = resumed_hash::<H>(&req, Some(expected.clone())).expect("restored");
            assert!(hash.is_some(), "a resumed download is hash-checked");
            let out = collect(verified_stream(
                owned(&rest, 777_777),
                Expect::for_request(&req, Some(rest.len() as u64), hash),
            ))
            .await;
            assert_eq!(out.iter().all(Result::is_ok), ok, "{}", std::any::type_name::<H>());
        }
        let bad = DownloadRequest { offset: cut as u64, hash_state: Some(b"junk".to_vec()), ..first.clone() };
        assert!(matches!(resumed_hash::<H>(&bad, Some(expected.clone())), Err(ProviderError::Integrity(_))));
        let blind = DownloadRequest { offset: cut as u64, ..first };
        assert!(resumed_hash::<H>(&blind, Some(expected)).expect("no state").is_none(), "size only");
    }

    #[tokio::test]
    async fn a_resumed_download_checks_the_whole_files_hash() {
        resumed_check::<DropboxContentHasher>().await;
        resumed_check::<crate::hash::QuickXorHasher>().await;
        resumed_check::<crate::hash::Md5Hasher>().await;
        resumed_check::<crate::hash::Sha256Hasher>().await;
    }

    /// A stream of `n` chunks of `size` bytes counting the chunks taken from it, and noting when
    /// it is dropped; after its chunks it stays pending (a stalled server), never ending.
    fn counted(
        n: usize,
        size: usize,
    ) -> (BoxStream<'static, reqwest::Result<Bytes>>, Arc<AtomicUsize>, Arc<()>) {
        let taken = Arc::new(AtomicUsize::new(0));
        let alive = Arc::new(());
        let (t, a) = (taken.clone(), alive.clone());
        let body = stream::iter(0..n)
            .map(move |i| {
                let _held = &a;
                t.fetch_add(1, Ordering::SeqCst);
                Ok(Bytes::from(vec![(i % 251) as u8; size]))
            })
            .chain(stream::pending())
            .boxed();
        (body, taken, alive)
    }

    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    /// Waits (at most 10 s, however loaded the machine) until `done`.
    async fn until(done: impl Fn() -> bool) {
        let give_up = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !done() && std::time::Instant::now() < give_up {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }

    /// A large body is read ahead of its consumer by a bounded number of chunks, passes whole
    /// and in order, and its reader stops (dropping the body) when the download is dropped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_body_is_read_ahead_by_a_few_chunks_and_dropped_with_the_download() {
        const CHUNK: usize = 256 * 1024;
        let n = 40;
        let size = (n * CHUNK) as u64;
        let (body, taken, alive) = counted(n, CHUNK);
        let mut s = verified(body, Expect { size: Some(size), ..Expect::default() });
        until(|| taken.load(Ordering::SeqCst) >= READ_AHEAD).await;
        settle().await;
        let ahead = taken.load(Ordering::SeqCst);
        // The queue's chunks, one in the reader's hand, one in the consumer's poll at most.
        assert!(
            (READ_AHEAD..=READ_AHEAD + 2).contains(&ahead),
            "{ahead} chunks read before any was asked for"
        );
        let mut got = Vec::new();
        for _ in 0..10 {
            let c = s.next().await.expect("a chunk").expect("bytes");
            got.push(c[0]);
        }
        assert_eq!(got, (0..10).map(|i| (i % 251) as u8).collect::<Vec<_>>(), "in order");
        settle().await;
        assert!(taken.load(Ordering::SeqCst) <= 10 + READ_AHEAD + 2);
        assert!(Arc::strong_count(&alive) > 1, "the body is still being read");
        drop(s);
        until(|| Arc::strong_count(&alive) == 1).await;
        assert_eq!(Arc::strong_count(&alive), 1, "a dropped download drops its body");

        // Under the threshold, no reader: nothing is taken before it is asked for.
        let (body, taken, _) = counted(2, 1024);
        let mut s = verified(body, Expect { size: Some(2048), ..Expect::default() });
        settle().await;
        assert_eq!(taken.load(Ordering::SeqCst), 0);
        assert!(s.next().await.expect("a chunk").is_ok());
    }

    /// What the reader reads ahead is still verified: a large body whose bytes differ from the
    /// provider's hash ends in an integrity error, as a small one does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_body_read_ahead_is_still_verified() {
        const MIB: usize = 1024 * 1024;
        let data: Vec<u8> = (0..5 * MIB + 17).map(|i| (i.wrapping_mul(31) ^ (i >> 11)) as u8).collect();
        let mut h = DropboxContentHasher::new();
        h.update(&data);
        let hash = Box::new(h).finish();
        let body = |d: Vec<u8>| -> BoxStream<'static, reqwest::Result<Bytes>> {
            let parts: Vec<_> = d.chunks(300_007).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
            stream::iter(parts).boxed()
        };
        let expect = |hash: &str| dbx(data.len() as u64, Some(hash));
        let out: Vec<_> = verified(body(data.clone()), expect(&hash)).collect().await;
        assert!(out.iter().all(Result::is_ok), "the same bytes pass");
        assert_eq!(out.iter().map(|c| c.as_ref().map_or(0, Bytes::len)).sum::<usize>(), data.len());
        let mut changed = data.clone();
        changed[4 * MIB + 3] ^= 1;
        let out: Vec<_> = verified(body(changed), expect(&hash)).collect().await;
        assert!(matches!(out.last(), Some(Err(ProviderError::Integrity(_)))), "{:?}", out.last());
    }
}
