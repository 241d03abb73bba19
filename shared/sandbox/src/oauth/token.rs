//! The token endpoint's logic: client authentication, the `authorization_code` and
//! `refresh_token` grants. The provider renders the outcome ([`Issued`] or
//! [`TokenError`]) in its own JSON.

use std::fmt;

use axum::http::{HeaderMap, StatusCode, header};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use super::{CODE_TTL, Challenge, ChallengeMethod, OAuthServer, Params, parse_form};

/// Which grant the token request used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GrantType {
    AuthorizationCode,
    RefreshToken,
}

/// Tokens issued by the token endpoint.
pub(crate) struct Issued {
    pub(crate) grant: GrantType,
    pub(crate) access_token: String,
    /// Only for an `authorization_code` grant that asked for offline access.
    pub(crate) refresh_token: Option<String>,
    pub(crate) expires_in: u64,
    /// Granted scopes, space-separated, sorted.
    pub(crate) scope: String,
    pub(crate) account: String,
    /// The client the tokens were issued to.
    pub(crate) client_id: String,
    /// Code exchanges: the authorize request's `prompt` parameter.
    pub(crate) prompt: Option<String>,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("grant", &self.grant)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

/// An RFC 6749 §5.2 error: `status` with `{"error": error, "error_description": …}`
/// in the provider's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TokenError {
    pub(crate) status: StatusCode,
    pub(crate) error: &'static str,
    pub(crate) description: String,
}

fn invalid_grant(desc: &str) -> TokenError {
    TokenError { status: StatusCode::BAD_REQUEST, error: "invalid_grant", description: desc.to_string() }
}

fn invalid_request(desc: &str) -> TokenError {
    TokenError { status: StatusCode::BAD_REQUEST, error: "invalid_request", description: desc.to_string() }
}

fn invalid_client(desc: &str) -> TokenError {
    TokenError { status: StatusCode::UNAUTHORIZED, error: "invalid_client", description: desc.to_string() }
}

