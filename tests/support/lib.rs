#![allow(missing_debug_implementations)]
//! The system-test world: in-memory stores, an asset sink, the Dropbox sandbox on loopback, the
//! real Dropbox connector pointed at it, and the engine, all sharing one virtual clock.

pub mod api;
pub mod conformance;
pub mod cost;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use extconn_core::engine::{Engine, EngineConfig, EngineError, Hooks, JobOutcome};
use extconn_core::memory::{ManualClock, MemoryEvents, MemoryQueue, MemorySink, MemoryStore, MemoryVault};
use extconn_core::ports::{
    self as P, AssetEvents, AssetSink, Clock, ConnectionStore, GrantStore, Provider, TokenVault,
};
use extconn_core::{
    ClientId, ConnKey, Connection, ConnectionCounters, ConnectionId, ConnectionStatus, Filters,
    FolderLocator, Grant, GrantId, GrantStatus, Item, ItemState, Job, Ports, ProviderKind, Secret,
    SyncPosition, SyncedBy, Timestamp, TokenSet, Trigger, UserId,
};
use extconn_providers::dropbox::{Dropbox, DropboxConfig};
use extconn_sandbox::dropbox::{AccountId, Content, DropboxControl, Endpoint};
use extconn_sandbox::{OAuthClient, ProviderControl, Sandbox, SandboxConfig, Service};

pub use extconn_sandbox::dropbox::Fault;

pub const CLIENT_ID: &str = "extconn-test-app";
pub const CLIENT_SECRET: &str = "CANARY-CLIENT-SECRET-7f3a";
pub const REDIRECT: &str = "http://127.0.0.1/v1/oauth/dropbox/callback";
pub const FOLDER: &str = "/Team Assets";

/// Captures every log event at TRACE for the whole test binary (leak scans read it).
pub fn log_capture() -> Arc<Mutex<Vec<u8>>> {
    static BUF: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUF.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let make = move || CaptureWriter(writer.clone());
        // TRACE for everything, with the same caps on the SDK and HTTP crates as the Lambdas.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(extconn_lambda::log_filter("trace")))
            .with_writer(make)
            .with_ansi(false)
            .try_init();
        buf
    })
    .clone()
}

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub struct WorldOptions {
    pub page_limit: u32,
    pub sink: SinkKind,
    pub clock: Option<Arc<dyn Clock>>,
    /// The client secret the connector is configured with (default: the sandbox's own); a
    /// wrong one makes the token endpoint answer `invalid_client`.
    pub connector_secret: Option<String>,
    /// `EngineConfig::transfer_concurrency` of the world's engines (default: the engine's).
    pub transfer_concurrency: usize,
    /// The connection's maximum file size (default: [`Filters::default`]'s).
    pub max_file_size: Option<u64>,
}

