//! Fault injection, call counters and the call log, for any emulated provider.
//!
//! A provider declares its endpoints as a small `Copy` enum `E` and wraps every route
//! handler in [`Faults::guarded`]. `inject(endpoint, fault, times)` queues `times`
//! copies of a fault; each call of the endpoint pops one (FIFO), so `[RateLimit,
//! ServerError(503)]` queued one after the other make the next two calls fail in that
//! order and the third succeed. A popped fault is consumed whatever the request was.
//!
//! Fault semantics (any endpoint unless said otherwise); the bodies of the faults that
//! replace an answer are worded by the provider ([`FaultReplies`]):
//! - `RateLimit { retry_after_secs }`: 429 with `Retry-After` (and whatever the
//!   provider adds to its body); the request is not processed;
//! - `ServerError(code)`: that status with the provider's error body; not processed;
//! - `InvalidGrant`: the token endpoint's `invalid_grant` error (meant for it);
//! - `ExpiredToken`: the provider's "access token expired" 401 (whatever was sent);
//! - `Latency(d)`: waits `d` (real time, not the configured time source), then normal;
//! - body faults, applied to a **successful** (2xx) response only — an error response
//!   consumes the fault unchanged. Meant for downloads, but they work on JSON too:
//!   - `Truncate { after_bytes }`: `Content-Length` of the full body, but the body
//!     stream errors after `after_bytes` bytes so the server aborts the connection
//!     (the client sees an incomplete-body error); use `after_bytes` < body size;
//!   - `CorruptSameLength`: full length, the byte at `len / 2` flipped (`^ 0xFF`);
//!   - `ShortChunked`: no `Content-Length`, chunked encoding, the body ends cleanly after
//!     `len / 2` bytes;
//!   - `Throttle { bytes_per_sec }`: the whole body, paced to that rate (real time).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::Future;
use std::hash::Hash;
use std::io;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;

use crate::TimeSource;

/// A fault to inject; see the module docs for the exact behaviour of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After` header (Dropbox also repeats it in `error.retry_after`).
    RateLimit {
        /// Seconds announced.
        retry_after_secs: u64,
    },
    /// That HTTP status (normally 5xx) with the provider's error body.
    ServerError(u16),
    /// Full `Content-Length`, connection cut after `after_bytes` body bytes.
    Truncate {
        /// Bytes sent before the cut.
        after_bytes: u64,
    },
    /// Full length, one byte flipped mid-body.
    CorruptSameLength,
    /// No `Content-Length`; chunked body ending cleanly after about half the bytes.
    ShortChunked,
    /// 400 `invalid_grant` (token endpoint).
    InvalidGrant,
    /// 401 "access token expired", in the provider's words.
    ExpiredToken,
    /// Delay, then the normal response.
    Latency(Duration),
    /// The whole body, no faster than this many bytes a second.
    Throttle {
        /// The pace.
        bytes_per_sec: u64,
    },
}

/// One served call, in arrival order. `E` is the provider's endpoint enum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord<E> {
    /// Which endpoint.
    pub endpoint: E,
    /// When it arrived, per the sandbox's time source.
    pub at: SystemTime,
    /// Final HTTP status.
    pub status: u16,
}

/// How a provider answers the faults that replace a response.
pub(crate) trait FaultReplies: Send + Sync {
    /// 429 with `Retry-After: retry_after_secs`.
    fn rate_limited(&self, retry_after_secs: u64) -> Response;
    /// That status with the provider's body for an injected server error.
    fn server_error(&self, status: u16) -> Response;
    /// The token endpoint's `invalid_grant`.
    fn invalid_grant(&self) -> Response;
    /// The 401 a call with an expired access token gets.
    fn expired_token(&self) -> Response;
}

/// Queued faults, counters and the call log of one emulated provider.
struct FaultBook<E> {
    queues: HashMap<E, VecDeque<Fault>>,
    counts: HashMap<E, u64>,
    log: Vec<CallRecord<E>>,
}

/// The fault book of one provider, its clock and its fault wording.
pub(crate) struct Faults<E> {
    clock: TimeSource,
    replies: Box<dyn FaultReplies>,
    book: Mutex<FaultBook<E>>,
}

impl<E> fmt::Debug for Faults<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faults").finish_non_exhaustive()
    }
}

impl<E: Copy + Eq + Hash + fmt::Debug> Faults<E> {
    pub(crate) fn new(clock: TimeSource, replies: impl FaultReplies + 'static) -> Self {
        Faults {
            clock,
            replies: Box::new(replies),
            book: Mutex::new(FaultBook { queues: HashMap::new(), counts: HashMap::new(), log: Vec::new() }),
        }
    }

