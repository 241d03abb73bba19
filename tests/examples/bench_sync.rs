//! `scripts/bench`: the engine's throughput, printed side by side with its references.
//!
//! - Large file: a 1 GiB and a 4 GiB sandbox file (a generated pattern of about 1 MiB,
//!   repeated: served from memory, so the stand-in provider takes little of the CPU the
//!   pipeline is measured on) through the engine (connector →
//!   hash-while-streaming → asset sink) into the local file sink of `extconn-local`, its folder
//!   in the temp dir (`EXTCONN_BENCH_SINK_DIR` for another), each stored file's SHA-256 read
//!   back and verified against the source (after the clock stops), with throughput and this
//!   process's peak RSS (VmHWM; the files' page cache is not RSS), beside `openssl speed -evp
//!   sha256` on the same machine (the hashing limit with the CPU's SHA instructions) and the
//!   local sink alone given as many bytes from memory (the disk's share). Then, under
//!   the AWS emulator, 1 GiB from the sandbox through the engine and the S3 adapter, then the
//!   same bytes from a file straight into the S3 adapter (no download, no engine: the adapter's
//!   own cost), beside the AWS CLI's `s3 cp` of that file to the same emulator
//!   (`EXTCONN_AWS_CLI`, set by `scripts/bench`).
//! - Small files: an initial import of files of 20 KiB, one transfer at a time and 4, 8 and 16
//!   at once (`transfer_concurrency`): 2,000 files (`EXTCONN_BENCH_SMALL_FILES`) with 50 ms of
//!   latency on each download at the sandbox through the local file sink, and 500
//!   (`EXTCONN_BENCH_EMULATOR_FILES`) with 200 ms through the S3 + DynamoDB adapters against the
//!   emulator (whose own request rate would cap a lower-latency run). A row whose run fails is
//!   printed as failed and the next row still runs. Files/s, the most downloads at once, and
//!   per-file latency (from a file's download request until its object is stored).
//!
//! Each sync runs as the sync-worker and `extconn-local` run one: a task on the runtime's two
//! worker threads.
//!
//! Exits non-zero on a broken result (a wrong hash, a missing file, a failed run) or a peak
//! RSS over its budget; figures are printed, never asserted on wall-clock time.
//! `--small-files` runs the small-file section only, `--large-files` the large-file one only.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use extconn_core::engine::JobOutcome;
use extconn_core::local::LocalAssetSink;
use extconn_core::ports::{
    AssetMeta, AssetSink, AssetUpload, CommitOutcome, ConnectionStore, GrantStore, ObjectDigest, SinkError,
};
use extconn_core::{ProviderKind, RunStatus, Trigger};
use extconn_sandbox::dropbox::Content;
use extconn_system_tests::{Ep, FOLDER, Fault, Gauge, SinkKind, World, WorldOptions, set_store, unique};

// (sha2, hex, async-trait and bytes come from the tests crate's dependencies.)

const BUDGET_MIB: u64 = 100;
/// The S3 path's budget (the parts of an upload in flight, plus the SDK's own).
const S3_BUDGET_MIB: u64 = 128;
const MIB: f64 = 1048576.0;
const SMALL_FILE: u64 = 20 * 1024;
const CONCURRENCY: [usize; 4] = [1, 4, 8, 16];

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

fn emulator() -> bool {
    std::env::var_os("AWS_ENDPOINT_URL").is_some()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let small = !args.iter().any(|a| a == "--large-files");
    let large = !args.iter().any(|a| a == "--small-files");
    let mut failed = false;
    if large {
        failed |= !large_files().await;
        if emulator() {
            failed |= !s3_phase().await;
        } else {
            println!("(no AWS_ENDPOINT_URL: the S3 phase runs under scripts/bench's emulator)");
        }
    }
    if small {
        if large {
            println!();
        }
        failed |= !small_files().await;
    }
    if failed {
        std::process::exit(1);
    }
}

