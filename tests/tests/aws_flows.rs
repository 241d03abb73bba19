// Test harness code: a failed setup step is meant to panic the test.
#![allow(clippy::unwrap_used)]

//! The system on its AWS adapters, through the Lambda handlers, against the AWS emulator (moto)
//! and the provider sandbox (Dropbox, Google Drive, SharePoint): API Gateway HTTP API v2 events into the API,
//! SQS batches into the worker, the scheduler's tick. These tests fail, never skip, without the
//! emulator.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use extconn_core::engine::EngineConfig;
use extconn_core::memory::ManualClock;
use extconn_core::ports::{Clock, ConnectionPatch, ConnectionStore};
use extconn_core::{ClientId, ConnKey, ConnectionId, Ports, ProviderKind};
use extconn_lambda::Env;
use extconn_sandbox::dropbox::{AccountId, Content, DropboxControl, Endpoint, Fault};
use extconn_sandbox::{OAuthClient, ProviderControl, Sandbox, SandboxConfig, Service};
use extconn_sync_worker::Worker;
use extconn_system_tests::log_capture;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

const BASE: &str = "https://api.test";
/// The connected Dropbox folder's path.
const FOLDER: &str = "/Brand Assets";
/// The OAuth client id registered at the sandbox (for the provider under test).
const APP: &str = "extconn-aws-test";

fn unique(p: &str) -> String {
    format!("{p}-{}", extconn_core::RunId::generate().as_str().trim_start_matches("run_"))
}

struct Aws {
    sandbox: Sandbox,
    /// The provider under test, its emulator (provider-neutral) and the sandbox account.
    kind: ProviderKind,
    control: Arc<dyn ProviderControl>,
    account: String,
    /// The folder `connect` picks and connects (an id of the provider).
    folder: String,
    /// The Dropbox emulator's own handle (Dropbox scenarios seed and fault by path and endpoint).
    dbx: DropboxControl,
    ports: Ports,
    app: Router,
    worker: Worker,
    sqs: aws_sdk_sqs::Client,
    queue: String,
    dlq: String,
    s3: aws_sdk_s3::Client,
    bucket: String,
    ddb: aws_sdk_dynamodb::Client,
    table: String,
    /// The asset events bus, and a client for it.
    bus: String,
    eb: aws_sdk_eventbridge::Client,
    clock: Option<Arc<ManualClock>>,
}

/// Everything the template creates, created uniquely for one test, with the Dropbox account's
/// /Brand Assets folder seeded (six files, one of 9 MiB).
async fn aws(manual_clock: bool, visibility_secs: i32) -> Aws {
    let mut a = aws_for(ProviderKind::Dropbox, manual_clock, visibility_secs).await;
    let account = a.dbx_account();
    a.folder = a.dbx.add_folder(&account, FOLDER).id;
    for (i, name) in
        ["logo.png", "guidelines.pdf", "Photos/hero.jpg", "Photos/team (final).jpg", "naïve — é.txt"]
            .iter()
            .enumerate()
    {
        a.dbx.add_file(
            &account,
            &format!("{FOLDER}/{name}"),
            Content::generated(50_000 + i as u64 * 1000, i as u64),
        );
    }
    a.dbx.add_file(
        &account,
        &format!("{FOLDER}/Video/film.mp4"),
        Content::generated(9 * 1024 * 1024 + 3, 42),
    );
    a
}

/// The sandbox service that emulates a provider.
fn service(kind: ProviderKind) -> Service {
    match kind {
        ProviderKind::Dropbox => Service::Dropbox,
        ProviderKind::GoogleDrive => Service::GoogleDrive,
        ProviderKind::Sharepoint => Service::Sharepoint,
    }
}

/// Everything the template creates, created uniquely for one test; `kind` configured from the
/// provider registry's variables (the app secret in Secrets Manager, the hosts at the sandbox)
/// with an empty account that auto-approves the consent. The caller seeds the account and sets
/// `folder`.
async fn aws_for(kind: ProviderKind, manual_clock: bool, visibility_secs: i32) -> Aws {
    let _ = log_capture();
    std::env::var("AWS_ENDPOINT_URL").expect(
        "AWS tests need the AWS emulator: run them with scripts/with-aws-emulator (scripts/test does)",
    );
    let sdk = extconn_aws::sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let table = unique("extconn");
    extconn_aws::DynamoStore::create_table(&ddb, &table)
        .await
        .expect("the AWS emulator is unreachable or refused CreateTable");
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let dlq = sqs.create_queue().queue_name(unique("dlq")).send().await.unwrap().queue_url.unwrap();
    let dlq_arn = queue_arn(&sqs, &dlq).await;
    let queue = sqs
        .create_queue()
        .queue_name(unique("jobs"))
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, visibility_secs.to_string())
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "5"}).to_string(),
        )
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let s3 = extconn_aws::s3_client(&sdk);
    let bucket = unique("assets");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    let eb = aws_sdk_eventbridge::Client::new(&sdk);
    let bus = unique("bus");
    eb.create_event_bus().name(&bus).send().await.unwrap();
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let app_secret = unique(&format!("{}-app", kind.as_str()));
    let client_secret = format!("CANARY-CLIENT-SECRET-{}", unique("s"));
    sm.create_secret().name(&app_secret).secret_string(&client_secret).send().await.unwrap();
    let page_secret = unique("page-key");
    sm.create_secret().name(&page_secret).secret_string("page-token-key").send().await.unwrap();

    let sandbox = Sandbox::start(SandboxConfig {
        clients: vec![OAuthClient {
            service: service(kind),
            client_id: APP.into(),
            client_secret,
            redirect_uris: vec![format!("{BASE}/v1/oauth/{}/callback", kind.as_str())],
        }],
        ..Default::default()
    })
    .await;
    let control = sandbox.control(service(kind));
    let account = control.create_account("Demo Designer", "designer@example.com");
    control.set_auto_approve(true);
    let mut vars: HashMap<String, String> = HashMap::from([
        ("TABLE_NAME".into(), table.clone()),
        ("QUEUE_URL".into(), queue.clone()),
        ("BUCKET_NAME".into(), bucket.clone()),
        ("EVENT_BUS_NAME".into(), bus.clone()),
        ("SECRET_PREFIX".into(), format!("{}/", unique("extconn"))),
        ("PAGE_TOKEN_SECRET_ID".into(), page_secret),
        // No PUBLIC_BASE_URL (the template's default): redirect URIs follow the request's host.
        ("CONSOLE_URL".into(), "https://dam.test/settings/external-connections".into()),
        ("DAM_ORIGINS".into(), "https://dam.test, https://dam-eu.test".into()),
        ("CLAIM_CLIENT_ID".into(), "custom:client".into()),
    ]);
    // The provider registry's variables, as the template sets them (the app secret comes from
    // Secrets Manager), plus the hosts, aimed at the sandbox.
    let provider = extconn_providers::registry::descriptor(kind).unwrap();
    vars.insert(provider.var("CLIENT_ID"), APP.into());
    vars.insert(provider.var("CLIENT_SECRET_ID"), app_secret);
    for base in provider.bases {
        let path = base.sandbox_path.unwrap();
        vars.insert(provider.var(base.suffix), format!("{}{path}", sandbox.base_url()));
    }
    let env = Env::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let mut ports = extconn_lambda::ports(&env, &sdk).await.unwrap();
    let clock = manual_clock.then(|| Arc::new(ManualClock::new(chrono::Utc::now())));
    if let Some(c) = &clock {
        ports.clock = c.clone();
    }
    let app = extconn_lambda::http_app(&env, ports.clone(), &sdk).await.unwrap();
    let worker = Worker::new(ports.clone(), EngineConfig::default());
    let dbx = sandbox.dropbox();
    Aws {
        sandbox,
        kind,
        control,
        account,
        folder: String::new(),
        dbx,
        ports,
        app,
        worker,
        sqs,
        queue,
        dlq,
        s3,
        bucket,
        ddb,
        table,
        bus,
        eb,
        clock,
    }
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    let a = aws_sdk_sqs::types::QueueAttributeName::QueueArn;
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(a.clone())
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&a]
        .clone()
}

