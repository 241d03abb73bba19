//! The connection use cases behind the admin API (ARCHITECTURE §5): which grant an admin may
//! use, the folder picker, connecting a folder, details, the Auto sync toggle, delete and
//! Refresh Items.
//!
//! This module talks to a provider in two places only, [`Connections::browse_folders`] and
//! [`Connections::create`] (the folder check), both through `Connections::session` (grant
//! status, connector, access token).

use std::sync::Arc;

use crate::admin::{Actor, UseCaseError, audit, provider_failure};
use crate::context::Ports;
use crate::domain::{
    ConnKey, Connection, ConnectionCounters, ConnectionStatus, Filters, FolderLocator, Grant, GrantStatus,
    Item, Job, RunStatus, SyncPosition, SyncRun, SyncedBy, Timestamp, Trigger,
};
use crate::ids::{ConnectionId, GrantId, RunId};
use crate::ports::{ConnectionPatch, FolderPage, Provider, StoreError};
use crate::secret::Secret;
use crate::tokens::Tokens;

/// The sync interval of new connections: a deployment's is fixed; local mode may shorten it
/// ([`Connections::with_sync_interval`]) so a person sees auto sync work.
pub const SYNC_INTERVAL_SECS: u64 = 900;

/// How many runs and failed items [`Connections::details`] returns.
const RECENT_RUNS: usize = 10;
const FAILED_ITEMS: usize = 50;

/// A grant the actor may use: their client's and, until a connection uses it, only the admin
/// who authorized it. Only [`Connections::grant`] makes one, so a use case taking it cannot be
/// handed someone else's grant.
#[derive(Debug, Clone)]
pub struct UsableGrant(Grant);

impl UsableGrant {
    pub fn grant(&self) -> &Grant {
        &self.0
    }
}

/// What the admin chose in the picker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewConnection {
    /// The folder's locator as the picker returned it, unchanged (its shape is checked by the
    /// caller; whether this account can read it is checked here, with the grant's own token).
    pub folder: FolderLocator,
    pub auto_sync: bool,
}

/// A connection with what its details page shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Details {
    pub connection: Connection,
    /// `None` once the grant is gone (retired while this connection was being deleted).
    pub grant: Option<Grant>,
    /// Newest first.
    pub recent_runs: Vec<SyncRun>,
    /// Files that could not be imported, with the reason.
    pub failed_items: Vec<Item>,
}

/// The answer to Refresh Items: the run that will bring the connection up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshOutcome {
    pub run_id: RunId,
    pub status: RunStatus,
    /// True when this call queued the run; false when a run already queued or running (or
    /// another click's, an instant earlier) is returned instead.
    pub started: bool,
}

#[derive(Debug, Clone)]
pub struct Connections {
    ports: Ports,
    tokens: Tokens,
    sync_interval_secs: u64,
}

impl Connections {
    pub fn new(ports: Ports, tokens: Tokens) -> Self {
        Self { ports, tokens, sync_interval_secs: SYNC_INTERVAL_SECS }
    }

    /// New connections auto-sync every `secs` seconds (at least one) instead of
    /// [`SYNC_INTERVAL_SECS`].
    pub fn with_sync_interval(mut self, secs: u64) -> Self {
        self.sync_interval_secs = secs.max(1);
        self
    }

    /// The actor's client's connection; anything else is `NotFound`.
    pub async fn get(&self, actor: &Actor, id: &ConnectionId) -> Result<Connection, UseCaseError> {
        let key = ConnKey { client_id: actor.client_id.clone(), connection_id: id.clone() };
        self.ports.connections.get(&key).await?.ok_or(UseCaseError::NotFound)
    }

    /// The grant if the actor may use it (see [`UsableGrant`]); anything else is `NotFound`.
    pub async fn grant(&self, actor: &Actor, id: &GrantId) -> Result<UsableGrant, UseCaseError> {
        let g = self.ports.grants.get(&actor.client_id, id).await?.ok_or(UseCaseError::NotFound)?;
        if !g.attached && g.created_by != actor.user_id {
            return Err(UseCaseError::NotFound);
        }
        Ok(UsableGrant(g))
    }

    /// One level of the picker under `parent` (`None` = the top: the account's root, its
    /// drives or sites); `page` is the provider's own page token from the previous page.
    pub async fn browse_folders(
        &self,
        grant: &UsableGrant,
        parent: Option<&FolderLocator>,
        page: Option<&str>,
    ) -> Result<FolderPage, UseCaseError> {
        let (provider, access) = self.session(grant.grant()).await?;
        provider.browse_folders(&access, parent, page).await.map_err(provider_failure)
    }

