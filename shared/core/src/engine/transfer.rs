//! One file: provider download → asset sink, hashed while streaming, then the item record.
//! Memory is bounded per transfer by the connector's chunk size and the sink's own buffer
//! (S3: up to three parts): each chunk goes to the sink before the next is read. Several
//! files run at once (`batch.rs`), each through this path, sharing the step's context
//! read-only (the access token, the heartbeat and the sink failure count are shared cells).
//!
//! Every way one file can go wrong ends as that item's outcome, never the run's: the provider
//! refusing or losing it, bytes that do not match the provider's hash, the sink refusing the
//! object, the store refusing the record, the invocation running out of time mid-transfer.
//! Each has a stable reason code (`ProviderError::reason_code`, `sink_error`,
//! `store_rejected`, `transfer_deadline`).

use std::sync::atomic::Ordering;

use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::apply::Placement;
use super::{Engine, EngineError, RunCtx, Step, Stop};
use crate::domain::{AssetEventKind, Item, ItemState, RunCounters, asset_key, content_type_for, retry_delay};
use crate::ports::{
    AssetMeta, CommitOutcome, Download, DownloadRequest, ProviderError, RateScope, RemoteItem, SinkError,
};

/// Attempts per file within one run (a failed file is retried by later runs too).
const DOWNLOAD_ATTEMPTS: u32 = 3;

struct Stored {
    item: RemoteItem,
    key: String,
    /// The connector kept bytes that differ from the listing's (see `Download::warning`).
    warning: Option<String>,
}

/// Why one file was not stored this time.
#[derive(Debug)]
pub(crate) enum FileFailure {
    Provider(ProviderError),
    /// The sink refused or failed the object.
    Sink(SinkError),
    /// The invocation's time ran out mid-transfer.
    Deadline,
}

impl FileFailure {
    fn code(&self) -> &'static str {
        match self {
            Self::Provider(e) => e.reason_code(),
            Self::Sink(SinkError::Integrity { .. }) => "hash_mismatch",
            Self::Sink(_) => "sink_error",
            Self::Deadline => "transfer_deadline",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Provider(e) => e.to_string(),
            Self::Sink(e) => e.to_string(),
            Self::Deadline => "the transfer could not finish before the invocation's deadline".into(),
        }
    }
}

