//! The cost bench: what the system asks of AWS, counted request by request through an SDK
//! interceptor on every AWS client of the functions' ports, against the AWS emulator (moto) and
//! the Dropbox sandbox. [`run`] sets up and measures five cases at size `n`:
//!
//! - (a) `no_change_sync`: a scheduled sync of an `n`-file connection with nothing changed,
//!   through the sync worker's handler;
//! - (b) `import_new_files`: `n / 10` new small files at the source of a synced connection,
//!   synced through the worker's handler; and (b′) `initial_import`: a new connection's initial
//!   import of `n / 10` files (its listing ends with the sweep);
//! - (c) `scheduler_tick`: one tick of the scheduler's handler with `n` due connections;
//! - (d) `list_runs`: the API's `GET /v1/connections/{id}/runs` on a connection with `n` runs;
//! - (e) `grant_sweep`: the worker's hourly sweep with `n` grants of which 10 are due.
//!
//! Setup is not counted: a synced connection's state is what the real engine produced on an
//! in-memory store (an initial import of the same sandbox folder), bulk-loaded into DynamoDB
//! with BatchWriteItem in the store's own layout (`extconn_aws::dynamo::*_record`). The cases
//! that write with transactions, and the scheduler and the sweep, run on tables of their own:
//! moto copies a whole table for every transaction and reads one for every index Query, so
//! small tables keep the emulator fast (what is counted does not depend on it).
//! `tests/tests/aws_cost.rs` asserts the counts at 2,000; `tests/examples/cost_bench.rs`
//! (`scripts/bench-cost`) prints them at 10,000 and writes them as JSON for `scripts/cost.py`.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextRef,
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use extconn_aws::{DynamoStore, EventBridgeEvents, S3Sink, SecretsVault, SqsQueue};
use extconn_core::engine::{Engine, EngineConfig, JobOutcome};
use extconn_core::memory::{MemoryEvents, MemoryQueue, MemorySink, MemoryStore, MemoryVault};
use extconn_core::ports::{ConnectionStore, GrantStore, Provider, SystemClock, TokenVault};
use extconn_core::{
    ClientId, ConnKey, Connection, ConnectionCounters, ConnectionId, ConnectionStatus, Filters,
    FolderLocator, Grant, GrantId, GrantStatus, Job, Ports, ProviderKind, RunStatus, Secret, SyncPosition,
    SyncRun, SyncedBy, TokenSet, Trigger, UserId, testkit,
};
use extconn_providers::dropbox::{Dropbox, DropboxConfig};
use extconn_sandbox::dropbox::{AccountId, Content, DropboxControl, Endpoint};
use extconn_sandbox::{OAuthClient, Sandbox, SandboxConfig, Service};
use extconn_sync_worker::Worker;

use crate::unique;
use serde_json::{Value, json};
use tower::ServiceExt;

const APP: &str = "extconn-cost-bench";
const APP_SECRET: &str = "cost-bench-app-secret";
const FOLDER: &str = "/Brand Assets";
/// Files per folder in the seeded trees (a realistic fan-out, and folder items to keep).
const PER_FOLDER: usize = 100;
/// The size of a "small file": well under one multipart part, so one PutObject each.
pub const SMALL_FILE: u64 = 2_048;
/// Grants due in the sweep case, whatever `n`.
pub const DUE_GRANTS: usize = 10;

/// What one AWS operation cost in a case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpStats {
    /// Requests the code made: an operation the SDK retried counts once. Asserted and priced.
    pub requests: u64,
    /// Attempts beyond an operation's first (the SDK's retries of a 5xx, a throttle or a
    /// timeout): against the emulator, its load, not the design; printed apart.
    pub retries: u64,
    /// Query only: summed `ScannedCount` and `Count`.
    pub scanned: u64,
    pub returned: u64,
    /// TransactWriteItems only: the items of the transactions.
    pub tx_items: u64,
    /// Request and response body bytes (streamed bodies count 0).
    pub request_bytes: u64,
    pub response_bytes: u64,
    /// The most requests of this operation in flight at once.
    pub max_in_flight: u64,
}

/// Requests per operation, keyed `Service.Operation` (e.g. `DynamoDB.Query`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counts(pub BTreeMap<String, OpStats>);

