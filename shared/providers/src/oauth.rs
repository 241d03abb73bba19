//! OAuth 2.0 pieces every connector shares: the confidential client (code exchange with PKCE
//! and refresh, secrets redacted from every error), the token-endpoint adapter `oauth2` calls
//! over our `reqwest` client, the classification of what a token endpoint answers, and token
//! sets. A connector adds only what is its own: the authorize URL's extra parameters, revoke.
//!
//! The adapter answers for the HTTP status itself: only a 200, or a 400/401 carrying an OAuth
//! error document, reaches `oauth2`; anything else (429, 5xx, an HTML error page) is classified
//! here, so a 503 is `RateLimited`, not a "parse error". A malformed 200 is never quoted (it
//! holds tokens).

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use extconn_core::ports::ProviderError;
use extconn_core::{Secret, Timestamp, TokenSet};
use oauth2::basic::{BasicClient, BasicErrorResponse, BasicErrorResponseType, BasicTokenResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, EndpointNotSet, EndpointSet,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, TokenResponse, TokenUrl,
};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};

use crate::http::{
    MAX_ERROR_BODY, classify_common, read_body, read_error_body, redact, snippet, transport_error,
};

/// A confidential client with its authorize and token endpoints (id + secret in the form body).
pub type OAuthClient = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// The client of `client_id` / `client_secret` at these endpoints. `provider` names the
/// connector's base settings in the error when a URL is invalid.
pub fn oauth_client(
    provider: &str,
    client_id: &str,
    client_secret: &Secret,
    authorize_url: String,
    token_url: String,
) -> Result<OAuthClient, ProviderError> {
    let auth = AuthUrl::new(authorize_url)
        .map_err(|e| ProviderError::Permanent(format!("invalid {provider} authorize URL: {e}")))?;
    let token = TokenUrl::new(token_url)
        .map_err(|e| ProviderError::Permanent(format!("invalid {provider} token URL: {e}")))?;
    Ok(BasicClient::new(ClientId::new(client_id.to_owned()))
        .set_client_secret(ClientSecret::new(client_secret.expose().to_owned()))
        .set_auth_type(AuthType::RequestBody)
        .set_auth_uri(auth)
        .set_token_uri(token))
}

pub fn redirect_url(redirect_uri: &str) -> Result<RedirectUrl, ProviderError> {
    RedirectUrl::new(redirect_uri.to_owned())
        .map_err(|e| ProviderError::Permanent(format!("invalid redirect_uri: {e}")))
}

/// `grant_type=authorization_code` with the PKCE verifier. The code, verifier and client secret
/// never appear in an error.
pub async fn exchange_code(
    client: &OAuthClient,
    http: &TokenHttp<'_>,
    now: Timestamp,
    code: &Secret,
    pkce_verifier: &Secret,
    redirect_uri: &str,
    client_secret: &Secret,
) -> Result<TokenSet, ProviderError> {
    let secrets = [code.expose(), pkce_verifier.expose(), client_secret.expose()];
    let result = async {
        let resp = client
            .exchange_code(AuthorizationCode::new(code.expose().to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.expose().to_owned()))
            .set_redirect_uri(Cow::Owned(redirect_url(redirect_uri)?))
            .request_async(http)
            .await
            .map_err(token_error)?;
        Ok(token_set(now, &resp, None))
    }
    .await;
    result.map_err(|e| redact(e, &secrets))
}

/// `grant_type=refresh_token`. An answer without a refresh token keeps the old one (see
/// [`token_set`]). No refresh token at all is `Reauth`.
pub async fn refresh(
    client: &OAuthClient,
    http: &TokenHttp<'_>,
    now: Timestamp,
    tokens: &TokenSet,
    client_secret: &Secret,
) -> Result<TokenSet, ProviderError> {
    refresh_with_scopes(client, http, now, tokens, client_secret, &[]).await
}

