//! OAuth 2.0 for the emulated Dropbox (provider-apis.md §3.1): Dropbox's settings of the
//! shared authorization server ([`crate::oauth`]) and its wire format.
//!
//! - `token_access_type=offline` yields a refresh token; `online`, `legacy` or none
//!   yield only a short-lived access token; anything else is `invalid_request`.
//! - The code exchange answers `access_token`, `expires_in`, `token_type: "bearer"`,
//!   `scope`, `account_id`, `uid` and, offline, `refresh_token`; a refresh answers only
//!   `access_token`/`token_type`/`expires_in` (the refresh token never rotates).
//! - Token endpoint errors are OAuth JSON `{"error", "error_description"}`; bearer
//!   failures are 401 AuthError (`invalid_access_token`, `expired_access_token`,
//!   `missing_scope`); a missing header is `invalid_access_token` too (see the
//!   fidelity notes in the module docs).
//! - `POST /2/auth/token/revoke` revokes the calling token's grant and answers `null`.
//! - Issued secrets look like `sl.CANARY-AT-…`, `CANARY-RT-…`, `CANARY-CODE-…`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;

use super::endpoints::Endpoint;
use super::{AccountId, DropboxState, wire};
use crate::OAuthClient;
use crate::oauth::{AuthFailure, GrantType, Issued, OAuthServer, OAuthSettings, Params, TokenError};

/// Scopes granted when the authorize request names none (a scoped app's full set).
pub(crate) const DEFAULT_SCOPE: &str = "account_info.read files.content.read files.metadata.read";

/// Where the consent form posts.
pub(crate) const DECISION_PATH: &str = "/dropbox/www/oauth2/authorize/decision";

fn offline(q: &Params) -> Result<bool, String> {
    match q.get("token_access_type").map(String::as_str) {
        None | Some("online") | Some("legacy") => Ok(false),
        Some("offline") => Ok(true),
        Some(other) => Err(format!("Invalid token_access_type: \"{other}\".")),
    }
}

/// The authorization server with Dropbox's settings.
pub(crate) fn server(clients: Vec<OAuthClient>, ttl: Duration, clock: crate::TimeSource) -> OAuthServer {
    let settings = OAuthSettings {
        provider: "Dropbox",
        decision_path: DECISION_PATH.to_string(),
        default_scope: DEFAULT_SCOPE,
        access_token_ttl: ttl,
        access_prefix: "sl.CANARY-AT-",
        refresh_prefix: "CANARY-RT-",
        code_prefix: "CANARY-CODE-",
        offline,
        denied_description: "The user chose not to give your app access to their Dropbox account.",
        rotate_refresh: false,
        refresh_ttl: None,
    };
    OAuthServer::new(settings, clients, clock)
}

/// A failed bearer check as Dropbox answers it.
pub(crate) fn auth_failure(f: &AuthFailure) -> Response {
    match f {
        AuthFailure::Missing | AuthFailure::Invalid => wire::auth_error("invalid_access_token"),
        AuthFailure::Expired => wire::auth_error("expired_access_token"),
        AuthFailure::MissingScope(scope) => wire::missing_scope(scope),
    }
}

/// Authenticates an API call; `Err` is the 401 to send.
pub(crate) fn authenticate(
    st: &DropboxState,
    headers: &HeaderMap,
    required_scope: Option<&str>,
) -> Result<(AccountId, String), Response> {
    st.oauth
        .authenticate(headers, required_scope)
        .map(|b| (AccountId(b.account), b.token))
        .map_err(|f| auth_failure(&f))
}

fn token_error(e: &TokenError) -> Response {
    wire::oauth_error(e.status, e.error, &e.description)
}

/// `GET /oauth2/authorize`.
pub(crate) async fn authorize(State(st): State<Arc<DropboxState>>, RawQuery(query): RawQuery) -> Response {
    st.faults
        .guarded(Endpoint::Authorize, async { st.oauth.authorize(query.as_deref().unwrap_or_default()) })
        .await
}

/// `POST /oauth2/authorize/decision` (the consent form). Neither counted nor faulted.
pub(crate) async fn decision(State(st): State<Arc<DropboxState>>, body: Bytes) -> Response {
    st.oauth.decision(&body)
}

/// `POST /oauth2/token`.
pub(crate) async fn token(State(st): State<Arc<DropboxState>>, headers: HeaderMap, body: Bytes) -> Response {
    st.faults
        .guarded(Endpoint::Token, async {
            match st.oauth.token(&headers, &body) {
                Ok(issued) => token_body(&st, &issued),
                Err(e) => token_error(&e),
            }
        })
        .await
}

fn token_body(st: &DropboxState, t: &Issued) -> Response {
    if t.grant == GrantType::RefreshToken {
        return wire::json_ok(&json!({
            "access_token": t.access_token,
            "token_type": "bearer",
            "expires_in": t.expires_in,
        }));
    }
    let Some(uid) = st.lock().account(&t.account).map(|a| a.uid.clone()) else {
        return wire::oauth_error(
            axum::http::StatusCode::BAD_REQUEST,
            "invalid_grant",
            "account no longer exists",
        );
    };
    let mut body = json!({
        "access_token": t.access_token,
        "expires_in": t.expires_in,
        "token_type": "bearer",
        "scope": t.scope,
        "account_id": t.account,
        "uid": uid,
    });
    if let (Some(rt), Some(obj)) = (&t.refresh_token, body.as_object_mut()) {
        obj.insert("refresh_token".into(), json!(rt));
    }
    wire::json_ok(&body)
}

/// `POST /2/auth/token/revoke` (no arguments, returns `null`).
pub(crate) async fn revoke(State(st): State<Arc<DropboxState>>, headers: HeaderMap, body: Bytes) -> Response {
    st.faults
        .guarded(Endpoint::Revoke, async {
            if let Err(r) = super::rpc::parse_void_args("auth/token/revoke", &headers, &body) {
                return r;
            }
            match authenticate(&st, &headers, None) {
                Ok((_, token)) => {
                    st.oauth.revoke(&token);
                    wire::null_ok()
                }
                Err(r) => r,
            }
        })
        .await
}
