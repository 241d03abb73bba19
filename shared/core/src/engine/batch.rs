//! Bounded concurrency of file transfers within a step (ARCHITECTURE §6.4).
//!
//! The metadata logic — scope by ancestry, renames, deletions, path reuse, cascades, the
//! mass-delete guard — stays sequential and deterministic. Only a file's import (download →
//! hash → store → record) runs concurrently: where the sequential code would import a file,
//! it *defers* it into the step's [`Batch`], and the batch is later run with up to
//! [`Pace::limit`] transfers at once and emptied ([`Engine::settle`]).
//!
//! The batch holds writes that the store does not show yet, so it is settled before anything
//! could read what it would write (read-your-writes), and wherever an order must hold:
//! - the same item again on the page (a file listed twice, or its rename or deletion after its
//!   import): its later change must see the import's record, never overtake it;
//! - a path-index lookup at a deferred file's path (path reuse);
//! - a deletion, and every walk of the children index (cascades, repaths, the check for items
//!   left behind by a renamed folder): a deferred file may be among the children;
//! - before a folder moved in is recorded: its subtree's files first, as sequentially (a crash
//!   in between lists the subtree again);
//! - at the end of every page, before the checkpoint (I3: the cursor passes a page only when
//!   every file of it is stored or recorded, whatever order the transfers finish in);
//! - after each page of failed items being retried (before the next page is read).
//!
//! A deferred file holds its listing entry and its old record only (no bytes), and a batch is
//! at most a page of the listing, so deferring costs no memory worth counting; the bytes in
//! flight are N transfers × the per-transfer bound (see `EngineConfig::transfer_concurrency`).
//!
//! Each file's record is one fenced write changing the item, the run's and the connection's
//! counters together (store-side increments), so counters stay exact in any completion order.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};

use futures::StreamExt;
use futures::stream::FuturesUnordered;

use super::apply::Placement;
use super::{Engine, RunCtx, Stop};
use crate::domain::Item;
use crate::ports::{RemoteItem, RunPatch};

/// A file whose bytes must be fetched, as the sequential logic decided it.
pub(crate) struct Deferred {
    pub remote: RemoteItem,
    pub at: Placement,
    /// The item's record when the decision was made. Nothing else writes this item before
    /// the batch is settled (anything that would settles first).
    pub old: Option<Item>,
    pub listing: Option<String>,
}

