//! The sync engine (ARCHITECTURE §7): one job → at most one run step of one connection.
//!
//! Contract, in the order things happen:
//! 1. No connection, a `reauth_required` or `folder_unavailable` connection, a scheduled job
//!    for a connection whose auto sync is off, or a finished run's continuation → a no-op
//!    (no provider call, the message is acknowledged).
//! 2. The connection's lease is taken (one run at a time; a duplicate delivery finds it held
//!    and does nothing). Every later write is fenced by it.
//! 3. The run is the connection's open run if there is one (a queued Refresh Items, or a run
//!    being continued), else a new one.
//! 4. Items left `failed` whose backoff has passed (`next_attempt_at`, found through the
//!    failed-items index) are retried first; all of them when the run was asked to
//!    (`retry-failed`). Never given up: the backoff grows to days ([`crate::domain::retry_delay`]).
//! 5. The listing goes page by page: full listing (initial, or after a cursor reset) or changes
//!    since the cursor. Each page's changes are applied in order; the files it imports are
//!    transferred up to `transfer_concurrency` at once (`batch.rs`), and the cursor is
//!    checkpointed only after every file of the page is stored or recorded (I3), whatever
//!    order the transfers finish in.
//! 6. Near the deadline, or facing a rate-limit wait longer than the time left, the engine stops,
//!    releases the lease and queues a continuation of the same run (delayed by the wait). Every
//!    provider request and every chunk of a transfer is bounded by the time left, so an
//!    invocation stops at least `deadline_margin` before its deadline even inside a transfer: a
//!    file cut that way is suspended (`transfer.rs`: the sink keeps its durable prefix, the item
//!    the hashes' states) and continued first by the next invocation; one the sink could keep
//!    nothing of is `failed: transfer_deadline` (tried once more at the start of the next
//!    invocation, then by backoff). The page in progress is simply listed again: files already
//!    stored are seen as unchanged, so nothing is imported twice and the counters stay exact.
//! 7. Any error about one file (provider 403/404 on it, a hash mismatch, the sink or the store
//!    refusing it) makes that item `failed` (or `skipped`) with a stable reason code and the run
//!    goes on. Only connection-wide conditions stop a run: the grant dead (`reauth_required`),
//!    the folder gone (`folder_unavailable`), the provider refusing our app (a configuration
//!    error: connection `error`), a listing failing for the same reason `max_listing_failures`
//!    steps in a row (run `failed`, connection `error`; still due, and a later successful run
//!    returns it to `active`), the sink failing `max_sink_failures` files in a row (the job is
//!    redelivered), and the mass-delete guard (connection `needs_review`, nothing applied).

mod apply;
mod batch;
mod call;
mod lane;
mod scope;
mod transfer;

use std::sync::Arc;
use std::time::Duration;

use crate::context::Ports;
use crate::domain::{
    Connection, ConnectionStatus, Fence, Grant, Job, RunCounters, RunStatus, SyncPosition, SyncRun,
    Timestamp, Trigger,
};
use crate::ids::RunId;
use crate::ports::{ConnectionPatch, ProviderError, RunPatch, StoreError};
use crate::tokens::{TokenError, TokenPolicy, Tokens};

pub use call::Backoff;

/// Where a test can interrupt the pipeline to simulate a crash (the process dies: nothing is
/// cleaned up, the lease stays until it expires).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    DownloadStarted,
    SinkCommitted,
    ItemWritten,
    Checkpointed,
}

/// A simulated crash (see [`Hooks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crash;

/// Test hooks. `Err(Crash)` at a step = the worker dies there.
pub trait Hooks: Send + Sync {
    fn at(&self, step: Step) -> Result<(), Crash>;
}

