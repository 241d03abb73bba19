//! Model-based test on the Dropbox sandbox (reliability.md M1, the sync part): random histories
//! of adds, modifies, renames, moves within / out / in (files and folders with their subtrees),
//! deletes of files and folders, a path reused by a new file, and cursor resets, applied to the
//! sandbox and synced at random points — some syncs dying at a random step and redelivered —
//! always leave the item table equal to the folder's true contents (the sandbox is the reference
//! model): every live file imported with its exact bytes at its current path, everything gone
//! `source_deleted` with its asset kept, no object written twice. A failure prints the seed and
//! the history.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use extconn_core::engine::{Engine, EngineConfig, EngineError, JobOutcome, Step};
use extconn_core::{ConnKey, ItemState, Job, RunStatus, Trigger};
use extconn_sandbox::dropbox::Content;
use extconn_system_tests::{CrashAt, FOLDER, World, WorldOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const OUTSIDE: &str = "/Outside";

struct Tree {
    /// Folders the history created, by current display path (inside and outside the connection).
    folders: Vec<String>,
}

impl Tree {
    fn inside(&self) -> Vec<String> {
        let mut v = vec![FOLDER.to_owned()];
        v.extend(self.folders.iter().filter(|f| f.starts_with(&format!("{FOLDER}/"))).cloned());
        v
    }
    fn outside(&self) -> Vec<String> {
        let mut v = vec![OUTSIDE.to_owned()];
        v.extend(self.folders.iter().filter(|f| f.starts_with(&format!("{OUTSIDE}/"))).cloned());
        v
    }
    /// A folder moved from `from` to `to`: its sub-folders follow.
    fn moved(&mut self, from: &str, to: &str) {
        let under = format!("{from}/");
        for f in &mut self.folders {
            if *f == from {
                *f = to.to_owned();
            } else if let Some(rest) = f.strip_prefix(&under) {
                *f = format!("{to}/{rest}");
            }
        }
    }
    fn deleted(&mut self, path: &str) {
        let under = format!("{path}/");
        self.folders.retain(|f| f != path && !f.starts_with(&under));
    }
}

fn pick<T: Clone>(rng: &mut StdRng, v: &[T]) -> Option<T> {
    (!v.is_empty()).then(|| v[rng.random_range(0..v.len())].clone())
}

fn step(w: &World, tree: &mut Tree, rng: &mut StdRng, log: &mut Vec<String>) {
    let (dbx, acct) = (&w.dbx, &w.account);
    let files_in: Vec<String> = dbx.list_files(acct, FOLDER).into_iter().map(|f| f.path_display).collect();
    let files_out: Vec<String> = dbx.list_files(acct, OUTSIDE).into_iter().map(|f| f.path_display).collect();
    let n: u32 = rng.random_range(0..1_000_000);
    let op = rng.random_range(0..100);
    let done = match op {
        0..=21 => {
            let Some(parent) = pick(rng, &tree.inside()) else { return };
            let path = format!("{parent}/file{}.bin", n % 5);
            log.push(format!("add {path}"));
            dbx.try_add_file(acct, &path, Content::text(&format!("content {n}"))).is_ok()
        }
        22..=28 => {
            let Some(parent) = pick(rng, &tree.inside()) else { return };
            let path = format!("{parent}/dir{}", n % 4);
            log.push(format!("mkdir {path}"));
            let ok = dbx.try_add_folder(acct, &path).is_ok();
            if ok {
                tree.folders.push(path);
            }
            ok
        }
        29..=40 => {
            let Some(path) = pick(rng, &files_in) else { return };
            log.push(format!("modify {path}"));
            dbx.try_modify_file(acct, &path, Content::text(&format!("modified {n}"))).is_ok()
        }
        41..=47 => {
            let Some(path) = pick(rng, &files_in) else { return };
            let to = format!("{}/renamed{}.bin", path.rsplit_once('/').map_or("", |p| p.0), n % 5);
            log.push(format!("rename {path} -> {to}"));
            dbx.try_move_entry(acct, &path, &to).is_ok()
        }
        48..=57 => {
            // A file moved within, out, or in.
            let all: Vec<String> = files_in.iter().chain(files_out.iter()).cloned().collect();
            let Some(path) = pick(rng, &all) else { return };
            let targets: Vec<String> = tree.inside().into_iter().chain(tree.outside()).collect();
            let Some(dir) = pick(rng, &targets) else { return };
            let to = format!("{dir}/{}", path.rsplit_once('/').map_or(path.as_str(), |p| p.1));
            log.push(format!("move {path} -> {to}"));
            dbx.try_move_entry(acct, &path, &to).is_ok()
        }
        58..=66 => {
            // A folder (with its subtree) moved within, out, or in.
            let Some(from) = pick(rng, &tree.folders) else { return };
            let targets: Vec<String> = tree.inside().into_iter().chain(tree.outside()).collect();
            let Some(dir) = pick(rng, &targets) else { return };
            if dir == from || dir.starts_with(&format!("{from}/")) {
                return;
            }
            let to = format!("{dir}/{}", from.rsplit_once('/').map_or(from.as_str(), |p| p.1));
            log.push(format!("move folder {from} -> {to}"));
            let ok = dbx.try_move_entry(acct, &from, &to).is_ok();
            if ok {
                tree.moved(&from, &to);
            }
            ok
        }
        67..=74 => {
            let Some(path) = pick(rng, &files_in) else { return };
            log.push(format!("delete {path}"));
            dbx.try_delete(acct, &path).is_ok()
        }
        75..=79 => {
            let inside: Vec<String> = tree.inside().into_iter().skip(1).collect();
            let Some(path) = pick(rng, &inside) else { return };
            log.push(format!("delete folder {path}"));
            let ok = dbx.try_delete(acct, &path).is_ok();
            if ok {
                tree.deleted(&path);
            }
            ok
        }
        80..=87 => {
            // The same path, a new file: delete `logo.png`, upload a new `logo.png`.
            let Some(path) = pick(rng, &files_in) else { return };
            log.push(format!("replace {path}"));
            dbx.try_delete(acct, &path).is_ok()
                && dbx.try_add_file(acct, &path, Content::text(&format!("replacement {n}"))).is_ok()
        }
        88..=90 => {
            log.push("reset cursors".into());
            dbx.reset_cursors();
            true
        }
        _ => false,
    };
    if !done && let Some(last) = log.last_mut() {
        last.push_str(" (refused)");
    }
}

async fn check(w: &World, context: &str) {
    match w.sync(Trigger::Schedule).await {
        JobOutcome::Finished { status: RunStatus::Succeeded, .. } => {}
        other => panic!("{context}: the sync ended {other:?}"),
    }
    w.assert_invariants().await;
    let live: BTreeSet<String> = w.dbx.list_files(&w.account, FOLDER).into_iter().map(|f| f.id).collect();
    for item in w.items() {
        if !item.is_folder() && !live.contains(&item.provider_id) {
            assert_eq!(
                item.state,
                ItemState::SourceDeleted,
                "{context}: {} left but is {:?}",
                item.path,
                item.state
            );
        }
    }
    // Events are at least once (a crash between an event and its item write repeats it);
    // objects are exactly once: a redelivered import finds its object already there.
    assert_eq!(w.memory_sink.created() as usize, w.objects().len(), "{context}: an object was written twice");
}

/// A sync that dies at a random step (nothing cleaned up; the lease stays until it expires);
/// the next check's sync is its redelivery. True when it crashed.
async fn crash_once(w: &World, rng: &mut StdRng, log: &mut Vec<String>) -> bool {
    let steps = [Step::DownloadStarted, Step::SinkCommitted, Step::ItemWritten, Step::Checkpointed];
    let step = steps[rng.random_range(0..steps.len())];
    let nth = rng.random_range(1..4);
    let engine = w.engine_with(w.config(), CrashAt::new(step, nth));
    match engine.run_job(&w.job(Trigger::Schedule), w.deadline()).await {
        Err(EngineError::Crashed(at)) => {
            log.push(format!("crash at {at:?} #{nth}"));
            w.clock.advance(Duration::from_secs(600));
            true
        }
        Ok(JobOutcome::Finished { .. }) => {
            log.push("a sync that could have crashed finished".into());
            false
        }
        other => panic!("an unexpected outcome: {other:?}"),
    }
}

#[tokio::test]
async fn random_histories_on_dropbox_match_the_model() {
    const SEEDS: u64 = 40;
    const STEPS: usize = 30;
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let w = World::new(WorldOptions { page_limit: rng.random_range(1..6), ..Default::default() }).await;
        w.dbx.add_folder(&w.account, OUTSIDE);
        let mut tree = Tree { folders: Vec::new() };
        let mut log = Vec::new();
        for _ in 0..4 {
            step(&w, &mut tree, &mut rng, &mut log);
        }
        check(&w, &format!("seed {seed}, initial; history:\n{}", log.join("\n"))).await;
        for n in 0..STEPS {
            step(&w, &mut tree, &mut rng, &mut log);
            // A crash is redelivered before the source changes again: a file deleted between a
            // crash after its object was stored and the redelivery leaves that object with no
            // item (an orphan object; see the issue notes).
            let crashed = rng.random_bool(0.1) && crash_once(&w, &mut rng, &mut log).await;
            if crashed || rng.random_bool(0.35) {
                check(&w, &format!("seed {seed} after step {n}; history:\n{}", log.join("\n"))).await;
            }
        }
        check(&w, &format!("seed {seed} at the end; history:\n{}", log.join("\n"))).await;
    }
}

