//! The token-refresh use case (ARCHITECTURE §6): single-flight per grant across every worker.
//!
//! Take the grant's refresh lock (a conditional write with expiry), re-read the token set
//! (another worker may have refreshed meanwhile), call the connector's HTTP refresh only if still
//! needed, write the new set back with compare-and-set on the vault version, release. Waiters
//! poll the vault until the holder's write lands. `invalid_grant` puts the grant and all its
//! connections into `reauth_required`; nothing calls the provider for them again until the admin
//! reconnects.

use std::time::Duration;

use crate::context::Ports;
use crate::domain::{ConnectionStatus, Grant, GrantStatus};
use crate::ports::{ConnectionPatch, ProviderError, StoreError};
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the grant needs to be reconnected")]
    Reauth,
    #[error("provider not configured")]
    NotConfigured,
    #[error("token refresh failed: {0}")]
    Provider(ProviderError),
    #[error("timed out waiting for another worker's refresh")]
    Busy,
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Clone)]
pub struct TokenPolicy {
    /// Refresh when the access token has less than this left (the Dropbox SDK uses 300 s).
    pub margin: chrono::Duration,
    pub lock_ttl: Duration,
    pub max_wait: Duration,
    pub poll: Duration,
}

impl Default for TokenPolicy {
    fn default() -> Self {
        Self {
            margin: chrono::Duration::seconds(300),
            // Outlives the token request (the HTTP clients' RPC timeout is 120 s), so a slow
            // refresh can never be overlapped by a second one on the same refresh token.
            lock_ttl: Duration::from_secs(150),
            max_wait: Duration::from_secs(30),
            poll: Duration::from_millis(100),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Tokens {
    ports: Ports,
    policy: TokenPolicy,
    /// With [`Tokens::remembering`]: the token sets this process last read or wrote, per
    /// grant. A usable one is handed out without a vault read (one Secrets Manager call per
    /// grant per token lifetime, not per run); a token the provider rejects is dropped and read
    /// again. Only for callers that pass a rejected token back (the sync engine does, on 401):
    /// a reconnect elsewhere replaces the vault's tokens without telling this process.
    cache: Option<TokenCache>,
}

type TokenCache =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<crate::ids::GrantId, crate::domain::TokenSet>>>;

impl Tokens {
    /// Reads the vault on every call (the API: it must see a reconnect at once).
    pub fn new(ports: Ports, policy: TokenPolicy) -> Self {
        Self { ports, policy, cache: None }
    }

    /// Remembers each grant's usable token set (the sync engine).
    pub fn remembering(ports: Ports, policy: TokenPolicy) -> Self {
        Self { ports, policy, cache: Some(Default::default()) }
    }

    fn cached(&self, grant: &Grant) -> Option<crate::domain::TokenSet> {
        let cache = self.cache.as_ref()?;
        cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner).get(&grant.id).cloned()
    }

    fn remember(&self, grant: &Grant, tokens: Option<&crate::domain::TokenSet>) {
        let Some(cache) = &self.cache else { return };
        let mut c = cache.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match tokens {
            Some(t) => c.insert(grant.id.clone(), t.clone()),
            None => c.remove(&grant.id),
        };
    }

    /// A usable access token for the grant, refreshing it if needed. `rejected` is a token the
    /// provider just refused (401): a fresh one is required even if it looks unexpired.
    pub async fn access_token(&self, grant: &Grant, rejected: Option<&Secret>) -> Result<Secret, TokenError> {
        if grant.status != GrantStatus::Active {
            return Err(TokenError::Reauth);
        }
        let provider = self.ports.provider(grant.provider).ok_or(TokenError::NotConfigured)?;
        let holder = crate::ids::RunId::generate().to_string();
        let clock = &self.ports.clock;
        let started = clock.now();
        let usable = |t: &crate::domain::TokenSet, now| {
            !t.needs_refresh(now, self.policy.margin) && Some(&t.access_token) != rejected
        };
        match self.cached(grant) {
            Some(t) if usable(&t, clock.now()) => return Ok(t.access_token),
            Some(_) => self.remember(grant, None),
            None => {}
        }
        loop {
            let Some(current) = self.ports.vault.get(&grant.secret_ref).await? else {
                return Err(TokenError::Reauth);
            };
            if usable(&current.tokens, clock.now()) {
                self.remember(grant, Some(&current.tokens));
                return Ok(current.tokens.access_token);
            }
            if self
                .ports
                .grants
                .try_lock_refresh(&grant.client_id, &grant.id, &holder, clock.now(), self.policy.lock_ttl)
                .await?
            {
                let result = self.refresh_locked(grant, provider.as_ref(), rejected).await;
                self.ports.grants.unlock_refresh(&grant.client_id, &grant.id, &holder).await?;
                match result {
                    Err(TokenError::Store(StoreError::Conflict)) => continue,
                    other => return other,
                }
            }
            let waited = (clock.now() - started).to_std().unwrap_or_default();
            if waited >= self.policy.max_wait {
                return Err(TokenError::Busy);
            }
            clock.sleep(self.policy.poll).await;
        }
    }

    async fn refresh_locked(
        &self,
        grant: &Grant,
        provider: &dyn crate::ports::Provider,
        rejected: Option<&Secret>,
    ) -> Result<Secret, TokenError> {
        // Re-read under the lock: the previous holder may have refreshed already.
        let current = self.ports.vault.get(&grant.secret_ref).await?.ok_or(TokenError::Reauth)?;
        let now = self.ports.clock.now();
        if !current.tokens.needs_refresh(now, self.policy.margin)
            && Some(&current.tokens.access_token) != rejected
        {
            return Ok(current.tokens.access_token);
        }
        tracing::debug!(grant = %grant.id, "refreshing access token");
        match provider.refresh(&current.tokens).await {
            Ok(fresh) => {
                self.ports.vault.put(&grant.secret_ref, &fresh, Some(current.version)).await?;
                self.remember(grant, Some(&fresh));
                Ok(fresh.access_token)
            }
            Err(ProviderError::Reauth(_)) => {
                self.mark_reauth(grant).await?;
                Err(TokenError::Reauth)
            }
            Err(e) => Err(TokenError::Provider(e)),
        }
    }

    /// The grant and every connection using it go to `reauth_required`.
    pub async fn mark_reauth(&self, grant: &Grant) -> Result<(), StoreError> {
        tracing::warn!(grant = %grant.id, client = %grant.client_id, "grant needs reauthorization");
        let mut g = grant.clone();
        g.status = GrantStatus::ReauthRequired;
        self.ports.grants.update(&g).await?;
        let patch = ConnectionPatch::status(
            ConnectionStatus::ReauthRequired,
            Some("the account's authorization was revoked or expired: reconnect it".into()),
        );
        for c in self.ports.connections.list_by_grant(&grant.client_id, &grant.id).await? {
            match self.ports.connections.update(&c.key(), &patch).await {
                Ok(updated) => crate::status::announce(&self.ports, &updated, c.status).await,
                Err(StoreError::NotFound) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}
