//! The request id reaches the logs of a message's task. Its own test binary: tracing caches
//! per call site whether anyone listens, and a test running at the same time without a
//! subscriber could register the worker's span call site as unwanted while this test's
//! thread-local subscriber is being installed (the span is then dropped and the task logs
//! outside every span). Alone in its process, the test sees what production sees: one
//! subscriber, installed before anything logs.

mod common;

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use common::{Scripted, connection, job, world};
use extconn_core::engine::EngineConfig;
use extconn_sync_worker::Worker;
use serde_json::json;

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