#[derive(Debug, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {
    fn at(&self, _: Step) -> Result<(), Crash> {
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Identifies this worker in leases (plus a random suffix per job).
    pub worker_id: String,
    pub lease_ttl: Duration,
    /// Stop taking new files when less than this is left before the deadline.
    pub deadline_margin: Duration,
    /// Attempts per provider request (rate limits and transient errors).
    pub max_request_attempts: u32,
    pub backoff: Backoff,
    pub tokens: TokenPolicy,
    /// Steps in a row whose listing fails for the same reason before the run ends `failed`
    /// and the connection goes to `error` (each step already retried its request
    /// `max_request_attempts` times). Between steps the run waits `listing_retry_delay` × the
    /// streak.
    pub max_listing_failures: u32,
    pub listing_retry_delay: Duration,
    /// Files in a row the asset sink fails before the sink (not the file) is taken to be down
    /// and the job is redelivered instead of failing every file of the run.
    pub max_sink_failures: u32,
    pub delete_guard: DeleteGuard,
    /// Most file transfers at once within a step (default 8; 1 = one at a time). The
    /// metadata logic stays sequential; only downloads → hash → store → record overlap. The
    /// limit in force shrinks when the provider throttles (halved on a 429 or 503, +1 after a
    /// run of successes; `batch.rs`).
    ///
    /// **Memory budget.** A transfer holds at most the per-transfer bound: 16 network chunks
    /// of at most about 400 KiB (a large file's read-ahead of 4, `verify.rs` in the providers,
    /// and queue of 8 to its sink, `lane.rs`, with the chunks in hand), about 6.5 MiB, and the
    /// sink's buffer — for S3 the part being filled (8 MiB; bigger parts only for files over
    /// ~78 GiB), so about 15 MiB; the local sink holds at most 2 MiB (a batch being written,
    /// the next gathering), the in-memory sink nothing. S3's parts in flight come from one pool
    /// per sink, shared by every transfer (16 × 8 MiB = 128 MiB). A worker needs
    /// `messages in flight per worker × transfer_concurrency × the per-transfer bound + the
    /// pool` ≤ the function's memory, less its baseline. The sync worker runs the 3 messages of
    /// its SQS batch at once, so with 8: 3 × 8 × 15 MiB + 128 MiB ≈ 490 MiB of a 1,024 MB
    /// function (≈ 670 MiB at the cap of 12).
    pub transfer_concurrency: usize,
}

/// The mass-delete guard: a run that would mark more than `min_files` files **and** more than
/// `max_fraction` of the connection's files deleted at the source stops before applying any of
/// them, and the connection waits for an admin (`needs_review`).
#[derive(Debug, Clone)]
pub struct DeleteGuard {
    pub min_files: u64,
    pub max_fraction: f64,
    /// How many further change pages are read ahead (not applied) to count a burst of
    /// deletions spread over several pages, before the first of them is applied.
    pub lookahead_pages: usize,
}

impl Default for DeleteGuard {
    fn default() -> Self {
        Self { min_files: 100, max_fraction: 0.5, lookahead_pages: 20 }
    }
}

impl DeleteGuard {
    /// Whether marking `deleting` of `files` deleted needs an admin, `approved` being what an
    /// admin already confirmed.
    pub fn trips(&self, deleting: u64, files: u64, approved: u64) -> bool {
        deleting > approved && deleting > self.min_files && deleting as f64 > self.max_fraction * files as f64
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            worker_id: "worker".into(),
            lease_ttl: Duration::from_secs(120),
            deadline_margin: Duration::from_secs(30),
            max_request_attempts: 8,
            backoff: Backoff::default(),
            tokens: TokenPolicy::default(),
            max_listing_failures: 3,
            listing_retry_delay: Duration::from_secs(60),
            max_sink_failures: 3,
            delete_guard: DeleteGuard::default(),
            transfer_concurrency: 8,
        }
    }
}

/// Why a job did nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    NoConnection,
    ReauthRequired,
    FolderUnavailable,
    /// Held by the mass-delete guard until an admin confirms or discards.
    NeedsReview,
    AutoSyncOff,
    LeaseHeld,
    RunFinished,
    /// A rate-limit wait is running; its continuation will carry on.
    Waiting,
    /// A purge job for a connection that still exists (only a deleted one is purged).
    NotDeleted,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutcome {
    /// The run finished its pass (or ended for good) with this status; `counters` are the
    /// whole run's (kept by the step as it wrote, so nobody reads the run back for them).
    Finished {
        run_id: RunId,
        status: RunStatus,
        counters: RunCounters,
    },
    /// A continuation of the run was queued, visible after `delay`.
    Continued {
        run_id: RunId,
        delay: Duration,
    },
    Skipped(Skip),
    /// A deleted connection's records removed: `removed` by this step, `done` when none is
    /// left (else the same purge job was queued again).
    Purged {
        removed: usize,
        done: bool,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EngineError {
    /// State or queue unavailable: the job should be redelivered.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("asset sink unavailable: {0}")]
    Sink(String),
    /// A listing failed beyond retries; the run is recorded `failed` and the job redelivered.
    #[error("provider failure: {0}")]
    Provider(ProviderError),
    /// A test hook crashed the worker at this step.
    #[error("crash injected at {0:?}")]
    Crashed(Step),
}

/// Ends a run step early.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Out of time: continue later.
    Deadline,
    /// Wait this long before the next provider call (longer than the time left).
    Wait(Duration),
    Reauth,
    /// The connected folder is gone or no longer accessible.
    FolderGone,
    /// The lease was lost (taken over, or the connection deleted): write nothing more.
    Fenced,
    /// The listing failed beyond the request's retries. `progressed`: this step applied a page
    /// before it (the failure streak starts again).
    ListingFailed {
        error: ProviderError,
        progressed: bool,
    },
    /// The provider refused our app (`invalid_client`, …): an operator's problem.
    Config(String),
    /// The mass-delete guard held this many deletions.
    Held(u64),
    Error(EngineError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Fenced => Stop::Fenced,
            e => Stop::Error(e.into()),
        }
    }
}

