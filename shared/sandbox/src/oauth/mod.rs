//! The OAuth 2.0 authorization server every emulated provider uses: registered
//! clients, the login accounts, the consent page (or auto-approve), authorization
//! codes with PKCE, token issuance / refresh / revocation bookkeeping, bearer-token
//! checks and canaries.
//!
//! A provider owns one [`OAuthServer`], configured by [`OAuthSettings`] (its paths,
//! wording, scopes, token shapes). The server answers the browser-facing pages itself
//! (`authorize`, `decision`: HTML and 302s look alike everywhere) but returns typed
//! outcomes for the machine-facing parts ([`OAuthServer::token`] →
//! [`Issued`] / [`TokenError`], [`OAuthServer::authenticate`] → [`Bearer`] /
//! [`AuthFailure`]), which the provider renders in its own wire format.
//!
//! Contracts (RFC 6749 / 7636 as the providers implement them):
//! - the authorize request's `client_id` and **exact** `redirect_uri` are checked
//!   first; a mismatch is a 400 page, never a redirect. Without a `redirect_uri` the
//!   code is shown on a page ("no redirect" flow);
//! - codes are single use (the first exchange attempt burns them, even a failing one),
//!   expire 10 minutes after issue per the time source, and are bound to the client,
//!   the redirect URI, the account and the PKCE challenge (`S256` or `plain`);
//! - token endpoint: form body; client auth by `client_id`[+`client_secret`] in the
//!   body or HTTP Basic. A client registered with a non-empty secret must always send
//!   it; a public client (empty secret) sends only `client_id` and relies on PKCE;
//! - a refresh token is issued only when the provider's `offline` rule says the
//!   authorize request asked for one. By default refreshing never rotates it and it
//!   lives until revoked; a provider may instead rotate (`rotate_refresh`: every
//!   refresh answers a new refresh token, the old one keeps working) and give each
//!   refresh token a lifetime (`refresh_ttl`, counted from its issue: with rotation
//!   this is an idle timeout of the chain);
//! - revoking an access token also revokes its refresh token and every access token
//!   minted from that refresh token; revoking a refresh token revokes it and its
//!   access tokens;
//! - canaries: every issued secret is recognisable (the provider's prefixes, e.g.
//!   `sl.CANARY-AT-…`) and recorded with the registered client secrets and every PKCE
//!   verifier received, for leak scans. No secret appears in a `Debug` output.

mod authorize;
mod token;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, header};
use rand::Rng;

use crate::control::MintedTokens;
use crate::{OAuthClient, TimeSource};

pub(crate) use token::{GrantType, Issued, TokenError};

/// Codes expire this long after they are issued.
const CODE_TTL: Duration = Duration::from_secs(600);

/// Query or form parameters (the last value of a repeated key wins).
pub(crate) type Params = HashMap<String, String>;

/// How a provider configures its authorization server.
#[derive(Debug)]
pub(crate) struct OAuthSettings {
    /// Provider name on pages: "Dropbox" gives "Dropbox (sandbox) - authorize" and
    /// "Allow the app … to access your Dropbox?".
    pub(crate) provider: &'static str,
    /// Absolute path the consent form posts to (the provider routes it to
    /// [`OAuthServer::decision`]).
    pub(crate) decision_path: String,
    /// Scopes granted when the authorize request names none (space-separated).
    pub(crate) default_scope: &'static str,
    /// Lifetime of issued access tokens.
    pub(crate) access_token_ttl: Duration,
    /// Prefixes of issued access tokens, refresh tokens and codes (canary markers).
    pub(crate) access_prefix: &'static str,
    /// See `access_prefix`.
    pub(crate) refresh_prefix: &'static str,
    /// See `access_prefix`.
    pub(crate) code_prefix: &'static str,
    /// Whether the authorize request asks for a refresh token (Dropbox:
    /// `token_access_type=offline`); `Err` is an `invalid_request` description.
    pub(crate) offline: fn(&Params) -> Result<bool, String>,
    /// `error_description` sent back when the user clicks Deny.
    pub(crate) denied_description: &'static str,
    /// Every refresh answers a new refresh token; the one used stays valid until its
    /// own expiry (Microsoft identity platform).
    pub(crate) rotate_refresh: bool,
    /// Lifetime of each refresh token from its issue (`None`: until revoked).
    pub(crate) refresh_ttl: Option<Duration>,
}

