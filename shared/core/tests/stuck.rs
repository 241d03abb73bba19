//! No connection left stuck (ARCHITECTURE §7 "Per-file failures", "Configuration errors"), on
//! the in-memory [`FakeDrive`] connector and one virtual clock shared by the engine and the
//! connector (a throttled download advances it by each chunk's transfer time):
//!
//! - one file's failure (provider 403, the sink refusing it, bytes that never finish before the
//!   deadline) is that file's `failed` outcome with a stable reason, and the run goes on;
//! - a listing that keeps failing ends the run `failed` and the connection `error`, which stays
//!   due and returns to `active` after a successful run;
//! - the provider refusing our app (`invalid_client`) is a configuration error, never a
//!   `reauth_required`;
//! - failed files are retried with a backoff that never gives up, found through the failed-items
//!   index, and `retry-failed` retries them at once;
//! - the mass-delete guard holds a sync that would delete most files until an admin confirms;
//! - every status change is announced as a connection event.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use extconn_core::admin::Actor;
use extconn_core::connections::Connections;
use extconn_core::engine::{Crash, Engine, EngineConfig, Hooks, JobOutcome, Step};
use extconn_core::fake_drive::{DRIVE_ROOT, FakeDrive};
use extconn_core::ports::{Clock, ConnectionStore, GrantStore, ProviderError, RunStore};
use extconn_core::testkit::MemoryBench;
use extconn_core::tokens::{TokenPolicy, Tokens};
use extconn_core::{
    ClientId, ConnKey, ConnectionStatus, GrantStatus, Item, ItemState, Job, Ports, ProviderKind, RunStatus,
    Secret, Timestamp, TokenSet, Trigger, UserId,
};

const GIB: u64 = 1024 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;

struct Harness {
    drive: FakeDrive,
    bench: MemoryBench,
    ports: Ports,
    conn: ConnKey,
    root: String,
}

impl Harness {
    async fn new() -> Harness {
        Self::with_tokens(None).await
    }

    async fn with_tokens(expires_at: Option<Timestamp>) -> Harness {
        let drive = FakeDrive::new(100);
        let root = drive.add_folder(DRIVE_ROOT, "Connected");
        let bench = MemoryBench::new();
        let ports = bench.ports(vec![Arc::new(drive.clone())]);
        let tokens = TokenSet {
            access_token: Secret::new("fake-access"),
            refresh_token: Some(Secret::new("fake-refresh")),
            expires_at,
        };
        let grant = bench.grant(ProviderKind::GoogleDrive, "fake-account", &tokens).await;
        let conn = bench.connect(&grant, &root, "Connected").await;
        Harness { drive, bench, ports, conn, root }
    }

    fn engine(&self) -> Engine {
        Engine::new(self.ports.clone(), EngineConfig::default())
    }

    fn job(&self, trigger: Trigger) -> Job {
        Job {
            client_id: self.conn.client_id.clone(),
            connection_id: self.conn.connection_id.clone(),
            trigger,
            run_id: None,
            requested_by: None,
            continuation: false,
            purge: false,
        }
    }

    /// Runs `job` and every job it queues (continuations, after their delay on the virtual
    /// clock) until one finishes the run; each invocation gets `budget` before its deadline.
    /// Returns the final outcome and how many invocations it took.
    async fn run_to_end(&self, job: Job, budget: Duration) -> (JobOutcome, usize) {
        let engine = self.engine();
        let mut next = Some(job);
        let mut invocations = 0;
        while let Some(job) = next.take() {
            invocations += 1;
            assert!(invocations <= 20, "the run never ended");
            let deadline = self.bench.clock.now() + chrono::Duration::from_std(budget).expect("budget");
            let out = engine.run_job(&job, deadline).await.expect("sync step");
            match &out {
                JobOutcome::Continued { delay, .. } => {
                    let queued = self.bench.queue.drain();
                    assert_eq!(queued.len(), 1, "one continuation per step");
                    self.bench.clock.advance(*delay);
                    next = Some(queued.into_iter().next().expect("continuation").0);
                }
                _ => return (out, invocations),
            }
        }
        unreachable!()
    }

