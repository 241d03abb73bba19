//! The model-based sync test on every sandboxed provider (every row of
//! `conformance::subjects()`: Dropbox, Google Drive, …), provider-neutral: it speaks to the
//! sandbox only through `ProviderControl` (ids, not paths) and syncs through the conformance
//! [`Bench`] (the real engine on in-memory ports).
//!
//! Random histories over folders inside the connected folder and inside a folder outside it —
//! add a file (inside, or outside to be moved in later), make a folder, modify, rename a file
//! (to a fresh name, or, where names need not be unique, to a sibling's name), rename a
//! folder, move a file or a folder with its subtree within / out / in, delete a file or a
//! folder with its subtree, delete a file and add a new one under the same name, reset every
//! cursor — are applied to the sandbox (the reference model) and synced at random points.
//! Syncs transfer eight files at once (`transfer_concurrency`, the engine's default).
//! Some syncs crash at a random engine [`Step`] (the `n`-th download start, object commit,
//! item write or checkpoint) and are redelivered at once, as in `model.rs` (a crash left
//! pending while the source changes can leave an orphan object; see the issue notes there).
//! An operation the provider refuses (a name taken where paths are unique, a folder moved into
//! itself) is logged as refused and skipped.
//!
//! After every sync: [`Bench::check`] (every live file imported with its exact bytes at its
//! name, everything gone `source_deleted` with its asset kept, no object written twice) and
//! the tree itself: every live file and folder under the connected folder has an item at the
//! path its parent chain gives (`/Connected/…`, also where the provider reports no paths) with
//! that parent, and no folder outside the tree is live in the store (scope by ancestry relies
//! on it).
//!
//! Seeds `0..SEEDS` per provider (150 x 60 steps each: about 9 s for both providers in a
//! debug build); `MODEL_ANY_SEED=<n>` runs that one seed only (on every provider, known-bug
//! seeds included) and prints its history. Every seed runs; a failure prints the provider,
//! the seed and the history, and the test lists every failing (provider, seed).
//!
//! It found that on Dropbox a file deleted (or replaced by a new file of the same name) inside
//! a folder renamed or moved since the last sync stayed `imported` at its old path; fixed, and
//! `a_file_deleted_in_a_renamed_folder_on_dropbox` keeps the minimal history.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use extconn_core::engine::{Engine, EngineConfig, EngineError, JobOutcome, Step};
use extconn_core::ports::Clock;
use extconn_core::{AssetEventKind, Item, Job, Trigger};
use extconn_sandbox::Service;
use extconn_sandbox::{Content, ControlError, Node};
use extconn_system_tests::CrashAt;
use extconn_system_tests::conformance::{self, Bench, Subject, subjects};
use futures::FutureExt;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SEEDS: u64 = 150;
const STEPS: usize = 60;
const SEED_VAR: &str = "MODEL_ANY_SEED";

/// Where an entry is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    Inside,
    Outside,
    Gone,
}

/// One history on one bench.
struct History<'a> {
    b: &'a Bench,
    seed: u64,
    rng: StdRng,
    log: &'a mut Vec<String>,
    /// Every folder the history created (alive or not; where it is now is asked of the sandbox).
    folders: Vec<String>,
}