/// A person who can log in at the consent page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Principal {
    /// The provider's account id (opaque here).
    pub(crate) id: String,
    pub(crate) display_name: String,
    pub(crate) email: String,
}

/// A successfully authenticated API call.
pub(crate) struct Bearer {
    /// The account the token was issued for.
    pub(crate) account: String,
    /// The access token itself (revocation needs it).
    pub(crate) token: String,
}

impl fmt::Debug for Bearer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bearer").field("account", &self.account).field("token", &"<redacted>").finish()
    }
}

/// Why a bearer check failed; each provider words these its own way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// No `Authorization: Bearer …` header.
    Missing,
    /// Unknown, revoked, or for an account that no longer exists.
    Invalid,
    /// Past its lifetime (or expired by the control API).
    Expired,
    /// Valid, but its grant lacks this scope.
    MissingScope(String),
}

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

/// The parts of an authorize request that survive into the code.
#[derive(Debug, Clone)]
struct AuthRequest {
    client_id: String,
    redirect_uri: Option<String>,
    state: Option<String>,
    challenge: Option<Challenge>,
    scope: String,
    offline: bool,
    /// The authorize request's `prompt` (Google's `consent` re-issues a refresh token).
    prompt: Option<String>,
}

struct CodeGrant {
    req: AuthRequest,
    account: String,
    issued: SystemTime,
    used: bool,
}

struct RefreshGrant {
    client_id: String,
    account: String,
    scope: String,
    revoked: bool,
    /// `None`: lives until revoked.
    expires_at: Option<SystemTime>,
    /// Set by `expire_all_refresh()`, independent of the time source.
    force_expired: bool,
}

struct AccessGrant {
    account: String,
    scope: String,
    refresh: Option<String>,
    expires_at: SystemTime,
    revoked: bool,
    /// Set by `expire_all_access()`, independent of the time source.
    force_expired: bool,
}

/// Everything mutable, behind one mutex that is never held across an `.await`.
#[derive(Default)]
struct State {
    accounts: Vec<Principal>,
    login: Option<String>,
    auto_approve: bool,
    pending: HashMap<String, AuthRequest>,
    codes: HashMap<String, CodeGrant>,
    refresh: HashMap<String, RefreshGrant>,
    access: HashMap<String, AccessGrant>,
    canaries: Vec<String>,
    canary_set: HashSet<String>,
    /// The newest refresh token issued per account (what a client that never loses a rotated
    /// token holds).
    latest_refresh: HashMap<String, String>,
}

fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len).map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char).collect()
}

impl State {
    fn record_canary(&mut self, secret: &str) {
        if !secret.is_empty() && self.canary_set.insert(secret.to_string()) {
            self.canaries.push(secret.to_string());
        }
    }

    fn account(&self, id: &str) -> Option<&Principal> {
        self.accounts.iter().find(|a| a.id == id)
    }

    /// The account the consent page logs in as: the chosen one, else the first.
    fn login(&self) -> Option<&Principal> {
        self.login.as_deref().and_then(|id| self.account(id)).or_else(|| self.accounts.first())
    }

    fn new_code(&mut self, prefix: &str, req: AuthRequest, account: String, now: SystemTime) -> String {
        let code = format!("{prefix}{}", random_token(32));
        self.record_canary(&code);
        self.codes.insert(code.clone(), CodeGrant { req, account, issued: now, used: false });
        code
    }