    async fn sync(&self) -> RunStatus {
        match self.run_to_end(self.job(Trigger::Schedule), Duration::from_secs(900)).await.0 {
            JobOutcome::Finished { status, .. } => status,
            other => panic!("the sync did not finish: {other:?}"),
        }
    }

    fn item(&self, id: &str) -> Item {
        self.items().into_iter().find(|i| i.provider_id == id).unwrap_or_else(|| panic!("no item {id}"))
    }

    fn items(&self) -> Vec<Item> {
        self.bench.store.all_items(&self.conn)
    }

    async fn connection(&self) -> extconn_core::Connection {
        ConnectionStore::get(self.bench.store.as_ref(), &self.conn).await.expect("store").expect("connection")
    }

    fn statuses_announced(&self) -> Vec<ConnectionStatus> {
        self.bench.events.connection_events().into_iter().map(|e| e.status).collect()
    }

    fn connections(&self) -> (Connections, Actor) {
        let tokens = Tokens::new(self.ports.clone(), TokenPolicy::default());
        let actor = Actor {
            client_id: ClientId::parse("acme").expect("client"),
            user_id: UserId::parse("ana").expect("user"),
            display_name: "Ana".into(),
        };
        (Connections::new(self.ports.clone(), tokens), actor)
    }

    /// Runs the jobs an admin's request queued.
    async fn run_queued(&self) -> JobOutcome {
        let mut queued = self.bench.queue.drain();
        assert_eq!(queued.len(), 1, "one job queued");
        self.run_to_end(queued.remove(0).0, Duration::from_secs(900)).await.0
    }
}

/// A 1 GiB file streaming at 3 MiB/s cannot finish in an invocation with a 60 s deadline, and
/// the sink cannot keep part of an upload: each invocation stops at least the margin before its
/// deadline, the file ends `failed: transfer_deadline`, the other files are imported, and the
/// run ends `partial` within 3 invocations.
#[tokio::test]
async fn a_file_that_cannot_finish_before_the_deadline_fails_alone() {
    let h = Harness::new().await;
    h.bench.sink.set_granule(0);
    let big = h.drive.add_large_file(&h.root, "a-huge.mov", GIB);
    let small: Vec<String> =
        (0..3).map(|i| h.drive.add_file(&h.root, &format!("small-{i}.txt"), b"hello")).collect();
    const RATE: u64 = 3 * 1024 * 1024;
    h.drive.throttle(h.bench.clock.clone(), RATE);
    let margin = EngineConfig::default().deadline_margin;
    let budget = Duration::from_secs(60);

    let engine = h.engine();
    let mut next = Some(h.job(Trigger::Schedule));
    let mut invocations = 0;
    let mut last = None;
    while let Some(job) = next.take() {
        invocations += 1;
        assert!(invocations <= 3, "the run did not end within 3 invocations");
        let deadline = h.bench.clock.now() + chrono::Duration::from_std(budget).unwrap();
        let out = engine.run_job(&job, deadline).await.expect("sync step");
        let left = (deadline - h.bench.clock.now()).to_std().unwrap_or_default();
        assert!(
            left >= margin,
            "invocation {invocations} stopped {left:?} before its deadline, less than the {margin:?} margin"
        );
        if let JobOutcome::Continued { delay, .. } = out {
            assert_eq!(delay, Duration::ZERO);
            next = Some(h.bench.queue.drain().remove(0).0);
        } else {
            last = Some(out);
        }
    }
    assert!(matches!(last, Some(JobOutcome::Finished { status: RunStatus::Partial, .. })), "{last:?}");
    let f = h.item(&big);
    assert_eq!((f.state, f.reason.as_deref()), (ItemState::Failed, Some("transfer_deadline")));
    assert!(f.next_attempt_at.is_some_and(|t| t > h.bench.clock.now()), "waits for its backoff");
    for id in &small {
        assert_eq!(h.item(id).state, ItemState::Imported, "{id}");
    }
    assert_eq!(h.bench.sink.open_uploads(), 0, "every cut upload was aborted");
    assert_eq!(h.connection().await.counters.failed, 1);
}

