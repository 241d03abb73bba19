//! State stores (one DynamoDB table on AWS; one in-memory state locally).
//!
//! Every key is built from a [`ClientId`] plus the record's id, so no call can reach another
//! client's records. Worker writes carry a [`Fence`] and are refused once the lease moved on.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{
    AuditEvent, ConnKey, Connection, ConnectionStatus, Fence, Filters, Grant, Item, ItemState, ProviderKind,
    RunCounters, RunStatus, SyncPosition, SyncRun, Timestamp,
};
use crate::ids::{ClientId, GrantId, RunId, UserId};
use crate::secret::Secret;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The lease behind this fence is no longer held (taken over, released, or the connection
    /// was deleted). The writer must stop: it writes nothing more.
    #[error("lease lost: the write was fenced off")]
    Fenced,
    /// A uniqueness or compare-and-set condition failed.
    #[error("conflict")]
    Conflict,
    #[error("not found")]
    NotFound,
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// This one record was refused as written (too large, a value the store cannot hold):
    /// retrying it unchanged fails the same way. The engine records the item `failed` with a
    /// reduced record instead of stopping the run.
    #[error("record refused by the store: {0}")]
    Rejected(String),
}

/// Fields to change on a connection; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConnectionPatch {
    pub auto_sync: Option<bool>,
    pub status: Option<ConnectionStatus>,
    pub folder_name: Option<String>,
    pub folder_path: Option<String>,
    pub current_run_id: Option<Option<RunId>>,
    pub last_synced_at: Option<Timestamp>,
    pub next_due_at: Option<Option<Timestamp>>,
    /// Earliest time the next provider call may happen (a long rate-limit wait).
    pub not_before: Option<Option<Timestamp>>,
    pub status_reason: Option<Option<String>>,
    pub held_deletions: Option<Option<u64>>,
    pub approved_deletions: Option<Option<u64>>,
    /// Replaces the listing position (an admin discarding held deletions: a full re-listing).
    pub position: Option<SyncPosition>,
    /// Replaces the filters (a connection saved under an earlier default, upgraded).
    pub filters: Option<Filters>,
    /// Condition: apply only if `current_run_id` is this now (Conflict otherwise), so two
    /// concurrent Refresh Items clicks cannot both start a run.
    pub if_current_run: Option<Option<RunId>>,
}

impl ConnectionPatch {
    /// Applies the changes (not the `if_current_run` condition, which a store checks).
    pub fn apply_to(&self, c: &mut Connection) {
        if let Some(v) = self.auto_sync {
            c.auto_sync = v;
        }
        if let Some(v) = self.status {
            c.status = v;
        }
        if let Some(v) = &self.folder_name {
            c.folder_name = v.clone();
        }
        if let Some(v) = &self.folder_path {
            c.folder_path = v.clone();
        }
        if let Some(v) = &self.current_run_id {
            c.current_run_id = v.clone();
        }
        if let Some(v) = self.last_synced_at {
            c.last_synced_at = Some(v);
        }
        if let Some(v) = self.next_due_at {
            c.next_due_at = v;
        }
        if let Some(v) = self.not_before {
            c.not_before = v;
        }
        if let Some(v) = &self.status_reason {
            c.status_reason = v.clone();
        }
        if let Some(v) = self.held_deletions {
            c.held_deletions = v;
        }
        if let Some(v) = self.approved_deletions {
            c.approved_deletions = v;
        }
        if let Some(v) = &self.position {
            c.position = v.clone();
        }
        if let Some(v) = &self.filters {
            c.filters = v.clone();
        }
    }

    /// A status change with its reason (the reason cleared when `None`).
    pub fn status(status: ConnectionStatus, reason: Option<String>) -> Self {
        Self { status: Some(status), status_reason: Some(reason), ..Default::default() }
    }

    /// Whether the condition holds for `c`.
    pub fn condition_holds(&self, c: &Connection) -> bool {
        self.if_current_run.as_ref().is_none_or(|want| *want == c.current_run_id)
    }
}

