//! OAuth 2.0 with Google (provider-apis.md §1.1): authorization code + PKCE S256,
//! `access_type=offline` and `prompt=consent` (so a reconnect gets a refresh token again),
//! confidential client (client id + secret in the form body, and the PKCE verifier).
//!
//! Google does not rotate refresh tokens: a refresh answer without `refresh_token` keeps the
//! old one (one that carries a new token replaces it). URL building, code exchange and
//! refresh go through the `oauth2` crate over the shared token-endpoint adapter
//! ([`crate::oauth`]). Revocation is `POST {token_base}/revoke` with `token=` in a form body.

use std::borrow::Cow;

use extconn_core::ports::ProviderError;
use extconn_core::ports::provider::AuthorizeRequest;
use extconn_core::{Secret, TokenSet};
use oauth2::basic::{BasicClient, BasicErrorResponse, BasicErrorResponseType};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, Scope, TokenUrl,
};

use super::{GoogleDrive, GoogleDriveConfig, SCOPE};
use crate::http::{MAX_ERROR_BODY, classify_common, read_error_body, redact, snippet, transport_error};
use crate::oauth::{TokenHttp, token_error, token_set};

type OAuthClient = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

fn oauth_client(cfg: &GoogleDriveConfig) -> Result<OAuthClient, ProviderError> {
    let auth = AuthUrl::new(format!("{}/o/oauth2/v2/auth", cfg.authorize_base))
        .map_err(|e| ProviderError::Permanent(format!("invalid Google authorize_base: {e}")))?;
    let token = TokenUrl::new(format!("{}/token", cfg.token_base))
        .map_err(|e| ProviderError::Permanent(format!("invalid Google token_base: {e}")))?;
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

/// `GET {authorize_base}/o/oauth2/v2/auth?response_type=code&client_id&state&redirect_uri`
/// `&scope=…drive.readonly&access_type=offline&prompt=consent&code_challenge`
/// `&code_challenge_method=S256`.
pub(super) fn authorize_url(
    cfg: &GoogleDriveConfig,
    req: &AuthorizeRequest,
) -> Result<String, ProviderError> {
    let state = req.state.expose().to_owned();
    let (url, _state) = oauth_client(cfg)?
        .authorize_url(move || CsrfToken::new(state))
        .set_redirect_uri(Cow::Owned(redirect_url(&req.redirect_uri)?))
        .add_scope(Scope::new(SCOPE.to_owned()))
        .add_extra_param("access_type", "offline")
        .add_extra_param("prompt", "consent")
        .add_extra_param("code_challenge", req.pkce_challenge.clone())
        .add_extra_param("code_challenge_method", "S256")
        .url();
    Ok(url.into())
}

fn token_http(g: &GoogleDrive) -> TokenHttp<'_> {
    TokenHttp { http: &g.http, timeout: g.cfg.http.rpc_timeout, now: g.now() }
}

/// The shared classification, plus Google's `admin_policy_enforced` (a Workspace admin
/// restricted the app or the scope): like `invalid_grant`, only a new consent helps.
fn google_token_error(e: RequestTokenError<ProviderError, BasicErrorResponse>) -> ProviderError {
    if let RequestTokenError::ServerResponse(r) = &e
        && let BasicErrorResponseType::Extension(code) = r.error()
        && code == "admin_policy_enforced"
    {
        return ProviderError::Reauth(code.clone());
    }
    token_error(e)
}

pub(super) async fn exchange_code(
    g: &GoogleDrive,
    code: &Secret,
    pkce_verifier: &Secret,
    redirect_uri: &str,
) -> Result<TokenSet, ProviderError> {
    let secrets = [code.expose(), pkce_verifier.expose(), g.cfg.client_secret.expose()];
    let result = async {
        let client = oauth_client(&g.cfg)?;
        let http = token_http(g);
        let resp = client
            .exchange_code(AuthorizationCode::new(code.expose().to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.expose().to_owned()))
            .set_redirect_uri(Cow::Owned(redirect_url(redirect_uri)?))
            .request_async(&http)
            .await
            .map_err(google_token_error)?;
        Ok(token_set(g.cfg.clock.now(), &resp, None))
    }
    .await;
    result.map_err(|e| redact(e, &secrets))
}

