//! Scope by ancestry (ARCHITECTURE §7 "Scope"): which items belong to the connection.
//!
//! The item store holds the connected folder's tree: the root (the connected folder itself)
//! and every live item under it, each with its parent id, and a children index. Invariant: a
//! live folder in the store is inside the tree. So an item is in scope when one of its parents
//! is the root or a live stored folder; a parent the store does not know is resolved with
//! `item(id)` at the provider, walking up until the root (in) or the top of the drive (out),
//! and every answer is cached for the run. Where items carry paths instead of parent ids
//! (Dropbox), the parent is found through the path index.

use std::collections::VecDeque;

use super::{Engine, RunCtx, Stop};
use crate::domain::{FolderLocator, Item, path_key};
use crate::ports::{FeedScope, ProviderError, RemoteItem};

/// How far up an unknown parent chain is walked before giving up (out of scope). Real trees
/// are far shallower; the bound only protects against a cyclic answer.
const MAX_DEPTH: usize = 64;

/// Children index page size for subtree walks.
const CHILDREN_PAGE: usize = 200;

impl Engine {
    /// Every live child of `folder`, read through the children index page by page.
    pub(crate) async fn children_of(&self, ctx: &RunCtx, folder: &str) -> Result<Vec<Item>, Stop> {
        let mut out = Vec::new();
        loop {
            let after = out.last().map(|c: &Item| c.provider_id.clone());
            let page =
                self.ports.items.children(&ctx.fence.conn, folder, after.as_deref(), CHILDREN_PAGE).await?;
            let full = page.len() == CHILDREN_PAGE;
            out.extend(page);
            if !full {
                return Ok(out);
            }
        }
    }

    pub(crate) fn root_id<'a>(&self, ctx: &'a RunCtx) -> &'a str {
        &ctx.conn.folder.folder_id
    }

    /// The parent this item hangs from in the tree: its reported parent, or, for providers
    /// whose items carry paths only, the live folder stored at its parent path.
    pub(crate) async fn parent_of(
        &self,
        ctx: &mut RunCtx,
        remote: &RemoteItem,
    ) -> Result<Option<String>, Stop> {
        if let Some(p) = remote.parent_ids.first() {
            if remote.parent_ids.len() == 1 {
                return Ok(Some(p.clone()));
            }
            // Several parents (legacy Drive): the one inside the tree, if any.
            for p in &remote.parent_ids {
                if self.folder_in_scope(ctx, p).await? {
                    return Ok(Some(p.clone()));
                }
            }
            return Ok(Some(p.clone()));
        }
        let Some((parent_lower, _)) = remote.path_lower.as_deref().and_then(|p| p.rsplit_once('/')) else {
            return Ok(None);
        };
        if let Some(hit) = ctx.parent_by_path.get(parent_lower) {
            return Ok(hit.clone());
        }
        let found = self
            .ports
            .items
            .by_path_key(&ctx.fence.conn, &path_key(parent_lower))
            .await?
            .into_iter()
            .find(|i| i.is_folder())
            .map(|i| i.provider_id);
        if found.is_none() {
            tracing::debug!(item = %remote.id, "no stored folder at the parent path");
        }
        ctx.parent_by_path.insert(parent_lower.to_owned(), found.clone());
        Ok(found)
    }

    /// Whether an upsert from the change feed belongs to the connection now. A folder-scoped
    /// feed only reports the connected folder's subtree; a drive-wide one is checked by
    /// ancestry.
    pub(crate) async fn in_scope(&self, ctx: &mut RunCtx, remote: &RemoteItem) -> Result<bool, Stop> {
        if remote.id == self.root_id(ctx) {
            return Ok(true);
        }
        if ctx.caps.feed_scope == FeedScope::Folder {
            return Ok(true);
        }
        let mut inside = false;
        for p in remote.parent_ids.clone() {
            if self.folder_in_scope(ctx, &p).await? {
                inside = true;
                break;
            }
        }
        if remote.is_folder() {
            // Its own answer for the rest of the run: its children need no provider call.
            ctx.scope_cache.insert(remote.id.clone(), inside);
        }
        Ok(inside)
    }

    /// Whether folder `id` is the root or lies under it.
    pub(crate) async fn folder_in_scope(&self, ctx: &mut RunCtx, id: &str) -> Result<bool, Stop> {
        let mut chain: Vec<String> = Vec::new();
        let mut frontier: VecDeque<String> = VecDeque::from([id.to_owned()]);
        let mut answer = false;
        while let Some(cur) = frontier.pop_front() {
            if chain.len() >= MAX_DEPTH {
                tracing::warn!(folder = %id, "parent chain too deep or cyclic: treated as out of scope");
                break;
            }
            if cur == self.root_id(ctx) {
                answer = true;
                break;
            }
            if let Some(&known) = ctx.scope_cache.get(&cur) {
                if known {
                    answer = true;
                    break;
                }
                continue;
            }
            if let Some(stored) = self.ports.items.get(&ctx.fence.conn, &cur).await? {
                let inside = stored.is_live() && stored.is_folder();
                ctx.scope_cache.insert(cur.clone(), inside);
                if inside {
                    answer = true;
                    break;
                }
                continue;
            }
            chain.push(cur.clone());
            match self.fetch_item(ctx, &cur).await? {
                Some(parent) => frontier.extend(parent.parent_ids),
                None => {
                    ctx.scope_cache.insert(cur, false);
                }
            }
        }
        for c in chain {
            ctx.scope_cache.entry(c).or_insert(answer);
        }
        Ok(answer)
    }

    /// `item(id)` at the provider; `None` when it is gone or not visible.
    async fn fetch_item(&self, ctx: &mut RunCtx, id: &str) -> Result<Option<RemoteItem>, Stop> {
        let provider = self.provider(ctx)?;
        let loc = FolderLocator { folder_id: id.to_owned(), drive_id: ctx.conn.folder.drive_id.clone() };
        let found = self
            .call(ctx, |access| {
                let (p, l) = (provider.clone(), loc.clone());
                async move { p.item(&access, &l).await }
            })
            .await?;
        match found {
            Ok(item) => Ok(Some(item)),
            // A parent this account cannot see is outside whatever it connected.
            Err(ProviderError::NotFound | ProviderError::Forbidden(_)) => Ok(None),
            Err(e) => Err(ctx.listing_failed(e)),
        }
    }

    /// Marks `top` and every live item under it `source_deleted` (a folder deleted or moved
    /// out takes its subtree with it), through the children index. Post-order: a folder is
    /// marked only after everything under it, so a crash at any point leaves no live item under
    /// a deleted folder, and the redelivered step (which finds `top` still live) finishes it.
    pub(crate) async fn delete_subtree(&self, ctx: &mut RunCtx, top: &Item) -> Result<(), Stop> {
        // Files waiting to be transferred may be in the subtree: recorded first (`batch.rs`).
        self.settle(ctx).await?;
        let mut stack: Vec<(Item, bool)> = vec![(top.clone(), false)];
        while let Some((item, expanded)) = stack.pop() {
            if item.is_folder() && !expanded {
                let children = self.children_of(ctx, &item.provider_id).await?;
                stack.push((item, true));
                stack.extend(children.into_iter().map(|c| (c, false)));
                continue;
            }
            self.heartbeat(ctx).await?;
            if item.is_folder() {
                ctx.scope_cache.insert(item.provider_id.clone(), false);
            }
            self.mark_deleted(ctx, &item).await?;
        }
        Ok(())
    }
}
