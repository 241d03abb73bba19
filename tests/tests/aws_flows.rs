// Test harness code: a failed setup step is meant to panic the test.
#![allow(clippy::unwrap_used)]

//! The system on its AWS adapters, through the Lambda handlers, against the AWS emulator (moto)
//! and the Dropbox sandbox: API Gateway HTTP API v2 events into the API, SQS batches into the
//! worker, the scheduler's tick. These tests fail, never skip, without the emulator.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use extconn_core::engine::EngineConfig;
use extconn_core::memory::ManualClock;
use extconn_core::ports::{Clock, ConnectionPatch, ConnectionStore};
use extconn_core::{ClientId, ConnKey, ConnectionId, Ports};
use extconn_lambda::Env;
use extconn_sandbox::dropbox::{AccountId, Content, DropboxControl, Endpoint, Fault};
use extconn_sandbox::{OAuthClient, Sandbox, SandboxConfig, Service};
use extconn_sync_worker::Worker;
use extconn_system_tests::log_capture;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tower::ServiceExt;

const BASE: &str = "https://api.test";
const FOLDER: &str = "/Brand Assets";

fn unique(p: &str) -> String {
    format!("{p}-{}", extconn_core::RunId::generate().as_str().trim_start_matches("run_"))
}

struct Aws {
    sandbox: Sandbox,
    dbx: DropboxControl,
    account: AccountId,
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

/// Everything the template creates, created uniquely for one test.
async fn aws(manual_clock: bool, visibility_secs: i32) -> Aws {
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
    let app_secret = unique("dropbox-app");
    let client_secret = format!("CANARY-CLIENT-SECRET-{}", unique("s"));
    sm.create_secret().name(&app_secret).secret_string(&client_secret).send().await.unwrap();
    let page_secret = unique("page-key");
    sm.create_secret().name(&page_secret).secret_string("page-token-key").send().await.unwrap();

    let sandbox = Sandbox::start(SandboxConfig {
        clients: vec![OAuthClient {
            service: Service::Dropbox,
            client_id: "extconn-aws-test".into(),
            client_secret,
            redirect_uris: vec![format!("{BASE}/v1/oauth/dropbox/callback")],
        }],
        ..Default::default()
    })
    .await;
    let dbx = sandbox.dropbox();
    let account = dbx.create_account("Demo Designer", "designer@example.com");
    dbx.add_folder(&account, FOLDER);
    for (i, name) in
        ["logo.png", "guidelines.pdf", "Photos/hero.jpg", "Photos/team (final).jpg", "naïve — é.txt"]
            .iter()
            .enumerate()
    {
        dbx.add_file(
            &account,
            &format!("{FOLDER}/{name}"),
            Content::generated(50_000 + i as u64 * 1000, i as u64),
        );
    }
    dbx.add_file(&account, &format!("{FOLDER}/Video/film.mp4"), Content::generated(9 * 1024 * 1024 + 3, 42));
    dbx.set_login_account(&account);
    dbx.set_auto_approve(true);
    let urls = dbx.urls();
    let vars: HashMap<&str, String> = HashMap::from([
        ("TABLE_NAME", table.clone()),
        ("QUEUE_URL", queue.clone()),
        ("BUCKET_NAME", bucket.clone()),
        ("EVENT_BUS_NAME", bus.clone()),
        ("SECRET_PREFIX", format!("{}/", unique("extconn"))),
        // The provider registry's variables; the app secret comes from Secrets Manager.
        ("EXTCONN_DROPBOX_CLIENT_ID", "extconn-aws-test".into()),
        ("EXTCONN_DROPBOX_CLIENT_SECRET_ID", app_secret),
        ("EXTCONN_DROPBOX_AUTHORIZE_BASE", urls.www_base.clone()),
        ("EXTCONN_DROPBOX_API_BASE", urls.api_base.clone()),
        ("EXTCONN_DROPBOX_CONTENT_BASE", urls.content_base.clone()),
        ("PAGE_TOKEN_SECRET_ID", page_secret),
        // No PUBLIC_BASE_URL (the template's default): redirect URIs follow the request's host.
        ("CONSOLE_URL", "https://dam.test/settings/external-connections".into()),
        ("CLAIM_CLIENT_ID", "custom:client".into()),
    ]);
    let env = Env::from_lookup(|k| vars.get(k).cloned()).unwrap();
    let mut ports = extconn_lambda::ports(&env, &sdk).await.unwrap();
    let clock = manual_clock.then(|| Arc::new(ManualClock::new(chrono::Utc::now())));
    if let Some(c) = &clock {
        ports.clock = c.clone();
    }
    let app = extconn_lambda::http_app(&env, ports.clone(), &sdk).await.unwrap();
    let worker = Worker::new(ports.clone(), EngineConfig::default());
    Aws { sandbox, dbx, account, ports, app, worker, sqs, queue, dlq, s3, bucket, ddb, table, bus, eb, clock }
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
    /// The admin connects Dropbox and creates a connection on /Brand Assets; returns its id.
    async fn connect(&self) -> String {
        let r = call(
            &self.app,
            apigw(
                "POST",
                "/v1/connections/authorize",
                Some(json!({"provider": "dropbox"})),
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
        let callback = consent.headers()["location"].to_str().unwrap().strip_prefix(BASE).unwrap().to_owned();
        let cb = call(&self.app, apigw("GET", &callback, None, None, Some(&cookie))).await;
        assert_eq!(cb.status, 303, "{}", cb.body);
        assert_eq!(cb.headers["referrer-policy"], "no-referrer");
        let grant = cb.headers["location"].to_str().unwrap().split("grant_id=").nth(1).unwrap().to_owned();
        let folders =
            call(&self.app, apigw("GET", &format!("/v1/grants/{grant}/folders"), None, Some("ana"), None))
                .await;
        let folder = folders.body["items"].as_array().unwrap().iter().find(|f| f["path"] == FOLDER).unwrap()
            ["id"]
            .clone();
        let created = call(
            &self.app,
            apigw(
                "POST",
                "/v1/connections",
                Some(json!({"grant_id": grant, "folder_id": folder, "auto_sync": true})),
                Some("ana"),
                None,
            ),
        )
        .await;
        assert_eq!(created.status, 201, "{}", created.body);
        created.body["id"].as_str().unwrap().to_owned()
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

    /// Every live file of the folder has exactly its bytes in S3; no object without a file.
    async fn assert_assets(&self, id: &str) {
        let objects = self.objects().await;
        let items = call(
            &self.app,
            apigw("GET", &format!("/v1/connections/{id}/items?limit=200"), None, Some("ana"), None),
        )
        .await;
        let items: HashMap<String, Value> = items.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| (i["id"].as_str().unwrap().to_owned(), i.clone()))
            .collect();
        let live = self.dbx.list_files(&self.account, FOLDER);
        for f in &live {
            let item = &items[&f.id];
            assert_eq!(item["state"], "imported", "{}", f.path_display);
            let key = item["asset_key"].as_str().unwrap();
            assert_eq!(
                objects.get(key),
                Some(&self.dbx.sha256_of(&self.account, &f.id)),
                "{}",
                f.path_display
            );
        }
        assert_eq!(objects.len(), live.len(), "one object per file, no duplicates");
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

    // A change at Dropbox, then Refresh Items.
    a.dbx.modify_file(&a.account, &format!("{FOLDER}/logo.png"), Content::text("logo v2"));
    a.dbx.move_entry(
        &a.account,
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
    let key = a.conn_key(&id);
    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    ConnectionStore::update(
        a.ports.connections.as_ref(),
        &key,
        &ConnectionPatch { next_due_at: Some(Some(past)), ..Default::default() },
    )
    .await
    .unwrap();
    assert_eq!(extconn_sync_scheduler::handle(&a.ports).await.unwrap(), 1);
    assert_eq!(
        extconn_sync_scheduler::handle(&a.ports).await.unwrap(),
        0,
        "a double tick enqueues nothing twice"
    );
    a.drain().await;
    let runs =
        call(&a.app, apigw("GET", &format!("/v1/connections/{id}/runs"), None, Some("ana"), None)).await;
    assert_eq!(runs.body["items"].as_array().unwrap().len(), 3);
    assert_eq!(runs.body["items"][0]["trigger"], "schedule");
    a.assert_no_leaks().await;
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
            trigger: extconn_core::Trigger::Manual, run_id: None, requested_by: None, continuation: false }).unwrap(),
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
        a.dbx.add_folder(&a.account, &dir);
    }
    let long = a.dbx.add_file(&a.account, &format!("{dir}/{name}"), Content::text("long"));
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
