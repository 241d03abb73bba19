//! Applying a listing to the item records: page by page, change by change, in order.

use std::collections::{HashSet, VecDeque};

use super::{Engine, EngineError, RunCtx, Stop};
use crate::domain::{
    AssetEvent, AssetEventKind, FolderLocator, Item, ItemKind, ItemState, RunCounters, SyncPosition,
    asset_key, path_key,
};
use crate::ports::{
    Change, CounterDelta, FeedScope, ItemWrite, ListPage, ProviderError, RemoteItem, StoreError,
};

/// The next listing request.
#[derive(Clone)]
enum Listing {
    /// A recursive listing, from a page cursor.
    Full(Option<String>),
    /// One folder's children (a by-parent full listing), from a page cursor.
    Children(FolderLocator, Option<String>),
    Changes(String),
}

/// What the page being applied is.
enum Mode {
    /// A full listing: every item is in scope by construction and tagged with `listing`.
    /// `queue_folders`: a by-parent listing, whose folders are opened next.
    Listed { listing: String, queue_folders: bool },
    /// The change feed: membership decided by ancestry.
    Changes,
    /// A folder that came into scope, being listed: in scope by construction.
    Subtree,
}

impl Mode {
    fn listing(&self) -> Option<&str> {
        match self {
            Mode::Listed { listing, .. } => Some(listing),
            _ => None,
        }
    }
}

/// Where an item sits in the tree, as stored.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    pub parent_id: Option<String>,
    pub path: String,
    pub path_key: Option<String>,
}

/// `s` cut to at most `max` bytes at a character boundary, with a digest of the whole so two
/// long values stay distinct.
fn bounded(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    use sha2::{Digest, Sha256};
    let tag = hex::encode(&Sha256::digest(s.as_bytes())[..8]);
    let mut end = max - tag.len() - 1;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}~{tag}", &s[..end])
}

/// What an item adds to its connection's counters (files, bytes, failed).
pub(crate) fn contribution(item: Option<&Item>) -> CounterDelta {
    match item {
        Some(i) if !i.is_folder() && i.state == ItemState::Imported => {
            CounterDelta { files: 1, bytes: i.size.unwrap_or(0) as i64, failed: 0 }
        }
        // A transfer continuing in the next invocation is in progress, not a failure.
        Some(i) if i.state == ItemState::Failed && i.reason.as_deref() != Some(super::transfer::RESUMING) => {
            CounterDelta { files: 0, bytes: 0, failed: 1 }
        }
        _ => CounterDelta::default(),
    }
}

pub(crate) fn delta(old: Option<&Item>, new: &Item) -> CounterDelta {
    let (a, b) = (contribution(old), contribution(Some(new)));
    CounterDelta { files: b.files - a.files, bytes: b.bytes - a.bytes, failed: b.failed - a.failed }
}

impl Engine {
    pub(crate) fn provider(&self, ctx: &RunCtx) -> Result<std::sync::Arc<dyn crate::ports::Provider>, Stop> {
        self.ports.provider(ctx.conn.provider).ok_or_else(|| {
            Stop::Error(EngineError::Provider(ProviderError::Permanent("provider not configured".into())))
        })
    }

    /// Whether no live item can be at path key `key` in folder `parent` without a look at the
    /// path index: the folder held no live item when this step first looked (one children
    /// index read per folder per step), and this step has recorded nothing at that key in it
    /// since, nor holds a file waiting there. A live item at a path hangs from the live folder
    /// at its parent path, so an empty folder's paths are free but for what the step itself
    /// writes (`RunCtx::wrote` keeps those keys). New files arriving in a new folder then cost
    /// no index read each.
    async fn path_free(&self, ctx: &mut RunCtx, parent: Option<&str>, key: &str) -> Result<bool, Stop> {
        const MAX_KEYS: usize = 100_000;
        let Some(parent) = parent else { return Ok(false) };
        if ctx.not_fresh.contains(parent) || ctx.batch.holds_path(key) {
            return Ok(false);
        }
        let known = super::batch::lock(&ctx.fresh).get(parent).map(|keys| (keys.contains(key), keys.len()));
        match known {
            Some((taken, n)) if n < MAX_KEYS => return Ok(!taken),
            Some(_) => {
                // Past the bound the keys are dropped and the path index answers again.
                super::batch::lock(&ctx.fresh).remove(parent);
                ctx.not_fresh.insert(parent.to_owned());
                return Ok(false);
            }
            None => {}
        }
        // Files waiting to be recorded in this folder are not in the index yet: their keys are
        // `holds_path` until recorded, then kept by `RunCtx::wrote`.
        if self.ports.items.children(&ctx.fence.conn, parent, None, 1).await?.is_empty() {
            super::batch::lock(&ctx.fresh).insert(parent.to_owned(), Default::default());
            Ok(true)
        } else {
            ctx.not_fresh.insert(parent.to_owned());
            Ok(false)
        }
    }

    /// An item by id: from the page's read when it holds it, else read.
    pub(crate) async fn item(&self, ctx: &RunCtx, id: &str) -> Result<Option<Item>, Stop> {
        let known = super::batch::lock(&ctx.known).get(id).cloned();
        match known {
            Some(item) => Ok(item),
            None => Ok(self.ports.items.get(&ctx.fence.conn, id).await?),
        }
    }

