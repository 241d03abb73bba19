//! What the contract suites cannot see: multipart uploads, object metadata, racing vault
//! writers, events delivered through a rule, what the failed-items index costs at scale, long
//! names in S3 metadata and DynamoDB, records DynamoDB refuses.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_sdk_dynamodb::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_sdk_dynamodb::operation::query::QueryOutput;
use aws_smithy_runtime_api::client::retries::RequestAttempts;
use bytes::Bytes;
use extconn_aws::{DynamoStore, EventBridgeEvents, S3Sink, SecretsVault};
use extconn_core::ports::{
    AssetEvents, AssetMeta, AssetSink, CommitOutcome, ConnectionStore, CounterDelta, ItemStore, ItemWrite,
    ObjectDigest, RunStore, SinkError, StoreError, TokenVault,
};
use extconn_core::{
    AssetEvent, AssetEventKind, ClientId, ConnectionEvent, ConnectionId, ConnectionStatus, Item, ItemState,
    ProviderKind, RunCounters, Secret, TokenSet, testkit,
};
use sha2::{Digest, Sha256};
use support::{config, table, unique};

fn meta(size: u64) -> AssetMeta {
    AssetMeta {
        content_type: "video/mp4".into(),
        size: Some(size),
        original_name: "Brand film (final) — é.mp4".into(),
        source_path: "/Brand Assets/Video/Brand film (final) — é.mp4".into(),
        provider: ProviderKind::Dropbox,
        provider_id: "id:a4ayc_80_OEAAAAAAAAAXw".into(),
        content_version: "rev-1".into(),
        provider_hash: Some("e3b0c442".into()),
    }
}