/// `openssl speed -evp sha256` on 16 KiB blocks (its largest), in MiB/s, if openssl runs.
fn openssl_sha256_mibs() -> Option<f64> {
    let out = std::process::Command::new("openssl")
        .args(["speed", "-evp", "sha256", "-bytes", "16384", "-seconds", "3"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().rev().find(|l| l.trim_start().to_ascii_lowercase().starts_with("sha256"))?;
    let k: f64 = line.split_whitespace().last()?.trim_end_matches('k').parse().ok()?;
    Some(k * 1000.0 / MIB)
}

/// The 1 GiB and 4 GiB files into the local file sink, beside openssl's SHA-256 rate.
async fn large_files() -> bool {
    let mut failed = false;
    let openssl = openssl_sha256_mibs();
    let (sink, folder) = match std::env::var_os("EXTCONN_BENCH_SINK_DIR") {
        Some(d) => (SinkKind::LocalIn(d.into()), "its folder under EXTCONN_BENCH_SINK_DIR"),
        None => (SinkKind::Local, "its folder in the temp dir"),
    };
    println!("Large file: sandbox → engine → local file sink ({folder}); * a sink that keeps nothing");
    println!(
        "(verified: the stored file's SHA-256 is the source's; *: the CRC-64 the sink accepted is the source's)"
    );
    println!(
        "{:<8} {:>10} {:>10} {:>14} {:>12}  verified",
        "size", "seconds", "MiB/s", "peak RSS MiB", "× openssl"
    );
    let mut peak = 0;
    for (gib, discard) in [(1u64, false), (4, false), (1, true), (4, true)] {
        let size = gib * 1024 * 1024 * 1024;
        reset_peak();
        let mut w = World::new(WorldOptions { sink: sink.clone(), ..WorldOptions::default() }).await;
        let accepted = Arc::new(Mutex::new(Vec::new()));
        if discard {
            w.ports.sink = Arc::new(Discard(accepted.clone()));
        }
        let content = Content::repeating(size, gib);
        let f = w.dbx.add_file(&w.account, &format!("{FOLDER}/{gib}GiB.mov"), content.clone());
        let expected = w.dbx.sha256_of(&w.account, &f.id);
        let started = Instant::now();
        let out = w.sync_in_task(Trigger::Initial).await.expect("sync step");
        let secs = started.elapsed().as_secs_f64();
        let peak_mib = vm_hwm_kib() / 1024;
        let ok = matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. });
        // The stored file, read back and hashed.
        let verified = ok
            && w.calls(Ep::Download) == 1
            && match discard {
                false => w.objects().into_values().collect::<Vec<_>>() == [expected],
                // Nothing stored: the CRC the sink accepted is the source's.
                true => *accepted.lock().unwrap_or_else(|p| p.into_inner()) == [crc64_of(&content)],
            };
        let rate = size as f64 / MIB / secs;
        println!(
            "{:<8} {:>10.1} {:>10.0} {:>14} {:>12}  {}",
            format!("{gib} GiB{}", if discard { " *" } else { "" }),
            secs,
            rate,
            peak_mib,
            openssl.map_or_else(|| "-".to_owned(), |o| format!("{:.2}×", rate / o)),
            if verified { "yes" } else { "NO" }
        );
        failed |= !verified;
        peak = peak.max(peak_mib);
    }
    // The ceiling of the local-sink rows: the sink alone, in a folder beside theirs, given the
    // same amount from memory (one 1 MiB chunk again and again), nothing else running.
    let parent = match &sink {
        SinkKind::LocalIn(p) => p.clone(),
        _ => std::env::temp_dir(),
    };
    for gib in [1u64, 4] {
        let alone = match tempfile::tempdir_in(&parent) {
            Ok(dir) => sink_alone(&LocalAssetSink::new(dir.path()), gib << 30, repeated(gib << 30)).await,
            Err(e) => Err(format!("temp dir: {e}")),
        };
        match alone {
            Ok((secs, _)) => println!(
                "local file sink alone, {gib} GiB from memory: {secs:.1} s, {:.0} MiB/s (what the local-sink rows cannot beat)",
                (gib << 30) as f64 / MIB / secs
            ),
            Err(e) => println!("(the local file sink alone failed: {e})"),
        }
    }
    if peak > BUDGET_MIB {
        eprintln!("peak RSS {peak} MiB exceeds the {BUDGET_MIB} MiB budget");
        failed = true;
    }
    println!("peak RSS {peak} MiB (budget {BUDGET_MIB} MiB)");
    match openssl {
        Some(o) => println!(
            "openssl speed -evp sha256 (16 KiB blocks) on this machine: {o:.0} MiB/s (acceptance: the pipeline ≥ 0.50× of it)"
        ),
        None => println!("(openssl speed did not run: no reference figure)"),
    }
    !failed
}

