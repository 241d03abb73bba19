//! A world for the admin use cases: the in-memory ports, a virtual clock, and a small fake
//! provider that speaks no HTTP. The connection and grant stores are wrapped so a test can make
//! something happen at the one instant a race is decided.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use extconn_core::connections::{Connections, NewConnection};
use extconn_core::memory::{ManualClock, MemoryEvents, MemoryQueue, MemorySink, MemoryStore, MemoryVault};
use extconn_core::oauth::{Callback, OAuthFlow, Started};
use extconn_core::ports::*;
use extconn_core::tokens::{TokenPolicy, Tokens};
use extconn_core::*;
use futures::future::BoxFuture;
use sha2::{Digest, Sha256};

pub const REDIRECT: &str = "https://api.test/v1/oauth/dropbox/callback";

pub fn actor(client: &str, user: &str) -> Actor {
    Actor {
        client_id: ClientId::parse(client).expect("client"),
        user_id: UserId::parse(user).expect("user"),
        display_name: format!("{user} (display)"),
    }
}

/// What the fake provider was asked, and what it will answer.
#[derive(Debug, Default)]
struct FakeState {
    /// Folders of every account, by id.
    folders: BTreeMap<String, FolderEntry>,
    /// Authorization codes the consent page handed out, with the account that consented.
    codes: BTreeMap<String, AccountInfo>,
    /// Access tokens issued, with their account.
    tokens: BTreeMap<String, AccountInfo>,
    /// PKCE challenges of every authorization URL built.
    challenges: Vec<String>,
    /// The next code exchange fails this way.
    exchange_failure: Option<ProviderError>,
    exchanges: u32,
    minted: u32,
    /// Access tokens `folder` was called with.
    folder_calls: Vec<String>,
    /// Access tokens of revoked token sets.
    revoked: Vec<String>,
}

/// A Dropbox-kind connector without HTTP. It checks what a real provider checks at the token
/// endpoint (known code, the PKCE verifier of one of its challenges, the registered redirect
/// URI) and refuses unknown access tokens.
#[derive(Debug, Default)]
pub struct FakeProvider {
    state: Mutex<FakeState>,
}

impl FakeProvider {
    fn lock(&self) -> std::sync::MutexGuard<'_, FakeState> {
        self.state.lock().expect("fake lock")
    }
    pub fn add_folder(&self, id: &str, name: &str, path: &str) {
        let entry = FolderEntry {
            locator: FolderLocator { folder_id: id.into(), drive_id: None },
            name: name.into(),
            path: Some(path.into()),
            kind: EntryKind::Folder,
            selectable: true,
        };
        self.lock().folders.insert(id.into(), entry);
    }
    /// The account owner consents: the provider hands the browser this code.
    pub fn consent(&self, code: &str, account_id: &str) {
        let account = AccountInfo {
            account_id: account_id.into(),
            display_name: format!("{account_id} name"),
            email: Some(format!("{account_id}@example.com")),
        };
        self.lock().codes.insert(code.into(), account);
    }
    pub fn fail_next_exchange(&self, e: ProviderError) {
        self.lock().exchange_failure = Some(e);
    }
    pub fn exchanges(&self) -> u32 {
        self.lock().exchanges
    }
    pub fn folder_calls(&self) -> Vec<String> {
        self.lock().folder_calls.clone()
    }
    pub fn revoked(&self) -> Vec<String> {
        self.lock().revoked.clone()
    }
    fn account_of(&self, access: &Secret) -> Result<AccountInfo, ProviderError> {
        self.lock().tokens.get(access.expose()).cloned().ok_or(ProviderError::Unauthorized)
    }
}

fn not_used<T>() -> Result<T, ProviderError> {
    Err(ProviderError::Permanent("the admin use cases never list or download".into()))
}

