//! The sync job queue on SQS: bodies are the job's ids only (no tokens), sent in batches of 10.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use extconn_core::Job;
use extconn_core::ports::{JobQueue, MAX_QUEUE_DELAY, StoreError};

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: Client, url: impl Into<String>) -> Self {
        Self { client, url: url.into() }
    }
}

fn body(job: &Job) -> Result<String, StoreError> {
    serde_json::to_string(job).map_err(|e| StoreError::Unavailable(e.to_string()))
}

#[async_trait]
impl JobQueue for SqsQueue {
    async fn send(&self, jobs: &[Job]) -> Result<(), StoreError> {
        for chunk in jobs.chunks(10) {
            let mut entries = Vec::with_capacity(chunk.len());
            for (i, j) in chunk.iter().enumerate() {
                entries.push(
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body(j)?)
                        .build()
                        .map_err(|e| StoreError::Unavailable(e.to_string()))?,
                );
            }
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| StoreError::Unavailable(DisplayErrorContext(&e).to_string()))?;
            if !out.failed().is_empty() {
                return Err(StoreError::Unavailable(format!(
                    "{} messages not accepted by SQS",
                    out.failed().len()
                )));
            }
        }
        Ok(())
    }

    async fn send_delayed(&self, job: &Job, delay: Duration) -> Result<(), StoreError> {
        let secs = i32::try_from(delay.min(MAX_QUEUE_DELAY).as_secs()).unwrap_or(900);
        self.client
            .send_message()
            .queue_url(&self.url)
            .message_body(body(job)?)
            .delay_seconds(secs)
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(DisplayErrorContext(&e).to_string()))?;
        Ok(())
    }
}
