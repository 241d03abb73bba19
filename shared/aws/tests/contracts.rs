//! The core's port contract suites, run against every AWS adapter on the emulator.

mod support;

use std::sync::Arc;
use std::time::Duration;

use extconn_aws::{DynamoStore, S3Sink, SecretsVault, SqsQueue};
use extconn_core::testkit;
use support::{config, table, unique};

async fn store() -> Arc<DynamoStore> {
    let cfg = config().await;
    let (client, name) = table(&cfg).await;
    Arc::new(DynamoStore::new(client, name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamo_connection_store() {
    testkit::connection_store(store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamo_item_and_run_store() {
    let s = store().await;
    testkit::item_and_run_store(s.clone(), s.clone(), s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamo_run_lifecycle() {
    let s = store().await;
    testkit::run_lifecycle(s.clone(), s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamo_failed_due() {
    let s = store().await;
    testkit::failed_due(s.clone(), s.clone(), s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamo_oauth_state_store() {
    testkit::oauth_state_store(store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamo_grant_store() {
    testkit::grant_store(store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_dynamo_audit_log() {
    testkit::audit_log(store().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_secrets_manager_token_vault() {
    let cfg = config().await;
    let vault =
        SecretsVault::new(aws_sdk_secretsmanager::Client::new(&cfg), format!("{}/", unique("extconn")));
    testkit::token_vault(Arc::new(vault)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_s3_asset_sink() {
    let cfg = config().await;
    let client = extconn_aws::s3_client(&cfg);
    let bucket = unique("assets");
    client.create_bucket().bucket(&bucket).send().await.expect("bucket");
    testkit::asset_sink(Arc::new(S3Sink::new(client, bucket))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_s3_asset_sink_resumes() {
    let cfg = config().await;
    let client = extconn_aws::s3_client(&cfg);
    let bucket = unique("assets");
    client.create_bucket().bucket(&bucket).send().await.expect("bucket");
    let (key, data) = testkit::asset_sink_resume(Arc::new(S3Sink::new(client.clone(), &bucket))).await;
    let body = client.get_object().bucket(&bucket).key(&key).send().await.expect("the resumed object").body;
    assert!(body.collect().await.expect("body").into_bytes() == data, "byte-identical");
    let open = client.list_multipart_uploads().bucket(&bucket).send().await.expect("uploads");
    assert!(
        open.uploads.unwrap_or_default().is_empty(),
        "no multipart upload left (the discarded one aborted)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aws_sqs_job_queue() {
    let cfg = config().await;
    let client = aws_sdk_sqs::Client::new(&cfg);
    let url =
        client.create_queue().queue_name(unique("jobs")).send().await.expect("queue").queue_url.expect("url");
    let probe = (client.clone(), url.clone());
    testkit::job_queue(Arc::new(SqsQueue::new(client, url)), move || {
        let (client, url) = probe.clone();
        async move {
            // Delayed messages arrive later; read until 24 arrived or 5 s of silence.
            let mut jobs = Vec::new();
            for _ in 0..10 {
                let out = client
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send()
                    .await
                    .expect("receive");
                for m in out.messages.unwrap_or_default() {
                    jobs.push(serde_json::from_str(m.body().unwrap_or_default()).expect("job body"));
                }
                if jobs.len() >= 24 {
                    break;
                }
            }
            let _ = Duration::ZERO;
            jobs
        }
    })
    .await;
}