    /// Connects a folder: verifies it with the grant's own token (its name and path come from
    /// the provider, never from the caller), stores the connection, marks the grant attached
    /// and queues the initial import.
    pub async fn create(
        &self,
        actor: &Actor,
        grant: UsableGrant,
        new: NewConnection,
    ) -> Result<Connection, UseCaseError> {
        let grant = grant.0;
        let (provider, access) = self.session(&grant).await?;
        let locator = new.folder;
        let folder = provider.folder(&access, &locator).await.map_err(|e| match provider_failure(e) {
            UseCaseError::FolderNotAccessible => {
                UseCaseError::Invalid { field: "/folder_id", reason: "not a folder this account can read" }
            }
            other => other,
        })?;
        let now = self.ports.clock.now();
        let id = ConnectionId::generate();
        let key = ConnKey { client_id: actor.client_id.clone(), connection_id: id.clone() };
        let run = new_run(key, Trigger::Initial, actor, now);
        let interval = chrono::Duration::seconds(self.sync_interval_secs as i64);
        let conn = Connection {
            client_id: actor.client_id.clone(),
            id,
            grant_id: grant.id.clone(),
            provider: grant.provider,
            folder: locator,
            folder_path: folder.path.unwrap_or_else(|| format!("/{}", folder.name)),
            folder_name: folder.name,
            auto_sync: new.auto_sync,
            sync_interval_secs: self.sync_interval_secs,
            status: ConnectionStatus::Active,
            // Set before the run record exists: see `open_run`.
            current_run_id: Some(run.id.clone()),
            last_synced_at: None,
            synced_by: SyncedBy { user_id: actor.user_id.clone(), display_name: actor.display_name.clone() },
            created_at: now,
            position: SyncPosition::Initial,
            lease: None,
            lease_version: 0,
            counters: ConnectionCounters::default(),
            filters: Filters::default(),
            next_due_at: new.auto_sync.then_some(now + interval),
            not_before: None,
            status_reason: None,
            held_deletions: None,
            approved_deletions: None,
        };
        match self.ports.connections.create(&conn).await {
            Ok(()) => {}
            // The store's uniqueness on (client, provider, folder) decides, so two admins
            // connecting the same folder at once get one connection.
            Err(StoreError::Conflict) => return Err(UseCaseError::AlreadyConnected),
            Err(e) => return Err(e.into()),
        }
        if !grant.attached {
            let mut g = grant;
            g.attached = true;
            self.ports.grants.update(&g).await?;
        }
        queue_run(&self.ports, &run).await?;
        audit(&self.ports, actor, "connection.create", format!("connection/{}", conn.id)).await?;
        Ok(conn)
    }

    /// The connection with its account, recent runs and failed items.
    pub async fn details(&self, connection: Connection) -> Result<Details, UseCaseError> {
        let key = connection.key();
        let grant = self.ports.grants.get(&connection.client_id, &connection.grant_id).await?;
        let recent_runs = self.ports.runs.list(&key, None, RECENT_RUNS).await?;
        // Through the failed-items index (every failed item is due by the end of time).
        let failed_items = self
            .ports
            .items
            .failed_due(&key, chrono::DateTime::<chrono::Utc>::MAX_UTC, None, FAILED_ITEMS)
            .await?;
        Ok(Details { connection, grant, recent_runs, failed_items })
    }

    /// Turns Auto sync on (the next scheduled sync one interval from now) or off (none).
    pub async fn set_auto_sync(
        &self,
        actor: &Actor,
        id: &ConnectionId,
        on: bool,
    ) -> Result<Connection, UseCaseError> {
        let c = self.get(actor, id).await?;
        let next_due = on.then(|| {
            self.ports.clock.now()
                + chrono::Duration::seconds(i64::try_from(c.sync_interval_secs).unwrap_or(i64::MAX))
        });
        let patch =
            ConnectionPatch { auto_sync: Some(on), next_due_at: Some(next_due), ..Default::default() };
        let updated = match self.ports.connections.update(&c.key(), &patch).await {
            Err(StoreError::NotFound) => return Err(UseCaseError::NotFound),
            r => r?,
        };
        let action = if on { "connection.auto_sync_on" } else { "connection.auto_sync_off" };
        audit(&self.ports, actor, action, format!("connection/{}", c.id)).await?;
        Ok(updated)
    }