#[async_trait]
pub trait ConnectionStore: Send + Sync {
    /// Conflict when the id exists or the same (client, provider, folder id) is already connected.
    async fn create(&self, c: &Connection) -> Result<(), StoreError>;
    async fn get(&self, key: &ConnKey) -> Result<Option<Connection>, StoreError>;
    /// The client's connections, optionally of one provider, oldest first.
    async fn list(
        &self,
        client: &ClientId,
        provider: Option<ProviderKind>,
    ) -> Result<Vec<Connection>, StoreError>;
    async fn list_by_grant(&self, client: &ClientId, grant: &GrantId) -> Result<Vec<Connection>, StoreError>;
    /// NotFound when absent; Conflict when `patch.if_current_run` does not hold. Unfenced: for
    /// the admin's changes (toggle, status).
    async fn update(&self, key: &ConnKey, patch: &ConnectionPatch) -> Result<Connection, StoreError>;
    /// Deletes the record and with it any lease: every later fenced write fails. Returns whether
    /// it existed.
    async fn delete(&self, key: &ConnKey) -> Result<bool, StoreError>;

    /// Takes the lease if free or expired, incrementing `lease_version`, and returns the
    /// record as leased (one request on DynamoDB: the worker needs no read after it). `None`
    /// while another holder's lease is unexpired. NotFound when the connection is gone.
    async fn acquire_lease(
        &self,
        key: &ConnKey,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Option<(Fence, Connection)>, StoreError>;
    /// Extends the lease. Fenced if it is no longer ours.
    async fn renew_lease(&self, fence: &Fence, now: Timestamp, ttl: Duration) -> Result<(), StoreError>;
    /// Ends the lease, applying a final patch in the same write. Fenced if not ours.
    async fn release_lease(&self, fence: &Fence, patch: &ConnectionPatch) -> Result<(), StoreError>;
    /// Saves the listing position (and a patch) if the lease is still ours.
    async fn checkpoint(
        &self,
        fence: &Fence,
        position: &SyncPosition,
        patch: &ConnectionPatch,
    ) -> Result<(), StoreError>;

    /// How many independent parts the due set is spread over; a tick reads them in parallel.
    fn due_shards(&self) -> u32 {
        1
    }
    /// One page of shard `shard`'s auto-sync connections in status `active` or `error` (an
    /// error is retried by the next tick) whose `next_due_at <= now`, oldest due first, after
    /// `after` (the previous page's `next`). Keys and due times only: a page costs what it
    /// returns, not the connections' records.
    async fn due(
        &self,
        shard: u32,
        now: Timestamp,
        after: Option<&str>,
        limit: usize,
    ) -> Result<DuePage, StoreError>;
    /// Moves `next_due_at` from `expected` to `next` in one conditional write, if the
    /// connection is still due at `expected`, recording `tick` (one id per tick) as its
    /// claimant; false when another tick already did (so a double tick enqueues nothing twice)
    /// or it is no longer due. True again when this tick's own claim already moved it: a
    /// request retried after its first attempt was applied and its answer lost (a timeout, a
    /// 500) must not look like another tick's claim, or the connection would miss a whole
    /// interval.
    async fn claim_due(
        &self,
        key: &ConnKey,
        expected: Timestamp,
        next: Timestamp,
        tick: &str,
    ) -> Result<bool, StoreError>;
}

/// A due connection as the scheduler sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRef {
    pub key: ConnKey,
    /// Its `next_due_at`: what [`ConnectionStore::claim_due`] expects.
    pub due_at: Timestamp,
    /// Its sync interval.
    pub every_secs: u64,
}

/// A page of [`ConnectionStore::due`]; `next` continues it (None: the shard is done).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DuePage {
    pub due: Vec<DueRef>,
    pub next: Option<String>,
}

/// Signed changes to a connection's counters that accompany an item write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterDelta {
    pub files: i64,
    pub bytes: i64,
    pub failed: i64,
}

/// One item outcome: the item record, the run's counters and the connection's counters change
/// together or not at all, under the lease.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemWrite {
    pub item: Item,
    pub run_id: RunId,
    pub run_delta: RunCounters,
    pub conn_delta: CounterDelta,
}