/// A connection's item table and objects, without what legitimately differs between two
/// connections or two runs: the connection id in asset keys, run ids (`seen_in` is kept as
/// present or not, `failed_in` dropped) and the clock.
fn snapshot(w: &World, conn: &ConnKey) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let prefix = format!("{}/{}/", conn.client_id, conn.connection_id);
    let items = w
        .store
        .all_items(conn)
        .into_iter()
        .map(|mut i| {
            i.asset_key = i.asset_key.map(|k| k.strip_prefix(&prefix).map(str::to_owned).unwrap_or(k));
            i.seen_in = i.seen_in.map(|_| "listing".into());
            i.failed_in = None;
            i.updated_at = Default::default();
            i.next_attempt_at = None;
            (i.provider_id.clone(), format!("{i:?}"))
        })
        .collect();
    let objects = w
        .memory_sink
        .objects()
        .into_iter()
        .filter_map(|(k, o)| k.strip_prefix(&prefix).map(|k| (k.to_owned(), o.sha256)))
        .collect();
    (items, objects)
}

/// A second connection on the world's folder: a folder is connected once per client, so it
/// belongs to another client, through its own grant on the same account and tokens.
async fn twin_connection(w: &World) -> ConnKey {
    use extconn_core::ports::{ConnectionStore, GrantStore};
    let client = extconn_core::ClientId::parse("twin").expect("client id");
    let grant = extconn_core::Grant {
        client_id: client.clone(),
        id: extconn_core::GrantId::generate(),
        ..w.grant.clone()
    };
    GrantStore::create(w.store.as_ref(), &grant).await.expect("grant");
    let conn = extconn_core::Connection {
        client_id: client,
        id: extconn_core::ConnectionId::generate(),
        grant_id: grant.id.clone(),
        ..w.connection().await
    };
    ConnectionStore::create(w.store.as_ref(), &conn).await.expect("connection");
    conn.key()
}

