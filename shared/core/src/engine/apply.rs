//! Applying a listing to the item records: page by page, change by change, in order.

use std::collections::HashSet;

use super::{Engine, EngineError, RunCtx, Stop};
use crate::domain::{AssetEvent, AssetEventKind, Item, ItemState, RunCounters, SyncPosition, asset_key};
use crate::ports::{Change, CounterDelta, ItemWrite, ListPage, ProviderError, RemoteItem};

/// The next listing request.
#[derive(Clone)]
enum Listing {
    Full(Option<String>),
    Changes(String),
}

/// What an item adds to its connection's counters (files, bytes, failed).
pub(crate) fn contribution(item: Option<&Item>) -> CounterDelta {
    match item {
        Some(i) if !i.is_folder && i.state == ItemState::Imported => {
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
        old: Option<&Item>,
        state: ItemState,
        listing: Option<&str>,
    ) -> Item {
        Item {
            provider_id: remote.id.clone(),
            parent_id: remote.parent_id.clone(),
            name: remote.name.clone(),
            path: remote.path.clone(),
            path_lower: remote.path_lower.clone(),
            is_folder: remote.is_folder,
            revision: remote.revision.clone(),
            content_hash: remote.content_hash.clone(),
            size: remote.size,
            state,
            reason: None,
            attempts: 0,
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
                    parent_id: item.parent_id.clone(),
                    name: item.name.clone(),
                    path: item.path.clone(),
                    path_lower: item.path_lower.clone(),
                    is_folder: false,
                    revision: item.revision.clone(),
                    content_hash: item.content_hash.clone(),
                    size: item.size,
                    modified_at: None,
                    downloadable: true,
                };
                self.import(ctx, &remote, Some(&item), None).await?;
            }
        }
    }

    /// Step 5 of the contract.
    pub(crate) async fn list_and_apply(&self, ctx: &mut RunCtx) -> Result<(), Stop> {
        let provider = self.provider(ctx)?;
        loop {
            if self.time_left(ctx).is_zero() {
                return Err(Stop::Deadline);
            }
            let position = ctx.conn.position.clone();
            let folder = ctx.conn.folder.clone();
            // `listing` tags what a full listing sees (for the sweep); `None` = incremental.
            let (listing, request) = match &position {
                SyncPosition::Initial => (Some(ctx.run_id.to_string()), Listing::Full(None)),
                SyncPosition::FullListing { listing, resume } => {
                    (Some(listing.clone()), Listing::Full(resume.clone()))
                }
                SyncPosition::Incremental { cursor } => (None, Listing::Changes(cursor.clone())),
            };
            let p = provider.clone();
            let page = self
                .call(ctx, |access| {
                    let (p, folder, request) = (p.clone(), folder.clone(), request.clone());
                    async move {
                        match request {
                            Listing::Full(resume) => p.list_full(&access, &folder, resume.as_deref()).await,
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
                    self.checkpoint(ctx, SyncPosition::FullListing { listing, resume: None }).await?;
                    continue;
                }
                Err(ProviderError::NotFound) => return Err(Stop::FolderGone),
                Err(e) => return Err(Stop::Error(EngineError::Provider(e))),
            };
            self.apply_page(ctx, &page, listing.as_deref()).await?;
            let next = match (page.has_more, listing) {
                (true, Some(listing)) => SyncPosition::FullListing { listing, resume: Some(page.cursor) },
                (false, Some(listing)) => {
                    self.sweep(ctx, &listing).await?;
                    SyncPosition::Incremental { cursor: page.cursor }
                }
                (_, None) => SyncPosition::Incremental { cursor: page.cursor },
            };
            self.checkpoint(ctx, next).await?;
            if !page.has_more {
                return Ok(());
            }
        }
    }

    async fn apply_page(&self, ctx: &mut RunCtx, page: &ListPage, listing: Option<&str>) -> Result<(), Stop> {
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
        for change in &page.changes {
            if self.time_left(ctx).is_zero() {
                return Err(Stop::Deadline);
            }
            self.heartbeat(ctx).await?;
            match change {
                Change::Upsert(item) if item.id == ctx.conn.folder.folder_id => {
                    if item.name != ctx.conn.folder_name || item.path != ctx.conn.folder_path {
                        ctx.conn.folder_name = item.name.clone();
                        ctx.conn.folder_path = item.path.clone();
                        ctx.conn_rename = Some((item.name.clone(), item.path.clone()));
                    }
                }
                Change::Upsert(item) => self.apply_upsert(ctx, item, listing).await?,
                Change::Deleted { id, path_lower } => {
                    self.apply_delete(ctx, id.as_deref(), path_lower.as_deref(), &upserted).await?;
                }
            }
        }
        Ok(())
    }

    async fn apply_upsert(
        &self,
        ctx: &mut RunCtx,
        remote: &RemoteItem,
        listing: Option<&str>,
    ) -> Result<(), Stop> {
        let old = self.ports.items.get(&ctx.fence.conn, &remote.id).await?;
        let old = old.as_ref();
        let seen_again = |o: &Item| listing.is_some() && o.seen_in.as_deref() != listing;
        if remote.is_folder {
            let moved =
                old.is_none_or(|o| o.path != remote.path || o.state != ItemState::Imported || seen_again(o));
            if moved {
                let item = self.item_from(remote, old, ItemState::Imported, listing);
                self.record(ctx, old, item, RunCounters::default(), None).await?;
            }
            return Ok(());
        }
        let scanned = RunCounters { scanned: 1, ..Default::default() };
        let skip_reason = if remote.size.unwrap_or(0) > ctx.conn.filters.max_file_size {
            Some("too_large")
        } else if !remote.downloadable {
            Some("not_downloadable")
        } else {
            None
        };
        if let Some(reason) = skip_reason {
            let same = old.is_some_and(|o| {
                o.state == ItemState::Skipped && o.revision == remote.revision && !seen_again(o)
            });
            if !same {
                let mut item = self.item_from(remote, old, ItemState::Skipped, listing);
                item.reason = Some(reason.into());
                self.record(ctx, old, item, RunCounters { skipped: 1, ..scanned }, None).await?;
            }
            return Ok(());
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
                if o.path != remote.path || o.name != remote.name || o.state == ItemState::SourceDeleted =>
            {
                let item = self.item_from(remote, old, ItemState::Imported, listing);
                self.record(ctx, old, item, scanned, Some(AssetEventKind::MetadataUpdated)).await
            }
            Some(o) if seen_again(o) => {
                let item = self.item_from(remote, old, ItemState::Imported, listing);
                self.record(ctx, old, item, scanned, None).await
            }
            Some(_) => Ok(()),
            None => self.import(ctx, remote, old, listing).await,
        }
    }

    async fn apply_delete(
        &self,
        ctx: &mut RunCtx,
        id: Option<&str>,
        path_lower: Option<&str>,
        upserted: &HashSet<&str>,
    ) -> Result<(), Stop> {
        let key = ctx.fence.conn.clone();
        if path_lower.is_some_and(|p| p == ctx.conn.folder_path.to_lowercase())
            || id == Some(ctx.conn.folder.folder_id.as_str())
        {
            // The connected folder's own path went away: deleted, or renamed/moved (a rename is
            // reported as a deletion of the old path). Ask by id which one it is.
            let provider = self.provider(ctx)?;
            let folder = ctx.conn.folder.clone();
            let found = self
                .call(ctx, |access| {
                    let (p, f) = (provider.clone(), folder.clone());
                    async move { p.folder(&access, &f).await }
                })
                .await?;
            return match found {
                Ok(entry) => {
                    ctx.conn.folder_name = entry.name.clone();
                    ctx.conn.folder_path = entry.path.clone();
                    ctx.conn_rename = Some((entry.name, entry.path));
                    Ok(())
                }
                Err(ProviderError::NotFound) => Err(Stop::FolderGone),
                Err(e) => Err(Stop::Error(EngineError::Provider(e))),
            };
        }
        let victims = match (id, path_lower) {
            (Some(id), _) => self.ports.items.get(&key, id).await?.into_iter().collect(),
            (None, Some(p)) => self.ports.items.by_path_prefix(&key, p).await?,
            (None, None) => Vec::new(),
        };
        for old in victims {
            if old.state == ItemState::SourceDeleted || upserted.contains(old.provider_id.as_str()) {
                continue;
            }
            self.mark_deleted(ctx, &old).await?;
        }
        Ok(())
    }

    /// The source no longer has it: the item is `source_deleted`, the asset is kept.
    pub(crate) async fn mark_deleted(&self, ctx: &RunCtx, old: &Item) -> Result<(), Stop> {
        let mut item = old.clone();
        item.state = ItemState::SourceDeleted;
        item.reason = Some("deleted_at_source".into());
        item.updated_at = self.ports.clock.now();
        let counted = !old.is_folder && old.asset_key.is_some();
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
                if old.state != ItemState::SourceDeleted && old.seen_in.as_deref() != Some(listing) {
                    self.mark_deleted(ctx, &old).await?;
                }
            }
        }
    }
}