#[async_trait]
impl Provider for FakeProvider {
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
    fn authorize_url(&self, req: &AuthorizeRequest) -> Result<String, ProviderError> {
        self.lock().challenges.push(req.pkce_challenge.clone());
        Ok(format!(
            "https://fake.test/authorize?state={}&code_challenge={}&redirect_uri={}",
            req.state.expose(),
            req.pkce_challenge,
            req.redirect_uri
        ))
    }
    async fn exchange_code(
        &self,
        code: &Secret,
        verifier: &Secret,
        redirect_uri: &str,
    ) -> Result<TokenSet, ProviderError> {
        let mut st = self.lock();
        st.exchanges += 1;
        if let Some(e) = st.exchange_failure.take() {
            return Err(e);
        }
        let challenge = B64.encode(Sha256::digest(verifier.expose().as_bytes()));
        if !st.challenges.contains(&challenge) || redirect_uri != REDIRECT {
            return Err(ProviderError::Permanent("invalid_grant".into()));
        }
        let account =
            st.codes.get(code.expose()).cloned().ok_or(ProviderError::Permanent("bad code".into()))?;
        st.minted += 1;
        let access = format!("at-{}", st.minted);
        st.tokens.insert(access.clone(), account);
        Ok(TokenSet {
            access_token: Secret::new(access),
            refresh_token: Some(Secret::new(format!("rt-{}", st.minted))),
            expires_at: None,
        })
    }
    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, ProviderError> {
        Ok(tokens.clone())
    }
    async fn revoke(&self, tokens: &TokenSet) -> Result<(), ProviderError> {
        self.lock().revoked.push(tokens.access_token.expose().to_owned());
        Ok(())
    }
    async fn account(&self, access: &Secret) -> Result<AccountInfo, ProviderError> {
        self.account_of(access)
    }
    async fn browse_folders(
        &self,
        access: &Secret,
        _parent: Option<&FolderLocator>,
        _page: Option<&str>,
    ) -> Result<FolderPage, ProviderError> {
        self.account_of(access)?;
        Ok(FolderPage { folders: self.lock().folders.values().cloned().collect(), next_page: None })
    }
    async fn folder(&self, access: &Secret, folder: &FolderLocator) -> Result<FolderEntry, ProviderError> {
        self.lock().folder_calls.push(access.expose().to_owned());
        self.account_of(access)?;
        self.lock().folders.get(&folder.folder_id).cloned().ok_or(ProviderError::NotFound)
    }
    async fn item(&self, _: &Secret, _: &FolderLocator) -> Result<RemoteItem, ProviderError> {
        not_used()
    }
    async fn start_cursor(&self, _: &Secret, _: &FolderLocator) -> Result<String, ProviderError> {
        not_used()
    }
    async fn list_children(
        &self,
        _: &Secret,
        _: &FolderLocator,
        _: Option<&str>,
    ) -> Result<ListPage, ProviderError> {
        not_used()
    }
    async fn list_changes(&self, _: &Secret, _: &FolderLocator, _: &str) -> Result<ListPage, ProviderError> {
        not_used()
    }
    async fn download(&self, _: &Secret, _: &DownloadRequest) -> Result<Download, ProviderError> {
        not_used()
    }
}

