//! Scope by ancestry on a drive-wide change feed (ARCHITECTURE §7 "Scope"), with the in-memory
//! [`FakeDrive`] connector: changes anywhere in the account are reported, items carry parent ids
//! and no paths, a folder moved in is reported alone, and listings go folder by folder.
//!
//! - `changes_elsewhere_cost_no_download`, `a_folder_moved_out_and_back_loses_and_duplicates_nothing`,
//!   `a_folder_moved_in_brings_its_subtree`: the scope cases one by one.
//! - `random_histories_match_the_model`: a model-based test (reliability.md M1, the sync part):
//!   random adds, modifies, renames, moves in / out / within, deletes and cursor resets, synced at
//!   random points — some syncs dying at a random step and redelivered — always leave the item
//!   table equal to the folder's true contents, with no object written twice.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use extconn_core::engine::{Crash, Engine, EngineConfig, EngineError, Hooks, JobOutcome, Step};
use extconn_core::fake_drive::{DRIVE_ROOT, FakeDrive};
use extconn_core::ports::Clock;
use extconn_core::testkit::MemoryBench;
use extconn_core::{
    ConnKey, Item, ItemState, Job, Ports, ProviderKind, RunStatus, Secret, TokenSet, Trigger,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sha2::{Digest, Sha256};

struct Harness {
    drive: FakeDrive,
    bench: MemoryBench,
    ports: Ports,
    conn: ConnKey,
    root: String,
    elsewhere: String,
}

impl Harness {
    async fn new(page_size: usize) -> Harness {
        let drive = FakeDrive::new(page_size);
        let root = drive.add_folder(DRIVE_ROOT, "Connected");
        let elsewhere = drive.add_folder(DRIVE_ROOT, "Elsewhere");
        let bench = MemoryBench::new();
        let ports = bench.ports(vec![Arc::new(drive.clone())]);
        let tokens =
            TokenSet { access_token: Secret::new("fake-access"), refresh_token: None, expires_at: None };
        let grant = bench.grant(ProviderKind::GoogleDrive, "fake-account", &tokens).await;
        let conn = bench.connect(&grant, &root, "Connected").await;
        Harness { drive, bench, ports, conn, root, elsewhere }
    }

    async fn sync(&self) -> RunStatus {
        self.bench.sync(&self.ports, &self.conn).await
    }

    fn items(&self) -> BTreeMap<String, Item> {
        self.bench.store.all_items(&self.conn).into_iter().map(|i| (i.provider_id.clone(), i)).collect()
    }

    fn downloads(&self) -> u64 {
        self.drive.calls().download.load(Ordering::Relaxed)
    }

    /// The display path of a drive item under the connected folder.
    fn expected_path(&self, id: &str, name: &str) -> String {
        let mut parts = vec![name.to_owned()];
        let mut cur = self.drive.parent_of(id);
        while let Some(p) = cur {
            if p == self.root {
                parts.push("Connected".into());
                break;
            }
            let it = self.items();
            let folder = it.get(&p).unwrap_or_else(|| panic!("folder {p} of {id} not recorded"));
            parts.push(folder.name.clone());
            cur = self.drive.parent_of(&p);
        }
        parts.reverse();
        format!("/{}", parts.join("/"))
    }

    /// The item table equals the folder: every file under the connected folder is imported
    /// with its exact bytes and its path; every folder under it is live; everything else that
    /// was ever recorded is `source_deleted` with its asset kept; no object was written twice.
    fn check(&self, context: &str) {
        let items = self.items();
        let objects = self.bench.sink.objects();
        let files = self.drive.files_under(&self.root);
        let folders: BTreeSet<String> = self.drive.folders_under(&self.root).into_iter().collect();
        for (id, (name, content)) in &files {
            let item = items.get(id).unwrap_or_else(|| panic!("{context}: file {name} ({id}) has no item"));
            assert_eq!(
                item.state,
                ItemState::Imported,
                "{context}: {name} is {:?} ({:?})",
                item.state,
                item.reason
            );
            assert_eq!(item.name, *name, "{context}: name of {id}");
            assert_eq!(item.path, self.expected_path(id, name), "{context}: path of {name}");
            let key = item.asset_key.as_ref().unwrap_or_else(|| panic!("{context}: {name} has no asset"));
            let obj = objects.get(key).unwrap_or_else(|| panic!("{context}: object of {name} missing"));
            assert_eq!(obj.sha256, hex::encode(Sha256::digest(content)), "{context}: bytes of {name}");
        }
        for id in &folders {
            let item = items.get(id).unwrap_or_else(|| panic!("{context}: folder {id} has no item"));
            assert!(item.is_live() && item.is_folder(), "{context}: folder {id} is {:?}", item.state);
        }
        for (id, item) in &items {
            if *id == self.root || files.contains_key(id) || folders.contains(id) {
                continue;
            }
            assert_eq!(
                item.state,
                ItemState::SourceDeleted,
                "{context}: {} is out of the folder but {:?}",
                item.path,
                item.state
            );
            if let Some(key) = item.asset_key.as_ref().filter(|_| !item.is_folder()) {
                assert!(objects.contains_key(key), "{context}: the asset of a deleted file is kept");
            }
        }
        self.bench.assert_each_object_written_once(context);
    }
}

#[tokio::test]
async fn changes_elsewhere_cost_no_download() {
    let h = Harness::new(50).await;
    h.drive.add_file(&h.root, "a.jpg", b"a");
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    h.check("initial");
    let before = h.downloads();
    let item_calls = h.drive.calls().item.load(Ordering::Relaxed);
    // A busy account: files and folders come and go outside the connected folder.
    let deep = h.drive.add_folder(&h.elsewhere, "deep");
    for i in 0..40 {
        let f = h.drive.add_file(&deep, &format!("x{i}.bin"), b"outside");
        h.drive.modify(&f, b"outside, modified");
    }
    h.drive.add_file(DRIVE_ROOT, "top.txt", b"at the drive's top");
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    h.check("after changes elsewhere");
    assert_eq!(h.downloads(), before, "no download for files outside the folder");
    assert_eq!(h.items().len(), 2, "nothing outside the folder is recorded");
    let resolved = h.drive.calls().item.load(Ordering::Relaxed) - item_calls;
    assert!(resolved <= 2, "unknown parents are resolved once per run and cached: {resolved} item() calls");
}

#[tokio::test]
async fn a_folder_moved_out_and_back_loses_and_duplicates_nothing() {
    let h = Harness::new(50).await;
    let sub = h.drive.add_folder(&h.root, "Sub");
    let inner = h.drive.add_folder(&sub, "Inner");
    let f1 = h.drive.add_file(&sub, "one.jpg", b"one");
    let f2 = h.drive.add_file(&inner, "two.jpg", b"two");
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    h.check("initial");
    let objects = h.bench.sink.objects().len();

    h.drive.move_to(&sub, &h.elsewhere);
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    h.check("moved out");
    let items = h.items();
    for id in [&sub, &inner, &f1, &f2] {
        assert_eq!(items[id].state, ItemState::SourceDeleted, "the subtree left with its folder");
    }

    h.drive.move_to(&sub, &h.root);
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    h.check("moved back in");
    assert_eq!(h.bench.sink.objects().len(), objects, "moved back: the same assets, nothing re-imported");
    let items = h.items();
    assert_eq!(items[&f2].path, "/Connected/Sub/Inner/two.jpg");
}

#[tokio::test]
async fn a_folder_moved_in_brings_its_subtree() {
    let h = Harness::new(2).await;
    h.drive.add_file(&h.root, "a.jpg", b"a");
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    let outside = h.drive.add_folder(&h.elsewhere, "Incoming");
    let nested = h.drive.add_folder(&outside, "Nested");
    for i in 0..5 {
        h.drive.add_file(&outside, &format!("in{i}.png"), format!("in {i}").as_bytes());
        h.drive.add_file(&nested, &format!("deep{i}.png"), format!("deep {i}").as_bytes());
    }
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    assert_eq!(h.items().len(), 2, "not yet in scope");
    h.drive.move_to(&outside, &h.root);
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    h.check("moved in");
    assert_eq!(h.items().values().filter(|i| i.state == ItemState::Imported && !i.is_folder()).count(), 11);
}

#[tokio::test]
async fn a_renamed_folder_renames_its_descendants_paths() {
    let h = Harness::new(50).await;
    let sub = h.drive.add_folder(&h.root, "Old");
    let f = h.drive.add_file(&sub, "a.jpg", b"a");
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    let downloads = h.downloads();
    h.drive.rename(&sub, "New");
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    h.check("renamed folder");
    assert_eq!(h.items()[&f].path, "/Connected/New/a.jpg");
    assert_eq!(h.downloads(), downloads, "a rename is a metadata update, never a re-import");
}

#[tokio::test]
async fn a_reset_cursor_relists_without_duplicates() {
    let h = Harness::new(3).await;
    for i in 0..7 {
        h.drive.add_file(&h.root, &format!("f{i}"), format!("{i}").as_bytes());
    }
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    let gone = h.drive.add_file(&h.root, "gone", b"gone");
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    h.drive.delete(&gone);
    h.drive.reset_cursors();
    assert_eq!(h.sync().await, RunStatus::Succeeded);
    h.check("after a cursor reset");
    assert_eq!(h.items()[&gone].state, ItemState::SourceDeleted, "the full re-listing's sweep found it gone");
}

/// One random step of a history.
fn step(h: &Harness, rng: &mut StdRng, log: &mut Vec<String>) {
    let mut folders = vec![h.root.clone()];
    folders.extend(h.drive.folders_under(&h.root));
    let outside = {
        let mut o = vec![h.elsewhere.clone()];
        o.extend(h.drive.folders_under(&h.elsewhere));
        o
    };
    let files: Vec<String> = h.drive.files_under(&h.root).into_keys().collect();
    let pick = |rng: &mut StdRng, v: &[String]| v[rng.random_range(0..v.len())].clone();
    match rng.random_range(0..100) {
        0..=24 => {
            let parent = pick(rng, &folders);
            let n = rng.random_range(0..1000);
            // Duplicate names are legal at a drive-scoped provider: the same name twice is two items.
            let name = format!("file{}.bin", n % 7);
            let id = h.drive.add_file(&parent, &name, format!("content {n}").as_bytes());
            log.push(format!("add {id} {name} under {parent}"));
        }
        25..=31 => {
            let parent = pick(rng, &folders);
            let id = h.drive.add_folder(&parent, &format!("dir{}", rng.random_range(0..100)));
            log.push(format!("mkdir {id} under {parent}"));
        }
        32..=44 if !files.is_empty() => {
            let id = pick(rng, &files);
            h.drive.modify(&id, format!("modified {}", rng.random_range(0..1_000_000)).as_bytes());
            log.push(format!("modify {id}"));
        }
        45..=52 if !files.is_empty() => {
            let id = pick(rng, &files);
            h.drive.rename(&id, &format!("renamed{}.bin", rng.random_range(0..100)));
            log.push(format!("rename {id}"));
        }
        53..=60 if folders.len() > 1 => {
            let id = pick(rng, &folders[1..]);
            h.drive.rename(&id, &format!("renamed-dir{}", rng.random_range(0..100)));
            log.push(format!("rename folder {id}"));
        }
        61..=68 => {
            // Move within, out, or in (a file or a folder, from inside or outside).
            let all: Vec<String> =
                folders[1..].iter().chain(files.iter()).chain(outside[1..].iter()).cloned().collect();
            if all.is_empty() {
                return;
            }
            let id = pick(rng, &all);
            let targets: Vec<String> = folders.iter().chain(outside.iter()).cloned().collect();
            let to = pick(rng, &targets);
            let subtree = h.drive.folders_under(&id);
            if to == id || subtree.contains(&to) {
                return;
            }
            h.drive.move_to(&id, &to);
            log.push(format!("move {id} to {to}"));
        }
        69..=76 => {
            let parent = pick(rng, &outside);
            let id =
                h.drive.add_file(&parent, "outside.bin", format!("o{}", rng.random_range(0..100)).as_bytes());
            log.push(format!("add outside {id}"));
        }
        77..=86 => {
            let all: Vec<String> = folders[1..].iter().chain(files.iter()).cloned().collect();
            if all.is_empty() {
                return;
            }
            let id = pick(rng, &all);
            h.drive.delete(&id);
            log.push(format!("delete {id}"));
        }
        87..=89 => {
            h.drive.reset_cursors();
            log.push("reset cursors".into());
        }
        _ => {}
    }
}

/// Crashes the worker at the `nth` occurrence of `step` (the process dies: nothing is cleaned
/// up, the lease stays until it expires).
struct CrashAt {
    step: Step,
    nth: usize,
    seen: AtomicUsize,
}

impl Hooks for CrashAt {
    fn at(&self, step: Step) -> Result<(), Crash> {
        if step == self.step && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.nth {
            Err(Crash)
        } else {
            Ok(())
        }
    }
}

/// A sync that, now and then, dies at a random step and is redelivered once the lease expired.
async fn sync_maybe_crashing(h: &Harness, rng: &mut StdRng, log: &mut Vec<String>) -> RunStatus {
    if rng.random_bool(0.3) {
        let step = [Step::DownloadStarted, Step::SinkCommitted, Step::ItemWritten, Step::Checkpointed]
            [rng.random_range(0..4)];
        let nth = rng.random_range(1..4);
        let hook = Arc::new(CrashAt { step, nth, seen: AtomicUsize::new(0) });
        let engine = Engine::with_hooks(h.ports.clone(), EngineConfig::default(), hook);
        let job = Job {
            client_id: h.conn.client_id.clone(),
            connection_id: h.conn.connection_id.clone(),
            trigger: Trigger::Schedule,
            run_id: None,
            requested_by: None,
            continuation: false,
            purge: false,
        };
        let deadline = h.bench.clock.now() + chrono::Duration::minutes(15);
        match engine.run_job(&job, deadline).await {
            Err(EngineError::Crashed(at)) => {
                log.push(format!("crash at {at:?} #{nth}, redelivered after the lease expired"));
                h.bench.clock.advance(std::time::Duration::from_secs(600));
            }
            Ok(JobOutcome::Finished { status, .. }) => return status,
            other => panic!("an unexpected outcome: {other:?}"),
        }
    }
    h.sync().await
}

#[tokio::test]
async fn random_histories_match_the_model() {
    const SEEDS: u64 = 200;
    const STEPS: usize = 40;
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let h = Harness::new(rng.random_range(1..6)).await;
        let mut log = Vec::new();
        for _ in 0..3 {
            step(&h, &mut rng, &mut log);
        }
        assert_eq!(h.sync().await, RunStatus::Succeeded, "seed {seed}");
        for n in 0..STEPS {
            step(&h, &mut rng, &mut log);
            if rng.random_bool(0.3) {
                let status = sync_maybe_crashing(&h, &mut rng, &mut log).await;
                assert_eq!(status, RunStatus::Succeeded, "seed {seed} step {n}");
                let ctx = format!("seed {seed} after step {n}; history:\n{}", log.join("\n"));
                h.check(&ctx);
            }
        }
        assert_eq!(h.sync().await, RunStatus::Succeeded, "seed {seed}");
        h.check(&format!("seed {seed} at the end; history:\n{}", log.join("\n")));
    }
}