pub struct Engine {
    ports: Ports,
    tokens: Tokens,
    config: EngineConfig,
    hooks: Arc<dyn Hooks>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").field("config", &self.config).finish_non_exhaustive()
    }
}

/// The state of one run step (one job on one worker).
pub(crate) struct RunCtx {
    pub conn: Connection,
    pub grant: Grant,
    pub fence: Fence,
    pub run_id: RunId,
    pub deadline: Timestamp,
    /// The access token in use; concurrent transfers share it (a refresh replaces it for all).
    pub access: std::sync::Mutex<crate::secret::Secret>,
    /// When the lease was last renewed; concurrent transfers share one heartbeat.
    pub last_renew: std::sync::Mutex<Timestamp>,
    /// The connected folder's new (name, path), saved with the next checkpoint.
    pub conn_rename: Option<(String, String)>,
    /// The connection's upgraded filters, saved with the next checkpoint: the start of the
    /// full listing they call for.
    pub conn_filters: Option<crate::domain::Filters>,
    pub caps: crate::ports::Capabilities,
    /// Scope decisions made this run: folder id → inside the connected folder's tree. Saves a
    /// provider call per unknown parent met again (ARCHITECTURE §7 "Scope").
    pub scope_cache: std::collections::HashMap<String, bool>,
    /// Parent resolution by path this run (providers whose items carry paths, not parent ids).
    pub parent_by_path: std::collections::HashMap<String, Option<String>>,
    /// Display paths of folders met this run (providers whose listings carry no paths).
    pub folder_paths: std::collections::HashMap<String, String>,
    /// Failed items already tried this step (each is tried at most once per step).
    pub retried: std::collections::HashSet<String>,
    /// Files in a row the sink failed (see `EngineConfig::max_sink_failures`). "In a row" is
    /// in the order the transfers' outcomes become known: any file stored resets it.
    pub sink_failures: std::sync::atomic::AtomicU32,
    /// Files waiting to be transferred (`batch.rs`).
    pub batch: batch::Batch,
    /// How many transfers may run at once now (AIMD, `batch.rs`).
    pub pace: batch::Pace,
    /// A page was applied and checkpointed this step.
    pub progressed: bool,
    /// The run's counters so far, this step's item writes included, and the connection's
    /// failed files: the run's status at its end comes from these, not from a read.
    pub counters: std::sync::Mutex<RunCounters>,
    pub failed_files: std::sync::atomic::AtomicI64,
    /// Items of the page being applied, read at once before it (`None`: known absent). An
    /// entry is dropped when the step writes that item, so it never serves a stale record.
    pub known: std::sync::Mutex<std::collections::HashMap<String, Option<crate::domain::Item>>>,
    /// Folders that held no live item when this step first looked (`Engine::path_free`), each with
    /// the path keys of the items this step has since recorded in it, and the folders found
    /// not to be empty.
    pub fresh: std::sync::Mutex<std::collections::HashMap<String, std::collections::HashSet<String>>>,
    pub not_fresh: std::collections::HashSet<String>,
    /// Change pages read ahead by the mass-delete guard, each with the cursor it was read
    /// from, and whether the guard already counted them.
    pub lookahead: std::collections::VecDeque<(String, crate::ports::ListPage)>,
    /// Items below a folder renamed in this change listing (a path-keyed provider reports the
    /// old path deleted and the folder at its new one), not yet reported again at their new
    /// path: at the end of the listing they are gone from the source. Kept for one step.
    pub renamed_below: std::collections::HashSet<String>,
}

impl RunCtx {
    /// Counts an item write the store accepted.
    pub(crate) fn wrote(&self, write: &crate::ports::ItemWrite) {
        batch::lock(&self.counters).add(&write.run_delta);
        self.failed_files.fetch_add(write.conn_delta.failed, std::sync::atomic::Ordering::Relaxed);
        batch::lock(&self.known).remove(&write.item.provider_id);
        let item = &write.item;
        if let (Some(parent), Some(key)) = (&item.parent_id, &item.path_key)
            && item.is_live()
            && let Some(keys) = batch::lock(&self.fresh).get_mut(parent)
        {
            keys.insert(key.clone());
        }
    }

    pub(crate) fn counters(&self) -> RunCounters {
        *batch::lock(&self.counters)
    }

    /// A listing request that failed for good: our app refused, or a listing failure.
    pub(crate) fn listing_failed(&self, error: ProviderError) -> Stop {
        match error {
            ProviderError::Config(reason) => Stop::Config(reason),
            error => Stop::ListingFailed { error, progressed: self.progressed },
        }
    }
}

impl Engine {
    pub fn new(ports: Ports, config: EngineConfig) -> Self {
        Self::with_hooks(ports, config, Arc::new(NoHooks))
    }

