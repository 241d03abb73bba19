//! The port contract suites against the in-memory adapters.

use std::sync::Arc;

use extconn_core::memory::{MemoryQueue, MemorySink, MemoryStore, MemoryVault};
use extconn_core::testkit;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_connection_store() {
    testkit::connection_store(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_item_and_run_store() {
    let s = Arc::new(MemoryStore::new());
    testkit::item_and_run_store(s.clone(), s.clone(), s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_run_lifecycle() {
    let s = Arc::new(MemoryStore::new());
    testkit::run_lifecycle(s.clone(), s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_failed_due() {
    let s = Arc::new(MemoryStore::new());
    testkit::failed_due(s.clone(), s.clone(), s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_oauth_state_store() {
    testkit::oauth_state_store(Arc::new(MemoryStore::new())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_grant_store() {
    testkit::grant_store(Arc::new(MemoryStore::new())).await;
}

#[tokio::test]
async fn memory_token_vault() {
    testkit::token_vault(Arc::new(MemoryVault::new())).await;
}

#[tokio::test]
async fn memory_asset_sink() {
    testkit::asset_sink(Arc::new(MemorySink::new())).await;
}

#[tokio::test]
async fn local_asset_sink() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = extconn_core::local::LocalAssetSink::new(dir.path());
    testkit::asset_sink(Arc::new(sink.clone())).await;
    assert!(sink.temp_files().is_empty(), "no temp file left behind");
}

#[tokio::test]
async fn memory_asset_sink_resumes() {
    let sink = MemorySink::new();
    let (key, data) = testkit::asset_sink_resume(Arc::new(sink.clone())).await;
    let stored = sink.objects().remove(&key).expect("the resumed object");
    assert_eq!(stored.size, data.len() as u64);
    assert_eq!((sink.suspended(), sink.open_uploads()), (0, 0));
}

#[tokio::test]
async fn local_asset_sink_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sink = extconn_core::local::LocalAssetSink::new(dir.path());
    let (key, data) = testkit::asset_sink_resume(Arc::new(sink.clone())).await;
    assert!(std::fs::read(sink.object_path(&key)).expect("the resumed object") == data, "byte-identical");
    assert!(sink.temp_files().is_empty(), "no temp file left behind: {:?}", sink.temp_files());
}

#[tokio::test]
async fn memory_job_queue() {
    let q = Arc::new(MemoryQueue::new());
    let probe = q.clone();
    testkit::job_queue(q, || {
        let probe = probe.clone();
        async move { probe.drain().into_iter().map(|(j, _)| j).collect() }
    })
    .await;
}

#[tokio::test]
async fn memory_audit_log() {
    testkit::audit_log(Arc::new(MemoryStore::new())).await;
}