/// A file longer than an invocation (200 MiB at 2 MiB/s, invocations of 60 s keeping a 30 s
/// margin) is suspended at each deadline and continued by the next invocation from where the
/// sink's durable bytes end: it is imported whole — the object's SHA-256 is the source's — as
/// one object, re-downloading at most one granule per resume; the run succeeds with no
/// failure counted, and nothing is left suspended.
#[tokio::test]
async fn a_file_longer_than_an_invocation_resumes_where_it_stopped() {
    let h = Harness::new().await;
    const SIZE: u64 = 200 * MIB;
    let big = h.drive.add_large_file(&h.root, "long.mov", SIZE);
    h.drive.rewrite_large_file(&big, 7);
    let small = h.drive.add_file(&h.root, "small.txt", b"hello");
    h.drive.throttle(h.bench.clock.clone(), 2 * MIB);

    let (out, invocations) = h.run_to_end(h.job(Trigger::Schedule), Duration::from_secs(60)).await;
    let JobOutcome::Finished { status: RunStatus::Succeeded, counters, .. } = out else { panic!("{out:?}") };
    assert_eq!((counters.imported, counters.failed), (2, 0), "{counters:?}");
    assert!(invocations >= 4, "200 MiB at 2 MiB/s takes 4 invocations or more: {invocations}");
    let f = h.item(&big);
    assert_eq!((f.state, f.transfer.is_none()), (ItemState::Imported, true));
    assert_eq!(h.item(&small).state, ItemState::Imported);
    let objects = h.bench.sink.objects();
    assert_eq!(objects.len(), 2, "one object per file");
    let object = &objects[f.asset_key.as_deref().expect("asset")];
    assert_eq!((object.sha256.as_str(), object.size), (FakeDrive::large_sha256(SIZE, 7).as_str(), SIZE));
    let resumes = h.bench.sink.resumed();
    assert_eq!(resumes, invocations as u64 - 1, "every later invocation continued the upload");
    let again = h.drive.calls().bytes_served.load(Ordering::Relaxed) - SIZE;
    assert!(
        again <= resumes * extconn_core::memory::MemorySink::DEFAULT_GRANULE,
        "{again} bytes downloaded twice in {resumes} resumes"
    );
    assert_eq!((h.bench.sink.suspended(), h.bench.sink.open_uploads()), (0, 0));
    assert_eq!(h.connection().await.counters.failed, 0);
}

/// A resumed transfer that then makes no progress in an invocation (the source slowed to a
/// trickle) keeps what it had: `failed: transfer_deadline`, counted, waiting for its backoff
/// with its state; the run ends `partial`. The next run, once the source is fast again,
/// continues from the same offset and imports the file whole.
#[tokio::test]
async fn a_transfer_that_stops_progressing_keeps_its_state_for_the_backoff() {
    let h = Harness::new().await;
    const SIZE: u64 = 160 * MIB;
    let big = h.drive.add_large_file(&h.root, "slow.mov", SIZE);
    h.drive.rewrite_large_file(&big, 5);
    h.drive.throttle(h.bench.clock.clone(), 2 * MIB);
    let engine = h.engine();
    let deadline = h.bench.clock.now() + chrono::Duration::seconds(60);
    let out = engine.run_job(&h.job(Trigger::Schedule), deadline).await.expect("step");
    assert!(matches!(out, JobOutcome::Continued { .. }), "{out:?}");
    let kept = h.item(&big).transfer.expect("suspended").sink.offset;

    // 1 KiB/s: less than a granule in any invocation.
    h.drive.throttle(h.bench.clock.clone(), 1024);
    let next = h.bench.queue.drain().remove(0).0;
    let (out, _) = h.run_to_end(next, Duration::from_secs(60)).await;
    assert!(matches!(out, JobOutcome::Finished { status: RunStatus::Partial, .. }), "{out:?}");
    let f = h.item(&big);
    assert_eq!((f.state, f.reason.as_deref()), (ItemState::Failed, Some("transfer_deadline")));
    assert_eq!(f.transfer.as_ref().map(|t| t.sink.offset), Some(kept), "what it had is kept");
    assert!(f.next_attempt_at.is_some_and(|t| t > h.bench.clock.now()), "waits for its backoff");
    assert_eq!(h.connection().await.counters.failed, 1);

    h.drive.throttle(h.bench.clock.clone(), 2 * MIB);
    h.bench.clock.advance(Duration::from_secs(3600));
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    let f = h.item(&big);
    assert_eq!((f.state, f.transfer.is_none()), (ItemState::Imported, true));
    let object = &h.bench.sink.objects()[f.asset_key.as_deref().expect("asset")];
    assert_eq!(object.sha256, FakeDrive::large_sha256(SIZE, 5));
    assert_eq!((h.bench.sink.suspended(), h.bench.sink.open_uploads()), (0, 0));
    assert_eq!(h.connection().await.counters.failed, 0);
}

