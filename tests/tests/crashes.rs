//! Crashes at every pipeline step, duplicate deliveries, and deadlines mid-run, with files
//! transferred one at a time and eight at once (`EngineConfig::transfer_concurrency`).

use std::sync::Arc;
use std::time::Duration;

use extconn_core::engine::{EngineError, JobOutcome, Skip, Step};
use extconn_core::ports::RunStore;
use extconn_core::{RunStatus, Trigger};
use extconn_system_tests::{CrashAt, Ep, Ticking, World, WorldOptions};

const STEPS: [Step; 4] = [Step::DownloadStarted, Step::SinkCommitted, Step::ItemWritten, Step::Checkpointed];

/// Transfers at once: one at a time, and the default (several files in flight when a crash,
/// a deadline or a lost lease hits).
const CONCURRENCY: [usize; 2] = [1, 8];

/// For each step and several occurrences: crash there, let the lease expire, run again.
/// Then: every file stored exactly once, the cursor never passed an unstored file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_every_step_then_rerun_loses_and_duplicates_nothing() {
    for (concurrency, step) in CONCURRENCY.into_iter().flat_map(|c| STEPS.map(|s| (c, s))) {
        // Three pages → three checkpoints; twelve files → twelve of every per-file step.
        let nths: &[usize] = if step == Step::Checkpointed { &[1, 2, 3] } else { &[1, 4, 9] };
        for &nth in nths {
            let w = World::new(WorldOptions {
                page_limit: 5,
                transfer_concurrency: concurrency,
                ..Default::default()
            })
            .await;
            for i in 0..12 {
                w.add(&format!("d{}/f{i:02}.bin", i % 3), &format!("content {i}"));
            }
            let crash = CrashAt::new(step, nth);
            let engine = w.engine_with(w.config(), crash.clone());
            let err = engine.run_job(&w.job(Trigger::Initial), w.deadline()).await;
            assert!(crash.fired(), "x{concurrency} {step:?}#{nth} never reached");
            assert_eq!(err, Err(EngineError::Crashed(step)), "x{concurrency} {step:?}#{nth}");

            // I3 right after the crash: everything behind a saved incremental cursor is stored.
            if let extconn_core::SyncPosition::Incremental { .. } = w.connection().await.position {
                w.assert_invariants().await;
            }
            // The dead worker's lease blocks a redelivery until it expires.
            assert_eq!(
                w.sync(Trigger::Initial).await,
                JobOutcome::Skipped(Skip::LeaseHeld),
                "x{concurrency} {step:?}#{nth}"
            );
            w.clock.advance(Duration::from_secs(121));
            let out = w.sync(Trigger::Initial).await;
            assert!(
                matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. }),
                "x{concurrency} {step:?}#{nth}: {out:?}"
            );
            w.assert_invariants().await;
            assert_eq!(w.objects().len(), 12, "x{concurrency} {step:?}#{nth}: one object per file");
            let runs = w.store.list(&w.conn, None, 10).await.unwrap();
            assert_eq!(runs.len(), 1, "x{concurrency} {step:?}#{nth}: the re-run continued the crashed run");
            assert_eq!(
                runs[0].counters.imported, 12,
                "x{concurrency} {step:?}#{nth}: exact counters across the crash"
            );
            assert_eq!(w.connection().await.counters.files, 12);
            w.assert_no_leaks(&[format!("{err:?} {out:?}")]);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_job_on_two_workers_at_once_runs_once() {
    let w = World::new(WorldOptions::default()).await;
    for i in 0..40 {
        w.add(&format!("f{i}.txt"), &format!("{i}"));
    }
    w.dbx.inject(Ep::ListFolder, extconn_system_tests::Fault::Latency(Duration::from_millis(200)), 1);
    let job = w.job(Trigger::Initial);
    let (e1, e2) = (w.engine(), w.engine());
    let deadline = w.deadline();
    let (a, b) = tokio::join!(e1.run_job(&job, deadline), e2.run_job(&job, deadline));
    let outcomes = [a.unwrap(), b.unwrap()];
    assert_eq!(
        outcomes.iter().filter(|o| matches!(o, JobOutcome::Finished { .. })).count(),
        1,
        "{outcomes:?}"
    );
    assert!(outcomes.contains(&JobOutcome::Skipped(Skip::LeaseHeld)));
    assert_eq!(w.calls(Ep::Download), 40, "no file downloaded twice");
    assert_eq!(w.objects().len(), 40);
    w.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_mid_run_continues_the_same_run_with_exact_counters() {
    for concurrency in CONCURRENCY {
        deadline_mid_run(concurrency).await;
    }
}

async fn deadline_mid_run(concurrency: usize) {
    let w =
        World::new(WorldOptions { page_limit: 10, transfer_concurrency: concurrency, ..Default::default() })
            .await;
    for i in 0..50 {
        w.add(&format!("f{i:02}.txt"), &format!("{i}"));
    }
    // Every stored file takes 10 virtual seconds; a 5-minute budget less the 30 s margin
    // fits 27 files per invocation.
    let ticking = Arc::new(Ticking { clock: w.clock.clone(), per_item: Duration::from_secs(10) });
    let engine = w.engine_with(w.config(), ticking);
    let mut outcomes = Vec::new();
    let mut job = w.job(Trigger::Initial);
    for _ in 0..10 {
        let deadline = w.clock_now() + chrono::Duration::minutes(5);
        let out = engine.run_job(&job, deadline).await.expect("a step");
        outcomes.push(out.clone());
        match out {
            JobOutcome::Continued { .. } => job = w.queue.drain().remove(0).0,
            _ => break,
        }
    }
    assert!(outcomes.len() >= 2, "the deadline forced a continuation: {outcomes:?}");
    let JobOutcome::Finished { run_id, status: RunStatus::Succeeded, .. } =
        outcomes.last().expect("a step ran").clone()
    else {
        panic!("{outcomes:?}")
    };
    for o in &outcomes[..outcomes.len() - 1] {
        assert!(
            matches!(o, JobOutcome::Continued { run_id: r, .. } if *r == run_id),
            "same run id throughout"
        );
    }
    let run = w.store.get(&w.conn, &run_id).await.expect("store").expect("the run");
    // One at a time, a file never starts without time left and time only passes between
    // files: nothing is cut. With files in flight together, the time another file's record
    // takes can cut one mid-transfer: it is recorded `failed: transfer_deadline` (counted
    // once by the run) and downloaded again first by the next invocation, so every extra
    // download is exactly one cut file.
    let cut = w.calls(Ep::Download) - 50;
    if concurrency == 1 {
        assert_eq!(cut, 0, "nothing downloaded twice across continuations");
    }
    assert!(cut <= concurrency as u64 * (outcomes.len() as u64 - 1), "x{concurrency}: {cut} cut");
    assert_eq!(
        (run.counters.imported, run.counters.scanned, run.counters.failed),
        (50, 50 + cut, cut),
        "x{concurrency}: exact counters"
    );
    let counters = w.connection().await.counters;
    assert_eq!((counters.files, counters.failed), (50, 0), "x{concurrency}: every file stored, none failed");
    assert_eq!(run.invocations as usize, outcomes.len());
    w.assert_invariants().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_connection_stops_a_running_worker_from_writing() {
    for concurrency in CONCURRENCY {
        deleted_midway(concurrency).await;
    }
}

async fn deleted_midway(concurrency: usize) {
    let w = World::new(WorldOptions { transfer_concurrency: concurrency, ..Default::default() }).await;
    for i in 0..12 {
        w.add(&format!("f{i:02}.txt"), "x");
    }
    struct DeleteMidway {
        store: Arc<extconn_core::memory::MemoryStore>,
        conn: extconn_core::ConnKey,
        done: std::sync::Mutex<bool>,
        /// The records the connection had when it was deleted (they stay until purged).
        at_delete: std::sync::Mutex<Vec<extconn_core::Item>>,
    }
    impl extconn_core::engine::Hooks for DeleteMidway {
        fn at(&self, step: Step) -> Result<(), extconn_core::engine::Crash> {
            let mut done = self.done.lock().expect("lock");
            if step == Step::SinkCommitted && !*done {
                *done = true;
                let (s, c) = (self.store.clone(), self.conn.clone());
                *self.at_delete.lock().expect("lock") = s.all_items(&c);
                std::thread::spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
                    rt.block_on(extconn_core::ports::ConnectionStore::delete(s.as_ref(), &c))
                        .expect("delete");
                })
                .join()
                .expect("the deleting thread");
            }
            Ok(())
        }
    }
    let hook = Arc::new(DeleteMidway {
        store: w.store.clone(),
        conn: w.conn.clone(),
        done: Default::default(),
        at_delete: Default::default(),
    });
    let out = w
        .engine_with(w.config(), hook.clone())
        .run_job(&w.job(Trigger::Initial), w.deadline())
        .await
        .expect("a step");
    assert_eq!(out, JobOutcome::Skipped(Skip::LeaseHeld), "x{concurrency}: the worker noticed and stopped");
    let at_delete = hook.at_delete.lock().expect("lock").clone();
    assert_eq!(w.items(), at_delete, "x{concurrency}: no item written after the delete");
    assert!(
        at_delete.iter().all(|i| i.asset_key.is_none()),
        "x{concurrency}: no file was recorded before it"
    );
    // The files already in flight when the first was stored, and no other.
    let downloads = w.calls(Ep::Download);
    assert!(downloads <= concurrency as u64, "x{concurrency}: no further downloads ({downloads})");
    if concurrency == 1 {
        assert_eq!(downloads, 1);
    }
}
