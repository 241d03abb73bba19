//! Memory bound: a 256 MiB file streams through the engine with at most a few chunks in flight.
//! Measured with a counting allocator over the whole process (sandbox included).

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
    assert!(peak < 24 * 1024 * 1024, "bytes in flight bounded: peak heap growth {peak} bytes");
}