/// [`refresh`] sending `scope` too (Microsoft's v2 token endpoint expects the scopes on a
/// refresh; an empty list sends none).
pub async fn refresh_with_scopes(
    client: &OAuthClient,
    http: &TokenHttp<'_>,
    now: Timestamp,
    tokens: &TokenSet,
    client_secret: &Secret,
    scopes: &[&str],
) -> Result<TokenSet, ProviderError> {
    let Some(refresh_token) = &tokens.refresh_token else {
        return Err(ProviderError::Reauth("no refresh token".into()));
    };
    let secrets = [refresh_token.expose(), tokens.access_token.expose(), client_secret.expose()];
    let result = async {
        let rt = RefreshToken::new(refresh_token.expose().to_owned());
        let resp = client
            .exchange_refresh_token(&rt)
            .add_scopes(scopes.iter().map(|s| oauth2::Scope::new((*s).to_owned())))
            .request_async(http)
            .await
            .map_err(token_error)?;
        Ok(token_set(now, &resp, Some(refresh_token)))
    }
    .await;
    result.map_err(|e| redact(e, &secrets))
}

/// A token response is a few hundred bytes.
const MAX_TOKEN_BODY: usize = 64 * 1024;

/// The adapter `oauth2` calls: one token-endpoint request over our client (timeouts, no
/// redirects). A named type rather than a closure so that its future is nameable as `Send`
/// (the connectors' futures must be).
#[derive(Debug)]
pub struct TokenHttp<'a> {
    pub http: &'a reqwest::Client,
    pub timeout: Duration,
    pub now: SystemTime,
}

impl<'c> oauth2::AsyncHttpClient<'c> for TokenHttp<'_> {
    type Error = ProviderError;
    type Future = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, ProviderError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(token_http(self, request))
    }
}

async fn token_http(
    t: &TokenHttp<'_>,
    req: oauth2::HttpRequest,
) -> Result<oauth2::HttpResponse, ProviderError> {
    let mut req = reqwest::Request::try_from(req).map_err(|e| {
        ProviderError::Permanent(format!("cannot build the token request: {}", e.without_url()))
    })?;
    *req.timeout_mut() = Some(t.timeout);
    let resp = t.http.execute(req).await.map_err(transport_error)?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = if status == StatusCode::OK {
        read_body(resp, MAX_TOKEN_BODY).await?
    } else {
        read_error_body(resp, MAX_ERROR_BODY).await
    };
    if let Some(err) = classify_token_status(status, &headers, &body, t.now) {
        return Err(err);
    }
    let mut out = http::Response::builder().status(status);
    if let Some(ct) = headers.get(CONTENT_TYPE) {
        out = out.header(CONTENT_TYPE, ct);
    }
    out.body(body.to_vec()).map_err(|e| ProviderError::Permanent(format!("token response: {e}")))
}

/// `None` when `oauth2` should read the answer: a 200, or a 400/401 with an OAuth error
/// document (`{"error": "invalid_grant", ...}`). Otherwise the classified error.
pub fn classify_token_status(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: SystemTime,
) -> Option<ProviderError> {
    if status == StatusCode::OK {
        return None;
    }
    if matches!(status.as_u16(), 400 | 401) && is_oauth_error(body) {
        return None;
    }
    Some(classify_common(status, headers, now).unwrap_or_else(|| {
        ProviderError::Permanent(format!("token endpoint HTTP {status}: {}", snippet(body)))
    }))
}

fn is_oauth_error(body: &[u8]) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .is_some_and(|v| v.get("error").is_some_and(|e| e.is_string()))
}

