//! RFC 9457 problem details: every error the API returns, the framework's own included.
//!
//! Each kind has one `type` URI (the catalog is [`ProblemKind::ALL`], documented in
//! `docs/api.md`). Validation errors name fields with JSON Pointers in `invalid_params`.
//! `detail` never carries provider text, serde internals or secrets.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

pub const TYPE_BASE: &str = "https://extconn.dev/problems/";

macro_rules! catalog {
    ($($variant:ident => ($slug:literal, $status:expr, $title:literal)),* $(,)?) => {
        /// The problem catalog.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum ProblemKind { $($variant),* }

        impl ProblemKind {
            pub const ALL: &'static [ProblemKind] = &[$(ProblemKind::$variant),*];
            pub fn slug(self) -> &'static str { match self { $(Self::$variant => $slug),* } }
            pub fn status(self) -> StatusCode { match self { $(Self::$variant => $status),* } }
            pub fn title(self) -> &'static str { match self { $(Self::$variant => $title),* } }
        }
    };
}

catalog! {
    Unauthenticated => ("unauthenticated", StatusCode::UNAUTHORIZED, "Authentication required"),
    Forbidden => ("forbidden", StatusCode::FORBIDDEN, "Client admin permission required"),
    NotFound => ("not-found", StatusCode::NOT_FOUND, "Not found"),
    MethodNotAllowed => ("method-not-allowed", StatusCode::METHOD_NOT_ALLOWED, "Method not allowed"),
    UnsupportedMediaType => ("unsupported-media-type", StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json"),
    PayloadTooLarge => ("payload-too-large", StatusCode::PAYLOAD_TOO_LARGE, "Request body too large"),
    MalformedJson => ("malformed-json", StatusCode::BAD_REQUEST, "Request body is not valid JSON"),
    InvalidRequest => ("invalid-request", StatusCode::BAD_REQUEST, "The request has invalid parameters"),
    InvalidPageToken => ("invalid-page-token", StatusCode::BAD_REQUEST, "Invalid page token"),
    ProviderNotConfigured => ("provider-not-configured", StatusCode::CONFLICT, "This service is not configured"),
    AlreadyConnected => ("already-connected", StatusCode::CONFLICT, "This folder is already connected"),
    AutoSyncOff => ("auto-sync-off", StatusCode::CONFLICT, "Auto sync is off"),
    ReauthRequired => ("reauth-required", StatusCode::CONFLICT, "The account must be reconnected"),
    FolderNotAccessible => ("folder-not-accessible", StatusCode::BAD_REQUEST, "The folder is not accessible with this account"),
    InvalidState => ("oauth/invalid-state", StatusCode::BAD_REQUEST, "Unknown or already used authorization request"),
    StateExpired => ("oauth/state-expired", StatusCode::BAD_REQUEST, "The authorization request expired"),
    ProviderMismatch => ("oauth/provider-mismatch", StatusCode::BAD_REQUEST, "The authorization response came back from another service"),
    AccessDenied => ("oauth/access-denied", StatusCode::BAD_REQUEST, "Access was not granted"),
    ProviderError => ("oauth/provider-error", StatusCode::BAD_REQUEST, "The service reported an error"),
    ExchangeFailed => ("oauth/exchange-failed", StatusCode::BAD_REQUEST, "The authorization could not be completed"),
    ProviderUnavailable => ("provider-unavailable", StatusCode::BAD_GATEWAY, "The service is unavailable; try again later"),
    Internal => ("internal", StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
}

impl ProblemKind {
    pub fn type_uri(self) -> String {
        format!("{TYPE_BASE}{}", self.slug())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InvalidParam {
    /// JSON Pointer (`/folder_id`) for body fields; the parameter name for query/path ones.
    pub name: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    pub detail: Option<String>,
    pub invalid_params: Vec<InvalidParam>,
}

impl Problem {
    pub fn new(kind: ProblemKind) -> Self {
        Self { kind, detail: None, invalid_params: Vec::new() }
    }

    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }

    /// A validation error on one field.
    pub fn invalid(name: impl Into<String>, reason: impl Into<String>) -> Self {
        let mut p = Self::new(ProblemKind::InvalidRequest);
        p.invalid_params.push(InvalidParam { name: name.into(), reason: reason.into() });
        p
    }

    pub fn not_found() -> Self {
        Self::new(ProblemKind::NotFound)
    }

    /// An unexpected failure: logged here (without secrets), answered without details.
    pub fn internal(what: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %what, "internal error");
        Self::new(ProblemKind::Internal)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    invalid_params: &'a [InvalidParam],
}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.kind.status();
        let body = Body {
            kind: self.kind.type_uri(),
            title: self.kind.title(),
            status: status.as_u16(),
            detail: self.detail.as_deref(),
            invalid_params: &self.invalid_params,
        };
        let mut resp = (status, serde_json::to_vec(&body).unwrap_or_default()).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        resp
    }
}

impl From<extconn_core::ports::StoreError> for Problem {
    fn from(e: extconn_core::ports::StoreError) -> Self {
        Problem::internal(&e)
    }
}

pub type ApiResult<T> = Result<T, Problem>;

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/api.md documents the whole catalog.
    #[test]
    fn every_problem_type_is_documented() {
        let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/api.md"))
            .expect("docs/api.md");
        for k in ProblemKind::ALL {
            assert!(
                doc.contains(&format!("| `{}` | {} |", k.slug(), k.status().as_u16())),
                "{} missing from docs/api.md",
                k.slug()
            );
        }
    }
}
