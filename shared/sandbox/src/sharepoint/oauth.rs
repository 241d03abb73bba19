//! OAuth 2.0 of the emulated Microsoft identity platform v2 (provider-apis.md §2.1):
//! Microsoft's settings of the shared authorization server ([`crate::oauth`]) and its
//! wire format.
//!
//! - `{tenant}` must be `organizations`, `common` or the tenant GUID; else 400
//!   `invalid_request` `AADSTS90002` (token) or an error page (authorize).
//! - A refresh token is issued when the scope includes `offline_access` (no `scope`
//!   means the default `offline_access User.Read Files.Read.All Sites.Read.All`).
//! - Every refresh answers a **new** refresh token; the one used keeps working until its
//!   own expiry, 90 days after its issue.
//! - The answer: `token_type`, `scope` (without `offline_access`, `openid`, `profile`,
//!   `email`), `expires_in`, `ext_expires_in`, `access_token`, `refresh_token`,
//!   `id_token` (an unsigned JWT-shaped string, `alg: none`, with `tid`, `oid`,
//!   `preferred_username`, `name`).
//! - Errors: `{"error","error_description":"AADSTS…: …","error_codes":[…],"timestamp",
//!   "trace_id","correlation_id","error_uri"}`: an expired refresh token is
//!   `invalid_grant` 700082, a revoked one 50173, an unknown one 9002313, a redeemed code
//!   54005, an expired code 70008, a PKCE mismatch 501481; a wrong secret is 401
//!   `invalid_client` 7000215, an unknown client 400 `unauthorized_client` 700016.
//! - Issued secrets look like `eyJ0.CANARY-AT-…`, `0.A.CANARY-RT-…`, `0.AX.CANARY-CODE-…`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::{Endpoint, REFRESH_TOKEN_TTL, SpState, wire};
use crate::OAuthClient;
use crate::oauth::{Issued, OAuthServer, OAuthSettings, Params, TokenError};

/// Scopes granted when the authorize request names none.
pub(crate) const DEFAULT_SCOPE: &str = "Files.Read.All offline_access Sites.Read.All User.Read";

/// Where the consent form posts.
pub(crate) const DECISION_PATH: &str = "/sharepoint/login/common/oauth2/v2.0/authorize/decision";

fn offline(q: &Params) -> Result<bool, String> {
    Ok(match q.get("scope") {
        None => true,
        Some(s) => s.split_whitespace().any(|w| w.eq_ignore_ascii_case("offline_access")),
    })
}

/// The authorization server with Microsoft's settings.
pub(crate) fn server(clients: Vec<OAuthClient>, ttl: Duration, clock: crate::TimeSource) -> OAuthServer {
    let settings = OAuthSettings {
        provider: "Microsoft",
        decision_path: DECISION_PATH.to_string(),
        default_scope: DEFAULT_SCOPE,
        access_token_ttl: ttl,
        access_prefix: "eyJ0.CANARY-AT-",
        refresh_prefix: "0.A.CANARY-RT-",
        code_prefix: "0.AX.CANARY-CODE-",
        offline,
        denied_description: "AADSTS65004: User declined to consent to access the app.",
        rotate_refresh: true,
        refresh_ttl: Some(REFRESH_TOKEN_TTL),
    };
    OAuthServer::new(settings, clients, clock)
}

fn known_tenant(st: &SpState, tenant: &str) -> bool {
    tenant.eq_ignore_ascii_case("organizations")
        || tenant.eq_ignore_ascii_case("common")
        || tenant.eq_ignore_ascii_case(&st.urls.tenant_id)
}

fn aad_time(now: SystemTime) -> String {
    wire::time(now).replace('T', " ")
}

/// The token endpoint's error body.
pub(crate) fn aad_error(status: StatusCode, error: &str, code: u32, text: &str, now: SystemTime) -> Response {
    let trace = uuid::Uuid::new_v4().to_string();
    let correlation = uuid::Uuid::new_v4().to_string();
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {}", aad_time(now)),
        "error_codes": [code],
        "timestamp": aad_time(now),
        "trace_id": trace,
        "correlation_id": correlation,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    r
}

/// `invalid_grant` with one of the codes above.
pub(crate) fn invalid_grant_response(code: u32, now: SystemTime) -> Response {
    let text = match code {
        700_082 => {
            "The refresh token has expired due to inactivity. The token was issued on a date and was inactive for 90.00:00:00."
        }
        50_173 => "The provided grant has expired due to it being revoked, a fresh auth token is needed.",
        54_005 => {
            "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token."
        }
        70_008 => {
            "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource."
        }
        501_481 => {
            "The Code_Verifier does not match the code_challenge supplied in the authorization request."
        }
        _ => "The provided value for the input parameter 'refresh_token' or 'assertion' is not valid.",
    };
    aad_error(StatusCode::BAD_REQUEST, "invalid_grant", code, text, now)
}

