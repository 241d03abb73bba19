//! The scheduler tick (EventBridge schedule → this → the job queue).
//!
//! Due connections are read a page at a time; each is claimed by moving its `next_due_at`
//! forward with a conditional write, and only claimed ones are enqueued. Two ticks in the same
//! window therefore enqueue each connection once. Connections that are not `active` (e.g.
//! `reauth_required`) or have auto sync off are never due, so they cost no provider call.

use crate::context::Ports;
use crate::domain::{Job, Timestamp, Trigger};
use crate::ports::StoreError;

const PAGE: usize = 100;

/// Enqueues every due connection once; returns how many jobs were sent.
pub async fn tick(ports: &Ports, now: Timestamp) -> Result<usize, StoreError> {
    let mut sent = 0;
    loop {
        let due = ports.connections.due(now, PAGE).await?;
        let mut jobs = Vec::with_capacity(due.len());
        for c in &due {
            let Some(expected) = c.next_due_at else { continue };
            let interval =
                chrono::Duration::seconds(i64::try_from(c.sync_interval_secs).unwrap_or(i64::MAX).max(60));
            // The next slot is counted from now, not from the missed one, so a backlog never
            // turns into a burst.
            if ports.connections.claim_due(&c.key(), expected, now + interval).await? {
                jobs.push(Job {
                    client_id: c.client_id.clone(),
                    connection_id: c.id.clone(),
                    trigger: Trigger::Schedule,
                    run_id: None,
                    requested_by: None,
                    continuation: false,
                });
            }
        }
        ports.queue.send(&jobs).await?;
        sent += jobs.len();
        if due.len() < PAGE {
            return Ok(sent);
        }
    }
}