/// A file changed at the source while its transfer is suspended starts over: the continued
/// download serves the new version, whose bytes never join the old ones; the one object
/// stored is the new content, whole.
#[tokio::test]
async fn a_file_changed_while_suspended_starts_over_with_no_mixed_object() {
    let h = Harness::new().await;
    const SIZE: u64 = 120 * MIB;
    let big = h.drive.add_large_file(&h.root, "changing.mov", SIZE);
    h.drive.rewrite_large_file(&big, 3);
    h.drive.throttle(h.bench.clock.clone(), 2 * MIB);
    let engine = h.engine();
    let deadline = h.bench.clock.now() + chrono::Duration::seconds(60);
    let out = engine.run_job(&h.job(Trigger::Schedule), deadline).await.expect("step");
    assert!(matches!(out, JobOutcome::Continued { .. }), "{out:?}");
    let f = h.item(&big);
    assert_eq!((f.state, f.reason.as_deref()), (ItemState::Failed, Some("transfer_resuming")));
    assert!(f.transfer.as_ref().is_some_and(|t| t.sink.offset > 0), "{:?}", f.transfer);
    assert_eq!(h.connection().await.counters.failed, 0, "a suspended transfer is no failure");
    assert_eq!(h.bench.sink.suspended(), 1);

    h.drive.rewrite_large_file(&big, 4);
    let next = h.bench.queue.drain().remove(0).0;
    let (out, _) = h.run_to_end(next, Duration::from_secs(60)).await;
    assert!(matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. }), "{out:?}");
    let objects = h.bench.sink.objects();
    let shas: Vec<&str> = objects.values().map(|o| o.sha256.as_str()).collect();
    assert_eq!(shas, [FakeDrive::large_sha256(SIZE, 4).as_str()], "only the new version, whole");
    assert_eq!(h.item(&big).state, ItemState::Imported);
    assert_eq!((h.bench.sink.suspended(), h.bench.sink.open_uploads()), (0, 0));
}

/// A checkpoint the engine cannot continue — written before it kept a CRC state (it kept a
/// SHA-256 midstate then) — is dropped, its upload discarded, and the file starts over from
/// byte 0: imported whole, as one object, in the same run.
#[tokio::test]
async fn a_checkpoint_without_a_crc_state_starts_over_whole() {
    let h = Harness::new().await;
    const SIZE: u64 = 120 * MIB;
    let big = h.drive.add_large_file(&h.root, "older.mov", SIZE);
    h.drive.rewrite_large_file(&big, 5);
    h.drive.throttle(h.bench.clock.clone(), 2 * MIB);
    let deadline = h.bench.clock.now() + chrono::Duration::seconds(60);
    let out = h.engine().run_job(&h.job(Trigger::Schedule), deadline).await.expect("step");
    assert!(matches!(out, JobOutcome::Continued { .. }), "{out:?}");
    assert!(h.item(&big).transfer.is_some_and(|t| t.crc64.is_some() && t.sink.offset > 0));
    assert!(h.bench.store.edit_item(&h.conn, &big, |i| {
        if let Some(t) = i.transfer.as_mut() {
            t.crc64 = None;
        }
    }));

    // Fast again: the restarted transfer ends in this invocation, so any resume would be the
    // old checkpoint's.
    h.drive.throttle(h.bench.clock.clone(), GIB);
    let next = h.bench.queue.drain().remove(0).0;
    let (out, _) = h.run_to_end(next, Duration::from_secs(60)).await;
    assert!(matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. }), "{out:?}");
    let objects = h.bench.sink.objects();
    let shas: Vec<&str> = objects.values().map(|o| o.sha256.as_str()).collect();
    assert_eq!(shas, [FakeDrive::large_sha256(SIZE, 5).as_str()], "one object, whole");
    assert_eq!(h.bench.sink.resumed(), 0, "the old checkpoint was not continued");
    let f = h.item(&big);
    assert_eq!((f.state, f.transfer.is_none()), (ItemState::Imported, true));
    assert_eq!((h.bench.sink.suspended(), h.bench.sink.open_uploads()), (0, 0));
}