/// `size` bytes as one 1 MiB chunk of a pattern, again and again (the last one cut).
fn repeated(size: u64) -> impl FnMut() -> std::io::Result<Option<bytes::Bytes>> {
    let chunk: bytes::Bytes = (0..1usize << 20).map(|i| (i * 31 % 251) as u8).collect::<Vec<_>>().into();
    let mut left = size;
    move || {
        let n = usize::try_from(left.min(chunk.len() as u64)).unwrap_or(chunk.len());
        left -= n as u64;
        Ok((n > 0).then(|| chunk.slice(..n)))
    }
}

/// CRC-64/NVME of a sandbox content, streamed.
fn crc64_of(content: &Content) -> u64 {
    let mut crc = extconn_core::midstate::Crc64::new();
    content.for_each_chunk(|c| crc.update(c));
    crc.value()
}

/// A bucket on the emulator as the world's sink (`store` also moves the world's records to a
/// DynamoDB table of its own: the S3 + DynamoDB adapters of the functions). The vault stays in
/// memory.
async fn onto_emulator(w: &mut World, store: bool) -> Result<(aws_sdk_s3::Client, String), String> {
    let sdk = extconn_aws::sdk_config().await;
    let s3 = extconn_aws::s3_client(&sdk);
    let bucket = unique("bench");
    s3.create_bucket().bucket(&bucket).send().await.map_err(|e| format!("CreateBucket: {e}"))?;
    w.ports.sink = Arc::new(extconn_aws::S3Sink::new(s3.clone(), bucket.clone()));
    if store {
        let ddb = aws_sdk_dynamodb::Client::new(&sdk);
        let table = unique("bench");
        extconn_aws::DynamoStore::create_table(&ddb, &table)
            .await
            .map_err(|e| format!("CreateTable: {e}"))?;
        let store = Arc::new(extconn_aws::DynamoStore::new(ddb, table));
        GrantStore::create(store.as_ref(), &w.grant).await.map_err(|e| format!("grant: {e}"))?;
        ConnectionStore::create(store.as_ref(), &w.connection().await)
            .await
            .map_err(|e| format!("connection: {e}"))?;
        set_store(&mut w.ports, store);
    }
    Ok((s3, bucket))
}

/// The AWS CLI's `s3 cp` of `path` into a new bucket of the emulator, in seconds.
fn aws_cli_cp(cli: &str, path: &str) -> Result<f64, String> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_default();
    let bucket = unique("bench-cli");
    let run = |args: &[&str]| {
        let status = std::process::Command::new(cli)
            .args(args)
            .args(["--endpoint-url", &endpoint])
            .stdout(std::process::Stdio::null())
            .status()
            .map_err(|e| format!("{cli}: {e}"))?;
        if status.success() { Ok(()) } else { Err(format!("{cli} {}: {status}", args.join(" "))) }
    };
    run(&["s3", "mb", &format!("s3://{bucket}")])?;
    let started = Instant::now();
    run(&["s3", "cp", path, &format!("s3://{bucket}/1GiB.bin"), "--only-show-errors"])?;
    Ok(started.elapsed().as_secs_f64())
}