/// An API Gateway HTTP API (payload v2) event, as the JWT authorizer passes it on (claims
/// stringified the way API Gateway does).
fn apigw(
    method: &str,
    path_and_query: &str,
    body: Option<Value>,
    admin: Option<&str>,
    cookie: Option<&str>,
) -> lambda_http::Request {
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let mut ctx = json!({
        "accountId": "123456789012", "apiId": "api", "domainName": "api.test", "domainPrefix": "api",
        "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "test"},
        "requestId": "req-1", "routeKey": "$default", "stage": "$default", "time": "27/Nov/2026:04:00:00 +0000", "timeEpoch": 0
    });
    if let Some(user) = admin {
        ctx["authorizer"] = json!({"jwt": {"claims": {
            "sub": user, "name": "Ana Admin", "custom:client": "acme", "permissions": "[viewer client_admin]"
        }, "scopes": null}});
    }
    let event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query,
        "cookies": cookie.map(|c| vec![c]),
        "headers": {"content-type": "application/json", "host": "api.test"},
        "requestContext": ctx,
        "body": body.map(|b| b.to_string()), "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("API Gateway v2 event")
}

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: Value,
}

async fn call(app: &Router, req: lambda_http::Request) -> Reply {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.unwrap();
    Reply { status, headers, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

impl Aws {
    /// The Dropbox account (Dropbox scenarios address it by its own type).
    fn dbx_account(&self) -> AccountId {
        AccountId(self.account.clone())
    }

    /// A GET as the admin.
    async fn get(&self, path: &str) -> Reply {
        call(&self.app, apigw("GET", path, None, Some("ana"), None)).await
    }

    /// The admin connects the provider: authorize (API) → the sandbox's consent (auto-approved)
    /// → the OAuth callback (public route, with the binding cookie). Returns the grant id.
    async fn grant(&self) -> String {
        let r = call(
            &self.app,
            apigw(
                "POST",
                "/v1/connections/authorize",
                Some(json!({"provider": self.kind.as_str()})),
                Some("ana"),
                None,
            ),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.body);
        let cookie = r.headers["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let url = r.body["authorization_url"].as_str().unwrap();
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        let consent = http.get(url).send().await.unwrap();
        assert_eq!(consent.status().as_u16(), 302, "the consent redirects back");
        let location = consent.headers()["location"].to_str().unwrap();
        let callback = location.strip_prefix(BASE).unwrap().to_owned();
        assert!(callback.starts_with(&format!("/v1/oauth/{}/callback?", self.kind.as_str())), "{callback}");
        let cb = call(&self.app, apigw("GET", &callback, None, None, Some(&cookie))).await;
        assert_eq!(cb.status, 303, "{}", cb.body);
        assert_eq!(cb.headers["referrer-policy"], "no-referrer");
        cb.headers["location"].to_str().unwrap().split("grant_id=").nth(1).unwrap().to_owned()
    }

    /// One level of the folder picker, every page: the top level, or the inside of `parent` (an
    /// entry of an earlier level, whose `id` and `drive_id` go back as `parent` and `drive`).
    async fn folders(&self, grant: &str, parent: Option<&Value>) -> Vec<Value> {
        let mut base = url::form_urlencoded::Serializer::new(String::new());
        if let Some(p) = parent {
            base.append_pair("parent", p["id"].as_str().unwrap());
            if let Some(d) = p["drive_id"].as_str() {
                base.append_pair("drive", d);
            }
        }
        let base = base.finish();
        let mut entries = Vec::new();
        let mut query = base.clone();
        loop {
            let r = self.get(&format!("/v1/grants/{grant}/folders?{query}")).await;
            assert_eq!(r.status, 200, "{}", r.body);
            entries.extend(r.body["items"].as_array().unwrap().iter().cloned());
            match r.body["next_page"].as_str() {
                Some(next) => {
                    let mut q = url::form_urlencoded::Serializer::new(base.clone());
                    query = q.append_pair("page", next).finish();
                }
                None => return entries,
            }
        }
    }

    /// The picker as the console walks it to folder `id`: the top level, else one level into
    /// each drive there (Google Drive's "My Drive" and shared drives). Returns the folder's entry.
    async fn pick(&self, grant: &str, id: &str) -> Value {
        let top = self.folders(grant, None).await;
        if let Some(f) = top.iter().find(|f| f["id"] == id) {
            return f.clone();
        }
        for container in top.iter().filter(|f| f["kind"] != "folder") {
            if let Some(f) = self.folders(grant, Some(container)).await.into_iter().find(|f| f["id"] == id) {
                return f;
            }
        }
        panic!("the picker does not reach folder {id}: top level {top:?}");
    }

    /// Creates an auto-sync connection on a picked folder; returns its id.
    async fn create(&self, grant: &str, entry: &Value) -> String {
        assert_eq!(entry["selectable"], true, "{entry}");
        let mut body = json!({"grant_id": grant, "folder_id": entry["id"], "auto_sync": true});
        if let Some(d) = entry.get("drive_id") {
            body["drive_id"] = d.clone();
        }
        let created = call(&self.app, apigw("POST", "/v1/connections", Some(body), Some("ana"), None)).await;
        assert_eq!(created.status, 201, "{}", created.body);
        created.body["id"].as_str().unwrap().to_owned()
    }

    /// The admin connects the provider and creates a connection on `self.folder`; returns its id.
    async fn connect(&self) -> String {
        let grant = self.grant().await;
        let entry = self.pick(&grant, &self.folder).await;
        self.create(&grant, &entry).await
    }

    fn conn_key(&self, id: &str) -> ConnKey {
        ConnKey {
            client_id: ClientId::parse("acme").unwrap(),
            connection_id: id.parse::<ConnectionId>().unwrap(),
        }
    }

    /// Lambda's SQS event source, by hand: receive a batch, invoke the worker, delete what it
    /// did not report as failed. Returns (messages received, failures reported).
    async fn deliver(&self, worker: &Worker) -> (usize, usize) {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return (0, 0);
        }
        let records: Vec<Value> = messages
            .iter()
            .map(|m| json!({"messageId": m.message_id(), "receiptHandle": m.receipt_handle(), "body": m.body(), "eventSource": "aws:sqs", "awsRegion": "us-east-1", "attributes": {}, "messageAttributes": {}}))
            .collect();
        let now = self.ports.clock.now();
        let resp =
            worker.handle(json!({"Records": records}), now + chrono::Duration::minutes(5)).await.unwrap();
        let failed: Vec<String> = resp["batchItemFailures"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["itemIdentifier"].as_str().unwrap().to_owned())
            .collect();
        assert!(failed.iter().all(|f| !f.is_empty()), "never an empty itemIdentifier");
        for m in &messages {
            if !failed.iter().any(|f| Some(f.as_str()) == m.message_id()) {
                self.sqs
                    .delete_message()
                    .queue_url(&self.queue)
                    .receipt_handle(m.receipt_handle().unwrap())
                    .send()
                    .await
                    .unwrap();
            }
        }
        (messages.len(), failed.len())
    }

    async fn drain(&self) {
        for _ in 0..20 {
            if self.deliver(&self.worker).await.0 == 0 {
                return;
            }
        }
    }

    /// sha256 of every object in the bucket.
    async fn objects(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let list = self.s3.list_objects_v2().bucket(&self.bucket).send().await.unwrap();
        for o in list.contents() {
            let key = o.key().unwrap().to_owned();
            let body = self
                .s3
                .get_object()
                .bucket(&self.bucket)
                .key(&key)
                .send()
                .await
                .unwrap()
                .body
                .collect()
                .await
                .unwrap();
            out.insert(key, hex::encode(Sha256::digest(body.into_bytes())));
        }
        out
    }

    /// The connection's items by provider id.
    async fn items(&self, id: &str) -> HashMap<String, Value> {
        let items = self.get(&format!("/v1/connections/{id}/items?limit=200")).await;
        assert_eq!(items.status, 200, "{}", items.body);
        items.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["id"].as_str().unwrap().to_owned(), i.clone()))
            .collect()
    }

    /// `assert_assets_of` on `self.folder`.
    async fn assert_assets(&self, id: &str) {
        self.assert_assets_of(id, &self.folder).await;
    }

    /// Connection `id` on `folder` against the sandbox: every live file below the folder is
    /// imported with exactly its bytes in S3 (the sandbox's sha256: a native document's is its
    /// export's); every other file item is `source_deleted` with its object kept; no other
    /// object under the connection (one per file, no duplicates; no file modified in between).
    async fn assert_assets_of(&self, id: &str, folder: &str) {
        let prefix = format!("acme/{id}/");
        let objects: BTreeMap<String, String> =
            self.objects().await.into_iter().filter(|(k, _)| k.starts_with(&prefix)).collect();
        let items = self.items(id).await;
        let live = self.control.list_files(&self.account, folder).unwrap();
        for f in &live {
            let item = items.get(&f.id).unwrap_or_else(|| panic!("{}: no item", f.name));
            assert_eq!(item["state"], "imported", "{}: {item}", f.name);
            let key = item["asset_key"].as_str().unwrap();
            assert_eq!(
                objects.get(key),
                Some(&self.control.sha256(&self.account, &f.id).unwrap()),
                "{}",
                f.name
            );
        }
        let mut kept = 0;
        for item in
            items.values().filter(|i| i["is_folder"] == false && !live.iter().any(|f| f.id == i["id"]))
        {
            assert_eq!(item["state"], "source_deleted", "gone from the source: {item}");
            let key = item["asset_key"].as_str().unwrap();
            assert!(objects.contains_key(key), "the asset of a deleted file is kept: {item}");
            kept += 1;
        }
        assert_eq!(objects.len(), live.len() + kept, "one object per file, no duplicates");
    }

    /// The scheduler's tick with connections `ids` due (twice: a double tick enqueues nothing
    /// twice); returns how many it enqueued.
    async fn tick(&self, ids: &[&str]) -> usize {
        let past = chrono::Utc::now() - chrono::Duration::minutes(1);
        for id in ids {
            ConnectionStore::update(
                self.ports.connections.as_ref(),
                &self.conn_key(id),
                &ConnectionPatch { next_due_at: Some(Some(past)), ..Default::default() },
            )
            .await
            .unwrap();
        }
        let enqueued = extconn_sync_scheduler::handle(&self.ports).await.unwrap();
        assert_eq!(
            extconn_sync_scheduler::handle(&self.ports).await.unwrap(),
            0,
            "a double tick enqueues nothing twice"
        );
        enqueued
    }

    /// No canary (token, code, verifier, client secret) in any table item, queue or DLQ body,
    /// or log line.
    async fn assert_no_leaks(&self) {
        let mut haystack = String::new();
        let scan = self.ddb.scan().table_name(&self.table).send().await.unwrap();
        haystack.push_str(&format!("{:?}", scan.items()));
        for q in [&self.queue, &self.dlq] {
            let m = self
                .sqs
                .receive_message()
                .queue_url(q)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .send()
                .await
                .unwrap();
            haystack.push_str(&format!("{:?}", m.messages()));
        }
        let logs = String::from_utf8_lossy(&log_capture().lock().unwrap()).into_owned();
        assert!(!logs.is_empty());
        haystack.push_str(&logs);
        let canaries = self.sandbox.canaries();
        assert!(!canaries.is_empty());
        for c in canaries {
            if let Some(at) = haystack.find(&c) {
                let from = haystack[..at].char_indices().rev().nth(300).map_or(0, |(i, _)| i);
                panic!("a secret leaked into DynamoDB, SQS or the logs, here: …{}…", &haystack[from..at]);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_connect_import_change_refresh_through_the_handlers() {
    let a = aws(false, 30).await;
    let id = a.connect().await;
    a.drain().await;
    a.assert_assets(&id).await;
    let details = call(&a.app, apigw("GET", &format!("/v1/connections/{id}"), None, Some("ana"), None)).await;
    assert_eq!(details.body["recent_runs"][0]["status"], "succeeded", "{}", details.body);
    assert_eq!(details.body["counters"]["files"], 6);
    // The console page is public (no identity) and only the DAM origins may frame it.
    let page = call(&a.app, apigw("GET", "/console", None, None, None)).await;
    assert_eq!(page.status, 200);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.ends_with("frame-ancestors https://dam.test https://dam-eu.test"), "{csp}");

    // A change at Dropbox, then Refresh Items.
    a.dbx.modify_file(&a.dbx_account(), &format!("{FOLDER}/logo.png"), Content::text("logo v2"));
    a.dbx.move_entry(
        &a.dbx_account(),
        &format!("{FOLDER}/Photos/hero.jpg"),
        &format!("{FOLDER}/Photos/hero (approved).jpg"),
    );
    let r =
        call(&a.app, apigw("POST", &format!("/v1/connections/{id}/refresh"), None, Some("ana"), None)).await;
    assert_eq!(r.status, 202);
    a.drain().await;
    let objects = a.objects().await;
    assert_eq!(objects.len(), 7, "the modified file is a new version; the rename is not");

    // The scheduler: due connections are enqueued once even if the tick fires twice.
    assert_eq!(a.tick(&[&id]).await, 1);
    a.drain().await;
    let runs =
        call(&a.app, apigw("GET", &format!("/v1/connections/{id}/runs"), None, Some("ana"), None)).await;
    assert_eq!(runs.body["items"].as_array().unwrap().len(), 3);
    assert_eq!(runs.body["items"][0]["trigger"], "schedule");
    a.assert_no_leaks().await;

    // Delete: the connection's partition (items and runs) is removed by the worker's purge
    // job; the assets stay.
    let pk = format!("CLIENT#acme#CONN#{id}");
    let partition = || {
        a.ddb
            .query()
            .table_name(&a.table)
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", aws_sdk_dynamodb::types::AttributeValue::S(pk.clone()))
            .consistent_read(true)
            .send()
    };
    assert!(partition().await.unwrap().count() >= 6 + 3);
    let gone = call(&a.app, apigw("DELETE", &format!("/v1/connections/{id}"), None, Some("ana"), None)).await;
    assert_eq!(gone.status, 204);
    a.drain().await;
    assert_eq!(partition().await.unwrap().count(), 0, "the deleted connection's records are gone");
    assert_eq!(a.objects().await.len(), 7, "the assets stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_duplicate_delivery_and_racing_workers_import_once() {
    let a = aws(false, 30).await;
    let id = a.connect().await;
    // The initial-import message delivered twice, to two workers at once.
    let out = a
        .sqs
        .receive_message()
        .queue_url(&a.queue)
        .max_number_of_messages(10)
        .wait_time_seconds(1)
        .send()
        .await
        .unwrap();
    let m = &out.messages()[0];
    let event =
        json!({"Records": [{"messageId": m.message_id(), "body": m.body(), "eventSource": "aws:sqs"}]});
    let other = Worker::new(a.ports.clone(), EngineConfig::default());
    let deadline = chrono::Utc::now() + chrono::Duration::minutes(5);
    let (r1, r2) = tokio::join!(a.worker.handle(event.clone(), deadline), other.handle(event, deadline));
    assert_eq!(r1.unwrap()["batchItemFailures"], json!([]));
    assert_eq!(r2.unwrap()["batchItemFailures"], json!([]));
    a.drain().await;
    a.assert_assets(&id).await;
    let runs =
        call(&a.app, apigw("GET", &format!("/v1/connections/{id}/runs"), None, Some("ana"), None)).await;
    assert_eq!(runs.body["items"].as_array().unwrap().len(), 1, "one run at a time, no second run");
    assert_eq!(a.dbx.calls(Endpoint::Download), 6, "no file downloaded twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_a_worker_killed_mid_file_loses_and_duplicates_nothing() {
    let a = aws(true, 30).await;
    let id = a.connect().await;
    let out = a.sqs.receive_message().queue_url(&a.queue).wait_time_seconds(1).send().await.unwrap();
    let job: extconn_core::Job = serde_json::from_str(out.messages()[0].body().unwrap()).unwrap();
    // Killed while the 9 MiB film streams (its multipart upload is left open, as a real kill would).
    struct KillMidFile(std::sync::Mutex<u32>);
    impl extconn_core::engine::Hooks for KillMidFile {
        fn at(&self, step: extconn_core::engine::Step) -> Result<(), extconn_core::engine::Crash> {
            let mut n = self.0.lock().unwrap();
            if step == extconn_core::engine::Step::DownloadStarted {
                *n += 1;
                if *n == 4 {
                    return Err(extconn_core::engine::Crash);
                }
            }
            Ok(())
        }
    }
    let dying = extconn_core::engine::Engine::with_hooks(
        a.ports.clone(),
        EngineConfig::default(),
        Arc::new(KillMidFile(Default::default())),
    );
    let clock = a.clock.clone().unwrap();
    assert!(dying.run_job(&job, clock.now() + chrono::Duration::minutes(5)).await.is_err());
    // SQS redelivers after the visibility timeout; the lease expired meanwhile.
    clock.advance(Duration::from_secs(121));
    let fresh = Worker::new(a.ports.clone(), EngineConfig::default());
    let event = json!({"Records": [{"messageId": "again", "body": out.messages()[0].body(), "eventSource": "aws:sqs"}]});
    let resp = fresh.handle(event, clock.now() + chrono::Duration::minutes(5)).await.unwrap();
    assert_eq!(resp["batchItemFailures"], json!([]));
    a.assert_assets(&id).await;
    let runs =
        call(&a.app, apigw("GET", &format!("/v1/connections/{id}/runs"), None, Some("ana"), None)).await;
    assert_eq!(runs.body["items"][0]["counters"]["imported"], 6, "exact counters across the kill");
}

/// A 40 MiB file paced at 16 MiB/s, synced by invocations that each leave about 1.5 s to
/// transfer: every cut suspends the S3 multipart upload (the item in DynamoDB holds its id and
/// the hashes' states), the continuation from SQS resumes it (ListParts) with a `Range`
/// download, and the object is the file byte for byte, once, with no multipart upload left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_a_file_longer_than_an_invocation_resumes_its_multipart_upload() {
    let a = aws(false, 30).await;
    let account = a.dbx_account();
    a.dbx.add_file(&account, &format!("{FOLDER}/Video/long.mov"), Content::generated(40 * 1024 * 1024, 77));
    a.dbx.inject(Endpoint::Download, Fault::Throttle { bytes_per_sec: 16 * 1024 * 1024 }, 100);
    let id = a.connect().await;
    let engine = extconn_core::engine::Engine::new(
        a.ports.clone(),
        EngineConfig { deadline_margin: Duration::from_secs(1), ..EngineConfig::default() },
    );
    let mut invocations = 0;
    let out = loop {
        let msg = a.sqs.receive_message().queue_url(&a.queue).wait_time_seconds(2).send().await.unwrap();
        let m = &msg.messages()[0];
        let job: extconn_core::Job = serde_json::from_str(m.body().unwrap()).unwrap();
        a.sqs
            .delete_message()
            .queue_url(&a.queue)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
        invocations += 1;
        assert!(invocations <= 30, "the run never ended");
        let deadline = a.ports.clock.now() + chrono::Duration::milliseconds(2500);
        match engine.run_job(&job, deadline).await.unwrap() {
            extconn_core::engine::JobOutcome::Continued { .. } => continue,
            other => break other,
        }
    };
    assert!(
        matches!(
            out,
            extconn_core::engine::JobOutcome::Finished { status: extconn_core::RunStatus::Succeeded, .. }
        ),
        "{out:?}"
    );
    // 40 MiB cannot pass the 16 MiB/s pace in the 1.5 s one invocation has.
    assert!(invocations >= 2, "{invocations}");
    let ranged =
        a.dbx.call_log().iter().filter(|c| c.endpoint == Endpoint::Download && c.status == 206).count();
    assert!(ranged >= 1, "the file was continued with a range, not started over");
    a.assert_assets(&id).await;
    let open = a.s3.list_multipart_uploads().bucket(&a.bucket).send().await.unwrap();
    assert!(open.uploads.unwrap_or_default().is_empty(), "no multipart upload left behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_batch_isolation_and_the_dead_letter_queue() {
    let a = aws(true, 1).await;
    let id = a.connect().await;
    // An infrastructure outage — the asset events bus is gone, so every import fails to
    // announce its asset — fails the message every time. (A provider whose listing keeps
    // failing does not: the run ends `failed` and the connection `error`; see faults.rs.)
    a.eb.delete_event_bus().name(&a.bus).send().await.unwrap();
    let mut receives = 0;
    for _ in 0..30 {
        let (got, failed) = a.deliver(&a.worker).await;
        receives += got;
        assert_eq!(got, failed, "a failing message is reported, not dropped");
        if got == 0 {
            let in_dlq =
                a.sqs.receive_message().queue_url(&a.dlq).visibility_timeout(0).send().await.unwrap();
            if !in_dlq.messages().is_empty() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(1100)).await;
    }
    assert_eq!(receives, 5, "received exactly maxReceiveCount times");
    let dlq = a.sqs.receive_message().queue_url(&a.dlq).send().await.unwrap();
    let body = dlq.messages()[0].body().unwrap();
    assert!(body.contains(&id) && !body.contains("token"), "ids only in the DLQ: {body}");

    // Isolation within a batch: a malformed body is acknowledged, a good job succeeds.
    let event = json!({"Records": [
        {"messageId": "m1", "body": "{not json", "eventSource": "aws:sqs"},
        {"messageId": "m2", "body": serde_json::to_string(&extconn_core::Job {
            client_id: ClientId::parse("acme").unwrap(), connection_id: ConnectionId::generate(),
            trigger: extconn_core::Trigger::Manual, run_id: None, requested_by: None, continuation: false, purge: false }).unwrap(),
         "eventSource": "aws:sqs"}
    ]});
    let resp = a.worker.handle(event, a.ports.clock.now() + chrono::Duration::minutes(5)).await.unwrap();
    assert_eq!(resp["batchItemFailures"], json!([]), "malformed: acked; unknown connection: a no-op");
    a.assert_no_leaks().await;
}

/// The app secret is read from Secrets Manager at cold start: a secret that does not exist is a
/// startup error naming the variable and the secret id, and a function without token secrets
/// (the scheduler: no SECRET_PREFIX) enables no provider and reads no app secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_the_app_secret_comes_from_secrets_manager_at_startup() {
    std::env::var("AWS_ENDPOINT_URL").expect(
        "AWS tests need the AWS emulator: run them with scripts/with-aws-emulator (scripts/test does)",
    );
    let sdk = extconn_aws::sdk_config().await;
    let missing = unique("no-such-app-secret");
    let vars: HashMap<&str, String> = HashMap::from([
        ("TABLE_NAME", unique("extconn")),
        ("QUEUE_URL", "http://127.0.0.1:9/queue".into()),
        ("SECRET_PREFIX", format!("{}/", unique("extconn"))),
        ("EXTCONN_DROPBOX_CLIENT_ID", "extconn-aws-test".into()),
        ("EXTCONN_DROPBOX_CLIENT_SECRET_ID", missing.clone()),
    ]);
    let env = Env::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let e = extconn_lambda::ports(&env, &sdk).await.map(|_| ()).expect_err("the secret does not exist");
    let text = e.to_string();
    assert!(
        text.starts_with(&format!("EXTCONN_DROPBOX_CLIENT_SECRET_ID: cannot read the secret {missing}: ")),
        "{text}"
    );

    let scheduler =
        Env::from_lookup(|k| if k == "SECRET_PREFIX" { None } else { vars.get(k).cloned() }).unwrap();
    let ports = extconn_lambda::ports(&scheduler, &sdk).await.unwrap();
    assert!(ports.providers.is_empty(), "{:?}", ports.providers.keys().collect::<Vec<_>>());

    // The tenant claim: the OAuth client's claims are refused; the HTTP functions need one.
    for claim in ["client_id", "azp"] {
        let e =
            Env::from_lookup(
                |k| if k == "CLAIM_CLIENT_ID" { Some(claim.into()) } else { vars.get(k).cloned() },
            )
            .map(|_| ())
            .unwrap_err();
        assert!(
            e.starts_with(&format!(
                "environment variable CLAIM_CLIENT_ID is \"{claim}\", which names the OAuth client"
            )),
            "{e}"
        );
    }
    let untenanted =
        Env::from_lookup(|k| if k == "CLAIM_CLIENT_ID" { None } else { vars.get(k).cloned() }).unwrap();
    let e = extconn_lambda::http_app(&untenanted, ports, &sdk).await.map(|_| ()).unwrap_err().to_string();
    assert!(e.contains("CLAIM_CLIENT_ID is required"), "{e}");

    // A DAM origin that is not one fails at start-up, naming the variable.
    let bad = Env::from_lookup(|k| {
        if k == "DAM_ORIGINS" { Some("https://dam.test/x".into()) } else { vars.get(k).cloned() }
    });
    let e = bad.map(|_| ()).unwrap_err();
    assert!(
        e.starts_with("environment variable DAM_ORIGINS: \"https://dam.test/x\" is not an origin"),
        "{e}"
    );

    // A half configuration fails before anything is called.
    let half =
        Env::from_lookup(
            |k| if k == "EXTCONN_DROPBOX_CLIENT_SECRET_ID" { None } else { vars.get(k).cloned() },
        );
    assert_eq!(
        half.map(|_| ()).unwrap_err(),
        "EXTCONN_DROPBOX_CLIENT_SECRET (or EXTCONN_DROPBOX_CLIENT_SECRET_ID) is not set, but \
         EXTCONN_DROPBOX_CLIENT_ID is: configure both, or neither to disable the provider"
    );
}

/// On the AWS adapters through the handlers: a 300-character CJK name at the end of a
/// 1,200-byte path imports (its object's `x-amz-meta-*` within S3's 2 KB); a file answering 403
/// is `failed: access_denied` (the run `partial`, the details list it), and `retry-failed`
/// imports it at once, found through the failed-items index.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_long_names_and_a_failed_file_retried_through_the_handlers() {
    let a = aws(false, 30).await;
    let name = format!("{}.jpg", "写真".repeat(150));
    let mut dir = FOLDER.to_owned();
    let mut depth = 0;
    while dir.len() + 1 + name.len() < 1_200 {
        depth += 1;
        dir.push_str(&format!("/{depth:02} 深い階層のフォルダ"));
        a.dbx.add_folder(&a.dbx_account(), &dir);
    }
    let long = a.dbx.add_file(&a.dbx_account(), &format!("{dir}/{name}"), Content::text("long"));
    a.dbx.inject(Endpoint::Download, Fault::ServerError(403), 1);
    let id = a.connect().await;
    a.drain().await;

    let details = call(&a.app, apigw("GET", &format!("/v1/connections/{id}"), None, Some("ana"), None)).await;
    assert_eq!(details.body["recent_runs"][0]["status"], "partial", "{}", details.body);
    assert_eq!(details.body["counters"]["failed"], 1, "{}", details.body);
    let failed = details.body["failed_items"].as_array().expect("failed items listed");
    assert_eq!(failed.len(), 1, "{}", details.body);
    assert_eq!(failed[0]["reason"], "access_denied");

    let r =
        call(&a.app, apigw("POST", &format!("/v1/connections/{id}/retry-failed"), None, Some("ana"), None))
            .await;
    assert_eq!(r.status, 202, "{}", r.body);
    a.drain().await;
    a.assert_assets(&id).await;
    let details = call(&a.app, apigw("GET", &format!("/v1/connections/{id}"), None, Some("ana"), None)).await;
    assert_eq!(details.body["recent_runs"][0]["status"], "succeeded", "{}", details.body);
    assert_eq!(details.body["counters"]["failed"], 0);

    // The long name's object: its metadata fits S3's limit, the item keeps the full name.
    let items =
        call(&a.app, apigw("GET", &format!("/v1/connections/{id}/items?limit=200"), None, Some("ana"), None))
            .await;
    let item =
        items.body["items"].as_array().unwrap().iter().find(|i| i["id"] == long.id.as_str()).unwrap().clone();
    assert_eq!(item["name"], name.as_str());
    let head =
        a.s3.head_object().bucket(&a.bucket).key(item["asset_key"].as_str().unwrap()).send().await.unwrap();
    let total: usize =
        head.metadata().unwrap().iter().map(|(k, v)| "x-amz-meta-".len() + k.len() + v.len()).sum();
    assert!(total <= 2048, "x-amz-meta-* totals {total} bytes");
    a.assert_no_leaks().await;
}

/// Google Drive through the Lambda handlers, on the AWS adapters: authorize → Google's consent
/// (the sandbox, auto-approved) → the callback → the picker (the top level shows My Drive and the
/// shared drives; the folder is one level into My Drive) → the connection → the worker imports
/// every file, a native Google Doc as its export → an add, a rename and a delete at Drive → the
/// scheduler's tick → the worker: the renamed file keeps its asset, the deleted one is
/// `source_deleted` with its object kept. A second connection, on a folder of a shared drive
/// (picked one level into that drive, with its drive id), imports and syncs beside it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_google_drive_connection_through_the_handlers() {
    let mut a = aws_for(ProviderKind::GoogleDrive, false, 30).await;
    let drive = a.sandbox.google_drive();
    let account = a.account.clone();
    let file = |parent: &str, name: &str, content: Content| {
        drive.add_file(&account, parent, name, content).unwrap().id
    };
    let root = drive.root(&account).unwrap();
    a.folder = drive.add_folder(&account, &root, "Brand Assets").unwrap().id;
    let folder = a.folder.clone();
    let photos = drive.add_folder(&account, &folder, "Photos").unwrap().id;
    let logo = file(&folder, "logo.png", Content::generated(50_000, 1));
    let guidelines = file(&folder, "guidelines.pdf", Content::generated(51_000, 2));
    file(&photos, "hero.jpg", Content::generated(52_000, 3));
    file(&photos, "naïve — é.jpg", Content::generated(53_000, 4));
    file(&folder, "film.mp4", Content::generated(9 * 1024 * 1024 + 3, 42));
    let brief = drive
        .add_native(
            &account,
            &folder,
            "Campaign brief",
            "application/vnd.google-apps.document",
            Some(Content::text("The campaign brief, as Drive exports it")),
        )
        .unwrap()
        .id;
    let personal = drive.add_folder(&account, &root, "Personal").unwrap().id;
    file(&personal, "not connected.txt", Content::text("outside the folder"));
    let marketing = drive.add_shared_drive(&account, "Marketing").unwrap();
    drive.add_shared_drive(&account, "Archive").unwrap();
    let campaigns = drive.add_folder(&account, &marketing, "Campaigns").unwrap().id;
    let poster = file(&campaigns, "poster.png", Content::generated(60_000, 5));
    let flyer = file(&campaigns, "flyer.pdf", Content::generated(61_000, 6));

    // The picker: My Drive and the shared drives at the top; the folder inside My Drive.
    let grant = a.grant().await;
    let top = a.folders(&grant, None).await;
    let mut names: Vec<&str> = top.iter().map(|f| f["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Archive", "Marketing", "My Drive"], "{top:?}");
    assert!(top.iter().all(|f| f["kind"] == "drive"), "{top:?}");
    let my_drive = top.iter().find(|f| f["name"] == "My Drive").unwrap();
    let inside = a.folders(&grant, Some(my_drive)).await;
    let mut names: Vec<&str> = inside.iter().map(|f| f["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Brand Assets", "Personal"], "folders only, one level: {inside:?}");
    let entry = inside.iter().find(|f| f["id"] == folder.as_str()).unwrap();
    assert_eq!((&entry["kind"], &entry["selectable"]), (&json!("folder"), &json!(true)), "{entry}");
    let id = a.create(&grant, entry).await;

    // The shared drive's folder, one level into its drive, with the grant the admin already has.
    let shared = a.pick(&grant, &campaigns).await;
    assert_eq!(shared["drive_id"], marketing.as_str(), "{shared}");
    let shared_id = a.create(&grant, &shared).await;

    a.drain().await;
    a.assert_assets_of(&id, &folder).await;
    a.assert_assets_of(&shared_id, &campaigns).await;
    let details = a.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(details.body["recent_runs"][0]["status"], "succeeded", "{}", details.body);
    assert_eq!(details.body["counters"]["files"], 6, "{}", details.body);
    let items = a.items(&id).await;
    assert_eq!(items[&brief]["state"], "imported", "the native doc, as its export: {}", items[&brief]);
    let shared_details = a.get(&format!("/v1/connections/{shared_id}")).await;
    assert_eq!(shared_details.body["recent_runs"][0]["status"], "succeeded", "{}", shared_details.body);
    assert_eq!(shared_details.body["counters"]["files"], 2, "{}", shared_details.body);

    // Changes at Drive: in My Drive an add, a rename and a delete; in the shared drive the same,
    // the deletion by trash.
    let guidelines_asset = items[&guidelines]["asset_key"].clone();
    let shared_items = a.items(&shared_id).await;
    let poster_asset = shared_items[&poster]["asset_key"].clone();
    let added = file(&photos, "new hero.jpg", Content::generated(54_000, 7));
    drive.rename(&account, &guidelines, "guidelines 2027.pdf").unwrap();
    drive.delete(&account, &logo).unwrap();
    let banner = file(&campaigns, "banner.png", Content::generated(62_000, 8));
    drive.rename(&account, &poster, "poster (final).png").unwrap();
    drive.trash(&account, &flyer).unwrap();

    // The scheduler's tick enqueues both; the worker syncs them.
    assert_eq!(a.tick(&[&id, &shared_id]).await, 2);
    a.drain().await;
    a.assert_assets_of(&id, &folder).await;
    a.assert_assets_of(&shared_id, &campaigns).await;
    let items = a.items(&id).await;
    assert_eq!(items[&added]["state"], "imported", "{}", items[&added]);
    assert_eq!(items[&guidelines]["name"], "guidelines 2027.pdf", "{}", items[&guidelines]);
    assert_eq!(items[&guidelines]["asset_key"], guidelines_asset, "a renamed file keeps its asset");
    assert_eq!(items[&logo]["state"], "source_deleted", "{}", items[&logo]);
    let shared_items = a.items(&shared_id).await;
    assert_eq!(shared_items[&banner]["state"], "imported", "{}", shared_items[&banner]);
    assert_eq!(shared_items[&poster]["name"], "poster (final).png", "{}", shared_items[&poster]);
    assert_eq!(shared_items[&poster]["asset_key"], poster_asset, "a renamed file keeps its asset");
    assert_eq!(shared_items[&flyer]["state"], "source_deleted", "{}", shared_items[&flyer]);
    for c in [&id, &shared_id] {
        let runs = a.get(&format!("/v1/connections/{c}/runs")).await;
        assert_eq!(runs.body["items"].as_array().unwrap().len(), 2, "{}", runs.body);
        assert_eq!(runs.body["items"][0]["trigger"], "schedule", "{}", runs.body);
        assert_eq!(runs.body["items"][0]["status"], "succeeded", "{}", runs.body);
    }
    a.assert_no_leaks().await;
}

/// SharePoint through the handlers: Microsoft sign-in, the picker's site → library → folder, the
/// import into S3 and a sync of changes; then twenty connections on the one grant take their
/// initial imports at once, on twenty workers, with the access token expired: one refresh
/// (the lock in DynamoDB), and the rotated refresh token is what Secrets Manager holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sharepoint_connection_and_one_rotating_refresh_for_twenty_workers() {
    use extconn_sandbox::sharepoint::Endpoint as Graph;

    let mut a = aws_for(ProviderKind::Sharepoint, false, 60).await;
    let sp = a.sandbox.sharepoint();
    let account = a.account.clone();
    let file =
        |parent: &str, name: &str, content: Content| sp.add_file(&account, parent, name, content).unwrap().id;
    let site = sp.add_site("Marketing");
    sp.add_site("Sales");
    let library = sp.default_library(&site.id).unwrap();
    a.folder = sp.add_folder(&account, &library.root_id, "Campaign assets").unwrap().id;
    let folder = a.folder.clone();
    let social = sp.add_folder(&account, &folder, "Social").unwrap().id;
    let poster = file(&folder, "poster.png", Content::generated(50_000, 1));
    file(&folder, "plan.pdf", Content::generated(51_000, 2));
    let square = file(&social, "square.png", Content::generated(52_000, 3));
    file(&folder, "film.mp4", Content::generated(9 * 1024 * 1024 + 3, 42));
    let other = sp.add_folder(&account, &library.root_id, "Other team").unwrap().id;
    let budget = file(&other, "budget.csv", Content::text("not connected"));

    // The picker: the user's OneDrive and the sites; a site's libraries; the library's folders.
    let grant = a.grant().await;
    let top = a.folders(&grant, None).await;
    let marketing = top.iter().find(|f| f["name"] == "Marketing").unwrap_or_else(|| panic!("{top:?}"));
    assert_eq!(
        (&marketing["kind"], &marketing["selectable"]),
        (&json!("site"), &json!(false)),
        "{marketing}"
    );
    assert!(top.iter().any(|f| f["kind"] == "drive"), "the user's own OneDrive: {top:?}");
    let libraries = a.folders(&grant, Some(marketing)).await;
    let documents = libraries.iter().find(|f| f["drive_id"] == library.drive_id.as_str()).unwrap();
    assert_eq!(documents["kind"], "drive", "{documents}");
    let inside = a.folders(&grant, Some(documents)).await;
    let mut names: Vec<&str> = inside.iter().map(|f| f["name"].as_str().unwrap()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Campaign assets", "Other team"], "folders only, one level: {inside:?}");
    let entry = inside.iter().find(|f| f["id"] == folder.as_str()).unwrap();
    assert_eq!(entry["drive_id"], library.drive_id.as_str(), "the drive id travels with the folder: {entry}");
    let id = a.create(&grant, entry).await;
    a.drain().await;
    a.assert_assets_of(&id, &folder).await;
    let details = a.get(&format!("/v1/connections/{id}")).await;
    assert_eq!(details.body["recent_runs"][0]["status"], "succeeded", "{}", details.body);
    assert_eq!(details.body["counters"]["files"], 4, "{}", details.body);

    // Changes: the subfolder renamed, a file added and one deleted, another team's file edited.
    let items = a.items(&id).await;
    let square_asset = items[&square]["asset_key"].clone();
    sp.rename(&account, &social, "Social 2026").unwrap();
    let added = file(&folder, "press kit.zip", Content::generated(53_000, 4));
    sp.delete(&account, &poster).unwrap();
    sp.modify_file(&account, &budget, Content::text("edited elsewhere")).unwrap();
    sp.reset_counters();
    assert_eq!(a.tick(&[&id]).await, 1);
    a.drain().await;
    a.assert_assets_of(&id, &folder).await;
    assert_eq!(sp.calls(Graph::Download), 1, "only the added file is downloaded");
    let items = a.items(&id).await;
    assert_eq!(items[&added]["state"], "imported", "{}", items[&added]);
    assert_eq!(items[&poster]["state"], "source_deleted", "{}", items[&poster]);
    assert_eq!(items[&square]["asset_key"], square_asset, "a renamed folder's file keeps its asset");
    assert_eq!(items[&square]["path"], "/Campaign assets/Social 2026/square.png", "{}", items[&square]);
    assert!(!items.contains_key(&budget), "nothing outside the folder is recorded");

    // Twenty more connections on the same grant, their initial imports delivered at once to
    // twenty workers while the stored access token has expired.
    let mut ids = Vec::new();
    for i in 0..20 {
        let f = sp.add_folder(&account, &library.root_id, &format!("Team {i}")).unwrap().id;
        file(&f, "a.txt", Content::text(&format!("team {i}")));
        // As the picker offers it inside the library (the API checks it at Graph).
        let entry = json!({"id": f, "drive_id": library.drive_id, "selectable": true});
        ids.push(a.create(&grant, &entry).await);
    }
    let client = ClientId::parse("acme").unwrap();
    let g =
        a.ports.grants.get(&client, &extconn_core::GrantId::parse(&grant).unwrap()).await.unwrap().unwrap();
    let current = a.ports.vault.get(&g.secret_ref).await.unwrap().unwrap();
    let original = current.tokens.refresh_token.clone().unwrap();
    let mut expired = current.tokens.clone();
    expired.expires_at = Some(chrono::Utc::now() - chrono::Duration::minutes(1));
    a.ports.vault.put(&g.secret_ref, &expired, Some(current.version)).await.unwrap();
    sp.expire_access_tokens();
    sp.reset_counters();
    let mut messages = Vec::new();
    while messages.len() < 20 {
        let out = a
            .sqs
            .receive_message()
            .queue_url(&a.queue)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        assert!(!out.messages().is_empty(), "20 initial imports queued, got {}", messages.len());
        messages.extend(out.messages().iter().cloned());
    }
    let deadline = chrono::Utc::now() + chrono::Duration::minutes(5);
    let runs = messages.iter().map(|m| {
        let event =
            json!({"Records": [{"messageId": m.message_id(), "body": m.body(), "eventSource": "aws:sqs"}]});
        let worker = Worker::new(a.ports.clone(), EngineConfig::default());
        async move { worker.handle(event, deadline).await }
    });
    for r in futures::future::join_all(runs).await {
        assert_eq!(r.unwrap()["batchItemFailures"], json!([]));
    }
    for m in &messages {
        a.sqs
            .delete_message()
            .queue_url(&a.queue)
            .receipt_handle(m.receipt_handle().unwrap())
            .send()
            .await
            .unwrap();
    }
    assert_eq!(sp.calls(Graph::Token), 1, "exactly one refresh for twenty workers");
    let stored = a.ports.vault.get(&g.secret_ref).await.unwrap().unwrap();
    let rotated = stored.tokens.refresh_token.clone().unwrap();
    assert_ne!(rotated.expose(), original.expose(), "the rotated refresh token replaced the old one");
    assert_eq!(Some(rotated.expose().to_owned()), sp.latest_refresh_token(&account), "and it is the newest");
    for c in &ids {
        let d = a.get(&format!("/v1/connections/{c}")).await;
        assert_eq!(d.body["recent_runs"][0]["status"], "succeeded", "{}", d.body);
        assert_eq!(d.body["counters"]["files"], 1, "{}", d.body);
    }
    a.assert_no_leaks().await;
}
