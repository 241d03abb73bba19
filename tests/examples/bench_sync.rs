//! `scripts/bench`: syncs a 1 GiB and a 4 GiB generated sandbox file through the engine
//! (connector → hash-while-streaming → asset sink), verifies the stored object's SHA-256 against
//! the source, and prints throughput and this process's peak RSS (VmHWM). Exits non-zero if the
//! peak RSS exceeds the budget. Figures are printed, never asserted on wall-clock time.
//!
//! The sink here is the in-memory one, which hashes and drops the bytes, so the figure is the
//! pipeline's own footprint (the local file sink adds only page cache, which RSS does not count).

use std::time::Instant;

use extconn_core::engine::JobOutcome;
use extconn_core::{RunStatus, Trigger};
use extconn_sandbox::dropbox::Content;
use extconn_system_tests::{Ep, FOLDER, World, WorldOptions};

const BUDGET_MIB: u64 = 100;

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut failed = false;
    println!("{:<8} {:>10} {:>12} {:>14}  sha256 verified", "size", "seconds", "MiB/s", "peak RSS MiB");
    for gib in [1u64, 4] {
        let size = gib * 1024 * 1024 * 1024;
        let w = World::new(WorldOptions::default()).await;
        let f = w.dbx.add_file(&w.account, &format!("{FOLDER}/{gib}GiB.mov"), Content::generated(size, gib));
        let expected = w.dbx.sha256_of(&w.account, &f.id);
        let started = Instant::now();
        let out = w.sync(Trigger::Initial).await;
        let secs = started.elapsed().as_secs_f64();
        let ok = matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. });
        let stored: Vec<String> = w.memory_sink.objects().into_values().map(|o| o.sha256).collect();
        let verified = ok && stored == [expected] && w.calls(Ep::Download) == 1;
        let peak_mib = vm_hwm_kib() / 1024;
        println!(
            "{:<8} {:>10.1} {:>12.0} {:>14}  {}",
            format!("{gib} GiB"),
            secs,
            size as f64 / 1048576.0 / secs,
            peak_mib,
            if verified { "yes" } else { "NO" }
        );
        failed |= !verified;
    }
    let peak_mib = vm_hwm_kib() / 1024;
    if peak_mib > BUDGET_MIB {
        eprintln!("peak RSS {peak_mib} MiB exceeds the {BUDGET_MIB} MiB budget");
        failed = true;
    }
    if failed {
        std::process::exit(1);
    }
    println!("peak RSS {peak_mib} MiB (budget {BUDGET_MIB} MiB)");
}
