//! The set of ports the use cases run on, wired once by a composition root (a Lambda's
//! `main.rs`, the local runner, a test).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::domain::ProviderKind;
use crate::ports::{
    AssetEvents, AssetSink, AuditLog, Clock, ConnectionStore, GrantStore, ItemStore, JobQueue,
    OAuthStateStore, Provider, RunStore, TokenVault,
};

#[derive(Clone)]
pub struct Ports {
    pub connections: Arc<dyn ConnectionStore>,
    pub grants: Arc<dyn GrantStore>,
    pub items: Arc<dyn ItemStore>,
    pub runs: Arc<dyn RunStore>,
    pub oauth_states: Arc<dyn OAuthStateStore>,
    pub vault: Arc<dyn TokenVault>,
    pub sink: Arc<dyn AssetSink>,
    pub events: Arc<dyn AssetEvents>,
    pub queue: Arc<dyn JobQueue>,
    pub audit: Arc<dyn AuditLog>,
    pub clock: Arc<dyn Clock>,
    /// Configured providers only; a missing one is "not configured".
    pub providers: BTreeMap<ProviderKind, Arc<dyn Provider>>,
}

impl std::fmt::Debug for Ports {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ports")
            .field("providers", &self.providers.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Ports {
    pub fn provider(&self, kind: ProviderKind) -> Option<Arc<dyn Provider>> {
        self.providers.get(&kind).cloned()
    }
}