impl Default for WorldOptions {
    fn default() -> Self {
        Self {
            page_limit: 2000,
            sink: SinkKind::Memory,
            clock: None,
            connector_secret: None,
            transfer_concurrency: EngineConfig::default().transfer_concurrency,
            max_file_size: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    Memory,
    /// The local-mode file sink in a temp dir.
    Local,
    /// The local-mode file sink in a temp dir under this folder (a benchmark's choice).
    LocalIn(std::path::PathBuf),
}

pub struct World {
    pub sandbox: Sandbox,
    /// The Dropbox emulator's own handle, for Dropbox-specific scenarios (paths, endpoints).
    pub dbx: DropboxControl,
    /// The same emulator behind the provider-neutral control trait.
    pub control: Arc<dyn ProviderControl>,
    pub account: AccountId,
    pub clock: Arc<ManualClock>,
    pub store: Arc<MemoryStore>,
    pub vault: Arc<MemoryVault>,
    pub memory_sink: MemorySink,
    pub local_sink: Option<(tempfile::TempDir, extconn_core::local::LocalAssetSink)>,
    pub events: Arc<MemoryEvents>,
    pub queue: Arc<MemoryQueue>,
    pub ports: Ports,
    pub grant: Grant,
    pub conn: ConnKey,
    pub folder_id: String,
    /// Downloads in progress at the connector, and the most at once.
    pub downloads: Arc<Gauge>,
    /// The world's engines' `transfer_concurrency`.
    pub transfer_concurrency: usize,
    /// The maximum file size of the connections it creates.
    pub max_file_size: u64,
}

impl World {
    pub async fn new(opts: WorldOptions) -> World {
        let _ = log_capture();
        let clock = Arc::new(ManualClock::default());
        let sandbox_clock = clock.clone();
        let now: extconn_sandbox::TimeSource = Arc::new(move || SystemTime::from(sandbox_clock.now()));
        let sandbox = Sandbox::start(SandboxConfig {
            clients: vec![OAuthClient {
                service: Service::Dropbox,
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.into(),
                redirect_uris: vec![REDIRECT.into()],
            }],
            now: Some(now),
            ..Default::default()
        })
        .await;
        let dbx = sandbox.dropbox();
        let control = sandbox.control(Service::Dropbox);
        let account = dbx.create_account("Ana Admin", "ana@example.com");
        let folder = dbx.add_folder(&account, FOLDER);
        let engine_clock: Arc<dyn Clock> = opts.clock.clone().unwrap_or_else(|| clock.clone());

        let urls = dbx.urls();
        let secret = opts.connector_secret.clone().unwrap_or_else(|| CLIENT_SECRET.into());
        let mut config = DropboxConfig::new(CLIENT_ID, Secret::new(secret)).with_bases(
            urls.www_base.clone(),
            urls.api_base.clone(),
            urls.content_base.clone(),
        );
        config.page_limit = opts.page_limit;
        config.clock = engine_clock.clone();
        let downloads = Arc::new(Gauge::default());
        let provider: Arc<dyn Provider> =
            Arc::new(Counting { inner: Arc::new(Dropbox::new(config)), downloads: downloads.clone() });

        let store = Arc::new(MemoryStore::new());
        let vault = Arc::new(MemoryVault::new());
        let memory_sink = MemorySink::new();
        let local_sink = match opts.sink {
            SinkKind::Memory => None,
            SinkKind::Local | SinkKind::LocalIn(_) => {
                let dir = match &opts.sink {
                    SinkKind::LocalIn(parent) => tempfile::tempdir_in(parent),
                    _ => tempfile::tempdir(),
                }
                .expect("tempdir");
                let sink = extconn_core::local::LocalAssetSink::new(dir.path());
                Some((dir, sink))
            }
        };
        let sink: Arc<dyn AssetSink> = match &local_sink {
            Some((_, s)) => Arc::new(s.clone()),
            None => Arc::new(memory_sink.clone()),
        };
        let events = Arc::new(MemoryEvents::new());
        let queue = Arc::new(MemoryQueue::new());
        let ports = Ports {
            connections: store.clone(),
            grants: store.clone(),
            items: store.clone(),
            runs: store.clone(),
            oauth_states: store.clone(),
            vault: vault.clone(),
            sink,
            events: events.clone() as Arc<dyn AssetEvents>,
            queue: queue.clone(),
            audit: store.clone(),
            clock: engine_clock.clone(),
            providers: BTreeMap::from([(ProviderKind::Dropbox, provider)]),
        };

        let client = ClientId::parse("acme").expect("client");
        let (access, refresh) = dbx.mint_tokens(&account, CLIENT_ID);
        let grant = Grant {
            client_id: client.clone(),
            id: GrantId::generate(),
            provider: ProviderKind::Dropbox,
            account_id: account.as_str().to_owned(),
            account_name: "Ana Admin".into(),
            account_email: Some("ana@example.com".into()),
            secret_ref: format!("extconn/acme/{}", GrantId::generate()),
            created_by: UserId::parse("ana").expect("user"),
            created_at: engine_clock.now(),
            status: GrantStatus::Active,
            attached: true,
            paused_until: None,
        };
        GrantStore::create(store.as_ref(), &grant).await.expect("grant");
        let tokens = TokenSet {
            access_token: Secret::new(access),
            refresh_token: Some(Secret::new(refresh)),
            expires_at: Some(engine_clock.now() + chrono::Duration::hours(4)),
        };
        vault.put(&grant.secret_ref, &tokens, None).await.expect("vault");
        let mut w = World {
            sandbox,
            dbx,
            control,
            account,
            clock,
            store,
            vault,
            memory_sink,
            local_sink,
            events,
            queue,
            ports,
            grant,
            conn: ConnKey { client_id: client.clone(), connection_id: ConnectionId::generate() },
            folder_id: folder.id.clone(),
            downloads,
            transfer_concurrency: opts.transfer_concurrency,
            max_file_size: opts.max_file_size.unwrap_or(Filters::default().max_file_size),
        };
        w.conn = w.connect(&folder.id, FOLDER).await;
        w
    }

    /// Creates a connection on `folder_id` using the world's grant.
    pub async fn connect(&self, folder_id: &str, path: &str) -> ConnKey {
        let now = self.ports.clock.now();
        let c = Connection {
            client_id: self.grant.client_id.clone(),
            id: ConnectionId::generate(),
            grant_id: self.grant.id.clone(),
            provider: ProviderKind::Dropbox,
            folder: FolderLocator { folder_id: folder_id.into(), drive_id: None },
            folder_name: path.rsplit('/').next().unwrap_or(path).into(),
            folder_path: path.into(),
            auto_sync: true,
            sync_interval_secs: 900,
            status: ConnectionStatus::Active,
            current_run_id: None,
            last_synced_at: None,
            synced_by: SyncedBy {
                user_id: UserId::parse("ana").expect("user"),
                display_name: "Ana Admin".into(),
            },
            created_at: now,
            position: SyncPosition::Initial,
            lease: None,
            lease_version: 0,
            counters: ConnectionCounters::default(),
            filters: Filters { max_file_size: self.max_file_size, ..Filters::default() },
            next_due_at: Some(now),
            not_before: None,
            status_reason: None,
            held_deletions: None,
            approved_deletions: None,
        };
        ConnectionStore::create(self.store.as_ref(), &c).await.expect("connection");
        c.key()
    }

    /// The engine configuration of this world (the defaults, with its transfer concurrency).
    pub fn config(&self) -> EngineConfig {
        EngineConfig { transfer_concurrency: self.transfer_concurrency, ..EngineConfig::default() }
    }

    pub fn engine(&self) -> Engine {
        Engine::new(self.ports.clone(), self.config())
    }

    pub fn engine_with(&self, config: EngineConfig, hooks: Arc<dyn Hooks>) -> Engine {
        Engine::with_hooks(self.ports.clone(), config, hooks)
    }

    pub fn job(&self, trigger: Trigger) -> Job {
        Job {
            client_id: self.conn.client_id.clone(),
            connection_id: self.conn.connection_id.clone(),
            trigger,
            run_id: None,
            requested_by: None,
            continuation: false,
            purge: false,
        }
    }

    pub fn deadline(&self) -> Timestamp {
        self.ports.clock.now() + chrono::Duration::minutes(15)
    }

    /// One job, run to its end on a fresh engine with a 15-minute deadline.
    pub async fn sync(&self, trigger: Trigger) -> JobOutcome {
        self.try_sync(trigger).await.expect("sync step")
    }

    /// [`World::sync`], its error returned.
    pub async fn try_sync(&self, trigger: Trigger) -> Result<JobOutcome, EngineError> {
        self.engine().run_job(&self.job(trigger), self.deadline()).await
    }

    /// [`World::try_sync`] in a task of its own, as the sync-worker and `extconn-local` run a
    /// job: on the runtime's worker threads, not on the caller's (a bench's `block_on` thread
    /// would be a core's worth of scheduling no deployment has).
    pub async fn sync_in_task(&self, trigger: Trigger) -> Result<JobOutcome, EngineError> {
        let (engine, job, deadline) = (self.engine(), self.job(trigger), self.deadline());
        tokio::spawn(async move { engine.run_job(&job, deadline).await })
            .await
            .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    pub fn add(&self, rel: &str, text: &str) -> extconn_sandbox::dropbox::EntryInfo {
        self.dbx.add_file(&self.account, &format!("{FOLDER}/{rel}"), Content::text(text))
    }

    pub fn calls(&self, e: Endpoint) -> u64 {
        self.dbx.calls(e)
    }

    /// Provider calls of every kind.
    pub fn provider_calls(&self) -> u64 {
        self.dbx.call_log().len() as u64
    }

    pub fn items(&self) -> Vec<Item> {
        self.store.all_items(&self.conn)
    }

    pub async fn connection(&self) -> Connection {
        ConnectionStore::get(self.store.as_ref(), &self.conn).await.expect("get").expect("connection exists")
    }

    /// sha256 of every stored object by key (memory or local sink).
    pub fn objects(&self) -> BTreeMap<String, String> {
        match &self.local_sink {
            None => self.memory_sink.objects().into_iter().map(|(k, o)| (k, o.sha256)).collect(),
            Some((dir, _)) => {
                let root = dir.path().join("objects");
                let mut out = BTreeMap::new();
                walk(&root, &root, &mut out);
                out
            }
        }
    }

    /// The invariants of reliability.md B1, checked against the sandbox's truth:
    /// I1 every live file is imported with an object whose sha256 equals the source's;
    /// I2 one object per (item, content version) and no object without an item version;
    /// I3 the cursor is incremental only when nothing is pending.
    pub async fn assert_invariants(&self) {
        let objects = self.objects();
        let items: BTreeMap<String, Item> =
            self.items().into_iter().map(|i| (i.provider_id.clone(), i)).collect();
        let live = self.dbx.list_files(&self.account, FOLDER);
        for f in &live {
            let item = items.get(&f.id).unwrap_or_else(|| panic!("I1: {} has no item", f.path_display));
            assert_eq!(
                item.state,
                ItemState::Imported,
                "I1: {} is {:?} ({:?})",
                f.path_display,
                item.state,
                item.reason
            );
            assert_eq!(item.path, f.path_display, "item path follows the source");
            let key = item.asset_key.as_ref().expect("imported item has an asset");
            let sha = objects.get(key).unwrap_or_else(|| panic!("I1: object of {} missing", f.path_display));
            assert_eq!(
                sha,
                &self.dbx.sha256_of(&self.account, &f.id),
                "I7: {} differs from the source",
                f.path_display
            );
        }
        let live_ids: std::collections::HashSet<&str> = live.iter().map(|f| f.id.as_str()).collect();
        for i in items.values().filter(|i| !i.is_folder() && !live_ids.contains(i.provider_id.as_str())) {
            assert!(
                matches!(i.state, ItemState::SourceDeleted | ItemState::Skipped),
                "a file gone from the source is {:?}: {}",
                i.state,
                i.path
            );
        }
        let per_item: usize = objects
            .keys()
            .map(|k| k.rsplit_once('/').map_or("", |x| x.0))
            .collect::<std::collections::HashSet<_>>()
            .len();
        assert!(per_item <= items.values().filter(|i| !i.is_folder()).count(), "I2: objects without items");
    }

    /// Every canary the sandbox issued or saw, scanned for in `haystacks`, the captured logs and
    /// the queue bodies.
    pub fn assert_no_leaks(&self, haystacks: &[String]) {
        let logs =
            String::from_utf8_lossy(&log_capture().lock().unwrap_or_else(|p| p.into_inner())).into_owned();
        assert!(!logs.is_empty(), "the log capture saw nothing: the leak scan would prove nothing");
        let mut all = haystacks.to_vec();
        all.push(logs);
        all.extend(self.queue.bodies());
        all.push(format!("{:?}", self.events.all()));
        all.push(self.store.snapshot());
        let canaries = self.control.canaries();
        assert!(!canaries.is_empty(), "the sandbox issued no canaries");
        for c in &canaries {
            for h in &all {
                assert!(
                    !h.contains(c.as_str()),
                    "secret leaked: a canary ({}…) appears in output",
                    &c[..c.len().min(12)]
                );
            }
        }
    }
}

fn walk(root: &std::path::Path, dir: &std::path::Path, out: &mut BTreeMap<String, String>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(root, &p, out);
        } else if let Some(sha) = sha256_of_file(&p) {
            let key = p.strip_prefix(root).map(|k| k.to_string_lossy().into_owned()).unwrap_or_default();
            out.insert(key, sha);
        }
    }
}

/// Streamed: a benchmark's objects are gigabytes.
fn sha256_of_file(path: &std::path::Path) -> Option<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut f = std::fs::File::open(path).ok()?;
    let (mut h, mut buf) = (Sha256::new(), vec![0u8; 1 << 20]);
    loop {
        match f.read(&mut buf).ok()? {
            0 => return Some(hex::encode(h.finalize())),
            n => h.update(&buf[..n]),
        }
    }
}