impl History<'_> {
    fn node(&self, id: &str) -> Option<Node> {
        self.b.control.node(&self.b.account, id).ok().flatten()
    }

    /// The area of an entry and its path there (`/Connected/…`, `/Outside/…`), from its
    /// parent chain in the sandbox.
    fn locate(&self, id: &str) -> (Area, String) {
        let mut names = Vec::new();
        let mut cur = id.to_owned();
        for _ in 0..64 {
            let area = if cur == self.b.folder {
                Some((Area::Inside, "/Connected"))
            } else if cur == self.b.outside {
                Some((Area::Outside, "/Outside"))
            } else {
                None
            };
            if let Some((area, top)) = area {
                names.push(top.to_owned());
                names.reverse();
                return (area, names.concat());
            }
            let Some(node) = self.node(&cur) else { break };
            names.push(format!("/{}", node.name));
            match node.parent_id {
                Some(p) => cur = p,
                None => break,
            }
        }
        (Area::Gone, format!("#{id}"))
    }

    fn show(&self, id: &str) -> String {
        self.locate(id).1
    }

    fn folders_in(&self, area: Area) -> Vec<String> {
        let top = if area == Area::Inside { &self.b.folder } else { &self.b.outside };
        let mut v = vec![top.clone()];
        v.extend(self.folders.iter().filter(|f| self.locate(f).0 == area).cloned());
        v
    }

    fn files(&self, folder: &str) -> Vec<Node> {
        self.b.control.list_files(&self.b.account, folder).expect("list files")
    }

    fn pick<T: Clone>(&mut self, v: &[T]) -> Option<T> {
        (!v.is_empty()).then(|| v[self.rng.random_range(0..v.len())].clone())
    }

    /// Logs `what` and its outcome (a refusal is a skipped operation).
    fn did<T>(&mut self, what: String, r: Result<T, ControlError>) -> Option<T> {
        match r {
            Ok(v) => {
                self.log.push(what);
                Some(v)
            }
            Err(e) => {
                self.log.push(format!("{what} (refused: {e})"));
                None
            }
        }
    }

    fn add_file(&mut self, parent: &str, name: &str, text: &str) {
        let what = format!("add {}/{name}", self.show(parent));
        let r = self.b.control.add_file(&self.b.account, parent, name, Content::text(text));
        self.did(what, r);
    }

    fn add_folder(&mut self, parent: &str, name: &str) {
        let what = format!("mkdir {}/{name}", self.show(parent));
        let r = self.b.control.add_folder(&self.b.account, parent, name);
        if let Some(node) = self.did(what, r) {
            self.folders.push(node.id);
        }
    }

    /// One random operation on the sandbox.
    fn step(&mut self) {
        let b = self.b;
        let (acct, ctl) = (b.account.as_str(), &b.control);
        let inside = self.folders_in(Area::Inside);
        let outside = self.folders_in(Area::Outside);
        let files_in = self.files(&b.folder);
        let files_out = self.files(&b.outside);
        let n: u32 = self.rng.random_range(0..1_000_000);
        match self.rng.random_range(0..100) {
            0..=17 => {
                let Some(parent) = self.pick(&inside) else { return };
                self.add_file(&parent, &format!("file{}.bin", n % 5), &format!("content {n}"));
            }
            18..=23 => {
                let Some(parent) = self.pick(&inside) else { return };
                self.add_folder(&parent, &format!("dir{}", n % 4));
            }
            24..=27 => {
                // Something new outside, to be moved in later.
                let Some(parent) = self.pick(&outside) else { return };
                if n.is_multiple_of(2) {
                    self.add_file(&parent, &format!("out{}.bin", n % 3), &format!("outside {n}"));
                } else {
                    self.add_folder(&parent, &format!("odir{}", n % 3));
                }
            }
            28..=38 => {
                let Some(f) = self.pick(&files_in) else { return };
                let what = format!("modify {}", self.show(&f.id));
                let r = ctl.modify_file(acct, &f.id, Content::text(&format!("modified {n}")));
                self.did(what, r);
            }
            39..=46 => {
                let Some(f) = self.pick(&files_in) else { return };
                let siblings: Vec<String> = files_in
                    .iter()
                    .filter(|s| s.parent_id == f.parent_id && s.id != f.id)
                    .map(|s| s.name.clone())
                    .collect();
                let unique = b.provider.capabilities().unique_paths;
                let name = match self.pick(&siblings) {
                    Some(taken) if !unique && n.is_multiple_of(2) => taken,
                    _ => format!("renamed{}.bin", n % 5),
                };
                let what = format!("rename {} -> {name}", self.show(&f.id));
                let r = ctl.move_entry(acct, &f.id, None, Some(&name));
                self.did(what, r);
            }
            47..=55 => {
                // A file moved within, out, or in.
                let all: Vec<Node> = files_in.iter().chain(&files_out).cloned().collect();
                let Some(f) = self.pick(&all) else { return };
                let targets: Vec<String> = inside.iter().chain(&outside).cloned().collect();
                let Some(dir) = self.pick(&targets) else { return };
                let what = format!("move {} -> {}/", self.show(&f.id), self.show(&dir));
                let r = ctl.move_entry(acct, &f.id, Some(&dir), None);
                self.did(what, r);
            }
            56..=63 => {
                // A folder (with its subtree) moved within, out, or in.
                let alive: Vec<String> =
                    self.folders.iter().filter(|f| self.locate(f).0 != Area::Gone).cloned().collect();
                let Some(from) = self.pick(&alive) else { return };
                let targets: Vec<String> = inside.iter().chain(&outside).cloned().collect();
                let Some(dir) = self.pick(&targets) else { return };
                let what = format!("move folder {} -> {}/", self.show(&from), self.show(&dir));
                let r = ctl.move_entry(acct, &from, Some(&dir), None);
                self.did(what, r);
            }
            64..=67 => {
                let alive: Vec<String> =
                    self.folders.iter().filter(|f| self.locate(f).0 != Area::Gone).cloned().collect();
                let Some(dir) = self.pick(&alive) else { return };
                let name = format!("dir{}", n % 4);
                let what = format!("rename folder {} -> {name}", self.show(&dir));
                let r = ctl.move_entry(acct, &dir, None, Some(&name));
                self.did(what, r);
            }
            68..=74 => {
                let Some(f) = self.pick(&files_in) else { return };
                let what = format!("delete {}", self.show(&f.id));
                let r = ctl.delete(acct, &f.id);
                self.did(what, r);
            }
            75..=78 => {
                let Some(dir) = self.pick(&inside[1..]) else { return };
                let what = format!("delete folder {}", self.show(&dir));
                let r = ctl.delete(acct, &dir);
                self.did(what, r);
            }
            79..=86 => {
                // The same name, a new file: delete `logo.png`, upload a new `logo.png`.
                let Some(f) = self.pick(&files_in) else { return };
                let parent = f.parent_id.clone().unwrap_or_default();
                let what = format!("replace {}", self.show(&f.id));
                let r = ctl.delete(acct, &f.id).and_then(|()| {
                    ctl.add_file(acct, &parent, &f.name, Content::text(&format!("replacement {n}")))
                });
                self.did(what, r);
            }
            87..=89 => {
                self.log.push("reset cursors".into());
                ctl.reset_cursors();
            }
            _ => {}
        }
    }

    /// A sync, then the suite's checks and the tree's.
    async fn synced(&mut self, case: &str) {
        let case = format!("seed {} {case}", self.seed);
        self.b.synced(&case).await;
        self.check_tree(&case);
    }

    /// Every live entry under the connected folder has a live item at its parent chain's path
    /// with its parent; no folder outside the tree is live in the store.
    fn check_tree(&self, case: &str) {
        let ctx = format!("{} / {case}", self.b.name);
        let items = self.b.items();
        let live_files = self.files(&self.b.folder);
        let live_folders = self.folders_in(Area::Inside);
        let nodes = live_files.iter().map(|f| f.id.clone()).chain(live_folders.iter().skip(1).cloned());
        let mut live = std::collections::BTreeSet::new();
        for id in nodes {
            let node = self.node(&id).unwrap_or_else(|| panic!("{ctx}: {id} vanished"));
            let (_, path) = self.locate(&id);
            let item: &Item = items.get(&id).unwrap_or_else(|| panic!("{ctx}: {path} has no item"));
            assert!(item.is_live(), "{ctx}: {path} is in the folder but its item is {:?}", item.state);
            assert_eq!(item.path, path, "{ctx}: the item's path follows the parent chain");
            assert_eq!(
                item.parent_id, node.parent_id,
                "{ctx}: the item's parent follows the source ({path})"
            );
            live.insert(id);
        }
        for item in items.values() {
            if item.is_folder() && item.is_live() && item.provider_id != self.b.folder {
                assert!(
                    live.contains(&item.provider_id),
                    "{ctx}: folder {} ({}) left the tree but its item is live",
                    item.path,
                    self.show(&item.provider_id)
                );
            }
        }
    }

    /// A sync that dies at a random step (nothing cleaned up; the lease stays until it
    /// expires); the next sync is its redelivery. True when it crashed.
    async fn crash_once(&mut self) -> bool {
        let steps = [Step::DownloadStarted, Step::SinkCommitted, Step::ItemWritten, Step::Checkpointed];
        let step = steps[self.rng.random_range(0..steps.len())];
        let nth = self.rng.random_range(1..4);
        let b = self.b;
        let engine = Engine::with_hooks(
            b.ports.clone(),
            EngineConfig { transfer_concurrency: b.transfer_concurrency, ..EngineConfig::default() },
            CrashAt::new(step, nth),
        );
        let job = Job {
            client_id: b.conn.client_id.clone(),
            connection_id: b.conn.connection_id.clone(),
            trigger: Trigger::Schedule,
            run_id: None,
            requested_by: None,
            continuation: false,
            purge: false,
        };
        let deadline = b.mem.clock.now() + chrono::Duration::minutes(15);
        match engine.run_job(&job, deadline).await {
            Err(EngineError::Crashed(at)) => {
                self.log.push(format!("sync crashing at {at:?} #{nth}"));
                b.mem.clock.advance(Duration::from_secs(600));
                true
            }
            Ok(JobOutcome::Finished { .. }) => {
                self.log.push(format!("sync (a crash at {step:?} #{nth} never came)"));
                false
            }
            other => panic!("a sync ended {other:?}"),
        }
    }

    async fn run(&mut self) {
        for _ in 0..4 {
            self.step();
        }
        self.log.push("sync".into());
        self.synced("initial").await;
        for n in 0..STEPS {
            self.step();
            let crashed = self.rng.random_bool(0.1) && self.crash_once().await;
            if crashed || self.rng.random_bool(0.35) {
                self.log.push(if crashed { "sync (redelivery)".into() } else { "sync".into() });
                self.synced(&format!("after step {n}")).await;
            }
        }
        self.log.push("sync".into());
        self.synced("at the end").await;
    }
}

