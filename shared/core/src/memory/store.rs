use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{
    AuditEvent, ConnKey, Connection, ConnectionCounters, Fence, Grant, Item, ItemState, Lease, ProviderKind,
    SyncPosition, SyncRun, Timestamp,
};
use crate::ids::{ClientId, GrantId, RunId};
use crate::ports::store::*;

#[derive(Debug, Default, Clone)]
struct RefreshLock {
    holder: String,
    expires_at: Option<Timestamp>,
}

#[derive(Debug, Default, Clone)]
struct State {
    connections: BTreeMap<ConnKey, Connection>,
    grants: BTreeMap<(ClientId, GrantId), (Grant, RefreshLock)>,
    oauth_states: HashMap<String, OAuthState>,
    items: BTreeMap<ConnKey, BTreeMap<String, Item>>,
    runs: BTreeMap<ConnKey, BTreeMap<RunId, SyncRun>>,
    audit: Vec<AuditEvent>,
    /// The tick that last claimed each connection, and the next-due time it set.
    claims: HashMap<ConnKey, (String, Timestamp)>,
}

/// Every state store in one lock (see the module docs).
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

fn ttl_after(now: Timestamp, ttl: Duration) -> Timestamp {
    now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX)
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied write: every method
        // validates before mutating. So a poisoned lock is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A stable text dump of every record, for "nothing changed" assertions.
    pub fn snapshot(&self) -> String {
        format!("{:?}", *self.lock())
    }

    /// Every item of a connection (tests and local mode).
    pub fn all_items(&self, conn: &ConnKey) -> Vec<Item> {
        self.lock().items.get(conn).map(|m| m.values().cloned().collect()).unwrap_or_default()
    }

    /// Changes an item in place, unfenced: for tests that need a record as an older version
    /// of the engine wrote it. False if there is no such item.
    pub fn edit_item(&self, conn: &ConnKey, provider_id: &str, f: impl FnOnce(&mut Item)) -> bool {
        let mut st = self.lock();
        match st.items.get_mut(conn).and_then(|m| m.get_mut(provider_id)) {
            Some(item) => {
                f(item);
                true
            }
            None => false,
        }
    }
}

fn fenced<'a>(st: &'a mut State, fence: &Fence) -> Result<&'a mut Connection, StoreError> {
    match st.connections.get_mut(&fence.conn) {
        Some(c)
            if c.lease_version == fence.version
                && c.lease.as_ref().is_some_and(|l| l.holder == fence.holder) =>
        {
            Ok(c)
        }
        _ => Err(StoreError::Fenced),
    }
}

fn apply(c: &mut Connection, p: &ConnectionPatch) {
    p.apply_to(c);
}