/// `base64url_nopad(SHA256(verifier))` (RFC 7636 §4.2).
pub(crate) fn pkce_s256(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

impl Challenge {
    fn verify(&self, verifier: &str) -> bool {
        match self.method {
            ChallengeMethod::S256 => pkce_s256(verifier) == self.value,
            ChallengeMethod::Plain => verifier == self.value,
        }
    }
}

/// `(client_id, client_secret)` from HTTP Basic (form-urlencoded parts, RFC 6749
/// §2.3.1) or from the body.
fn client_credentials(headers: &HeaderMap, form: &Params) -> Result<(String, Option<String>), TokenError> {
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

impl OAuthServer {
    /// The token endpoint (`POST`, form body).
    pub(crate) fn token(&self, headers: &HeaderMap, body: &[u8]) -> Result<Issued, TokenError> {
        let ctype = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
        if !ctype.to_ascii_lowercase().starts_with("application/x-www-form-urlencoded") {
            return Err(invalid_request("Content-Type must be application/x-www-form-urlencoded."));
        }
        let form = parse_form(body);
        let now = self.now();
        if let Some(v) = form.get("code_verifier") {
            self.lock().record_canary(v);
        }
        let (client_id, secret) = client_credentials(headers, &form)?;
        let client = self.client(&client_id).ok_or_else(|| invalid_client("Invalid client_id."))?;
        if !client.client_secret.is_empty() && secret.as_deref() != Some(client.client_secret.as_str()) {
            return Err(invalid_client(
                "Invalid client_secret (this app is confidential and must send its secret).",
            ));
        }
        let s = &self.settings;
        let ttl = s.access_token_ttl;
        let mut st = self.lock();
        match form.get("grant_type").map(String::as_str) {
            None => Err(invalid_request("No grant_type given.")),
            Some("authorization_code") => {
                let code = form.get("code").ok_or_else(|| invalid_request("No code given."))?;
                let grant = st
                    .codes
                    .get_mut(code)
                    .ok_or_else(|| invalid_grant("code doesn't exist or has expired"))?;
                if grant.used {
                    return Err(invalid_grant("code has already been used"));
                }
                grant.used = true;
                if now >= grant.issued + CODE_TTL {
                    return Err(invalid_grant("code doesn't exist or has expired"));
                }
                if grant.req.client_id != client_id {
                    return Err(invalid_grant("code was issued to a different client"));
                }
                if form.get("redirect_uri") != grant.req.redirect_uri.as_ref() {
                    return Err(invalid_grant("redirect_uri mismatch"));
                }
                if let Some(ch) = &grant.req.challenge {
                    match form.get("code_verifier") {
                        None => return Err(invalid_grant("code_verifier is required (PKCE)")),
                        Some(v) if !ch.verify(v) => return Err(invalid_grant("invalid code_verifier")),
                        Some(_) => {}
                    }
                }
                let (account, scope, offline, prompt) = (
                    grant.account.clone(),
                    grant.req.scope.clone(),
                    grant.req.offline,
                    grant.req.prompt.clone(),
                );
                if st.account(&account).is_none() {
                    return Err(invalid_grant("account no longer exists"));
                }
                let rt_expiry = s.refresh_ttl.map(|ttl| now + ttl);
                let rt = offline
                    .then(|| st.new_refresh(s.refresh_prefix, &client_id, &account, &scope, rt_expiry));
                let at = st.new_access(s.access_prefix, &account, &scope, rt.as_deref(), now + ttl);
                Ok(Issued {
                    grant: GrantType::AuthorizationCode,
                    access_token: at,
                    refresh_token: rt,
                    expires_in: ttl.as_secs(),
                    scope,
                    account,
                    client_id,
                    prompt,
                })
            }
            Some("refresh_token") => {
                let rt =
                    form.get("refresh_token").ok_or_else(|| invalid_request("No refresh_token given."))?;
                let (account, scope) = match st.refresh.get(rt) {
                    Some(g) if g.revoked => return Err(invalid_grant("refresh token has been revoked")),
                    Some(g) if g.force_expired || g.expires_at.is_some_and(|e| now >= e) => {
                        return Err(invalid_grant("refresh token has expired"));
                    }
                    Some(g) if g.client_id != client_id => {
                        return Err(invalid_grant("refresh token was issued to a different client"));
                    }
                    Some(g) => (g.account.clone(), g.scope.clone()),
                    None => return Err(invalid_grant("refresh token is malformed")),
                };
                let rt = rt.clone();
                // A rotated token starts a new grant for revocation purposes; the one
                // used stays valid (until its own expiry) as Microsoft's does.
                let rotated = s.rotate_refresh.then(|| {
                    let expiry = s.refresh_ttl.map(|ttl| now + ttl);
                    st.new_refresh(s.refresh_prefix, &client_id, &account, &scope, expiry)
                });
                let parent = rotated.as_deref().unwrap_or(&rt);
                let at = st.new_access(s.access_prefix, &account, &scope, Some(parent), now + ttl);
                Ok(Issued {
                    grant: GrantType::RefreshToken,
                    access_token: at,
                    refresh_token: rotated,
                    expires_in: ttl.as_secs(),
                    scope,
                    account,
                    client_id,
                    prompt: None,
                })
            }
            Some(other) => Err(TokenError {
                status: StatusCode::BAD_REQUEST,
                error: "unsupported_grant_type",
                description: format!("\"{other}\" is not a supported grant_type"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::super::tests::server;
    use super::*;
    use crate::{OAuthClient, Service};

    #[test]
    fn pkce_rfc7636_vector() {
        assert_eq!(
            pkce_s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
    }

    fn form_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-www-form-urlencoded"));
        h
    }

    #[test]
    fn code_exchange_issues_a_refresh_token_only_when_offline_and_codes_burn() {
        let s = server(vec![OAuthClient {
            service: Service::Dropbox,
            client_id: "app".into(),
            client_secret: "shh".into(),
            redirect_uris: vec!["http://localhost/cb".into()],
        }]);
        s.set_auto_approve(true);
        let code_of = |extra: &str| -> String {
            let r = s.authorize(&format!(
                "client_id=app&response_type=code&redirect_uri=http%3A%2F%2Flocalhost%2Fcb{extra}"
            ));
            let loc = r.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let code = loc.split("code=").nth(1).unwrap_or_default();
            assert!(code.starts_with("CODE-"), "{loc}");
            code.to_string()
        };
        let exchange = |code: &str| {
            s.token(
                &form_headers(),
                format!(
                    "grant_type=authorization_code&code={code}&redirect_uri=http%3A%2F%2Flocalhost%2Fcb\
                     &client_id=app&client_secret=shh"
                )
                .as_bytes(),
            )
        };
        let online = exchange(&code_of("")).expect("issued");
        assert_eq!((online.grant, online.refresh_token.is_none()), (GrantType::AuthorizationCode, true));
        assert_eq!(
            (online.account.as_str(), online.scope.as_str(), online.expires_in),
            ("u1", "read write", 3600)
        );

        let code = code_of("&access_type=offline&scope=write+read+write");
        let offline = exchange(&code).expect("issued");
        let rt = offline.refresh_token.clone().expect("offline access gives a refresh token");
        assert_eq!(offline.scope, "read write");
        assert!(
            !format!("{offline:?}").contains(&rt) && !format!("{offline:?}").contains(&offline.access_token)
        );
        assert_eq!(exchange(&code).map(|i| i.account).map_err(|e| e.error), Err("invalid_grant"));

        let refreshed = s
            .token(
                &form_headers(),
                format!("grant_type=refresh_token&refresh_token={rt}&client_id=app&client_secret=shh")
                    .as_bytes(),
            )
            .expect("refreshed");
        assert_eq!((refreshed.grant, refreshed.refresh_token.is_none()), (GrantType::RefreshToken, true));
        let err = s
            .token(
                &form_headers(),
                format!("grant_type=refresh_token&refresh_token={rt}&client_id=app").as_bytes(),
            )
            .map(|i| i.account)
            .expect_err("a confidential client must send its secret");
        assert_eq!((err.status, err.error), (StatusCode::UNAUTHORIZED, "invalid_client"));
    }
}
