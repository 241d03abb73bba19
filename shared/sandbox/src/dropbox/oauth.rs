//! OAuth 2.0 for the emulated Dropbox (provider-apis.md §3.1): the authorize page,
//! the token endpoint, `auth/token/revoke`, and bearer authentication of API calls.
//!
//! Contracts:
//! - `GET /oauth2/authorize` validates `client_id` and the **exact** `redirect_uri`
//!   (a mismatch is a 400 page, never a redirect). Then either it redirects at once
//!   with a code (auto-approve mode) or shows a consent page whose Allow/Deny buttons
//!   POST `/oauth2/authorize/decision` with a server-side pending id. Without a
//!   `redirect_uri` the code is shown on a page (Dropbox's "no redirect" flow).
//! - Codes are single use (the first exchange attempt burns them, even a failing one),
//!   expire 10 minutes after issue per the time source, and are bound to the client,
//!   the redirect URI, the account and the PKCE challenge (`S256` or `plain`).
//! - Token endpoint: form body; client auth by `client_id`[+`client_secret`] in the
//!   body or HTTP Basic. A client registered with a non-empty secret must always send
//!   it; a public client (empty secret) sends only `client_id` and relies on PKCE.
//! - `token_access_type=offline` yields a refresh token; `online`, `legacy` or none
//!   yield only a short-lived access token.
//! - Refresh returns only `access_token`/`token_type`/`expires_in`; the refresh token
//!   never rotates and lives until revoked.
//! - Revoke disables the calling access token, its refresh token and every access
//!   token minted from that refresh token.
//! - Canaries: every issued secret is recognisable (`sl.CANARY-AT-…`, `CANARY-RT-…`,
//!   `CANARY-CODE-…`) and recorded with the registered client secrets and every PKCE
//!   verifier received, for leak scans.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use rand::Rng;
use serde_json::json;
use sha2::{Digest, Sha256};

use super::faults::{Endpoint, guarded};
use super::wire;
use super::{AccountId, DropboxState};

/// Codes expire this long after they are issued.
const CODE_TTL: Duration = Duration::from_secs(600);

/// Scopes granted when the authorize request names none (a scoped app's full set).
pub(crate) const DEFAULT_SCOPE: &str = "account_info.read files.content.read files.metadata.read";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChallengeMethod {
    S256,
    Plain,
}

#[derive(Debug, Clone)]
struct Challenge {
    value: String,
    method: ChallengeMethod,
}

impl Challenge {
    fn verify(&self, verifier: &str) -> bool {
        match self.method {
            ChallengeMethod::S256 => pkce_s256(verifier) == self.value,
            ChallengeMethod::Plain => verifier == self.value,
        }
    }
}

/// `base64url_nopad(SHA256(verifier))` (RFC 7636 §4.2).
pub(crate) fn pkce_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// The parts of an authorize request that survive into the code.
#[derive(Debug, Clone)]
struct AuthRequest {
    client_id: String,
    redirect_uri: Option<String>,
    state: Option<String>,
    challenge: Option<Challenge>,
    scope: String,
    offline: bool,
}

#[derive(Debug)]
struct CodeGrant {
    req: AuthRequest,
    account: AccountId,
    issued: SystemTime,
    used: bool,
}

#[derive(Debug)]
struct RefreshGrant {
    client_id: String,
    account: AccountId,
    scope: String,
    revoked: bool,
}

#[derive(Debug)]
struct AccessGrant {
    account: AccountId,
    scope: String,
    refresh: Option<String>,
    expires_at: SystemTime,
    revoked: bool,
    /// Set by `expire_access_tokens()`, independent of the time source.
    force_expired: bool,
}

/// Pending consent pages, codes, tokens and canaries.
#[derive(Debug, Default)]
pub(crate) struct OAuthStore {
    pending: HashMap<String, AuthRequest>,
    codes: HashMap<String, CodeGrant>,
    refresh: HashMap<String, RefreshGrant>,
    access: HashMap<String, AccessGrant>,
    canaries: Vec<String>,
    canary_set: HashSet<String>,
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

impl OAuthStore {
    pub(crate) fn record_canary(&mut self, secret: &str) {
        if !secret.is_empty() && self.canary_set.insert(secret.to_string()) {
            self.canaries.push(secret.to_string());
        }
    }

    pub(crate) fn canaries(&self) -> Vec<String> {
        self.canaries.clone()
    }

    fn new_code(&mut self, req: AuthRequest, account: AccountId, now: SystemTime) -> String {
        let code = format!("CANARY-CODE-{}", random_token(32));
        self.record_canary(&code);
        self.codes.insert(code.clone(), CodeGrant { req, account, issued: now, used: false });
        code
    }