/// A provider 403 on one file and the sink refusing another are those files' outcomes, with
/// stable reason codes; the run goes on and ends `partial`.
#[tokio::test]
async fn one_bad_file_is_one_failed_item() {
    let h = Harness::new().await;
    let denied = h.drive.add_file(&h.root, "denied.pdf", b"secret");
    let refused = h.drive.add_file(&h.root, "refused.png", b"png");
    let fine: Vec<String> =
        (0..3).map(|i| h.drive.add_file(&h.root, &format!("ok-{i}.txt"), b"ok")).collect();
    h.drive.fail_download(&denied, Some(ProviderError::Forbidden("HTTP 403: no_permission".into())));
    h.bench.sink.refuse("refused.png");

    assert_eq!(h.sync().await, RunStatus::Partial);
    let d = h.item(&denied);
    assert_eq!((d.state, d.reason.as_deref()), (ItemState::Failed, Some("access_denied")));
    assert!(d.error.as_deref().is_some_and(|e| e.contains("no_permission")), "{:?}", d.error);
    let r = h.item(&refused);
    assert_eq!((r.state, r.reason.as_deref()), (ItemState::Failed, Some("sink_error")));
    for id in &fine {
        assert_eq!(h.item(id).state, ItemState::Imported);
    }
    let run = RunStore::list(h.bench.store.as_ref(), &h.conn, None, 1).await.unwrap().remove(0);
    assert_eq!((run.counters.imported, run.counters.failed), (3, 2));
}

/// A sink that fails every file is down, not the files: the step ends for redelivery after a
/// few files instead of marking the whole folder failed.
#[tokio::test]
async fn a_sink_that_fails_every_file_stops_the_step_not_the_files() {
    let h = Harness::new().await;
    for i in 0..10 {
        let name = format!("f-{i}.txt");
        h.drive.add_file(&h.root, &name, b"x");
        h.bench.sink.refuse(&name);
    }
    let err = h
        .engine()
        .run_job(&h.job(Trigger::Schedule), h.bench.clock.now() + chrono::Duration::minutes(15))
        .await;
    assert!(matches!(err, Err(extconn_core::engine::EngineError::Sink(_))), "{err:?}");
    let failed = h.items().into_iter().filter(|i| i.state == ItemState::Failed).count();
    assert_eq!(failed, EngineConfig::default().max_sink_failures as usize - 1);
}