/// The files waiting to be transferred, each id at most once.
#[derive(Default)]
pub(crate) struct Batch {
    files: Vec<Deferred>,
    ids: HashSet<String>,
    path_keys: HashSet<String>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// Whether a deferred file has this id.
    pub fn holds(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Whether a deferred file sits at this path index key.
    pub fn holds_path(&self, key: &str) -> bool {
        self.path_keys.contains(key)
    }

    /// Callers settle the batch first when it already holds the id (a second entry would
    /// import on a stale `old`).
    pub fn push(&mut self, d: Deferred) {
        debug_assert!(!self.ids.contains(&d.remote.id), "a file deferred twice in one batch");
        self.ids.insert(d.remote.id.clone());
        if let Some(k) = &d.at.path_key {
            self.path_keys.insert(k.clone());
        }
        self.files.push(d);
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How many transfers may run at once: AIMD between 1 and the configured maximum.
///
/// - **Cut.** A throttle signal — a provider request answered 429 (`RateLimited` for the
///   request or the grant; a file's own quota is not about load) or 503 / a connection
///   failure (`Transient`) — halves the limit (rounded down, at least 1). Once per burst: the
///   signal cuts only if its request was sent after the last cut (`epoch`), so eight
///   transfers throttled together halve the limit once, not eight times.
/// - **Growth.** After `limit` provider requests in a row answered normally (a window's
///   worth), one more transfer at once, up to the maximum. A throttle signal restarts the
///   count.
///
/// A lower limit never cancels a running transfer: it stops new ones from starting until
/// fewer than the limit are running. The controller lives for one step; each step starts at
/// the maximum.
///
/// - **Hold.** A `Retry-After` on a request or grant 429 holds every request of the step, not
///   only the one refused, until it has elapsed: the provider asked this client to wait.
#[derive(Debug)]
pub(crate) struct Pace {
    max: usize,
    state: Mutex<PaceState>,
    hold_until: Mutex<Option<crate::domain::Timestamp>>,
}

#[derive(Debug)]
struct PaceState {
    limit: usize,
    /// Requests answered normally since the last growth or throttle signal.
    streak: usize,
    /// Cuts so far; a request remembers the epoch it was sent in.
    epoch: u64,
}

impl Pace {
    pub fn new(max: usize) -> Self {
        let max = max.max(1);
        Self {
            max,
            state: Mutex::new(PaceState { limit: max, streak: 0, epoch: 0 }),
            hold_until: Mutex::new(None),
        }
    }

    /// No request of the step before `until` (the latest hold wins).
    pub fn hold(&self, until: crate::domain::Timestamp) {
        let mut h = lock(&self.hold_until);
        if h.is_none_or(|t| t < until) {
            *h = Some(until);
        }
    }

    /// How long a request must still wait at `now`.
    pub fn held_for(&self, now: crate::domain::Timestamp) -> std::time::Duration {
        lock(&self.hold_until).and_then(|t| (t - now).to_std().ok()).unwrap_or_default()
    }

    pub fn limit(&self) -> usize {
        lock(&self.state).limit
    }

    /// Tag for a request about to be sent (see [`Pace::throttled`]).
    pub fn epoch(&self) -> u64 {
        lock(&self.state).epoch
    }

    /// A request sent in `sent_in` was throttled. Returns the new limit if it was cut.
    pub fn throttled(&self, sent_in: u64) -> Option<usize> {
        let mut s = lock(&self.state);
        s.streak = 0;
        if sent_in != s.epoch {
            return None;
        }
        s.limit = (s.limit / 2).max(1);
        s.epoch += 1;
        Some(s.limit)
    }

    /// A request answered normally.
    pub fn succeeded(&self) {
        let mut s = lock(&self.state);
        s.streak += 1;
        if s.streak >= s.limit && s.limit < self.max {
            s.limit += 1;
            s.streak = 0;
        }
    }
}

impl Engine {
    /// Defers a file's import into the step's batch (see the module docs for when it runs).
    pub(crate) async fn defer(
        &self,
        ctx: &mut RunCtx,
        remote: &RemoteItem,
        at: &Placement,
        old: Option<&Item>,
        listing: Option<&str>,
    ) -> Result<(), Stop> {
        if ctx.batch.holds(&remote.id) {
            self.settle(ctx).await?;
        }
        ctx.batch.push(Deferred {
            remote: remote.clone(),
            at: at.clone(),
            old: old.cloned(),
            listing: listing.map(str::to_owned),
        });
        Ok(())
    }

    /// Runs every deferred file, up to the pace's limit at once, and empties the batch.
    ///
    /// Each file ends with its own outcome recorded (imported, skipped, failed) — per-file
    /// problems never stop the others. A condition that ends the step stops it here:
    /// - the deadline (a transfer cut by it, or no time left to start one): no new transfer
    ///   starts, the running ones finish (each is bounded by the same time left, and one cut
    ///   records `failed: transfer_deadline`), then `Stop::Deadline`. The page is not
    ///   checkpointed: whatever did not run is listed again by the next invocation;
    /// - anything else (the sink down, the lease lost, reauth, a crash injected by a test):
    ///   at once, dropping the running transfers unfinished. Nothing is checkpointed; an
    ///   upload dropped before its commit publishes nothing (the sink contract), and the files
    ///   not recorded are listed again.
    ///
    /// While a batch of several files runs, the run record says how many wait for their
    /// transfer (one write before, one after: "done of found" in the console). A batch of one —
    /// what a barrier between alternating changes leaves — writes nothing for it, so the extra
    /// writes never outnumber the files.
    pub(crate) async fn settle(&self, ctx: &mut RunCtx) -> Result<(), Stop> {
        if ctx.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut ctx.batch);
        let marked = batch.files.len() > 1;
        if marked {
            self.mark_transferring(ctx, batch.files.len()).await?;
        }
        self.transfer_all(ctx, batch.files).await?;
        if marked {
            self.mark_transferring(ctx, 0).await?;
        }
        Ok(())
    }

    async fn mark_transferring(&self, ctx: &RunCtx, files: usize) -> Result<(), Stop> {
        let patch = RunPatch { transferring: Some(files as u64), ..Default::default() };
        self.ports.runs.update(&ctx.fence.conn, &ctx.run_id, &patch, Some(&ctx.fence)).await?;
        Ok(())
    }

    async fn transfer_all(&self, ctx: &RunCtx, files: Vec<Deferred>) -> Result<(), Stop> {
        let mut waiting = files.into_iter();
        let mut running = FuturesUnordered::new();
        let mut out_of_time = false;
        loop {
            while !out_of_time && running.len() < ctx.pace.limit() {
                let Some(f) = waiting.next() else { break };
                if self.time_left(ctx).is_zero() {
                    out_of_time = true;
                    break;
                }
                running.push(async move {
                    self.import(ctx, &f.remote, &f.at, f.old.as_ref(), f.listing.as_deref()).await
                });
            }
            match running.next().await {
                None => break,
                Some(Ok(())) => {}
                Some(Err(Stop::Deadline)) => out_of_time = true,
                Some(Err(stop)) => return Err(stop),
            }
        }
        if out_of_time { Err(Stop::Deadline) } else { Ok(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_throttles_halves_once_and_successes_grow_it_back() {
        let p = Pace::new(8);
        assert_eq!(p.limit(), 8);
        let sent = p.epoch();
        // Eight requests sent together, all throttled: one cut.
        assert_eq!(p.throttled(sent), Some(4));
        for _ in 0..7 {
            assert_eq!(p.throttled(sent), None);
        }
        assert_eq!(p.limit(), 4);
        // A request sent after the cut and throttled cuts again.
        assert_eq!(p.throttled(p.epoch()), Some(2));
        assert_eq!(p.throttled(p.epoch()), Some(1));
        assert_eq!(p.throttled(p.epoch()), Some(1), "never below 1");
        // A window's worth of successes: +1 each time, up to the maximum and no further.
        let mut seen = vec![p.limit()];
        for _ in 0..100 {
            p.succeeded();
            if *seen.last().unwrap() != p.limit() {
                seen.push(p.limit());
            }
        }
        assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn a_throttle_restarts_the_run_of_successes() {
        let p = Pace::new(4);
        p.throttled(p.epoch());
        assert_eq!(p.limit(), 2);
        p.succeeded();
        // An old request's throttle does not cut, but it does break the run.
        p.throttled(0);
        p.succeeded();
        assert_eq!(p.limit(), 2);
        p.succeeded();
        assert_eq!(p.limit(), 3);
    }

    #[test]
    fn a_maximum_of_one_stays_sequential() {
        let p = Pace::new(1);
        p.throttled(p.epoch());
        p.succeeded();
        p.succeeded();
        assert_eq!(p.limit(), 1);
        assert_eq!(Pace::new(0).limit(), 1, "0 is read as 1");
    }
}
