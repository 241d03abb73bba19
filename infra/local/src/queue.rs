//! The in-process job queue and its workers: SQS's delivery contract on one machine. Jobs are
//! delivered at least once; a job whose step fails is redelivered after a backoff, at most
//! [`MAX_RECEIVES`] times, then parked in a dead-letter list.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use extconn_core::engine::Engine;
use extconn_core::ports::{JobQueue, MAX_QUEUE_DELAY, StoreError};
use extconn_core::{Job, Ports};
use tokio::sync::mpsc;

pub const MAX_RECEIVES: u32 = 5;

/// A job in flight and how often it was received.
type Delivery = (Job, u32);

#[derive(Debug, Clone)]
pub struct ChannelQueue {
    tx: mpsc::UnboundedSender<Delivery>,
    dead: Arc<Mutex<Vec<Job>>>,
}

impl ChannelQueue {
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Delivery>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx, dead: Arc::default() }, rx)
    }

    fn push(&self, d: Delivery, delay: Duration) {
        let tx = self.tx.clone();
        if delay.is_zero() {
            let _ = tx.send(d);
        } else {
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _ = tx.send(d);
            });
        }
    }

    /// Jobs that failed [`MAX_RECEIVES`] times.
    pub fn dead_letters(&self) -> Vec<Job> {
        self.dead.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[async_trait::async_trait]
impl JobQueue for ChannelQueue {
    async fn send(&self, jobs: &[Job]) -> Result<(), StoreError> {
        for j in jobs {
            self.push((j.clone(), 0), Duration::ZERO);
        }
        Ok(())
    }
    async fn send_delayed(&self, job: &Job, delay: Duration) -> Result<(), StoreError> {
        self.push((job.clone(), 0), delay.min(MAX_QUEUE_DELAY));
        Ok(())
    }
}

/// Runs `workers` tasks taking jobs from `rx`, each job one engine step with a 5-minute
/// deadline (a Lambda invocation's budget here).
pub fn spawn_workers(
    ports: &Ports,
    queue: ChannelQueue,
    rx: mpsc::UnboundedReceiver<Delivery>,
    workers: usize,
) {
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    for n in 0..workers {
        let engine = Arc::new(Engine::new(
            ports.clone(),
            extconn_core::engine::EngineConfig {
                worker_id: format!("local-worker-{n}"),
                ..Default::default()
            },
        ));
        let (rx, queue, clock) = (rx.clone(), queue.clone(), ports.clock.clone());
        tokio::spawn(async move {
            loop {
                let Some((job, received)) = rx.lock().await.recv().await else { return };
                let deadline = clock.now() + chrono::Duration::minutes(5);
                match engine.run_job(&job, deadline).await {
                    // The engine logs the run's end itself.
                    Ok(outcome) => tracing::debug!(connection = %job.connection_id, ?outcome, "job done"),
                    Err(e) if received + 1 < MAX_RECEIVES => {
                        tracing::warn!(connection = %job.connection_id, error = %e, "job failed; redelivering");
                        queue.push((job, received + 1), Duration::from_secs(2u64.pow(received + 1)));
                    }
                    Err(e) => {
                        tracing::error!(connection = %job.connection_id, error = %e, "job failed {MAX_RECEIVES} times: dead-lettered");
                        queue.dead.lock().unwrap_or_else(|p| p.into_inner()).push(job);
                    }
                }
            }
        });
    }
}
