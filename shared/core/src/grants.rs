//! Retiring grants: when no connection uses a grant any more (or it was never attached within
//! an hour of the OAuth callback), revoke it at the provider, then delete its secret and record.
//! A revoke that fails never blocks the admin's delete: the grant is left `revoking` and
//! [`sweep`] retries it.

use crate::context::Ports;
use crate::domain::{Grant, GrantStatus, Timestamp};
use crate::ports::{ProviderError, StoreError};

/// How long an unattached grant may wait for its folder to be picked.
pub const UNATTACHED_TTL: chrono::Duration = chrono::Duration::hours(1);

/// True when the grant is gone; false when the revoke failed and it was left `revoking`.
/// The intent is recorded first (`revoking`), so a failure at any later point — the provider,
/// the vault, the store — leaves the grant where [`sweep`] finds it again.
pub async fn retire(ports: &Ports, grant: &Grant) -> Result<bool, StoreError> {
    if grant.status != GrantStatus::Revoking {
        let mut g = grant.clone();
        g.status = GrantStatus::Revoking;
        ports.grants.update(&g).await?;
    }
    let tokens = ports.vault.get(&grant.secret_ref).await?;
    let revoked = match (ports.provider(grant.provider), tokens) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(p), Some(t)) => match p.revoke(&t.tokens).await {
            // A grant the provider already refuses is as revoked as it gets.
            Ok(()) | Err(ProviderError::Reauth(_)) => true,
            Err(e) => {
                tracing::warn!(grant = %grant.id, error = %e, "revoke failed; will be retried");
                false
            }
        },
    };
    if revoked {
        ports.vault.delete(&grant.secret_ref).await?;
        ports.grants.delete(&grant.client_id, &grant.id).await?;
    }
    Ok(revoked)
}

/// Retires every stale grant (see [`crate::ports::GrantStore::list_stale`]); returns how many
/// are gone. Runs periodically in a component allowed to read secrets.
pub async fn sweep(ports: &Ports, now: Timestamp) -> Result<usize, StoreError> {
    let mut gone = 0;
    for g in ports.grants.list_stale(now - UNATTACHED_TTL, 100).await? {
        if retire(ports, &g).await? {
            gone += 1;
        }
    }
    Ok(gone)
}
