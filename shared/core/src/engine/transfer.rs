//! One file: provider download → asset sink, hashed while streaming, then the item record.
//! Memory is bounded per transfer by the connector's chunk size, the sink's own buffer (S3:
//! the part being filled) and, for a large file, the bounded queues of the connector's
//! read-ahead (4 chunks) and of its writing stage (`lane.rs`: 8 chunks), which run beside the
//! hash. Several
//! files run at once (`batch.rs`), each through this path, sharing the step's context
//! read-only (the access token, the heartbeat and the sink failure count are shared cells).
//!
//! Every way one file can go wrong ends as that item's outcome, never the run's: the provider
//! refusing or losing it, bytes that do not match the provider's hash, the sink refusing the
//! object, the store refusing the record, the invocation running out of time mid-transfer.
//! Each has a stable reason code (`ProviderError::reason_code`, `sink_error`,
//! `store_rejected`, `transfer_deadline`, `transfer_restarted`).
//!
//! A transfer cut by the deadline, or by a stream that broke mid-file, is suspended rather
//! than lost (ARCHITECTURE §7 "Large files"): the sink keeps a durable prefix, a multiple of
//! its granule, and the engine records with it its CRC state there (its own marks, taken as
//! the bytes pass each granule) and the provider hash's state there (the verifier's marks,
//! [`HashMarks`]). The next try — the next invocation for a deadline, the next attempt for a
//! broken stream — resumes the upload and asks for the rest with the hash state, so the whole
//! file is still verified. Anything that makes the kept bytes doubtful (another version served,
//! the upload gone, the whole-file hash failing) drops them and starts over from byte 0.

use std::sync::atomic::Ordering;

use futures::StreamExt;

use super::apply::Placement;
use super::lane::{SinkLane, Summed};
use super::{Engine, EngineError, RunCtx, Step, Stop};
use crate::domain::{
    AssetEventKind, Item, ItemState, PartialTransfer, RunCounters, asset_key, content_type_for, retry_delay,
};
use crate::midstate::Crc64;
use crate::ports::{
    AssetMeta, CommitOutcome, Download, DownloadRequest, HashMarks, ObjectDigest, ProviderError, RateScope,
    RemoteItem, SinkError,
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
    /// A resumed transfer cannot continue (the file changed, the sink lost the upload): it
    /// starts over.
    Restart(String),
}

/// How [`Engine::store`] ended.
enum Ended {
    Stored(Stored),
    /// Nothing was kept.
    Failed(FileFailure),
    /// Cut (the deadline, a broken stream) with a durable prefix kept, of the item as served.
    Suspended(FileFailure, PartialTransfer, RemoteItem),
}

/// The reason of a file whose transfer continues in the next invocation.
pub(crate) const RESUMING: &str = "transfer_resuming";

/// Whether the last try of `old` was cut by a deadline with nothing gained: the next cut waits
/// for the backoff instead of being tried again at once.
fn cut_before(old: Option<&Item>) -> bool {
    old.is_some_and(|o| o.state == ItemState::Failed && o.reason.as_deref() == Some("transfer_deadline"))
}

/// Whether a suspended transfer is of the content `remote` lists.
fn continues(t: &PartialTransfer, remote: &RemoteItem) -> bool {
    remote.content_version() == Some(t.version.as_str()) && remote.size.is_some()
}

