//! The OAuth connect flow's use cases (ARCHITECTURE §6): [`OAuthFlow::start`] an authorization
//! for an admin, [`OAuthFlow::complete`] it when the provider sends the browser back.
//!
//! An authorization request is a 256-bit `state` and a PKCE (S256) verifier, stored under a
//! digest of the state (never the state itself) with who started it, for which provider, and
//! a digest of the starting browser's binding value (RFC 9700 §4.7.1). The caller keeps the
//! binding in a cookie and presents it again with the callback.
//!
//! Completing creates the account's grant, or — the same account authorized again —
//! reconnects the existing one. Codes, verifiers, tokens and state values travel as
//! [`Secret`]s and never reach a log line or an error.
//!
//! The provider calls of this module are `authorize_url` in [`OAuthFlow::start`] and
//! `exchange_code` + `account` in [`OAuthFlow::complete`].

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::admin::{Actor, UseCaseError, audit, provider_failure};
use crate::connections::{new_run, queue_run};
use crate::context::Ports;
use crate::domain::{ConnectionStatus, Grant, GrantStatus, ProviderKind, Timestamp, TokenSet, Trigger};
use crate::ids::GrantId;
use crate::ports::{AccountInfo, AuthorizeRequest, ConnectionPatch, OAuthState, ProviderError, StoreError};
use crate::secret::Secret;

/// How long an authorization request may wait for its callback, unless configured otherwise.
pub const DEFAULT_STATE_TTL: chrono::Duration = chrono::Duration::minutes(10);

/// A started authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// Where to send the admin's browser.
    pub authorization_url: String,
    pub expires_at: Timestamp,
    /// The browser's binding value: the one presented, or a fresh one. The caller hands it to
    /// the browser (a cookie) and back to [`OAuthFlow::complete`] with the callback.
    pub binding: Secret,
}

/// What the provider's redirect (and the browser) brought back.
#[derive(Debug, Clone)]
pub struct Callback {
    /// Whose callback it arrived at.
    pub provider: ProviderKind,
    pub state: Secret,
    /// The browser's binding value, if it presented one.
    pub binding: Option<Secret>,
    /// The provider's `error` parameter (e.g. `access_denied`), if any.
    pub error: Option<String>,
    pub code: Option<Secret>,
    /// The redirect URI the authorization was started with (the provider checks they match).
    pub redirect_uri: String,
}

/// A completed authorization.
#[derive(Debug, Clone, PartialEq)]
pub struct Completed {
    pub grant: Grant,
    /// True when an existing grant of the same account was reconnected.
    pub reconnected: bool,
}

#[derive(Debug, Clone)]
pub struct OAuthFlow {
    ports: Ports,
    state_ttl: chrono::Duration,
}

impl OAuthFlow {
    /// `state_ttl`: how long an authorization request stays valid ([`DEFAULT_STATE_TTL`]).
    pub fn new(ports: Ports, state_ttl: chrono::Duration) -> Self {
        Self { ports, state_ttl }
    }

    /// Starts an authorization of `provider` for `actor`. `binding` is the value the browser
    /// already holds, reused so that two tabs can authorize at once; `None` mints one.
    pub async fn start(
        &self,
        actor: &Actor,
        provider: ProviderKind,
        redirect_uri: &str,
        binding: Option<Secret>,
    ) -> Result<Started, UseCaseError> {
        let connector = self.ports.provider(provider).ok_or(UseCaseError::ProviderNotConfigured)?;
        // 256-bit state and a 43-character PKCE verifier, both fresh per request.
        let state = Secret::new(random_token());
        let verifier = Secret::new(random_token());
        let challenge = B64.encode(Sha256::digest(verifier.expose().as_bytes()));
        let now = self.ports.clock.now();
        let expires_at = now + self.state_ttl;
        let authorization_url = connector
            .authorize_url(&AuthorizeRequest {
                state: state.clone(),
                pkce_challenge: challenge,
                redirect_uri: redirect_uri.to_owned(),
            })
            .map_err(|e| UseCaseError::Internal(format!("authorize url: {e}")))?;
        let binding = binding.unwrap_or_else(|| Secret::new(random_token()));
        let record = OAuthState {
            client_id: actor.client_id.clone(),
            user_id: actor.user_id.clone(),
            provider,
            pkce_verifier: verifier,
            browser_binding: digest(&binding),
            created_at: now,
            expires_at,
        };
        self.ports.oauth_states.put(&digest(&state), &record).await?;
        audit(&self.ports, actor, "oauth.start", format!("provider/{provider}")).await?;
        Ok(Started { authorization_url, expires_at, binding })
    }