/// 1 GiB from the sandbox through the engine and the S3 adapter (multipart) into the AWS
/// emulator, then the AWS CLI's `s3 cp` of the same bytes. The emulator's own memory is another
/// process and does not count.
async fn s3_phase() -> bool {
    let size: u64 = 1024 * 1024 * 1024;
    let mut w = World::new(WorldOptions::default()).await;
    let (s3, bucket) = match onto_emulator(&mut w, false).await {
        Ok(x) => x,
        Err(e) => {
            eprintln!("cannot set up the emulator: {e}");
            return false;
        }
    };
    let f = w.dbx.add_file(&w.account, &format!("{FOLDER}/1GiB-s3.mov"), Content::repeating(size, 77));
    let expected = w.dbx.sha256_of(&w.account, &f.id);
    // The same bytes on disk, for the AWS CLI.
    let file = std::env::var("EXTCONN_BENCH_FILE").ok();
    if let Some(path) = &file {
        let content = Content::repeating(size, 77);
        let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("bench file"));
        let mut buf = vec![0u8; 8 << 20];
        let mut at = 0;
        while at < size {
            let n = content.read_at(at, &mut buf);
            std::io::Write::write_all(&mut out, &buf[..n]).expect("write");
            at += n as u64;
        }
    }
    reset_peak();
    let started = Instant::now();
    let out = w.sync_in_task(Trigger::Initial).await.expect("sync step");
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
    let rate = size as f64 / MIB / secs;
    println!();
    println!(
        "S3 (AWS emulator): 1 GiB from the sandbox through the engine and the S3 adapter in {secs:.1} s, {rate:.0} MiB/s, peak RSS {peak_mib} MiB (budget {S3_BUDGET_MIB} MiB), sha256 verified: {}",
        if ok && verified { "yes" } else { "NO" }
    );
    // The adapter alone, reading the file as `s3 cp` does: what the sink itself costs.
    let mut alone = None;
    if let Some(path) = &file {
        let sink = extconn_aws::S3Sink::new(s3.clone(), bucket.clone());
        let run = match std::fs::File::open(path) {
            Ok(f) => sink_alone(&sink, size, file_chunks(f)).await,
            Err(e) => Err(format!("{path}: {e}")),
        };
        match run {
            Ok((secs, peak)) => {
                let rate = size as f64 / MIB / secs;
                println!(
                    "S3 adapter alone (the file read in 1 MiB chunks straight into the sink, no download): {secs:.1} s, {rate:.0} MiB/s, peak RSS {peak} MiB"
                );
                alone = Some((rate, peak));
            }
            Err(e) => println!("(the S3 adapter alone failed: {e})"),
        }
    }
    match (std::env::var("EXTCONN_AWS_CLI"), &file) {
        (Ok(cli), Some(path)) => match aws_cli_cp(&cli, path) {
            Ok(cli_secs) => {
                let cli_rate = size as f64 / MIB / cli_secs;
                println!(
                    "AWS CLI s3 cp of the same 1 GiB to the same emulator: {cli_secs:.1} s, {cli_rate:.0} MiB/s"
                );
                println!("through the engine / AWS CLI: {:.2}× (acceptance ≥ 1.0×)", rate / cli_rate);
                if let Some((alone_rate, _)) = alone {
                    println!("S3 adapter alone / AWS CLI: {:.2}×", alone_rate / cli_rate);
                }
            }
            Err(e) => println!("(the AWS CLI comparison failed: {e})"),
        },
        _ => println!("(no EXTCONN_AWS_CLI and EXTCONN_BENCH_FILE: no AWS CLI comparison)"),
    }
    let peak_mib = peak_mib.max(alone.map_or(0, |(_, p)| p));
    if peak_mib > S3_BUDGET_MIB {
        eprintln!("peak RSS {peak_mib} MiB exceeds the {S3_BUDGET_MIB} MiB budget");
    }
    ok && verified && peak_mib <= S3_BUDGET_MIB
}