impl Counts {
    /// Requests of one operation (`"DynamoDB.GetItem"`).
    pub fn op(&self, op: &str) -> u64 {
        self.0.get(op).map_or(0, |s| s.requests)
    }
    /// Requests to one service (`"DynamoDB"`).
    pub fn service(&self, service: &str) -> u64 {
        self.0.iter().filter(|(k, _)| k.split('.').next() == Some(service)).map(|(_, s)| s.requests).sum()
    }
    /// DynamoDB requests that write (every one but GetItem, Query and Scan).
    pub fn dynamo_writes(&self) -> u64 {
        self.service("DynamoDB")
            - self.op("DynamoDB.GetItem")
            - self.op("DynamoDB.Query")
            - self.op("DynamoDB.Scan")
            - self.op("DynamoDB.BatchGetItem")
    }
    /// Summed `ScannedCount` of every Query.
    pub fn scanned(&self) -> u64 {
        self.0.values().map(|s| s.scanned).sum()
    }
    pub fn max_in_flight(&self, op: &str) -> u64 {
        self.0.get(op).map_or(0, |s| s.max_in_flight)
    }
    pub fn total(&self) -> u64 {
        self.0.values().map(|s| s.requests).sum()
    }
}

#[derive(Debug, Default)]
struct CounterState {
    ops: BTreeMap<String, OpStats>,
    in_flight: HashMap<String, u64>,
}

/// The SDK interceptor: one instance on every AWS client of the ports.
#[derive(Debug, Clone, Default)]
pub struct Counter(Arc<Mutex<CounterState>>);

impl Counter {
    fn with<R>(&self, f: impl FnOnce(&mut CounterState) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|p| p.into_inner()))
    }
    /// The counts so far, and a fresh start.
    pub fn take(&self) -> Counts {
        self.with(|s| {
            s.in_flight.clear();
            Counts(std::mem::take(&mut s.ops))
        })
    }
}

fn op_name(cfg: &ConfigBag) -> String {
    cfg.load::<Metadata>().map_or_else(
        || "unknown.unknown".to_owned(),
        |m| format!("{}.{}", m.service().replace(' ', ""), m.name()),
    )
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "cost bench request counter"
    }

    fn read_before_execution(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(tx) = context.input().downcast_ref::<TransactWriteItemsInput>() {
            // (The operation's metadata is not in the bag yet at this point.)
            let items = tx.transact_items().len() as u64;
            self.with(|s| s.ops.entry("DynamoDB.TransactWriteItems".into()).or_default().tx_items += items);
        }
        Ok(())
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = op_name(cfg);
        let bytes = context.request().body().bytes().map_or(0, <[u8]>::len) as u64;
        let retry = cfg.load::<RequestAttempts>().is_some_and(|a| a.attempts() > 1);
        self.with(|s| {
            let now = {
                let f = s.in_flight.entry(op.clone()).or_default();
                *f += 1;
                *f
            };
            let e = s.ops.entry(op).or_default();
            if retry {
                e.retries += 1;
            } else {
                e.requests += 1;
                e.request_bytes += bytes;
            }
            e.max_in_flight = e.max_in_flight.max(now);
        });
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = op_name(cfg);
        let bytes = context.response().body().bytes().map_or(0, <[u8]>::len) as u64;
        self.with(|s| {
            if let Some(f) = s.in_flight.get_mut(&op) {
                *f = f.saturating_sub(1);
            }
            s.ops.entry(op).or_default().response_bytes += bytes;
        });
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(q) =
            context.output_or_error().and_then(|r| r.ok()).and_then(|o| o.downcast_ref::<QueryOutput>())
        {
            let (scanned, count) = (q.scanned_count().max(0) as u64, q.count().max(0) as u64);
            let op = op_name(cfg);
            self.with(|s| {
                let e = s.ops.entry(op).or_default();
                e.scanned += scanned;
                e.returned += count;
            });
        }
        Ok(())
    }
}

/// One measured case.
#[derive(Debug, Clone)]
pub struct Case {
    /// `no_change_sync`, `import_new_files`, `initial_import`, `scheduler_tick`, `list_runs`,
    /// `grant_sweep`.
    pub name: &'static str,
    pub what: String,
    /// The case's size (files, due connections, runs, grants) and what else it found.
    pub facts: BTreeMap<&'static str, u64>,
    pub counts: Counts,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub n: usize,
    pub cases: Vec<Case>,
    /// DynamoDB's size (its item-size rules) of a stored connection, run and file item record
    /// of the big connection: what a write of one costs in write units.
    pub record_bytes: BTreeMap<&'static str, u64>,
}

impl Report {
    pub fn case(&self, name: &str) -> &Case {
        self.cases.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no case {name}"))
    }