    /// Completes an authorization. The checks run in this order, each refusing before any
    /// token exchange: the state is consumed (whatever happens next, it works once), must have
    /// been started by this browser (else it is as unknown), unexpired, for the provider whose
    /// callback this is; then the provider's own error, then the code. The code is exchanged,
    /// the account identified, and its grant created or reconnected (see [`Completed`]).
    pub async fn complete(&self, cb: Callback) -> Result<Completed, UseCaseError> {
        let record =
            self.ports.oauth_states.consume(&digest(&cb.state)).await?.ok_or(UseCaseError::InvalidState)?;
        // Another browser's state (another admin's, another client's): as if unknown.
        if cb.binding.as_ref().map(digest) != Some(record.browser_binding.clone()) {
            return Err(UseCaseError::InvalidState);
        }
        if self.ports.clock.now() >= record.expires_at {
            return Err(UseCaseError::StateExpired);
        }
        if record.provider != cb.provider {
            return Err(UseCaseError::ProviderMismatch);
        }
        if let Some(error) = &cb.error {
            return Err(if error == "access_denied" {
                UseCaseError::AccessDenied
            } else {
                let code =
                    error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
                UseCaseError::ProviderRefused { code }
            });
        }
        let code = cb.code.ok_or(UseCaseError::Invalid { field: "code", reason: "required" })?;
        let connector = self.ports.provider(cb.provider).ok_or(UseCaseError::ProviderNotConfigured)?;
        let tokens = connector.exchange_code(&code, &record.pkce_verifier, &cb.redirect_uri).await.map_err(
            |e| match e {
                ProviderError::RateLimited { .. } | ProviderError::Transient(_) => {
                    UseCaseError::ProviderUnavailable
                }
                // Our app refused (a wrong client secret, an unregistered redirect URI): an
                // operator alarm; the admin sees a failed exchange.
                ProviderError::Config(reason) => {
                    tracing::error!(alarm = "provider_config", provider = %cb.provider, %reason, "the provider refused this application's configuration");
                    UseCaseError::ExchangeFailed
                }
                _ => UseCaseError::ExchangeFailed,
            },
        )?;
        let account = connector.account(&tokens.access_token).await.map_err(provider_failure)?;
        // The admin who started it acts; the callback itself is anonymous.
        let actor = Actor {
            client_id: record.client_id.clone(),
            user_id: record.user_id.clone(),
            display_name: record.user_id.to_string(),
        };
        let found =
            self.ports.grants.find_by_account(&actor.client_id, cb.provider, &account.account_id).await?;
        if let Some(existing) = found {
            let grant = self.reconnect(&actor, existing, &account, &tokens).await?;
            return Ok(Completed { grant, reconnected: true });
        }
        let grant = Grant {
            client_id: actor.client_id.clone(),
            id: GrantId::generate(),
            provider: cb.provider,
            account_id: account.account_id.clone(),
            account_name: account.display_name.clone(),
            account_email: account.email.clone(),
            // A random name of its own: a create that loses the race below deletes only its
            // own secret, never the winner's.
            secret_ref: format!("{}/{}", actor.client_id, GrantId::generate()),
            created_by: actor.user_id.clone(),
            created_at: self.ports.clock.now(),
            status: GrantStatus::Active,
            attached: false,
            paused_until: None,
        };
        self.ports.vault.put(&grant.secret_ref, &tokens, None).await?;
        match self.ports.grants.create(&grant).await {
            Ok(()) => {
                audit(&self.ports, &actor, "grant.connect", format!("grant/{}", grant.id)).await?;
                Ok(Completed { grant, reconnected: false })
            }
            // The same account was connected concurrently through another state: the store's
            // uniqueness on (client, provider, account) kept one grant; these tokens go to it.
            Err(StoreError::Conflict) => {
                self.ports.vault.delete(&grant.secret_ref).await?;
                let existing = self
                    .ports
                    .grants
                    .find_by_account(&actor.client_id, cb.provider, &account.account_id)
                    .await?
                    .ok_or_else(|| UseCaseError::Internal("grant conflict without a grant".into()))?;
                let grant = self.reconnect(&actor, existing, &account, &tokens).await?;
                Ok(Completed { grant, reconnected: true })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The same provider account authorized again: the new tokens replace the grant's, the
    /// grant is active again, and each of its `reauth_required` connections goes back to
    /// `active` with a queued sync.
    async fn reconnect(
        &self,
        actor: &Actor,
        mut grant: Grant,
        account: &AccountInfo,
        tokens: &TokenSet,
    ) -> Result<Grant, UseCaseError> {
        let current = self.ports.vault.get(&grant.secret_ref).await?.map(|v| v.version);
        self.ports.vault.put(&grant.secret_ref, tokens, current).await?;
        grant.status = GrantStatus::Active;
        grant.account_name = account.display_name.clone();
        grant.account_email = account.email.clone();
        self.ports.grants.update(&grant).await?;
        for c in self.ports.connections.list_by_grant(&grant.client_id, &grant.id).await? {
            if c.status != ConnectionStatus::ReauthRequired {
                continue;
            }
            let run = new_run(c.key(), Trigger::Manual, actor, self.ports.clock.now());
            let patch = ConnectionPatch {
                current_run_id: Some(Some(run.id.clone())),
                ..ConnectionPatch::status(ConnectionStatus::Active, None)
            };
            match self.ports.connections.update(&c.key(), &patch).await {
                Ok(updated) => {
                    crate::status::announce(&self.ports, &updated, c.status).await;
                    queue_run(&self.ports, &run).await?
                }
                // Deleted meanwhile: nothing to revive.
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
        }
        audit(&self.ports, actor, "grant.reconnect", format!("grant/{}", grant.id)).await?;
        Ok(grant)
    }
}

/// 32 random bytes, base64url: 43 characters.
fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    B64.encode(b)
}

/// How a state or binding value is stored: its digest, never the value.
fn digest(value: &Secret) -> String {
    hex::encode(Sha256::digest(value.expose().as_bytes()))
}
