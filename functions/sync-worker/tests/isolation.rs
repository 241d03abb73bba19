//! One bad message never fails the batch: malformed bodies are acknowledged, a panicking sync
//! step is reported as that message's failure only, and no failure is ever reported with an
//! empty itemIdentifier (which would fail the whole batch). The messages of a batch run at
//! once, each with the invocation's whole deadline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use extconn_core::engine::EngineConfig;
use extconn_core::memory::{ManualClock, MemoryEvents, MemoryQueue, MemorySink, MemoryStore, MemoryVault};
use extconn_core::ports::provider::AuthorizeRequest;
use extconn_core::ports::*;
use extconn_core::*;
use extconn_sync_worker::Worker;
use serde_json::{Value, json};

/// A connector that panics when asked to list (a bug in a provider module), or, `Slow`, takes
/// its time to answer that the folder is gone, counting the calls in flight.
enum Scripted {
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
async fn world(provider: Arc<Scripted>) -> (Ports, Grant) {
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
async fn connection(ports: &Ports, grant: &Grant, folder: &str) -> Connection {
    let mut conn = testkit::sample_connection(&grant.client_id, folder);
    conn.grant_id = grant.id.clone();
    conn.next_due_at = None;
    ports.connections.create(&conn).await.expect("test setup");
    conn
}

fn job(c: &ConnectionId) -> String {
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

#[tokio::test]
async fn a_bad_message_never_fails_the_batch() {
    let (ports, grant) = world(Arc::new(Scripted::Panicking)).await;
    let conn = connection(&ports, &grant, "id:folder").await;
    let worker = Worker::new(ports.clone(), EngineConfig::default());
    let event = json!({"Records": [
        {"messageId": "malformed", "body": "{\"client_id\": 1}", "eventSource": "aws:sqs"},
        {"messageId": "panics", "body": job(&conn.id), "eventSource": "aws:sqs"},
        {"messageId": "gone", "body": job(&ConnectionId::generate()), "eventSource": "aws:sqs"},
        {"messageId": "", "body": job(&conn.id), "eventSource": "aws:sqs"}
    ]});
    let deadline = ports.clock.now() + chrono::Duration::minutes(5);
    let resp: Value = worker.handle(event, deadline).await.expect("the batch itself never fails");
    let failed: Vec<&str> = resp["batchItemFailures"]
        .as_array()
        .expect("test setup")
        .iter()
        .map(|f| f["itemIdentifier"].as_str().expect("test setup"))
        .collect();
    assert_eq!(failed, ["panics"], "only the panicking message is redelivered; never an empty id");
    // An unrecognised event is an error, not a silent success.
    assert!(worker.handle(json!({"hello": 1}), deadline).await.is_err());
}

/// A batch's messages are in flight together: the second does not wait for the first (each has
/// the whole deadline). Counted at the provider, not timed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_messages_of_a_batch_run_at_once() {
    let slow = Arc::new(Scripted::Slow { active: AtomicUsize::new(0), peak: AtomicUsize::new(0) });
    let (ports, grant) = world(slow.clone()).await;
    let mut records = Vec::new();
    for i in 0..3 {
        let conn = connection(&ports, &grant, &format!("id:folder-{i}")).await;
        records.push(json!({"messageId": format!("m{i}"), "body": job(&conn.id), "eventSource": "aws:sqs"}));
    }
    let worker = Worker::new(ports.clone(), EngineConfig::default());
    let deadline = ports.clock.now() + chrono::Duration::minutes(5);
    let resp = worker.handle(json!({ "Records": records }), deadline).await.expect("batch");
    assert_eq!(resp["batchItemFailures"], json!([]), "{resp}");
    let Scripted::Slow { peak, .. } = slow.as_ref() else { unreachable!() };
    assert_eq!(peak.load(Ordering::SeqCst), 3, "the three messages' first calls overlap");
    // Each ran to its end: the folder is gone, said on each connection.
    for c in ports.connections.list(&grant.client_id, None).await.expect("test setup") {
        assert_eq!(c.status, ConnectionStatus::FolderUnavailable, "{:?}", c.id);
    }
}

/// Logs written inside a message's task carry the invocation's request id (the span the
/// Lambda runtime opens per invocation) and the connection: a spawned task starts outside
/// every span unless given one.
#[tokio::test]
async fn a_message_task_logs_under_the_invocation_request_id() {
    use tracing::Instrument;
    let buf = Arc::new(std::sync::Mutex::new(Vec::new()));
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || Capture(writer.clone()))
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The current-thread runtime runs the spawned task on this thread, under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let slow = Arc::new(Scripted::Slow { active: AtomicUsize::new(0), peak: AtomicUsize::new(0) });
    let (ports, grant) = world(slow).await;
    let conn = connection(&ports, &grant, "id:folder").await;
    let worker = Worker::new(ports.clone(), EngineConfig::default());
    let event = json!({"Records": [{"messageId": "m1", "body": job(&conn.id), "eventSource": "aws:sqs"}]});
    let deadline = ports.clock.now() + chrono::Duration::minutes(5);
    let invoke = tracing::info_span!("Lambda runtime invoke", requestId = "req-4242");
    worker.handle(event, deadline).instrument(invoke).await.expect("batch");
    let logs = String::from_utf8(buf.lock().expect("logs").clone()).expect("utf-8");
    let engine: Vec<&str> = logs.lines().filter(|l| l.contains("extconn_core")).collect();
    assert!(!engine.is_empty(), "the run logged something: {logs}");
    for line in engine {
        assert!(line.contains("req-4242"), "no request id: {line}");
        assert!(line.contains(&conn.id.to_string()), "no connection: {line}");
    }
}

struct Capture(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("logs").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