/// Crash at the `n`-th occurrence of a step (1-based), once.
pub struct CrashAt {
    pub step: extconn_core::engine::Step,
    pub nth: usize,
    seen: Mutex<usize>,
}

impl CrashAt {
    pub fn new(step: extconn_core::engine::Step, nth: usize) -> Arc<Self> {
        Arc::new(Self { step, nth, seen: Mutex::new(0) })
    }
    pub fn fired(&self) -> bool {
        *self.seen.lock().unwrap_or_else(|p| p.into_inner()) >= self.nth
    }
}

impl Hooks for CrashAt {
    fn at(&self, step: extconn_core::engine::Step) -> Result<(), extconn_core::engine::Crash> {
        if step != self.step {
            return Ok(());
        }
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        *seen += 1;
        if *seen == self.nth { Err(extconn_core::engine::Crash) } else { Ok(()) }
    }
}

/// Advances the virtual clock by `d` at every step (time passing while files transfer).
pub struct Ticking {
    pub clock: Arc<ManualClock>,
    pub per_item: Duration,
}

impl Hooks for Ticking {
    fn at(&self, step: extconn_core::engine::Step) -> Result<(), extconn_core::engine::Crash> {
        if step == extconn_core::engine::Step::ItemWritten {
            self.clock.advance(self.per_item);
        }
        Ok(())
    }
}