/// A listing answering 403 three steps in a row: the run ends `failed`, the connection `error`
/// with the reason; it stays due, and a successful run returns it to `active`. Two failures
/// then success: the run succeeds.
#[tokio::test]
async fn a_listing_that_keeps_failing_ends_the_run_and_the_connection_recovers() {
    let h = Harness::new().await;
    h.drive.add_file(&h.root, "a.txt", b"a");
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    let n = EngineConfig::default().max_listing_failures as usize;

    // N−1 failing steps (a 403 is not retried within a step), then success: the run carries
    // on and succeeds.
    h.drive.fail_listing(ProviderError::Forbidden("HTTP 403: no_permission".into()), n - 1);
    let (out, invocations) = h.run_to_end(h.job(Trigger::Schedule), Duration::from_secs(900)).await;
    assert!(matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. }), "{out:?}");
    assert_eq!(invocations, n);
    assert_eq!(h.connection().await.status, ConnectionStatus::Active);

    // N failing steps: failed, and the connection is `error` with the reason.
    h.drive.fail_listing(ProviderError::Forbidden("HTTP 403: no_permission".into()), n);
    let (out, invocations) = h.run_to_end(h.job(Trigger::Schedule), Duration::from_secs(900)).await;
    let JobOutcome::Finished { run_id, status: RunStatus::Failed, .. } = out else { panic!("{out:?}") };
    assert_eq!(invocations, n);
    let c = h.connection().await;
    assert_eq!(c.status, ConnectionStatus::Error);
    assert!(c.status_reason.as_deref().is_some_and(|r| r.contains("no_permission")), "{:?}", c.status_reason);
    assert_eq!(c.current_run_id, None, "Refresh Items starts a new run");
    let run = RunStore::get(h.bench.store.as_ref(), &h.conn, &run_id).await.unwrap().unwrap();
    assert!(run.error.as_deref().is_some_and(|e| e.starts_with("access_denied")), "{:?}", run.error);

    // Still due: the next tick queues it; the listing works again; back to active.
    h.bench.clock.advance(Duration::from_secs(3600));
    assert_eq!(extconn_core::scheduler::tick(&h.ports, h.bench.clock.now()).await.unwrap(), 1);
    let out = h.run_queued().await;
    assert!(matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. }), "{out:?}");
    let c = h.connection().await;
    assert_eq!((c.status, c.status_reason), (ConnectionStatus::Active, None));
    assert_eq!(h.statuses_announced(), [ConnectionStatus::Error, ConnectionStatus::Active]);
}

/// The provider refusing our app at token refresh is a configuration error: the connection is
/// `error` with the reason, and no grant or connection becomes `reauth_required`.
#[tokio::test]
async fn invalid_client_is_a_configuration_error_not_a_reauth() {
    let h = Harness::with_tokens(Some(MemoryBench::new().clock.now() - chrono::Duration::hours(1))).await;
    h.drive.add_file(&h.root, "a.txt", b"a");
    h.drive.fail_refresh(Some(ProviderError::Config("invalid_client".into())));
    assert_eq!(h.sync().await, RunStatus::Failed);
    let c = h.connection().await;
    assert_eq!(c.status, ConnectionStatus::Error);
    assert!(c.status_reason.as_deref().is_some_and(|r| r.contains("invalid_client")));
    let grant = GrantStore::get(h.bench.store.as_ref(), &c.client_id, &c.grant_id).await.unwrap().unwrap();
    assert_eq!(grant.status, GrantStatus::Active, "the grant is not the user's problem");
    assert_eq!(h.statuses_announced(), [ConnectionStatus::Error]);

    // The operator fixes the secret: the next run works and the connection is active again.
    h.drive.fail_refresh(None);
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    assert_eq!(h.connection().await.status, ConnectionStatus::Active);
}

/// A file failing six runs in a row is still retried (backoff, never given up); the runs are
/// `partial`; between backoffs it is not downloaded; `retry-failed` retries it at once.
#[tokio::test]
async fn failed_files_are_retried_with_backoff_and_on_demand() {
    let h = Harness::new().await;
    let bad = h.drive.add_file(&h.root, "bad.bin", b"bad");
    h.drive.add_file(&h.root, "good.bin", b"good");
    h.drive.fail_download(&bad, Some(ProviderError::Forbidden("HTTP 403".into())));
    let downloads = || h.drive.calls().download.load(Ordering::Relaxed);

    let mut waits: Vec<i64> = Vec::new();
    for run in 1..=6 {
        if let Some(wait) = waits.last() {
            h.bench.clock.advance(Duration::from_secs(*wait as u64 * 60));
        }
        assert_eq!(h.sync().await, RunStatus::Partial, "run {run}");
        let item = h.item(&bad);
        assert_eq!((item.state, item.attempts), (ItemState::Failed, run));
        let wait = item.next_attempt_at.unwrap() - h.bench.clock.now();
        waits.push(wait.num_minutes());
        // Not yet due: a sync now does not try it.
        let before = downloads();
        assert_eq!(h.sync().await, RunStatus::Partial);
        assert_eq!(downloads(), before, "retried before its backoff");
    }
    assert_eq!(waits, [15, 60, 240, 720, 1440, 2880], "the backoff grows over days");

    // Retry now, whatever the backoff and whatever Auto sync says.
    h.drive.fail_download(&bad, None);
    h.bench.clock.advance(Duration::from_secs(60));
    let (conns, actor) = h.connections();
    conns.set_auto_sync(&actor, &h.conn.connection_id, false).await.unwrap();
    assert!(h.item(&bad).next_attempt_at.unwrap() > h.bench.clock.now());
    let out = conns.retry_failed(&actor, &h.conn.connection_id).await.unwrap();
    assert!(out.started);
    let done = h.run_queued().await;
    assert!(matches!(done, JobOutcome::Finished { status: RunStatus::Succeeded, .. }), "{done:?}");
    assert_eq!(h.item(&bad).state, ItemState::Imported);
    assert_eq!(h.connection().await.counters.failed, 0);
}