/// `invalid_grant` (revoked, expired or unknown code/refresh token) → `Reauth`: the user must
/// reconnect; so is Google's `admin_policy_enforced` (a Workspace admin restricted the app or
/// the scope: only a new consent helps), and OpenID Connect's `interaction_required` /
/// `consent_required` (Microsoft: Conditional Access or a consent the user must give again). `invalid_client` / `unauthorized_client` → `Config`:
/// our app is refused, which no user can fix (ARCHITECTURE §7 "Configuration errors"). Other
/// OAuth errors → `Permanent`.
pub fn token_error(e: RequestTokenError<ProviderError, BasicErrorResponse>) -> ProviderError {
    match e {
        RequestTokenError::ServerResponse(r) => match r.error() {
            BasicErrorResponseType::InvalidGrant => ProviderError::Reauth(r.error().as_ref().to_owned()),
            BasicErrorResponseType::Extension(code)
                if matches!(
                    code.as_str(),
                    "admin_policy_enforced" | "interaction_required" | "consent_required"
                ) =>
            {
                ProviderError::Reauth(code.clone())
            }
            BasicErrorResponseType::InvalidClient | BasicErrorResponseType::UnauthorizedClient => {
                ProviderError::Config(r.error().as_ref().to_owned())
            }
            other => ProviderError::Permanent(format!("token endpoint refused: {}", other.as_ref())),
        },
        RequestTokenError::Request(e) => e,
        RequestTokenError::Parse(e, _body) => {
            ProviderError::Permanent(format!("malformed token response (at `{}`)", e.path()))
        }
        RequestTokenError::Other(m) => ProviderError::Permanent(format!("token endpoint: {m}")),
    }
}

