//! OAuth 2.0 with Dropbox (provider-apis.md §3.1): authorization code + PKCE S256, offline
//! access, confidential client (client id + secret in the form body, and the PKCE verifier).
//!
//! URL building, code exchange and refresh go through the `oauth2` crate over a small adapter
//! on our `reqwest` client. The adapter answers for the HTTP status itself: only a 200, or a
//! 400/401 carrying an OAuth error document, reaches `oauth2`; anything else (429, 5xx, an HTML
//! error page) is classified here, so a 503 is `RateLimited`, not a "parse error".

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use extconn_core::ports::ProviderError;
use extconn_core::ports::provider::AuthorizeRequest;
use extconn_core::{Secret, TokenSet};
use oauth2::basic::{BasicClient, BasicErrorResponse, BasicErrorResponseType, BasicTokenResponse};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenResponse, TokenUrl,
};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap};

use super::{Dropbox, DropboxConfig, SCOPES, errors, expires_at};
use crate::http::{
    MAX_ERROR_BODY, classify_common, read_body, read_error_body, redact, snippet, transport_error,
};

type OAuthClient = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// A token response is a few hundred bytes.
const MAX_TOKEN_BODY: usize = 64 * 1024;

fn oauth_client(cfg: &DropboxConfig) -> Result<OAuthClient, ProviderError> {
    let auth = AuthUrl::new(format!("{}/oauth2/authorize", cfg.www_base))
        .map_err(|e| ProviderError::Permanent(format!("invalid Dropbox www_base: {e}")))?;
    let token = TokenUrl::new(format!("{}/oauth2/token", cfg.api_base))
        .map_err(|e| ProviderError::Permanent(format!("invalid Dropbox api_base: {e}")))?;
    Ok(BasicClient::new(ClientId::new(cfg.client_id.clone()))
        .set_client_secret(ClientSecret::new(cfg.client_secret.expose().to_owned()))
        .set_auth_type(AuthType::RequestBody)
        .set_auth_uri(auth)
        .set_token_uri(token))
}

fn redirect_url(redirect_uri: &str) -> Result<RedirectUrl, ProviderError> {
    RedirectUrl::new(redirect_uri.to_owned())
        .map_err(|e| ProviderError::Permanent(format!("invalid redirect_uri: {e}")))
}

/// `GET {www_base}/oauth2/authorize?response_type=code&client_id&state&redirect_uri&scope`
/// `&token_access_type=offline&code_challenge&code_challenge_method=S256`.
pub(super) fn authorize_url(cfg: &DropboxConfig, req: &AuthorizeRequest) -> Result<String, ProviderError> {
    let state = req.state.expose().to_owned();
    let (url, _state) = oauth_client(cfg)?
        .authorize_url(move || CsrfToken::new(state))
        .set_redirect_uri(Cow::Owned(redirect_url(&req.redirect_uri)?))
        .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
        .add_extra_param("token_access_type", "offline")
        .add_extra_param("code_challenge", req.pkce_challenge.clone())
        .add_extra_param("code_challenge_method", "S256")
        .url();
    Ok(url.into())
}

pub(super) async fn exchange_code(
    dbx: &Dropbox,
    code: &Secret,
    pkce_verifier: &Secret,
    redirect_uri: &str,
) -> Result<TokenSet, ProviderError> {
    let secrets = [code.expose(), pkce_verifier.expose(), dbx.cfg.client_secret.expose()];
    let result = async {
        let client = oauth_client(&dbx.cfg)?;
        let http = TokenHttp(dbx);
        let resp = client
            .exchange_code(AuthorizationCode::new(code.expose().to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.expose().to_owned()))
            .set_redirect_uri(Cow::Owned(redirect_url(redirect_uri)?))
            .request_async(&http)
            .await
            .map_err(token_error)?;
        Ok(token_set(dbx, &resp, None))
    }
    .await;
    result.map_err(|e| redact(e, &secrets))
}

