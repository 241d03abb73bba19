//! Response bodies.

use extconn_core::{
    Connection, ConnectionCounters, ConnectionStatus, Grant, Item, ItemState, ProviderKind, RunCounters,
    RunStatus, SyncRun, SyncedBy, Timestamp, Trigger,
};
use serde::Serialize;

/// A row of the management table.
#[derive(Debug, Serialize)]
pub struct ConnectionRow {
    pub id: String,
    pub provider: ProviderKind,
    pub folder_name: String,
    pub folder_path: String,
    pub last_synced_at: Option<Timestamp>,
    pub synced_by: SyncedBy,
    pub auto_sync: bool,
    /// `syncing` while a worker holds the lease, else the stored status.
    pub status: &'static str,
    /// `error`: what failed; `needs_review`: the held deletions; in words an admin can act on.
    pub status_reason: Option<String>,
    /// `needs_review`: how many files the held run would mark deleted.
    pub held_deletions: Option<u64>,
    pub current_run_id: Option<String>,
    pub counters: ConnectionCounters,
    pub created_at: Timestamp,
    /// The provider account the folder is read with (None only if its grant is gone).
    pub account: Option<AccountView>,
}

pub fn status_label(c: &Connection, now: Timestamp) -> &'static str {
    match c.status {
        ConnectionStatus::ReauthRequired => "reauth_required",
        ConnectionStatus::FolderUnavailable => "folder_unavailable",
        ConnectionStatus::Error => "error",
        ConnectionStatus::NeedsReview => "needs_review",
        ConnectionStatus::Active if c.is_syncing(now) => "syncing",
        ConnectionStatus::Active => "active",
    }
}

impl ConnectionRow {
    pub fn new(c: &Connection, grant: Option<&Grant>, now: Timestamp) -> Self {
        Self {
            id: c.id.to_string(),
            provider: c.provider,
            folder_name: c.folder_name.clone(),
            folder_path: c.folder_path.clone(),
            last_synced_at: c.last_synced_at,
            synced_by: c.synced_by.clone(),
            auto_sync: c.auto_sync,
            status: status_label(c, now),
            status_reason: c.status_reason.clone(),
            held_deletions: c.held_deletions,
            current_run_id: c.current_run_id.as_ref().map(ToString::to_string),
            counters: c.counters,
            created_at: c.created_at,
            account: grant.map(AccountView::new),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AccountView {
    pub id: String,
    pub name: String,
    pub email: Option<String>,
}

impl AccountView {
    pub fn new(g: &Grant) -> Self {
        Self { id: g.account_id.clone(), name: g.account_name.clone(), email: g.account_email.clone() }
    }
}

/// v1 settings: fixed, read-only.
#[derive(Debug, Serialize)]
pub struct Settings {
    pub include_subfolders: bool,
    pub max_file_size: u64,
    pub sync_interval_secs: u64,
}

#[derive(Debug, Serialize)]
pub struct ConnectionDetails {
    #[serde(flatten)]
    pub row: ConnectionRow,
    /// Deletions an admin confirmed, applied by the next run (cleared when it finishes its pass).
    pub approved_deletions: Option<u64>,
    pub settings: Settings,
    pub recent_runs: Vec<RunView>,
    /// Files that could not be imported, with the reason.
    pub failed_items: Vec<ItemView>,
}

impl ConnectionDetails {
    pub fn new(d: &extconn_core::connections::Details, now: Timestamp) -> Self {
        let c = &d.connection;
        Self {
            row: ConnectionRow::new(c, d.grant.as_ref(), now),
            approved_deletions: c.approved_deletions,
            settings: Settings {
                include_subfolders: c.filters.include_subfolders,
                max_file_size: c.filters.max_file_size,
                sync_interval_secs: c.sync_interval_secs,
            },
            recent_runs: d.recent_runs.iter().map(RunView::new).collect(),
            failed_items: d.failed_items.iter().map(ItemView::new).collect(),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct RunView {
    pub id: String,
    pub trigger: Trigger,
    pub status: RunStatus,
    pub actor: Option<String>,
    pub queued_at: Timestamp,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub counters: RunCountersView,
    pub error: Option<String>,
    /// This run retries every failed file whatever its backoff (`retry-failed`).
    pub retry_failed: bool,
}

/// A run's counters, and `found`: the files it has found so far (`scanned`, the files done,
/// plus those waiting for their transfer right now), so progress reads "done of found".
#[derive(Debug, Serialize)]
pub struct RunCountersView {
    #[serde(flatten)]
    pub counters: RunCounters,
    pub found: u64,
}

impl RunView {
    pub fn new(r: &SyncRun) -> Self {
        Self {
            id: r.id.to_string(),
            trigger: r.trigger,
            status: r.status,
            actor: r.actor.as_ref().map(ToString::to_string),
            queued_at: r.queued_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            counters: RunCountersView { counters: r.counters, found: r.counters.scanned + r.transferring },
            error: r.error.clone(),
            retry_failed: r.retry_failed,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ItemView {
    pub id: String,
    pub name: String,
    pub path: String,
    pub is_folder: bool,
    pub state: ItemState,
    /// A stable code (`access_denied`, `too_large`, …; docs/api.md lists them).
    pub reason: Option<String>,
    /// `failed` / `skipped`: the last error in words.
    pub error: Option<String>,
    /// `imported`: kept despite a difference from the listing (SharePoint's rewritten Office
    /// files), in words.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
    pub size: Option<u64>,
    pub attempts: u32,
    /// `failed`: when a later run tries it again.
    pub next_attempt_at: Option<Timestamp>,
    pub asset_key: Option<String>,
    pub updated_at: Timestamp,
}

impl ItemView {
    pub fn new(i: &Item) -> Self {
        Self {
            id: i.provider_id.clone(),
            name: i.name.clone(),
            path: i.path.clone(),
            is_folder: i.is_folder(),
            state: i.state,
            reason: i.reason.clone(),
            error: i.error.clone(),
            warning: i.warning.clone(),
            size: i.size,
            attempts: i.attempts,
            next_attempt_at: i.next_attempt_at,
            asset_key: i.asset_key.clone(),
            updated_at: i.updated_at,
        }
    }
}

/// One page of a list.
#[derive(Debug, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_page: Option<String>,
}