    /// The report as JSON (what `scripts/cost.py` reads).
    pub fn to_json(&self) -> Value {
        let cases: Vec<Value> = self
            .cases
            .iter()
            .map(|c| {
                let ops: serde_json::Map<String, Value> = c
                    .counts
                    .0
                    .iter()
                    .map(|(k, s)| {
                        (
                            k.clone(),
                            json!({
                                "requests": s.requests, "retries": s.retries, "scanned": s.scanned, "returned": s.returned,
                                "tx_items": s.tx_items, "request_bytes": s.request_bytes,
                                "response_bytes": s.response_bytes, "max_in_flight": s.max_in_flight,
                            }),
                        )
                    })
                    .collect();
                json!({"name": c.name, "what": c.what, "facts": c.facts, "ops": ops})
            })
            .collect();
        json!({"n": self.n, "small_file_bytes": SMALL_FILE, "record_bytes": self.record_bytes, "cases": cases})
    }

    /// A table of requests per case and per operation.
    pub fn table(&self) -> String {
        let mut out = format!("AWS requests per operation, n = {}\n", self.n);
        let sizes: Vec<String> = self.record_bytes.iter().map(|(k, v)| format!("{k} {v} B")).collect();
        out.push_str(&format!("DynamoDB record sizes: {}\n", sizes.join(", ")));
        for c in &self.cases {
            out.push_str(&format!("\n{} — {}\n", c.name, c.what));
            let facts: Vec<String> = c.facts.iter().map(|(k, v)| format!("{k}={v}")).collect();
            out.push_str(&format!("  {}\n", facts.join(" ")));
            out.push_str(&format!(
                "  {:<40} {:>9} {:>9} {:>9} {:>8} {:>8}\n",
                "operation", "requests", "scanned", "tx items", "req KiB", "in flight"
            ));
            for (op, s) in &c.counts.0 {
                out.push_str(&format!(
                    "  {:<40} {:>9} {:>9} {:>9} {:>8} {:>8}\n",
                    op,
                    s.requests,
                    s.scanned,
                    s.tx_items,
                    s.request_bytes / 1024,
                    s.max_in_flight
                ));
            }
            out.push_str(&format!("  {:<40} {:>9}\n", "total", c.counts.total()));
            let retries: u64 = c.counts.0.values().map(|s| s.retries).sum();
            if retries > 0 {
                out.push_str(&format!("  (and {retries} attempts the SDK retried, not counted above)\n"));
            }
        }
        out
    }
}

/// The AWS resources and ports of one bench, every client counted by one [`Counter`].
struct Bench {
    counter: Counter,
    /// The counted DynamoDB client; `ports` and `worker` are on `table`'s store.
    counted_ddb: aws_sdk_dynamodb::Client,
    raw: DynamoStore,
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    sqs: aws_sdk_sqs::Client,
    queue: String,
    raw_vault: SecretsVault,
    ports: Ports,
    worker: Worker,
    sandbox: Sandbox,
    dbx: DropboxControl,
    account: AccountId,
    provider: Arc<dyn Provider>,
    client: ClientId,
}

macro_rules! counted {
    ($krate:ident, $client:expr, $counter:expr) => {
        $krate::Client::from_conf($client.config().to_builder().interceptor($counter.clone()).build())
    };
}