/// Something to run at the instant a race is decided, once.
#[derive(Default)]
struct Hook(Mutex<Option<BoxFuture<'static, ()>>>);

impl Hook {
    fn set(&self, f: BoxFuture<'static, ()>) {
        *self.0.lock().expect("hook lock") = Some(f);
    }
    /// Drops a hook that never ran; true if there was one.
    fn disarm(&self) -> bool {
        self.0.lock().expect("hook lock").take().is_some()
    }
    async fn run(&self) {
        let f = self.0.lock().expect("hook lock").take();
        if let Some(f) = f {
            f.await;
        }
    }
}

/// The memory store, with a hook run just before a conditional connection update (the write
/// that decides which Refresh Items click wins).
pub struct HookedConnections {
    inner: Arc<MemoryStore>,
    before_conditional_update: Hook,
}

#[async_trait]
impl ConnectionStore for HookedConnections {
    async fn create(&self, c: &Connection) -> Result<(), StoreError> {
        ConnectionStore::create(self.inner.as_ref(), c).await
    }
    async fn get(&self, key: &ConnKey) -> Result<Option<Connection>, StoreError> {
        ConnectionStore::get(self.inner.as_ref(), key).await
    }
    async fn list(&self, client: &ClientId, p: Option<ProviderKind>) -> Result<Vec<Connection>, StoreError> {
        ConnectionStore::list(self.inner.as_ref(), client, p).await
    }
    async fn list_by_grant(&self, client: &ClientId, grant: &GrantId) -> Result<Vec<Connection>, StoreError> {
        self.inner.list_by_grant(client, grant).await
    }
    async fn update(&self, key: &ConnKey, patch: &ConnectionPatch) -> Result<Connection, StoreError> {
        if patch.if_current_run.is_some() {
            self.before_conditional_update.run().await;
        }
        ConnectionStore::update(self.inner.as_ref(), key, patch).await
    }
    async fn delete(&self, key: &ConnKey) -> Result<bool, StoreError> {
        ConnectionStore::delete(self.inner.as_ref(), key).await
    }
    async fn acquire_lease(
        &self,
        key: &ConnKey,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Option<(Fence, Connection)>, StoreError> {
        self.inner.acquire_lease(key, holder, now, ttl).await
    }
    async fn renew_lease(&self, fence: &Fence, now: Timestamp, ttl: Duration) -> Result<(), StoreError> {
        self.inner.renew_lease(fence, now, ttl).await
    }
    async fn release_lease(&self, fence: &Fence, patch: &ConnectionPatch) -> Result<(), StoreError> {
        self.inner.release_lease(fence, patch).await
    }
    async fn checkpoint(
        &self,
        fence: &Fence,
        position: &SyncPosition,
        patch: &ConnectionPatch,
    ) -> Result<(), StoreError> {
        self.inner.checkpoint(fence, position, patch).await
    }
    fn due_shards(&self) -> u32 {
        self.inner.due_shards()
    }
    async fn due(
        &self,
        shard: u32,
        now: Timestamp,
        after: Option<&str>,
        limit: usize,
    ) -> Result<DuePage, StoreError> {
        self.inner.due(shard, now, after, limit).await
    }
    async fn claim_due(
        &self,
        key: &ConnKey,
        expected: Timestamp,
        next: Timestamp,
        tick: &str,
    ) -> Result<bool, StoreError> {
        self.inner.claim_due(key, expected, next, tick).await
    }
}

/// The memory store, with a hook run just before a grant is created (the write that decides
/// which of two callbacks for the same account creates its grant).
pub struct HookedGrants {
    inner: Arc<MemoryStore>,
    before_create: Hook,
}

#[async_trait]
impl GrantStore for HookedGrants {
    async fn create(&self, g: &Grant) -> Result<(), StoreError> {
        self.before_create.run().await;
        GrantStore::create(self.inner.as_ref(), g).await
    }
    async fn get(&self, client: &ClientId, id: &GrantId) -> Result<Option<Grant>, StoreError> {
        GrantStore::get(self.inner.as_ref(), client, id).await
    }
    async fn find_by_account(
        &self,
        client: &ClientId,
        provider: ProviderKind,
        account_id: &str,
    ) -> Result<Option<Grant>, StoreError> {
        self.inner.find_by_account(client, provider, account_id).await
    }
    async fn update(&self, g: &Grant) -> Result<(), StoreError> {
        GrantStore::update(self.inner.as_ref(), g).await
    }
    async fn pause(&self, client: &ClientId, id: &GrantId, until: Timestamp) -> Result<(), StoreError> {
        self.inner.pause(client, id, until).await
    }
    async fn delete(&self, client: &ClientId, id: &GrantId) -> Result<(), StoreError> {
        GrantStore::delete(self.inner.as_ref(), client, id).await
    }
    async fn list_stale(&self, before: Timestamp, limit: usize) -> Result<Vec<Grant>, StoreError> {
        self.inner.list_stale(before, limit).await
    }
    async fn try_lock_refresh(
        &self,
        client: &ClientId,
        id: &GrantId,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        self.inner.try_lock_refresh(client, id, holder, now, ttl).await
    }
    async fn unlock_refresh(&self, client: &ClientId, id: &GrantId, holder: &str) -> Result<(), StoreError> {
        self.inner.unlock_refresh(client, id, holder).await
    }
}

pub struct World {
    pub ports: Ports,
    pub store: Arc<MemoryStore>,
    pub vault: Arc<MemoryVault>,
    pub queue: Arc<MemoryQueue>,
    pub clock: Arc<ManualClock>,
    pub provider: Arc<FakeProvider>,
    pub connections: Connections,
    pub oauth: OAuthFlow,
    hooked_connections: Arc<HookedConnections>,
    hooked_grants: Arc<HookedGrants>,
    /// Authorization codes handed out so far.
    codes: Mutex<u32>,
}

impl World {
    pub fn new() -> World {
        let store = Arc::new(MemoryStore::new());
        let vault = Arc::new(MemoryVault::new());
        let queue = Arc::new(MemoryQueue::new());
        let clock = Arc::new(ManualClock::default());
        let provider = Arc::new(FakeProvider::default());
        let hooked_connections =
            Arc::new(HookedConnections { inner: store.clone(), before_conditional_update: Hook::default() });
        let hooked_grants = Arc::new(HookedGrants { inner: store.clone(), before_create: Hook::default() });
        let ports = Ports {
            connections: hooked_connections.clone(),
            grants: hooked_grants.clone(),
            items: store.clone(),
            runs: store.clone(),
            oauth_states: store.clone(),
            vault: vault.clone(),
            sink: Arc::new(MemorySink::new()),
            events: Arc::new(MemoryEvents::new()),
            queue: queue.clone(),
            audit: store.clone(),
            clock: clock.clone(),
            providers: BTreeMap::from([(ProviderKind::Dropbox, provider.clone() as Arc<dyn Provider>)]),
        };
        let connections = Connections::new(ports.clone(), Tokens::new(ports.clone(), TokenPolicy::default()));
        let oauth = OAuthFlow::new(ports.clone(), extconn_core::oauth::DEFAULT_STATE_TTL);
        World {
            ports,
            store,
            vault,
            queue,
            clock,
            provider,
            connections,
            oauth,
            hooked_connections,
            hooked_grants,
            codes: Mutex::new(0),
        }
    }

    /// Runs `f` to completion just before the next conditional connection update.
    pub fn before_conditional_update(&self, f: BoxFuture<'static, ()>) {
        self.hooked_connections.before_conditional_update.set(f);
    }

    /// Runs `f` to completion just before the next grant create.
    pub fn before_grant_create(&self, f: BoxFuture<'static, ()>) {
        self.hooked_grants.before_create.set(f);
    }

    /// Fails the test if a hook is still waiting for its race window (dropping it, so nothing
    /// waits on it forever).
    pub fn assert_hooks_fired(&self) {
        let unfired = [
            self.hooked_connections.before_conditional_update.disarm(),
            self.hooked_grants.before_create.disarm(),
        ];
        assert_eq!(unfired, [false, false], "the race window was never reached");
    }

    /// `who` starts an authorization from a browser holding `binding` (None: a new browser).
    /// Returns the start and the state the provider will send back.
    pub async fn authorize(&self, who: &Actor, binding: Option<&Secret>) -> (Started, Secret) {
        let started =
            self.oauth.start(who, ProviderKind::Dropbox, REDIRECT, binding.cloned()).await.expect("start");
        let state = started
            .authorization_url
            .split("state=")
            .nth(1)
            .and_then(|s| s.split('&').next())
            .expect("state in the authorization url")
            .to_owned();
        (started, Secret::new(state))
    }

    /// The provider's redirect after `account` consented: a fresh code for it.
    pub fn callback(&self, started: &Started, state: &Secret, account: &str) -> Callback {
        let mut n = self.codes.lock().expect("codes lock");
        *n += 1;
        let code = format!("code-{n}");
        self.provider.consent(&code, account);
        Callback {
            provider: ProviderKind::Dropbox,
            state: state.clone(),
            binding: Some(started.binding.clone()),
            error: None,
            code: Some(Secret::new(code)),
            redirect_uri: REDIRECT.into(),
        }
    }

    /// The whole connect flow: `who` authorizes `account`; returns its grant.
    pub async fn connect_account(&self, who: &Actor, account: &str) -> Grant {
        let (started, state) = self.authorize(who, None).await;
        self.oauth.complete(self.callback(&started, &state, account)).await.expect("complete").grant
    }

    /// `who` connects folder `folder_id` (which the provider knows) through `grant`.
    pub async fn connect_folder(&self, who: &Actor, grant: &Grant, folder_id: &str) -> Connection {
        let usable = self.connections.grant(who, &grant.id).await.expect("usable grant");
        let folder = FolderLocator { folder_id: folder_id.into(), drive_id: None };
        let new = NewConnection { folder, auto_sync: true };
        self.connections.create(who, usable, new).await.expect("create")
    }

    pub fn clock_now(&self) -> Timestamp {
        self.ports.clock.now()
    }

    pub async fn grant(&self, g: &Grant) -> Option<Grant> {
        GrantStore::get(self.store.as_ref(), &g.client_id, &g.id).await.expect("grant")
    }

    pub async fn connection(&self, c: &Connection) -> Option<Connection> {
        ConnectionStore::get(self.store.as_ref(), &c.key()).await.expect("connection")
    }

    pub async fn tokens(&self, g: &Grant) -> Option<TokenSet> {
        self.vault.get(&g.secret_ref).await.expect("vault").map(|v| v.tokens)
    }

    /// The client's audit trail, oldest first, as (action, actor).
    pub async fn trail(&self, client: &str) -> Vec<(String, String)> {
        let client = ClientId::parse(client).expect("client");
        let events = AuditLog::list(self.store.as_ref(), &client, 100).await.expect("audit");
        events.into_iter().rev().map(|e| (e.action, e.actor.to_string())).collect()
    }

    /// Marks a run finished, as a worker would.
    pub async fn finish_run(&self, c: &Connection, run: &RunId) {
        let patch = RunPatch { status: Some(RunStatus::Succeeded), ..Default::default() };
        self.ports.runs.update(&c.key(), run, &patch, None).await.expect("run update");
    }
}
