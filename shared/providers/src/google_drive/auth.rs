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
use oauth2::{CsrfToken, Scope};

use super::{GoogleDrive, GoogleDriveConfig, SCOPE};
use crate::http::{MAX_ERROR_BODY, classify_common, read_error_body, redact, snippet, transport_error};
use crate::oauth::{self, OAuthClient, TokenHttp, redirect_url};

fn oauth_client(cfg: &GoogleDriveConfig) -> Result<OAuthClient, ProviderError> {
    oauth::oauth_client(
        "Google",
        &cfg.client_id,
        &cfg.client_secret,
        format!("{}/o/oauth2/v2/auth", cfg.authorize_base),
        format!("{}/token", cfg.token_base),
    )
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

pub(super) async fn exchange_code(
    g: &GoogleDrive,
    code: &Secret,
    pkce_verifier: &Secret,
    redirect_uri: &str,
) -> Result<TokenSet, ProviderError> {
    let client = oauth_client(&g.cfg)?;
    let now = g.cfg.clock.now();
    oauth::exchange_code(
        &client,
        &token_http(g),
        now,
        code,
        pkce_verifier,
        redirect_uri,
        &g.cfg.client_secret,
    )
    .await
}

/// `grant_type=refresh_token`. Google normally returns no refresh token: the old one is kept.
pub(super) async fn refresh(g: &GoogleDrive, tokens: &TokenSet) -> Result<TokenSet, ProviderError> {
    let client = oauth_client(&g.cfg)?;
    oauth::refresh(&client, &token_http(g), g.cfg.clock.now(), tokens, &g.cfg.client_secret).await
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
    use oauth2::RequestTokenError;
    use oauth2::basic::BasicErrorResponse;

    use super::*;
    use crate::oauth::token_error;

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
            token_error(server_error(
                r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#
            )),
            ProviderError::Reauth("invalid_grant".into())
        );
        assert_eq!(
            token_error(server_error(r#"{"error":"invalid_client","error_description":"Unauthorized"}"#)),
            ProviderError::Config("invalid_client".into())
        );
        assert_eq!(
            token_error(server_error(r#"{"error":"admin_policy_enforced"}"#)),
            ProviderError::Reauth("admin_policy_enforced".into())
        );
        assert!(matches!(
            token_error(server_error(r#"{"error":"invalid_request"}"#)),
            ProviderError::Permanent(_)
        ));
    }
}
