//! The scheduler tick (EventBridge schedule → this → the job queue).
//!
//! The due set is spread over the store's shards, read in parallel, a page at a time, keys
//! only. Each due connection is claimed by moving its `next_due_at` forward with one
//! conditional write (several at once), and only claimed ones are enqueued, a page's jobs in one
//! batch. Two ticks in the same window therefore enqueue each connection once. Connections that
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

/// Enqueues every due connection once; returns how many jobs were sent. Every shard is tried;
/// the first error is returned after the others finished (their jobs are sent).
pub async fn tick(ports: &Ports, now: Timestamp) -> Result<usize, StoreError> {
    let shards = ports.connections.due_shards().max(1);
    let results = futures::future::join_all((0..shards).map(|sh| tick_shard(ports, sh, now))).await;
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
    first_error.map_or(Ok(sent), Err)
}

async fn tick_shard(ports: &Ports, shard: u32, now: Timestamp) -> Result<usize, StoreError> {
    let mut sent = 0;
    let mut after: Option<String> = None;
    loop {
        let page = ports.connections.due(shard, now, after.as_deref(), PAGE).await?;
        let jobs: Vec<Job> = futures::stream::iter(page.due)
            .map(|d| claim(ports, d, now))
            .buffer_unordered(CLAIMS_AT_ONCE)
            .try_filter_map(|job| async move { Ok(job) })
            .try_collect()
            .await?;
        ports.queue.send(&jobs).await?;
        sent += jobs.len();
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(sent),
        }
    }
}

/// The job of a due connection, if this tick claimed it.
async fn claim(ports: &Ports, d: DueRef, now: Timestamp) -> Result<Option<Job>, StoreError> {
    let interval = chrono::Duration::seconds(i64::try_from(d.every_secs).unwrap_or(i64::MAX).max(60));
    // The next slot is counted from now, not from the missed one, so a backlog never turns into
    // a burst.
    if !ports.connections.claim_due(&d.key, d.due_at, now + interval).await? {
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
