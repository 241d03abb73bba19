//! OAuth 2.0 on the Microsoft identity platform v2 (provider-apis.md §2.1): authorization code
//! with PKCE S256, confidential client (id + secret in the form body), `offline_access` for a
//! refresh token. Every refresh answers a **new** refresh token (the old one stays valid until
//! its own expiry): the token set returned carries it, and the token use case stores it
//! (single-flight per grant is its job).
//!
//! `invalid_grant`, `interaction_required`, `consent_required` → `Reauth`; `invalid_client` →
//! `Config` (see [`crate::oauth::token_error`]).

use std::borrow::Cow;

use extconn_core::ports::ProviderError;
use extconn_core::ports::provider::AuthorizeRequest;
use extconn_core::{Secret, TokenSet};
use oauth2::{CsrfToken, Scope};

use super::{SCOPES, SharePoint, SharePointConfig};
use crate::oauth::{self, OAuthClient, TokenHttp, redirect_url};

fn oauth_client(cfg: &SharePointConfig) -> Result<OAuthClient, ProviderError> {
    let authority = format!("{}/{}/oauth2/v2.0", cfg.login_base, cfg.tenant);
    oauth::oauth_client(
        "SharePoint",
        &cfg.client_id,
        &cfg.client_secret,
        format!("{authority}/authorize"),
        format!("{authority}/token"),
    )
}

/// `GET {login_base}/{tenant}/oauth2/v2.0/authorize?client_id&response_type=code&redirect_uri`
/// `&response_mode=query&scope&state&code_challenge&code_challenge_method=S256&prompt=select_account`.
///
/// `prompt=select_account`, not `consent`: the admin connecting a library is often signed in
/// to several Microsoft accounts (their own and a service account), and must choose which one
/// the connection reads as; `consent` would force the consent screen on every reconnect even
/// where consent was given (or granted tenant-wide by an admin, where users may not consent at
/// all). A missing consent is asked for by the platform anyway.
pub(super) fn authorize_url(cfg: &SharePointConfig, req: &AuthorizeRequest) -> Result<String, ProviderError> {
    let state = req.state.expose().to_owned();
    let (url, _state) = oauth_client(cfg)?
        .authorize_url(move || CsrfToken::new(state))
        .set_redirect_uri(Cow::Owned(redirect_url(&req.redirect_uri)?))
        .add_scopes(SCOPES.iter().map(|s| Scope::new((*s).to_owned())))
        .add_extra_param("response_mode", "query")
        .add_extra_param("code_challenge", req.pkce_challenge.clone())
        .add_extra_param("code_challenge_method", "S256")
        .add_extra_param("prompt", "select_account")
        .url();
    Ok(url.into())
}

fn token_http(sp: &SharePoint) -> TokenHttp<'_> {
    TokenHttp { http: &sp.http, timeout: sp.cfg.http.rpc_timeout, now: sp.now() }
}

pub(super) async fn exchange_code(
    sp: &SharePoint,
    code: &Secret,
    pkce_verifier: &Secret,
    redirect_uri: &str,
) -> Result<TokenSet, ProviderError> {
    let client = oauth_client(&sp.cfg)?;
    let now = sp.cfg.clock.now();
    oauth::exchange_code(
        &client,
        &token_http(sp),
        now,
        code,
        pkce_verifier,
        redirect_uri,
        &sp.cfg.client_secret,
    )
    .await
}

/// `grant_type=refresh_token` with `scope` (the v2 endpoint's refresh names the scopes again).
/// The answer's new refresh token replaces the old one in the result.
pub(super) async fn refresh(sp: &SharePoint, tokens: &TokenSet) -> Result<TokenSet, ProviderError> {
    let client = oauth_client(&sp.cfg)?;
    oauth::refresh_with_scopes(
        &client,
        &token_http(sp),
        sp.cfg.clock.now(),
        tokens,
        &sp.cfg.client_secret,
        &SCOPES,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(url: &str) -> Vec<(String, String)> {
        let u = url::Url::parse(url).unwrap_or_else(|e| panic!("{e}: {url}"));
        u.query_pairs().into_owned().collect()
    }

    #[test]
    fn authorize_url_has_every_parameter() {
        let sp = SharePoint::new(
            SharePointConfig::new("app-id", Secret::new("app-secret"))
                .with_bases("https://login.example.test/", "https://graph.example.test")
                .with_tenant("contoso.onmicrosoft.com"),
        );
        let url = authorize_url(
            &sp.cfg,
            &AuthorizeRequest {
                state: Secret::new("st&te=1"),
                pkce_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into(),
                redirect_uri: "https://app.example/v1/oauth/sharepoint/callback".into(),
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            url.starts_with("https://login.example.test/contoso.onmicrosoft.com/oauth2/v2.0/authorize?"),
            "{url}"
        );
        let mut q = query(&url);
        q.sort();
        let expect: Vec<(String, String)> = [
            ("client_id", "app-id"),
            ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "S256"),
            ("prompt", "select_account"),
            ("redirect_uri", "https://app.example/v1/oauth/sharepoint/callback"),
            ("response_mode", "query"),
            ("response_type", "code"),
            ("scope", "offline_access User.Read Files.Read.All Sites.Read.All"),
            ("state", "st&te=1"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(q, expect);
        assert!(!url.contains("app-secret"));
    }
}
