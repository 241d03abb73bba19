//! The emulated Dropbox endpoints, the operation classes they belong to, and how
//! injected faults read on Dropbox's wire.

use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};

use super::wire;
use crate::Op;
use crate::faults::FaultReplies;

/// An emulated endpoint (for fault injection and counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Endpoint {
    /// `GET /oauth2/authorize` (the consent form's decision POST is neither counted
    /// nor faulted).
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

impl Endpoint {
    /// The endpoint an operation class maps to on Dropbox. `list_folder/continue`
    /// serves both the later pages of a full listing and the changes since a cursor;
    /// it is [`Op::Changes`], so a fault on [`Op::List`] hits only a listing's first
    /// call. `Longpoll` belongs to no class.
    pub fn of(op: Op) -> Endpoint {
        match op {
            Op::Authorize => Endpoint::Authorize,
            Op::Token => Endpoint::Token,
            Op::Revoke => Endpoint::Revoke,
            Op::Account => Endpoint::GetCurrentAccount,
            Op::List => Endpoint::ListFolder,
            Op::StartCursor => Endpoint::GetLatestCursor,
            Op::Changes => Endpoint::ListFolderContinue,
            Op::Metadata => Endpoint::GetMetadata,
            Op::Download => Endpoint::Download,
        }
    }
}

/// Injected faults in Dropbox's words (wire.rs).
pub(crate) struct DropboxFaultReplies;

impl FaultReplies for DropboxFaultReplies {
    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        wire::rate_limited(retry_after_secs)
    }

    fn server_error(&self, status: u16) -> Response {
        wire::server_error(status, "injected fault")
    }

    fn invalid_grant(&self) -> Response {
        wire::oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", "injected fault: invalid_grant")
    }

    fn expired_token(&self) -> Response {
        wire::auth_error("expired_access_token")
    }
}