async fn upload(sink: &S3Sink, key: &str, data: &[u8], chunk: usize) -> Result<CommitOutcome, SinkError> {
    let mut up = sink.begin(key, &meta(data.len() as u64)).await?;
    for c in data.chunks(chunk) {
        up.write(Bytes::copy_from_slice(c)).await?;
    }
    up.commit(&ObjectDigest::of(data)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_s3_multipart_streams_and_is_create_only() {
    let cfg = config().await;
    let client = extconn_aws::s3_client(&cfg);
    let bucket = unique("assets");
    client.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let sink = S3Sink::new(client.clone(), bucket.clone());
    // 20 MiB + 5 bytes in 1 MiB chunks: three 8 MiB-or-less parts.
    let data: Vec<u8> = (0..20 * 1024 * 1024 + 5).map(|i| (i % 251) as u8).collect();
    assert_eq!(upload(&sink, "acme/c/k/v", &data, 1 << 20).await, Ok(CommitOutcome::Created));
    let head = client.head_object().bucket(&bucket).key("acme/c/k/v").send().await.expect("head");
    assert_eq!(head.content_length(), Some(data.len() as i64));
    assert_eq!(head.content_type(), Some("video/mp4"));
    let md = head.metadata().expect("metadata");
    assert_eq!(md.get("provider-id").map(String::as_str), Some("id%3Aa4ayc_80_OEAAAAAAAAAXw"));
    assert!(md.get("original-name").is_some_and(|v| v.is_ascii() && v.contains("%C3%A9")));
    let got = client
        .get_object()
        .bucket(&bucket)
        .key("acme/c/k/v")
        .send()
        .await
        .expect("get")
        .body
        .collect()
        .await
        .expect("body");
    assert_eq!(Sha256::digest(got.into_bytes()), Sha256::digest(&data), "byte-exact");
    // Redelivery of the same bytes: already there. Different bytes under the key: conflict.
    assert_eq!(upload(&sink, "acme/c/k/v", &data, 3 << 20).await, Ok(CommitOutcome::AlreadyExists));
    let mut other = data.clone();
    other[10] ^= 1;
    assert_eq!(upload(&sink, "acme/c/k/v", &other, 1 << 20).await, Err(SinkError::Conflict));
    // Nothing half-written is left: no multipart upload in progress.
    let uploads = client.list_multipart_uploads().bucket(&bucket).send().await.expect("list");
    assert!(uploads.uploads().is_empty(), "{:?}", uploads.uploads());
    // A wrong digest: nothing stored, no upload left.
    let mut up = sink.begin("acme/c/k/w", &meta(data.len() as u64)).await.expect("begin");
    up.write(Bytes::from(data.clone())).await.expect("write");
    let wrong = ObjectDigest { crc64: ObjectDigest::of(&data).crc64 ^ 1 };
    assert!(matches!(up.commit(&wrong).await, Err(SinkError::Integrity { .. })));
    assert!(client.head_object().bucket(&bucket).key("acme/c/k/w").send().await.is_err());
    let uploads = client.list_multipart_uploads().bucket(&bucket).send().await.expect("list");
    assert!(uploads.uploads().is_empty());
}

/// Uploads share the sink's pool of parts in flight: three 40 MiB uploads at once through a
/// pool of one part (each waits its turn, none is starved or stuck) and through the default
/// pool all store their exact bytes, with no multipart upload left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_s3_uploads_share_the_part_pool() {
    let cfg = config().await;
    let client = extconn_aws::s3_client(&cfg);
    let bucket = unique("assets");
    client.create_bucket().bucket(&bucket).send().await.expect("bucket");
    for (pool, sink) in [
        (1, S3Sink::with_part_pool(client.clone(), bucket.clone(), 1)),
        (16, S3Sink::new(client.clone(), bucket.clone())),
    ] {
        let files: Vec<Vec<u8>> =
            (0..3u8).map(|f| (0..40 * 1024 * 1024).map(|i| (i % 241) as u8 ^ f).collect()).collect();
        let keys: Vec<String> = (0..3).map(|f| format!("acme/c/pool-{pool}/{f}")).collect();
        let outcomes =
            futures::future::join_all(files.iter().zip(&keys).map(|(d, k)| upload(&sink, k, d, 1 << 20)))
                .await;
        assert!(outcomes.iter().all(|o| *o == Ok(CommitOutcome::Created)), "pool {pool}: {outcomes:?}");
        for (d, k) in files.iter().zip(&keys) {
            let got = client.get_object().bucket(&bucket).key(k).send().await.expect("get");
            let body = got.body.collect().await.expect("body").into_bytes();
            assert_eq!(Sha256::digest(&body), Sha256::digest(d), "pool {pool}: {k} byte-exact");
        }
    }
    let uploads = client.list_multipart_uploads().bucket(&bucket).send().await.expect("list");
    assert!(uploads.uploads().is_empty(), "{:?}", uploads.uploads());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_racing_vault_writers_one_wins() {
    let cfg = config().await;
    let vault = Arc::new(SecretsVault::new(
        aws_sdk_secretsmanager::Client::new(&cfg),
        format!("{}/", unique("extconn")),
    ));
    let t = |a: &str| TokenSet {
        access_token: Secret::new(a),
        refresh_token: Some(Secret::new("r")),
        expires_at: None,
    };
    let v1 = vault.put("acme/gra_x", &t("a1"), None).await.expect("create");
    let writers = (0..8).map(|i| {
        let vault = vault.clone();
        let tokens = t(&format!("a2-{i}"));
        tokio::spawn(async move { vault.put("acme/gra_x", &tokens, Some(v1)).await })
    });
    let results: Vec<Result<u64, StoreError>> =
        futures::future::join_all(writers).await.into_iter().map(|r| r.expect("task")).collect();
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
    assert!(results.iter().all(|r| r.is_ok() || *r == Err(StoreError::Conflict)));
    let now = vault.get("acme/gra_x").await.expect("get").expect("present");
    assert_eq!(now.version, v1 + 1);
}

/// A fresh events bus whose rule (`pattern`) forwards to a fresh queue, as a DAM would
/// subscribe: the adapter on that bus, an SQS client, and the queue's URL.
async fn bus_to_queue(pattern: &str) -> (EventBridgeEvents, aws_sdk_sqs::Client, String) {
    let cfg = config().await;
    let eb = aws_sdk_eventbridge::Client::new(&cfg);
    let sqs = aws_sdk_sqs::Client::new(&cfg);
    let bus = unique("assets-bus");
    eb.create_event_bus().name(&bus).send().await.expect("bus");
    let url =
        sqs.create_queue().queue_name(unique("dam")).send().await.expect("queue").queue_url.expect("url");
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("attrs")
        .attributes
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn).cloned())
        .expect("arn");
    eb.put_rule().name("to-dam").event_bus_name(&bus).event_pattern(pattern).send().await.expect("rule");
    eb.put_targets()
        .rule("to-dam")
        .event_bus_name(&bus)
        .targets(aws_sdk_eventbridge::types::Target::builder().id("dam").arn(arn).build().expect("target"))
        .send()
        .await
        .expect("targets");
    (EventBridgeEvents::new(eb, bus), sqs, url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_asset_events_reach_a_queue_through_a_rule() {
    let (events, sqs, url) = bus_to_queue(r#"{"source":["extconn.assets"]}"#).await;
    let e = AssetEvent {
        kind: AssetEventKind::Imported,
        client_id: ClientId::parse("acme").unwrap(),
        connection_id: ConnectionId::generate(),
        provider: ProviderKind::Dropbox,
        provider_id: "id:1".into(),
        asset_key: Some("acme/c/k/v".into()),
        name: "a.jpg".into(),
        path: "/a.jpg".into(),
        previous_path: None,
        size: Some(3),
        content_hash: None,
        at: chrono::Utc::now(),
    };
    events.publish(std::slice::from_ref(&e)).await.expect("publish");
    let got = sqs.receive_message().queue_url(&url).wait_time_seconds(2).send().await.expect("receive");
    let body: serde_json::Value = serde_json::from_str(got.messages()[0].body().unwrap()).unwrap();
    assert_eq!(body["detail-type"], "Asset Imported");
    assert_eq!(body["detail"]["asset_key"], "acme/c/k/v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_connection_events_reach_a_queue_through_a_rule() {
    let (events, sqs, url) =
        bus_to_queue(r#"{"source":["extconn.connections"],"detail-type":["Connection Status Changed"]}"#)
            .await;
    let e = |i: usize| ConnectionEvent {
        client_id: ClientId::parse("acme").unwrap(),
        connection_id: ConnectionId::generate(),
        provider: ProviderKind::Dropbox,
        folder_name: format!("Brand Assets {i}"),
        status: ConnectionStatus::NeedsReview,
        previous_status: ConnectionStatus::Active,
        reason: Some("a run would mark 420 files deleted".into()),
        held_deletions: Some(420),
        at: chrono::Utc::now(),
    };
    // More than one PutEvents batch (10 entries each).
    let sent: Vec<ConnectionEvent> = (0..12).map(e).collect();
    events.publish_connection(&sent).await.expect("publish");
    let mut bodies = Vec::new();
    for _ in 0..10 {
        let got = sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        for m in got.messages() {
            bodies.push(serde_json::from_str::<serde_json::Value>(m.body().unwrap()).unwrap());
        }
        if bodies.len() >= sent.len() {
            break;
        }
    }
    assert_eq!(bodies.len(), sent.len(), "every connection event arrives");
    for b in &bodies {
        assert_eq!(b["source"], "extconn.connections");
        assert_eq!(b["detail-type"], "Connection Status Changed");
        let detail: ConnectionEvent =
            serde_json::from_value(b["detail"].clone()).expect("detail is the event");
        assert!(sent.contains(&detail), "{detail:?}");
    }
    assert_eq!(bodies[0]["detail"]["status"], "needs_review");
}

/// Counts the operations a DynamoDB client calls (and the attempts it sends) and the items its
/// Queries read.
#[derive(Debug, Clone, Default)]
struct Reads {
    requests: Arc<AtomicUsize>,
    retries: Arc<AtomicUsize>,
    queries: Arc<AtomicUsize>,
    scanned: Arc<AtomicUsize>,
}

impl Reads {
    /// Operations called, Queries answered and items those read, since the last take. An
    /// operation the SDK retried (a loaded emulator answering 5xx or timing out) counts once:
    /// the figures are what the code asks for; the retries are counted apart.
    fn take(&self) -> (usize, usize, usize) {
        self.retries.swap(0, Ordering::SeqCst);
        (
            self.requests.swap(0, Ordering::SeqCst),
            self.queries.swap(0, Ordering::SeqCst),
            self.scanned.swap(0, Ordering::SeqCst),
        )
    }

    /// Like `take`, and the attempts beyond the first that the SDK's retries sent.
    fn take_with_retries(&self) -> ((usize, usize, usize), usize) {
        let retries = self.retries.load(Ordering::SeqCst);
        (self.take(), retries)
    }
}

impl Intercept for Reads {
    fn name(&self) -> &'static str {
        "test read counter"
    }

    fn read_before_transmit(
        &self,
        _: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let retry = cfg.load::<RequestAttempts>().is_some_and(|a| a.attempts() > 1);
        let counter = if retry { &self.retries } else { &self.requests };
        counter.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    fn read_after_execution(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(q) =
            context.output_or_error().and_then(|r| r.ok()).and_then(|o| o.downcast_ref::<QueryOutput>())
        {
            self.queries.fetch_add(1, Ordering::SeqCst);
            self.scanned.fetch_add(usize::try_from(q.scanned_count()).unwrap_or(0), Ordering::SeqCst);
        }
        Ok(())
    }
}

/// A store on a fresh table whose client counts its reads; the raw client and table name too.
async fn counted_store() -> (DynamoStore, Reads, aws_sdk_dynamodb::Client, String) {
    let cfg = config().await;
    let (client, name) = table(&cfg).await;
    let reads = Reads::default();
    let counted =
        aws_sdk_dynamodb::Client::from_conf(client.config().to_builder().interceptor(reads.clone()).build());
    (DynamoStore::new(counted, name.clone()), reads, client, name)
}

/// A connection with a run and a held lease (what item writes need).
async fn leased(store: &DynamoStore) -> (extconn_core::ConnKey, extconn_core::Fence, extconn_core::RunId) {
    let conn = testkit::sample_connection(&ClientId::parse("acme").expect("client id"), "id:folder");
    ConnectionStore::create(store, &conn).await.expect("connection");
    let run = testkit::sample_run(&conn.key());
    RunStore::create(store, &run).await.expect("run");
    let fence = store
        .acquire_lease(&conn.key(), "worker", chrono::Utc::now(), std::time::Duration::from_secs(600))
        .await
        .expect("acquire")
        .expect("free")
        .0;
    (conn.key(), fence, run.id)
}

fn quiet(item: Item, run: &extconn_core::RunId) -> ItemWrite {
    ItemWrite {
        item,
        run_id: run.clone(),
        run_delta: RunCounters::default(),
        conn_delta: CounterDelta::default(),
    }
}

/// 10,000 items of which 5 failed and due: failed_due finds exactly those in one Query that
/// reads only them (its cost follows the failed items, not the connection's size); a listing
/// of the skipped files reads its page and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_failed_due_reads_only_the_failed_items_of_10000() {
    let (store, reads, raw, table) = counted_store().await;
    let (key, fence, run) = leased(&store).await;
    let now = chrono::Utc::now();
    // 9,995 items in bulk, with the layout `record` writes: imported and skipped ones, some
    // deleted at the source, and 20 failed ones not due for a day (in the index, out of range).
    let bulk: Vec<Item> = (0..9_995)
        .map(|i| {
            let mut item = testkit::sample_item(&format!("id:{i:05}"), &format!("/Photos/{i:05}.jpg"));
            item.parent_id = Some("id:photos".into());
            match i % 500 {
                0..20 => {
                    item.state = ItemState::Failed;
                    item.next_attempt_at = Some(now + chrono::Duration::days(1));
                }
                20..100 => item.state = ItemState::Skipped,
                100..120 => item.state = ItemState::SourceDeleted,
                _ => {}
            }
            item
        })
        .collect();
    let records =
        bulk.iter().map(|i| extconn_aws::dynamo::item_record(&key, i).expect("attributes")).collect();
    extconn_aws::dynamo::bulk_load(&raw, &table, records).await.expect("bulk load");
    // The 5 due ones through the store's own write path.
    let mut expected = Vec::new();
    for (n, i) in [3, 1, 4, 1, 5].into_iter().enumerate() {
        let id = format!("id:failed-{n}");
        let mut item = testkit::sample_item(&id, &format!("/Photos/{id}.jpg"));
        item.state = ItemState::Failed;
        item.attempts = 2;
        item.next_attempt_at = Some(now - chrono::Duration::minutes(i * 10));
        item.error = Some("the provider refused the download".into());
        store.record(&fence, &quiet(item.clone(), &run)).await.expect("record");
        expected.push(item);
    }
    expected.sort_by(|a, b| (a.next_attempt_at, &a.provider_id).cmp(&(b.next_attempt_at, &b.provider_id)));
    let mut stored = 0;
    let mut start = None;
    loop {
        let page = raw
            .scan()
            .table_name(&table)
            .select(aws_sdk_dynamodb::types::Select::Count)
            .set_exclusive_start_key(start)
            .send()
            .await
            .expect("count");
        stored += page.count();
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    assert!(stored >= 10_000, "{stored} records");

    reads.take();
    let limit = 100;
    let found = store.failed_due(&key, now, None, limit).await.expect("failed_due");
    let (requests, queries, scanned) = reads.take();
    assert_eq!(found, expected, "exactly the 5 failed and due items, by (next attempt, id)");
    assert!(requests <= 2 && queries == requests, "{requests} requests, {queries} queries");
    assert!(scanned <= limit, "read {scanned} items for a page of {limit}");
    assert_eq!(scanned, found.len(), "it reads only what it returns");

    // A cursor continues the same way.
    let last = &found[2];
    let rest = store
        .failed_due(&key, now, Some((last.next_attempt_at.unwrap(), &last.provider_id)), limit)
        .await
        .expect("failed_due");
    assert_eq!(rest, expected[3..]);
    let (requests, _, scanned) = reads.take();
    assert!(requests <= 2 && scanned == 2, "{requests} requests, {scanned} read");

    // The details view's listings by state read their page from `ByState`, not the partition:
    // 50 of the 1,600 skipped files, then the next 50 after a cursor.
    let page = ItemStore::list(&store, &key, Some(ItemState::Skipped), None, 50).await.expect("list");
    let (requests, _, scanned) = reads.take();
    assert_eq!(page.len(), 50);
    assert!(page.iter().all(|i| i.state == ItemState::Skipped));
    assert_eq!((requests, scanned), (1, 50), "one Query of exactly the skipped items it returns");
    let next = ItemStore::list(&store, &key, Some(ItemState::Skipped), Some(&page[49].provider_id), 50)
        .await
        .expect("list");
    let (requests, _, scanned) = reads.take();
    assert!(next.first().is_some_and(|i| i.provider_id > page[49].provider_id));
    assert_eq!((next.len(), requests, scanned), (50, 1, 50));
}

/// A 300-character CJK name and a 1,200-byte path.
fn long_names() -> (String, String) {
    let cjk: String = "日本語の資料写真素材".chars().cycle().take(300).collect();
    let name = format!("{cjk}.jpg");
    let mut path = String::from("/");
    while path.len() + "ブランド資料/".len() + "x/".len() + name.len() <= 1200 {
        path.push_str("ブランド資料/");
    }
    // A last folder of ASCII padding to land on 1,200 bytes exactly.
    path.push_str(&"x".repeat(1200 - path.len() - 1 - name.len()));
    path.push('/');
    path.push_str(&name);
    assert_eq!(path.len(), 1200);
    (name, path)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_s3_metadata_of_a_long_cjk_name_stays_within_2_kb() {
    let cfg = config().await;
    let client = extconn_aws::s3_client(&cfg);
    let bucket = unique("assets");
    client.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let sink = S3Sink::new(client.clone(), bucket.clone());
    let (name, path) = long_names();
    let m = AssetMeta { original_name: name.clone(), source_path: path.clone(), ..meta(5) };
    let mut up = sink.begin("acme/c/cjk/v", &m).await.expect("begin");
    up.write(Bytes::from_static(b"hello")).await.expect("write");
    assert_eq!(up.commit(&ObjectDigest::of(b"hello")).await, Ok(CommitOutcome::Created));
    let head = client.head_object().bucket(&bucket).key("acme/c/cjk/v").send().await.expect("head");
    let md = head.metadata().expect("metadata");
    // What S3 counts: every x-amz-meta- name and value, in bytes (the emulator does not enforce
    // the limit: the adapter's own budget is what keeps it).
    let size: usize = md.iter().map(|(k, v)| "x-amz-meta-".len() + k.len() + v.len()).sum();
    assert!(size <= 2048, "{size} bytes of metadata: {md:?}");
    assert_eq!(md.get("truncated").map(String::as_str), Some("original-name,source-path"));
    let sent: std::collections::HashMap<String, String> =
        extconn_aws::s3::object_metadata(&m).into_iter().collect();
    assert_eq!(md, &sent, "the object carries exactly the budgeted metadata");
    assert!(md.values().all(|v| v.is_ascii()));
    let digest = &hex::encode(Sha256::digest(name.as_bytes()))[..16];
    assert!(md["original-name"].ends_with(&format!("~sha256%3A{digest}")), "{}", md["original-name"]);
    assert!(md["original-name"].starts_with(&extconn_aws::s3::encode_meta(&name[..30])));
    assert_eq!(md["provider-id"], "id%3Aa4ayc_80_OEAAAAAAAAAXw", "short values are unchanged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamo_round_trips_a_long_cjk_name_and_path() {
    let (store, _, _, _) = counted_store().await;
    let (key, fence, run) = leased(&store).await;
    let (name, path) = long_names();
    let mut item = testkit::sample_item("id:cjk", &path);
    assert_eq!(item.name, name);
    item.parent_id = Some("id:brand".into());
    item.path_key = Some(extconn_core::path_key(&path.to_lowercase()));
    store.record(&fence, &quiet(item.clone(), &run)).await.expect("record");
    assert_eq!(ItemStore::get(&store, &key, "id:cjk").await.expect("get"), Some(item.clone()));
    assert_eq!(store.children(&key, "id:brand", None, 10).await.expect("children"), [item.clone()]);
    let by_path = store.by_path_key(&key, item.path_key.as_deref().unwrap()).await.expect("by path");
    assert_eq!(by_path, [item]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamo_rejects_an_oversized_record_and_nothing_else() {
    let (store, _, _, _) = counted_store().await;
    let (key, fence, run) = leased(&store).await;
    let counted = |item: Item| ItemWrite {
        item,
        run_id: run.clone(),
        run_delta: RunCounters { imported: 1, ..Default::default() },
        conn_delta: CounterDelta { files: 1, bytes: 10, failed: 0 },
    };
    // An item over DynamoDB's 400 KB, and a provider id over the 1,024-byte sort key limit.
    let mut huge = testkit::sample_item("id:huge", "/Photos/huge.jpg");
    huge.error = Some("x".repeat(500_000));
    let r = store.record(&fence, &counted(huge)).await;
    assert!(matches!(r, Err(StoreError::Rejected(_))), "{r:?}");
    let long_id = format!("id:{}", "é".repeat(600));
    let r = store.record(&fence, &counted(testkit::sample_item(&long_id, "/Photos/long-id.jpg"))).await;
    assert!(matches!(r, Err(StoreError::Rejected(_))), "{r:?}");
    // Nothing of either was written, counters included; the store still takes other records.
    assert_eq!(ItemStore::get(&store, &key, "id:huge").await.expect("get"), None);
    let c = ConnectionStore::get(&store, &key).await.expect("get").expect("connection");
    assert_eq!(c.counters.files, 0);
    store.record(&fence, &counted(testkit::sample_item("id:ok", "/Photos/ok.jpg"))).await.expect("record");
    let r = RunStore::get(&store, &key, &run).await.expect("get").expect("run");
    assert_eq!(r.counters.imported, 1);
}

/// The scheduler on DynamoDB: 1,000 due connections (spread over the index's shards) and two
/// ticks at once enqueue each exactly once, and the ticks cost about one conditional write per
/// due connection and a Query page per 100 — no GetItem, no Scan, no record read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_two_ticks_at_once_enqueue_1000_due_connections_once_at_one_write_each() {
    let (store, reads, raw, table) = counted_store().await;
    let store = Arc::new(store);
    let client = ClientId::parse("fleet").expect("client id");
    let n = 1_000;
    let records = (0..n)
        .map(|i| testkit::sample_connection(&client, &format!("id:folder-{i:04}")))
        .map(|c| extconn_aws::dynamo::connection_record(&c).expect("attributes"))
        .collect();
    extconn_aws::dynamo::bulk_load(&raw, &table, records).await.expect("bulk load");
    let due_by = chrono::Utc::now() + chrono::Duration::seconds(2);
    // Not due: Auto sync off, or due later.
    let mut off = testkit::sample_connection(&client, "id:off");
    off.auto_sync = false;
    ConnectionStore::create(store.as_ref(), &off).await.expect("create");
    let mut later = testkit::sample_connection(&client, "id:later");
    later.next_due_at = Some(due_by + chrono::Duration::hours(1));
    ConnectionStore::create(store.as_ref(), &later).await.expect("create");
    reads.take();

    let bench = testkit::MemoryBench::new();
    let mut ports = bench.ports(Vec::new());
    ports.connections = store.clone();
    let (a, b) = tokio::join!(
        extconn_core::scheduler::tick(&ports, due_by),
        extconn_core::scheduler::tick(&ports, due_by)
    );
    let sent = a.expect("tick") + b.expect("tick");
    let ((requests, queries, _), retries) = reads.take_with_retries();
    let jobs = bench.queue.drain();
    assert_eq!((sent, jobs.len()), (n, n), "each due connection enqueued once by one of the two ticks");
    let ids: std::collections::BTreeSet<_> = jobs.iter().map(|(j, _)| j.connection_id.clone()).collect();
    assert_eq!(ids.len(), n, "no connection twice");
    assert!(!ids.contains(&off.id) && !ids.contains(&later.id));
    // Two ticks: each connection claimed by one and perhaps tried by the other (a refused
    // conditional write), plus each tick's pages of 100 per shard.
    let writes = requests - queries;
    assert!(writes <= 2 * n, "{writes} claim writes for {n} due connections");
    assert!(queries <= 2 * (8 * 2 + n / 100), "{queries} Query pages");
    eprintln!(
        "two ticks over {n} due connections: {requests} requests ({queries} Query pages, {writes} claims), {retries} retried"
    );

    // A third tick finds nothing due: 8 empty pages, no write.
    let again = extconn_core::scheduler::tick(&ports, due_by).await.expect("tick");
    let (requests, queries, _) = reads.take();
    assert_eq!(
        (again, requests, queries),
        (0, 8, 8),
        "a tick with nothing due costs one empty Query per shard"
    );
}
