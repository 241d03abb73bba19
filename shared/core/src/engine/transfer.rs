//! One file: provider download → asset sink, hashed while streaming, then the item record.
//! Memory is bounded by the connector's chunk size: each chunk goes to the sink before the
//! next is read.

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::apply::Placement;
use super::{Engine, EngineError, RunCtx, Step, Stop};
use crate::domain::{AssetEventKind, Item, ItemState, RunCounters, asset_key, content_type_for};
use crate::ports::{
    AssetMeta, CommitOutcome, Download, DownloadRequest, ProviderError, RemoteItem, SinkError,
};

/// Attempts per file within one run (a failed file is retried by later runs too).
const DOWNLOAD_ATTEMPTS: u32 = 3;

struct Stored {
    item: RemoteItem,
    key: String,
}

impl Engine {
    pub(crate) async fn import(
        &self,
        ctx: &mut RunCtx,
        remote: &RemoteItem,
        at: &Placement,
        old: Option<&Item>,
        listing: Option<&str>,
    ) -> Result<(), Stop> {
        let provider = self.provider(ctx)?;
        let mut last_error = ProviderError::Transient("not attempted".into());
        for _ in 0..DOWNLOAD_ATTEMPTS {
            let p = provider.clone();
            let download = self
                .call(ctx, |access| {
                    let (p, r) = (p.clone(), DownloadRequest::whole(remote));
                    async move { p.download(&access, &r).await }
                })
                .await?;
            let outcome = match download {
                Ok(d) => {
                    self.hook(Step::DownloadStarted)?;
                    self.store(ctx, d, at).await?
                }
                Err(e) => Err(e),
            };
            match outcome {
                Ok(stored) => return self.record_imported(ctx, at, old, stored, listing).await,
                Err(ProviderError::NotFound) => return self.record_gone(ctx, remote, at, old, listing).await,
                Err(ProviderError::NotImportable { reason }) => {
                    return self.record_skipped(ctx, remote, at, old, listing, reason).await;
                }
                Err(e) if e.is_retryable() => {
                    tracing::warn!(item = %remote.id, error = %e, "download failed; retrying");
                    last_error = e;
                }
                Err(e) => {
                    last_error = e;
                    break;
                }
            }
        }
        self.record_failed(ctx, remote, at, old, listing, &last_error).await
    }

    /// Streams one download into the sink. `Ok(Err(_))`: this file failed and nothing was
    /// kept; `Err(stop)`: the run step must end.
    async fn store(
        &self,
        ctx: &mut RunCtx,
        mut d: Download,
        at: &Placement,
    ) -> Result<Result<Stored, ProviderError>, Stop> {
        let served = d.item.clone();
        let version = served.content_version().unwrap_or("unversioned").to_owned();
        let key = asset_key(&ctx.fence.conn, &served.id, &version);
        let meta = AssetMeta {
            content_type: d
                .content_type
                .clone()
                .filter(|c| c != "application/octet-stream")
                .or_else(|| served.mime_type.clone().filter(|c| c != "application/octet-stream"))
                .unwrap_or_else(|| content_type_for(&served.name).to_owned()),
            size: served.size,
            original_name: served.name.clone(),
            source_path: at.path.clone(),
            provider: ctx.conn.provider,
            provider_id: served.id.clone(),
            content_version: version,
            provider_hash: served.content_hash.clone(),
        };
        let sink_error = |e: SinkError| Stop::Error(EngineError::Sink(e.to_string()));
        let mut upload = self.ports.sink.begin(&key, &meta).await.map_err(sink_error)?;
        let mut sha = Sha256::new();
        while let Some(chunk) = d.stream.next().await {
            match chunk {
                Ok(bytes) => {
                    sha.update(&bytes);
                    if let Err(e) = upload.write(bytes).await {
                        upload.abort().await;
                        return Err(sink_error(e));
                    }
                    if let Err(stop) = self.heartbeat(ctx).await {
                        upload.abort().await;
                        return Err(stop);
                    }
                }
                Err(e) => {
                    upload.abort().await;
                    return Ok(Err(e));
                }
            }
        }
        drop(d);
        match upload.commit(&hex::encode(sha.finalize())).await {
            Ok(CommitOutcome::Created | CommitOutcome::AlreadyExists) => {}
            Err(e @ SinkError::Integrity { .. }) => return Ok(Err(ProviderError::Integrity(e.to_string()))),
            Err(e) => return Err(sink_error(e)),
        }
        self.hook(Step::SinkCommitted)?;
        Ok(Ok(Stored { item: served, key }))
    }

    async fn record_imported(
        &self,
        ctx: &RunCtx,
        at: &Placement,
        old: Option<&Item>,
        s: Stored,
        listing: Option<&str>,
    ) -> Result<(), Stop> {
        let mut item = self.item_from(&s.item, at, old, ItemState::Imported, listing);
        let updated = old.is_some_and(|o| o.asset_key.is_some());
        item.asset_key = Some(s.key);
        let bytes = s.item.size.unwrap_or(0);
        let run_delta = if updated {
            RunCounters { scanned: 1, updated: 1, bytes, ..Default::default() }
        } else {
            RunCounters { scanned: 1, imported: 1, bytes, ..Default::default() }
        };
        let kind = if updated { AssetEventKind::Updated } else { AssetEventKind::Imported };
        self.record(ctx, old, item, run_delta, Some(kind)).await
    }

    /// Gone between listing and download: deleted at the source (not a failure, not retried).
    async fn record_gone(
        &self,
        ctx: &RunCtx,
        remote: &RemoteItem,
        at: &Placement,
        old: Option<&Item>,
        listing: Option<&str>,
    ) -> Result<(), Stop> {
        match old {
            Some(o) if o.asset_key.is_some() => self.mark_deleted(ctx, o).await,
            _ => {
                let mut item = self.item_from(remote, at, old, ItemState::Skipped, listing);
                item.reason = Some("deleted_at_source".into());
                let run_delta = RunCounters { scanned: 1, skipped: 1, ..Default::default() };
                self.record(ctx, old, item, run_delta, None).await
            }
        }
    }

    /// The provider says this file cannot be imported as bytes: `skipped` with its reason,
    /// not retried (a later change of the file is a new chance).
    async fn record_skipped(
        &self,
        ctx: &RunCtx,
        remote: &RemoteItem,
        at: &Placement,
        old: Option<&Item>,
        listing: Option<&str>,
        reason: String,
    ) -> Result<(), Stop> {
        let mut item = self.item_from(remote, at, old, ItemState::Skipped, listing);
        item.reason = Some(reason);
        let run_delta = RunCounters { scanned: 1, skipped: 1, ..Default::default() };
        self.record(ctx, old, item, run_delta, None).await
    }

    async fn record_failed(
        &self,
        ctx: &RunCtx,
        remote: &RemoteItem,
        at: &Placement,
        old: Option<&Item>,
        listing: Option<&str>,
        error: &ProviderError,
    ) -> Result<(), Stop> {
        let permanent = !error.is_retryable();
        let state = if permanent { ItemState::Skipped } else { ItemState::Failed };
        let mut item = self.item_from(remote, at, old, state, listing);
        item.reason = Some(error.to_string());
        item.attempts = old.filter(|o| o.state == ItemState::Failed).map_or(0, |o| o.attempts) + 1;
        let run_delta = if permanent {
            RunCounters { scanned: 1, skipped: 1, ..Default::default() }
        } else {
            RunCounters { scanned: 1, failed: 1, ..Default::default() }
        };
        tracing::warn!(item = %remote.id, error = %error, "file not imported");
        self.record(ctx, old, item, run_delta, None).await
    }
}
