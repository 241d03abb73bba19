//! Applying a listing to the item records: page by page, change by change, in order.

use std::collections::{HashSet, VecDeque};

use super::{Engine, EngineError, RunCtx, Stop};
use crate::domain::{
    AssetEvent, AssetEventKind, FolderLocator, Item, ItemKind, ItemState, RunCounters, SyncPosition,
    asset_key, path_key,
};
use crate::ports::{Change, CounterDelta, FeedScope, ItemWrite, ListPage, ProviderError, RemoteItem};

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

/// What an item adds to its connection's counters (files, bytes, failed).
pub(crate) fn contribution(item: Option<&Item>) -> CounterDelta {
    match item {
        Some(i) if !i.is_folder() && i.state == ItemState::Imported => {
            CounterDelta { files: 1, bytes: i.size.unwrap_or(0) as i64, failed: 0 }
        }
        Some(i) if i.state == ItemState::Failed => CounterDelta { files: 0, bytes: 0, failed: 1 },
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
        let write = ItemWrite { conn_delta: delta(old, &item), item, run_id: ctx.run_id.clone(), run_delta };
        self.ports.items.record(&ctx.fence, &write).await?;
        self.hook(super::Step::ItemWritten)
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
            asset_key: old.and_then(|o| o.asset_key.clone()),
            seen_in: listing.map(str::to_owned).or_else(|| old.and_then(|o| o.seen_in.clone())),
            updated_at: self.ports.clock.now(),
        }
    }

    /// Step 4 of the contract: items left `failed` by earlier runs are tried again first.
    pub(crate) async fn retry_failed(&self, ctx: &mut RunCtx) -> Result<(), Stop> {
        let key = ctx.fence.conn.clone();
        let mut after: Option<String> = None;
        loop {
            let page = self.ports.items.list(&key, Some(ItemState::Failed), after.as_deref(), 100).await?;
            let Some(last) = page.last() else { return Ok(()) };
            after = Some(last.provider_id.clone());
            for item in page.into_iter().filter(|i| i.attempts < self.config.max_item_attempts) {
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
                self.import(ctx, &remote, &at, Some(&item), None).await?;
            }
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
            let p = provider.clone();
            let req = request.clone();
            let page = self
                .call(ctx, |access| {
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
                .await?;
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
                Err(e) => return Err(Stop::Error(EngineError::Provider(e))),
            };
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
            self.checkpoint(ctx, next).await?;
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
            Err(e) => return Err(Stop::Error(EngineError::Provider(e))),
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
                    e => Stop::Error(EngineError::Provider(e)),
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
        let mut found = Vec::new();
        for change in &page.changes {
            if self.time_left(ctx).is_zero() {
                return Err(Stop::Deadline);
            }
            self.heartbeat(ctx).await?;
            match change {
                Change::Upsert(item) => {
                    if let Some(folder) = self.apply_upsert(ctx, item, mode, &upserted).await? {
                        found.push(folder);
                    }
                }
                Change::Deleted { id, path_lower } => {
                    self.apply_delete(ctx, id.as_deref(), path_lower.as_deref(), &upserted).await?;
                }
            }
        }
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
        let old = self.ports.items.get(&ctx.fence.conn, &remote.id).await?;
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
        let old = self.ports.items.get(&ctx.fence.conn, &remote.id).await?;
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
            && let Some(k) = &at.path_key
        {
            // A path names one item: another live item at this path was replaced (deleted, and
            // a new file or folder created with the same name).
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
        let current_key = remote.content_version().map(|v| asset_key(&ctx.fence.conn, &remote.id, v));
        let stored = old.filter(|o| {
            matches!(o.state, ItemState::Imported | ItemState::SourceDeleted)
                && o.asset_key.is_some()
                && o.asset_key == current_key
        });
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
            None => self.import(ctx, remote, &at, old, listing).await?,
        }
        Ok(None)
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
                    Err(e) => return Err(Stop::Error(EngineError::Provider(e))),
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
        let mut folders = VecDeque::from([(top.to_owned(), top_path.to_owned())]);
        while let Some((folder, path)) = folders.pop_front() {
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .ports
                    .items
                    .children(&ctx.fence.conn, &folder, after.as_deref(), super::scope::CHILDREN_PAGE)
                    .await?;
                let Some(last) = page.last() else { break };
                after = Some(last.provider_id.clone());
                let full = page.len() == super::scope::CHILDREN_PAGE;
                for child in page {
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
                if !full {
                    break;
                }
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
                Err(e) => return Err(Stop::Error(EngineError::Provider(e))),
            }
        }
        for old in victims {
            if old.provider_id == root || !old.is_live() || upserted.contains(old.provider_id.as_str()) {
                continue;
            }
            self.delete_subtree(ctx, &old).await?;
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

    /// After a full listing: whatever it did not see is gone from the source.
    async fn sweep(&self, ctx: &mut RunCtx, listing: &str) -> Result<(), Stop> {
        let key = ctx.fence.conn.clone();
        let mut after: Option<String> = None;
        loop {
            let page = self.ports.items.list(&key, None, after.as_deref(), 200).await?;
            let Some(last) = page.last() else { return Ok(()) };
            after = Some(last.provider_id.clone());
            for old in page {
                if old.is_live()
                    && old.seen_in.as_deref() != Some(listing)
                    && old.provider_id != ctx.conn.folder.folder_id
                {
                    self.mark_deleted(ctx, &old).await?;
                }
            }
        }
    }
}
