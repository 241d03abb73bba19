//! `scripts/bench`: syncs a 1 GiB and a 4 GiB generated sandbox file through the engine
//! (connector → hash-while-streaming → asset sink), verifies the stored object's SHA-256 against
//! the source, and prints throughput and this process's peak RSS (VmHWM). Exits non-zero if the
//! peak RSS exceeds the budget. Figures are printed, never asserted on wall-clock time.
//!
//! The sink here is the in-memory one, which hashes and drops the bytes, so the figure is the
//! pipeline's own footprint (the local file sink adds only page cache, which RSS does not count).
//!
//! `--small-files`: instead, many small files with 50 ms of download latency at the sandbox,
//! through the local file sink, one at a time and 8 at once (`transfer_concurrency`): prints
//! files/s for each. Where a provider's latency, not the hardware, sets the pace.

use std::time::Instant;

use extconn_core::engine::JobOutcome;
use extconn_core::{RunStatus, Trigger};
use extconn_sandbox::dropbox::Content;
use extconn_system_tests::{Ep, FOLDER, World, WorldOptions};

// (sha2 and hex come from the tests crate's dependencies.)

const BUDGET_MIB: u64 = 100;
/// The S3 path's budget (buffers of up to three 8 MiB parts, plus the SDK's own).
const S3_BUDGET_MIB: u64 = 128;

/// Resets VmHWM to the current RSS, so each phase reports its own peak.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

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
    if std::env::args().any(|a| a == "--small-files") {
        small_files().await;
        return;
    }
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
    println!("peak RSS {peak_mib} MiB (budget {BUDGET_MIB} MiB)");
    if std::env::var_os("AWS_ENDPOINT_URL").is_some() {
        failed |= !s3_phase().await;
    } else {
        println!("(no AWS_ENDPOINT_URL: the S3 phase runs under scripts/bench's emulator)");
    }
    if failed {
        std::process::exit(1);
    }
}

/// 1 GiB from the sandbox through the engine and the S3 adapter (multipart) into the AWS
/// emulator. The emulator's own memory is another process and does not count.
async fn s3_phase() -> bool {
    let size: u64 = 1024 * 1024 * 1024;
    let mut w = World::new(WorldOptions::default()).await;
    let sdk = extconn_aws::sdk_config().await;
    let s3 = extconn_aws::s3_client(&sdk);
    let bucket = format!("bench-{}", std::process::id());
    if let Err(e) = s3.create_bucket().bucket(&bucket).send().await {
        eprintln!("cannot create a bucket on the emulator: {e}");
        return false;
    }
    w.ports.sink = std::sync::Arc::new(extconn_aws::S3Sink::new(s3.clone(), bucket.clone()));
    let f = w.dbx.add_file(&w.account, &format!("{FOLDER}/1GiB-s3.mov"), Content::generated(size, 77));
    let expected = w.dbx.sha256_of(&w.account, &f.id);
    // The same bytes on disk, for the AWS CLI comparison run by scripts/bench.
    if let Ok(path) = std::env::var("EXTCONN_BENCH_FILE") {
        let content = Content::generated(size, 77);
        let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("bench file"));
        let mut buf = vec![0u8; 8 << 20];
        let mut at = 0;
        while at < size {
            let n = content.read_at(at, &mut buf);
            std::io::Write::write_all(&mut file, &buf[..n]).expect("write");
            at += n as u64;
        }
    }
    reset_peak();
    let started = Instant::now();
    let out = w.sync(Trigger::Initial).await;
    let secs = started.elapsed().as_secs_f64();
    let peak_mib = vm_hwm_kib() / 1024;
    let ok = matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. });
    let keys: Vec<String> = w.items().into_iter().filter_map(|i| i.asset_key).collect();
    let mut verified = false;
    if let [key] = keys.as_slice()
        && let Ok(obj) = s3.get_object().bucket(&bucket).key(key).send().await
    {
        let mut body = obj.body;
        let mut h = <sha2::Sha256 as sha2::Digest>::new();
        while let Ok(Some(chunk)) = body.try_next().await {
            sha2::Digest::update(&mut h, &chunk);
        }
        verified = hex::encode(sha2::Digest::finalize(h)) == expected;
    }
    println!();
    println!(
        "S3 (AWS emulator): 1 GiB through the S3 adapter in {secs:.1} s, {:.0} MiB/s, peak RSS {peak_mib} MiB (budget {S3_BUDGET_MIB} MiB), sha256 verified: {}",
        size as f64 / 1048576.0 / secs,
        if ok && verified { "yes" } else { "NO" }
    );
    if peak_mib > S3_BUDGET_MIB {
        eprintln!("peak RSS {peak_mib} MiB exceeds the {S3_BUDGET_MIB} MiB budget");
    }
    ok && verified && peak_mib <= S3_BUDGET_MIB
}

/// Files/s for 200 files of 4 KiB, each download delayed 50 ms by the sandbox, stored by the
/// local file sink, at 1 and 8 transfers at once. Printed, not asserted.
async fn small_files() {
    use extconn_system_tests::{Fault, SinkKind};
    const FILES: usize = 200;
    println!("{FILES} files of 4 KiB, 50 ms download latency, local file sink");
    println!("{:<12} {:>10} {:>10} {:>16}", "at once", "seconds", "files/s", "peak downloads");
    for concurrency in [1, 8] {
        let w = World::new(WorldOptions {
            sink: SinkKind::Local,
            transfer_concurrency: concurrency,
            ..Default::default()
        })
        .await;
        for i in 0..FILES {
            w.dbx.add_file(
                &w.account,
                &format!("{FOLDER}/small/f{i:04}.bin"),
                Content::generated(4096, i as u64),
            );
        }
        w.dbx.inject(Ep::Download, Fault::Latency(std::time::Duration::from_millis(50)), FILES as u32);
        let started = Instant::now();
        let out = w.sync(Trigger::Initial).await;
        let secs = started.elapsed().as_secs_f64();
        let ok = matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. })
            && w.objects().len() == FILES;
        println!(
            "{:<12} {:>10.2} {:>10.1} {:>16}{}",
            concurrency,
            secs,
            FILES as f64 / secs,
            w.downloads.peak(),
            if ok { "" } else { "  (the sync did not store every file)" }
        );
    }
}
