//! Fault injection, call counters and the call log.
//!
//! `inject(endpoint, fault, times)` queues `times` copies of a fault; each call of the
//! endpoint pops one (FIFO), so `[RateLimit, ServerError(503)]` queued one after the
//! other make the next two calls fail in that order and the third succeed. A popped
//! fault is consumed whatever the request was.
//!
//! Fault semantics (any endpoint unless said otherwise):
//! - `RateLimit { retry_after_secs }`: 429, `Retry-After` header + JSON body with
//!   `error.retry_after`; the request is not processed;
//! - `ServerError(code)`: that status with a plain-text body; not processed;
//! - `InvalidGrant`: 400 `{"error":"invalid_grant",..}` (meant for the token endpoint);
//! - `ExpiredToken`: 401 `expired_access_token` (whatever token was sent);
//! - `Latency(d)`: waits `d` (real time, not the configured time source), then normal;
//! - body faults, applied to a **successful** (2xx) response only — an error response
//!   consumes the fault unchanged. Meant for downloads, but they work on JSON too:
//!   - `Truncate { after_bytes }`: `Content-Length` of the full body, but the body
//!     stream errors after `after_bytes` bytes so the server aborts the connection
//!     (the client sees an incomplete-body error); use `after_bytes` < body size;
//!   - `CorruptSameLength`: full length, the byte at `len / 2` flipped (`^ 0xFF`);
//!   - `ShortChunked`: no `Content-Length`, chunked encoding, the body ends cleanly after
//!     `len / 2` bytes.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::io;
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::body::HttpBody as _;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use super::DropboxState;
use super::wire;

/// An emulated endpoint (for fault injection and counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Endpoint {
    /// `GET /oauth2/authorize` and the consent form's decision POST.
    Authorize,
    /// `POST /oauth2/token`.
    Token,
    /// `POST /2/auth/token/revoke`.
    Revoke,
    /// `POST /2/users/get_current_account`.
    GetCurrentAccount,
    /// `POST /2/files/list_folder`.
    ListFolder,
    /// `POST /2/files/list_folder/continue`.
    ListFolderContinue,
    /// `POST /2/files/list_folder/get_latest_cursor`.
    GetLatestCursor,
    /// `POST /2/files/get_metadata`.
    GetMetadata,
    /// `POST /2/files/download` (content host).
    Download,
    /// `POST /2/files/list_folder/longpoll` (notify host).
    Longpoll,
}

/// A fault to inject; see the module docs for the exact behaviour of each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// 429 with `Retry-After` header and `error.retry_after` body.
    RateLimit {
        /// Seconds announced in both places.
        retry_after_secs: u64,
    },
    /// That HTTP status (normally 5xx) with a plain-text body.
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
    /// 401 `expired_access_token`.
    ExpiredToken,
    /// Delay, then the normal response.
    Latency(Duration),
}

/// One served call, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// Which endpoint.
    pub endpoint: Endpoint,
    /// When it arrived, per the sandbox's time source.
    pub at: SystemTime,
    /// Final HTTP status.
    pub status: u16,
}

/// Queued faults, counters and the call log of one emulated provider.
#[derive(Debug, Default)]
pub(crate) struct FaultBook {
    queues: HashMap<Endpoint, VecDeque<Fault>>,
    counts: HashMap<Endpoint, u64>,
    log: Vec<CallRecord>,
}

impl FaultBook {
    pub(crate) fn inject(&mut self, ep: Endpoint, fault: Fault, times: u32) {
        let q = self.queues.entry(ep).or_default();
        q.extend(std::iter::repeat_n(fault, times as usize));
    }

    /// Counts a call and pops its fault, if any.
    fn begin(&mut self, ep: Endpoint) -> Option<Fault> {
        *self.counts.entry(ep).or_default() += 1;
        self.queues.get_mut(&ep).and_then(VecDeque::pop_front)
    }

    pub(crate) fn calls(&self, ep: Endpoint) -> u64 {
        self.counts.get(&ep).copied().unwrap_or(0)
    }

    pub(crate) fn clear_faults(&mut self) {
        self.queues.clear();
    }

    pub(crate) fn reset_counters(&mut self) {
        self.counts.clear();
        self.log.clear();
    }

    pub(crate) fn call_log(&self) -> Vec<CallRecord> {
        self.log.clone()
    }
}

/// Runs a handler future under the fault book: counts the call, applies a queued
/// fault, and logs the final status.
pub(crate) async fn guarded(
    st: &DropboxState,
    ep: Endpoint,
    handler: impl Future<Output = Response>,
) -> Response {
    let at = st.now();
    let fault = st.faults().begin(ep);
    if let Some(f) = &fault {
        tracing::debug!(endpoint = ?ep, fault = ?f, "sandbox: injecting fault");
    }
    let resp = match fault {
        None => handler.await,
        Some(Fault::Latency(d)) => {
            tokio::time::sleep(d).await;
            handler.await
        }
        Some(Fault::RateLimit { retry_after_secs }) => wire::rate_limited(retry_after_secs),
        Some(Fault::ServerError(code)) => wire::server_error(code, "injected fault"),
        Some(Fault::InvalidGrant) => {
            wire::oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "injected fault: invalid_grant")
        }
        Some(Fault::ExpiredToken) => wire::auth_error("expired_access_token"),
        Some(body_fault) => apply_body_fault(handler.await, &body_fault),
    };
    st.faults().log.push(CallRecord { endpoint: ep, at, status: resp.status().as_u16() });
    resp
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
