//! What the admin use cases ([`crate::connections`], [`crate::oauth`]) share: who acts, every
//! way they can fail, and the audit trail.
//!
//! They are called once the caller is authenticated and known to be a client admin (the HTTP
//! API checks both); they trust the [`Actor`] they are given and scope every read and write to
//! its client. Their errors name outcomes, never HTTP: the API maps each one to its problem
//! type, and carries no provider text, token or code.

use crate::context::Ports;
use crate::domain::AuditEvent;
use crate::ids::{ClientId, UserId};
use crate::ports::{ProviderError, StoreError};
use crate::tokens::TokenError;

/// An authenticated client admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub client_id: ClientId,
    pub user_id: UserId,
    pub display_name: String,
}

/// Every outcome of an admin use case other than success.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UseCaseError {
    /// No such record for this actor: another client's, or an unattached grant of another admin.
    /// Indistinguishable on purpose (existence is never revealed).
    #[error("not found")]
    NotFound,
    /// The grant (or the connection through it) needs the account to be authorized again.
    #[error("the account must be reconnected")]
    ReauthRequired,
    #[error("this service is not configured")]
    ProviderNotConfigured,
    /// The folder the picker was asked about is gone or unreadable with this account.
    #[error("the folder is not accessible with this account")]
    FolderNotAccessible,
    /// An input of the use case was refused. `field` names it as the API does: a JSON Pointer
    /// for body fields (`/folder_id`), the parameter name for query ones (`code`).
    #[error("invalid {field}: {reason}")]
    Invalid { field: &'static str, reason: &'static str },
    /// The client already has a connection on this folder.
    #[error("this folder is already connected")]
    AlreadyConnected,
    /// Refresh Items is only offered while Auto sync is on.
    #[error("auto sync is off")]
    AutoSyncOff,
    /// The connection is `needs_review`: nothing syncs until an admin confirms or discards the
    /// deletions the mass-delete guard held (`held` files).
    #[error("{held} deletions are waiting for review")]
    NeedsReview { held: u64 },
    /// `confirm-deletions` on a connection that holds no deletions.
    #[error("no deletions are waiting for review")]
    NothingToReview,
    /// Unknown, already used, or another browser's authorization request (not told apart).
    #[error("unknown or already used authorization request")]
    InvalidState,
    #[error("the authorization request expired")]
    StateExpired,
    /// The authorization response came back to another provider's callback (mix-up defence).
    #[error("the authorization response came back from another service")]
    ProviderMismatch,
    /// The account owner declined at the provider's consent page.
    #[error("access was not granted")]
    AccessDenied,
    /// The provider redirected back with another error code. `code` keeps only ASCII letters,
    /// digits and `_`, at most 64 of them, so it is safe to show.
    #[error("the service answered {code}")]
    ProviderRefused { code: String },
    /// The provider would not exchange the code for tokens (bad, reused or expired code).
    #[error("the authorization code could not be exchanged")]
    ExchangeFailed,
    /// The provider failed or throttled us; trying again later may work.
    #[error("the service is unavailable")]
    ProviderUnavailable,
    /// A promise of the ports did not hold (a bug, never a user error). The text is for logs
    /// and holds no secret.
    #[error("internal: {0}")]
    Internal(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<TokenError> for UseCaseError {
    fn from(e: TokenError) -> Self {
        match e {
            TokenError::Reauth => Self::ReauthRequired,
            TokenError::NotConfigured => Self::ProviderNotConfigured,
            TokenError::Store(e) => Self::Store(e),
            TokenError::Provider(_) | TokenError::Busy => Self::ProviderUnavailable,
        }
    }
}

/// A provider failure during an admin request (picker, folder check, account identity). No
/// retry and no reauth marking here: the admin sees the outcome and may try again.
pub(crate) fn provider_failure(e: ProviderError) -> UseCaseError {
    match e {
        ProviderError::Reauth(_) => UseCaseError::ReauthRequired,
        ProviderError::RateLimited { .. }
        | ProviderError::Transient(_)
        | ProviderError::Integrity(_)
        | ProviderError::Unauthorized => UseCaseError::ProviderUnavailable,
        // Our app refused by the provider: an operator problem, never shown as the user's.
        ProviderError::Config(reason) => {
            tracing::error!(alarm = "provider_config", %reason, "the provider refused this application's configuration");
            UseCaseError::ProviderUnavailable
        }
        ProviderError::NotFound
        | ProviderError::Forbidden(_)
        | ProviderError::Permanent(_)
        | ProviderError::CursorReset
        | ProviderError::NotImportable { .. } => UseCaseError::FolderNotAccessible,
    }
}

/// Records that `actor` did `action` to `target` (e.g. `connection/con_…`), now.
pub(crate) async fn audit(
    ports: &Ports,
    actor: &Actor,
    action: &str,
    target: String,
) -> Result<(), StoreError> {
    let event = AuditEvent {
        client_id: actor.client_id.clone(),
        actor: actor.user_id.clone(),
        action: action.into(),
        target,
        at: ports.clock.now(),
    };
    ports.audit.record(&event).await
}