    pub(crate) fn new_refresh(&mut self, client_id: &str, account: &AccountId, scope: &str) -> String {
        let rt = format!("CANARY-RT-{}", random_token(40));
        self.record_canary(&rt);
        self.refresh.insert(
            rt.clone(),
            RefreshGrant {
                client_id: client_id.to_string(),
                account: account.clone(),
                scope: scope.to_string(),
                revoked: false,
            },
        );
        rt
    }

    pub(crate) fn new_access(
        &mut self,
        account: &AccountId,
        scope: &str,
        refresh: Option<&str>,
        expires_at: SystemTime,
    ) -> String {
        let at = format!("sl.CANARY-AT-{}", random_token(48));
        self.record_canary(&at);
        self.access.insert(
            at.clone(),
            AccessGrant {
                account: account.clone(),
                scope: scope.to_string(),
                refresh: refresh.map(str::to_string),
                expires_at,
                revoked: false,
                force_expired: false,
            },
        );
        at
    }

    /// Every access token now answers `expired_access_token`.
    pub(crate) fn expire_all_access(&mut self) {
        for g in self.access.values_mut() {
            g.force_expired = true;
        }
    }

    /// Revokes every token and refresh token.
    pub(crate) fn revoke_all(&mut self) {
        for g in self.access.values_mut() {
            g.revoked = true;
        }
        for g in self.refresh.values_mut() {
            g.revoked = true;
        }
    }