/// One seed's history on a fresh bench of `subject`. A failure prints provider, seed and
/// history and is returned (its panic message).
async fn run_seed(subject: &Subject, seed: u64) -> Result<(), String> {
    let mut b = Bench::new(subject).await;
    // Eight transfers at once (the engine's default), on every provider.
    b.transfer_concurrency = 8;
    let mut log = Vec::new();
    let result = AssertUnwindSafe(async {
        let mut h =
            History { b: &b, seed, rng: StdRng::seed_from_u64(seed), log: &mut log, folders: Vec::new() };
        h.run().await;
    })
    .catch_unwind()
    .await;
    let history = log.join("\n  ");
    match result {
        Ok(()) if std::env::var(SEED_VAR).is_ok() => {
            eprintln!("model_any: {} seed {seed} passed; history:\n  {history}", b.name);
            Ok(())
        }
        Ok(()) => Ok(()),
        Err(panic) => {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            eprintln!(
                "model_any: {} seed {seed} ({SEED_VAR}={seed}) failed: {why}\nhistory:\n  {history}",
                b.name
            );
            Err(format!("{} seed {seed}: {why}", b.name))
        }
    }
}

fn seeds() -> Vec<u64> {
    match std::env::var(SEED_VAR) {
        Ok(s) => vec![s.parse().unwrap_or_else(|_| panic!("{SEED_VAR}={s}: not a seed"))],
        Err(_) => (0..SEEDS).collect(),
    }
}