/// The token set of a token response, as of `now`. A response without a refresh token keeps
/// `old_refresh` (Dropbox and Google never send a new one on refresh); one with a refresh
/// token carries it (Microsoft rotates on every refresh: the newest must be stored).
pub fn token_set(now: Timestamp, resp: &BasicTokenResponse, old_refresh: Option<&Secret>) -> TokenSet {
    TokenSet {
        access_token: Secret::new(resp.access_token().secret().clone()),
        refresh_token: resp
            .refresh_token()
            .map(|r| Secret::new(r.secret().clone()))
            .or_else(|| old_refresh.cloned()),
        expires_at: resp
            .expires_in()
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .and_then(|d| now.checked_add_signed(d)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    /// A token request is bounded by the HTTP clients' RPC timeout (connect included); the
    /// grant's refresh lock must outlive it, or a second worker could refresh the same token
    /// while the first request is still in flight.
    #[test]
    fn the_refresh_lock_outlives_a_token_request() {
        let lock = extconn_core::tokens::TokenPolicy::default().lock_ttl;
        let request = crate::http::HttpConfig::default().rpc_timeout;
        assert!(lock > request, "refresh lock {lock:?} <= token request timeout {request:?}");
    }

    #[test]
    fn token_endpoint_statuses() {
        let now = SystemTime::now();
        let h = HeaderMap::new();
        let invalid_grant =
            br#"{"error":"invalid_grant","error_description":"refresh token is invalid or revoked"}"#;
        assert_eq!(classify_token_status(StatusCode::OK, &h, b"{}", now), None);
        assert_eq!(classify_token_status(StatusCode::BAD_REQUEST, &h, invalid_grant, now), None);
        assert_eq!(
            classify_token_status(StatusCode::UNAUTHORIZED, &h, br#"{"error":"invalid_client"}"#, now),
            None
        );
        let mut ra = HeaderMap::new();
        ra.insert(RETRY_AFTER, HeaderValue::from_static("30"));
        assert_eq!(
            classify_token_status(StatusCode::SERVICE_UNAVAILABLE, &ra, b"<html>down</html>", now),
            Some(ProviderError::rate_limited(Some(Duration::from_secs(30))))
        );
        assert_eq!(
            classify_token_status(StatusCode::TOO_MANY_REQUESTS, &h, b"", now),
            Some(ProviderError::rate_limited(None))
        );
        assert!(matches!(
            classify_token_status(StatusCode::BAD_GATEWAY, &h, b"<html>", now),
            Some(ProviderError::Transient(_))
        ));
        assert!(matches!(
            classify_token_status(StatusCode::BAD_REQUEST, &h, b"invalid client_id", now),
            Some(ProviderError::Permanent(m)) if m.contains("invalid client_id")
        ));
    }

    fn server_error(body: &str) -> RequestTokenError<ProviderError, BasicErrorResponse> {
        RequestTokenError::ServerResponse(serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn oauth_errors() {
        assert_eq!(
            token_error(server_error(
                r#"{"error":"invalid_grant","error_description":"code doesn't exist or has expired"}"#
            )),
            ProviderError::Reauth("invalid_grant".into())
        );
        assert_eq!(
            token_error(server_error(r#"{"error":"invalid_client"}"#)),
            ProviderError::Config("invalid_client".into()),
            "our app refused is not the user's to fix"
        );
        for code in ["interaction_required", "consent_required"] {
            assert_eq!(
                token_error(server_error(&format!(r#"{{"error":"{code}","error_codes":[50076]}}"#))),
                ProviderError::Reauth(code.into())
            );
        }
        assert!(matches!(
            token_error(server_error(r#"{"error":"invalid_request","error_description":"No auth function available"}"#)),
            ProviderError::Permanent(m) if m.contains("invalid_request")
        ));
        assert_eq!(
            token_error(RequestTokenError::Request(ProviderError::CursorReset)),
            ProviderError::CursorReset
        );
    }

    #[test]
    fn a_malformed_token_response_never_quotes_its_body() {
        let body = br#"{"access_token":"sl.CANARY-AT","token_type":"bearer","expires_in":"soon"}"#;
        let parsed = serde_path_to_error_free_parse(body);
        let e = token_error(parsed);
        let shown = format!("{e:?} {e}");
        assert!(!shown.contains("CANARY"), "{shown}");
        assert!(shown.contains("expires_in"), "{shown}");
    }

    /// Reproduces the `Parse` error `oauth2` builds for a 200 it cannot read.
    fn serde_path_to_error_free_parse(body: &[u8]) -> RequestTokenError<ProviderError, BasicErrorResponse> {
        let resp = http::Response::builder()
            .status(200)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .unwrap_or_default();
        let client = oauth2::basic::BasicClient::new(oauth2::ClientId::new("app".into())).set_token_uri(
            oauth2::TokenUrl::new("https://token.example.test/t".into()).unwrap_or_else(|e| panic!("{e}")),
        );
        let fake = move |_req: oauth2::HttpRequest| {
            let resp = resp.clone();
            async move { Ok::<_, ProviderError>(resp) }
        };
        let rt = oauth2::RefreshToken::new("r".into());
        let fut = client.exchange_refresh_token(&rt).request_async(&fake);
        match futures::executor::block_on(fut) {
            Err(e) => e,
            Ok(_) => panic!("parsed"),
        }
    }

    #[test]
    fn token_set_expiry_and_kept_refresh_token() {
        let resp: BasicTokenResponse = serde_json::from_str(
            r#"{"access_token":"sl.u.AF","expires_in":14400,"token_type":"bearer",
                "scope":"account_info.read files.content.read files.metadata.read",
                "account_id":"dbid:AAH4f99","uid":"12345"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let before = chrono::Utc::now();
        let t = token_set(before, &resp, Some(&Secret::new("old-rt")));
        assert_eq!(t.access_token.expose(), "sl.u.AF");
        assert_eq!(t.refresh_token.as_ref().map(Secret::expose), Some("old-rt"));
        let secs = (t.expires_at.unwrap_or(before) - before).num_seconds();
        assert!((14_399..=14_401).contains(&secs), "{secs}");

        let resp: BasicTokenResponse =
            serde_json::from_str(r#"{"access_token":"a","token_type":"bearer","refresh_token":"new-rt"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        let t = token_set(before, &resp, Some(&Secret::new("old-rt")));
        assert_eq!(t.refresh_token.as_ref().map(Secret::expose), Some("new-rt"));
        assert_eq!(t.expires_at, None);
    }
}