/// A sink on its own: `size` bytes from `next` (1 MiB chunks) into one upload, committed with
/// the CRC-64 computed as the chunks come, as the engine does. Seconds and this process's
/// peak RSS (MiB).
async fn sink_alone(
    sink: &dyn AssetSink,
    size: u64,
    mut next: impl FnMut() -> std::io::Result<Option<bytes::Bytes>>,
) -> Result<(f64, u64), String> {
    let meta = AssetMeta {
        content_type: "application/octet-stream".into(),
        size: Some(size),
        original_name: "1GiB.bin".into(),
        source_path: "/1GiB.bin".into(),
        provider: ProviderKind::Dropbox,
        provider_id: "id:alone".into(),
        content_version: "1".into(),
        provider_hash: None,
    };
    reset_peak();
    let started = Instant::now();
    let mut upload = sink.begin(&unique("alone/file"), &meta).await.map_err(|e| format!("begin: {e}"))?;
    let mut crc = extconn_core::midstate::Crc64::new();
    while let Some(chunk) = next().map_err(|e| format!("reading: {e}"))? {
        crc.update(&chunk);
        upload.write(chunk).await.map_err(|e| format!("write: {e}"))?;
    }
    upload.commit(&ObjectDigest { crc64: crc.value() }).await.map_err(|e| format!("commit: {e}"))?;
    Ok((started.elapsed().as_secs_f64(), vm_hwm_kib() / 1024))
}

/// The file's bytes in chunks of 1 MiB.
fn file_chunks(mut f: std::fs::File) -> impl FnMut() -> std::io::Result<Option<bytes::Bytes>> {
    move || {
        use std::io::Read as _;
        let mut chunk = vec![0u8; 1 << 20];
        let n = f.read(&mut chunk)?;
        chunk.truncate(n);
        Ok((n > 0).then(|| chunk.into()))
    }
}

/// A sink that keeps nothing but does what a production sink does to the bytes it is given:
/// its CRC-64, checked at commit against the engine's digest. The large-file rows through it
/// are the pipeline's own rate, without the cost of storing the bytes anywhere.
/// It remembers the CRC of each object it accepted.
struct Discard(Arc<Mutex<Vec<u64>>>);

struct DiscardUpload(extconn_core::midstate::Crc64, Arc<Mutex<Vec<u64>>>);

#[async_trait::async_trait]
impl AssetSink for Discard {
    async fn begin(&self, _key: &str, _meta: &AssetMeta) -> Result<Box<dyn AssetUpload>, SinkError> {
        Ok(Box::new(DiscardUpload(extconn_core::midstate::Crc64::new(), self.0.clone())))
    }
}

#[async_trait::async_trait]
impl AssetUpload for DiscardUpload {
    async fn write(&mut self, chunk: bytes::Bytes) -> Result<(), SinkError> {
        self.0.update(&chunk);
        Ok(())
    }
    async fn commit(self: Box<Self>, digest: &ObjectDigest) -> Result<CommitOutcome, SinkError> {
        digest.check(self.0.value())?;
        self.1.lock().unwrap_or_else(|p| p.into_inner()).push(digest.crc64);
        Ok(CommitOutcome::Created)
    }
    async fn abort(self: Box<Self>) {}
}

/// The sink of a small-file run, timed: per file, from its download request (the world's
/// download gauge) until its object is stored.
struct Timed {
    inner: Arc<dyn AssetSink>,
    downloads: Arc<Gauge>,
    seconds: Arc<Mutex<Vec<f64>>>,
}

struct TimedUpload {
    inner: Box<dyn AssetUpload>,
    provider_id: String,
    downloads: Arc<Gauge>,
    seconds: Arc<Mutex<Vec<f64>>>,
}

#[async_trait::async_trait]
impl AssetSink for Timed {
    async fn begin(&self, key: &str, meta: &AssetMeta) -> Result<Box<dyn AssetUpload>, SinkError> {
        let inner = self.inner.begin(key, meta).await?;
        Ok(Box::new(TimedUpload {
            inner,
            provider_id: meta.provider_id.clone(),
            downloads: self.downloads.clone(),
            seconds: self.seconds.clone(),
        }))
    }
}

