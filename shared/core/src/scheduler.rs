//! The scheduler tick (EventBridge schedule → this → the job queue).
//!
//! The due set is spread over the store's shards, read in parallel, a page at a time, keys
//! only. Each due connection is claimed by moving its `next_due_at` forward with one
//! conditional write (several at once), and only claimed ones are enqueued, in full batches of
//! 10 pooled across the shards (the remainder at the end of the tick). Two ticks in the same
//! window therefore enqueue each connection once; a claim names its tick, so a claim retried
//! after its first attempt was applied is still this tick's. Connections that
//! are not `active` or `error`, or have auto sync off, are never due, so they cost nothing.
//! A tick costs about one write per due connection plus one read per page: 10,000 due
//! connections are 10,000 claims, 16 at a time per shard.

use futures::{StreamExt, TryStreamExt};

use crate::context::Ports;
use crate::domain::{Job, Timestamp, Trigger};
use crate::ports::{DueRef, StoreError};

const PAGE: usize = 100;
/// Claims in flight per shard.
const CLAIMS_AT_ONCE: usize = 16;
/// Jobs per queue batch (SQS SendMessageBatch's maximum).
const BATCH: usize = 10;

/// Enqueues every due connection once; returns how many jobs were sent. Every shard is tried;
/// the first error is returned after the others finished (their jobs are sent).
pub async fn tick(ports: &Ports, now: Timestamp) -> Result<usize, StoreError> {
    let shards = ports.connections.due_shards().max(1);
    let pending = Pending::default();
    let id = crate::ids::tick_id();
    let results =
        futures::future::join_all((0..shards).map(|sh| tick_shard(ports, sh, now, &id, &pending))).await;
    let mut sent = 0;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(n) => sent += n,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    // What the shards claimed beyond their full batches: fewer than a batch in all.
    let rest = pending.rest();
    match ports.queue.send(&rest).await {
        Ok(()) => sent += rest.len(),
        Err(e) => {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(sent), Err)
}

/// Jobs claimed by the shards and not sent yet, pooled so that every queue batch but the
/// tick's last is full (SendMessageBatch takes 10: a tick sends ⌈claimed / 10⌉ batches, not a
/// part-filled batch per shard page).
#[derive(Default)]
struct Pending(std::sync::Mutex<Vec<Job>>);

impl Pending {
    /// Pools `jobs`; returns the whole batches now pooled, to send.
    fn add(&self, jobs: Vec<Job>) -> Vec<Job> {
        let mut p = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        p.extend(jobs);
        let whole = p.len() / BATCH * BATCH;
        p.drain(..whole).collect()
    }

    /// Everything still pooled.
    fn rest(&self) -> Vec<Job> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner))
    }
}

async fn tick_shard(
    ports: &Ports,
    shard: u32,
    now: Timestamp,
    id: &str,
    pending: &Pending,
) -> Result<usize, StoreError> {
    let mut sent = 0;
    let mut after: Option<String> = None;
    loop {
        let page = ports.connections.due(shard, now, after.as_deref(), PAGE).await?;
        let jobs: Vec<Job> = futures::stream::iter(page.due)
            .map(|d| claim(ports, d, now, id))
            .buffer_unordered(CLAIMS_AT_ONCE)
            .try_filter_map(|job| async move { Ok(job) })
            .try_collect()
            .await?;
        let full = pending.add(jobs);
        ports.queue.send(&full).await?;
        sent += full.len();
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(sent),
        }
    }
}

/// The job of a due connection, if this tick claimed it.
async fn claim(ports: &Ports, d: DueRef, now: Timestamp, tick: &str) -> Result<Option<Job>, StoreError> {
    let interval = chrono::Duration::seconds(i64::try_from(d.every_secs).unwrap_or(i64::MAX).max(60));
    // The next slot is counted from now, not from the missed one, so a backlog never turns into
    // a burst.
    if !ports.connections.claim_due(&d.key, d.due_at, now + interval, tick).await? {
        return Ok(None);
    }
    Ok(Some(Job {
        client_id: d.key.client_id,
        connection_id: d.key.connection_id,
        trigger: Trigger::Schedule,
        run_id: None,
        requested_by: None,
        continuation: false,
        purge: false,
    }))
}
