//! Where token sets live (Secrets Manager on AWS). The vault holds tokens only; everything
//! else about a grant is in the grant store.

use async_trait::async_trait;

use crate::domain::{TokenSet, VersionedTokens};
use crate::ports::store::StoreError;

#[async_trait]
pub trait TokenVault: Send + Sync {
    async fn get(&self, secret_ref: &str) -> Result<Option<VersionedTokens>, StoreError>;
    /// Compare-and-set write. `expected = None` creates (Conflict if present); `Some(v)` replaces
    /// only when the stored version is still `v` (Conflict otherwise), so a stale refresher can
    /// never overwrite a newer token set. Returns the new version.
    async fn put(
        &self,
        secret_ref: &str,
        tokens: &TokenSet,
        expected: Option<u64>,
    ) -> Result<u64, StoreError>;
    /// Idempotent.
    async fn delete(&self, secret_ref: &str) -> Result<(), StoreError>;
}
