//! What the worker's test binaries share: a scripted connector and a memory world around it.
//! Each binary uses part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use extconn_core::memory::{ManualClock, MemoryEvents, MemoryQueue, MemorySink, MemoryStore, MemoryVault};
use extconn_core::ports::provider::AuthorizeRequest;
use extconn_core::ports::*;
use extconn_core::*;

/// A connector that panics when asked to list (a bug in a provider module), or, `Slow`, takes
/// its time to answer that the folder is gone, counting the calls in flight.
pub enum Scripted {
    Panicking,
    Slow { active: AtomicUsize, peak: AtomicUsize },
}

#[async_trait]
impl Provider for Scripted {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Dropbox
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            feed_scope: FeedScope::Folder,
            recursive_listing: true,
            listing_has_paths: true,
            deletions_by_path: true,
            unique_paths: true,
            hash: HashAlgorithm::None,
        }
    }
    fn accepts_id(&self, _: &str) -> bool {
        true
    }
    fn authorize_url(&self, _: &AuthorizeRequest) -> Result<String, ProviderError> {
        Ok(String::new())
    }
    async fn exchange_code(&self, _: &Secret, _: &Secret, _: &str) -> Result<TokenSet, ProviderError> {
        Err(ProviderError::Permanent("n/a".into()))
    }
    async fn refresh(&self, t: &TokenSet) -> Result<TokenSet, ProviderError> {
        Ok(t.clone())
    }
    async fn revoke(&self, _: &TokenSet) -> Result<(), ProviderError> {
        Ok(())
    }
    async fn account(&self, _: &Secret) -> Result<AccountInfo, ProviderError> {
        Err(ProviderError::Permanent("n/a".into()))
    }
    async fn browse_folders(
        &self,
        _: &Secret,
        _: Option<&FolderLocator>,
        _: Option<&str>,
    ) -> Result<FolderPage, ProviderError> {
        Err(ProviderError::Permanent("n/a".into()))
    }
    async fn folder(&self, _: &Secret, _: &FolderLocator) -> Result<FolderEntry, ProviderError> {
        Err(ProviderError::Permanent("n/a".into()))
    }
    async fn item(&self, _: &Secret, _: &FolderLocator) -> Result<RemoteItem, ProviderError> {
        let Scripted::Slow { active, peak } = self else { panic!("a connector bug") };
        let now = active.fetch_add(1, Ordering::SeqCst) + 1;
        peak.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        active.fetch_sub(1, Ordering::SeqCst);
        Err(ProviderError::NotFound)
    }
    async fn start_cursor(&self, _: &Secret, _: &FolderLocator) -> Result<String, ProviderError> {
        panic!("a connector bug")
    }
    async fn list_children(
        &self,
        _: &Secret,
        _: &FolderLocator,
        _: Option<&str>,
    ) -> Result<ListPage, ProviderError> {
        panic!("a connector bug")
    }
    async fn list_full(
        &self,
        _: &Secret,
        _: &FolderLocator,
        _: Option<&str>,
    ) -> Result<ListPage, ProviderError> {
        panic!("a connector bug")
    }
    async fn list_changes(&self, _: &Secret, _: &FolderLocator, _: &str) -> Result<ListPage, ProviderError> {
        panic!("a connector bug")
    }
    async fn download(&self, _: &Secret, _: &DownloadRequest) -> Result<Download, ProviderError> {
        Err(ProviderError::NotFound)
    }
}

/// Ports on memory with `provider` as Dropbox, and a grant with tokens for `acme`.
pub async fn world(provider: Arc<Scripted>) -> (Ports, Grant) {
    let store = Arc::new(MemoryStore::new());
    let vault = Arc::new(MemoryVault::new());
    let ports = Ports {
        connections: store.clone(),
        grants: store.clone(),
        items: store.clone(),
        runs: store.clone(),
        oauth_states: store.clone(),
        vault: vault.clone(),
        sink: Arc::new(MemorySink::new()),
        events: Arc::new(MemoryEvents::new()),
        queue: Arc::new(MemoryQueue::new()),
        audit: store.clone(),
        clock: Arc::new(ManualClock::default()),
        providers: BTreeMap::from([(ProviderKind::Dropbox, provider as Arc<dyn Provider>)]),
    };
    let client = ClientId::parse("acme").expect("test setup");
    let grant = Grant {
        client_id: client.clone(),
        id: GrantId::generate(),
        provider: ProviderKind::Dropbox,
        account_id: "dbid:1".into(),
        account_name: "A".into(),
        account_email: None,
        secret_ref: "acme/g".into(),
        created_by: UserId::parse("ana").expect("test setup"),
        created_at: ports.clock.now(),
        status: GrantStatus::Active,
        attached: true,
        paused_until: None,
    };
    GrantStore::create(store.as_ref(), &grant).await.expect("test setup");
    let tokens = TokenSet { access_token: Secret::new("a"), refresh_token: None, expires_at: None };
    vault.put("acme/g", &tokens, None).await.expect("test setup");
    (ports, grant)
}

/// A connection of the world's grant, not due.
pub async fn connection(ports: &Ports, grant: &Grant, folder: &str) -> Connection {
    let mut conn = testkit::sample_connection(&grant.client_id, folder);
    conn.grant_id = grant.id.clone();
    conn.next_due_at = None;
    ports.connections.create(&conn).await.expect("test setup");
    conn
}

pub fn job(c: &ConnectionId) -> String {
    serde_json::to_string(&Job {
        client_id: ClientId::parse("acme").expect("test setup"),
        connection_id: c.clone(),
        trigger: Trigger::Manual,
        run_id: None,
        requested_by: None,
        continuation: false,
        purge: false,
    })
    .expect("test setup")
}