#[async_trait::async_trait]
impl AssetUpload for TimedUpload {
    async fn write(&mut self, chunk: bytes::Bytes) -> Result<(), SinkError> {
        self.inner.write(chunk).await
    }
    async fn commit(self: Box<Self>, digest: &ObjectDigest) -> Result<CommitOutcome, SinkError> {
        let out = self.inner.commit(digest).await?;
        if let Some(at) = self.downloads.started_at(&self.provider_id) {
            self.seconds.lock().unwrap_or_else(|p| p.into_inner()).push(at.elapsed().as_secs_f64());
        }
        Ok(out)
    }
    async fn abort(self: Box<Self>) {
        self.inner.abort().await;
    }
}

#[derive(Clone, Copy, PartialEq)]
enum SmallPath {
    Local,
    Emulator,
}

struct Row {
    concurrency: usize,
    secs: f64,
    peak_downloads: usize,
    peak_rss_mib: u64,
    /// Per-file seconds, sorted.
    per_file: Vec<f64>,
    verified: bool,
}

impl Row {
    fn files_per_sec(&self, files: usize) -> f64 {
        files as f64 / self.secs
    }
    fn quantile(&self, q: f64) -> f64 {
        let n = self.per_file.len();
        if n == 0 {
            return f64::NAN;
        }
        self.per_file[((n as f64 * q).ceil() as usize).clamp(1, n) - 1]
    }
}

/// One initial import of `files` small files at `concurrency`, with `latency` on each download.
async fn small_run(
    path: SmallPath,
    files: usize,
    latency: Duration,
    concurrency: usize,
) -> Result<Row, String> {
    let sink = if path == SmallPath::Local { SinkKind::Local } else { SinkKind::Memory };
    let mut w =
        World::new(WorldOptions { sink, transfer_concurrency: concurrency, ..Default::default() }).await;
    let s3 = match path {
        SmallPath::Local => None,
        SmallPath::Emulator => Some(onto_emulator(&mut w, true).await?),
    };
    let seconds = Arc::new(Mutex::new(Vec::with_capacity(files)));
    w.ports.sink = Arc::new(Timed {
        inner: w.ports.sink.clone(),
        downloads: w.downloads.clone(),
        seconds: seconds.clone(),
    });
    let mut expected = Vec::with_capacity(files);
    for i in 0..files {
        let f = w.dbx.add_file(
            &w.account,
            &format!("{FOLDER}/small/f{i:05}.bin"),
            Content::generated(SMALL_FILE, i as u64),
        );
        expected.push(w.dbx.sha256_of(&w.account, &f.id));
    }
    w.dbx.inject(Ep::Download, Fault::Latency(latency), files as u32);
    reset_peak();
    let started = Instant::now();
    let out = w.sync_in_task(Trigger::Initial).await;
    let secs = started.elapsed().as_secs_f64();
    let peak_rss_mib = vm_hwm_kib() / 1024;
    let imported = match &out {
        Ok(JobOutcome::Finished { status: RunStatus::Succeeded, counters, .. }) => counters.imported,
        Ok(other) => return Err(format!("the import did not succeed after {secs:.0} s: {other:?}")),
        Err(e) => return Err(format!("the sync stopped after {secs:.0} s: {e}")),
    };
    // Every file stored, with the source's bytes: the local sink's objects hashed; on S3 the
    // sink checked each object's SHA-256 before publishing it, so count them and their sizes.
    let verified = imported == files as u64
        && match &s3 {
            None => {
                let mut stored: Vec<String> = w.objects().into_values().collect();
                stored.sort();
                expected.sort();
                stored == expected
            }
            Some((s3, bucket)) => {
                let mut pages = s3.list_objects_v2().bucket(bucket).into_paginator().send();
                let (mut n, mut sizes_ok) = (0, true);
                while let Some(page) = pages.next().await {
                    let page = page.map_err(|e| format!("ListObjectsV2: {e}"))?;
                    for o in page.contents() {
                        n += 1;
                        sizes_ok &= o.size() == Some(SMALL_FILE as i64);
                    }
                }
                n == files && sizes_ok
            }
        };
    let mut per_file = std::mem::take(&mut *seconds.lock().unwrap_or_else(|p| p.into_inner()));
    per_file.sort_by(f64::total_cmp);
    Ok(Row { concurrency, secs, peak_downloads: w.downloads.peak(), peak_rss_mib, per_file, verified })
}