/// Property: transferring eight files at once leaves the same item table and the same stored
/// objects as one at a time, for the same source changes. Two connections on the same folder
/// of one sandbox (same ids, same revisions; two clients) sync the same random histories (the generator of
/// the model test above: adds, edits, renames, moves in / out / within, folder moves and
/// deletes, a path reused, cursor resets), one with concurrency 1, one with 8, and are
/// compared after every sync. Pages are short, so files and the changes that depend on them
/// (a rename or deletion of a file added just before) often share a page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_at_once_and_one_at_a_time_leave_the_same_state() {
    const SEEDS: u64 = 25;
    const STEPS: usize = 30;
    for seed in 0..SEEDS {
        let mut rng = StdRng::seed_from_u64(1_000 + seed);
        let page_limit = rng.random_range(1..8);
        let w = World::new(WorldOptions { page_limit, ..Default::default() }).await;
        w.dbx.add_folder(&w.account, OUTSIDE);
        let one = twin_connection(&w).await;
        let eight = w.conn.clone();
        let engines = [(one.clone(), 1), (eight.clone(), 8)].map(|(conn, n)| {
            let config = EngineConfig { transfer_concurrency: n, ..EngineConfig::default() };
            (conn, Engine::new(w.ports.clone(), config))
        });
        let mut tree = Tree { folders: Vec::new() };
        let mut log = Vec::new();
        for n in 0..STEPS {
            // Several changes between syncs: long change pages mixing them.
            for _ in 0..rng.random_range(1..6) {
                step(&w, &mut tree, &mut rng, &mut log);
            }
            if n + 1 < STEPS && !rng.random_bool(0.4) {
                continue;
            }
            for (conn, engine) in &engines {
                let job = Job::start(conn, Trigger::Schedule);
                let out = engine.run_job(&job, w.deadline()).await.expect("sync step");
                assert!(
                    matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. }),
                    "seed {seed} step {n}: {out:?}; history:\n{}",
                    log.join("\n")
                );
            }
            let (a, b) = (snapshot(&w, &one), snapshot(&w, &eight));
            let context =
                format!("seed {seed} (page limit {page_limit}) after step {n}; history:\n{}", log.join("\n"));
            assert!(!a.0.is_empty(), "{context}: nothing synced");
            assert_eq!(a.0, b.0, "{context}: item tables differ (left: one at a time)");
            assert_eq!(a.1, b.1, "{context}: stored objects differ (left: one at a time)");
            let (ca, cb) = (
                extconn_core::ports::ConnectionStore::get(w.store.as_ref(), &one)
                    .await
                    .unwrap()
                    .unwrap()
                    .counters,
                extconn_core::ports::ConnectionStore::get(w.store.as_ref(), &eight)
                    .await
                    .unwrap()
                    .unwrap()
                    .counters,
            );
            assert_eq!(ca, cb, "{context}: connection counters differ");
        }
        // (The model test above checks either against the source; here they are compared.)
    }
}