pub use extconn_sandbox::dropbox::Endpoint as Ep;

/// Points every record port of `ports` (connections, grants, items, runs, OAuth states, audit)
/// at one store, as the functions wire their DynamoDB store.
pub fn set_store<S>(ports: &mut Ports, store: Arc<S>)
where
    S: ConnectionStore + GrantStore + P::ItemStore + P::RunStore + P::OAuthStateStore + P::AuditLog + 'static,
{
    ports.connections = store.clone();
    ports.grants = store.clone();
    ports.items = store.clone();
    ports.runs = store.clone();
    ports.oauth_states = store.clone();
    ports.audit = store;
}

/// A name unique to this call (AWS resources on the shared emulator: tables, buckets, queues).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", extconn_core::RunId::generate().as_str().trim_start_matches("run_"))
}

impl World {
    pub fn clock_now(&self) -> Timestamp {
        self.ports.clock.now()
    }
}

/// Counts downloads in progress: from the request until its byte stream ends or is dropped
/// (the engine drops it once read, before the commit). `peak` is the most at once.
#[derive(Debug, Default)]
pub struct Gauge {
    now: std::sync::atomic::AtomicUsize,
    peak: std::sync::atomic::AtomicUsize,
    /// How many were in progress when each download started (itself included), in order.
    starts: Mutex<Vec<usize>>,
    /// When each file's latest download started, by provider id (the benchmark's per-file
    /// latency runs from here).
    started: Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

impl Gauge {
    fn start(self: &Arc<Self>, id: &str) -> GaugeGuard {
        use std::sync::atomic::Ordering::SeqCst;
        self.started
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.to_owned(), std::time::Instant::now());
        let mut starts = self.starts.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.now.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(n, SeqCst);
        starts.push(n);
        GaugeGuard(self.clone())
    }