    /// Deletes the connection; its imported assets stay. When no other connection uses its
    /// grant, the grant is retired (revoked at the provider, secret and record deleted); a
    /// revoke that fails leaves it `revoking` for [`crate::grants::sweep`] and never fails the
    /// delete.
    pub async fn delete(&self, actor: &Actor, id: &ConnectionId) -> Result<(), UseCaseError> {
        let c = self.get(actor, id).await?;
        // Deleting the record revokes the lease: a running worker writes nothing afterwards.
        if !self.ports.connections.delete(&c.key()).await? {
            return Err(UseCaseError::NotFound);
        }
        audit(&self.ports, actor, "connection.delete", format!("connection/{}", c.id)).await?;
        // Its items and runs are removed in the background (a worker job, page by page). A
        // queue that refuses leaves them in place, harmless and unreachable: logged, not fatal.
        if let Err(e) = self.ports.queue.send(&[Job::purge(&c.key())]).await {
            tracing::warn!(connection = %c.id, error = %e, "could not queue the deleted connection's purge");
        }
        if self.ports.connections.list_by_grant(&c.client_id, &c.grant_id).await?.is_empty()
            && let Some(grant) = self.ports.grants.get(&c.client_id, &c.grant_id).await?
        {
            crate::grants::retire(&self.ports, &grant).await?;
        }
        Ok(())
    }

    /// Refresh Items: queues a manual run, unless one is already queued or running, which is
    /// returned instead (never two open runs). Refused while Auto sync is off, and while the
    /// connection needs its account reconnected.
    ///
    /// Two clicks at once race on the connection's `current_run_id`: each writes its new run id
    /// only if `current_run_id` is still what it read, so exactly one wins; the loser re-reads
    /// and answers with the winner's run.
    pub async fn refresh(&self, actor: &Actor, id: &ConnectionId) -> Result<RefreshOutcome, UseCaseError> {
        let c = self.get(actor, id).await?;
        if !c.auto_sync {
            return Err(UseCaseError::AutoSyncOff);
        }
        let out = self.start_run(actor, c, false).await?;
        if out.started {
            audit(&self.ports, actor, "connection.refresh", format!("connection/{id}")).await?;
        }
        Ok(out)
    }

    /// Retry failed files now, whatever their backoff and whatever Auto sync says: the open
    /// run is told to retry them all (a run is queued when none is open).
    pub async fn retry_failed(
        &self,
        actor: &Actor,
        id: &ConnectionId,
    ) -> Result<RefreshOutcome, UseCaseError> {
        let c = self.get(actor, id).await?;
        let out = self.start_run(actor, c, true).await?;
        audit(&self.ports, actor, "connection.retry_failed", format!("connection/{id}")).await?;
        Ok(out)
    }

    /// The admin's answer to the mass-delete guard. `apply`: the held deletions are applied by
    /// the run queued now (up to the number held; more than that is held again). Discard: no
    /// deletion is applied and the folder is listed again in full, so files a bad listing
    /// missed are found again (deletions still real after the re-listing meet the guard again).
    pub async fn confirm_deletions(
        &self,
        actor: &Actor,
        id: &ConnectionId,
        apply: bool,
    ) -> Result<RefreshOutcome, UseCaseError> {
        let c = self.get(actor, id).await?;
        let (ConnectionStatus::NeedsReview, Some(held)) = (c.status, c.held_deletions) else {
            return Err(UseCaseError::NothingToReview);
        };
        let mut patch = ConnectionPatch::status(ConnectionStatus::Active, None);
        patch.held_deletions = Some(None);
        if apply {
            patch.approved_deletions = Some(Some(held));
        } else {
            patch.approved_deletions = Some(None);
            patch.position = Some(SyncPosition::Initial);
        }
        let updated = match self.ports.connections.update(&c.key(), &patch).await {
            Err(StoreError::NotFound) => return Err(UseCaseError::NotFound),
            r => r?,
        };
        crate::status::announce(&self.ports, &updated, c.status).await;
        let action = if apply { "connection.deletions_confirmed" } else { "connection.deletions_discarded" };
        audit(&self.ports, actor, action, format!("connection/{id}")).await?;
        self.start_run(actor, updated, false).await
    }