    fn book(&self) -> MutexGuard<'_, FaultBook<E>> {
        self.book.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The next `times` calls of `ep` get `fault` (FIFO after faults already queued).
    pub(crate) fn inject(&self, ep: E, fault: Fault, times: u32) {
        let mut book = self.book();
        let q = book.queues.entry(ep).or_default();
        q.extend(std::iter::repeat_n(fault, times as usize));
    }

    /// Calls of `ep` since start or the last reset.
    pub(crate) fn calls(&self, ep: E) -> u64 {
        self.book().counts.get(&ep).copied().unwrap_or(0)
    }

    /// Drops every queued fault.
    pub(crate) fn clear(&self) {
        self.book().queues.clear();
    }

    /// Zeroes the counters and clears the call log.
    pub(crate) fn reset_counters(&self) {
        let mut book = self.book();
        book.counts.clear();
        book.log.clear();
    }

    /// Every call since start or the last reset, in arrival order.
    pub(crate) fn call_log(&self) -> Vec<CallRecord<E>> {
        self.book().log.clone()
    }

    /// Runs a route handler under the fault book: counts the call, applies a queued
    /// fault, and logs the final status.
    pub(crate) async fn guarded(&self, ep: E, handler: impl Future<Output = Response>) -> Response {
        let at = (self.clock)();
        let fault = {
            let mut book = self.book();
            *book.counts.entry(ep).or_default() += 1;
            book.queues.get_mut(&ep).and_then(VecDeque::pop_front)
        };
        if let Some(f) = &fault {
            tracing::debug!(endpoint = ?ep, fault = ?f, "sandbox: injecting fault");
        }
        let resp = match fault {
            None => handler.await,
            Some(Fault::Latency(d)) => {
                tokio::time::sleep(d).await;
                handler.await
            }
            Some(Fault::RateLimit { retry_after_secs }) => self.replies.rate_limited(retry_after_secs),
            Some(Fault::ServerError(code)) => self.replies.server_error(code),
            Some(Fault::InvalidGrant) => self.replies.invalid_grant(),
            Some(Fault::ExpiredToken) => self.replies.expired_token(),
            Some(body_fault) => apply_body_fault(handler.await, &body_fault),
        };
        self.book().log.push(CallRecord { endpoint: ep, at, status: resp.status().as_u16() });
        resp
    }
}

fn apply_body_fault(resp: Response, fault: &Fault) -> Response {
    if !resp.status().is_success() {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(total) = declared.or(body.size_hint().exact()) else {
        return Response::from_parts(parts, body);
    };
    let stream = body.into_data_stream();
    let body = match *fault {
        Fault::Truncate { after_bytes } => {
            parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
            Body::from_stream(truncate_after(stream, after_bytes))
        }
        Fault::CorruptSameLength => {
            parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(total));
            Body::from_stream(flip_byte_at(stream, total / 2))
        }
        Fault::ShortChunked => {
            parts.headers.remove(header::CONTENT_LENGTH);
            Body::from_stream(end_after(stream, total / 2))
        }
        Fault::Throttle { bytes_per_sec } => Body::from_stream(paced(stream, bytes_per_sec.max(1))),
        _ => Body::from_stream(stream),
    };
    Response::from_parts(parts, body)
}

type DataStream = axum::body::BodyDataStream;

/// Passes `limit` bytes, then (after a short pause so the server flushes them) fails.
fn truncate_after(
    inner: DataStream,
    limit: u64,
) -> impl futures::Stream<Item = Result<Bytes, io::Error>> + Send {
    futures::stream::unfold((inner, 0u64, false), move |(mut inner, sent, done)| async move {
        if done {
            return None;
        }
        if sent >= limit {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let err = io::Error::new(io::ErrorKind::ConnectionAborted, "sandbox fault: truncated body");
            return Some((Err(err), (inner, sent, true)));
        }
        match inner.next().await {
            None => None,
            Some(Err(e)) => Some((Err(io::Error::other(e)), (inner, sent, true))),
            Some(Ok(chunk)) => {
                let room = limit - sent;
                if chunk.len() as u64 <= room {
                    let n = chunk.len() as u64;
                    Some((Ok(chunk), (inner, sent + n, false)))
                } else {
                    // room < chunk.len() <= usize::MAX
                    Some((Ok(chunk.slice(..room as usize)), (inner, limit, false)))
                }
            }
        }
    })
}

/// Flips the byte at absolute body offset `at`.
fn flip_byte_at(inner: DataStream, at: u64) -> impl futures::Stream<Item = Result<Bytes, io::Error>> + Send {
    inner.scan(0u64, move |pos, item| {
        let out = item.map_err(io::Error::other).map(|chunk| {
            let start = *pos;
            *pos += chunk.len() as u64;
            if at >= start && at < *pos {
                let mut v = chunk.to_vec();
                // at - start < chunk.len()
                let i = (at - start) as usize;
                v[i] ^= 0xFF;
                Bytes::from(v)
            } else {
                chunk
            }
        });
        futures::future::ready(Some(out))
    })
}

