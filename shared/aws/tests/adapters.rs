//! What the contract suites cannot see: multipart uploads, object metadata, racing vault
//! writers, events delivered through a rule.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use extconn_aws::{EventBridgeEvents, S3Sink, SecretsVault};
use extconn_core::ports::{
    AssetEvents, AssetMeta, AssetSink, CommitOutcome, SinkError, StoreError, TokenVault,
};
use extconn_core::{AssetEvent, AssetEventKind, ClientId, ConnectionId, ProviderKind, Secret, TokenSet};
use sha2::{Digest, Sha256};
use support::{config, unique};

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
    up.commit(&hex::encode(Sha256::digest(data))).await
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
    assert!(matches!(up.commit("00").await, Err(SinkError::Integrity { .. })));
    assert!(client.head_object().bucket(&bucket).key("acme/c/k/w").send().await.is_err());
    let uploads = client.list_multipart_uploads().bucket(&bucket).send().await.expect("list");
    assert!(uploads.uploads().is_empty());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_asset_events_reach_a_queue_through_a_rule() {
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
    eb.put_rule()
        .name("to-dam")
        .event_bus_name(&bus)
        .event_pattern(r#"{"source":["extconn.assets"]}"#)
        .send()
        .await
        .expect("rule");
    eb.put_targets()
        .rule("to-dam")
        .event_bus_name(&bus)
        .targets(aws_sdk_eventbridge::types::Target::builder().id("dam").arn(arn).build().expect("target"))
        .send()
        .await
        .expect("targets");
    let events = EventBridgeEvents::new(eb, bus);
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