/// A file count from the environment, or its default.
fn count(var: &str, default: usize) -> usize {
    std::env::var(var).ok().map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{var}: a number")))
}

/// Files/s at 1, 4, 8 and 16 transfers at once, on the local sink at 50 ms of download
/// latency and on the S3 + DynamoDB adapters at 200 ms. Printed, never asserted. A row whose
/// run fails is printed as failed, and the others still run.
async fn small_files() -> bool {
    let local_files = count("EXTCONN_BENCH_SMALL_FILES", 2_000);
    // Fewer on the emulator: at 200 ms one at a time takes a quarter of a second per file.
    let emulator_files = count("EXTCONN_BENCH_EMULATOR_FILES", 500);
    let mut ok = true;
    println!(
        "Small files: an initial import of files of {} KiB, latency injected on each download at the sandbox",
        SMALL_FILE / 1024
    );
    println!("(per file: from its download request until its object is stored)");
    println!(
        "{:<30} {:>6} {:>8} {:>8} {:>9} {:>9} {:>7} {:>9} {:>8} {:>10} {:>8}  verified",
        "path",
        "files",
        "latency",
        "at once",
        "seconds",
        "files/s",
        "× at 1",
        "peak dl",
        "RSS MiB",
        "median s",
        "p95 s"
    );
    let mut paths = vec![(SmallPath::Local, "local file sink", 50, local_files)];
    if emulator() {
        paths.push((SmallPath::Emulator, "S3 + DynamoDB (AWS emulator)", 200, emulator_files));
    }
    let mut emulator_ratios = Vec::new();
    for (path, name, ms, files) in paths {
        let mut base = None;
        for concurrency in CONCURRENCY {
            let row = match small_run(path, files, Duration::from_millis(ms), concurrency).await {
                Ok(r) => r,
                Err(e) => {
                    println!("{name:<30} {files:>6} {:>8} {concurrency:>8}  FAILED: {e}", format!("{ms} ms"));
                    ok = false;
                    continue;
                }
            };
            let rate = row.files_per_sec(files);
            let base_rate = *base.get_or_insert(if concurrency == 1 { rate } else { f64::NAN });
            if path == SmallPath::Emulator && concurrency >= 8 {
                emulator_ratios.push((concurrency, rate / base_rate));
            }
            println!(
                "{:<30} {:>6} {:>8} {:>8} {:>9.1} {:>9.1} {:>6.1}× {:>9} {:>8} {:>10.3} {:>8.3}  {}",
                name,
                files,
                format!("{ms} ms"),
                row.concurrency,
                row.secs,
                rate,
                rate / base_rate,
                row.peak_downloads,
                row.peak_rss_mib,
                row.quantile(0.5),
                row.quantile(0.95),
                if row.verified { "yes" } else { "NO" }
            );
            ok &= row.verified;
        }
    }
    if !emulator() {
        println!("(no AWS_ENDPOINT_URL: the emulator rows run under scripts/bench's emulator)");
    } else if emulator_ratios.is_empty() {
        println!("emulator path: no ratio (a run failed)");
    }
    for (n, r) in emulator_ratios {
        let default = if n == 8 { " (the default)" } else { "" };
        println!(
            "emulator path: {n} at once{default} = {r:.1}× the files/s of 1 at once, same run (acceptance ≥ 6×)"
        );
    }
    ok
}