    /// Writes an item outcome (event first, then the fenced record).
    pub(crate) async fn record(
        &self,
        ctx: &RunCtx,
        old: Option<&Item>,
        item: Item,
        run_delta: RunCounters,
        event: Option<AssetEventKind>,
    ) -> Result<(), Stop> {
        if let Some(kind) = event {
            self.emit(AssetEvent {
                kind,
                client_id: ctx.fence.conn.client_id.clone(),
                connection_id: ctx.fence.conn.connection_id.clone(),
                provider: ctx.conn.provider,
                provider_id: item.provider_id.clone(),
                asset_key: item.asset_key.clone(),
                name: item.name.clone(),
                path: item.path.clone(),
                previous_path: old.filter(|o| o.path != item.path).map(|o| o.path.clone()),
                size: item.size,
                content_hash: item.content_hash.clone(),
                at: self.ports.clock.now(),
            })
            .await?;
        }
        // A suspended transfer the new record no longer holds — the file deleted, moved out, a
        // new version — is dropped (the transfer path drops its own before recording).
        if let Some(t) = old.and_then(|o| o.transfer.as_ref())
            && item.transfer.as_ref() != Some(t)
        {
            self.ports.sink.discard(&t.key, &t.sink).await;
        }
        let write = ItemWrite { conn_delta: delta(old, &item), item, run_id: ctx.run_id.clone(), run_delta };
        match self.ports.items.record(&ctx.fence, &write).await {
            Ok(()) => ctx.wrote(&write),
            Err(StoreError::Rejected(why)) => return self.record_reduced(ctx, old, write.item, &why).await,
            Err(e) => return Err(e.into()),
        }
        self.hook(super::Step::ItemWritten)
    }