/// `grant_type=refresh_token`. Dropbox returns no refresh token: the old one is kept.
pub(super) async fn refresh(dbx: &Dropbox, tokens: &TokenSet) -> Result<TokenSet, ProviderError> {
    let Some(refresh_token) = &tokens.refresh_token else {
        return Err(ProviderError::Reauth("no refresh token".into()));
    };
    let secrets = [refresh_token.expose(), tokens.access_token.expose(), dbx.cfg.client_secret.expose()];
    let result = async {
        let client = oauth_client(&dbx.cfg)?;
        let http = TokenHttp(dbx);
        let rt = RefreshToken::new(refresh_token.expose().to_owned());
        let resp = client.exchange_refresh_token(&rt).request_async(&http).await.map_err(token_error)?;
        Ok(token_set(dbx, &resp, Some(refresh_token)))
    }
    .await;
    result.map_err(|e| redact(e, &secrets))
}

/// `POST {api_base}/2/auth/token/revoke` with the access token, no body: disables the access
/// token, its refresh token and every access token of that refresh token.
///
/// When the access token is already refused (expired), it is refreshed once and the new one
/// revoked; a refresh answered `invalid_grant` means the grant is already dead, which is what
/// revoking wanted, so that is `Ok`.
pub(super) async fn revoke(dbx: &Dropbox, tokens: &TokenSet) -> Result<(), ProviderError> {
    match revoke_access(dbx, &tokens.access_token).await {
        Err(ProviderError::Unauthorized) if tokens.refresh_token.is_some() => {
            match refresh(dbx, tokens).await {
                Ok(fresh) => revoke_access(dbx, &fresh.access_token).await,
                Err(ProviderError::Reauth(_)) => Ok(()),
                Err(e) => Err(e),
            }
        }
        other => other,
    }
}

async fn revoke_access(dbx: &Dropbox, access: &Secret) -> Result<(), ProviderError> {
    let result = async {
        let resp = dbx
            .http
            .post(format!("{}/2/auth/token/revoke", dbx.cfg.api_base))
            .timeout(dbx.cfg.http.rpc_timeout)
            .header(AUTHORIZATION, super::bearer(access)?)
            .send()
            .await
            .map_err(transport_error)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        let headers = resp.headers().clone();
        let body = read_error_body(resp, MAX_ERROR_BODY).await;
        Err(errors::classify(status, &headers, &body, dbx.now()))
    }
    .await;
    result.map_err(|e| redact(e, &[access.expose()]))
}

fn token_set(dbx: &Dropbox, resp: &BasicTokenResponse, old_refresh: Option<&Secret>) -> TokenSet {
    TokenSet {
        access_token: Secret::new(resp.access_token().secret().clone()),
        refresh_token: resp
            .refresh_token()
            .map(|r| Secret::new(r.secret().clone()))
            .or_else(|| old_refresh.cloned()),
        expires_at: expires_at(dbx.cfg.clock.now(), resp.expires_in()),
    }
}

/// The adapter `oauth2` calls. A named type rather than a closure so that its future is
/// nameable as `Send` (the connector's futures must be).
struct TokenHttp<'a>(&'a Dropbox);

impl<'c> oauth2::AsyncHttpClient<'c> for TokenHttp<'_> {
    type Error = ProviderError;
    type Future = Pin<Box<dyn Future<Output = Result<oauth2::HttpResponse, ProviderError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(token_http(self.0, request))
    }
}

