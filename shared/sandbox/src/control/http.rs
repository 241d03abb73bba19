//! Scaffolding of the HTTP control routes: `POST {prefix}/{op}` with a JSON body
//! answers JSON (200) or `{"error": "…"}` (400); `GET` is allowed for the read-only
//! ops a provider lists. A provider supplies only its op table ([`Dispatch`]) and
//! parses bodies with the shared argument shapes here.
//!
//! Shared JSON shapes:
//! - `content`: `{"text": ".."}`, `{"base64": ".."}` or `{"generated": {"size": N,
//!   "seed": S}}`;
//! - `fault`: `{"rate_limit":{"retry_after_secs":N}}`, `{"server_error":503}`,
//!   `{"truncate":{"after_bytes":N}}`, `"corrupt_same_length"`, `"short_chunked"`,
//!   `"invalid_grant"`, `"expired_token"`, `{"latency_ms":N}`;
//! - call log entries: `{"endpoint", "at_unix_ms", "status"}`.
//!
//! The control API is for tools (tests, scripts, curl), never for web pages: a request a
//! browser sends for a page of another origin (its `Origin` or `Sec-Fetch-Site` says so), or
//! one addressed to another host name than 127.0.0.1 / localhost (DNS rebinding), is refused
//! with 403 before any op runs ([`only_tools`]).

use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::content::Content;
use crate::faults::{CallRecord, Fault};

/// A provider's op table: `(handle, op, body) → answer or error message`. Runs on a
/// blocking thread (ops may hash large generated content).
pub(crate) type Dispatch<C> = fn(&C, &str, &[u8]) -> Result<Value, String>;

#[derive(Clone)]
struct Mounted<C> {
    ctl: C,
    dispatch: Dispatch<C>,
    read_only: &'static [&'static str],
}

/// Routes `{prefix}/{op}` to `dispatch`; `GET` only for the ops in `read_only`.
pub(crate) fn router<C: Clone + Send + Sync + 'static>(
    prefix: &str,
    ctl: C,
    read_only: &'static [&'static str],
    dispatch: Dispatch<C>,
) -> Router {
    Router::new()
        .route(&format!("{prefix}/{{op}}"), post(run_post::<C>).get(run_get::<C>))
        .route_layer(axum::middleware::from_fn(only_tools))
        .with_state(Mounted { ctl, dispatch, read_only })
}

/// Refuses what a web page could send: see the module doc.
async fn only_tools(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let h = req.headers();
    let get = |name: &str| h.get(name).and_then(|v| v.to_str().ok());
    let host = get("host").unwrap_or("");
    let name =
        host.rsplit_once(':').map_or(host, |(n, port)| if port.parse::<u16>().is_ok() { n } else { host });
    let loopback = ["127.0.0.1", "localhost", "[::1]"].iter().any(|n| name.eq_ignore_ascii_case(n));
    // Same-origin: the Origin's authority is the Host the request was sent to.
    let same_origin =
        |origin: &str| origin.split_once("://").is_some_and(|(_, a)| a.eq_ignore_ascii_case(host));
    let from_page = get("origin").is_some_and(|o| !same_origin(o))
        || get("sec-fetch-site").is_some_and(|s| s != "same-origin" && s != "none");
    if !loopback || from_page {
        let msg =
            "the control API takes requests from tools on this machine, not from web pages of other origins";
        return (StatusCode::FORBIDDEN, axum::Json(json!({ "error": msg }))).into_response();
    }
    next.run(req).await
}

async fn run_post<C: Clone + Send + Sync + 'static>(
    State(m): State<Mounted<C>>,
    Path(op): Path<String>,
    body: Bytes,
) -> Response {
    run(m, op, body).await
}

async fn run_get<C: Clone + Send + Sync + 'static>(
    State(m): State<Mounted<C>>,
    Path(op): Path<String>,
) -> Response {
    if !m.read_only.contains(&op.as_str()) {
        let msg = format!("control operation {op:?} changes state: use POST");
        return (StatusCode::METHOD_NOT_ALLOWED, axum::Json(json!({ "error": msg }))).into_response();
    }
    run(m, op, Bytes::new()).await
}

