use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::Job;
use crate::ports::{JobQueue, MAX_QUEUE_DELAY, StoreError};

/// A FIFO of jobs with their delays, for tests and local mode. The serialized body is kept too,
/// so tests can scan exactly what a real queue would carry.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    items: Mutex<Vec<(Job, Duration, String)>>,
}

impl MemoryQueue {
    pub fn new() -> Self {
        Self::default()
    }
    /// Takes every queued job (with its delay), oldest first.
    pub fn drain(&self) -> Vec<(Job, Duration)> {
        std::mem::take(&mut *self.items.lock().expect("queue lock"))
            .into_iter()
            .map(|(j, d, _)| (j, d))
            .collect()
    }
    pub fn len(&self) -> usize {
        self.items.lock().expect("queue lock").len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The message bodies as they would go on the wire.
    pub fn bodies(&self) -> Vec<String> {
        self.items.lock().expect("queue lock").iter().map(|(_, _, b)| b.clone()).collect()
    }
}

fn body(job: &Job) -> Result<String, StoreError> {
    serde_json::to_string(job).map_err(|e| StoreError::Unavailable(e.to_string()))
}

#[async_trait]
impl JobQueue for MemoryQueue {
    async fn send(&self, jobs: &[Job]) -> Result<(), StoreError> {
        let mut items = self.items.lock().expect("queue lock");
        for j in jobs {
            items.push((j.clone(), Duration::ZERO, body(j)?));
        }
        Ok(())
    }
    async fn send_delayed(&self, job: &Job, delay: Duration) -> Result<(), StoreError> {
        let b = body(job)?;
        self.items.lock().expect("queue lock").push((job.clone(), delay.min(MAX_QUEUE_DELAY), b));
        Ok(())
    }
}
