//! OAuth 2.0 with Dropbox (provider-apis.md §3.1): authorization code + PKCE S256, offline
//! access, confidential client (client id + secret in the form body, and the PKCE verifier).
//!
//! URL building, code exchange and refresh go through the `oauth2` crate over the shared
//! token-endpoint adapter ([`crate::oauth`]).

use std::borrow::Cow;

use extconn_core::ports::ProviderError;
use extconn_core::ports::provider::AuthorizeRequest;
use extconn_core::{Secret, TokenSet};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointNotSet, EndpointSet,
    PkceCodeVerifier, RedirectUrl, RefreshToken, Scope, TokenUrl,
};
use reqwest::header::AUTHORIZATION;

use super::{Dropbox, DropboxConfig, SCOPES, errors};
use crate::http::{MAX_ERROR_BODY, read_error_body, redact, transport_error};
use crate::oauth::{TokenHttp, token_error, token_set};

type OAuthClient = BasicClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

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

fn token_http(dbx: &Dropbox) -> TokenHttp<'_> {
    TokenHttp { http: &dbx.http, timeout: dbx.cfg.http.rpc_timeout, now: dbx.now() }
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
        let http = token_http(dbx);
        let resp = client
            .exchange_code(AuthorizationCode::new(code.expose().to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.expose().to_owned()))
            .set_redirect_uri(Cow::Owned(redirect_url(redirect_uri)?))
            .request_async(&http)
            .await
            .map_err(token_error)?;
        Ok(token_set(dbx.cfg.clock.now(), &resp, None))
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
        let http = token_http(dbx);
        let rt = RefreshToken::new(refresh_token.expose().to_owned());
        let resp = client.exchange_refresh_token(&rt).request_async(&http).await.map_err(token_error)?;
        Ok(token_set(dbx.cfg.clock.now(), &resp, Some(refresh_token)))
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