    pub fn peak(&self) -> usize {
        self.peak.load(std::sync::atomic::Ordering::SeqCst)
    }

    pub fn in_progress(&self) -> usize {
        self.now.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// In progress at each download's start, in start order.
    pub fn at_starts(&self) -> Vec<usize> {
        self.starts.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// When the latest download of the file with this provider id started.
    pub fn started_at(&self, provider_id: &str) -> Option<std::time::Instant> {
        self.started.lock().unwrap_or_else(|p| p.into_inner()).get(provider_id).copied()
    }

    /// Forgets the peak and the starts (downloads still in progress stay counted).
    pub fn reset(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        self.starts.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.started.lock().unwrap_or_else(|p| p.into_inner()).clear();
        self.peak.store(self.now.load(SeqCst), SeqCst);
    }
}

struct GaugeGuard(Arc<Gauge>);

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.now.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// The connector, with its downloads counted by a [`Gauge`]; everything else passes through.
struct Counting {
    inner: Arc<dyn Provider>,
    downloads: Arc<Gauge>,
}

#[async_trait::async_trait]
impl Provider for Counting {
    fn kind(&self) -> ProviderKind {
        self.inner.kind()
    }
    fn capabilities(&self) -> P::Capabilities {
        self.inner.capabilities()
    }
    fn accepts_id(&self, id: &str) -> bool {
        self.inner.accepts_id(id)
    }
    fn authorize_url(&self, req: &P::AuthorizeRequest) -> Result<String, P::ProviderError> {
        self.inner.authorize_url(req)
    }
    async fn exchange_code(
        &self,
        code: &Secret,
        pkce_verifier: &Secret,
        redirect_uri: &str,
    ) -> Result<TokenSet, P::ProviderError> {
        self.inner.exchange_code(code, pkce_verifier, redirect_uri).await
    }
    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, P::ProviderError> {
        self.inner.refresh(tokens).await
    }
    async fn revoke(&self, tokens: &TokenSet) -> Result<(), P::ProviderError> {
        self.inner.revoke(tokens).await
    }
    async fn account(&self, access: &Secret) -> Result<P::AccountInfo, P::ProviderError> {
        self.inner.account(access).await
    }
    async fn browse_folders(
        &self,
        access: &Secret,
        parent: Option<&FolderLocator>,
        page: Option<&str>,
    ) -> Result<P::FolderPage, P::ProviderError> {
        self.inner.browse_folders(access, parent, page).await
    }
    async fn folder(
        &self,
        access: &Secret,
        folder: &FolderLocator,
    ) -> Result<P::FolderEntry, P::ProviderError> {
        self.inner.folder(access, folder).await
    }
    async fn item(
        &self,
        access: &Secret,
        locator: &FolderLocator,
    ) -> Result<P::RemoteItem, P::ProviderError> {
        self.inner.item(access, locator).await
    }
    async fn content_changed_since(
        &self,
        access: &Secret,
        item: &P::RemoteItem,
        since: &str,
    ) -> Result<Option<bool>, P::ProviderError> {
        self.inner.content_changed_since(access, item, since).await
    }
    async fn start_cursor(
        &self,
        access: &Secret,
        folder: &FolderLocator,
    ) -> Result<String, P::ProviderError> {
        self.inner.start_cursor(access, folder).await
    }
    async fn list_full(
        &self,
        access: &Secret,
        folder: &FolderLocator,
        resume: Option<&str>,
    ) -> Result<P::ListPage, P::ProviderError> {
        self.inner.list_full(access, folder, resume).await
    }
    async fn list_children(
        &self,
        access: &Secret,
        parent: &FolderLocator,
        page: Option<&str>,
    ) -> Result<P::ListPage, P::ProviderError> {
        self.inner.list_children(access, parent, page).await
    }
    async fn list_changes(
        &self,
        access: &Secret,
        folder: &FolderLocator,
        cursor: &str,
    ) -> Result<P::ListPage, P::ProviderError> {
        self.inner.list_changes(access, folder, cursor).await
    }
    async fn download(
        &self,
        access: &Secret,
        req: &P::DownloadRequest,
    ) -> Result<P::Download, P::ProviderError> {
        use futures::StreamExt;
        let guard = self.downloads.start(&req.item.id);
        let mut d = self.inner.download(access, req).await?;
        // The guard lives as long as the byte stream.
        d.stream = d
            .stream
            .map(move |chunk| {
                let _alive = &guard;
                chunk
            })
            .boxed();
        Ok(d)
    }
}