    fn new_refresh(
        &mut self,
        prefix: &str,
        client_id: &str,
        account: &str,
        scope: &str,
        expires_at: Option<SystemTime>,
    ) -> String {
        let rt = format!("{prefix}{}", random_token(40));
        self.record_canary(&rt);
        self.latest_refresh.insert(account.to_string(), rt.clone());
        self.refresh.insert(
            rt.clone(),
            RefreshGrant {
                client_id: client_id.to_string(),
                account: account.to_string(),
                scope: scope.to_string(),
                revoked: false,
                expires_at,
                force_expired: false,
            },
        );
        rt
    }

    fn new_access(
        &mut self,
        prefix: &str,
        account: &str,
        scope: &str,
        refresh: Option<&str>,
        expires_at: SystemTime,
    ) -> String {
        let at = format!("{prefix}{}", random_token(48));
        self.record_canary(&at);
        self.access.insert(
            at.clone(),
            AccessGrant {
                account: account.to_string(),
                scope: scope.to_string(),
                refresh: refresh.map(str::to_string),
                expires_at,
                revoked: false,
                force_expired: false,
            },
        );
        at
    }

    /// Revokes the grant a token belongs to (see the module docs).
    fn revoke(&mut self, token: &str) {
        let refresh = match self.access.get_mut(token) {
            Some(g) => {
                g.revoked = true;
                g.refresh.clone()
            }
            None => self.refresh.contains_key(token).then(|| token.to_string()),
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

/// One provider's authorization server.
pub(crate) struct OAuthServer {
    settings: OAuthSettings,
    /// Registered at start, or later through the control API (a check that needs a secret it
    /// knows registers its own app).
    clients: Mutex<Vec<OAuthClient>>,
    clock: TimeSource,
    state: Mutex<State>,
}

impl fmt::Debug for OAuthServer {
    // Tokens and secrets are canaries: show counts only.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.lock();
        f.debug_struct("OAuthServer")
            .field("provider", &self.settings.provider)
            .field("clients", &self.clients.lock().map(|c| c.len()).unwrap_or_default())
            .field("accounts", &st.accounts.len())
            .field("access_tokens", &st.access.len())
            .field("refresh_tokens", &st.refresh.len())
            .finish_non_exhaustive()
    }
}

impl OAuthServer {
    /// A server for `clients` (already filtered to this provider); their secrets are
    /// recorded as canaries.
    pub(crate) fn new(settings: OAuthSettings, clients: Vec<OAuthClient>, clock: TimeSource) -> Self {
        let mut state = State::default();
        for c in &clients {
            state.record_canary(&c.client_secret);
        }
        OAuthServer { settings, clients: Mutex::new(clients), clock, state: Mutex::new(state) }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> SystemTime {
        (self.clock)()
    }

    fn client(&self, client_id: &str) -> Option<OAuthClient> {
        let clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.iter().find(|c| c.client_id == client_id).cloned()
    }

    /// Registers (or replaces) an app; its secret becomes a canary.
    pub(crate) fn register_client(&self, client: OAuthClient) {
        self.lock().record_canary(&client.client_secret);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        clients.retain(|c| c.client_id != client.client_id);
        clients.push(client);
    }

    // -- accounts and the consent page ----------------------------------------------

    /// Registers a person who can log in (in creation order; the first is the default
    /// login).
    pub(crate) fn add_account(&self, p: Principal) {
        self.lock().accounts.push(p);
    }

    pub(crate) fn account(&self, id: &str) -> Option<Principal> {
        self.lock().account(id).cloned()
    }

    /// Chooses the consent page's login; `false` for an unknown account.
    pub(crate) fn set_login(&self, id: &str) -> bool {
        let mut st = self.lock();
        if st.account(id).is_none() {
            return false;
        }
        st.login = Some(id.to_string());
        true
    }

    /// Auto-approve: the authorize endpoint redirects with a code at once (no page).
    pub(crate) fn set_auto_approve(&self, on: bool) {
        self.lock().auto_approve = on;
    }

    // -- tokens -----------------------------------------------------------------------

    /// Authenticates `Authorization: Bearer <token>`, requiring `scope` when given.
    pub(crate) fn authenticate(
        &self,
        headers: &HeaderMap,
        scope: Option<&str>,
    ) -> Result<Bearer, AuthFailure> {
        let token = bearer(headers).ok_or(AuthFailure::Missing)?;
        let now = self.now();
        let st = self.lock();
        let g = st.access.get(&token).ok_or(AuthFailure::Invalid)?;
        if g.revoked || st.account(&g.account).is_none() {
            return Err(AuthFailure::Invalid);
        }
        if g.force_expired || now >= g.expires_at {
            return Err(AuthFailure::Expired);
        }
        if let Some(scope) = scope
            && !g.scope.split(' ').any(|s| s == scope)
        {
            return Err(AuthFailure::MissingScope(scope.to_string()));
        }
        Ok(Bearer { account: g.account.clone(), token })
    }

    /// Whether `token` is an access or refresh token this server issued and has not
    /// revoked (Google's revoke endpoint answers 400 for anything else).
    pub(crate) fn knows(&self, token: &str) -> bool {
        let st = self.lock();
        st.access.get(token).is_some_and(|g| !g.revoked) || st.refresh.get(token).is_some_and(|g| !g.revoked)
    }

    /// Revokes the grant of an access or refresh token (unknown tokens are ignored).
    pub(crate) fn revoke(&self, token: &str) {
        self.lock().revoke(token);
    }

    /// Mints an offline grant (access + refresh token, default scopes) without the
    /// browser flow; `None` for an unknown account. The client id need not be
    /// registered, but refreshing authenticates it like any other request.
    pub(crate) fn mint(&self, account: &str, client_id: &str) -> Option<MintedTokens> {
        let now = self.now();
        let expires_at = now + self.settings.access_token_ttl;
        let s = &self.settings;
        let mut st = self.lock();
        st.account(account)?;
        let rt_expiry = s.refresh_ttl.map(|ttl| now + ttl);
        let rt = st.new_refresh(s.refresh_prefix, client_id, account, s.default_scope, rt_expiry);
        let at = st.new_access(s.access_prefix, account, s.default_scope, Some(&rt), expires_at);
        Some(MintedTokens { access_token: at, refresh_token: rt })
    }

    /// Every access token issued so far now fails as expired (refresh tokens stay
    /// valid; new access tokens are fine).
    /// The newest refresh token issued for `account`, by any grant type.
    pub(crate) fn latest_refresh(&self, account: &str) -> Option<String> {
        self.lock().latest_refresh.get(account).cloned()
    }

    pub(crate) fn expire_all_access(&self) {
        for g in self.lock().access.values_mut() {
            g.force_expired = true;
        }
    }

    /// Every refresh token issued so far now fails as expired (new ones are fine).
    pub(crate) fn expire_all_refresh(&self) {
        for g in self.lock().refresh.values_mut() {
            g.force_expired = true;
        }
    }

    /// Records a secret the provider issued outside this server (a download URL's
    /// signature, …) for leak scans.
    pub(crate) fn record_canary(&self, secret: &str) {
        self.lock().record_canary(secret);
    }

    /// Revokes every access and refresh token issued so far.
    pub(crate) fn revoke_all(&self) {
        let mut st = self.lock();
        for g in st.access.values_mut() {
            g.revoked = true;
        }
        for g in st.refresh.values_mut() {
            g.revoked = true;
        }
    }

    /// Every secret issued or seen, in first-seen order.
    pub(crate) fn canaries(&self) -> Vec<String> {
        self.lock().canaries.clone()
    }
}

/// The token of `Authorization: Bearer <token>` (scheme case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

fn parse_form(raw: &[u8]) -> Params {
    url::form_urlencoded::parse(raw).into_owned().collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use super::*;

    pub(crate) const T0: SystemTime = SystemTime::UNIX_EPOCH;

    pub(crate) fn server(clients: Vec<OAuthClient>) -> OAuthServer {
        let settings = OAuthSettings {
            provider: "Acme",
            decision_path: "/acme/decide".into(),
            default_scope: "read write",
            access_token_ttl: Duration::from_secs(3600),
            access_prefix: "AT-",
            refresh_prefix: "RT-",
            code_prefix: "CODE-",
            offline: |q| match q.get("access_type").map(String::as_str) {
                None | Some("online") => Ok(false),
                Some("offline") => Ok(true),
                Some(other) => Err(format!("bad access_type {other}")),
            },
            denied_description: "no",
            rotate_refresh: false,
            refresh_ttl: None,
        };
        let s = OAuthServer::new(settings, clients, Arc::new(|| T0));
        s.add_account(Principal { id: "u1".into(), display_name: "Ada".into(), email: "ada@x".into() });
        s
    }

    fn auth_header(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().expect("header"));
        h
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
    fn minted_tokens_authenticate_until_expired_or_revoked() {
        let s = server(Vec::new());
        assert!(s.mint("nobody", "c").is_none());
        let t = s.mint("u1", "c").expect("known account");
        assert!(t.access_token.starts_with("AT-") && t.refresh_token.starts_with("RT-"));
        let b = s.authenticate(&auth_header(&t.access_token), Some("read")).expect("valid");
        assert_eq!(b.account, "u1");
        assert!(!format!("{b:?}").contains(&t.access_token), "Debug must not show the token");
        assert_eq!(
            s.authenticate(&auth_header(&t.access_token), Some("admin")).map(|b| b.account),
            Err(AuthFailure::MissingScope("admin".into()))
        );
        assert_eq!(s.authenticate(&HeaderMap::new(), None).map(|b| b.account), Err(AuthFailure::Missing));
        assert_eq!(s.authenticate(&auth_header("nope"), None).map(|b| b.account), Err(AuthFailure::Invalid));
        s.expire_all_access();
        assert_eq!(
            s.authenticate(&auth_header(&t.access_token), None).map(|b| b.account),
            Err(AuthFailure::Expired)
        );
        let t2 = s.mint("u1", "c").expect("known account");
        assert!(s.authenticate(&auth_header(&t2.access_token), None).is_ok(), "new tokens are fine");
        s.revoke_all();
        assert_eq!(
            s.authenticate(&auth_header(&t2.access_token), None).map(|b| b.account),
            Err(AuthFailure::Invalid)
        );
        let canaries = s.canaries();
        for secret in [&t.access_token, &t.refresh_token, &t2.access_token] {
            assert!(canaries.contains(secret));
        }
        assert!(!format!("{s:?}").contains(&t.access_token));
    }

    #[test]
    fn revoking_a_refresh_token_revokes_its_access_tokens_only() {
        let s = server(Vec::new());
        let a = s.mint("u1", "c").expect("minted");
        let b = s.mint("u1", "c").expect("minted");
        s.revoke(&a.refresh_token);
        assert_eq!(
            s.authenticate(&auth_header(&a.access_token), None).map(|b| b.account),
            Err(AuthFailure::Invalid)
        );
        assert!(s.authenticate(&auth_header(&b.access_token), None).is_ok());
        s.revoke(&b.access_token);
        assert!(s.lock().refresh.get(&b.refresh_token).is_some_and(|g| g.revoked));
    }

    #[test]
    fn login_is_the_chosen_account_else_the_first() {
        let s = server(Vec::new());
        s.add_account(Principal { id: "u2".into(), display_name: "Bob".into(), email: "bob@x".into() });
        assert_eq!(s.lock().login().map(|p| p.id.clone()).as_deref(), Some("u1"));
        assert!(!s.set_login("ghost"));
        assert!(s.set_login("u2"));
        assert_eq!(s.lock().login().map(|p| p.id.clone()).as_deref(), Some("u2"));
        assert_eq!(s.account("u2").map(|p| p.display_name).as_deref(), Some("Bob"));
    }
}