/// "Retry failed" clicked while a step is listing: the open run is flagged, so the step's
/// finishing write is refused, and the step retries every failed file — backoff or not —
/// before the run ends. The flag reaches the step through that refusal, not a read.
#[tokio::test]
async fn retry_failed_clicked_while_a_run_lists_is_done_before_the_run_ends() {
    struct ClickOnce {
        conns: Connections,
        actor: Actor,
        conn: ConnKey,
        clicked: std::sync::atomic::AtomicBool,
    }
    impl Hooks for ClickOnce {
        fn at(&self, step: Step) -> Result<(), Crash> {
            if step == Step::Checkpointed && !self.clicked.swap(true, Ordering::SeqCst) {
                // The memory store answers at once: no runtime needed under the hook.
                let out = futures::executor::block_on(
                    self.conns.retry_failed(&self.actor, &self.conn.connection_id),
                )
                .expect("retry-failed");
                assert!(!out.started, "the open run is flagged, none is queued");
            }
            Ok(())
        }
    }
    let h = Harness::new().await;
    let bad = h.drive.add_file(&h.root, "bad.bin", b"bad");
    h.drive.fail_download(&bad, Some(ProviderError::Forbidden("HTTP 403".into())));
    assert_eq!(h.sync().await, RunStatus::Partial);
    h.drive.fail_download(&bad, None);
    assert!(h.item(&bad).next_attempt_at.unwrap() > h.bench.clock.now(), "its backoff runs");
    let downloads = || h.drive.calls().download.load(Ordering::Relaxed);
    let before = downloads();

    let (conns, actor) = h.connections();
    let hook = ClickOnce { conns, actor, conn: h.conn.clone(), clicked: Default::default() };
    let engine = Engine::with_hooks(h.ports.clone(), EngineConfig::default(), Arc::new(hook));
    let deadline = h.bench.clock.now() + chrono::Duration::minutes(15);
    let out = engine.run_job(&h.job(Trigger::Schedule), deadline).await.unwrap();
    let JobOutcome::Finished { run_id, status: RunStatus::Succeeded, counters } = out else {
        panic!("{out:?}")
    };
    assert_eq!(downloads(), before + 1, "the failed file, retried at the step's end");
    assert_eq!(h.item(&bad).state, ItemState::Imported);
    assert_eq!(counters.imported, 1, "the outcome carries the run's counters");
    let run = RunStore::get(h.bench.store.as_ref(), &h.conn, &run_id).await.unwrap().unwrap();
    assert!(run.retry_failed && run.status == RunStatus::Succeeded, "{run:?}");
    let c = h.connection().await;
    assert_eq!((c.counters.failed, c.current_run_id, c.lease), (0, None, None));
}

