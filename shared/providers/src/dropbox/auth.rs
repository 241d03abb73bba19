//! OAuth 2.0 with Dropbox (provider-apis.md §3.1): authorization code + PKCE S256, offline
//! access, confidential client (client id + secret in the form body, and the PKCE verifier).
//!
//! URL building, code exchange and refresh go through the `oauth2` crate over the shared
//! token-endpoint adapter ([`crate::oauth`]).

use std::borrow::Cow;

use extconn_core::ports::ProviderError;
use extconn_core::ports::provider::AuthorizeRequest;
use extconn_core::{Secret, TokenSet};
use oauth2::{CsrfToken, Scope};
use reqwest::header::AUTHORIZATION;

use super::{Dropbox, DropboxConfig, SCOPES, errors};
use crate::http::{MAX_ERROR_BODY, read_error_body, redact, transport_error};
use crate::oauth::{self, OAuthClient, TokenHttp, redirect_url};

fn oauth_client(cfg: &DropboxConfig) -> Result<OAuthClient, ProviderError> {
    oauth::oauth_client(
        "Dropbox",
        &cfg.client_id,
        &cfg.client_secret,
        format!("{}/oauth2/authorize", cfg.www_base),
        format!("{}/oauth2/token", cfg.api_base),
    )
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

fn token_http(dbx: &Dropbox) -> TokenHttp<'_> {
    TokenHttp { http: &dbx.http, timeout: dbx.cfg.http.rpc_timeout, now: dbx.now() }
}

pub(super) async fn exchange_code(
    dbx: &Dropbox,
    code: &Secret,
    pkce_verifier: &Secret,
    redirect_uri: &str,
) -> Result<TokenSet, ProviderError> {
    let client = oauth_client(&dbx.cfg)?;
    let now = dbx.cfg.clock.now();
    oauth::exchange_code(
        &client,
        &token_http(dbx),
        now,
        code,
        pkce_verifier,
        redirect_uri,
        &dbx.cfg.client_secret,
    )
    .await
}

/// `grant_type=refresh_token`. Dropbox returns no refresh token: the old one is kept.
pub(super) async fn refresh(dbx: &Dropbox, tokens: &TokenSet) -> Result<TokenSet, ProviderError> {
    let client = oauth_client(&dbx.cfg)?;
    oauth::refresh(&client, &token_http(dbx), dbx.cfg.clock.now(), tokens, &dbx.cfg.client_secret).await
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