async fn bench() -> Bench {
    std::env::var("AWS_ENDPOINT_URL").expect(
        "the cost bench needs the AWS emulator: run it with scripts/with-aws-emulator (scripts/test does)",
    );
    let sdk = extconn_aws::sdk_config().await;
    let counter = Counter::default();
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = unique("extconn-cost");
    DynamoStore::create_table(&ddb, &table)
        .await
        .expect("the AWS emulator is unreachable or refused CreateTable");
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let queue =
        sqs.create_queue().queue_name(unique("jobs")).send().await.expect("queue").queue_url.expect("url");
    let s3 = extconn_aws::s3_client(&sdk);
    let bucket = unique("assets");
    s3.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let eb = aws_sdk_eventbridge::Client::new(&sdk);
    let bus = unique("bus");
    eb.create_event_bus().name(&bus).send().await.expect("bus");
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let prefix = format!("{}/", unique("extconn"));

    let sandbox = Sandbox::start(SandboxConfig {
        clients: vec![OAuthClient {
            service: Service::Dropbox,
            client_id: APP.into(),
            client_secret: APP_SECRET.into(),
            redirect_uris: vec!["https://api.test/v1/oauth/dropbox/callback".into()],
        }],
        ..Default::default()
    })
    .await;
    let dbx = sandbox.dropbox();
    let account = dbx.create_account("Demo Designer", "designer@example.com");
    let urls = dbx.urls();
    let provider: Arc<dyn Provider> =
        Arc::new(Dropbox::new(DropboxConfig::new(APP, Secret::new(APP_SECRET)).with_bases(
            urls.www_base,
            urls.api_base,
            urls.content_base,
        )));

    // The functions' adapters (as `extconn_lambda::ports` wires them), on counted clients.
    let store = Arc::new(DynamoStore::new(counted!(aws_sdk_dynamodb, ddb, counter), table.clone()));
    let ports = Ports {
        connections: store.clone(),
        grants: store.clone(),
        items: store.clone(),
        runs: store.clone(),
        oauth_states: store.clone(),
        vault: Arc::new(SecretsVault::new(counted!(aws_sdk_secretsmanager, sm, counter), prefix.clone())),
        sink: Arc::new(S3Sink::new(counted!(aws_sdk_s3, s3, counter), bucket)),
        events: Arc::new(EventBridgeEvents::new(counted!(aws_sdk_eventbridge, eb, counter), bus)),
        queue: Arc::new(SqsQueue::new(counted!(aws_sdk_sqs, sqs, counter), queue.clone())),
        audit: store,
        clock: Arc::new(SystemClock),
        providers: BTreeMap::from([(ProviderKind::Dropbox, provider.clone())]),
    };
    let worker = Worker::new(ports.clone(), EngineConfig::default());
    Bench {
        counted_ddb: counted!(aws_sdk_dynamodb, ddb, counter),
        counter,
        raw: DynamoStore::new(ddb.clone(), table.clone()),
        ddb,
        table,
        sqs,
        queue,
        raw_vault: SecretsVault::new(sm, prefix),
        ports,
        worker,
        sandbox,
        dbx,
        account,
        provider,
        client: ClientId::parse("acme").expect("client id"),
    }
}

impl Bench {
    /// From here on, a fresh table (moto copies a whole table for every transaction: the
    /// import cases run on small tables of their own to stay fast; counts are unaffected).
    async fn fresh_table(&mut self) {
        self.table = unique("extconn-cost");
        DynamoStore::create_table(&self.ddb, &self.table).await.expect("create table");
        self.raw = DynamoStore::new(self.ddb.clone(), self.table.clone());
        let store = Arc::new(DynamoStore::new(self.counted_ddb.clone(), self.table.clone()));
        crate::set_store(&mut self.ports, store);
        self.worker = Worker::new(self.ports.clone(), EngineConfig::default());
    }