/// Deleting 150 of 200 files: the sync is held (`needs_review`, nothing marked deleted, the
/// count shown); an admin confirms, and all 150 are `source_deleted` with their assets kept.
/// A connection event goes out at each status change.
#[tokio::test]
async fn a_mass_delete_waits_for_an_admin() {
    let h = Harness::new().await;
    let files: Vec<String> = (0..200)
        .map(|i| h.drive.add_file(&h.root, &format!("f-{i:03}.txt"), format!("{i}").as_bytes()))
        .collect();
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    let objects = h.bench.sink.objects().len();
    for id in &files[..150] {
        h.drive.delete(id);
    }

    assert_eq!(h.sync().await, RunStatus::NeedsReview);
    let c = h.connection().await;
    assert_eq!((c.status, c.held_deletions), (ConnectionStatus::NeedsReview, Some(150)));
    assert!(c.status_reason.as_deref().is_some_and(|r| r.contains("150 of 200")), "{:?}", c.status_reason);
    assert!(h.items().iter().all(|i| i.state != ItemState::SourceDeleted), "nothing marked deleted");
    // Held: scheduled syncs and Refresh Items wait for the admin.
    let skipped = h
        .engine()
        .run_job(&h.job(Trigger::Schedule), h.bench.clock.now() + chrono::Duration::minutes(15))
        .await;
    assert_eq!(skipped, Ok(JobOutcome::Skipped(extconn_core::engine::Skip::NeedsReview)));
    let (conns, actor) = h.connections();
    let refused = conns.refresh(&actor, &h.conn.connection_id).await;
    assert!(matches!(refused, Err(extconn_core::UseCaseError::NeedsReview { held: 150 })), "{refused:?}");

    conns.confirm_deletions(&actor, &h.conn.connection_id, true).await.unwrap();
    let out = h.run_queued().await;
    assert!(matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. }), "{out:?}");
    for id in &files[..150] {
        assert_eq!(h.item(id).state, ItemState::SourceDeleted);
    }
    for id in &files[150..] {
        assert_eq!(h.item(id).state, ItemState::Imported);
    }
    assert_eq!(h.bench.sink.objects().len(), objects, "assets kept");
    let c = h.connection().await;
    assert_eq!((c.status, c.held_deletions, c.approved_deletions), (ConnectionStatus::Active, None, None));
    assert_eq!(h.statuses_announced(), [ConnectionStatus::NeedsReview, ConnectionStatus::Active]);
}

/// The guard also covers a full re-listing (a cursor reset) that no longer sees most files; a
/// discard lists everything again and, the files being really gone, holds again.
#[tokio::test]
async fn a_relisting_that_misses_most_files_is_held_and_discard_relists() {
    let h = Harness::new().await;
    let files: Vec<String> =
        (0..200).map(|i| h.drive.add_file(&h.root, &format!("f-{i:03}.txt"), b"x")).collect();
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    for id in &files[..120] {
        h.drive.delete(id);
    }
    h.drive.reset_cursors();
    assert_eq!(h.sync().await, RunStatus::NeedsReview);
    assert_eq!(h.connection().await.held_deletions, Some(120));
    assert!(h.items().iter().all(|i| i.state != ItemState::SourceDeleted));

    let (conns, actor) = h.connections();
    conns.confirm_deletions(&actor, &h.conn.connection_id, false).await.unwrap();
    let out = h.run_queued().await;
    assert!(matches!(out, JobOutcome::Finished { status: RunStatus::NeedsReview, .. }), "{out:?}");
    assert_eq!(h.connection().await.held_deletions, Some(120));
    assert!(h.items().iter().all(|i| i.state != ItemState::SourceDeleted));
    let again = conns.confirm_deletions(&actor, &h.conn.connection_id, true).await;
    assert!(again.is_ok(), "{again:?}");
    let out = h.run_queued().await;
    assert!(matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. }), "{out:?}");
    assert_eq!(h.items().iter().filter(|i| i.state == ItemState::SourceDeleted).count(), 120);
}

/// Below the threshold (over 50% but not over 100 files, or over 100 but not over 50%), a sync
/// applies deletions at once.
#[tokio::test]
async fn deletions_under_the_threshold_apply_at_once() {
    let h = Harness::new().await;
    let files: Vec<String> =
        (0..300).map(|i| h.drive.add_file(&h.root, &format!("f-{i:03}.txt"), b"x")).collect();
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    for id in &files[..140] {
        h.drive.delete(id);
    }
    assert_eq!(h.sync().await, RunStatus::Succeeded, "140 of 300 is under half");
    assert_eq!(h.items().iter().filter(|i| i.state == ItemState::SourceDeleted).count(), 140);
    assert!(h.bench.events.connection_events().is_empty());
}