    /// Revoke semantics of `auth/token/revoke`.
    fn revoke_access(&mut self, token: &str) {
        let refresh = match self.access.get_mut(token) {
            Some(g) => {
                g.revoked = true;
                g.refresh.clone()
            }
            None => None,
        };
        if let Some(rt) = refresh {
            if let Some(r) = self.refresh.get_mut(&rt) {
                r.revoked = true;
            }
            for g in self.access.values_mut() {
                if g.refresh.as_deref() == Some(rt.as_str()) {
                    g.revoked = true;
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Bearer authentication

/// Authenticates `Authorization: Bearer <token>`; returns the account, or the 401
/// response (`invalid_access_token` when missing/unknown/revoked,
/// `expired_access_token` when past its TTL, `missing_scope` when the token lacks
/// `required_scope`).
pub(crate) fn authenticate(
    st: &DropboxState,
    headers: &HeaderMap,
    required_scope: Option<&str>,
) -> Result<(AccountId, String), Response> {
    let token = bearer(headers).ok_or_else(|| wire::auth_error("invalid_access_token"))?;
    let now = st.now();
    let inner = st.lock();
    let g = inner.oauth.access.get(&token).ok_or_else(|| wire::auth_error("invalid_access_token"))?;
    if g.revoked {
        return Err(wire::auth_error("invalid_access_token"));
    }
    if g.force_expired || now >= g.expires_at {
        return Err(wire::auth_error("expired_access_token"));
    }
    if inner.account(&g.account.0).is_none() {
        return Err(wire::auth_error("invalid_access_token"));
    }
    if let Some(scope) = required_scope
        && !g.scope.split(' ').any(|s| s == scope)
    {
        return Err(wire::missing_scope(scope));
    }
    Ok((g.account.clone(), token))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

// ---------------------------------------------------------------------------------
// Authorize

fn parse_form(raw: &[u8]) -> HashMap<String, String> {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn error_page(status: StatusCode, msg: &str) -> Response {
    wire::html(
        status,
        format!(
            "<!doctype html><html><head><title>Dropbox (sandbox) - error</title></head>\
             <body><h1>Error</h1><p id=\"error\">{}</p></body></html>",
            escape_html(msg)
        ),
    )
}

fn redirect_with(uri: &str, params: &[(&str, &str)]) -> Response {
    match url::Url::parse(uri) {
        Ok(mut u) => {
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in params {
                    q.append_pair(k, v);
                }
            }
            // 302 Found, as Dropbox (axum's `Redirect::to` would be 303).
            match header::HeaderValue::from_str(u.as_str()) {
                Ok(loc) => {
                    let mut r = wire::with_body(StatusCode::FOUND, axum::body::Body::empty());
                    r.headers_mut().insert(header::LOCATION, loc);
                    r
                }
                Err(_) => error_page(StatusCode::BAD_REQUEST, "redirect_uri is not a valid header value"),
            }
        }
        Err(_) => error_page(StatusCode::BAD_REQUEST, "redirect_uri is not a valid URL"),
    }
}

/// Sends the user agent back with an OAuth error (only after `redirect_uri` has been
/// validated), or shows it when there is no redirect URI.
fn deny_redirect(req: &AuthRequest, error: &str, description: &str) -> Response {
    match &req.redirect_uri {
        Some(uri) => {
            let mut params = vec![("error", error), ("error_description", description)];
            if let Some(s) = &req.state {
                params.push(("state", s.as_str()));
            }
            redirect_with(uri, &params)
        }
        None => error_page(StatusCode::BAD_REQUEST, &format!("{error}: {description}")),
    }
}

fn approve_redirect(req: &AuthRequest, code: &str) -> Response {
    match &req.redirect_uri {
        Some(uri) => {
            let mut params = vec![("code", code)];
            if let Some(s) = &req.state {
                params.push(("state", s.as_str()));
            }
            redirect_with(uri, &params)
        }
        None => wire::html(
            StatusCode::OK,
            format!(
                "<!doctype html><html><head><title>Dropbox (sandbox) - code</title></head><body>\
                 <p>Enter this code into the app:</p><code id=\"code\">{}</code></body></html>",
                escape_html(code)
            ),
        ),
    }
}

/// Normalises a space-separated scope list (sorted, de-duplicated).
fn normalise_scope(s: &str) -> String {
    let mut v: Vec<&str> = s.split_whitespace().collect();
    v.sort_unstable();
    v.dedup();
    v.join(" ")
}

/// Validates an authorize request. `Err` is the response to send.
fn parse_authorize(st: &DropboxState, q: &HashMap<String, String>) -> Result<AuthRequest, Response> {
    let client_id = q.get("client_id").map(String::as_str).unwrap_or_default();
    let Some(client) = st.client(client_id) else {
        return Err(error_page(StatusCode::BAD_REQUEST, &format!("Invalid client_id: \"{client_id}\".")));
    };
    let redirect_uri = q.get("redirect_uri").cloned();
    if let Some(uri) = &redirect_uri
        && !client.redirect_uris.iter().any(|r| r == uri)
    {
        return Err(error_page(
            StatusCode::BAD_REQUEST,
            &format!(
                "Invalid redirect_uri: \"{uri}\". It must exactly match one of the redirect URIs you've pre-configured for your app (including the path)."
            ),
        ));
    }
    let mut req = AuthRequest {
        client_id: client_id.to_string(),
        redirect_uri,
        state: q.get("state").cloned(),
        challenge: None,
        scope: DEFAULT_SCOPE.to_string(),
        offline: false,
    };
    if q.get("response_type").map(String::as_str) != Some("code") {
        return Err(deny_redirect(
            &req,
            "unsupported_response_type",
            "Only response_type=code is supported.",
        ));
    }
    req.offline = match q.get("token_access_type").map(String::as_str) {
        None | Some("online") | Some("legacy") => false,
        Some("offline") => true,
        Some(other) => {
            return Err(deny_redirect(
                &req,
                "invalid_request",
                &format!("Invalid token_access_type: \"{other}\"."),
            ));
        }
    };
    if let Some(scope) = q.get("scope").filter(|s| !s.trim().is_empty()) {
        req.scope = normalise_scope(scope);
    }
    if let Some(value) = q.get("code_challenge") {
        let method = match q.get("code_challenge_method").map(String::as_str) {
            Some("S256") => ChallengeMethod::S256,
            Some("plain") | None => ChallengeMethod::Plain,
            Some(other) => {
                return Err(deny_redirect(
                    &req,
                    "invalid_request",
                    &format!("Invalid code_challenge_method: \"{other}\"."),
                ));
            }
        };
        let ok_chars = value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
        if !(43..=128).contains(&value.len()) || !ok_chars {
            return Err(deny_redirect(
                &req,
                "invalid_request",
                "code_challenge must be 43-128 chars of [A-Za-z0-9-._~].",
            ));
        }
        req.challenge = Some(Challenge { value: value.clone(), method });
    }
    Ok(req)
}

/// `GET /oauth2/authorize`.
pub(crate) async fn authorize(State(st): State<Arc<DropboxState>>, RawQuery(query): RawQuery) -> Response {
    let st2 = Arc::clone(&st);
    guarded(&st, Endpoint::Authorize, async move {
        let q = parse_form(query.unwrap_or_default().as_bytes());
        let req = match parse_authorize(&st2, &q) {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        let now = st2.now();
        let mut inner = st2.lock();
        let Some(login) = inner.login().map(|a| a.id.clone()) else {
            return error_page(
                StatusCode::BAD_REQUEST,
                "The sandbox has no Dropbox account to log in with; create one first.",
            );
        };
        if inner.auto_approve {
            let code = inner.oauth.new_code(req.clone(), login, now);
            return approve_redirect(&req, &code);
        }
        let pending_id = uuid::Uuid::new_v4().simple().to_string();
        let options: String = inner
            .accounts
            .iter()
            .map(|a| {
                format!(
                    "<option value=\"{}\"{}>{} &lt;{}&gt;</option>",
                    escape_html(&a.id.0),
                    if a.id == login { " selected" } else { "" },
                    escape_html(&a.display_name),
                    escape_html(&a.email)
                )
            })
            .collect();
        let scope = escape_html(&req.scope);
        let app = escape_html(&req.client_id);
        inner.oauth.pending.insert(pending_id.clone(), req);
        wire::html(
            StatusCode::OK,
            format!(
                "<!doctype html><html><head><title>Dropbox (sandbox) - authorize</title></head><body>\
                 <h1>Allow the app \"{app}\" to access your Dropbox?</h1>\
                 <p>It asks for: <span id=\"scope\">{scope}</span></p>\
                 <form method=\"post\" action=\"/dropbox/www/oauth2/authorize/decision\">\
                 <input type=\"hidden\" name=\"pending\" value=\"{pending_id}\">\
                 <p><label>Signed in as <select name=\"account\">{options}</select></label></p>\
                 <button type=\"submit\" name=\"decision\" value=\"allow\" id=\"allow\">Allow</button> \
                 <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button>\
                 </form></body></html>"
            ),
        )
    })
    .await
}

/// `POST /oauth2/authorize/decision` (form: `pending`, `decision=allow|deny`,
/// optional `account`). Not counted as an `Authorize` call and never faulted.
pub(crate) async fn decision(State(st): State<Arc<DropboxState>>, body: Bytes) -> Response {
    let form = parse_form(&body);
    let now = st.now();
    let mut inner = st.lock();
    let Some(req) = form.get("pending").and_then(|p| inner.oauth.pending.remove(p)) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            "This authorization request is unknown or was already answered.",
        );
    };
    match form.get("decision").map(String::as_str) {
        Some("allow") => {
            let chosen = match form.get("account") {
                Some(id) => inner.account(id).map(|a| a.id.clone()),
                None => inner.login().map(|a| a.id.clone()),
            };
            let Some(account) = chosen else {
                return error_page(StatusCode::BAD_REQUEST, "Unknown account.");
            };
            let code = inner.oauth.new_code(req.clone(), account, now);
            approve_redirect(&req, &code)
        }
        _ => deny_redirect(
            &req,
            "access_denied",
            "The user chose not to give your app access to their Dropbox account.",
        ),
    }
}

// ---------------------------------------------------------------------------------
// Token endpoint

fn invalid_grant(desc: &str) -> Response {
    wire::oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", desc)
}

fn invalid_request(desc: &str) -> Response {
    wire::oauth_error(StatusCode::BAD_REQUEST, "invalid_request", desc)
}

fn invalid_client(desc: &str) -> Response {
    wire::oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", desc)
}

/// `(client_id, client_secret)` from HTTP Basic (form-urlencoded parts, RFC 6749
/// §2.3.1) or from the body.
fn client_credentials(
    headers: &HeaderMap,
    form: &HashMap<String, String>,
) -> Result<(String, Option<String>), Response> {
    if let Some(v) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok())
        && let Some((scheme, b64)) = v.trim().split_once(' ')
        && scheme.eq_ignore_ascii_case("basic")
    {
        let decoded = STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| invalid_client("Malformed HTTP Basic credentials."))?;
        let (id, secret) =
            decoded.split_once(':').ok_or_else(|| invalid_client("Malformed HTTP Basic credentials."))?;
        let unescape = |s: &str| -> String {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        return Ok((unescape(id), Some(unescape(secret))));
    }
    let id = form.get("client_id").cloned().ok_or_else(|| invalid_client("No client_id given."))?;
    Ok((id, form.get("client_secret").cloned()))
}

/// `POST /oauth2/token`.
pub(crate) async fn token(State(st): State<Arc<DropboxState>>, headers: HeaderMap, body: Bytes) -> Response {
    let st2 = Arc::clone(&st);
    guarded(&st, Endpoint::Token, async move { token_inner(&st2, &headers, &body) }).await
}

fn token_inner(st: &DropboxState, headers: &HeaderMap, body: &[u8]) -> Response {
    let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if !ctype.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
        return invalid_request("Content-Type must be application/x-www-form-urlencoded.");
    }
    let form = parse_form(body);
    let now = st.now();
    {
        let mut inner = st.lock();
        if let Some(v) = form.get("code_verifier") {
            inner.oauth.record_canary(v);
        }
    }
    let (client_id, secret) = match client_credentials(headers, &form) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let Some(client) = st.client(&client_id) else {
        return invalid_client("Invalid client_id.");
    };
    if !client.client_secret.is_empty() && secret.as_deref() != Some(client.client_secret.as_str()) {
        return invalid_client("Invalid client_secret (this app is confidential and must send its secret).");
    }
    let ttl = st.access_token_ttl;
    let mut inner = st.lock();
    match form.get("grant_type").map(String::as_str) {
        None => invalid_request("No grant_type given."),
        Some("authorization_code") => {
            let Some(code) = form.get("code") else {
                return invalid_request("No code given.");
            };
            let Some(grant) = inner.oauth.codes.get_mut(code) else {
                return invalid_grant("code doesn't exist or has expired");
            };
            if grant.used {
                return invalid_grant("code has already been used");
            }
            grant.used = true;
            if now >= grant.issued + CODE_TTL {
                return invalid_grant("code doesn't exist or has expired");
            }
            if grant.req.client_id != client_id {
                return invalid_grant("code was issued to a different client");
            }
            if form.get("redirect_uri") != grant.req.redirect_uri.as_ref() {
                return invalid_grant("redirect_uri mismatch");
            }
            if let Some(ch) = &grant.req.challenge {
                match form.get("code_verifier") {
                    None => return invalid_grant("code_verifier is required (PKCE)"),
                    Some(v) if !ch.verify(v) => return invalid_grant("invalid code_verifier"),
                    Some(_) => {}
                }
            }
            let (account, scope, offline) =
                (grant.account.clone(), grant.req.scope.clone(), grant.req.offline);
            let Some(uid) = inner.account(&account.0).map(|a| a.uid.clone()) else {
                return invalid_grant("account no longer exists");
            };
            let rt = offline.then(|| inner.oauth.new_refresh(&client_id, &account, &scope));
            let at = inner.oauth.new_access(&account, &scope, rt.as_deref(), now + ttl);
            let mut body = json!({
                "access_token": at,
                "expires_in": ttl.as_secs(),
                "token_type": "bearer",
                "scope": scope,
                "account_id": account.0,
                "uid": uid,
            });
            if let (Some(rt), Some(obj)) = (rt, body.as_object_mut()) {
                obj.insert("refresh_token".into(), json!(rt));
            }
            wire::json_ok(&body)
        }
        Some("refresh_token") => {
            let Some(rt) = form.get("refresh_token") else {
                return invalid_request("No refresh_token given.");
            };
            let (account, scope) = match inner.oauth.refresh.get(rt) {
                Some(g) if g.revoked => return invalid_grant("refresh token has been revoked"),
                Some(g) if g.client_id != client_id => {
                    return invalid_grant("refresh token was issued to a different client");
                }
                Some(g) => (g.account.clone(), g.scope.clone()),
                None => return invalid_grant("refresh token is malformed"),
            };
            let rt = rt.clone();
            let at = inner.oauth.new_access(&account, &scope, Some(&rt), now + ttl);
            wire::json_ok(&json!({ "access_token": at, "token_type": "bearer", "expires_in": ttl.as_secs() }))
        }
        Some(other) => wire::oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!("\"{other}\" is not a supported grant_type"),
        ),
    }
}

/// `POST /2/auth/token/revoke` (no arguments, returns `null`).
pub(crate) async fn revoke(State(st): State<Arc<DropboxState>>, headers: HeaderMap, body: Bytes) -> Response {
    let st2 = Arc::clone(&st);
    guarded(&st, Endpoint::Revoke, async move {
        if let Err(r) = super::rpc::parse_void_args("auth/token/revoke", &headers, &body) {
            return r;
        }
        let token = match authenticate(&st2, &headers, None) {
            Ok((_, token)) => token,
            Err(r) => return r,
        };
        st2.lock().oauth.revoke_access(&token);
        wire::null_ok()
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_rfc7636_vector() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    #[test]
    fn bearer_parsing() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h), None);
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().expect("header"));
        assert_eq!(bearer(&h).as_deref(), Some("abc"));
        h.insert(header::AUTHORIZATION, "bearer  xyz ".parse().expect("header"));
        assert_eq!(bearer(&h).as_deref(), Some("xyz"));
        h.insert(header::AUTHORIZATION, "Basic abc".parse().expect("header"));
        assert_eq!(bearer(&h), None);
    }

    #[test]
    fn scope_is_normalised() {
        assert_eq!(
            normalise_scope("files.metadata.read  account_info.read files.metadata.read"),
            "account_info.read files.metadata.read"
        );
    }
}
