//! OAuth 2.0 for the emulated Google (provider-apis.md §1.1): Google's settings of the
//! shared authorization server ([`crate::oauth`]) and its wire format.
//!
//! - `access_type=offline` yields a refresh token; `online` or none only an access
//!   token; anything else is `invalid_request`. `include_granted_scopes` and
//!   `login_hint` are accepted and ignored.
//! - The code exchange answers `access_token`, `expires_in`, `scope`,
//!   `token_type: "Bearer"` and, offline, `refresh_token` — but only on the first
//!   offline exchange for an account and client, unless the authorize request had
//!   `prompt=consent` (provider-apis.md §1.9); a refresh answers the same **without**
//!   `refresh_token` (refresh tokens are not rotated).
//! - A revoked or unknown refresh token gets 400 `invalid_grant` ("Token has been
//!   expired or revoked.").
//! - `POST /revoke` takes `token=` (form body or query) and answers 200 `{}`; a token
//!   it does not know (or already revoked) gets 400 `invalid_token`.
//! - Issued secrets look like `ya29.CANARY-AT-…`, `1//CANARY-RT-…`, `4/CANARY-CODE-…`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::json;

use super::{DriveState, Endpoint, wire};
use crate::OAuthClient;
use crate::oauth::{GrantType, Issued, OAuthServer, OAuthSettings, Params, TokenError};

/// Scope granted when the authorize request names none.
pub(crate) const DEFAULT_SCOPE: &str = "https://www.googleapis.com/auth/drive.readonly";

/// Where the consent form posts.
pub(crate) const DECISION_PATH: &str = "/google_drive/accounts/o/oauth2/v2/auth/decision";

fn offline(q: &Params) -> Result<bool, String> {
    match q.get("access_type").map(String::as_str) {
        None | Some("online") => Ok(false),
        Some("offline") => Ok(true),
        Some(other) => Err(format!("Invalid access_type: {other}")),
    }
}

/// The authorization server with Google's settings.
pub(crate) fn server(clients: Vec<OAuthClient>, ttl: Duration, clock: crate::TimeSource) -> OAuthServer {
    let settings = OAuthSettings {
        provider: "Google",
        decision_path: DECISION_PATH.to_string(),
        default_scope: DEFAULT_SCOPE,
        access_token_ttl: ttl,
        access_prefix: "ya29.CANARY-AT-",
        refresh_prefix: "1//CANARY-RT-",
        code_prefix: "4/CANARY-CODE-",
        offline,
        denied_description: "access_denied",
        rotate_refresh: false,
        refresh_ttl: None,
    };
    OAuthServer::new(settings, clients, clock)
}

/// Authenticates an API call; `Ok` is the account id, `Err` the 401 to send.
pub(crate) fn authenticate(st: &DriveState, headers: &HeaderMap) -> Result<String, Response> {
    st.oauth.authenticate(headers, None).map(|b| b.account).map_err(|_| wire::auth_error())
}

fn token_error(e: &TokenError) -> Response {
    if e.error == "invalid_grant" && e.description.contains("revoked") {
        return wire::oauth_error(e.status, e.error, "Token has been expired or revoked.");
    }
    wire::oauth_error(e.status, e.error, &e.description)
}

/// `GET /o/oauth2/v2/auth`.
pub(crate) async fn authorize(State(st): State<Arc<DriveState>>, RawQuery(query): RawQuery) -> Response {
    st.faults
        .guarded(Endpoint::Authorize, async { st.oauth.authorize(query.as_deref().unwrap_or_default()) })
        .await
}

/// The consent form's decision (neither counted nor faulted).
pub(crate) async fn decision(State(st): State<Arc<DriveState>>, body: Bytes) -> Response {
    st.oauth.decision(&body)
}

/// `POST /token`.
pub(crate) async fn token(State(st): State<Arc<DriveState>>, headers: HeaderMap, body: Bytes) -> Response {
    st.faults
        .guarded(Endpoint::Token, async {
            match st.oauth.token(&headers, &body) {
                Ok(issued) => token_body(&st, &issued),
                Err(e) => token_error(&e),
            }
        })
        .await
}

fn token_body(st: &DriveState, t: &Issued) -> Response {
    let mut body = json!({
        "access_token": t.access_token,
        "expires_in": t.expires_in,
        "scope": t.scope,
        "token_type": "Bearer",
    });
    if t.grant == GrantType::AuthorizationCode
        && let (Some(rt), Some(obj)) = (&t.refresh_token, body.as_object_mut())
    {
        let first = st.lock().refresh_issued.insert((t.account.clone(), t.client_id.clone()));
        let consent = t.prompt.as_deref().is_some_and(|p| p.split_whitespace().any(|w| w == "consent"));
        if first || consent {
            obj.insert("refresh_token".into(), json!(rt));
        }
    }
    wire::json_ok(&body)
}

/// `POST /revoke` (`token` in the form body or the query).
pub(crate) async fn revoke(
    State(st): State<Arc<DriveState>>,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    st.faults
        .guarded(Endpoint::Revoke, async {
            let mut params = super::query(query.as_deref());
            params.extend(url::form_urlencoded::parse(&body).into_owned());
            let token = params.get("token").cloned().unwrap_or_default();
            if token.is_empty() || !st.oauth.knows(&token) {
                return wire::oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_token",
                    "Token expired or revoked",
                );
            }
            st.oauth.revoke(&token);
            wire::json_ok(&json!({}))
        })
        .await
}