/// Passes every chunk, each once the bytes before it would have taken their time at `rate`.
fn paced(inner: DataStream, rate: u64) -> impl futures::Stream<Item = Result<Bytes, io::Error>> + Send {
    let start = tokio::time::Instant::now();
    futures::stream::unfold((inner, 0u64), move |(mut inner, sent)| async move {
        let item = inner.next().await?.map_err(io::Error::other);
        let sent = sent + item.as_ref().map_or(0, |c| c.len() as u64);
        tokio::time::sleep_until(start + Duration::from_secs_f64(sent as f64 / rate as f64)).await;
        Some((item, (inner, sent)))
    })
}

/// Ends the body cleanly after `limit` bytes.
fn end_after(inner: DataStream, limit: u64) -> impl futures::Stream<Item = Result<Bytes, io::Error>> + Send {
    inner.map(|r| r.map_err(io::Error::other)).scan(0u64, move |sent, item| {
        let out = match item {
            Err(e) => Some(Err(e)),
            Ok(_) if *sent >= limit => None,
            Ok(chunk) => {
                let room = limit - *sent;
                let chunk = if chunk.len() as u64 > room { chunk.slice(..room as usize) } else { chunk };
                *sent += chunk.len() as u64;
                Some(Ok(chunk))
            }
        };
        futures::future::ready(out)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::StatusCode;

    use super::*;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    enum Ep {
        A,
        B,
    }

    struct Plain;

    fn status(code: u16, body: &'static str) -> Response {
        let mut r = Response::new(Body::from(body));
        *r.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        r
    }

    impl FaultReplies for Plain {
        fn rate_limited(&self, retry_after_secs: u64) -> Response {
            let mut r = status(429, "slow down");
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            r
        }
        fn server_error(&self, code: u16) -> Response {
            status(code, "boom")
        }
        fn invalid_grant(&self) -> Response {
            status(400, "invalid_grant")
        }
        fn expired_token(&self) -> Response {
            status(401, "expired")
        }
    }

    fn faults() -> Faults<Ep> {
        Faults::new(Arc::new(|| SystemTime::UNIX_EPOCH), Plain)
    }

    async fn call(f: &Faults<Ep>, ep: Ep) -> (u16, Vec<u8>) {
        let resp = f.guarded(ep, async { status(200, "0123456789") }).await;
        let code = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.map(|b| b.to_vec());
        (code, body.unwrap_or_else(|_| b"<cut>".to_vec()))
    }

    #[tokio::test]
    async fn faults_pop_in_order_per_endpoint_and_calls_are_counted() {
        let f = faults();
        f.inject(Ep::A, Fault::ServerError(503), 2);
        f.inject(Ep::A, Fault::RateLimit { retry_after_secs: 3 }, 1);
        f.inject(Ep::B, Fault::ExpiredToken, 1);
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(call(&f, Ep::A).await.0);
        }
        assert_eq!(seen, [503, 503, 429, 200]);
        assert_eq!(call(&f, Ep::B).await.0, 401);
        assert_eq!(call(&f, Ep::B).await.0, 200);
        assert_eq!((f.calls(Ep::A), f.calls(Ep::B)), (4, 2));
        let log: Vec<(Ep, u16)> = f.call_log().iter().map(|c| (c.endpoint, c.status)).collect();
        assert_eq!(log, [(Ep::A, 503), (Ep::A, 503), (Ep::A, 429), (Ep::A, 200), (Ep::B, 401), (Ep::B, 200)]);
        f.reset_counters();
        assert_eq!((f.calls(Ep::A), f.call_log().len()), (0, 0));
    }

    /// A throttled body arrives whole (its pace is the bench's to measure, not a test's).
    #[tokio::test]
    async fn a_throttled_body_is_the_whole_body() {
        let f = faults();
        f.inject(Ep::A, Fault::Throttle { bytes_per_sec: 1000 }, 1);
        assert_eq!(call(&f, Ep::A).await, (200, b"0123456789".to_vec()));
    }

    #[tokio::test]
    async fn body_faults_change_only_successful_answers_and_clear_drops_the_queue() {
        let f = faults();
        f.inject(Ep::A, Fault::CorruptSameLength, 1);
        let (code, body) = call(&f, Ep::A).await;
        assert_eq!(code, 200);
        assert_eq!(body.len(), 10);
        assert_eq!(body[5], b'5' ^ 0xFF);
        f.inject(Ep::A, Fault::ShortChunked, 1);
        assert_eq!(call(&f, Ep::A).await.1, b"01234");
        f.inject(Ep::A, Fault::InvalidGrant, 5);
        assert_eq!(call(&f, Ep::A).await.0, 400);
        f.clear();
        assert_eq!(call(&f, Ep::A).await, (200, b"0123456789".to_vec()));
    }
}