fn add_signed(v: u64, d: i64) -> u64 {
    v.saturating_add_signed(d)
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn create(&self, c: &Connection) -> Result<(), StoreError> {
        let mut st = self.lock();
        let dup = st.connections.values().any(|o| {
            o.id == c.id || (o.client_id == c.client_id && o.provider == c.provider && o.folder == c.folder)
        });
        if dup {
            return Err(StoreError::Conflict);
        }
        st.connections.insert(c.key(), c.clone());
        Ok(())
    }

    async fn get(&self, key: &ConnKey) -> Result<Option<Connection>, StoreError> {
        Ok(self.lock().connections.get(key).cloned())
    }

    async fn list(
        &self,
        client: &ClientId,
        provider: Option<ProviderKind>,
    ) -> Result<Vec<Connection>, StoreError> {
        let mut v: Vec<Connection> = self
            .lock()
            .connections
            .values()
            .filter(|c| &c.client_id == client && provider.is_none_or(|p| p == c.provider))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(v)
    }

    async fn list_by_grant(&self, client: &ClientId, grant: &GrantId) -> Result<Vec<Connection>, StoreError> {
        Ok(ConnectionStore::list(self, client, None)
            .await?
            .into_iter()
            .filter(|c| &c.grant_id == grant)
            .collect())
    }

    async fn update(&self, key: &ConnKey, patch: &ConnectionPatch) -> Result<Connection, StoreError> {
        let mut st = self.lock();
        let c = st.connections.get_mut(key).ok_or(StoreError::NotFound)?;
        if !patch.condition_holds(c) {
            return Err(StoreError::Conflict);
        }
        apply(c, patch);
        Ok(c.clone())
    }

    async fn delete(&self, key: &ConnKey) -> Result<bool, StoreError> {
        // Items and runs stay until purged (ItemStore::purge), as in DynamoDB.
        Ok(self.lock().connections.remove(key).is_some())
    }

    async fn acquire_lease(
        &self,
        key: &ConnKey,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<Option<(Fence, Connection)>, StoreError> {
        let mut st = self.lock();
        let c = st.connections.get_mut(key).ok_or(StoreError::NotFound)?;
        if c.lease.as_ref().is_some_and(|l| l.expires_at > now) {
            return Ok(None);
        }
        c.lease_version += 1;
        c.lease = Some(Lease { holder: holder.to_owned(), expires_at: ttl_after(now, ttl) });
        let fence = Fence { conn: key.clone(), version: c.lease_version, holder: holder.to_owned() };
        Ok(Some((fence, c.clone())))
    }

    async fn renew_lease(&self, fence: &Fence, now: Timestamp, ttl: Duration) -> Result<(), StoreError> {
        let mut st = self.lock();
        let c = fenced(&mut st, fence)?;
        c.lease = Some(Lease { holder: fence.holder.clone(), expires_at: ttl_after(now, ttl) });
        Ok(())
    }

    async fn release_lease(&self, fence: &Fence, patch: &ConnectionPatch) -> Result<(), StoreError> {
        let mut st = self.lock();
        let c = fenced(&mut st, fence)?;
        apply(c, patch);
        c.lease = None;
        Ok(())
    }

    async fn checkpoint(
        &self,
        fence: &Fence,
        position: &SyncPosition,
        patch: &ConnectionPatch,
    ) -> Result<(), StoreError> {
        let mut st = self.lock();
        let c = fenced(&mut st, fence)?;
        c.position = position.clone();
        apply(c, patch);
        Ok(())
    }

    async fn due(
        &self,
        _shard: u32,
        now: Timestamp,
        after: Option<&str>,
        limit: usize,
    ) -> Result<DuePage, StoreError> {
        use crate::domain::ConnectionStatus::{Active, Error};
        // The cursor orders like the DynamoDB index: due time, then the key.
        let cursor = |d: &DueRef| {
            format!("{:020}#{}#{}", d.due_at.timestamp_millis().max(0), d.key.client_id, d.key.connection_id)
        };
        let mut v: Vec<DueRef> = self
            .lock()
            .connections
            .values()
            .filter(|c| c.auto_sync && matches!(c.status, Active | Error))
            .filter_map(|c| {
                let at = c.next_due_at.filter(|t| *t <= now)?;
                Some(DueRef { key: c.key(), due_at: at, every_secs: c.sync_interval_secs })
            })
            .filter(|d| after.is_none_or(|a| cursor(d).as_str() > a))
            .collect();
        v.sort_by_key(|d| cursor(d));
        let more = v.len() > limit;
        v.truncate(limit);
        let next = if more { v.last().map(cursor) } else { None };
        Ok(DuePage { due: v, next })
    }

    async fn claim_due(
        &self,
        key: &ConnKey,
        expected: Timestamp,
        next: Timestamp,
        tick: &str,
    ) -> Result<bool, StoreError> {
        let mut st = self.lock();
        let st = &mut *st;
        match st.connections.get_mut(key) {
            Some(c) if c.next_due_at == Some(expected) => {
                c.next_due_at = Some(next);
                st.claims.insert(key.clone(), (tick.to_owned(), next));
                Ok(true)
            }
            // This tick's own claim, asked again.
            Some(c) => Ok(c.next_due_at == Some(next)
                && st.claims.get(key).is_some_and(|(t, at)| t == tick && *at == next)),
            None => Ok(false),
        }
    }
}

#[async_trait]
impl ItemStore for MemoryStore {
    async fn get(&self, conn: &ConnKey, provider_id: &str) -> Result<Option<Item>, StoreError> {
        Ok(self.lock().items.get(conn).and_then(|m| m.get(provider_id)).cloned())
    }

    async fn purge(&self, conn: &ConnKey, limit: usize) -> Result<usize, StoreError> {
        let mut st = self.lock();
        let mut removed = 0;
        if let Some(items) = st.items.get_mut(conn) {
            while removed < limit && items.pop_first().is_some() {
                removed += 1;
            }
        }
        if let Some(runs) = st.runs.get_mut(conn) {
            while removed < limit && runs.pop_first().is_some() {
                removed += 1;
            }
        }
        if st.items.get(conn).is_some_and(BTreeMap::is_empty) {
            st.items.remove(conn);
        }
        if st.runs.get(conn).is_some_and(BTreeMap::is_empty) {
            st.runs.remove(conn);
        }
        Ok(removed)
    }

    async fn by_path_key(&self, conn: &ConnKey, key: &str) -> Result<Vec<Item>, StoreError> {
        Ok(self
            .lock()
            .items
            .get(conn)
            .map(|m| {
                m.values().filter(|i| i.is_live() && i.path_key.as_deref() == Some(key)).cloned().collect()
            })
            .unwrap_or_default())
    }

    async fn children(
        &self,
        conn: &ConnKey,
        parent_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        use std::ops::Bound;
        let st = self.lock();
        let Some(m) = st.items.get(conn) else { return Ok(Vec::new()) };
        let from = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.to_owned()));
        Ok(m.range::<String, _>((from, Bound::Unbounded))
            .map(|(_, i)| i)
            .filter(|i| i.is_live() && i.parent_id.as_deref() == Some(parent_id))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn list(
        &self,
        conn: &ConnKey,
        state: Option<ItemState>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let st = self.lock();
        let Some(m) = st.items.get(conn) else { return Ok(Vec::new()) };
        let range = match after {
            Some(a) => m.range::<str, _>((std::ops::Bound::Excluded(a), std::ops::Bound::Unbounded)),
            None => m.range::<str, _>(..),
        };
        Ok(range
            .map(|(_, i)| i)
            .filter(|i| state.is_none_or(|s| s == i.state))
            .take(limit)
            .cloned()
            .collect())
    }

    async fn failed_due(
        &self,
        conn: &ConnKey,
        due_by: Timestamp,
        after: Option<(Timestamp, &str)>,
        limit: usize,
    ) -> Result<Vec<Item>, StoreError> {
        let st = self.lock();
        let Some(m) = st.items.get(conn) else { return Ok(Vec::new()) };
        let at = |i: &Item| i.next_attempt_at.unwrap_or_default();
        let mut v: Vec<&Item> = m
            .values()
            .filter(|i| i.state == ItemState::Failed && at(i) <= due_by)
            .filter(|i| after.is_none_or(|(t, id)| (at(i), i.provider_id.as_str()) > (t, id)))
            .collect();
        v.sort_by(|a, b| (at(a), &a.provider_id).cmp(&(at(b), &b.provider_id)));
        Ok(v.into_iter().take(limit).cloned().collect())
    }

    async fn record(&self, fence: &Fence, w: &ItemWrite) -> Result<(), StoreError> {
        let mut st = self.lock();
        // Validate everything first, then mutate: all three records change or none.
        fenced(&mut st, fence)?;
        let run =
            st.runs.get_mut(&fence.conn).and_then(|m| m.get_mut(&w.run_id)).ok_or(StoreError::NotFound)?;
        run.counters.add(&w.run_delta);
        let c = fenced(&mut st, fence)?;
        let ConnectionCounters { files, bytes, failed } = c.counters;
        c.counters = ConnectionCounters {
            files: add_signed(files, w.conn_delta.files),
            bytes: add_signed(bytes, w.conn_delta.bytes),
            failed: add_signed(failed, w.conn_delta.failed),
        };
        st.items.entry(fence.conn.clone()).or_default().insert(w.item.provider_id.clone(), w.item.clone());
        Ok(())
    }
}

#[async_trait]
impl RunStore for MemoryStore {
    async fn create(&self, run: &SyncRun) -> Result<(), StoreError> {
        let mut st = self.lock();
        let runs = st.runs.entry(run.conn.clone()).or_default();
        if runs.contains_key(&run.id) {
            return Err(StoreError::Conflict);
        }
        runs.insert(run.id.clone(), run.clone());
        Ok(())
    }

    async fn get(&self, conn: &ConnKey, id: &RunId) -> Result<Option<SyncRun>, StoreError> {
        Ok(self.lock().runs.get(conn).and_then(|m| m.get(id)).cloned())
    }

    async fn list(
        &self,
        conn: &ConnKey,
        before: Option<&RunId>,
        limit: usize,
    ) -> Result<Vec<SyncRun>, StoreError> {
        let st = self.lock();
        let Some(runs) = st.runs.get(conn) else { return Ok(Vec::new()) };
        let older = match before {
            Some(b) => runs.range(..b.clone()),
            None => runs.range(..),
        };
        Ok(older.rev().take(limit).map(|(_, r)| r.clone()).collect())
    }

    async fn update(
        &self,
        conn: &ConnKey,
        id: &RunId,
        patch: &RunPatch,
        fence: Option<&Fence>,
    ) -> Result<SyncRun, StoreError> {
        let mut st = self.lock();
        if let Some(f) = fence {
            if &f.conn != conn {
                return Err(StoreError::Fenced);
            }
            fenced(&mut st, f)?;
        }
        let run = st.runs.get_mut(conn).and_then(|m| m.get_mut(id)).ok_or(StoreError::NotFound)?;
        if !patch.condition_holds(run) {
            return Err(StoreError::Conflict);
        }
        patch.apply_to(run);
        Ok(run.clone())
    }

    async fn start(&self, fence: &Fence, run: &SyncRun) -> Result<(), StoreError> {
        let mut st = self.lock();
        if run.conn != fence.conn {
            return Err(StoreError::Fenced);
        }
        fenced(&mut st, fence)?;
        if st.runs.get(&run.conn).is_some_and(|m| m.contains_key(&run.id)) {
            return Err(StoreError::Conflict);
        }
        st.runs.entry(run.conn.clone()).or_default().insert(run.id.clone(), run.clone());
        fenced(&mut st, fence)?.current_run_id = Some(run.id.clone());
        Ok(())
    }

    async fn finish(
        &self,
        fence: &Fence,
        id: &RunId,
        patch: &RunPatch,
        release: &ConnectionPatch,
    ) -> Result<(), StoreError> {
        let mut st = self.lock();
        fenced(&mut st, fence)?;
        let run = st.runs.get_mut(&fence.conn).and_then(|m| m.get_mut(id)).ok_or(StoreError::NotFound)?;
        if !patch.condition_holds(run) {
            return Err(StoreError::Conflict);
        }
        patch.apply_to(run);
        let c = fenced(&mut st, fence)?;
        apply(c, release);
        c.lease = None;
        Ok(())
    }
}

#[async_trait]
impl OAuthStateStore for MemoryStore {
    async fn put(&self, key: &str, state: &OAuthState) -> Result<(), StoreError> {
        let mut st = self.lock();
        if st.oauth_states.contains_key(key) {
            return Err(StoreError::Conflict);
        }
        st.oauth_states.insert(key.to_owned(), state.clone());
        Ok(())
    }

    async fn consume(&self, key: &str) -> Result<Option<OAuthState>, StoreError> {
        Ok(self.lock().oauth_states.remove(key))
    }
}

#[async_trait]
impl GrantStore for MemoryStore {
    async fn create(&self, g: &Grant) -> Result<(), StoreError> {
        let mut st = self.lock();
        let dup = st.grants.values().any(|(o, _)| {
            o.id == g.id
                || (o.client_id == g.client_id && o.provider == g.provider && o.account_id == g.account_id)
        });
        if dup {
            return Err(StoreError::Conflict);
        }
        st.grants.insert((g.client_id.clone(), g.id.clone()), (g.clone(), RefreshLock::default()));
        Ok(())
    }

    async fn get(&self, client: &ClientId, id: &GrantId) -> Result<Option<Grant>, StoreError> {
        Ok(self.lock().grants.get(&(client.clone(), id.clone())).map(|(g, _)| g.clone()))
    }

    async fn find_by_account(
        &self,
        client: &ClientId,
        provider: ProviderKind,
        account_id: &str,
    ) -> Result<Option<Grant>, StoreError> {
        Ok(self
            .lock()
            .grants
            .values()
            .find(|(g, _)| &g.client_id == client && g.provider == provider && g.account_id == account_id)
            .map(|(g, _)| g.clone()))
    }

    async fn update(&self, g: &Grant) -> Result<(), StoreError> {
        let mut st = self.lock();
        let (rec, _) = st.grants.get_mut(&(g.client_id.clone(), g.id.clone())).ok_or(StoreError::NotFound)?;
        *rec = Grant { paused_until: rec.paused_until, ..g.clone() };
        Ok(())
    }

    async fn pause(&self, client: &ClientId, id: &GrantId, until: Timestamp) -> Result<(), StoreError> {
        if let Some((g, _)) = self.lock().grants.get_mut(&(client.clone(), id.clone())) {
            g.paused_until = g.paused_until.max(Some(until));
        }
        Ok(())
    }

    async fn delete(&self, client: &ClientId, id: &GrantId) -> Result<(), StoreError> {
        self.lock().grants.remove(&(client.clone(), id.clone()));
        Ok(())
    }

    async fn list_stale(&self, unattached_before: Timestamp, limit: usize) -> Result<Vec<Grant>, StoreError> {
        Ok(self
            .lock()
            .grants
            .values()
            .map(|(g, _)| g)
            .filter(|g| {
                g.status == crate::domain::GrantStatus::Revoking
                    || (!g.attached && g.created_at < unattached_before)
            })
            .take(limit)
            .cloned()
            .collect())
    }

    async fn try_lock_refresh(
        &self,
        client: &ClientId,
        id: &GrantId,
        holder: &str,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let mut st = self.lock();
        let (_, lock) = st.grants.get_mut(&(client.clone(), id.clone())).ok_or(StoreError::NotFound)?;
        if lock.expires_at.is_some_and(|t| t > now) && lock.holder != holder {
            return Ok(false);
        }
        *lock = RefreshLock { holder: holder.to_owned(), expires_at: Some(ttl_after(now, ttl)) };
        Ok(true)
    }

    async fn unlock_refresh(&self, client: &ClientId, id: &GrantId, holder: &str) -> Result<(), StoreError> {
        let mut st = self.lock();
        if let Some((_, lock)) = st.grants.get_mut(&(client.clone(), id.clone()))
            && lock.holder == holder
        {
            *lock = RefreshLock::default();
        }
        Ok(())
    }
}

#[async_trait]
impl AuditLog for MemoryStore {
    async fn record(&self, event: &AuditEvent) -> Result<(), StoreError> {
        self.lock().audit.push(event.clone());
        Ok(())
    }

    async fn list(&self, client: &ClientId, limit: usize) -> Result<Vec<AuditEvent>, StoreError> {
        Ok(self.lock().audit.iter().rev().filter(|e| &e.client_id == client).take(limit).cloned().collect())
    }
}