/// `grant_type=refresh_token`. Google normally returns no refresh token: the old one is kept.
pub(super) async fn refresh(g: &GoogleDrive, tokens: &TokenSet) -> Result<TokenSet, ProviderError> {
    let Some(refresh_token) = &tokens.refresh_token else {
        return Err(ProviderError::Reauth("no refresh token".into()));
    };
    let secrets = [refresh_token.expose(), tokens.access_token.expose(), g.cfg.client_secret.expose()];
    let result = async {
        let client = oauth_client(&g.cfg)?;
        let http = token_http(g);
        let rt = RefreshToken::new(refresh_token.expose().to_owned());
        let resp =
            client.exchange_refresh_token(&rt).request_async(&http).await.map_err(google_token_error)?;
        Ok(token_set(g.cfg.clock.now(), &resp, Some(refresh_token)))
    }
    .await;
    result.map_err(|e| redact(e, &secrets))
}

/// `POST {token_base}/revoke`, form body `token=<refresh token>` (or the access token when
/// there is none): revoking the refresh token ends the whole grant. A 400 (`invalid_token`:
/// already revoked or expired) is what revoking wanted, so it is `Ok`.
pub(super) async fn revoke(g: &GoogleDrive, tokens: &TokenSet) -> Result<(), ProviderError> {
    let token = tokens.refresh_token.as_ref().unwrap_or(&tokens.access_token);
    let result = async {
        let resp = g
            .http
            .post(format!("{}/revoke", g.cfg.token_base))
            .timeout(g.cfg.http.rpc_timeout)
            .form(&[("token", token.expose())])
            .send()
            .await
            .map_err(transport_error)?;
        let status = resp.status();
        if status.is_success() || status.as_u16() == 400 {
            return Ok(());
        }
        let headers = resp.headers().clone();
        let body = read_error_body(resp, MAX_ERROR_BODY).await;
        Err(classify_common(status, &headers, g.now()).unwrap_or_else(|| {
            ProviderError::Permanent(format!("revoke endpoint HTTP {status}: {}", snippet(&body)))
        }))
    }
    .await;
    result.map_err(|e| redact(e, &[token.expose(), tokens.access_token.expose()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> GoogleDriveConfig {
        GoogleDriveConfig::new("app.apps.googleusercontent.com", Secret::new("app-secret")).with_bases(
            "https://accounts.example.test/",
            "https://oauth2.example.test",
            "https://api.example.test",
        )
    }

    #[test]
    fn authorize_url_has_every_parameter() {
        let g = GoogleDrive::new(cfg());
        let url = authorize_url(
            &g.cfg,
            &AuthorizeRequest {
                state: Secret::new("st&te=1"),
                pkce_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
                redirect_uri: "https://app.example/v1/oauth/google_drive/callback".into(),
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(url.starts_with("https://accounts.example.test/o/oauth2/v2/auth?"), "{url}");
        let mut q: Vec<(String, String)> = url::Url::parse(&url)
            .unwrap_or_else(|e| panic!("{e}: {url}"))
            .query_pairs()
            .into_owned()
            .collect();
        q.sort();
        let expect: Vec<(String, String)> = [
            ("access_type", "offline"),
            ("client_id", "app.apps.googleusercontent.com"),
            ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "S256"),
            ("prompt", "consent"),
            ("redirect_uri", "https://app.example/v1/oauth/google_drive/callback"),
            ("response_type", "code"),
            ("scope", "https://www.googleapis.com/auth/drive.readonly"),
            ("state", "st&te=1"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(q, expect);
        assert!(!url.contains("app-secret"));
    }

    fn server_error(body: &str) -> RequestTokenError<ProviderError, BasicErrorResponse> {
        RequestTokenError::ServerResponse(serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}")))
    }

    #[test]
    fn token_errors() {
        assert_eq!(
            google_token_error(server_error(
                r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#
            )),
            ProviderError::Reauth("invalid_grant".into())
        );
        assert_eq!(
            google_token_error(server_error(
                r#"{"error":"invalid_client","error_description":"Unauthorized"}"#
            )),
            ProviderError::Config("invalid_client".into())
        );
        assert_eq!(
            google_token_error(server_error(r#"{"error":"admin_policy_enforced"}"#)),
            ProviderError::Reauth("admin_policy_enforced".into())
        );
        assert!(matches!(
            google_token_error(server_error(r#"{"error":"invalid_request"}"#)),
            ProviderError::Permanent(_)
        ));
    }
}
