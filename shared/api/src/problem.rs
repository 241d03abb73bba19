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
    UriTooLong => ("uri-too-long", StatusCode::URI_TOO_LONG, "Request URI too long"),
    HeadersTooLarge => ("headers-too-large", StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "Request headers too large"),
    PayloadTooLarge => ("payload-too-large", StatusCode::PAYLOAD_TOO_LARGE, "Request body too large"),
    MalformedJson => ("malformed-json", StatusCode::BAD_REQUEST, "Request body is not valid JSON"),
    InvalidRequest => ("invalid-request", StatusCode::BAD_REQUEST, "The request has invalid parameters"),
    InvalidPageToken => ("invalid-page-token", StatusCode::BAD_REQUEST, "Invalid page token"),
    ProviderNotConfigured => ("provider-not-configured", StatusCode::CONFLICT, "This service is not configured"),
    AlreadyConnected => ("already-connected", StatusCode::CONFLICT, "This folder is already connected"),
    AutoSyncOff => ("auto-sync-off", StatusCode::CONFLICT, "Auto sync is off"),
    ReauthRequired => ("reauth-required", StatusCode::CONFLICT, "The account must be reconnected"),
    NeedsReview => ("needs-review", StatusCode::CONFLICT, "Deletions are waiting for review"),
    NothingToReview => ("nothing-to-review", StatusCode::CONFLICT, "No deletions are waiting for review"),
    FolderNotAccessible => ("folder-not-accessible", StatusCode::BAD_REQUEST, "The folder is not accessible with this account"),
    InvalidState => ("oauth/invalid-state", StatusCode::BAD_REQUEST, "Unknown or already used authorization request"),
    StateExpired => ("oauth/state-expired", StatusCode::BAD_REQUEST, "The authorization request expired"),
    ProviderMismatch => ("oauth/provider-mismatch", StatusCode::BAD_REQUEST, "The authorization response came back from another service"),
    AccessDenied => ("oauth/access-denied", StatusCode::BAD_REQUEST, "Access was not granted"),
    ProviderError => ("oauth/provider-error", StatusCode::BAD_REQUEST, "The service reported an error"),
    ExchangeFailed => ("oauth/exchange-failed", StatusCode::BAD_REQUEST, "The authorization could not be completed"),
    ProviderUnavailable => ("provider-unavailable", StatusCode::BAD_GATEWAY, "The service is unavailable; try again later"),
    WrongHost => ("wrong-host", StatusCode::MISDIRECTED_REQUEST, "This server does not answer for that host"),
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

/// Each outcome of a core use case as the API has always answered it.
impl From<extconn_core::UseCaseError> for Problem {
    fn from(e: extconn_core::UseCaseError) -> Self {
        use extconn_core::UseCaseError as E;
        match e {
            E::NotFound => Problem::not_found(),
            E::ReauthRequired => Problem::new(ProblemKind::ReauthRequired),
            E::ProviderNotConfigured => Problem::new(ProblemKind::ProviderNotConfigured),
            E::FolderNotAccessible => Problem::new(ProblemKind::FolderNotAccessible),
            E::Invalid { field, reason } => Problem::invalid(field, reason),
            E::AlreadyConnected => Problem::new(ProblemKind::AlreadyConnected),
            E::AutoSyncOff => Problem::new(ProblemKind::AutoSyncOff)
                .detail("Refresh Items is available while Auto sync is on."),
            E::NeedsReview { held } => Problem::new(ProblemKind::NeedsReview).detail(format!(
                "A sync would mark {held} {} deleted; nothing syncs until they are confirmed or \
                 discarded with POST /v1/connections/{{id}}/confirm-deletions.",
                if held == 1 { "file" } else { "files" }
            )),
            E::NothingToReview => Problem::new(ProblemKind::NothingToReview)
                .detail("The connection holds no deletions to confirm or discard."),
            E::InvalidState => Problem::new(ProblemKind::InvalidState),
            E::StateExpired => Problem::new(ProblemKind::StateExpired),
            E::ProviderMismatch => Problem::new(ProblemKind::ProviderMismatch),
            E::AccessDenied => Problem::new(ProblemKind::AccessDenied)
                .detail("The account owner declined access. Nothing was connected."),
            // The code is already reduced to `[A-Za-z0-9_]{0,64}` by the use case.
            E::ProviderRefused { code } => Problem::new(ProblemKind::ProviderError)
                .detail(format!("The service answered '{code}'. Nothing was connected.")),
            E::ExchangeFailed => Problem::new(ProblemKind::ExchangeFailed),
            E::ProviderUnavailable => Problem::new(ProblemKind::ProviderUnavailable),
            E::Internal(what) => Problem::internal(&what),
            E::Store(e) => e.into(),
        }
    }
}

pub type ApiResult<T> = Result<T, Problem>;

#[cfg(test)]
mod tests {
    use super::*;

    /// Each use-case outcome keeps the problem type (and for the OAuth refusals the wording)
    /// the API has always answered with.
    #[test]
    fn use_case_outcomes_map_to_their_problem_types() {
        use extconn_core::UseCaseError as E;
        let cases = [
            (E::NotFound, ProblemKind::NotFound),
            (E::ReauthRequired, ProblemKind::ReauthRequired),
            (E::ProviderNotConfigured, ProblemKind::ProviderNotConfigured),
            (E::FolderNotAccessible, ProblemKind::FolderNotAccessible),
            (E::Invalid { field: "/folder_id", reason: "r" }, ProblemKind::InvalidRequest),
            (E::AlreadyConnected, ProblemKind::AlreadyConnected),
            (E::AutoSyncOff, ProblemKind::AutoSyncOff),
            (E::NeedsReview { held: 150 }, ProblemKind::NeedsReview),
            (E::NothingToReview, ProblemKind::NothingToReview),
            (E::InvalidState, ProblemKind::InvalidState),
            (E::StateExpired, ProblemKind::StateExpired),
            (E::ProviderMismatch, ProblemKind::ProviderMismatch),
            (E::AccessDenied, ProblemKind::AccessDenied),
            (E::ProviderRefused { code: "server_error".into() }, ProblemKind::ProviderError),
            (E::ExchangeFailed, ProblemKind::ExchangeFailed),
            (E::ProviderUnavailable, ProblemKind::ProviderUnavailable),
            (E::Internal("x".into()), ProblemKind::Internal),
            (E::Store(extconn_core::ports::StoreError::Conflict), ProblemKind::Internal),
        ];
        for (e, kind) in cases {
            assert_eq!(Problem::from(e.clone()).kind, kind, "{e:?}");
        }
        let p = Problem::from(E::Invalid { field: "/folder_id", reason: "r" });
        assert_eq!(p.invalid_params, [InvalidParam { name: "/folder_id".into(), reason: "r".into() }]);
        let p = Problem::from(E::ProviderRefused { code: "server_error".into() });
        assert_eq!(p.detail.as_deref(), Some("The service answered 'server_error'. Nothing was connected."));
        assert!(Problem::from(E::AccessDenied).detail.is_some_and(|d| d.contains("declined")));
        assert!(Problem::from(E::AutoSyncOff).detail.is_some_and(|d| d.contains("Auto sync is on")));
        let d = Problem::from(E::NeedsReview { held: 150 }).detail.unwrap_or_default();
        assert!(d.contains("150 files") && d.contains("confirm-deletions"), "{d}");
        let d = Problem::from(E::NeedsReview { held: 1 }).detail.unwrap_or_default();
        assert!(d.contains("1 file "), "{d}");
    }

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
