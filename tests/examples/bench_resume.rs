//! Resumable transfers, measured (issue 13 item 3; run by `scripts/bench`): a 2 GiB file from
//! the Dropbox sandbox, its download paced at 200 MiB/s, through the real connector (content
//! hash verified across every resume) and the engine into the memory sink (8 MiB granule, as
//! S3's parts), by invocations whose deadline leaves about 2.5 s of transfer each. Printed: the
//! invocations the file took, the bytes downloaded twice (the tail past each suspend's durable
//! offset; the acceptance is at most one part per resume), whether the one object stored hashes
//! as the source, and the time. Figures only: nothing is asserted on time.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use extconn_core::engine::{Engine, EngineConfig, JobOutcome};
use extconn_core::memory::MemorySink;
use extconn_core::ports::{
    AssetMeta, AssetSink, AssetUpload, CommitOutcome, ObjectDigest, SinkError, SinkResume, SystemClock,
};
use extconn_core::{RunStatus, Trigger};
use extconn_sandbox::dropbox::Content;
use extconn_system_tests::{Ep, FOLDER, Fault, World, WorldOptions};

const MIB: u64 = 1024 * 1024;
const SIZE: u64 = 2 * 1024 * MIB;
const PACE: u64 = 200 * MIB;
const MARGIN: Duration = Duration::from_secs(2);
const BUDGET: Duration = Duration::from_millis(4500);

/// The memory sink, counting every byte written to it (a byte written twice was downloaded
/// twice: the engine writes each chunk as it arrives).
struct Counting {
    inner: MemorySink,
    written: Arc<AtomicU64>,
}

struct CountingUpload {
    inner: Box<dyn AssetUpload>,
    written: Arc<AtomicU64>,
}

#[async_trait]
impl AssetSink for Counting {
    async fn begin(&self, key: &str, meta: &AssetMeta) -> Result<Box<dyn AssetUpload>, SinkError> {
        let inner = self.inner.begin(key, meta).await?;
        Ok(Box::new(CountingUpload { inner, written: self.written.clone() }))
    }
    fn granule(&self, size: Option<u64>) -> Option<u64> {
        self.inner.granule(size)
    }
    async fn resume(
        &self,
        key: &str,
        meta: &AssetMeta,
        from: &SinkResume,
    ) -> Result<Box<dyn AssetUpload>, SinkError> {
        let inner = self.inner.resume(key, meta, from).await?;
        Ok(Box::new(CountingUpload { inner, written: self.written.clone() }))
    }
    async fn discard(&self, key: &str, from: &SinkResume) {
        self.inner.discard(key, from).await;
    }
}

#[async_trait]
impl AssetUpload for CountingUpload {
    async fn write(&mut self, chunk: Bytes) -> Result<(), SinkError> {
        self.written.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        self.inner.write(chunk).await
    }
    async fn commit(self: Box<Self>, digest: &ObjectDigest) -> Result<CommitOutcome, SinkError> {
        self.inner.commit(digest).await
    }
    async fn abort(self: Box<Self>) {
        self.inner.abort().await;
    }
    async fn suspend(self: Box<Self>, within: Duration) -> Option<SinkResume> {
        self.inner.suspend(within).await
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // Real time: the deadlines are the wall clock's.
    let w = World::new(WorldOptions { clock: Some(Arc::new(SystemClock)), ..Default::default() }).await;
    let file = w.dbx.add_file(&w.account, &format!("{FOLDER}/long.mov"), Content::generated(SIZE, 2026));
    let expected = w.dbx.sha256_of(&w.account, &file.id);
    w.dbx.inject(Ep::Download, Fault::Throttle { bytes_per_sec: PACE }, 1_000);
    let written = Arc::new(AtomicU64::new(0));
    let mut ports = w.ports.clone();
    ports.sink = Arc::new(Counting { inner: w.memory_sink.clone(), written: written.clone() });
    let config = EngineConfig { deadline_margin: MARGIN, ..w.config() };
    let engine = Engine::new(ports, config);

    println!(
        "Resumable transfer: {} GiB from the Dropbox sandbox paced at {} MiB/s, invocations of {:.1} s keeping a {:.0} s margin, memory sink (granule {} MiB)",
        SIZE / 1024 / MIB,
        PACE / MIB,
        BUDGET.as_secs_f64(),
        MARGIN.as_secs_f64(),
        MemorySink::DEFAULT_GRANULE / MIB
    );
    let started = Instant::now();
    let mut job = w.job(Trigger::Initial);
    let mut invocations = 0u32;
    let outcome = loop {
        invocations += 1;
        let deadline = w.ports.clock.now() + chrono::Duration::from_std(BUDGET).expect("budget");
        match engine.run_job(&job, deadline).await {
            Ok(JobOutcome::Continued { .. }) if invocations < 100 => {
                job = w.queue.drain().into_iter().next().expect("a continuation").0;
            }
            other => break other,
        }
    };
    let secs = started.elapsed().as_secs_f64();
    let ok = matches!(outcome, Ok(JobOutcome::Finished { status: RunStatus::Succeeded, .. }));
    let objects = w.memory_sink.objects();
    let verified =
        ok && objects.len() == 1 && objects.values().all(|o| o.sha256 == expected && o.size == SIZE);
    let resumes = w.memory_sink.resumed();
    let again = written.load(Ordering::Relaxed).saturating_sub(SIZE);
    let per_resume = if resumes > 0 { again as f64 / resumes as f64 / MIB as f64 } else { 0.0 };
    println!(
        "{:>11} {:>8} {:>18} {:>22} {:>9} {:>8}  verified, one object",
        "invocations", "resumes", "downloaded twice", "per resume (≤ 8 MiB)", "seconds", "MiB/s"
    );
    println!(
        "{:>11} {:>8} {:>14.1} MiB {:>18.2} MiB {:>9.1} {:>8.0}  {}",
        invocations,
        resumes,
        again as f64 / MIB as f64,
        per_resume,
        secs,
        SIZE as f64 / MIB as f64 / secs,
        if verified { "yes" } else { "NO" }
    );
    let within = again <= resumes * MemorySink::DEFAULT_GRANULE;
    if !verified || invocations < 4 || !within {
        eprintln!(
            "resumable transfer: {outcome:?}; verified {verified}, {invocations} invocations (≥ 4 wanted), {again} bytes twice in {resumes} resumes"
        );
        std::process::exit(1);
    }
}