    /// A grant of the sandbox account (tokens in Secrets Manager), in DynamoDB and in `memory`.
    async fn grant(&self, memory: &MemoryStore, memory_vault: &MemoryVault) -> Grant {
        let (access, refresh) = self.dbx.mint_tokens(&self.account, APP);
        let id = GrantId::generate();
        let grant = Grant {
            client_id: self.client.clone(),
            id: id.clone(),
            provider: ProviderKind::Dropbox,
            account_id: self.account.as_str().to_owned(),
            account_name: "Demo Designer".into(),
            account_email: Some("designer@example.com".into()),
            secret_ref: format!("{}/{id}", self.client),
            created_by: UserId::parse("ana").expect("user"),
            created_at: chrono::Utc::now(),
            status: GrantStatus::Active,
            attached: true,
            paused_until: None,
        };
        let tokens = TokenSet {
            access_token: Secret::new(access),
            refresh_token: Some(Secret::new(refresh)),
            expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(4)),
        };
        GrantStore::create(&self.raw, &grant).await.expect("grant");
        self.raw_vault.put(&grant.secret_ref, &tokens, None).await.expect("secret");
        GrantStore::create(memory, &grant).await.expect("grant");
        memory_vault.put(&grant.secret_ref, &tokens, None).await.expect("secret");
        grant
    }

    fn connection(&self, grant: &Grant, folder_id: &str, path: &str) -> Connection {
        let now = chrono::Utc::now();
        Connection {
            client_id: self.client.clone(),
            id: ConnectionId::generate(),
            grant_id: grant.id.clone(),
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
            filters: Filters::default(),
            next_due_at: Some(now + chrono::Duration::minutes(15)),
            not_before: None,
            status_reason: None,
            held_deletions: None,
            approved_deletions: None,
        }
    }

    /// Connection `conn` imported by the real engine on an in-memory store, then its record
    /// and items bulk-loaded into DynamoDB: a synced connection of the folder's files.
    async fn synced_connection(&self, folder_id: &str, path: &str) -> (ConnKey, Grant) {
        let memory = Arc::new(MemoryStore::new());
        let vault = Arc::new(MemoryVault::new());
        let grant = self.grant(&memory, &vault).await;
        let conn = self.connection(&grant, folder_id, path);
        ConnectionStore::create(memory.as_ref(), &conn).await.expect("connection");
        let queue = Arc::new(MemoryQueue::new());
        let ports = Ports {
            connections: memory.clone(),
            grants: memory.clone(),
            items: memory.clone(),
            runs: memory.clone(),
            oauth_states: memory.clone(),
            vault,
            sink: Arc::new(MemorySink::new()),
            events: Arc::new(MemoryEvents::new()),
            queue: queue.clone(),
            audit: memory.clone(),
            clock: Arc::new(SystemClock),
            providers: BTreeMap::from([(ProviderKind::Dropbox, self.provider.clone())]),
        };
        let engine = Engine::new(ports, EngineConfig::default());
        let mut job = job(&conn.key(), Trigger::Initial);
        loop {
            let deadline = chrono::Utc::now() + chrono::Duration::minutes(15);
            match engine.run_job(&job, deadline).await.expect("in-memory import") {
                JobOutcome::Finished { status, .. } => {
                    assert_eq!(status, RunStatus::Succeeded, "the in-memory import");
                    break;
                }
                _ => job = queue.drain().pop().expect("a continuation").0,
            }
        }
        let synced =
            ConnectionStore::get(memory.as_ref(), &conn.key()).await.expect("get").expect("connection");
        assert!(matches!(synced.position, SyncPosition::Incremental { .. }), "{:?}", synced.position);
        let mut records = vec![extconn_aws::dynamo::connection_record(&synced).expect("record")];
        for item in memory.all_items(&conn.key()) {
            records.push(extconn_aws::dynamo::item_record(&conn.key(), &item).expect("record"));
        }
        extconn_aws::dynamo::bulk_load(&self.ddb, &self.table, records).await.expect("bulk load");
        (conn.key(), grant)
    }

    /// Delivers `job` to the worker's handler as an SQS batch of one, then any continuation it
    /// queued, until the run ends (Lambda's event source does the receiving: not counted here).
    async fn deliver(&self, first: Job) {
        let mut next = Some(serde_json::to_string(&first).expect("job"));
        let mut steps = 0;
        while let Some(body) = next.take() {
            steps += 1;
            assert!(steps <= 50, "the run did not end in 50 steps");
            let event = json!({"Records": [{"messageId": format!("m{steps}"), "body": body, "eventSource": "aws:sqs"}]});
            let resp = self
                .worker
                .handle(event, chrono::Utc::now() + chrono::Duration::minutes(5))
                .await
                .expect("worker");
            assert_eq!(resp["batchItemFailures"], json!([]), "the step succeeded");
            let out = self
                .sqs
                .receive_message()
                .queue_url(&self.queue)
                .max_number_of_messages(1)
                .send()
                .await
                .expect("receive");
            if let Some(m) = out.messages().first() {
                next = m.body().map(str::to_owned);
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue)
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .send()
                    .await
                    .expect("delete");
            }
        }
    }

    /// DynamoDB's sizes of the connection's record, its newest run's and one file item's.
    async fn record_sizes(&self, key: &ConnKey) -> BTreeMap<&'static str, u64> {
        let pk = format!("CLIENT#{}#CONN#{}", key.client_id, key.connection_id);
        let get = |sk: String, pk: String| async move {
            self.ddb
                .get_item()
                .table_name(&self.table)
                .key("pk", AttributeValue::S(pk))
                .key("sk", AttributeValue::S(sk))
                .send()
                .await
                .expect("get")
                .item
                .expect("record")
        };
        let conn = get(format!("CONN#{}", key.connection_id), format!("CLIENT#{}", key.client_id)).await;
        let run = self.runs_of(key).await.into_iter().next().expect("a run");
        let run = get(format!("RUN#{}", run.id), pk.clone()).await;
        let item = self
            .ddb
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :i)")
            .expression_attribute_values(":pk", AttributeValue::S(pk))
            .expression_attribute_values(":i", AttributeValue::S("ITEM#".into()))
            .limit(50)
            .send()
            .await
            .expect("items")
            .items
            .unwrap_or_default()
            .into_iter()
            .map(|a| item_size(&a))
            .max()
            .unwrap_or(0);
        BTreeMap::from([("connection", item_size(&conn)), ("run", item_size(&run)), ("item", item)])
    }

    async fn runs_of(&self, key: &ConnKey) -> Vec<SyncRun> {
        extconn_core::ports::RunStore::list(&self.raw, key, None, 5).await.expect("runs")
    }
}