    pub fn with_hooks(ports: Ports, config: EngineConfig, hooks: Arc<dyn Hooks>) -> Self {
        let tokens = Tokens::remembering(ports.clone(), config.tokens.clone());
        Self { ports, tokens, config, hooks }
    }

    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }

    /// Runs one job until done, the deadline, or a long wait. Errors mean "redeliver".
    pub async fn run_job(&self, job: &Job, deadline: Timestamp) -> Result<JobOutcome, EngineError> {
        if job.purge {
            return self.purge(job, deadline).await;
        }
        let key = job.conn();
        let Some(conn) = self.ports.connections.get(&key).await? else {
            return Ok(JobOutcome::Skipped(Skip::NoConnection));
        };
        match conn.status {
            ConnectionStatus::ReauthRequired => return Ok(JobOutcome::Skipped(Skip::ReauthRequired)),
            ConnectionStatus::NeedsReview => return Ok(JobOutcome::Skipped(Skip::NeedsReview)),
            ConnectionStatus::FolderUnavailable if job.trigger == Trigger::Schedule => {
                return Ok(JobOutcome::Skipped(Skip::FolderUnavailable));
            }
            _ => {}
        }
        if job.trigger == Trigger::Schedule && !conn.auto_sync && !job.continuation {
            return Ok(JobOutcome::Skipped(Skip::AutoSyncOff));
        }
        let now = self.ports.clock.now();
        if let Some(nb) = conn.not_before.filter(|nb| *nb > now) {
            // A long rate-limit wait is running. Its continuation chain is passed on, delayed;
            // any other job is dropped (the waiting run covers it).
            let Some(run_id) = job.run_id.clone().filter(|_| job.continuation) else {
                return Ok(JobOutcome::Skipped(Skip::Waiting));
            };
            let delay = (nb - now).to_std().unwrap_or_default();
            self.ports.queue.send_delayed(job, delay).await?;
            return Ok(JobOutcome::Continued { run_id, delay });
        }
        let holder = format!("{}/{}", self.config.worker_id, RunId::generate());
        // The record comes back with the lease, as it is now (it may have changed since the
        // first read).
        let (fence, mut conn) =
            match self.ports.connections.acquire_lease(&key, &holder, now, self.config.lease_ttl).await {
                Ok(Some(leased)) => leased,
                Ok(None) => return Ok(JobOutcome::Skipped(Skip::LeaseHeld)),
                Err(StoreError::NotFound) => return Ok(JobOutcome::Skipped(Skip::NoConnection)),
                Err(e) => return Err(e.into()),
            };
        let run = match self.open_run(&mut conn, job, &fence).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                self.release(&fence, ConnectionPatch::default()).await?;
                return Ok(JobOutcome::Skipped(Skip::RunFinished));
            }
            Err(e) => {
                let _ = self.release(&fence, ConnectionPatch::default()).await;
                return Err(e);
            }
        };
        let run_id = run.id.clone();
        tracing::info!(client = %key.client_id, connection = %key.connection_id, run = %run_id, trigger = ?job.trigger, "sync step started");
        let status = conn.status;
        let (result, counters) = self.run_step(conn, fence.clone(), run, deadline).await;
        self.conclude(job, &fence, &run_id, status, result, counters).await
    }

    /// The run this step works on, marked running for this step: the connection's open run,
    /// else the job's if still open, else a new one (created running, as the connection's
    /// current run, in one write). `None` for a continuation whose run already finished.
    async fn open_run(
        &self,
        conn: &mut Connection,
        job: &Job,
        fence: &Fence,
    ) -> Result<Option<SyncRun>, EngineError> {
        let key = conn.key();
        let now = self.ports.clock.now();
        for candidate in [conn.current_run_id.as_ref(), job.run_id.as_ref()].into_iter().flatten() {
            if let Some(run) = self.ports.runs.get(&key, candidate).await?
                && run.status.is_open()
            {
                let patch = RunPatch {
                    status: Some(RunStatus::Running),
                    started_at: run.started_at.is_none().then_some(now),
                    add_invocation: true,
                    ..Default::default()
                };
                return Ok(Some(self.ports.runs.update(&key, &run.id, &patch, Some(fence)).await?));
            }
        }
        if job.continuation {
            return Ok(None);
        }
        let mut run = SyncRun::queued(key.clone(), job.trigger, job.requested_by.clone(), now);
        run.status = RunStatus::Running;
        run.started_at = Some(now);
        run.invocations = 1;
        self.ports.runs.start(fence, &run).await?;
        conn.current_run_id = Some(run.id.clone());
        Ok(Some(run))
    }

    /// One step of the run; on success the run is finished and the lease released. Returns
    /// the run's counters as they stand at the step's end.
    async fn run_step(
        &self,
        conn: Connection,
        fence: Fence,
        run: SyncRun,
        deadline: Timestamp,
    ) -> (Result<RunStatus, Stop>, RunCounters) {
        let mut ctx = match self.prepare(conn, fence, &run, deadline).await {
            Ok(ctx) => ctx,
            Err(stop) => return (Err(stop), run.counters),
        };
        let result = self.step(&mut ctx, run.retry_failed).await;
        (result, ctx.counters())
    }

    /// The step's state: the grant, an access token, the provider's capabilities.
    async fn prepare(
        &self,
        conn: Connection,
        fence: Fence,
        run: &SyncRun,
        deadline: Timestamp,
    ) -> Result<RunCtx, Stop> {
        let now = self.ports.clock.now();
        let key = conn.key();
        let grant = self.ports.grants.get(&key.client_id, &conn.grant_id).await?.ok_or(Stop::Reauth)?;
        let access = self.token(&grant, None).await?;
        let caps = self
            .ports
            .provider(conn.provider)
            .ok_or_else(|| {
                Stop::Error(EngineError::Provider(ProviderError::Permanent("provider not configured".into())))
            })?
            .capabilities();
        let failed_files = i64::try_from(conn.counters.failed).unwrap_or(i64::MAX);
        let ctx = RunCtx {
            conn,
            grant,
            fence,
            run_id: run.id.clone(),
            deadline,
            access: std::sync::Mutex::new(access),
            last_renew: std::sync::Mutex::new(now),
            conn_rename: None,
            conn_filters: None,
            caps,
            scope_cache: Default::default(),
            parent_by_path: Default::default(),
            folder_paths: Default::default(),
            retried: Default::default(),
            sink_failures: Default::default(),
            batch: Default::default(),
            pace: batch::Pace::new(self.config.transfer_concurrency),
            progressed: false,
            lookahead: Default::default(),
            renamed_below: Default::default(),
            counters: std::sync::Mutex::new(run.counters),
            failed_files: std::sync::atomic::AtomicI64::new(failed_files),
            known: Default::default(),
            fresh: Default::default(),
            not_fresh: Default::default(),
        };
        // Another run (in any worker) was told that the whole provider account is rate
        // limited: this one waits it out too, before its first request — in this invocation
        // when it fits, else as a delayed continuation (see `call`).
        if let Some(until) = ctx.grant.paused_until {
            ctx.pace.hold(until);
        }
        Ok(ctx)
    }

    /// Steps 4 and 5 of the contract, then the run's end: its status, written with the lease's
    /// release in one write.
    async fn step(&self, ctx: &mut RunCtx, retry_all: bool) -> Result<RunStatus, Stop> {
        let previous = ctx.conn.status;
        if let Some(filters) = ctx.conn.filters.upgraded() {
            // A connection saved under an earlier default takes today's filters. The folder is
            // listed again in full, so that the files skipped under the old limit are found
            // again; the filters are saved with that listing's start, in one write (a step cut
            // before it does this again).
            tracing::info!(connection = %ctx.fence.conn.connection_id, from = ctx.conn.filters.max_file_size, to = filters.max_file_size, "the file size limit went up: listing the folder again in full");
            ctx.conn.filters = filters.clone();
            ctx.conn_filters = Some(filters);
            ctx.conn.position = SyncPosition::Initial;
        }
        self.retry_failed(ctx, retry_all).await?;
        self.list_and_apply(ctx).await?;
        let mut retried_all = retry_all;
        let rename = ctx.conn_rename.take();
        loop {
            // A run that leaves failed files is `partial`, whichever run failed them.
            let failed = ctx.failed_files.load(std::sync::atomic::Ordering::Relaxed) > 0;
            let status = if failed { RunStatus::Partial } else { RunStatus::Succeeded };
            let now = self.ports.clock.now();
            let patch = RunPatch {
                status: Some(status),
                finished_at: Some(now),
                transferring: Some(0),
                // An admin's "retry failed" while this step was listing: refused, retried below.
                unless_retry_flagged: !retried_all,
                ..Default::default()
            };
            let mut release = ConnectionPatch {
                current_run_id: Some(None),
                last_synced_at: Some(now),
                not_before: Some(None),
                // An approval of held deletions covers the run that applied them only.
                approved_deletions: Some(None),
                ..Default::default()
            };
            if let Some((name, path)) = rename.clone() {
                release.folder_name = Some(name);
                release.folder_path = Some(path);
            }
            // A folder that was unavailable and is listed again is back; so is a connection
            // whose listing kept failing.
            if matches!(previous, ConnectionStatus::FolderUnavailable | ConnectionStatus::Error) {
                release.status = Some(ConnectionStatus::Active);
                release.status_reason = Some(None);
            }
            match self.ports.runs.finish(&ctx.fence, &ctx.run_id, &patch, &release).await {
                Ok(()) => {
                    if release.status.is_some() {
                        self.announce(&ctx.fence, previous).await?;
                    }
                    return Ok(status);
                }
                Err(StoreError::Conflict) if !retried_all => {
                    retried_all = true;
                    self.retry_failed(ctx, true).await?;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    pub(crate) async fn token(
        &self,
        grant: &Grant,
        rejected: Option<&crate::secret::Secret>,
    ) -> Result<crate::secret::Secret, Stop> {
        match self.tokens.access_token(grant, rejected).await {
            Ok(t) => Ok(t),
            Err(TokenError::Reauth) => Err(Stop::Reauth),
            Err(TokenError::Store(e)) => Err(e.into()),
            Err(TokenError::Provider(ProviderError::RateLimited { retry_after, .. })) => {
                Err(Stop::Wait(retry_after.unwrap_or(Duration::from_secs(60))))
            }
            Err(TokenError::Provider(ProviderError::Config(reason))) => Err(Stop::Config(reason)),
            Err(e) => Err(Stop::Error(EngineError::Provider(ProviderError::Transient(e.to_string())))),
        }
    }

    /// Turns the step's result into the run's and the connection's final state for this step.
    async fn conclude(
        &self,
        job: &Job,
        fence: &Fence,
        run_id: &RunId,
        conn_status: ConnectionStatus,
        result: Result<RunStatus, Stop>,
        counters: RunCounters,
    ) -> Result<JobOutcome, EngineError> {
        let key = &fence.conn;
        let now = self.ports.clock.now();
        let finish = |status: RunStatus, error: Option<String>| RunPatch {
            status: Some(status),
            finished_at: Some(now),
            error,
            transferring: Some(0),
            ..Default::default()
        };
        let continuation = Job {
            client_id: key.client_id.clone(),
            connection_id: key.connection_id.clone(),
            trigger: job.trigger,
            run_id: Some(run_id.clone()),
            requested_by: job.requested_by.clone(),
            continuation: true,
            purge: false,
        };
        match result {
            Ok(status) => {
                tracing::info!(client = %key.client_id, connection = %key.connection_id, run = %run_id, ?status, "run finished");
                Ok(JobOutcome::Finished { run_id: run_id.clone(), status, counters })
            }
            Err(Stop::Deadline) => {
                self.release_ignoring_fence(fence, ConnectionPatch::default()).await?;
                self.ports.queue.send(std::slice::from_ref(&continuation)).await?;
                tracing::info!(connection = %key.connection_id, run = %run_id, "deadline near: continuation queued");
                Ok(JobOutcome::Continued { run_id: run_id.clone(), delay: Duration::ZERO })
            }
            Err(Stop::Wait(delay)) => {
                let until = now + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::MAX);
                let patch = ConnectionPatch { not_before: Some(Some(until)), ..Default::default() };
                self.release_ignoring_fence(fence, patch).await?;
                self.ports.queue.send_delayed(&continuation, delay).await?;
                tracing::info!(connection = %key.connection_id, run = %run_id, wait_s = delay.as_secs(), "rate limited beyond the deadline: delayed continuation queued");
                Ok(JobOutcome::Continued { run_id: run_id.clone(), delay })
            }
            Err(Stop::Reauth) => {
                let _ = self
                    .ports
                    .runs
                    .update(
                        key,
                        run_id,
                        &finish(RunStatus::ReauthRequired, Some("reauthorization required".into())),
                        Some(fence),
                    )
                    .await;
                let patch = ConnectionPatch {
                    current_run_id: Some(None),
                    ..ConnectionPatch::status(
                        ConnectionStatus::ReauthRequired,
                        Some("the account's authorization was revoked or expired: reconnect it".into()),
                    )
                };
                self.release_with_status(fence, patch, conn_status).await?;
                Ok(JobOutcome::Finished {
                    run_id: run_id.clone(),
                    status: RunStatus::ReauthRequired,
                    counters,
                })
            }
            Err(Stop::FolderGone) => {
                let reason = "the connected folder was deleted or is no longer accessible";
                let _ = self
                    .ports
                    .runs
                    .update(key, run_id, &finish(RunStatus::Failed, Some(reason.into())), Some(fence))
                    .await;
                let patch = ConnectionPatch {
                    current_run_id: Some(None),
                    ..ConnectionPatch::status(ConnectionStatus::FolderUnavailable, Some(reason.into()))
                };
                self.release_with_status(fence, patch, conn_status).await?;
                tracing::warn!(connection = %key.connection_id, "connected folder unavailable");
                Ok(JobOutcome::Finished { run_id: run_id.clone(), status: RunStatus::Failed, counters })
            }
            Err(Stop::Config(reason)) => {
                // An operator alarm (the deployment's metric filter matches `alarm`), and the
                // connection says why it stopped. No grant is touched.
                tracing::error!(
                    alarm = "provider_config",
                    client = %key.client_id,
                    connection = %key.connection_id,
                    %reason,
                    "the provider refused this application's configuration"
                );
                let text = format!(
                    "the service refused this application's configuration (an operator must fix it): {reason}"
                );
                let _ = self
                    .ports
                    .runs
                    .update(key, run_id, &finish(RunStatus::Failed, Some(text.clone())), Some(fence))
                    .await;
                let patch = ConnectionPatch {
                    current_run_id: Some(None),
                    ..ConnectionPatch::status(ConnectionStatus::Error, Some(text))
                };
                self.release_with_status(fence, patch, conn_status).await?;
                Ok(JobOutcome::Finished { run_id: run_id.clone(), status: RunStatus::Failed, counters })
            }
            Err(Stop::ListingFailed { error, progressed }) => {
                self.listing_failed(fence, run_id, conn_status, &continuation, error, progressed).await
            }
            Err(Stop::Held(count)) => {
                let files = self.ports.connections.get(key).await?.map_or(0, |c| c.counters.files);
                let text = format!(
                    "this sync would mark {count} of {files} files deleted at the source; nothing was \
                     applied: confirm the deletions or discard them"
                );
                tracing::warn!(connection = %key.connection_id, run = %run_id, count, files, "mass-delete guard: deletions held for review");
                let _ = self
                    .ports
                    .runs
                    .update(key, run_id, &finish(RunStatus::NeedsReview, Some(text.clone())), Some(fence))
                    .await;
                let patch = ConnectionPatch {
                    current_run_id: Some(None),
                    held_deletions: Some(Some(count)),
                    approved_deletions: Some(None),
                    ..ConnectionPatch::status(ConnectionStatus::NeedsReview, Some(text))
                };
                self.release_with_status(fence, patch, conn_status).await?;
                Ok(JobOutcome::Finished { run_id: run_id.clone(), status: RunStatus::NeedsReview, counters })
            }
            Err(Stop::Fenced) => {
                tracing::warn!(connection = %key.connection_id, run = %run_id, "lease lost: stopped without further writes");
                Ok(JobOutcome::Skipped(Skip::LeaseHeld))
            }
            Err(Stop::Error(EngineError::Crashed(step))) => Err(EngineError::Crashed(step)),
            Err(Stop::Error(e)) => {
                // The run stays open; the redelivered job continues it.
                let _ = self.release(fence, ConnectionPatch::default()).await;
                tracing::warn!(connection = %key.connection_id, run = %run_id, error = %e, "sync step failed; will be retried");
                Err(e)
            }
        }
    }

    /// A listing that failed beyond its request retries. The same reason
    /// `max_listing_failures` steps in a row ends the run `failed` and the connection `error`;
    /// before that, the run continues after a growing delay.
    async fn listing_failed(
        &self,
        fence: &Fence,
        run_id: &RunId,
        conn_status: ConnectionStatus,
        continuation: &Job,
        error: ProviderError,
        progressed: bool,
    ) -> Result<JobOutcome, EngineError> {
        let key = &fence.conn;
        let now = self.ports.clock.now();
        let code = error.reason_code();
        let text = format!("{code}: {error}");
        let run = self.ports.runs.get(key, run_id).await?;
        let counters = run.as_ref().map(|r| r.counters).unwrap_or_default();
        let same =
            run.as_ref().and_then(|r| r.error.as_deref()).is_some_and(|e| e.split(':').next() == Some(code));
        let streak = match run {
            Some(r) if same && !progressed => r.failure_streak + 1,
            _ => 1,
        };
        tracing::warn!(connection = %key.connection_id, run = %run_id, streak, error = %error, "listing failed");
        if streak >= self.config.max_listing_failures {
            let patch = RunPatch {
                status: Some(RunStatus::Failed),
                finished_at: Some(now),
                error: Some(text.clone()),
                failure_streak: Some(streak),
                transferring: Some(0),
                ..Default::default()
            };
            match self.ports.runs.update(key, run_id, &patch, Some(fence)).await {
                Err(StoreError::Fenced) => return Ok(JobOutcome::Skipped(Skip::LeaseHeld)),
                r => r?,
            };
            let reason = format!("the folder listing failed {streak} times in a row: {error}");
            let patch = ConnectionPatch {
                current_run_id: Some(None),
                ..ConnectionPatch::status(ConnectionStatus::Error, Some(reason))
            };
            self.release_with_status(fence, patch, conn_status).await?;
            return Ok(JobOutcome::Finished { run_id: run_id.clone(), status: RunStatus::Failed, counters });
        }
        let patch = RunPatch { error: Some(text), failure_streak: Some(streak), ..Default::default() };
        match self.ports.runs.update(key, run_id, &patch, Some(fence)).await {
            Err(StoreError::Fenced) => return Ok(JobOutcome::Skipped(Skip::LeaseHeld)),
            r => r?,
        };
        self.release_ignoring_fence(fence, ConnectionPatch::default()).await?;
        let delay = self.config.listing_retry_delay.saturating_mul(streak).min(Duration::from_secs(900));
        self.ports.queue.send_delayed(continuation, delay).await?;
        Ok(JobOutcome::Continued { run_id: run_id.clone(), delay })
    }

    /// Releases the lease with a final patch and announces the status change it makes.
    async fn release_with_status(
        &self,
        fence: &Fence,
        patch: ConnectionPatch,
        previous: ConnectionStatus,
    ) -> Result<(), EngineError> {
        let changes_status = patch.status.is_some_and(|s| s != previous);
        self.release_ignoring_fence(fence, patch).await?;
        if changes_status {
            self.announce(fence, previous).await?;
        }
        Ok(())
    }

    /// Announces the connection's status change from `previous` (if it changed).
    async fn announce(&self, fence: &Fence, previous: ConnectionStatus) -> Result<(), StoreError> {
        if let Some(conn) = self.ports.connections.get(&fence.conn).await?
            && conn.status != previous
        {
            crate::status::announce(&self.ports, &conn, previous).await;
        }
        Ok(())
    }

    async fn release(&self, fence: &Fence, patch: ConnectionPatch) -> Result<(), StoreError> {
        self.ports.connections.release_lease(fence, &patch).await
    }

    /// Releasing a lease we already lost is not an error: the new holder owns the connection.
    async fn release_ignoring_fence(&self, fence: &Fence, patch: ConnectionPatch) -> Result<(), EngineError> {
        match self.release(fence, patch).await {
            Ok(()) | Err(StoreError::Fenced) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn hook(&self, step: Step) -> Result<(), Stop> {
        self.hooks.at(step).map_err(|Crash| Stop::Error(EngineError::Crashed(step)))
    }

    /// A deleted connection's items and runs, removed a page at a time until none is left; as
    /// the deadline nears, the same job is queued again. The connection record must be gone:
    /// deleting it fenced every worker, so nothing writes into what is being removed.
    async fn purge(&self, job: &Job, deadline: Timestamp) -> Result<JobOutcome, EngineError> {
        const PAGE: usize = 500;
        let key = job.conn();
        if self.ports.connections.get(&key).await?.is_some() {
            return Ok(JobOutcome::Skipped(Skip::NotDeleted));
        }
        let mut removed = 0;
        loop {
            let n = self.ports.items.purge(&key, PAGE).await?;
            removed += n;
            if n < PAGE {
                tracing::info!(client = %key.client_id, connection = %key.connection_id, removed, "deleted connection purged");
                return Ok(JobOutcome::Purged { removed, done: true });
            }
            let left = (deadline - self.ports.clock.now()).to_std().unwrap_or_default();
            if left <= self.config.deadline_margin {
                self.ports.queue.send(std::slice::from_ref(job)).await?;
                tracing::info!(connection = %key.connection_id, removed, "deadline near: purge continues in a new job");
                return Ok(JobOutcome::Purged { removed, done: false });
            }
        }
    }

    /// Time left before the deadline, less the safety margin.
    pub(crate) fn time_left(&self, ctx: &RunCtx) -> Duration {
        let left = (ctx.deadline - self.ports.clock.now()).to_std().unwrap_or_default();
        left.saturating_sub(self.config.deadline_margin)
    }

    /// Keeps the lease alive during long runs (heartbeat at a quarter of its lifetime). With
    /// transfers running at once, the first to find the heartbeat due renews; the others
    /// see it done.
    pub(crate) async fn heartbeat(&self, ctx: &RunCtx) -> Result<(), Stop> {
        let now = self.ports.clock.now();
        let quarter = chrono::Duration::from_std(self.config.lease_ttl / 4).unwrap_or_default();
        {
            let mut last = batch::lock(&ctx.last_renew);
            if now - *last < quarter {
                return Ok(());
            }
            *last = now;
        }
        self.ports.connections.renew_lease(&ctx.fence, now, self.config.lease_ttl).await?;
        Ok(())
    }

    pub(crate) async fn checkpoint(&self, ctx: &mut RunCtx, position: SyncPosition) -> Result<(), Stop> {
        let mut patch = ConnectionPatch::default();
        if let Some((name, path)) = ctx.conn_rename.take() {
            patch.folder_name = Some(name);
            patch.folder_path = Some(path);
        }
        patch.filters = ctx.conn_filters.take();
        self.ports.connections.checkpoint(&ctx.fence, &position, &patch).await?;
        ctx.conn.position = position;
        self.hook(Step::Checkpointed)
    }

    /// Events go out before the item write they describe: a crash in between repeats the
    /// event on the re-run (at least once), never loses it.
    pub(crate) async fn emit(&self, event: crate::domain::AssetEvent) -> Result<(), Stop> {
        self.ports
            .events
            .publish(std::slice::from_ref(&event))
            .await
            .map_err(|e| Stop::Error(EngineError::Sink(e.to_string())))
    }
}
