//! Provider and network faults: corrupt or cut downloads, rate limits, cursor resets.

use std::time::Duration;

use extconn_core::engine::JobOutcome;
use extconn_core::{ItemState, RunStatus, Trigger};
use extconn_system_tests::{Ep, FOLDER, Fault, SinkKind, World, WorldOptions};

fn status(o: &JobOutcome) -> RunStatus {
    match o {
        JobOutcome::Finished { status, .. } => *status,
        other => panic!("run did not finish: {other:?}"),
    }
}

/// Each corrupting fault hits every attempt of the file in the run: it ends `failed` with a
/// hash mismatch (or cut body), no asset is stored and no temp file is left; the next run
/// retries it and imports it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_cut_and_short_downloads_store_nothing() {
    for fault in [Fault::Truncate { after_bytes: 100_000 }, Fault::CorruptSameLength, Fault::ShortChunked] {
        let w = World::new(WorldOptions { sink: SinkKind::Local, ..Default::default() }).await;
        let f = w.dbx.add_file(
            &w.account,
            &format!("{FOLDER}/photo.jpg"),
            extconn_sandbox::dropbox::Content::generated(1_000_000, 3),
        );
        w.dbx.inject(Ep::Download, fault.clone(), 3);
        let out = w.sync(Trigger::Initial).await;
        assert_eq!(
            status(&out),
            RunStatus::Partial,
            "{fault:?}: a failed file makes the run partial, never succeeded"
        );
        let item = w.items().into_iter().find(|i| i.provider_id == f.id).unwrap();
        assert_eq!(item.state, ItemState::Failed, "{fault:?}");
        let reason = item.reason.clone().unwrap_or_default();
        assert!(
            ["hash_mismatch", "provider_unavailable"].contains(&reason.as_str()),
            "{fault:?}: reason {reason:?}"
        );
        let error = item.error.clone().unwrap_or_default();
        assert!(w.objects().is_empty(), "{fault:?}: no asset from partial or corrupt bytes");
        let (_, sink) = w.local_sink.as_ref().unwrap();
        assert!(sink.temp_files().is_empty(), "{fault:?}: no leftover temp file");
        assert_eq!(w.connection().await.counters.failed, 1);

        // Before its backoff, a sync leaves it alone; after it, the next run retries the failed
        // item first and succeeds.
        let downloads = w.calls(Ep::Download);
        assert_eq!(status(&w.sync(Trigger::Schedule).await), RunStatus::Partial, "{fault:?}");
        assert_eq!(w.calls(Ep::Download), downloads, "{fault:?}: retried before its backoff");
        w.clock.advance(Duration::from_secs(15 * 60));
        let out = w.sync(Trigger::Schedule).await;
        assert_eq!(status(&out), RunStatus::Succeeded, "{fault:?}");
        w.assert_invariants().await;
        assert_eq!(w.connection().await.counters.failed, 0);
        w.assert_no_leaks(&[reason, error]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_waits_exactly_as_told_on_the_virtual_clock() {
    let w = World::new(WorldOptions::default()).await;
    for i in 0..3 {
        w.add(&format!("f{i}.txt"), "x");
    }
    w.dbx.inject(Ep::ListFolder, Fault::RateLimit { retry_after_secs: 7 }, 1);
    w.dbx.inject(Ep::Download, Fault::RateLimit { retry_after_secs: 30 }, 1);
    let out = w.sync(Trigger::Initial).await;
    assert_eq!(status(&out), RunStatus::Succeeded);
    w.assert_invariants().await;
    // No request before its Retry-After elapsed, measured on the sandbox's own (virtual) time:
    // after the 429, a request of that endpoint is either one sent with it (the same virtual
    // instant: transfers run at once, and the clock moves only when someone waits) or one sent
    // after the wait — the throttled request's retry and every other (the step holds them all).
    let log = w.dbx.call_log();
    for (endpoint, wait) in [(Ep::ListFolder, 7), (Ep::Download, 30)] {
        let limited = log.iter().position(|c| c.endpoint == endpoint && c.status == 429).expect("429 served");
        let gaps: Vec<Duration> = log[limited + 1..]
            .iter()
            .filter(|c| c.endpoint == endpoint)
            .map(|c| c.at.duration_since(log[limited].at).unwrap_or_default())
            .collect();
        assert!(gaps.iter().any(|g| *g >= Duration::from_secs(wait)), "{endpoint:?} never retried: {gaps:?}");
        assert!(
            gaps.iter().all(|g| g.is_zero() || *g >= Duration::from_secs(wait)),
            "{endpoint:?}: a request sent during its {wait} s wait: {gaps:?}"
        );
    }
    assert!(w.clock.sleeps().contains(&Duration::from_secs(7)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wait_longer_than_the_time_left_becomes_a_delayed_continuation() {
    let w = World::new(WorldOptions::default()).await;
    w.add("a.txt", "a");
    w.dbx.inject(Ep::ListFolder, Fault::RateLimit { retry_after_secs: 3600 }, 1);
    let out = w.sync(Trigger::Initial).await;
    let JobOutcome::Continued { run_id, delay } = out else { panic!("expected a continuation, got {out:?}") };
    assert_eq!(delay, Duration::from_secs(3600));
    assert!(w.clock.sleeps().is_empty(), "no sleeping into the deadline");
    let queued = w.queue.drain();
    assert_eq!(queued.len(), 1);
    let (job, d) = &queued[0];
    assert!(job.continuation && job.run_id.as_ref() == Some(&run_id));
    assert_eq!(*d, Duration::from_secs(900), "SQS delays stop at 900 s");
    let conn = w.connection().await;
    assert!(conn.lease.is_none(), "the lease is released for the continuation");
    // A scheduled tick during the wait is dropped: the waiting run covers it.
    assert_eq!(w.sync(Trigger::Schedule).await, JobOutcome::Skipped(extconn_core::engine::Skip::Waiting));
    assert!(w.queue.is_empty(), "no extra job queued during the wait");

    // Each delivery inside the wait is passed on again (900 s hops), with no provider call;
    // the one after the full hour runs and finishes the same run.
    let engine = w.engine();
    let mut job = job.clone();
    let mut hops = 0;
    w.dbx.reset_counters();
    let finished = loop {
        w.clock.advance(Duration::from_secs(900));
        let out = engine.run_job(&job, w.deadline()).await.unwrap();
        match out {
            JobOutcome::Continued { .. } => {
                assert_eq!(w.provider_calls(), 0, "no provider call during the wait");
                hops += 1;
                job = w.queue.drain().remove(0).0;
            }
            other => break other,
        }
    };
    assert_eq!(hops, 3, "3,600 s = four 900 s hops");
    assert!(
        matches!(&finished, JobOutcome::Finished { run_id: r, status: RunStatus::Succeeded, .. } if *r == run_id),
        "{finished:?}"
    );
    let first_retry = w.dbx.call_log().into_iter().find(|c| c.endpoint == Ep::ListFolder).unwrap();
    assert_eq!(first_retry.status, 200);
    w.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursor_reset_relists_without_duplicates_or_losses() {
    let w = World::new(WorldOptions { page_limit: 7, ..Default::default() }).await;
    for i in 0..20 {
        w.add(&format!("f{i:02}.txt"), &format!("v1 {i}"));
    }
    w.sync(Trigger::Initial).await;
    let before = w.objects();
    // Changes while the cursor dies: one modified, one deleted, one added.
    w.dbx.modify_file(
        &w.account,
        &format!("{FOLDER}/f03.txt"),
        extconn_sandbox::dropbox::Content::text("v2"),
    );
    w.dbx.delete(&w.account, &format!("{FOLDER}/f04.txt"));
    w.add("new.txt", "new");
    w.dbx.reset_cursors();
    w.dbx.reset_counters();
    let out = w.sync(Trigger::Schedule).await;
    assert_eq!(status(&out), RunStatus::Succeeded);
    assert!(w.calls(Ep::ListFolder) >= 1, "a full re-listing happened");
    assert_eq!(w.calls(Ep::Download), 2, "only the modified and the new file are downloaded");
    let after = w.objects();
    assert_eq!(after.len(), before.len() + 2, "no duplicate assets");
    assert!(before.keys().all(|k| after.contains_key(k)), "nothing lost");
    let f04 = w.items().into_iter().find(|i| i.path.ends_with("f04.txt")).unwrap();
    assert_eq!(f04.state, ItemState::SourceDeleted, "the re-listing diff finds the deletion");
    w.assert_invariants().await;
    w.assert_no_leaks(&[format!("{out:?}")]);
    // The next sync is incremental again.
    w.dbx.reset_counters();
    w.sync(Trigger::Schedule).await;
    assert_eq!(w.provider_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_errors_are_retried_with_backoff() {
    let w = World::new(WorldOptions::default()).await;
    w.add("a.txt", "a");
    w.dbx.inject(Ep::ListFolder, Fault::ServerError(503), 2);
    w.dbx.inject(Ep::Download, Fault::ServerError(500), 1);
    assert_eq!(status(&w.sync(Trigger::Initial).await), RunStatus::Succeeded);
    assert!(w.clock.sleeps().len() >= 3, "backed off before each retry");
    w.assert_invariants().await;
}

/// Runs `job` and its continuations (after their delay on the virtual clock) until one
/// finishes; returns the outcome and the number of steps.
async fn run_to_end(w: &World, mut job: extconn_core::Job) -> (JobOutcome, usize) {
    let engine = w.engine();
    let mut steps = 0;
    loop {
        steps += 1;
        assert!(steps <= 10, "the run never ended");
        match engine.run_job(&job, w.deadline()).await.expect("sync step") {
            JobOutcome::Continued { delay, .. } => {
                w.clock.advance(delay);
                job = w.queue.drain().remove(0).0;
            }
            other => return (other, steps),
        }
    }
}

/// Dropbox answering 403 to the change listing: two steps in a row, then an answer — the run
/// carries on and succeeds; three in a row — the run is `failed` and the connection `error`
/// with the reason. The `error` connection is due at the next tick, and a listing that works
/// returns it to `active`; the DAM hears of both changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_answering_403_ends_in_error_and_recovers() {
    let w = World::new(WorldOptions::default()).await;
    w.add("a.txt", "a");
    assert_eq!(status(&w.sync(Trigger::Initial).await), RunStatus::Succeeded);
    let n = extconn_core::engine::EngineConfig::default().max_listing_failures;

    w.add("b.txt", "b");
    w.dbx.inject(Ep::ListFolderContinue, Fault::ServerError(403), n - 1);
    let (out, steps) = run_to_end(&w, w.job(Trigger::Schedule)).await;
    assert_eq!((status(&out), steps), (RunStatus::Succeeded, n as usize));

    w.add("c.txt", "c");
    w.dbx.inject(Ep::ListFolderContinue, Fault::ServerError(403), n);
    let (out, steps) = run_to_end(&w, w.job(Trigger::Schedule)).await;
    assert_eq!((status(&out), steps), (RunStatus::Failed, n as usize));
    let c = w.connection().await;
    assert_eq!(c.status, extconn_core::ConnectionStatus::Error);
    assert!(c.status_reason.as_deref().is_some_and(|r| r.contains("403")), "{:?}", c.status_reason);

    w.clock.advance(Duration::from_secs(16 * 60));
    assert_eq!(
        extconn_core::scheduler::tick(&w.ports, extconn_core::ports::Clock::now(w.clock.as_ref()))
            .await
            .unwrap(),
        1,
        "still due"
    );
    let job = w.queue.drain().remove(0).0;
    let (out, _) = run_to_end(&w, job).await;
    assert_eq!(status(&out), RunStatus::Succeeded);
    let c = w.connection().await;
    assert_eq!((c.status, c.status_reason), (extconn_core::ConnectionStatus::Active, None));
    assert!(w.items().iter().any(|i| i.name == "c.txt" && i.state == ItemState::Imported));
    let announced: Vec<_> = w.events.connection_events().into_iter().map(|e| e.status).collect();
    assert_eq!(announced, [extconn_core::ConnectionStatus::Error, extconn_core::ConnectionStatus::Active]);
    w.assert_invariants().await;
}

/// Dropbox answering 403 to one file's download: that file is `failed: access_denied`, the
/// others are imported, the run is `partial`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_answering_403_fails_alone() {
    let w = World::new(WorldOptions::default()).await;
    for i in 0..3 {
        w.add(&format!("f{i}.txt"), "x");
    }
    w.dbx.inject(Ep::Download, Fault::ServerError(403), 1);
    assert_eq!(status(&w.sync(Trigger::Initial).await), RunStatus::Partial);
    let items = w.items();
    let failed: Vec<_> = items.iter().filter(|i| i.state == ItemState::Failed).collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].reason.as_deref(), Some("access_denied"));
    assert_eq!(items.iter().filter(|i| i.state == ItemState::Imported && !i.is_folder()).count(), 2);
}
