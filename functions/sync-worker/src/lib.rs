//! sync-worker: an SQS batch of sync jobs, each one step of the engine, isolated from the
//! others (a failing or panicking message never fails the batch: it is reported in
//! `batchItemFailures` and redelivered, up to the queue's maxReceiveCount, then the DLQ). A
//! malformed body can never succeed: it is acknowledged and logged, not retried. The worker
//! also runs the hourly grant sweep (`{"action": "sweep-grants"}`), since the scheduler has no
//! access to secrets.

use std::sync::Arc;
use std::time::Duration;

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use extconn_core::engine::{Engine, EngineConfig, JobOutcome};
use extconn_core::{Job, Ports, RunStatus, Timestamp};
use extconn_lambda::{Metric, emit_metrics};
use serde_json::{Value, json};
use tracing::Instrument;

pub struct Worker {
    ports: Ports,
    engine: Arc<Engine>,
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker").finish_non_exhaustive()
    }
}

/// What one message came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageResult {
    Done,
    /// Not a job (acknowledged, never retried).
    Malformed,
    /// Redeliver.
    Failed(String),
}

impl Worker {
    pub fn new(ports: Ports, config: EngineConfig) -> Self {
        let engine = Arc::new(Engine::new(ports.clone(), config));
        Self { ports, engine }
    }

    /// Any event this function receives: an SQS batch, or the sweep schedule.
    pub async fn handle(&self, event: Value, deadline: Timestamp) -> Result<Value, extconn_lambda::Error> {
        if event.get("Records").is_some() {
            let batch: SqsEvent = serde_json::from_value(event)?;
            let failures = self.batch(batch, deadline).await;
            let mut resp = SqsBatchResponse::default();
            for id in failures {
                let mut f = aws_lambda_events::event::sqs::BatchItemFailure::default();
                f.item_identifier = id;
                resp.batch_item_failures.push(f);
            }
            return Ok(serde_json::to_value(resp)?);
        }
        if event.get("action").and_then(Value::as_str) == Some("sweep-grants") {
            let gone = extconn_core::grants::sweep(&self.ports, self.ports.clock.now()).await?;
            tracing::info!(grants_retired = gone, "grant sweep");
            return Ok(json!({ "grants_retired": gone }));
        }
        Err("unrecognised event".into())
    }

    /// Message ids to redeliver. Never empty ids: a message without one cannot be reported,
    /// so it is treated as done rather than failing the whole batch.
    ///
    /// The messages of a batch run at once, each with the whole invocation's deadline: one after
    /// another, the last would start with what the first left (memory: messages per batch ×
    /// transfers per run × the per-transfer bound, docs/deploy.md).
    pub async fn batch(&self, batch: SqsEvent, deadline: Timestamp) -> Vec<String> {
        let results = futures::future::join_all(batch.records.into_iter().map(|m| async move {
            let id = m.message_id.clone().filter(|i| !i.is_empty());
            (id, self.message(m.body.as_deref().unwrap_or(""), deadline).await)
        }))
        .await;
        let mut failures = Vec::new();
        for (id, result) in results {
            if let (MessageResult::Failed(why), Some(id)) = (&result, id) {
                tracing::warn!(message = %id, error = %why, "message failed; it will be redelivered");
                failures.push(id);
            }
        }
        failures
    }

    pub async fn message(&self, body: &str, deadline: Timestamp) -> MessageResult {
        let Ok(job) = serde_json::from_str::<Job>(body) else {
            tracing::error!(body_len = body.len(), "malformed message acknowledged (it can never succeed)");
            return MessageResult::Malformed;
        };
        // Its own task: a panic is contained and reported as this message's failure. A spawned
        // task starts outside every span, so it is given one under the invocation's (which
        // carries Lambda's request id): its logs keep the request id and name the connection.
        let engine = self.engine.clone();
        let span = tracing::info_span!(
            "message",
            client = %job.client_id,
            connection = %job.connection_id,
            run = job.run_id.as_ref().map(tracing::field::display),
            purge = job.purge,
        );
        let task = tokio::spawn(
            {
                let job = job.clone();
                async move { engine.run_job(&job, deadline).await }
            }
            .instrument(span),
        );
        match task.await {
            Ok(Ok(outcome)) => {
                self.metrics(&outcome);
                MessageResult::Done
            }
            Ok(Err(e)) => MessageResult::Failed(e.to_string()),
            Err(e) if e.is_panic() => MessageResult::Failed("the sync step panicked".into()),
            Err(e) => MessageResult::Failed(e.to_string()),
        }
    }

    /// The run's figures when it finishes (carried by the outcome: no read of the run).
    fn metrics(&self, outcome: &JobOutcome) {
        let mut m = Vec::new();
        match outcome {
            JobOutcome::Finished { status, counters: c, .. } => {
                m.push(Metric {
                    name: "FilesImported",
                    value: (c.imported + c.updated) as f64,
                    unit: "Count",
                });
                m.push(Metric { name: "BytesImported", value: c.bytes as f64, unit: "Bytes" });
                m.push(Metric { name: "FilesSkipped", value: c.skipped as f64, unit: "Count" });
                m.push(Metric { name: "FilesFailed", value: c.failed as f64, unit: "Count" });
                let flag = match status {
                    RunStatus::ReauthRequired => Some("ReauthRequired"),
                    // A listing that kept failing, the folder gone, or our app refused.
                    RunStatus::Failed => Some("RunsFailed"),
                    RunStatus::NeedsReview => Some("DeletionsHeldForReview"),
                    _ => None,
                };
                if let Some(name) = flag {
                    m.push(Metric { name, value: 1.0, unit: "Count" });
                }
            }
            JobOutcome::Continued { delay, .. } if *delay > Duration::ZERO => {
                m.push(Metric { name: "ThrottlingWaitSeconds", value: delay.as_secs_f64(), unit: "Seconds" });
            }
            _ => {}
        }
        emit_metrics("sync-worker", &m);
    }
}