impl Engine {
    pub(crate) async fn import(
        &self,
        ctx: &RunCtx,
        remote: &RemoteItem,
        at: &Placement,
        old: Option<&Item>,
        listing: Option<&str>,
    ) -> Result<(), Stop> {
        let provider = self.provider(ctx)?;
        let mut last = FileFailure::Provider(ProviderError::Transient("not attempted".into()));
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
                Err(ProviderError::Config(reason)) => return Err(Stop::Config(reason)),
                Err(e) => Err(FileFailure::Provider(e)),
            };
            match outcome {
                Ok(stored) => {
                    ctx.sink_failures.store(0, Ordering::Relaxed);
                    return self.record_imported(ctx, at, old, stored, listing).await;
                }
                Err(FileFailure::Provider(ProviderError::NotFound)) => {
                    return self.record_gone(ctx, remote, at, old, listing).await;
                }
                Err(FileFailure::Provider(ProviderError::NotImportable { reason })) => {
                    return self.record_skipped(ctx, remote, at, old, listing, reason, None).await;
                }
                Err(FileFailure::Provider(e @ ProviderError::Permanent(_))) => {
                    // A file the provider will never serve (Dropbox `restricted_content`, …).
                    let detail = Some(e.to_string());
                    return self
                        .record_skipped(ctx, remote, at, old, listing, e.reason_code().into(), detail)
                        .await;
                }
                Err(FileFailure::Deadline) => {
                    // Tried once more at the start of the next invocation, with all its time;
                    // cut again, it waits for the backoff like any failure.
                    let again = old.is_some_and(|o| {
                        o.state == ItemState::Failed && o.reason.as_deref() == Some("transfer_deadline")
                    });
                    self.record_failed(ctx, remote, at, old, listing, &FileFailure::Deadline, !again).await?;
                    return Err(Stop::Deadline);
                }
                Err(FileFailure::Sink(e @ SinkError::Unavailable(_))) => {
                    // In a row = in the order outcomes become known (any file stored resets).
                    let in_a_row = ctx.sink_failures.fetch_add(1, Ordering::Relaxed) + 1;
                    if in_a_row >= self.config.max_sink_failures {
                        // Several files in a row: the sink is down, not this file.
                        return Err(Stop::Error(EngineError::Sink(e.to_string())));
                    }
                    tracing::warn!(item = %remote.id, error = %e, "asset sink failed this file");
                    last = FileFailure::Sink(e);
                    break;
                }
                Err(FileFailure::Provider(e @ ProviderError::RateLimited { scope: RateScope::File, .. })) => {
                    // The file's own quota (Drive's `downloadQuotaExceeded`): another try now
                    // would only be refused again; it waits for its backoff.
                    last = FileFailure::Provider(e);
                    break;
                }
                Err(FileFailure::Provider(e)) if e.is_retryable() => {
                    tracing::warn!(item = %remote.id, error = %e, "download failed; retrying");
                    last = FileFailure::Provider(e);
                }
                Err(e) => {
                    last = e;
                    break;
                }
            }
        }
        self.record_failed(ctx, remote, at, old, listing, &last, false).await
    }

    /// Streams one download into the sink. `Ok(Err(_))`: this file failed and nothing was
    /// kept; `Err(stop)`: the run step must end. Each chunk is awaited for at most the time
    /// left, so a stalled or slow transfer cannot carry the invocation past its deadline.
    async fn store(
        &self,
        ctx: &RunCtx,
        mut d: Download,
        at: &Placement,
    ) -> Result<Result<Stored, FileFailure>, Stop> {
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
            original_name: d.file_name.clone().unwrap_or_else(|| served.name.clone()),
            source_path: at.path.clone(),
            provider: ctx.conn.provider,
            provider_id: served.id.clone(),
            content_version: version,
            provider_hash: served.content_hash.clone(),
        };
        let mut upload = match self.ports.sink.begin(&key, &meta).await {
            Ok(u) => u,
            Err(e) => return Ok(Err(FileFailure::Sink(e))),
        };
        let mut sha = Sha256::new();
        // The slowest chunk so far: a chunk is not started when it would likely end past the
        // margin line, so the step keeps its whole margin for the records it still writes.
        let mut slowest = std::time::Duration::ZERO;
        loop {
            let left = self.time_left(ctx);
            let started = self.ports.clock.now();
            let next = if left.is_zero() || left <= slowest {
                Err(())
            } else {
                tokio::time::timeout(left, d.stream.next()).await.map_err(|_| ())
            };
            slowest = slowest.max((self.ports.clock.now() - started).to_std().unwrap_or_default());
            let chunk = match next {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(()) => {
                    upload.abort().await;
                    return Ok(Err(FileFailure::Deadline));
                }
            };
            match chunk {
                Ok(bytes) => {
                    sha.update(&bytes);
                    if let Err(e) = upload.write(bytes).await {
                        upload.abort().await;
                        return Ok(Err(FileFailure::Sink(e)));
                    }
                    if let Err(stop) = self.heartbeat(ctx).await {
                        upload.abort().await;
                        return Err(stop);
                    }
                }
                Err(e) => {
                    upload.abort().await;
                    return Ok(Err(FileFailure::Provider(e)));
                }
            }
        }
        let warning = d.warning.get().map(str::to_owned);
        drop(d);
        match upload.commit(&hex::encode(sha.finalize())).await {
            Ok(CommitOutcome::Created | CommitOutcome::AlreadyExists) => {}
            Err(e @ SinkError::Integrity { .. }) => {
                return Ok(Err(FileFailure::Provider(ProviderError::Integrity(e.to_string()))));
            }
            Err(e) => return Ok(Err(FileFailure::Sink(e))),
        }
        self.hook(Step::SinkCommitted)?;
        Ok(Ok(Stored { item: served, key, warning }))
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
        // A new asset: its own warning, or none.
        if let Some(w) = &s.warning {
            tracing::warn!(item = %s.item.id, warning = %w, "imported with a warning");
        }
        item.warning = s.warning;
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
    #[allow(clippy::too_many_arguments)]
    async fn record_skipped(
        &self,
        ctx: &RunCtx,
        remote: &RemoteItem,
        at: &Placement,
        old: Option<&Item>,
        listing: Option<&str>,
        reason: String,
        detail: Option<String>,
    ) -> Result<(), Stop> {
        let mut item = self.item_from(remote, at, old, ItemState::Skipped, listing);
        item.reason = Some(reason);
        item.error = detail;
        let run_delta = RunCounters { scanned: 1, skipped: 1, ..Default::default() };
        self.record(ctx, old, item, run_delta, None).await
    }

    /// `failed` with the failure's reason code, to be tried again after the backoff (or at
    /// once, `retry_now`: the next invocation's first try).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn record_failed(
        &self,
        ctx: &RunCtx,
        remote: &RemoteItem,
        at: &Placement,
        old: Option<&Item>,
        listing: Option<&str>,
        failure: &FileFailure,
        retry_now: bool,
    ) -> Result<(), Stop> {
        let now = self.ports.clock.now();
        let mut item = self.item_from(remote, at, old, ItemState::Failed, listing);
        let run_delta = mark_failed(&mut item, old, ctx, failure.code(), failure.detail(), now, retry_now);
        tracing::warn!(item = %remote.id, reason = failure.code(), error = %failure.detail(), attempts = item.attempts, "file not imported");
        self.record(ctx, old, item, run_delta, None).await
    }
}

/// Makes `item` `failed` with `reason` in this run: one more attempt, the next one after the
/// backoff (or at once, `retry_now`). Returns the run's counters for it: a file fails a run
/// once, however many invocations tried it.
pub(crate) fn mark_failed(
    item: &mut Item,
    old: Option<&Item>,
    ctx: &RunCtx,
    reason: &str,
    error: String,
    now: crate::domain::Timestamp,
    retry_now: bool,
) -> RunCounters {
    let was_failed = old.filter(|o| o.state == ItemState::Failed);
    item.state = ItemState::Failed;
    item.reason = Some(reason.into());
    item.error = Some(error);
    item.attempts = was_failed.map_or(0, |o| o.attempts) + 1;
    item.next_attempt_at = Some(if retry_now { now } else { now + retry_delay(item.attempts) });
    item.failed_in = Some(ctx.run_id.clone());
    let counted = was_failed.is_some_and(|o| o.failed_in.as_ref() == Some(&ctx.run_id));
    RunCounters { scanned: 1, failed: u64::from(!counted), ..Default::default() }
}