/// A record's size by DynamoDB's rules: attribute names plus values (a number's digits / 2 + 1
/// bytes, 3 bytes of overhead per map or list).
fn item_size(a: &HashMap<String, AttributeValue>) -> u64 {
    fn value(v: &AttributeValue) -> u64 {
        match v {
            AttributeValue::S(s) => s.len() as u64,
            AttributeValue::N(n) => n.len().div_ceil(2) as u64 + 1,
            AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
            AttributeValue::B(b) => b.as_ref().len() as u64,
            AttributeValue::M(m) => 3 + m.iter().map(|(k, v)| k.len() as u64 + value(v)).sum::<u64>(),
            AttributeValue::L(l) => 3 + l.iter().map(|v| 1 + value(v)).sum::<u64>(),
            AttributeValue::Ss(l) => l.iter().map(|s| s.len() as u64).sum(),
            _ => 8,
        }
    }
    a.iter().map(|(k, v)| k.len() as u64 + value(v)).sum()
}

fn job(key: &ConnKey, trigger: Trigger) -> Job {
    Job::start(key, trigger)
}

/// An API Gateway HTTP API (payload v2) event for an admin of `acme`, as the JWT authorizer
/// passes it on.
fn apigw_get(path: &str) -> lambda_http::Request {
    let event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json", "host": "api.test"},
        "requestContext": {
            "accountId": "123456789012", "apiId": "api", "domainName": "api.test", "domainPrefix": "api",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "bench"},
            "requestId": "req-1", "routeKey": "$default", "stage": "$default", "time": "30/Nov/2026:04:00:00 +0000", "timeEpoch": 0,
            "authorizer": {"jwt": {"claims": {
                "sub": "ana", "name": "Ana Admin", "custom:client": "acme", "permissions": "[viewer client_admin]"
            }, "scopes": null}}
        },
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("API Gateway v2 event")
}