/// One token-endpoint request over our client (timeouts, no redirects).
async fn token_http(dbx: &Dropbox, req: oauth2::HttpRequest) -> Result<oauth2::HttpResponse, ProviderError> {
    let mut req = reqwest::Request::try_from(req).map_err(|e| {
        ProviderError::Permanent(format!("cannot build the token request: {}", e.without_url()))
    })?;
    *req.timeout_mut() = Some(dbx.cfg.http.rpc_timeout);
    let resp = dbx.http.execute(req).await.map_err(transport_error)?;
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = if status == StatusCode::OK {
        read_body(resp, MAX_TOKEN_BODY).await?
    } else {
        read_error_body(resp, MAX_ERROR_BODY).await
    };
    if let Some(err) = classify_token_status(status, &headers, &body, dbx.now()) {
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
fn classify_token_status(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: std::time::SystemTime,
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

/// `invalid_grant` (revoked, expired or unknown code/refresh token) and `invalid_client` →
/// `Reauth`; other OAuth errors → `Permanent`. A malformed 200 never quotes its body (it holds
/// tokens), only where parsing failed.
fn token_error(e: RequestTokenError<ProviderError, BasicErrorResponse>) -> ProviderError {
    match e {
        RequestTokenError::ServerResponse(r) => match r.error() {
            BasicErrorResponseType::InvalidGrant | BasicErrorResponseType::InvalidClient => {
                ProviderError::Reauth(r.error().as_ref().to_owned())
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;
    use reqwest::header::{HeaderValue, RETRY_AFTER};

    fn cfg() -> DropboxConfig {
        DropboxConfig::new("app-key", Secret::new("app-secret")).with_bases(
            "https://www.example.test/",
            "https://api.example.test",
            "https://content.example.test",
        )
    }

    fn query(url: &str) -> Vec<(String, String)> {
        let u = url::Url::parse(url).unwrap_or_else(|e| panic!("{e}: {url}"));
        u.query_pairs().into_owned().collect()
    }

    #[test]
    fn authorize_url_has_every_parameter() {
        let dbx = Dropbox::new(cfg());
        let url = authorize_url(
            &dbx.cfg,
            &AuthorizeRequest {
                state: Secret::new("st&te=1"),
                pkce_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
                redirect_uri: "https://app.example/v1/oauth/dropbox/callback".into(),
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(url.starts_with("https://www.example.test/oauth2/authorize?"), "{url}");
        let mut q = query(&url);
        q.sort();
        let expect: Vec<(String, String)> = [
            ("client_id", "app-key"),
            ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "S256"),
            ("redirect_uri", "https://app.example/v1/oauth/dropbox/callback"),
            ("response_type", "code"),
            ("scope", "account_info.read files.content.read files.metadata.read"),
            ("state", "st&te=1"),
            ("token_access_type", "offline"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(q, expect);
        assert!(!url.contains("app-secret"));
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
            Some(ProviderError::RateLimited { retry_after: Some(Duration::from_secs(30)) })
        );
        assert_eq!(
            classify_token_status(StatusCode::TOO_MANY_REQUESTS, &h, b"", now),
            Some(ProviderError::RateLimited { retry_after: None })
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
            ProviderError::Reauth("invalid_client".into())
        );
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
        let client = oauth_client(&cfg()).unwrap_or_else(|e| panic!("{e}"));
        let fake = move |_req: oauth2::HttpRequest| {
            let resp = resp.clone();
            async move { Ok::<_, ProviderError>(resp) }
        };
        let rt = RefreshToken::new("r".into());
        let fut = client.exchange_refresh_token(&rt).request_async(&fake);
        match futures::executor::block_on(fut) {
            Err(e) => e,
            Ok(_) => panic!("parsed"),
        }
    }

    #[test]
    fn token_set_expiry_and_kept_refresh_token() {
        let dbx = Dropbox::new(cfg());
        let resp: BasicTokenResponse = serde_json::from_str(
            r#"{"access_token":"sl.u.AF","expires_in":14400,"token_type":"bearer",
                "scope":"account_info.read files.content.read files.metadata.read",
                "account_id":"dbid:AAH4f99","uid":"12345"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let before = dbx.cfg.clock.now();
        let t = token_set(&dbx, &resp, Some(&Secret::new("old-rt")));
        assert_eq!(t.access_token.expose(), "sl.u.AF");
        assert_eq!(t.refresh_token.as_ref().map(Secret::expose), Some("old-rt"));
        let secs = (t.expires_at.unwrap_or(before) - before).num_seconds();
        assert!((14_399..=14_401).contains(&secs), "{secs}");

        let resp: BasicTokenResponse =
            serde_json::from_str(r#"{"access_token":"a","token_type":"bearer","refresh_token":"new-rt"}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        let t = token_set(&dbx, &resp, Some(&Secret::new("old-rt")));
        assert_eq!(t.refresh_token.as_ref().map(Secret::expose), Some("new-rt"));
        assert_eq!(t.expires_at, None);
    }
}
