//! Transfers at once within a step (`EngineConfig::transfer_concurrency`): the limit is
//! reached and never exceeded, and a provider's 429 lowers it. Counted at the connector
//! (downloads in progress, from the request to the end of its byte stream), with real
//! latency injected at the sandbox so that downloads overlap; never timed.

use std::sync::Arc;
use std::time::Duration;

use extconn_core::engine::{Crash, Hooks, JobOutcome, Step};
use extconn_core::{ItemState, RunStatus, Trigger};
use extconn_system_tests::{Ep, Fault, Gauge, World, WorldOptions};

async fn world(files: usize, page_limit: u32, concurrency: usize) -> World {
    let w = World::new(WorldOptions { page_limit, transfer_concurrency: concurrency, ..Default::default() })
        .await;
    for i in 0..files {
        w.add(&format!("f{i:02}.bin"), &format!("content {i}"));
    }
    w
}

fn succeeded(out: &JobOutcome) -> bool {
    matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfers_overlap_up_to_the_limit_and_never_beyond() {
    for concurrency in [1, 3, 8] {
        let w = world(24, 2000, concurrency).await;
        // Every download waits 50 ms at the sandbox: the engine could start them all.
        w.dbx.inject(Ep::Download, Fault::Latency(Duration::from_millis(50)), 24);
        let out = w.sync(Trigger::Initial).await;
        assert!(succeeded(&out), "x{concurrency}: {out:?}");
        assert_eq!(w.downloads.peak(), concurrency, "x{concurrency}: downloads at once");
        assert_eq!(w.calls(Ep::Download), 24, "x{concurrency}: each file downloaded once");
        assert_eq!(w.downloads.in_progress(), 0);
        w.assert_invariants().await;
        assert_eq!(w.objects().len(), 24);
    }
}

/// The peak of downloads at once during the second page: the gauge is reset at the first
/// page's checkpoint (the listing's start is checkpointed before it) and read at the second's.
struct SecondPage {
    gauge: Arc<Gauge>,
    seen: std::sync::Mutex<usize>,
    peak: std::sync::Mutex<Option<usize>>,
}

impl Hooks for SecondPage {
    fn at(&self, step: Step) -> Result<(), Crash> {
        if step == Step::Checkpointed {
            let mut seen = self.seen.lock().expect("lock");
            *seen += 1;
            match *seen {
                2 => self.gauge.reset(),
                3 => *self.peak.lock().expect("lock") = Some(self.gauge.peak()),
                _ => {}
            }
        }
        Ok(())
    }
}

/// Pages of 8 entries; the first page's files all meet a 429 at their first download. The
/// peak is read over the second page: 8 at once without throttling, fewer after it (halved at
/// the 429s, and grown back by one per window of successes: a page's worth is not enough to
/// reach 8 again).
async fn second_page_peak(throttle: bool) -> (usize, World) {
    let w = world(31, 8, 8).await;
    if throttle {
        w.dbx.inject(Ep::Download, Fault::RateLimit { retry_after_secs: 1 }, 8);
    }
    w.dbx.inject(Ep::Download, Fault::Latency(Duration::from_millis(50)), 31);
    let hook = Arc::new(SecondPage {
        gauge: w.downloads.clone(),
        seen: Default::default(),
        peak: Default::default(),
    });
    let out = w
        .engine_with(w.config(), hook.clone())
        .run_job(&w.job(Trigger::Initial), w.deadline())
        .await
        .expect("a step");
    assert!(succeeded(&out), "throttle {throttle}: {out:?}");
    w.assert_invariants().await;
    let statuses: Vec<u16> =
        w.dbx.call_log().into_iter().filter(|c| c.endpoint == Ep::Download).map(|c| c.status).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), if throttle { 8 } else { 0 });
    assert!(w.items().iter().filter(|i| !i.is_folder()).all(|i| i.state == ItemState::Imported));
    let peak = hook.peak.lock().expect("lock").expect("a second page was checkpointed");
    (peak, w)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_lowers_the_transfers_at_once() {
    let (calm, _) = second_page_peak(false).await;
    assert_eq!(calm, 8, "without throttling, a page of 8 files runs 8 at once");
    let (throttled, w) = second_page_peak(true).await;
    assert!((1..8).contains(&throttled), "after 429s, the next page runs fewer at once: {throttled}");
    // The waits were honoured (virtual time): a 429 is retried, not given up.
    assert!(w.clock.sleeps().contains(&Duration::from_secs(1)), "{:?}", w.clock.sleeps());
    assert_eq!(w.calls(Ep::Download), 31 + 8, "each file once, plus one retry per 429");
}