#[tokio::test]
async fn random_histories_on_every_provider_match_the_sandbox() {
    let mut failed = Vec::new();
    for subject in subjects() {
        for seed in seeds() {
            if let Err(e) = run_seed(&subject, seed).await {
                failed.push(e);
            }
        }
    }
    assert!(failed.is_empty(), "{} failing histories:\n{}", failed.len(), failed.join("\n"));
}

/// The minimal history behind what were the Dropbox failures of the random test (seeds 8, 27,
/// 62, 79, 109 of 150): a synced folder `d` holding `a.bin` is renamed to `e`, then `e/a.bin`
/// is deleted, then a sync. Expected: `a.bin`'s item `source_deleted`.
///
/// Dropbox's feed reports "deleted /connected/d", the folder's own id at `/connected/e` and
/// every child still there at its new path, never `a.bin` again. The engine takes the deleted
/// path whose id reappears for a rename; it used to leave `a.bin` `imported` at its old path
/// until a cursor reset. Now what is left below a renamed folder and not reported again by
/// the end of the listing is `source_deleted` (`note_renamed_below` in the engine), also when
/// the step crashed and was redelivered after the folder was re-pathed (seed 79).
async fn renamed_folder_then_a_file_deleted(subject: &Subject) -> Bench {
    let b = Bench::new(subject).await;
    let d = b.add_folder(&b.folder, "d");
    let a = b.add_file(&d, "a.bin", "a");
    b.add_file(&d, "b.bin", "b");
    b.synced("before").await;
    b.control.move_entry(&b.account, &d, None, Some("e")).expect("rename the folder");
    b.control.delete(&b.account, &a).expect("delete the file");
    assert_eq!(b.sync().await, extconn_core::RunStatus::Succeeded);
    b
}

#[tokio::test]
async fn a_file_deleted_in_a_renamed_folder_on_google_drive() {
    let b = renamed_folder_then_a_file_deleted(&conformance::subject(Service::GoogleDrive)).await;
    b.check("a file deleted in a renamed folder");
}

#[tokio::test]
async fn a_file_deleted_in_a_renamed_folder_on_dropbox() {
    let b = renamed_folder_then_a_file_deleted(&conformance::subject(Service::Dropbox)).await;
    b.check("a file deleted in a renamed folder");
    // Only the deleted file is reported gone: the renamed folder's other file just moved.
    let gone = b.mem.events.all().into_iter().filter(|e| e.kind == AssetEventKind::SourceDeleted).count();
    assert_eq!(gone, 1, "one deletion event");
}

#[tokio::test]
async fn a_file_deleted_in_a_renamed_folder_on_sharepoint() {
    let b = renamed_folder_then_a_file_deleted(&conformance::subject(Service::Sharepoint)).await;
    b.check("a file deleted in a renamed folder");
}