impl FileFailure {
    fn code(&self) -> &'static str {
        match self {
            Self::Provider(e) => e.reason_code(),
            Self::Sink(SinkError::Integrity { .. }) => "hash_mismatch",
            Self::Sink(_) => "sink_error",
            Self::Deadline => "transfer_deadline",
            Self::Restart(_) => "transfer_restarted",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Provider(e) => e.to_string(),
            Self::Sink(e) => e.to_string(),
            Self::Deadline => "the transfer could not finish before the invocation's deadline".into(),
            Self::Restart(why) => why.clone(),
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
        // A transfer an earlier invocation cut is continued if the listing still shows the
        // content it began; once resumed or dropped, it is no longer the record's.
        let mut resume = old.and_then(|o| o.transfer.clone());
        if let Some(t) = resume.take_if(|t| !continues(t, remote)) {
            self.ports.sink.discard(&t.key, &t.sink).await;
        }
        let plain = old.map(|o| Item { transfer: None, ..o.clone() });
        let old = plain.as_ref();
        let mark_every = self.ports.sink.granule(remote.size).unwrap_or(0);
        let mut last = FileFailure::Provider(ProviderError::Transient("not attempted".into()));
        for _ in 0..DOWNLOAD_ATTEMPTS {
            let from = resume.take();
            let req = DownloadRequest {
                offset: from.as_ref().map_or(0, |t| t.sink.offset),
                hash_state: from
                    .as_ref()
                    .and_then(|t| t.provider_hash.as_deref())
                    .and_then(|h| hex::decode(h).ok()),
                mark_every,
                ..DownloadRequest::whole(remote)
            };
            let p = provider.clone();
            let download = self
                .call(ctx, |access| {
                    let (p, r) = (p.clone(), req.clone());
                    async move { p.download(&access, &r).await }
                })
                .await?;
            let ended = match download {
                Ok(d) => {
                    self.hook(Step::DownloadStarted)?;
                    self.store(ctx, d, at, from.as_ref()).await?
                }
                Err(ProviderError::Config(reason)) => return Err(Stop::Config(reason)),
                Err(e) => {
                    // Nothing was resumed: the suspended upload is still there to retry.
                    if e.is_retryable() {
                        resume = from.clone();
                    } else if let Some(t) = &from {
                        self.ports.sink.discard(&t.key, &t.sink).await;
                    }
                    Ended::Failed(FileFailure::Provider(e))
                }
            };
            let failure = match ended {
                Ended::Stored(stored) => {
                    ctx.sink_failures.store(0, Ordering::Relaxed);
                    return self.record_imported(ctx, at, old, stored, listing).await;
                }
                Ended::Suspended(FileFailure::Deadline, t, served) => {
                    // Recorded as served: the version the kept bytes are of, which the next
                    // try's retry pass then continues.
                    // Progress is judged against where this attempt started.
                    let started = from.as_ref().map_or(0, |f| f.sink.offset);
                    return self.record_cut(ctx, &served, at, old, listing, t, started).await;
                }
                Ended::Suspended(failure, t, _) => {
                    // A stream that broke mid-file: the next attempt continues where it broke.
                    tracing::warn!(item = %remote.id, error = %failure.detail(), offset = t.sink.offset, "download broke; resuming");
                    resume = Some(t);
                    last = failure;
                    continue;
                }
                Ended::Failed(f) => f,
            };
            if from.is_some()
                && resume.is_none()
                && matches!(
                    failure,
                    FileFailure::Restart(_) | FileFailure::Provider(ProviderError::Integrity(_))
                )
            {
                // The resumed bytes cannot be trusted or continued: start over from byte 0.
                tracing::warn!(item = %remote.id, error = %failure.detail(), "resumed transfer dropped; starting over");
                last = failure;
                continue;
            }
            match failure {
                FileFailure::Provider(ProviderError::NotFound) => {
                    return self.record_gone(ctx, remote, at, old, listing).await;
                }
                FileFailure::Provider(ProviderError::NotImportable { reason }) => {
                    return self.record_skipped(ctx, remote, at, old, listing, reason, None).await;
                }
                FileFailure::Provider(e @ ProviderError::Permanent(_)) => {
                    // A file the provider will never serve (Dropbox `restricted_content`, …).
                    let detail = Some(e.to_string());
                    return self
                        .record_skipped(ctx, remote, at, old, listing, e.reason_code().into(), detail)
                        .await;
                }
                FileFailure::Deadline => {
                    // Nothing could be kept (a file smaller than the sink's granule, or a sink
                    // that cannot suspend): tried again from zero at the start of the next
                    // invocation, with all its time; cut again, it waits for the backoff.
                    let again = cut_before(old);
                    self.record_failed(ctx, remote, at, old, listing, &FileFailure::Deadline, !again, None)
                        .await?;
                    return Err(Stop::Deadline);
                }
                FileFailure::Sink(e @ SinkError::Unavailable(_)) => {
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
                FileFailure::Provider(e @ ProviderError::RateLimited { scope: RateScope::File, .. }) => {
                    // The file's own quota (Drive's `downloadQuotaExceeded`): another try now
                    // would only be refused again; it waits for its backoff.
                    last = FileFailure::Provider(e);
                    break;
                }
                FileFailure::Provider(e) if e.is_retryable() => {
                    tracing::warn!(item = %remote.id, error = %e, "download failed; retrying");
                    last = FileFailure::Provider(e);
                }
                e => {
                    last = e;
                    break;
                }
            }
        }
        // Out of attempts: a transfer that was kept goes with the record, for the next try.
        let kept = resume.take();
        self.record_failed(ctx, remote, at, old, listing, &last, false, kept).await
    }

    /// A transfer the deadline cut with a durable prefix kept. Progress since the attempt began
    /// (at `started` bytes): the next invocation continues it first (`failed: transfer_resuming`, due now, counted
    /// nowhere as a failure). None: `failed: transfer_deadline`, as a transfer that kept
    /// nothing, still holding its state for the try after the backoff. Either way the step ends.
    #[allow(clippy::too_many_arguments)]
    async fn record_cut(
        &self,
        ctx: &RunCtx,
        remote: &RemoteItem,
        at: &Placement,
        old: Option<&Item>,
        listing: Option<&str>,
        t: PartialTransfer,
        started: u64,
    ) -> Result<(), Stop> {
        if t.sink.offset <= started {
            let again = cut_before(old);
            self.record_failed(ctx, remote, at, old, listing, &FileFailure::Deadline, !again, Some(t))
                .await?;
            return Err(Stop::Deadline);
        }
        let now = self.ports.clock.now();
        let mut item = self.item_from(remote, at, old, ItemState::Failed, listing);
        item.reason = Some(RESUMING.into());
        item.error = Some(format!(
            "{} of {} bytes stored; the next invocation continues from there",
            t.sink.offset,
            remote.size.map_or_else(|| "?".to_owned(), |s| s.to_string())
        ));
        item.attempts = old.filter(|o| o.state == ItemState::Failed).map_or(0, |o| o.attempts);
        item.next_attempt_at = Some(now);
        item.failed_in = old.and_then(|o| o.failed_in.clone());
        tracing::info!(item = %remote.id, offset = t.sink.offset, resumes = t.resumes, "transfer suspended at the deadline");
        item.transfer = Some(t);
        self.record(ctx, old, item, RunCounters::default(), None).await?;
        Err(Stop::Deadline)
    }

    /// Streams one download into the sink, from the start or continuing `from`. Each chunk is
    /// awaited for at most the time left, so a stalled or slow transfer cannot carry the
    /// invocation past its deadline; cut there, or broken by a retryable stream error, the
    /// upload is suspended when the sink can keep a durable prefix. `Err(stop)`: the run step
    /// must end. A resumed upload that is not suspended or committed is gone (aborted).
    async fn store(
        &self,
        ctx: &RunCtx,
        mut d: Download,
        at: &Placement,
        from: Option<&PartialTransfer>,
    ) -> Result<Ended, Stop> {
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
            content_version: version.clone(),
            provider_hash: served.content_hash.clone(),
        };
        let (upload, crc, pos) = match from {
            None => match self.ports.sink.begin(&key, &meta).await {
                Ok(u) => (u, Crc64::new(), 0),
                Err(e) => return Ok(Ended::Failed(FileFailure::Sink(e))),
            },
            Some(t) => {
                let restart = |why: &str| {
                    Ok(Ended::Failed(FileFailure::Restart(format!("the transfer cannot continue: {why}"))))
                };
                if version != t.version || key != t.key || served.size.is_none() {
                    self.ports.sink.discard(&t.key, &t.sink).await;
                    return restart("the file changed since it began");
                }
                let Some(crc) = t.crc64 else {
                    // A checkpoint from before the engine kept a CRC.
                    self.ports.sink.discard(&t.key, &t.sink).await;
                    return restart("its checksum state is missing");
                };
                match self.ports.sink.resume(&key, &meta, &t.sink).await {
                    Ok(u) => (u, Crc64::resume(crc), t.sink.offset),
                    Err(e) => {
                        self.ports.sink.discard(&t.key, &t.sink).await;
                        return restart(&e.to_string());
                    }
                }
            }
        };
        // CRC states at the sink's granule, for a suspend; a resumed transfer starts with its
        // own offset marked (a suspend that kept nothing new keeps what it had).
        let every = self.ports.sink.granule(served.size).unwrap_or(0);
        let mut summed = Summed::start(crc, pos, every);
        let mut sink = SinkLane::start(upload, served.size.map(|s| s.saturating_sub(pos)));
        if let Some(t) = from
            && let Some(h) = t.provider_hash.as_deref().and_then(|h| hex::decode(h).ok())
        {
            d.marks.record(t.sink.offset, h);
        }
        // The slowest chunk so far: a chunk is not started when it would likely end past the
        // margin line, so the step keeps its whole margin for the records it still writes.
        let mut slowest = std::time::Duration::ZERO;
        let cut = loop {
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
                Ok(None) => break None,
                Err(()) => break Some(FileFailure::Deadline),
            };
            match chunk {
                Ok(bytes) => {
                    summed.feed(&bytes);
                    if sink.write(bytes).await.is_err() {
                        // `finish` below has the sink's own error.
                        break None;
                    }
                    if let Err(stop) = self.heartbeat(ctx).await {
                        if let (Some(upload), _) = sink.finish().await {
                            upload.abort().await;
                        }
                        return Err(stop);
                    }
                }
                // Bytes that fail their check are not kept, not even a prefix of them.
                Err(e) if e.is_retryable() && !matches!(e, ProviderError::Integrity(_)) => {
                    break Some(FileFailure::Provider(e));
                }
                Err(e) => {
                    if let (Some(upload), _) = sink.finish().await {
                        upload.abort().await;
                    }
                    return Ok(Ended::Failed(FileFailure::Provider(e)));
                }
            }
        };
        // Everything read is written (or the sink failed), and hashed.
        let (upload, written) = sink.finish().await;
        let upload = match (upload, written) {
            (Some(upload), Ok(())) => upload,
            (upload, written) => {
                if let Some(upload) = upload {
                    upload.abort().await;
                }
                let e = written.err().unwrap_or_else(|| SinkError::Unavailable("the upload was lost".into()));
                return Ok(Ended::Failed(FileFailure::Sink(e)));
            }
        };
        if let Some(failure) = cut {
            let resumes = from.map_or(0, |t| t.resumes + 1);
            return Ok(match self.suspend(upload, &d.marks, &summed, version, key, resumes).await {
                Some(t) => Ended::Suspended(failure, t, served),
                None => Ended::Failed(failure),
            });
        }
        let warning = d.warning.get().map(str::to_owned);
        drop(d);
        match upload.commit(&ObjectDigest { crc64: summed.crc.value() }).await {
            Ok(CommitOutcome::Created | CommitOutcome::AlreadyExists) => {}
            Err(e @ SinkError::Integrity { .. }) => {
                return Ok(Ended::Failed(FileFailure::Provider(ProviderError::Integrity(e.to_string()))));
            }
            Err(e) => return Ok(Ended::Failed(FileFailure::Sink(e))),
        }
        self.hook(Step::SinkCommitted)?;
        Ok(Ended::Stored(Stored { item: served, key, warning }))
    }

    /// Suspends `upload` and gathers what continues it: the sink's durable offset with the
    /// CRC state there and, when the connector verifies a hash, that hash's state there.
    /// `None` when any is missing (the upload is then dropped).
    async fn suspend(
        &self,
        upload: Box<dyn crate::ports::AssetUpload>,
        provider_marks: &HashMarks,
        summed: &Summed,
        version: String,
        key: String,
        resumes: u32,
    ) -> Option<PartialTransfer> {
        // In-flight parts get a third of the margin the step keeps for its records.
        let sink = upload.suspend(self.config.deadline_margin / 3).await?;
        // `None`: a verified hash has no state at the offset.
        let provider_hash = match provider_marks.verifies() {
            true => provider_marks.at(sink.offset).map(|h| Some(hex::encode(h))),
            false => Some(None),
        };
        match (summed.at(sink.offset), provider_hash) {
            (Some(crc), Some(provider_hash)) => {
                Some(PartialTransfer { version, key, sink, crc64: Some(crc), provider_hash, resumes })
            }
            _ => {
                self.ports.sink.discard(&key, &sink).await;
                None
            }
        }
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
    /// once, `retry_now`: the next invocation's first try), keeping `kept`: a suspended
    /// transfer the next try continues.
    #[allow(clippy::too_many_arguments)]
    async fn record_failed(
        &self,
        ctx: &RunCtx,
        remote: &RemoteItem,
        at: &Placement,
        old: Option<&Item>,
        listing: Option<&str>,
        failure: &FileFailure,
        retry_now: bool,
        kept: Option<PartialTransfer>,
    ) -> Result<(), Stop> {
        let now = self.ports.clock.now();
        let mut item = self.item_from(remote, at, old, ItemState::Failed, listing);
        let run_delta = mark_failed(&mut item, old, ctx, failure.code(), failure.detail(), now, retry_now);
        item.transfer = kept;
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