#[async_trait]
pub trait ItemStore: Send + Sync {
    async fn get(&self, conn: &ConnKey, provider_id: &str) -> Result<Option<Item>, StoreError>;
    /// The items of these ids that exist, in any order (a listing page's worth read at once:
    /// one request per 100 ids on DynamoDB). Ids may repeat.
    async fn get_many(&self, conn: &ConnKey, ids: &[&str]) -> Result<Vec<Item>, StoreError> {
        let mut out = Vec::new();
        for id in ids {
            out.extend(self.get(conn, id).await?);
        }
        Ok(out)
    }
    /// Deletes up to `limit` of the records a deleted connection left (its items and runs) and
    /// says how many; fewer than `limit` means none is left. Deleting the connection itself
    /// ([`ConnectionStore::delete`]) leaves them, so that it stays one small write.
    async fn purge(&self, conn: &ConnKey, limit: usize) -> Result<usize, StoreError>;
    /// Live items whose `path_key` is `key` (the path index; at most a few: a path names one
    /// item at a time where the index is used).
    async fn by_path_key(&self, conn: &ConnKey, key: &str) -> Result<Vec<Item>, StoreError>;
    /// A page of the live direct children of `parent_id` (the children index), ordered by
    /// provider id, after `after`.
    async fn children(
        &self,
        conn: &ConnKey,
        parent_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError>;
    /// A page of items ordered by provider id, after `after`, optionally of one state.
    async fn list(
        &self,
        conn: &ConnKey,
        state: Option<ItemState>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError>;
    /// A page of `failed` items whose `next_attempt_at` is at or before `due_by`, ordered by
    /// (`next_attempt_at`, provider id), strictly after `after` in that order. Answered by an
    /// index of failed items: the cost follows the failed items returned, never the
    /// connection's size. A failed item without `next_attempt_at` counts as due at the epoch.
    async fn failed_due(
        &self,
        conn: &ConnKey,
        due_by: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError>;
    /// Atomic and fenced (see [`ItemWrite`]).
    async fn record(&self, fence: &Fence, write: &ItemWrite) -> Result<(), StoreError>;
}

/// Fields to change on a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunPatch {
    pub status: Option<RunStatus>,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub error: Option<String>,
    pub add_invocation: bool,
    pub failure_streak: Option<u32>,
    pub retry_failed: Option<bool>,
    /// [`SyncRun::transferring`].
    pub transferring: Option<u64>,
    /// Condition: refused (Conflict, nothing written) when the run has been flagged
    /// `retry_failed` — a worker finishing a run it did not retry everything in learns of an
    /// admin's "retry failed" from its finishing write instead of a read before it.
    pub unless_retry_flagged: bool,
}

impl RunPatch {
    /// Whether the condition holds for `run`.
    pub fn condition_holds(&self, run: &SyncRun) -> bool {
        !(self.unless_retry_flagged && run.retry_failed)
    }

    /// Applies the changes (not the condition, which a store checks).
    pub fn apply_to(&self, run: &mut SyncRun) {
        if let Some(s) = self.status {
            run.status = s;
        }
        if let Some(t) = self.started_at {
            run.started_at = Some(t);
        }
        if let Some(t) = self.finished_at {
            run.finished_at = Some(t);
        }
        if let Some(e) = &self.error {
            run.error = Some(e.clone());
        }
        if self.add_invocation {
            run.invocations += 1;
        }
        if let Some(n) = self.failure_streak {
            run.failure_streak = n;
        }
        if let Some(v) = self.retry_failed {
            run.retry_failed = v;
        }
        if let Some(n) = self.transferring {
            run.transferring = n;
        }
    }
}

#[async_trait]
pub trait RunStore: Send + Sync {
    /// Conflict when the id exists.
    async fn create(&self, run: &SyncRun) -> Result<(), StoreError>;
    async fn get(&self, conn: &ConnKey, id: &RunId) -> Result<Option<SyncRun>, StoreError>;
    /// Newest first, by id (run ids sort by creation time, [`RunId::generate_at`]): at most
    /// `limit` runs older than `before` (all when None). Reads no more than that.
    async fn list(
        &self,
        conn: &ConnKey,
        before: Option<&RunId>,
        limit: usize,
    ) -> Result<Vec<SyncRun>, StoreError>;
    /// Fenced when `fence` is given (worker writes); NotFound when absent; Conflict when the
    /// patch's condition fails.
    async fn update(
        &self,
        conn: &ConnKey,
        id: &RunId,
        patch: &RunPatch,
        fence: Option<&Fence>,
    ) -> Result<SyncRun, StoreError>;
    /// A worker's new run: creates `run` and makes it the connection's `current_run_id`, under
    /// the lease, in one atomic write. Conflict when the id exists; Fenced when the lease is
    /// lost (nothing written either way).
    async fn start(&self, fence: &Fence, run: &SyncRun) -> Result<(), StoreError>;
    /// The end of a worker's step: applies `patch` to the run and releases the lease with
    /// `release` applied to the connection, in one atomic write. Fenced when the lease is lost,
    /// NotFound when the run is absent, Conflict when the patch's condition fails (nothing
    /// written in each case).
    async fn finish(
        &self,
        fence: &Fence,
        id: &RunId,
        patch: &RunPatch,
        release: &ConnectionPatch,
    ) -> Result<(), StoreError>;
}

/// The audit trail.
#[async_trait]
pub trait AuditLog: Send + Sync {
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError>;
    /// The client's events, newest first.
    async fn list(&self, client: &ClientId, limit: usize) -> Result<Vec<AuditEvent>, StoreError>;
}

/// A pending OAuth authorization (ARCHITECTURE §6).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OAuthState {
    pub client_id: ClientId,
    pub user_id: UserId,
    pub provider: ProviderKind,
    pub pkce_verifier: Secret,
    /// Digest of the browser-binding cookie of the browser that started it: the callback must
    /// come from the same browser (RFC 9700 §4.7.1: state bound to the user agent).
    pub browser_binding: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
}

#[async_trait]
pub trait OAuthStateStore: Send + Sync {
    /// `key` is a digest of the state value, never the value itself. Conflict if present.
    async fn put(&self, key: &str, state: &OAuthState) -> Result<(), StoreError>;
    /// Removes and returns the record in one atomic step: of any number of concurrent calls,
    /// exactly one gets `Some`. Expired records are returned too; the caller checks expiry.
    async fn consume(&self, key: &str) -> Result<Option<OAuthState>, StoreError>;
}

#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Conflict when the id exists or the (client, provider, account) already has a grant.
    async fn create(&self, g: &Grant) -> Result<(), StoreError>;
    async fn get(&self, client: &ClientId, id: &GrantId) -> Result<Option<Grant>, StoreError>;
    async fn find_by_account(
        &self,
        client: &ClientId,
        provider: ProviderKind,
        account_id: &str,
    ) -> Result<Option<Grant>, StoreError>;
    /// Replaces the record (refresh lock and pause untouched). NotFound when absent.
    async fn update(&self, g: &Grant) -> Result<(), StoreError>;
    /// Pauses the grant's provider account until `until`, across workers: `paused_until`
    /// becomes the later of its value and `until`, in one conditional write. A missing grant
    /// (deleted meanwhile) is no error.
    async fn pause(&self, client: &ClientId, id: &GrantId, until: Timestamp) -> Result<(), StoreError>;
    async fn delete(&self, client: &ClientId, id: &GrantId) -> Result<(), StoreError>;
    /// Grants to retire, across clients: status `revoking`, or never attached to a connection
    /// and created before `unattached_before`.
    async fn list_stale(&self, unattached_before: Timestamp, limit: usize) -> Result<Vec<Grant>, StoreError>;
    /// The refresh lock: a conditional write with expiry. True when `holder` now holds it.
    async fn try_lock_refresh(
        &self,
        client: &ClientId,
        id: &GrantId,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError>;
    /// Releases the lock if `holder` still holds it.
    async fn unlock_refresh(&self, client: &ClientId, id: &GrantId, holder: &str) -> Result<(), StoreError>;
}