/// Maps the shared server's outcome to Microsoft's codes (by the server's wording).
fn token_error(e: &TokenError, now: SystemTime) -> Response {
    let d = e.description.as_str();
    match e.error {
        "invalid_grant" => {
            let code = if d.contains("refresh token has expired") {
                700_082
            } else if d.contains("revoked") {
                50_173
            } else if d.contains("already been used") {
                54_005
            } else if d.contains("code doesn't exist or has expired") {
                70_008
            } else if d.contains("code_verifier") {
                501_481
            } else {
                9_002_313
            };
            invalid_grant_response(code, now)
        }
        "invalid_client" if d.contains("client_id") && !d.contains("secret") => aad_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700_016,
            "Application with the given identifier was not found in the directory.",
            now,
        ),
        "invalid_client" => aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7_000_215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
            now,
        ),
        "unsupported_grant_type" => aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70_003,
            "The app requested an unsupported grant type.",
            now,
        ),
        other => aad_error(e.status, other, 900_144, d, now),
    }
}

/// `GET /{tenant}/oauth2/v2.0/authorize`.
pub(crate) async fn authorize(
    State(st): State<Arc<SpState>>,
    Path(tenant): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    st.faults
        .guarded(Endpoint::Authorize, async {
            if !known_tenant(&st, &tenant) {
                let page = "<!doctype html><html><head><title>Microsoft (sandbox) - error</title></head>\
                            <body><h1>Error</h1><p id=\"error\">AADSTS90002: Tenant not found.</p></body></html>";
                let mut r = (StatusCode::BAD_REQUEST, page).into_response();
                r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
                return r;
            }
            st.oauth.authorize(query.as_deref().unwrap_or_default())
        })
        .await
}

/// The consent form's decision (neither counted nor faulted).
pub(crate) async fn decision(State(st): State<Arc<SpState>>, body: Bytes) -> Response {
    st.oauth.decision(&body)
}

/// `POST /{tenant}/oauth2/v2.0/token`.
pub(crate) async fn token(
    State(st): State<Arc<SpState>>,
    Path(tenant): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    st.faults
        .guarded(Endpoint::Token, async {
            let now = st.now();
            if !known_tenant(&st, &tenant) {
                return aad_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    90_002,
                    "Tenant not found.",
                    now,
                );
            }
            match st.oauth.token(&headers, &body) {
                Ok(issued) => token_body(&st, &issued, now),
                Err(e) => token_error(&e, now),
            }
        })
        .await
}

/// An unsigned id_token (`alg: none`): header, claims, empty signature.
fn id_token(st: &SpState, t: &Issued, now: SystemTime) -> String {
    let user = st.lock().user(&t.account).cloned();
    let iat = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let tid = &st.urls.tenant_id;
    let claims: Value = json!({
        "aud": t.client_id,
        "iss": format!("https://login.microsoftonline.com/{tid}/v2.0"),
        "iat": iat,
        "nbf": iat,
        "exp": iat + t.expires_in,
        "name": user.as_ref().map(|u| u.display_name.as_str()).unwrap_or_default(),
        "oid": t.account,
        "preferred_username": user.as_ref().map(|u| u.upn.as_str()).unwrap_or_default(),
        "sub": URL_SAFE_NO_PAD.encode(format!("{}:{}", t.account, t.client_id)),
        "tid": tid,
        "ver": "2.0",
    });
    let header = URL_SAFE_NO_PAD.encode(br#"{"typ":"JWT","alg":"none"}"#);
    format!("{header}.{}.", URL_SAFE_NO_PAD.encode(claims.to_string()))
}

fn token_body(st: &SpState, t: &Issued, now: SystemTime) -> Response {
    let scope: Vec<&str> = t
        .scope
        .split_whitespace()
        .filter(|s| {
            !["offline_access", "openid", "profile", "email"].iter().any(|o| o.eq_ignore_ascii_case(s))
        })
        .collect();
    let mut body = json!({
        "token_type": "Bearer",
        "scope": scope.join(" "),
        "expires_in": t.expires_in,
        "ext_expires_in": t.expires_in,
        "access_token": t.access_token,
        "id_token": id_token(st, t, now),
    });
    if let (Some(rt), Some(obj)) = (&t.refresh_token, body.as_object_mut()) {
        obj.insert("refresh_token".into(), json!(rt));
    }
    let mut r = (StatusCode::OK, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store, no-cache"));
    r
}
