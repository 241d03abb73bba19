//! One bad message never fails the batch: malformed bodies are acknowledged, a panicking sync
//! step is reported as that message's failure only, and no failure is ever reported with an
//! empty itemIdentifier (which would fail the whole batch). The messages of a batch run at
//! once, each with the invocation's whole deadline.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Scripted, connection, job, world};
use extconn_core::engine::EngineConfig;
use extconn_core::*;
use extconn_sync_worker::Worker;
use serde_json::{Value, json};

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
