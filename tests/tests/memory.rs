//! Memory bound: a 256 MiB file streams through the engine with at most a few chunks in flight,
//! and eight files at once hold at most eight times that (`transfer_concurrency` × the
//! per-transfer bound, ARCHITECTURE §6.4). Measured with a counting allocator over the whole
//! process (sandbox included), one phase after the other in one test (the counter is global).

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use extconn_core::engine::JobOutcome;
use extconn_core::{RunStatus, Trigger};
use extconn_sandbox::dropbox::Content;
use extconn_system_tests::{FOLDER, World, WorldOptions};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(l.size() as isize, Ordering::Relaxed) + l.size() as isize;
        PEAK.fetch_max(now, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

/// The one-file bound, asserted below; eight transfers at once must stay within 8 × it.
const PER_TRANSFER: isize = 24 * 1024 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncing_256_mib_keeps_a_few_chunks_in_flight() {
    let w = World::new(WorldOptions::default()).await;
    let f =
        w.dbx.add_file(&w.account, &format!("{FOLDER}/big.mov"), Content::generated(256 * 1024 * 1024, 11));
    let _ = w.dbx.sha256_of(&w.account, &f.id); // warm the sandbox's caches before measuring
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = w.sync(Trigger::Initial).await;
    let peak = PEAK.load(Ordering::Relaxed) - base;
    assert!(matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. }), "{out:?}");
    w.assert_invariants().await;
    println!("peak heap growth while syncing 256 MiB: {:.1} MiB", peak as f64 / 1048576.0);
    assert!(peak < PER_TRANSFER, "bytes in flight bounded: peak heap growth {peak} bytes");

    // Eight files of 48 MiB, eight at once: 384 MiB synced, so a transfer holding even half of
    // its file would exceed 8 × the one-file bound (192 MiB).
    let w = World::new(WorldOptions { transfer_concurrency: 8, ..Default::default() }).await;
    for i in 0..8u64 {
        let f = w.dbx.add_file(
            &w.account,
            &format!("{FOLDER}/clip{i}.mov"),
            Content::generated(48 * 1024 * 1024, 100 + i),
        );
        let _ = w.dbx.sha256_of(&w.account, &f.id);
    }
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = w.sync(Trigger::Initial).await;
    let peak = PEAK.load(Ordering::Relaxed) - base;
    assert!(matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. }), "{out:?}");
    w.assert_invariants().await;
    assert_eq!(w.downloads.peak(), 8, "the eight transfers overlapped");
    println!("peak heap growth while syncing 8 × 48 MiB, 8 at once: {:.1} MiB", peak as f64 / 1048576.0);
    assert!(peak < 8 * PER_TRANSFER, "bytes in flight bounded by 8 transfers: peak heap growth {peak} bytes");
}