async fn run<C: Clone + Send + Sync + 'static>(m: Mounted<C>, op: String, body: Bytes) -> Response {
    let result = tokio::task::spawn_blocking(move || (m.dispatch)(&m.ctl, &op, &body)).await;
    match result {
        Ok(Ok(v)) => (StatusCode::OK, axum::Json(v)).into_response(),
        Ok(Err(msg)) => (StatusCode::BAD_REQUEST, axum::Json(json!({ "error": msg }))).into_response(),
        Err(e) => {
            (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({ "error": e.to_string() }))).into_response()
        }
    }
}

/// Parses an op's JSON body; an empty body reads as `{}`.
pub(crate) fn arg<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let body: &[u8] = if body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { body };
    serde_json::from_slice(body).map_err(|e| format!("bad request body: {e}"))
}

pub(crate) fn to_json<T: Serialize>(v: T) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| e.to_string())
}

/// The JSON form of a [`Content`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ContentSpec {
    Text(String),
    Base64(String),
    Generated { size: u64, seed: u64 },
}

impl ContentSpec {
    pub(crate) fn into_content(self) -> Result<Content, String> {
        Ok(match self {
            ContentSpec::Text(s) => Content::text(&s),
            ContentSpec::Base64(b) => Content::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(b)
                    .map_err(|e| format!("content.base64: {e}"))?,
            ),
            ContentSpec::Generated { size, seed } => Content::Generated { size, seed },
        })
    }
}

/// The JSON form of a [`Fault`].
#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum FaultSpec {
    RateLimit { retry_after_secs: u64 },
    ServerError(u16),
    Truncate { after_bytes: u64 },
    CorruptSameLength,
    ShortChunked,
    InvalidGrant,
    ExpiredToken,
    LatencyMs(u64),
}

impl From<FaultSpec> for Fault {
    fn from(f: FaultSpec) -> Fault {
        match f {
            FaultSpec::RateLimit { retry_after_secs } => Fault::RateLimit { retry_after_secs },
            FaultSpec::ServerError(c) => Fault::ServerError(c),
            FaultSpec::Truncate { after_bytes } => Fault::Truncate { after_bytes },
            FaultSpec::CorruptSameLength => Fault::CorruptSameLength,
            FaultSpec::ShortChunked => Fault::ShortChunked,
            FaultSpec::InvalidGrant => Fault::InvalidGrant,
            FaultSpec::ExpiredToken => Fault::ExpiredToken,
            FaultSpec::LatencyMs(ms) => Fault::Latency(Duration::from_millis(ms)),
        }
    }
}

/// A call log as JSON (`endpoint` serialised by the provider's enum).
pub(crate) fn call_log_json<E: Serialize>(log: Vec<CallRecord<E>>) -> Value {
    Value::Array(
        log.into_iter()
            .map(|r| {
                let ms = r.at.duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
                json!({ "endpoint": r.endpoint, "at_unix_ms": ms, "status": r.status })
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_shapes_parse() {
        let c: ContentSpec = arg(br#"{"generated":{"size":3,"seed":1}}"#).expect("content");
        assert_eq!(c.into_content(), Ok(Content::generated(3, 1)));
        let c: ContentSpec = arg(br#"{"base64":"aGk="}"#).expect("content");
        assert_eq!(c.into_content(), Ok(Content::text("hi")));
        let f: FaultSpec = arg(br#"{"latency_ms":250}"#).expect("fault");
        assert_eq!(Fault::from(f), Fault::Latency(Duration::from_millis(250)));
        let f: FaultSpec = arg(br#""corrupt_same_length""#).expect("fault");
        assert_eq!(Fault::from(f), Fault::CorruptSameLength);
        #[derive(Debug, Deserialize, PartialEq)]
        struct Empty {}
        assert_eq!(arg::<Empty>(b"  "), Ok(Empty {}));
        assert!(arg::<ContentSpec>(b"{\"nope\":1}").is_err());
    }
}