    /// The store refused this item's record as written (a value too large for it): a reduced
    /// record keeps the item in the tree — name and path cut to a bounded length — and a file
    /// becomes `failed: store_rejected`, retried by backoff like any failure. Refused again, the
    /// item is left out and logged: the run goes on.
    async fn record_reduced(
        &self,
        ctx: &RunCtx,
        old: Option<&Item>,
        mut item: Item,
        why: &str,
    ) -> Result<(), Stop> {
        tracing::warn!(item = %item.provider_id, error = %why, "item record refused by the store; writing a reduced one");
        item.name = bounded(&item.name, 512);
        item.path = bounded(&item.path, 2048);
        let mut run_delta = RunCounters::default();
        if !item.is_folder() {
            let error = format!("the item record was refused by the store: {why}");
            run_delta = super::transfer::mark_failed(
                &mut item,
                old,
                ctx,
                "store_rejected",
                error,
                self.ports.clock.now(),
                false,
            );
        }
        let write = ItemWrite { conn_delta: delta(old, &item), item, run_id: ctx.run_id.clone(), run_delta };
        match self.ports.items.record(&ctx.fence, &write).await {
            Ok(()) => {
                ctx.wrote(&write);
                self.hook(super::Step::ItemWritten)
            }
            Err(StoreError::Rejected(again)) => {
                tracing::error!(item = %write.item.provider_id, error = %again, "reduced item record refused too; item left out of this run");
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn item_from(
        &self,
        remote: &RemoteItem,
        at: &Placement,
        old: Option<&Item>,
        state: ItemState,
        listing: Option<&str>,
    ) -> Item {
        Item {
            provider_id: remote.id.clone(),
            parent_id: at.parent_id.clone(),
            name: remote.name.clone(),
            path: at.path.clone(),
            path_key: at.path_key.clone(),
            kind: remote.kind.clone(),
            mime_type: remote.mime_type.clone(),
            revision: remote.revision.clone(),
            content_hash: remote.content_hash.clone(),
            size: remote.size,
            state,
            reason: None,
            attempts: 0,
            next_attempt_at: None,
            error: None,
            failed_in: None,
            // Belongs to the asset, which a metadata-only record (a rename) keeps.
            warning: old.and_then(|o| o.warning.clone()),
            asset_key: old.and_then(|o| o.asset_key.clone()),
            seen_in: listing.map(str::to_owned).or_else(|| old.and_then(|o| o.seen_in.clone())),
            updated_at: self.ports.clock.now(),
            transfer: None,
        }
    }

    /// Step 4 of the contract: failed items whose backoff has passed (all of them when `all`)
    /// are tried again first, found through the failed-items index. Each is tried once per
    /// step; one that failed earlier in this run waits for its backoff even when `all`. The
    /// items of one index page are transferred concurrently (they are distinct files with no
    /// metadata to apply), settled before the next page is read.
    pub(crate) async fn retry_failed(&self, ctx: &mut RunCtx, all: bool) -> Result<(), Stop> {
        let key = ctx.fence.conn.clone();
        let now = self.ports.clock.now();
        let due_by = if all { chrono::DateTime::<chrono::Utc>::MAX_UTC } else { now };
        let mut after: Option<(crate::domain::Timestamp, String)> = None;
        loop {
            let cursor = after.as_ref().map(|(t, id)| (*t, id.as_str()));
            let page = self.ports.items.failed_due(&key, due_by, cursor, 100).await?;
            let Some(last) = page.last() else { return self.settle(ctx).await };
            after = Some((last.next_attempt_at.unwrap_or_default(), last.provider_id.clone()));
            for item in page {
                let waiting = item.next_attempt_at.is_some_and(|t| t > now);
                if (waiting && item.failed_in.as_ref() == Some(&ctx.run_id))
                    || !ctx.retried.insert(item.provider_id.clone())
                {
                    continue;
                }
                if self.time_left(ctx).is_zero() {
                    return Err(Stop::Deadline);
                }
                let remote = RemoteItem {
                    id: item.provider_id.clone(),
                    drive_id: ctx.conn.folder.drive_id.clone(),
                    parent_ids: item.parent_id.iter().cloned().collect(),
                    name: item.name.clone(),
                    path: Some(item.path.clone()),
                    path_lower: None,
                    kind: item.kind.clone(),
                    mime_type: item.mime_type.clone(),
                    revision: item.revision.clone(),
                    content_hash: item.content_hash.clone(),
                    size: item.size,
                    modified_at: None,
                };
                let at = Placement {
                    parent_id: item.parent_id.clone(),
                    path: item.path.clone(),
                    path_key: item.path_key.clone(),
                };
                self.defer(ctx, &remote, &at, Some(&item), None).await?;
            }
            self.settle(ctx).await?;
        }
    }

    /// Step 5 of the contract: the listing, page by page, each page checkpointed once applied.
    pub(crate) async fn list_and_apply(&self, ctx: &mut RunCtx) -> Result<(), Stop> {
        let provider = self.provider(ctx)?;
        loop {
            if self.time_left(ctx).is_zero() {
                return Err(Stop::Deadline);
            }
            let folder = ctx.conn.folder.clone();
            // Which request, and what the page's items are tagged with (`listing`: a full
            // listing, whose unseen items are swept at its end; `None`: incremental).
            let (listing, request) = match ctx.conn.position.clone() {
                SyncPosition::Initial => {
                    let listing = ctx.run_id.to_string();
                    self.begin_full_listing(ctx, listing).await?;
                    continue;
                }
                SyncPosition::FullListing { listing, resume, start_cursor, pending } => {
                    if ctx.caps.recursive_listing {
                        (Some(listing), Listing::Full(resume))
                    } else if let Some(head) = pending.first() {
                        (Some(listing), Listing::Children(head.clone(), resume))
                    } else {
                        // Every folder listed: what was not seen is gone; then incremental
                        // from the cursor taken before the listing began.
                        self.sweep(ctx, &listing).await?;
                        let cursor = start_cursor.ok_or_else(|| {
                            Stop::Error(EngineError::Provider(ProviderError::Permanent(
                                "a by-parent listing finished without a start cursor".into(),
                            )))
                        })?;
                        self.checkpoint(ctx, SyncPosition::Incremental { cursor }).await?;
                        continue;
                    }
                }
                SyncPosition::Incremental { cursor } => (None, Listing::Changes(cursor)),
            };
            // A change page the mass-delete guard already read ahead (and counted).
            let read_ahead = match &request {
                Listing::Changes(c) if ctx.lookahead.front().is_some_and(|(from, _)| from == c) => {
                    ctx.lookahead.pop_front().map(|(_, page)| page)
                }
                _ => {
                    ctx.lookahead.clear();
                    None
                }
            };
            let counted = read_ahead.is_some();
            let p = provider.clone();
            let req = request.clone();
            let page = if let Some(page) = read_ahead {
                Ok(page)
            } else {
                self.call(ctx, |access| {
                    let (p, folder, request) = (p.clone(), folder.clone(), req.clone());
                    async move {
                        match request {
                            Listing::Full(resume) => p.list_full(&access, &folder, resume.as_deref()).await,
                            Listing::Children(parent, page) => {
                                p.list_children(&access, &parent, page.as_deref()).await
                            }
                            Listing::Changes(cursor) => p.list_changes(&access, &folder, &cursor).await,
                        }
                    }
                })
                .await?
            };
            let page = match page {
                Ok(page) => page,
                Err(ProviderError::CursorReset) => {
                    tracing::warn!(connection = %ctx.fence.conn.connection_id, "cursor reset by the provider: full re-listing");
                    let listing = format!("{}-{}", ctx.run_id, crate::ids::RunId::generate());
                    self.begin_full_listing(ctx, listing).await?;
                    continue;
                }
                Err(ProviderError::NotFound) => match &request {
                    // A sub-folder gone between being listed and being opened: its parent's
                    // next listing (or the sweep) accounts for it.
                    Listing::Children(parent, _) if parent.folder_id != folder.folder_id => {
                        ListPage { changes: Vec::new(), cursor: String::new(), has_more: false }
                    }
                    _ => return Err(Stop::FolderGone),
                },
                Err(e) => return Err(ctx.listing_failed(e)),
            };
            if matches!(request, Listing::Changes(_)) && !counted {
                self.guard_changes(ctx, &page).await?;
            }
            let mode = match (&request, &listing) {
                (Listing::Changes(_), _) => Mode::Changes,
                (Listing::Children(..), Some(l)) => Mode::Listed { listing: l.clone(), queue_folders: true },
                (_, Some(l)) => Mode::Listed { listing: l.clone(), queue_folders: false },
                (_, None) => Mode::Changes,
            };
            let found = self.apply_page(ctx, &page, &mode).await?;
            let next = match ctx.conn.position.clone() {
                SyncPosition::FullListing { listing, start_cursor, mut pending, .. } => {
                    if ctx.caps.recursive_listing {
                        if page.has_more {
                            SyncPosition::FullListing {
                                listing,
                                resume: Some(page.cursor.clone()),
                                start_cursor,
                                pending,
                            }
                        } else {
                            self.sweep(ctx, &listing).await?;
                            SyncPosition::Incremental { cursor: page.cursor.clone() }
                        }
                    } else {
                        pending.extend(found);
                        let resume = if page.has_more {
                            Some(page.cursor.clone())
                        } else {
                            if !pending.is_empty() {
                                pending.remove(0);
                            }
                            None
                        };
                        SyncPosition::FullListing { listing, resume, start_cursor, pending }
                    }
                }
                _ => SyncPosition::Incremental { cursor: page.cursor.clone() },
            };
            let done = matches!(next, SyncPosition::Incremental { .. }) && !page.has_more;
            if done {
                self.settle_renamed_below(ctx).await?;
            }
            self.checkpoint(ctx, next).await?;
            ctx.progressed = true;
            if done {
                return Ok(());
            }
        }
    }

    /// Starts a full listing tagged `listing`: the connected folder itself is read first (it
    /// is the tree's root; gone → the folder is unavailable), and for by-parent providers the
    /// change cursor is taken *before* anything is listed, so no change made during the
    /// listing is missed.
    async fn begin_full_listing(&self, ctx: &mut RunCtx, listing: String) -> Result<(), Stop> {
        let provider = self.provider(ctx)?;
        let folder = ctx.conn.folder.clone();
        let root = self
            .call(ctx, |access| {
                let (p, f) = (provider.clone(), folder.clone());
                async move { p.item(&access, &f).await }
            })
            .await?;
        let root = match root {
            Ok(r) if r.is_folder() => r,
            Ok(_) | Err(ProviderError::NotFound) => return Err(Stop::FolderGone),
            Err(e) => return Err(ctx.listing_failed(e)),
        };
        self.apply_root(ctx, &root, Some(&listing)).await?;
        let position = if ctx.caps.recursive_listing {
            SyncPosition::full(listing)
        } else {
            let cursor = self
                .call(ctx, |access| {
                    let (p, f) = (provider.clone(), folder.clone());
                    async move { p.start_cursor(&access, &f).await }
                })
                .await?
                .map_err(|e| match e {
                    ProviderError::NotFound => Stop::FolderGone,
                    e => ctx.listing_failed(e),
                })?;
            SyncPosition::FullListing {
                listing,
                resume: None,
                start_cursor: Some(cursor),
                pending: vec![folder],
            }
        };
        self.checkpoint(ctx, position).await
    }

    /// Applies one page in order. Returns the folders it found that a by-parent listing must
    /// open next.
    async fn apply_page(
        &self,
        ctx: &mut RunCtx,
        page: &ListPage,
        mode: &Mode,
    ) -> Result<Vec<FolderLocator>, Stop> {
        // A rename arrives as "deleted old path" + the item at its new path: an id that
        // reappears in the same page is not deleted.
        let upserted: HashSet<&str> = page
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::Upsert(i) => Some(i.id.as_str()),
                Change::Deleted { .. } => None,
            })
            .collect();
        // The page's items in one read (a request per 100 on DynamoDB), not one read each.
        let unknown: Vec<&str> = {
            let known = super::batch::lock(&ctx.known);
            upserted.iter().copied().filter(|id| !known.contains_key(*id)).collect()
        };
        if !unknown.is_empty() {
            let found = self.ports.items.get_many(&ctx.fence.conn, &unknown).await?;
            let mut known = super::batch::lock(&ctx.known);
            known.extend(unknown.iter().map(|id| (id.to_string(), None)));
            known.extend(found.into_iter().map(|i| (i.provider_id.clone(), Some(i))));
        }
        let mut found = Vec::new();
        for change in &page.changes {
            if self.time_left(ctx).is_zero() {
                return Err(Stop::Deadline);
            }
            self.heartbeat(ctx).await?;
            match change {
                Change::Upsert(item) => {
                    ctx.renamed_below.remove(&item.id);
                    if let Some(folder) = self.apply_upsert(ctx, item, mode, &upserted).await? {
                        found.push(folder);
                    }
                }
                Change::Deleted { id, path_lower } => {
                    self.apply_delete(ctx, id.as_deref(), path_lower.as_deref(), &upserted).await?;
                }
            }
        }
        // The page's files, before its checkpoint (I3).
        self.settle(ctx).await?;
        super::batch::lock(&ctx.known).clear();
        Ok(found)
    }

    /// The connected folder's own entry: Folder Name follows a rename; its item is the root
    /// of the scope tree.
    async fn apply_root(
        &self,
        ctx: &mut RunCtx,
        remote: &RemoteItem,
        listing: Option<&str>,
    ) -> Result<(), Stop> {
        let path = remote.path.clone().unwrap_or_else(|| format!("/{}", remote.name));
        if remote.name != ctx.conn.folder_name || path != ctx.conn.folder_path {
            ctx.conn.folder_name = remote.name.clone();
            ctx.conn.folder_path = path.clone();
            ctx.conn_rename = Some((remote.name.clone(), path.clone()));
        }
        ctx.folder_paths.insert(remote.id.clone(), path.clone());
        let at = Placement { parent_id: None, path, path_key: self.path_key_of(ctx, remote) };
        let old = self.item(ctx, &remote.id).await?;
        let seen_again = |o: &Item| listing.is_some() && o.seen_in.as_deref() != listing;
        if old
            .as_ref()
            .is_none_or(|o| o.path != at.path || o.path_key != at.path_key || !o.is_live() || seen_again(o))
        {
            let item = self.item_from(remote, &at, old.as_ref(), ItemState::Imported, listing);
            self.record(ctx, old.as_ref(), item, RunCounters::default(), None).await?;
        }
        Ok(())
    }

    fn path_key_of(&self, ctx: &RunCtx, remote: &RemoteItem) -> Option<String> {
        if ctx.caps.deletions_by_path { remote.path_lower.as_deref().map(path_key) } else { None }
    }

    /// Where an in-scope item sits: parent, display path (the provider's, or derived from the
    /// parent's), path index key.
    async fn place(&self, ctx: &mut RunCtx, remote: &RemoteItem) -> Result<Placement, Stop> {
        let parent_id = self.parent_of(ctx, remote).await?;
        let path = match &remote.path {
            Some(p) => p.clone(),
            None => {
                let parent_path = match &parent_id {
                    Some(pid) => self.folder_path(ctx, pid).await?,
                    None => String::new(),
                };
                format!("{parent_path}/{}", remote.name)
            }
        };
        Ok(Placement { parent_id, path, path_key: self.path_key_of(ctx, remote) })
    }

    async fn folder_path(&self, ctx: &mut RunCtx, id: &str) -> Result<String, Stop> {
        if let Some(p) = ctx.folder_paths.get(id) {
            return Ok(p.clone());
        }
        let path = if id == ctx.conn.folder.folder_id {
            ctx.conn.folder_path.clone()
        } else {
            self.ports.items.get(&ctx.fence.conn, id).await?.map(|i| i.path).unwrap_or_default()
        };
        ctx.folder_paths.insert(id.to_owned(), path.clone());
        Ok(path)
    }

    /// One upsert. Returns a folder a by-parent listing must open next. `in_page`: the ids
    /// this page upserts (an item found at this path that the page moves elsewhere was not
    /// replaced: two names swapped in one page).
    async fn apply_upsert(
        &self,
        ctx: &mut RunCtx,
        remote: &RemoteItem,
        mode: &Mode,
        in_page: &HashSet<&str>,
    ) -> Result<Option<FolderLocator>, Stop> {
        let listing = mode.listing();
        if remote.id == ctx.conn.folder.folder_id {
            self.apply_root(ctx, remote, listing).await?;
            return Ok(None);
        }
        if ctx.batch.holds(&remote.id) {
            // The same item again on this page: its earlier import is recorded first, and this
            // change applies to that record (as one at a time would).
            self.settle(ctx).await?;
        }
        let old = self.item(ctx, &remote.id).await?;
        let old = old.as_ref();
        if matches!(mode, Mode::Changes) && !self.in_scope(ctx, remote).await? {
            // Out of the connected folder's tree: moved out if we had it, else somebody
            // else's file elsewhere in the drive (no download, no record).
            if let Some(o) = old.filter(|o| o.is_live()) {
                self.delete_subtree(ctx, o).await?;
            }
            return Ok(None);
        }
        let at = self.place(ctx, remote).await?;
        if ctx.caps.unique_paths
            && matches!(mode, Mode::Changes)
            && let Some(k) = &at.path_key
            && !self.path_free(ctx, at.parent_id.as_deref(), k).await?
        {
            // A path names one item: another live item at this path was replaced (deleted, and
            // a new file or folder created with the same name). A file waiting to be
            // transferred at this path is recorded first, so the index shows it. Not in a full
            // listing: whatever it does not see at the end, a replaced item included, is swept
            // (and asset keys follow ids, not paths), so a new file costs no index read there.
            if ctx.batch.holds_path(k) {
                self.settle(ctx).await?;
            }
            for other in self.ports.items.by_path_key(&ctx.fence.conn, k).await? {
                if other.provider_id != remote.id
                    && other.provider_id != ctx.conn.folder.folder_id
                    && !in_page.contains(other.provider_id.as_str())
                {
                    self.delete_subtree(ctx, &other).await?;
                }
            }
        }
        let seen_again = |o: &Item| listing.is_some() && o.seen_in.as_deref() != listing;
        if remote.is_folder() {
            let moved_in = old.is_none_or(|o| !o.is_live());
            if moved_in && matches!(mode, Mode::Changes) && ctx.caps.feed_scope == FeedScope::Drive {
                // A drive-wide feed reports a folder moved in without its descendants: list them
                // before the folder is recorded, so an interrupted step lists them again.
                self.list_subtree(ctx, remote).await?;
                // Its files too, before the folder's record.
                self.settle(ctx).await?;
            }
            let renamed = old.is_some_and(|o| o.is_live() && o.path != at.path);
            let changed = old.is_none_or(|o| {
                o.path != at.path
                    || o.name != remote.name
                    || o.parent_id != at.parent_id
                    || o.path_key != at.path_key
                    || !o.is_live()
                    || seen_again(o)
            });
            ctx.folder_paths.insert(remote.id.clone(), at.path.clone());
            ctx.scope_cache.insert(remote.id.clone(), true);
            // Descendants first, the folder last: a crash in between leaves the folder at its
            // old path, so the redelivered step sees the rename again and finishes the job.
            if renamed && !ctx.caps.listing_has_paths {
                self.repath_subtree(ctx, &remote.id, &at.path).await?;
            }
            if ctx.caps.deletions_by_path && ctx.caps.listing_has_paths && matches!(mode, Mode::Changes) {
                self.note_renamed_below(ctx, &remote.id, &at.path, in_page).await?;
            }
            if changed {
                let item = self.item_from(remote, &at, old, ItemState::Imported, listing);
                self.record(ctx, old, item, RunCounters::default(), None).await?;
            }
            let queue = matches!(mode, Mode::Listed { queue_folders: true, .. });
            return Ok(queue.then(|| remote.locator()));
        }
        let scanned = RunCounters { scanned: 1, ..Default::default() };
        let skip_reason = if remote.size.unwrap_or(0) > ctx.conn.filters.max_file_size {
            Some("too_large".to_owned())
        } else {
            match &remote.kind {
                ItemKind::Other { reason } => Some(reason.clone()),
                ItemKind::Shortcut { .. } => Some("shortcut".to_owned()),
                _ => None,
            }
        };
        if let Some(reason) = skip_reason {
            let same = old.is_some_and(|o| {
                o.state == ItemState::Skipped
                    && o.revision == remote.revision
                    && o.path == at.path
                    && o.reason.as_deref() == Some(reason.as_str())
                    && !seen_again(o)
            });
            if !same {
                let mut item = self.item_from(remote, &at, old, ItemState::Skipped, listing);
                item.reason = Some(reason);
                let delta = if old.is_some_and(|o| o.state == ItemState::Skipped) {
                    RunCounters::default()
                } else {
                    RunCounters { skipped: 1, ..scanned }
                };
                self.record(ctx, old, item, delta, None).await?;
            }
            return Ok(None);
        }
        if let Some(o) = old.filter(|o| {
            o.state == ItemState::Failed
                && o.revision == remote.revision
                && o.content_hash == remote.content_hash
                && (o.next_attempt_at.is_some_and(|t| t > self.ports.clock.now())
                    || ctx.retried.contains(&o.provider_id))
        }) {
            // Failed, unchanged, and waiting for its backoff (or already tried this step): no
            // download; the record follows a rename and keeps up with a full listing.
            if o.path != at.path
                || o.name != remote.name
                || o.parent_id != at.parent_id
                || o.path_key != at.path_key
                || seen_again(o)
            {
                let mut item = o.clone();
                item.name = remote.name.clone();
                item.path = at.path.clone();
                item.parent_id = at.parent_id.clone();
                item.path_key = at.path_key.clone();
                item.seen_in = listing.map(str::to_owned).or_else(|| o.seen_in.clone());
                item.updated_at = self.ports.clock.now();
                self.record(ctx, old, item, RunCounters::default(), None).await?;
            }
            return Ok(None);
        }
        let current_key = remote.content_version().map(|v| asset_key(&ctx.fence.conn, &remote.id, v));
        let stored = old.filter(|o| {
            matches!(o.state, ItemState::Imported | ItemState::SourceDeleted)
                && o.asset_key.is_some()
                && (o.asset_key == current_key
                    // The same revision as recorded: content the asset already holds (a rename
                    // settled by `content_changed_since` keeps its asset under the new revision).
                    || (o.revision.is_some() && o.revision == remote.revision && o.content_hash == remote.content_hash))
        });
        let stored = match stored {
            None => self.renamed_only(ctx, remote, &at, old).await?,
            some => some,
        };
        match stored {
            // Same content: at most a metadata update (rename, move, moved back in).
            Some(o)
                if o.path != at.path
                    || o.name != remote.name
                    || o.parent_id != at.parent_id
                    || o.state == ItemState::SourceDeleted =>
            {
                let item = self.item_from(remote, &at, old, ItemState::Imported, listing);
                self.record(ctx, old, item, scanned, Some(AssetEventKind::MetadataUpdated)).await?;
            }
            Some(o) if seen_again(o) || o.path_key != at.path_key => {
                let item = self.item_from(remote, &at, old, ItemState::Imported, listing);
                self.record(ctx, old, item, scanned, None).await?;
            }
            Some(_) => {}
            // Transferred with the page's other files (`batch.rs`), before its checkpoint.
            None => self.defer(ctx, remote, &at, old, listing).await?,
        }
        Ok(None)
    }

    /// `old`, when an exported document's content version moved in the same change as its
    /// name or place and the connector says its content did not change since the recorded
    /// version (a rename that also moved Drive's `modifiedTime`). `None`: import a new version.
    async fn renamed_only<'o>(
        &self,
        ctx: &mut RunCtx,
        remote: &RemoteItem,
        at: &Placement,
        old: Option<&'o Item>,
    ) -> Result<Option<&'o Item>, Stop> {
        let Some(o) = old else { return Ok(None) };
        let ambiguous = matches!(remote.kind, ItemKind::Native { .. })
            && o.state == ItemState::Imported
            && o.asset_key.is_some()
            && (o.name != remote.name || o.parent_id != at.parent_id);
        let Some(since) = o.revision.clone().filter(|_| ambiguous) else { return Ok(None) };
        let provider = self.provider(ctx)?;
        let answer = self
            .call(ctx, |access| {
                let (p, r, s) = (provider.clone(), remote.clone(), since.clone());
                async move { p.content_changed_since(&access, &r, &s).await }
            })
            .await?;
        match answer {
            Ok(Some(false)) => Ok(Some(o)),
            Ok(_) => Ok(None),
            Err(e) => {
                tracing::warn!(item = %remote.id, error = %e, "cannot tell a rename from an edit; exporting again");
                Ok(None)
            }
        }
    }

    /// Lists a folder that came into scope (drive-wide feeds), breadth-first, applying what it
    /// finds as in scope. Nothing is checkpointed: an interrupted step lists it again, and
    /// files already stored are unchanged.
    ///
    /// A boxed future: the subtree's own upserts come back through `apply_upsert`, which is
    /// what calls this.
    fn list_subtree<'a>(
        &'a self,
        ctx: &'a mut RunCtx,
        top: &'a RemoteItem,
    ) -> futures::future::BoxFuture<'a, Result<(), Stop>> {
        Box::pin(self.list_subtree_inner(ctx, top))
    }

    async fn list_subtree_inner(&self, ctx: &mut RunCtx, top: &RemoteItem) -> Result<(), Stop> {
        let provider = self.provider(ctx)?;
        ctx.scope_cache.insert(top.id.clone(), true);
        ctx.folder_paths.remove(&top.id);
        let at = self.place(ctx, top).await?;
        ctx.folder_paths.insert(top.id.clone(), at.path);
        let mut queue = VecDeque::from([top.locator()]);
        let mode = Mode::Subtree;
        while let Some(folder) = queue.pop_front() {
            let mut page_token: Option<String> = None;
            loop {
                let p = provider.clone();
                let (f, t) = (folder.clone(), page_token.clone());
                let page = self
                    .call(ctx, |access| {
                        let (p, f, t) = (p.clone(), f.clone(), t.clone());
                        async move { p.list_children(&access, &f, t.as_deref()).await }
                    })
                    .await?;
                let page = match page {
                    Ok(page) => page,
                    Err(ProviderError::NotFound) => break,
                    Err(e) => return Err(ctx.listing_failed(e)),
                };
                for change in &page.changes {
                    if self.time_left(ctx).is_zero() {
                        return Err(Stop::Deadline);
                    }
                    self.heartbeat(ctx).await?;
                    if let Change::Upsert(item) = change {
                        if item.is_folder() {
                            queue.push_back(item.locator());
                        }
                        self.apply_upsert(ctx, item, &mode, &HashSet::new()).await?;
                    }
                }
                if !page.has_more {
                    break;
                }
                page_token = Some(page.cursor);
            }
        }
        Ok(())
    }

    /// A folder renamed or moved where listings carry no paths: its descendants' display
    /// paths follow (a metadata update each; no provider call, no download).
    async fn repath_subtree(&self, ctx: &mut RunCtx, top: &str, top_path: &str) -> Result<(), Stop> {
        // Files waiting to be transferred may be among the descendants.
        self.settle(ctx).await?;
        let mut folders = VecDeque::from([(top.to_owned(), top_path.to_owned())]);
        while let Some((folder, path)) = folders.pop_front() {
            for child in self.children_of(ctx, &folder).await? {
                self.heartbeat(ctx).await?;
                let new_path = format!("{path}/{}", child.name);
                if child.is_folder() {
                    ctx.folder_paths.insert(child.provider_id.clone(), new_path.clone());
                    folders.push_back((child.provider_id.clone(), new_path.clone()));
                }
                if child.path == new_path {
                    continue;
                }
                let mut item = child.clone();
                item.path = new_path;
                item.updated_at = self.ports.clock.now();
                let event = (!child.is_folder() && child.asset_key.is_some())
                    .then_some(AssetEventKind::MetadataUpdated);
                self.record(ctx, Some(&child), item, RunCounters::default(), event).await?;
            }
        }
        Ok(())
    }

    async fn apply_delete(
        &self,
        ctx: &mut RunCtx,
        id: Option<&str>,
        path_lower: Option<&str>,
        upserted: &HashSet<&str>,
    ) -> Result<(), Stop> {
        // A deletion may name a file waiting to be transferred, by id or by path, or a folder
        // above one: those are recorded first, then deleted as one at a time would.
        self.settle(ctx).await?;
        let key = ctx.fence.conn.clone();
        let root = ctx.conn.folder.folder_id.clone();
        let victims: Vec<Item> = match (id, path_lower) {
            (Some(id), _) => self.ports.items.get(&key, id).await?.into_iter().collect(),
            (None, Some(p)) if ctx.caps.deletions_by_path => {
                self.ports.items.by_path_key(&key, &path_key(p)).await?
            }
            _ => Vec::new(),
        };
        let root_hit = id == Some(root.as_str())
            || victims.iter().any(|v| v.provider_id == root)
            || path_lower.is_some_and(|p| p == ctx.conn.folder_path.to_lowercase());
        if root_hit && !upserted.contains(root.as_str()) {
            // The connected folder's own entry went away: deleted, or renamed/moved (a rename
            // is reported as a deletion of the old path). Ask by id which one it is.
            let provider = self.provider(ctx)?;
            let folder = ctx.conn.folder.clone();
            let found = self
                .call(ctx, |access| {
                    let (p, f) = (provider.clone(), folder.clone());
                    async move { p.item(&access, &f).await }
                })
                .await?;
            match found {
                Ok(entry) if entry.is_folder() => self.apply_root(ctx, &entry, None).await?,
                Ok(_) | Err(ProviderError::NotFound) => return Err(Stop::FolderGone),
                Err(e) => return Err(ctx.listing_failed(e)),
            }
        }
        for old in victims {
            if old.provider_id == root || !old.is_live() {
                continue;
            }
            if upserted.contains(old.provider_id.as_str()) {
                // Renamed or moved (its old path deleted, the item at its new one): see
                // `note_renamed_below` for what was below it.
                continue;
            }
            self.delete_subtree(ctx, &old).await?;
        }
        Ok(())
    }

    /// A folder reported by a path-keyed feed (Dropbox): the live items below it whose stored
    /// path is not under its path any more were left behind by a rename or move of it (or of
    /// a folder above). Such a feed reports the old path deleted and everything still there
    /// again at its new path, parents before children, in this page or a later one; an item
    /// not reported again by the end of the listing was deleted meanwhile
    /// (`settle_renamed_below`). Comparing paths, not remembering the rename, keeps this right
    /// when a crashed step is redelivered after the folder itself was already re-pathed.
    async fn note_renamed_below(
        &self,
        ctx: &mut RunCtx,
        folder: &str,
        path: &str,
        upserted: &HashSet<&str>,
    ) -> Result<(), Stop> {
        // Reads the children index: files waiting to be transferred go in first.
        self.settle(ctx).await?;
        let mut stack = vec![(folder.to_owned(), path.to_lowercase())];
        while let Some((id, path)) = stack.pop() {
            for child in self.children_of(ctx, &id).await? {
                let expected = format!("{path}/{}", child.name.to_lowercase());
                if !child.is_live() || child.path.to_lowercase() == expected {
                    continue;
                }
                if child.is_folder() {
                    stack.push((child.provider_id.clone(), expected));
                }
                if !upserted.contains(child.provider_id.as_str()) {
                    ctx.renamed_below.insert(child.provider_id);
                }
            }
        }
        Ok(())
    }

    /// At the end of a change listing: items below a renamed folder that were not reported
    /// again are gone from the source.
    async fn settle_renamed_below(&self, ctx: &mut RunCtx) -> Result<(), Stop> {
        let key = ctx.fence.conn.clone();
        for id in std::mem::take(&mut ctx.renamed_below) {
            if let Some(old) = self.ports.items.get(&key, &id).await?.filter(Item::is_live) {
                self.heartbeat(ctx).await?;
                self.mark_deleted(ctx, &old).await?;
            }
        }
        Ok(())
    }

    /// The source no longer has it: the item is `source_deleted`, the asset is kept.
    pub(crate) async fn mark_deleted(&self, ctx: &RunCtx, old: &Item) -> Result<(), Stop> {
        let mut item = old.clone();
        item.state = ItemState::SourceDeleted;
        item.reason = Some("deleted_at_source".into());
        item.updated_at = self.ports.clock.now();
        let counted = !old.is_folder() && old.asset_key.is_some();
        let run_delta = RunCounters { source_deleted: u64::from(counted), ..Default::default() };
        let event = counted.then_some(AssetEventKind::SourceDeleted);
        self.record(ctx, Some(old), item, run_delta, event).await
    }

    /// After a full listing: whatever it did not see is gone from the source — unless that is
    /// more than the mass-delete guard allows, when nothing is marked and the run is held.
    /// The candidates are counted first (kept in memory up to a bound, else read again).
    async fn sweep(&self, ctx: &mut RunCtx, listing: &str) -> Result<(), Stop> {
        const KEEP: usize = 5_000;
        let key = ctx.fence.conn.clone();
        let root = ctx.conn.folder.folder_id.clone();
        let unseen =
            |old: &Item| old.is_live() && old.seen_in.as_deref() != Some(listing) && old.provider_id != root;
        let mut kept = Vec::new();
        let (mut files, mut total) = (0u64, 0usize);
        let mut after: Option<String> = None;
        loop {
            let page = self.ports.items.list(&key, None, after.as_deref(), 200).await?;
            let Some(last) = page.last() else { break };
            after = Some(last.provider_id.clone());
            for old in page.into_iter().filter(|o| unseen(o)) {
                files += u64::from(counts_as_file(&old));
                total += 1;
                if total <= KEEP {
                    kept.push(old);
                }
            }
        }
        if self.guard_trips(ctx, files) {
            return Err(Stop::Held(files));
        }
        if total <= KEEP {
            for old in kept {
                self.mark_deleted(ctx, &old).await?;
            }
            return Ok(());
        }
        let mut after: Option<String> = None;
        loop {
            let page = self.ports.items.list(&key, None, after.as_deref(), 200).await?;
            let Some(last) = page.last() else { return Ok(()) };
            after = Some(last.provider_id.clone());
            for old in page.into_iter().filter(|o| unseen(o)) {
                self.mark_deleted(ctx, &old).await?;
            }
        }
    }

    fn guard_trips(&self, ctx: &RunCtx, deleting: u64) -> bool {
        self.config.delete_guard.trips(
            deleting,
            ctx.conn.counters.files,
            ctx.conn.approved_deletions.unwrap_or(0),
        )
    }

    /// The mass-delete guard on the change feed: before a page that removes files is applied,
    /// the files it and the pages after it (read ahead, up to `lookahead_pages`, kept for
    /// applying) would mark deleted are counted; over the threshold, nothing is applied.
    async fn guard_changes(&self, ctx: &mut RunCtx, page: &ListPage) -> Result<(), Stop> {
        let mut victims = HashSet::new();
        let mut upserted = HashSet::new();
        self.removals(ctx, page, &mut victims, &mut upserted).await?;
        if victims.is_empty() {
            return Ok(());
        }
        let provider = self.provider(ctx)?;
        let folder = ctx.conn.folder.clone();
        let (mut cursor, mut more) = (page.cursor.clone(), page.has_more);
        let count = |v: &HashSet<String>, u: &HashSet<String>| v.difference(u).count() as u64;
        while more
            && ctx.lookahead.len() < self.config.delete_guard.lookahead_pages
            && !self.guard_trips(ctx, count(&victims, &upserted))
        {
            let c = cursor.clone();
            let next = self
                .call(ctx, |access| {
                    let (p, f, c) = (provider.clone(), folder.clone(), c.clone());
                    async move { p.list_changes(&access, &f, &c).await }
                })
                .await?;
            // A page that cannot be read ahead is decided on what was seen; its failure, if it
            // lasts, is met again when it is applied.
            let Ok(next) = next else { break };
            self.removals(ctx, &next, &mut victims, &mut upserted).await?;
            more = next.has_more;
            let from = std::mem::replace(&mut cursor, next.cursor.clone());
            ctx.lookahead.push_back((from, next));
        }
        let n = count(&victims, &upserted);
        if self.guard_trips(ctx, n) {
            ctx.lookahead.clear();
            return Err(Stop::Held(n));
        }
        Ok(())
    }

    /// The imported files `page` would mark deleted (deleted, or moved out of scope, with their
    /// subtrees), and the ids it upserts (a rename reported as delete + upsert is no deletion).
    async fn removals(
        &self,
        ctx: &mut RunCtx,
        page: &ListPage,
        victims: &mut HashSet<String>,
        upserted: &mut HashSet<String>,
    ) -> Result<(), Stop> {
        let key = ctx.fence.conn.clone();
        let root = ctx.conn.folder.folder_id.clone();
        for change in &page.changes {
            let gone: Vec<Item> = match change {
                Change::Deleted { id: Some(id), .. } => {
                    self.ports.items.get(&key, id).await?.into_iter().collect()
                }
                Change::Deleted { id: None, path_lower: Some(p) } if ctx.caps.deletions_by_path => {
                    self.ports.items.by_path_key(&key, &path_key(p)).await?
                }
                Change::Deleted { .. } => Vec::new(),
                Change::Upsert(remote) => {
                    upserted.insert(remote.id.clone());
                    let old = if ctx.caps.feed_scope == FeedScope::Drive && remote.id != root {
                        self.ports.items.get(&key, &remote.id).await?.filter(Item::is_live)
                    } else {
                        None
                    };
                    match old {
                        Some(o) if !self.in_scope(ctx, remote).await? => vec![o],
                        _ => Vec::new(),
                    }
                }
            };
            for v in gone.into_iter().filter(|v| v.is_live() && v.provider_id != root) {
                self.subtree_files(ctx, &v, victims).await?;
            }
        }
        Ok(())
    }

    /// The imported files at or under `top` (the children index, breadth-first).
    async fn subtree_files(&self, ctx: &RunCtx, top: &Item, out: &mut HashSet<String>) -> Result<(), Stop> {
        if !top.is_folder() {
            if counts_as_file(top) {
                out.insert(top.provider_id.clone());
            }
            return Ok(());
        }
        let mut folders = VecDeque::from([top.provider_id.clone()]);
        while let Some(folder) = folders.pop_front() {
            for child in self.children_of(ctx, &folder).await? {
                if child.is_folder() {
                    folders.push_back(child.provider_id);
                } else if counts_as_file(&child) {
                    out.insert(child.provider_id);
                }
            }
        }
        Ok(())
    }
}

/// A file the DAM holds as an asset (what the connection's `files` counter counts).
fn counts_as_file(i: &Item) -> bool {
    !i.is_folder() && i.state == ItemState::Imported
}
