//! The sync job queue (SQS on AWS, an in-process channel locally).

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::Job;
use crate::ports::store::StoreError;

/// SQS's longest message delay. A longer wait is a chain of delayed re-queues: the job carries
/// no deadline itself, the connection's `not_before` does (see the engine).
pub const MAX_QUEUE_DELAY: Duration = Duration::from_secs(900);

#[async_trait]
pub trait JobQueue: Send + Sync {
    /// Sends jobs; implementations batch (SQS: 10 per call). All or error.
    async fn send(&self, jobs: &[Job]) -> Result<(), StoreError>;
    /// Sends one job that becomes visible after `delay` (clamped to [`MAX_QUEUE_DELAY`]).
    async fn send_delayed(&self, job: &Job, delay: Duration) -> Result<(), StoreError>;
}
