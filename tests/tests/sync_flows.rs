//! The engine's main flows against the Dropbox sandbox: initial import over several pages,
//! O(changes) incremental syncs, renames, moves and deletions.

use extconn_core::engine::JobOutcome;
use extconn_core::{AssetEventKind, ConnectionStatus, ItemState, RunStatus, Trigger};
use extconn_sandbox::dropbox::{Content, Fault};
use extconn_system_tests::{Ep, FOLDER, SinkKind, World, WorldOptions};

fn finished(o: &JobOutcome) -> RunStatus {
    match o {
        JobOutcome::Finished { status, .. } => *status,
        other => panic!("run did not finish: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn initial_import_of_5000_files_then_o_of_changes() {
    let w = World::new(WorldOptions { page_limit: 1000, ..Default::default() }).await;
    w.dbx.seed_tree(&w.account, FOLDER, 5000, 250, 64);

    let out = w.sync(Trigger::Initial).await;
    assert_eq!(finished(&out), RunStatus::Succeeded);
    assert!(w.calls(Ep::ListFolderContinue) >= 4, "5,000 files at 1,000 a page arrive over several pages");
    assert_eq!(w.calls(Ep::Download), 5000);
    let conn = w.connection().await;
    assert_eq!(conn.counters.files, 5000);
    assert!(conn.last_synced_at.is_some());
    let JobOutcome::Finished { run_id, .. } = out else { unreachable!() };
    let run = extconn_core::ports::RunStore::get(w.store.as_ref(), &w.conn, &run_id).await.unwrap().unwrap();
    assert_eq!((run.counters.imported, run.counters.failed, run.counters.scanned), (5000, 0, 5000));
    w.assert_invariants().await;

    // No change: exactly one list_folder/continue and no download.
    w.dbx.reset_counters();
    assert_eq!(finished(&w.sync(Trigger::Schedule).await), RunStatus::Succeeded);
    assert_eq!(w.calls(Ep::ListFolderContinue), 1, "a no-change sync is one continue call");
    assert_eq!(w.provider_calls(), 1, "and nothing else");

    // One modified file: at most 3 provider calls.
    let victim = w.dbx.list_files(&w.account, FOLDER)[1234].clone();
    w.dbx.modify_file(&w.account, &victim.id, Content::text("new content"));
    w.dbx.reset_counters();
    let objects_before = w.objects().len();
    assert_eq!(finished(&w.sync(Trigger::Schedule).await), RunStatus::Succeeded);
    assert!(w.provider_calls() <= 3, "one modified file cost {} calls", w.provider_calls());
    assert_eq!(w.calls(Ep::Download), 1);
    assert_eq!(w.objects().len(), objects_before + 1, "a content change is a new asset version");
    let item = w.items().into_iter().find(|i| i.provider_id == victim.id).unwrap();
    assert_eq!(item.state, ItemState::Imported);
    w.assert_invariants().await;
    assert!(w.events.all().iter().any(|e| e.kind == AssetEventKind::Updated && e.provider_id == victim.id));
    w.assert_no_leaks(&[]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_move_delete_and_folder_rename() {
    let w = World::new(WorldOptions::default()).await;
    let a = w.add("a.jpg", "aaa");
    let b = w.add("sub/b.png", "bbb");
    let c = w.add("sub/c.pdf", "ccc");
    let d = w.add("d.txt", "ddd");
    w.dbx.add_folder(&w.account, "/Elsewhere");
    assert_eq!(finished(&w.sync(Trigger::Initial).await), RunStatus::Succeeded);
    w.assert_invariants().await;
    let objects = w.objects();
    assert_eq!(objects.len(), 4);

    // Rename, move within scope, delete, move out of scope, delete a folder.
    w.dbx.move_entry(&w.account, &format!("{FOLDER}/a.jpg"), &format!("{FOLDER}/A renamed.jpg"));
    w.dbx.move_entry(&w.account, &format!("{FOLDER}/d.txt"), &format!("{FOLDER}/sub/d.txt"));
    w.dbx.delete(&w.account, &format!("{FOLDER}/sub/b.png"));
    w.dbx.move_entry(&w.account, &format!("{FOLDER}/sub/c.pdf"), "/Elsewhere/c.pdf");
    assert_eq!(finished(&w.sync(Trigger::Schedule).await), RunStatus::Succeeded);
    assert_eq!(w.objects(), objects, "renames, moves and deletions create no asset and remove none");
    w.assert_invariants().await;
    let items = w.items();
    let get = |id: &str| items.iter().find(|i| i.provider_id == id).unwrap().clone();
    assert_eq!(
        (get(&a.id).state, get(&a.id).path.as_str()),
        (ItemState::Imported, "/Team Assets/A renamed.jpg")
    );
    assert_eq!(get(&d.id).path, "/Team Assets/sub/d.txt");
    assert_eq!(get(&b.id).state, ItemState::SourceDeleted, "deleted → source_deleted");
    assert!(get(&b.id).asset_key.is_some(), "its asset is kept");
    assert_eq!(get(&c.id).state, ItemState::SourceDeleted, "moved out of scope → source_deleted");
    let kinds: Vec<AssetEventKind> = w.events.all().iter().map(|e| e.kind).collect();
    assert_eq!(kinds.iter().filter(|k| **k == AssetEventKind::MetadataUpdated).count(), 2);
    assert_eq!(kinds.iter().filter(|k| **k == AssetEventKind::SourceDeleted).count(), 2);

    // Moving back in restores the same asset, no duplicate.
    w.dbx.move_entry(&w.account, "/Elsewhere/c.pdf", &format!("{FOLDER}/c.pdf"));
    w.sync(Trigger::Manual).await;
    assert_eq!(get(&c.id).asset_key, w.items().iter().find(|i| i.provider_id == c.id).unwrap().asset_key);
    assert_eq!(w.objects(), objects);
    w.assert_invariants().await;

    // Deleting a whole folder marks its files.
    w.dbx.delete(&w.account, &format!("{FOLDER}/sub"));
    w.sync(Trigger::Manual).await;
    assert_eq!(w.items().iter().find(|i| i.provider_id == d.id).unwrap().state, ItemState::SourceDeleted);
    w.assert_invariants().await;

    // The connected folder renamed: Folder Name follows, nothing re-imported.
    w.dbx.move_entry(&w.account, FOLDER, "/Brand Assets");
    w.sync(Trigger::Manual).await;
    let conn = w.connection().await;
    assert_eq!((conn.folder_name.as_str(), conn.folder_path.as_str()), ("Brand Assets", "/Brand Assets"));
    assert_eq!(conn.status, ConnectionStatus::Active);
    assert_eq!(w.objects(), objects);
    let a_now = w.items().into_iter().find(|i| i.provider_id == a.id).unwrap();
    assert_eq!(
        (a_now.state, a_now.path.as_str()),
        (ItemState::Imported, "/Brand Assets/A renamed.jpg"),
        "paths follow the folder"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_connected_folder_makes_the_connection_unavailable() {
    let w = World::new(WorldOptions::default()).await;
    w.add("a.jpg", "aaa");
    w.sync(Trigger::Initial).await;
    w.dbx.delete(&w.account, FOLDER);
    let out = w.sync(Trigger::Schedule).await;
    assert_eq!(finished(&out), RunStatus::Failed);
    let conn = w.connection().await;
    assert_eq!(conn.status, ConnectionStatus::FolderUnavailable);
    assert_eq!(w.objects().len(), 1, "the asset stays");
    w.dbx.reset_counters();
    assert_eq!(
        w.sync(Trigger::Schedule).await,
        JobOutcome::Skipped(extconn_core::engine::Skip::FolderUnavailable)
    );
    assert_eq!(w.provider_calls(), 0, "no imports, no calls while unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_files_are_skipped_with_the_reason() {
    // A maximum below the default 50 GiB, so the file is not 50 GiB of sandbox hashing (and not
    // the earlier default of 5 GiB, which a sync upgrades).
    let w =
        World::new(WorldOptions { max_file_size: Some(4 * 1024 * 1024 * 1024), ..Default::default() }).await;
    w.dbx.add_file(&w.account, &format!("{FOLDER}/huge.mov"), Content::generated(6 * 1024 * 1024 * 1024, 7));
    w.add("small.txt", "x");
    let out = w.sync(Trigger::Initial).await;
    assert_eq!(finished(&out), RunStatus::Succeeded);
    let huge = w.items().into_iter().find(|i| i.name == "huge.mov").unwrap();
    assert_eq!((huge.state, huge.reason.as_deref()), (ItemState::Skipped, Some("too_large")));
    assert_eq!(w.calls(Ep::Download), 1, "the 6 GiB file is never downloaded");
}

/// A connection saved when the default size limit was 5 GiB takes today's 50 GiB: its next sync
/// lists the folder again in full, imports what the old limit skipped (and nothing it had), and
/// saves the new limit, so the sync after it is incremental again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_saved_under_the_earlier_size_limit_imports_what_it_skipped() {
    use extconn_core::Filters;
    use extconn_core::ports::{ConnectionPatch, ConnectionStore};
    // A file of 19 bytes skipped under a limit of 10 stands in for a file over 5 GiB skipped
    // under the earlier default (serving one here would take minutes).
    let w = World::new(WorldOptions { max_file_size: Some(10), ..Default::default() }).await;
    w.add("big.txt", "more than ten bytes");
    w.add("small.txt", "x");
    assert_eq!(finished(&w.sync(Trigger::Initial).await), RunStatus::Succeeded);
    let state = |name: &str| {
        let i = w.items().into_iter().find(|i| i.name == name).unwrap();
        (i.state, i.reason)
    };
    assert_eq!(state("big.txt"), (ItemState::Skipped, Some("too_large".to_owned())));
    let earlier = Filters { max_file_size: Filters::EARLIER_MAX_FILE_SIZE, ..Filters::default() };
    let saved = ConnectionPatch { filters: Some(earlier), ..Default::default() };
    ConnectionStore::update(w.store.as_ref(), &w.conn, &saved).await.unwrap();
    let (listings, downloads) = (w.calls(Ep::ListFolder), w.calls(Ep::Download));

    assert_eq!(finished(&w.sync(Trigger::Schedule).await), RunStatus::Succeeded);
    assert_eq!(state("big.txt"), (ItemState::Imported, None));
    assert_eq!(w.connection().await.filters, Filters::default(), "the new limit is saved");
    assert_eq!(w.calls(Ep::ListFolder), listings + 1, "one full listing");
    assert_eq!(w.calls(Ep::Download), downloads + 1, "only the skipped file is downloaded");
    assert_eq!(w.objects().len(), 2);

    assert_eq!(finished(&w.sync(Trigger::Schedule).await), RunStatus::Succeeded);
    assert_eq!(w.calls(Ep::ListFolder), listings + 1, "incremental again");
}

/// A 300-character CJK file name at the end of a 1,200-byte path is imported like any other
/// file on the local sink: stored once, its metadata and index entry intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_cjk_name_and_path_are_imported() {
    let w = World::new(WorldOptions { sink: SinkKind::Local, ..Default::default() }).await;
    let name = format!("{}.jpg", "写真".repeat(150));
    assert_eq!(name.chars().count(), 304);
    let mut dir = FOLDER.to_owned();
    let mut depth = 0;
    while dir.len() + 1 + name.len() < 1_200 {
        depth += 1;
        dir.push_str(&format!("/{depth:02} 深い階層のフォルダ"));
        w.dbx.add_folder(&w.account, &dir);
    }
    let path = format!("{dir}/{name}");
    assert!(path.len() >= 1_200, "{}", path.len());
    let f = w.dbx.add_file(&w.account, &path, Content::text("bytes"));
    let out = w.sync(Trigger::Initial).await;
    assert!(matches!(out, JobOutcome::Finished { status: RunStatus::Succeeded, .. }), "{out:?}");
    let item = w.items().into_iter().find(|i| i.provider_id == f.id).expect("recorded");
    assert_eq!(
        (item.state, item.name.as_str(), item.path.as_str()),
        (ItemState::Imported, name.as_str(), path.as_str())
    );
    assert_eq!(w.objects().len(), 1);
    w.assert_invariants().await;
}

/// The mass-delete guard on Dropbox's path-based feed: a folder holding 150 of the
/// connection's 200 files is deleted — the sync is held (`needs_review`, nothing marked
/// deleted, counted through the children index); confirmed by an admin, the next run marks all
/// 150 `source_deleted` and keeps their assets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_most_of_the_folder_waits_for_an_admin() {
    use extconn_core::connections::Connections;
    use extconn_core::tokens::{TokenPolicy, Tokens};
    let w = World::new(WorldOptions { page_limit: 100, ..Default::default() }).await;
    for i in 0..150 {
        w.add(&format!("Old/f{i:03}.txt"), &format!("old {i}"));
    }
    for i in 0..50 {
        w.add(&format!("f{i:03}.txt"), &format!("kept {i}"));
    }
    assert_eq!(finished(&w.sync(Trigger::Initial).await), RunStatus::Succeeded);
    let objects = w.objects().len();
    w.dbx.delete(&w.account, &format!("{FOLDER}/Old"));

    assert_eq!(finished(&w.sync(Trigger::Schedule).await), RunStatus::NeedsReview);
    let c = w.connection().await;
    assert_eq!((c.status, c.held_deletions), (ConnectionStatus::NeedsReview, Some(150)));
    assert!(w.items().iter().all(|i| i.state != ItemState::SourceDeleted), "nothing marked deleted");

    let conns = Connections::new(w.ports.clone(), Tokens::new(w.ports.clone(), TokenPolicy::default()));
    let actor = extconn_core::Actor {
        client_id: w.conn.client_id.clone(),
        user_id: extconn_core::UserId::parse("ana").unwrap(),
        display_name: "Ana".into(),
    };
    conns.confirm_deletions(&actor, &w.conn.connection_id, true).await.unwrap();
    let (job, _) = w.queue.drain().remove(0);
    let out = w.engine().run_job(&job, w.deadline()).await.unwrap();
    assert_eq!(finished(&out), RunStatus::Succeeded);
    let deleted =
        w.items().into_iter().filter(|i| i.state == ItemState::SourceDeleted && !i.is_folder()).count();
    assert_eq!(deleted, 150);
    assert_eq!(w.objects().len(), objects, "assets kept");
    assert_eq!(w.connection().await.status, ConnectionStatus::Active);
    let announced: Vec<_> = w.events.connection_events().into_iter().map(|e| e.status).collect();
    assert_eq!(announced, [ConnectionStatus::NeedsReview, ConnectionStatus::Active]);
    w.assert_invariants().await;
}

const MIB: u64 = 1024 * 1024;

/// A download that breaks mid-file (the connection cut at 21 MiB of 40) continues from the
/// sink's last durable granule (16 MiB) with a `Range` request, and is still checked against
/// Dropbox's content hash over the whole file, its state carried across: the object is the
/// file, byte for byte, on the memory and the local sink.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_broken_mid_file_continues_where_the_sink_stopped() {
    for sink in [SinkKind::Memory, SinkKind::Local] {
        let w = World::new(WorldOptions { sink, ..Default::default() }).await;
        let f = w.dbx.add_file(&w.account, &format!("{FOLDER}/long.mov"), Content::generated(40 * MIB, 11));
        w.dbx.inject(Ep::Download, Fault::Truncate { after_bytes: 21 * MIB }, 1);
        assert_eq!(finished(&w.sync(Trigger::Initial).await), RunStatus::Succeeded);
        let downloads: Vec<u16> =
            w.dbx.call_log().iter().filter(|c| c.endpoint == Ep::Download).map(|c| c.status).collect();
        assert_eq!(downloads, [200, 206], "the second download is a range from the durable offset");
        let stored: Vec<String> = w.objects().into_values().collect();
        assert_eq!(stored, [w.dbx.sha256_of(&w.account, &f.id)]);
        w.assert_invariants().await;
    }
}

/// The resumed half corrupted in transit: the whole file's content hash (the state from before
/// the break, then the rest) no longer matches, so nothing is kept and the file starts over
/// from byte 0 — a corruption after a resume is caught as surely as one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resumed_download_corrupted_in_transit_starts_over() {
    let w = World::new(WorldOptions::default()).await;
    let f = w.dbx.add_file(&w.account, &format!("{FOLDER}/long.mov"), Content::generated(40 * MIB, 12));
    w.dbx.inject(Ep::Download, Fault::Truncate { after_bytes: 21 * MIB }, 1);
    w.dbx.inject(Ep::Download, Fault::CorruptSameLength, 1);
    assert_eq!(finished(&w.sync(Trigger::Initial).await), RunStatus::Succeeded);
    let downloads: Vec<u16> =
        w.dbx.call_log().iter().filter(|c| c.endpoint == Ep::Download).map(|c| c.status).collect();
    assert_eq!(downloads, [200, 206, 200], "broken, resumed and refused, then whole again");
    let stored: Vec<String> = w.objects().into_values().collect();
    assert_eq!(stored, [w.dbx.sha256_of(&w.account, &f.id)]);
    assert_eq!(w.memory_sink.suspended(), 0);
    w.assert_invariants().await;
}