/// Sets up and measures every case at size `n` (see the module's documentation).
pub async fn run(n: usize) -> Report {
    let mut b = bench().await;
    let mut cases = Vec::new();
    let new_files = (n / 10).max(1);

    // (a) A connection of n files, synced; then a scheduled sync with nothing changed.
    let folder = b.dbx.add_folder(&b.account, FOLDER);
    b.dbx.seed_tree(&b.account, FOLDER, n, PER_FOLDER, SMALL_FILE);
    let started = std::time::Instant::now();
    let mut record_bytes = BTreeMap::new();
    let (big, grant) = b.synced_connection(&folder.id, FOLDER).await;
    eprintln!("cost bench: {n}-file connection imported in memory and loaded in {:?}", started.elapsed());
    let downloads = b.dbx.calls(Endpoint::Download);
    b.counter.take();
    b.deliver(job(&big, Trigger::Schedule)).await;
    let counts = b.counter.take();
    let run = b.runs_of(&big).await.into_iter().next().expect("a run");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(b.dbx.calls(Endpoint::Download), downloads, "nothing downloaded");
    cases.push(Case {
        name: "no_change_sync",
        what: format!("a scheduled sync of a {n}-file connection with nothing changed (worker handler)"),
        facts: BTreeMap::from([("files", n as u64), ("runs", 1)]),
        counts,
    });
    progress(n, &cases, &record_bytes, started);

    // (d) n runs of the big connection; the API lists them (the console's details page).
    let records = (0..n)
        .map(|i| {
            let at = chrono::Utc::now() - chrono::Duration::minutes(15 * (n - i) as i64);
            let mut r = SyncRun::queued(big.clone(), Trigger::Schedule, None, at);
            r.status = RunStatus::Succeeded;
            extconn_aws::dynamo::run_record(&r).expect("record")
        })
        .collect();
    extconn_aws::dynamo::bulk_load(&b.ddb, &b.table, records).await.expect("bulk load");
    let env = extconn_lambda::Env::from_lookup(|k| match k {
        "TABLE_NAME" => Some(b.table.clone()),
        "QUEUE_URL" => Some(b.queue.clone()),
        "CLAIM_CLIENT_ID" => Some("custom:client".into()),
        _ => None,
    })
    .expect("env");
    let sdk = extconn_aws::sdk_config().await;
    let app = extconn_lambda::http_app(&env, b.ports.clone(), &sdk).await.expect("the API");
    b.counter.take();
    let resp =
        app.oneshot(apigw_get(&format!("/v1/connections/{}/runs", big.connection_id))).await.expect("call");
    let status = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
    let counts = b.counter.take();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let listed: Value = serde_json::from_slice(&body).expect("json");
    let page = listed["items"].as_array().map_or(0, Vec::len);
    assert!(page > 0, "{listed}");
    cases.push(Case {
        name: "list_runs",
        what: format!("GET /v1/connections/{{id}}/runs (API handler) on a connection with {} runs", n + 1),
        facts: BTreeMap::from([("runs", n as u64 + 1), ("listed", page as u64)]),
        counts,
    });
    progress(n, &cases, &record_bytes, started);

    record_bytes = b.record_sizes(&big).await;
    // Bulk-loaded in the store's layout, checked against a grant the store itself created.
    let stored = b
        .ddb
        .get_item()
        .table_name(&b.table)
        .key("pk", AttributeValue::S(format!("CLIENT#{}", grant.client_id)))
        .key("sk", AttributeValue::S(format!("GRANT#{}", grant.id)))
        .send()
        .await
        .expect("get")
        .item
        .expect("the grant's record");
    assert_eq!(
        stored,
        extconn_aws::dynamo::grant_record(&grant).expect("record"),
        "grant_record is the store's layout"
    );

    // The scheduler and the sweep on tables of their own (moto reads a whole table for an
    // index Query: this keeps the test fast; counts are unaffected).
    b.fresh_table().await;
    b.fresh_table().await;
    // (e) n grants: 10 due (unattached for more than an hour), 1% unattached but recent, the
    // rest attached; the worker's hourly sweep.
    let old = chrono::Utc::now() - chrono::Duration::hours(2);
    let grants: Vec<Grant> = (0..n)
        .map(|i| {
            let id = GrantId::generate();
            let due = i < DUE_GRANTS;
            let recent = !due && i % 100 == 0;
            Grant {
                client_id: ClientId::parse(&format!("client{:04}", i % 1000)).expect("client id"),
                id: id.clone(),
                provider: ProviderKind::Dropbox,
                account_id: format!("dbid:bench-{i:06}"),
                account_name: format!("Designer {i}"),
                account_email: None,
                secret_ref: format!("client{:04}/{id}", i % 1000),
                created_by: UserId::parse("ana").expect("user"),
                created_at: if due { old } else { chrono::Utc::now() },
                status: GrantStatus::Active,
                attached: !(due || recent),
                paused_until: None,
            }
        })
        .collect();
    for g in &grants[..DUE_GRANTS] {
        let (access, refresh) = b.dbx.mint_tokens(&b.account, APP);
        let tokens = TokenSet {
            access_token: Secret::new(access),
            refresh_token: Some(Secret::new(refresh)),
            expires_at: Some(chrono::Utc::now() + chrono::Duration::hours(4)),
        };
        b.raw_vault.put(&g.secret_ref, &tokens, None).await.expect("secret");
    }
    let records = grants.iter().map(|g| extconn_aws::dynamo::grant_record(g).expect("record")).collect();
    extconn_aws::dynamo::bulk_load(&b.ddb, &b.table, records).await.expect("bulk load");
    b.counter.take();
    let resp = b
        .worker
        .handle(json!({"action": "sweep-grants"}), chrono::Utc::now() + chrono::Duration::minutes(5))
        .await
        .expect("sweep");
    let counts = b.counter.take();
    assert_eq!(resp["grants_retired"], DUE_GRANTS, "{resp}");
    cases.push(Case {
        name: "grant_sweep",
        what: format!("the worker's hourly grant sweep with {n} grants, {DUE_GRANTS} of them due"),
        facts: BTreeMap::from([
            ("grants", n as u64),
            ("due", DUE_GRANTS as u64),
            ("retired", DUE_GRANTS as u64),
        ]),
        counts,
    });
    progress(n, &cases, &record_bytes, started);

    // (b) On a table of its own: a synced connection of 10 files, then n/10 new small files
    // at the source, synced.
    b.fresh_table().await;
    let news = "/New files";
    let f = b.dbx.add_folder(&b.account, news);
    b.dbx.seed_tree(&b.account, news, 10, PER_FOLDER, SMALL_FILE);
    let (synced, _) = b.synced_connection(&f.id, news).await;
    for i in 0..new_files {
        let path = format!("{news}/d{:04}/new-{i:06}.bin", i / PER_FOLDER);
        b.dbx.add_file(&b.account, &path, Content::generated(SMALL_FILE, 1_000_000 + i as u64));
    }
    b.counter.take();
    b.deliver(job(&synced, Trigger::Schedule)).await;
    let counts = b.counter.take();
    let run = b.runs_of(&synced).await.into_iter().next().expect("a run");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.counters.imported, new_files as u64, "{run:?}");
    let folders = new_files.div_ceil(PER_FOLDER).saturating_sub(1) as u64;
    cases.push(Case {
        name: "import_new_files",
        what: format!("a sync importing {new_files} new {SMALL_FILE}-byte files (and {folders} new folders)"),
        facts: BTreeMap::from([("files", new_files as u64), ("folders", folders), ("runs", 1)]),
        counts,
    });
    progress(n, &cases, &record_bytes, started);

    // (b′) On a table of its own: a new connection's initial import of n/10 files (a full
    // listing, then its sweep).
    b.fresh_table().await;
    let initial = "/Initial import";
    let f = b.dbx.add_folder(&b.account, initial);
    b.dbx.seed_tree(&b.account, initial, new_files, PER_FOLDER, SMALL_FILE);
    let grant = b.grant(&MemoryStore::new(), &MemoryVault::new()).await;
    let conn = b.connection(&grant, &f.id, initial);
    ConnectionStore::create(&b.raw, &conn).await.expect("connection");
    b.counter.take();
    b.deliver(job(&conn.key(), Trigger::Initial)).await;
    let counts = b.counter.take();
    let run = b.runs_of(&conn.key()).await.into_iter().next().expect("a run");
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.counters.imported, new_files as u64, "{run:?}");
    let folders = new_files.div_ceil(PER_FOLDER) as u64;
    cases.push(Case {
        name: "initial_import",
        what: format!(
            "a new connection's initial import of {new_files} {SMALL_FILE}-byte files in {folders} folders"
        ),
        facts: BTreeMap::from([("files", new_files as u64), ("folders", folders), ("runs", 1)]),
        counts,
    });
    progress(n, &cases, &record_bytes, started);

    // (c) Last (the slowest on the emulator), on a table of its own.
    b.fresh_table().await;
    // (c) n due connections (another client's), one scheduler tick.
    let fleet = ClientId::parse("fleet").expect("client id");
    let due_at = chrono::Utc::now() - chrono::Duration::minutes(1);
    let records = (0..n)
        .map(|i| {
            let mut c = testkit::sample_connection(&fleet, &format!("id:folder-{i:05}"));
            c.next_due_at = Some(due_at);
            extconn_aws::dynamo::connection_record(&c).expect("record")
        })
        .collect();
    extconn_aws::dynamo::bulk_load(&b.ddb, &b.table, records).await.expect("bulk load");
    b.counter.take();
    let enqueued = extconn_sync_scheduler::handle(&b.ports).await.expect("tick");
    let counts = b.counter.take();
    assert_eq!(enqueued, n, "every due connection enqueued");
    b.sqs.purge_queue().queue_url(&b.queue).send().await.expect("purge");
    cases.push(Case {
        name: "scheduler_tick",
        what: format!("one scheduler tick (handler) with {n} due connections"),
        facts: BTreeMap::from([("due", n as u64), ("enqueued", enqueued as u64), ("shards", 8)]),
        counts,
    });
    progress(n, &cases, &record_bytes, started);

    let order = [
        "no_change_sync",
        "import_new_files",
        "initial_import",
        "scheduler_tick",
        "list_runs",
        "grant_sweep",
    ];
    cases.sort_by_key(|c| order.iter().position(|o| *o == c.name));
    drop(b.sandbox);
    Report { n, cases, record_bytes }
}

/// After each case: its table on stderr, and everything so far as JSON at
/// `EXTCONN_COST_PARTIAL` if set (a long run's finished cases survive an interruption).
fn progress(
    n: usize,
    cases: &[Case],
    record_bytes: &BTreeMap<&'static str, u64>,
    started: std::time::Instant,
) {
    let Some(last) = cases.last() else { return };
    let one = Report { n, cases: vec![last.clone()], record_bytes: record_bytes.clone() };
    eprintln!(
        "cost bench: {} measured at {:.0} s\n{}",
        last.name,
        started.elapsed().as_secs_f64(),
        one.table()
    );
    if let Ok(path) = std::env::var("EXTCONN_COST_PARTIAL") {
        let all = Report { n, cases: cases.to_vec(), record_bytes: record_bytes.clone() };
        let json = serde_json::to_string_pretty(&all.to_json()).expect("json");
        std::fs::write(&path, json + "\n").expect("write the partial report");
    }
}