    /// Queues a manual run of `c` unless one is open, which is returned instead (and told to
    /// retry every failed file when `retry_all`). The caller records the audit event.
    async fn start_run(
        &self,
        actor: &Actor,
        c: Connection,
        retry_all: bool,
    ) -> Result<RefreshOutcome, UseCaseError> {
        match c.status {
            ConnectionStatus::ReauthRequired => return Err(UseCaseError::ReauthRequired),
            ConnectionStatus::NeedsReview => {
                return Err(UseCaseError::NeedsReview { held: c.held_deletions.unwrap_or(0) });
            }
            _ => {}
        }
        if let Some((run_id, status)) = self.open_run(&c).await? {
            if retry_all {
                self.flag_retry(&c, &run_id).await?;
            }
            return Ok(RefreshOutcome { run_id, status, started: false });
        }
        let mut run = new_run(c.key(), Trigger::Manual, actor, self.ports.clock.now());
        run.retry_failed = retry_all;
        let patch = ConnectionPatch {
            current_run_id: Some(Some(run.id.clone())),
            if_current_run: Some(c.current_run_id.clone()),
            ..Default::default()
        };
        match self.ports.connections.update(&c.key(), &patch).await {
            Ok(_) => {}
            Err(StoreError::Conflict) => {
                let now = self.get(actor, &c.id).await?;
                return match self.open_run(&now).await? {
                    Some((run_id, status)) => {
                        if retry_all {
                            self.flag_retry(&now, &run_id).await?;
                        }
                        Ok(RefreshOutcome { run_id, status, started: false })
                    }
                    // The winner's run finished already between two reads: not expected
                    // within one request, so it is reported rather than retried.
                    None => Err(UseCaseError::Internal("refresh lost a race without an open run".into())),
                };
            }
            Err(StoreError::NotFound) => return Err(UseCaseError::NotFound),
            Err(e) => return Err(e.into()),
        }
        queue_run(&self.ports, &run).await?;
        Ok(RefreshOutcome { run_id: run.id, status: RunStatus::Queued, started: true })
    }

    /// Tells an open run to retry every failed file. A run whose record is not written yet
    /// (another request's, an instant old) cannot be flagged: that is reported, not hidden.
    async fn flag_retry(&self, c: &Connection, run_id: &RunId) -> Result<(), UseCaseError> {
        let patch = crate::ports::RunPatch { retry_failed: Some(true), ..Default::default() };
        match self.ports.runs.update(&c.key(), run_id, &patch, None).await {
            Ok(_) => Ok(()),
            Err(StoreError::NotFound) => {
                Err(UseCaseError::Internal("retry-failed raced a run being created".into()))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The connection's queued or running run. A current run id whose record is not written yet
    /// belongs to a request being processed right now (ids are written before records): it
    /// counts as queued.
    async fn open_run(&self, c: &Connection) -> Result<Option<(RunId, RunStatus)>, StoreError> {
        let Some(id) = &c.current_run_id else { return Ok(None) };
        Ok(match self.ports.runs.get(&c.key(), id).await? {
            Some(r) if r.status.is_open() => Some((r.id, r.status)),
            Some(_) => None,
            None => Some((id.clone(), RunStatus::Queued)),
        })
    }

    /// The grant's connector and an access token (refreshed single-flight when needed), for
    /// the one provider call of an admin request. A grant that is not active is refused before
    /// any provider call.
    async fn session(&self, grant: &Grant) -> Result<(Arc<dyn Provider>, Secret), UseCaseError> {
        if grant.status != GrantStatus::Active {
            return Err(UseCaseError::ReauthRequired);
        }
        let provider = self.ports.provider(grant.provider).ok_or(UseCaseError::ProviderNotConfigured)?;
        let access = self.tokens.access_token(grant, None).await?;
        Ok((provider, access))
    }
}

/// A queued run of `conn` requested by `actor`.
pub(crate) fn new_run(conn: ConnKey, trigger: Trigger, actor: &Actor, now: Timestamp) -> SyncRun {
    SyncRun::queued(conn, trigger, Some(actor.user_id.clone()), now)
}

/// Writes the run record, then sends its job (ids only). The connection's `current_run_id`
/// is set before this by the caller.
pub(crate) async fn queue_run(ports: &Ports, run: &SyncRun) -> Result<(), StoreError> {
    let job = Job {
        client_id: run.conn.client_id.clone(),
        connection_id: run.conn.connection_id.clone(),
        trigger: run.trigger,
        run_id: Some(run.id.clone()),
        requested_by: run.actor.clone(),
        continuation: false,
        purge: false,
    };
    ports.runs.create(run).await?;
    ports.queue.send(&[job]).await
}
