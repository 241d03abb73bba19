//! Google Drive, end to end on the sandbox: the real connector and engine against the Drive
//! emulator, for what Drive does differently from Dropbox — an account-wide change feed,
//! native documents that are exported, duplicate names, per-file permission errors, the
//! `403 userRateLimitExceeded` rate limit and shared drives. (The provider-neutral cases run on
//! Drive in `conformance.rs`.)

use std::collections::BTreeMap;

use extconn_core::ports::RunStore;
use extconn_core::{FolderLocator, Item, ItemState, RunStatus};
use extconn_sandbox::google_drive::office::{docx, docx_text};
use extconn_sandbox::google_drive::{Endpoint, GoogleDriveControl};
use extconn_sandbox::{Content, Fault, Op, Service};
use extconn_system_tests::conformance::{Bench, subject};

const DOC: &str = "application/vnd.google-apps.document";
const FORM: &str = "application/vnd.google-apps.form";
/// Drive refuses to export a document whose export is over 10 MB (`exportSizeLimitExceeded`).
const EXPORT_CAP: u64 = 10 * 1024 * 1024;

async fn bench() -> (Bench, GoogleDriveControl) {
    let b = Bench::new(&subject(Service::GoogleDrive)).await;
    let gd = b.sandbox.google_drive();
    (b, gd)
}

fn by_name(b: &Bench) -> BTreeMap<String, Vec<Item>> {
    let mut m: BTreeMap<String, Vec<Item>> = BTreeMap::new();
    for i in b.items().into_values() {
        m.entry(i.name.clone()).or_default().push(i);
    }
    m
}

/// The asset of item `id`: stored with exactly the bytes of `content`, under `name`.
fn assert_asset(b: &Bench, id: &str, content: &Content, name: &str) {
    use sha2::{Digest, Sha256};
    let Content::Bytes(bytes) = content else { panic!("byte content") };
    let key = b.items()[id].asset_key.clone().unwrap_or_else(|| panic!("{id} has no asset"));
    let obj = b.mem.sink.objects().remove(&key).unwrap_or_else(|| panic!("no object {key}"));
    assert_eq!(obj.sha256, hex::encode(Sha256::digest(bytes)), "the asset is the export, byte for byte");
    assert_eq!(obj.meta.original_name, name);
}

/// What the last sync cost at the provider, endpoint by endpoint.
fn calls(gd: &GoogleDriveControl) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for c in gd.call_log() {
        *m.entry(format!("{:?}", c.endpoint)).or_default() += 1;
    }
    m
}

#[tokio::test]
async fn a_native_doc_is_exported_as_docx_and_a_rename_exports_nothing() {
    native_doc_story(false).await;
}

/// The same where a rename or a move also moves `modifiedTime` (Drive's documentation leaves
/// it open): the doc's revisions tell the rename from an edit, at one call per ambiguous change.
#[tokio::test]
async fn a_rename_exports_nothing_even_when_it_moves_modified_time() {
    native_doc_story(true).await;
}

async fn native_doc_story(metadata_touches_modified: bool) {
    let (b, gd) = bench().await;
    gd.set_metadata_touches_modified(&b.account, metadata_touches_modified).expect("account");
    let draft = docx("first draft");
    let Content::Bytes(bytes) = &draft else { panic!("bytes") };
    assert_eq!(docx_text(bytes).as_deref(), Ok("first draft"), "the sandbox exports a real .docx");
    let doc = gd.add_native(&b.account, &b.folder, "Brief", DOC, Some(draft.clone())).expect("doc").id;
    b.add_file(&b.folder, "photo.jpg", "jpeg bytes");
    b.synced("native doc").await;
    assert_eq!(b.items()[&doc].state, ItemState::Imported);
    assert_eq!(b.items()[&doc].name, "Brief", "the item keeps the document's name");
    assert_asset(&b, &doc, &draft, "Brief.docx");
    let asset = b.items()[&doc].asset_key.clone();

    // A rename moves a native doc's `version` (and maybe its `modifiedTime`): nothing is
    // exported again and the asset stays. Time passes between the steps, so a version keyed
    // on a timestamp would move.
    let minute = std::time::Duration::from_secs(60);
    gd.reset_counters();
    b.mem.clock.advance(minute);
    gd.rename(&b.account, &doc, "Brief (final)").expect("rename");
    let inner = b.add_folder(&b.folder, "Docs");
    b.synced("rename a doc").await;
    b.mem.clock.advance(minute);
    gd.move_entry(&b.account, &doc, Some(&inner), None).expect("move");
    b.synced("move a doc").await;
    assert_eq!(gd.calls(Endpoint::Export), 0, "a renamed or moved doc is not exported again");
    assert_eq!(b.items()[&doc].asset_key, asset, "same asset");
    assert_eq!(b.items()[&doc].name, "Brief (final)");
    let asked = gd.calls(Endpoint::RevisionsList);
    assert_eq!(asked, if metadata_touches_modified { 2 } else { 0 }, "revisions read only when ambiguous");
    // A full re-listing of the renamed doc is no change either.
    b.control.reset_cursors();
    b.synced("re-listed").await;
    assert_eq!((gd.calls(Endpoint::Export), b.items()[&doc].asset_key.clone()), (0, asset.clone()));

    // An edit is a new content version: exported once, a new asset.
    let second = docx("second draft");
    b.mem.clock.advance(minute);
    gd.modify_native(&b.account, &doc, second.clone()).expect("edit");
    b.synced("edit a doc").await;
    assert_eq!(gd.calls(Endpoint::Export), 1);
    assert_ne!(b.items()[&doc].asset_key, asset, "an edited doc is a new version");
    assert_asset(&b, &doc, &second, "Brief (final).docx");

    // An edit and a rename in the same change: exported once more.
    let (third, before) = (docx("third draft"), b.items()[&doc].asset_key.clone());
    b.mem.clock.advance(minute);
    gd.modify_native(&b.account, &doc, third.clone()).expect("edit");
    gd.rename(&b.account, &doc, "Brief (v3)").expect("rename");
    b.synced("edit and rename").await;
    assert_eq!(gd.calls(Endpoint::Export), 2);
    assert_ne!(b.items()[&doc].asset_key, before);
    assert_asset(&b, &doc, &third, "Brief (v3).docx");
}

#[tokio::test]
async fn a_doc_over_the_export_cap_and_other_non_importables_are_skipped_with_reasons() {
    let (b, gd) = bench().await;
    let big = gd
        .add_native(&b.account, &b.folder, "Huge doc", DOC, Some(Content::generated(EXPORT_CAP + 1, 7)))
        .expect("doc")
        .id;
    let form = gd.add_native(&b.account, &b.folder, "Survey", FORM, None).expect("form").id;
    let target = b.add_file(&b.outside, "elsewhere.jpg", "x");
    let shortcut = gd.add_shortcut(&b.account, &b.folder, "Shortcut to elsewhere", &target).expect("sc").id;
    let locked = b.add_file(&b.folder, "locked.pdf", "no download");
    gd.set_can_download(&b.account, &locked, false).expect("lock");
    let fine = b.add_file(&b.folder, "fine.txt", "fine");
    assert_eq!(b.sync().await, RunStatus::Succeeded, "skipped files do not fail the run");
    let items = b.items();
    let skipped = |id: &str| {
        let i = &items[id];
        assert_eq!(i.state, ItemState::Skipped, "{}: {:?}", i.name, i.reason);
        assert!(i.asset_key.is_none(), "{}: no asset", i.name);
        i.reason.clone().unwrap_or_default()
    };
    assert_eq!(skipped(&big), "export_too_large");
    assert_eq!(skipped(&form), "not_exportable");
    assert_eq!(skipped(&shortcut), "shortcut");
    assert_eq!(skipped(&locked), "not_downloadable");
    assert_eq!(items[&fine].state, ItemState::Imported);
    // A skipped file is not tried again on every run.
    gd.reset_counters();
    b.synced("nothing changed").await;
    assert_eq!(gd.calls(Endpoint::Export) + gd.calls(Endpoint::Download), 0);
}

#[tokio::test]
async fn changes_elsewhere_in_the_account_cost_no_import_and_an_idle_sync_two_calls() {
    let (b, gd) = bench().await;
    b.add_file(&b.folder, "in.jpg", "inside");
    b.synced("initial").await;

    gd.reset_counters();
    b.synced("no change").await;
    let idle = calls(&gd);
    assert!(idle.values().sum::<usize>() <= 2, "a sync that changes nothing: {idle:?}");

    // Busy elsewhere: files added, edited and moved around outside the connected folder.
    let busy = b.add_folder(&b.outside, "Busy");
    for i in 0..30 {
        let f = b.add_file(&busy, &format!("other-{i}.bin"), &format!("{i}"));
        if i % 3 == 0 {
            b.control.modify_file(&b.account, &f, Content::text("edited")).expect("edit");
        }
    }
    let doc = gd.add_native(&b.account, &b.outside, "Their doc", DOC, Some(Content::text("d"))).expect("doc");
    gd.rename(&b.account, &doc.id, "Their doc, renamed").expect("rename");
    gd.reset_counters();
    let objects = b.mem.sink.objects().len();
    b.synced("changes elsewhere").await;
    let cost = calls(&gd);
    assert_eq!(cost.get("Download").copied().unwrap_or(0) + cost.get("Export").copied().unwrap_or(0), 0);
    assert_eq!(b.mem.sink.objects().len(), objects, "nothing imported");
    let recorded: Vec<String> = b.items().into_values().filter(|i| !i.is_folder()).map(|i| i.path).collect();
    assert_eq!(recorded, ["/Connected/in.jpg"], "nothing outside the folder is recorded");
    assert!(cost.keys().all(|e| e == "ChangesList" || e == "FilesGet"), "only the feed is read: {cost:?}");
    // The 30 files' unknown parent is looked up once (and its parent), not once per file.
    assert!(cost.get("FilesGet").copied().unwrap_or(0) <= 2, "{cost:?}");
}

#[tokio::test]
async fn trash_and_restore_and_a_folder_moved_out_and_back() {
    let (b, gd) = bench().await;
    let sub = b.add_folder(&b.folder, "Sub");
    let deep = b.add_folder(&sub, "Deep");
    let f = b.add_file(&deep, "deep.jpg", "deep");
    let g = b.add_file(&b.folder, "top.jpg", "top");
    b.synced("initial").await;
    let (af, ag) = (b.items()[&f].asset_key.clone(), b.items()[&g].asset_key.clone());

    gd.trash(&b.account, &g).expect("trash");
    b.synced("trashed").await;
    assert_eq!(b.items()[&g].state, ItemState::SourceDeleted, "a trashed file left the folder");
    gd.untrash(&b.account, &g).expect("untrash");
    b.synced("restored").await;
    assert_eq!(b.items()[&g].asset_key, ag, "restored: the same asset");

    gd.trash(&b.account, &sub).expect("trash a folder");
    b.synced("trashed folder").await;
    assert_eq!(b.items()[&f].state, ItemState::SourceDeleted, "a trashed folder takes its subtree");
    gd.untrash(&b.account, &sub).expect("untrash");
    b.synced("restored folder").await;

    for _ in 0..2 {
        b.control.move_entry(&b.account, &sub, Some(&b.outside), None).expect("out");
        b.synced("moved out").await;
        assert_eq!(b.items()[&f].state, ItemState::SourceDeleted);
        b.control.move_entry(&b.account, &sub, Some(&b.folder), None).expect("in");
        b.synced("moved back").await;
        assert_eq!(b.items()[&f].asset_key, af, "moved back in: the same asset, no duplicate");
    }
    let objects = b.mem.sink.objects().len();
    assert_eq!(objects, 2, "two files, two assets, whatever happened to them");
}

#[tokio::test]
async fn duplicate_names_in_one_folder_are_two_assets() {
    let (b, _gd) = bench().await;
    let one = b.add_file(&b.folder, "logo.png", "blue logo");
    let two = b.add_file(&b.folder, "logo.png", "red logo");
    let sub_a = b.add_folder(&b.folder, "Shots");
    let sub_b = b.add_folder(&b.folder, "Shots");
    b.add_file(&sub_a, "a.jpg", "a");
    b.add_file(&sub_b, "a.jpg", "b");
    b.synced("duplicates").await;
    let names = by_name(&b);
    assert_eq!(names["logo.png"].len(), 2);
    assert_eq!(names["a.jpg"].len(), 2, "same path twice, two folders, two files");
    assert_ne!(b.items()[&one].asset_key, b.items()[&two].asset_key, "identity by file id");
    assert_eq!(b.mem.sink.objects().len(), 4);
    b.control.delete(&b.account, &one).expect("delete");
    b.synced("one of the two deleted").await;
    assert_eq!(b.items()[&one].state, ItemState::SourceDeleted);
    assert_eq!(b.items()[&two].state, ItemState::Imported, "the other one is untouched");
}

#[tokio::test]
async fn user_rate_limit_is_retried_within_the_run_and_a_forbidden_file_fails_alone() {
    let (b, gd) = bench().await;
    let ok = b.add_file(&b.folder, "ok.jpg", "fine");
    let denied = b.add_file(&b.folder, "secret.jpg", "not for you");
    gd.set_file_error(&denied, 403, "insufficientFilePermissions");
    // 403 userRateLimitExceeded on the listing and on a download.
    b.control.inject(Op::List, Fault::ServerError(403), 2).expect("inject");
    b.control.inject(Op::Download, Fault::ServerError(403), 1).expect("inject");
    assert_eq!(b.sync().await, RunStatus::Partial, "one file failed, the rest imported");
    let items = b.items();
    assert_eq!(items[&ok].state, ItemState::Imported, "the rate limit was waited out within the run");
    let d = &items[&denied];
    assert_eq!((d.state, d.reason.as_deref()), (ItemState::Failed, Some("access_denied")));
    assert!(d.error.as_deref().is_some_and(|e| e.contains("insufficientFilePermissions")), "{:?}", d.error);
    assert!(!b.mem.clock.sleeps().is_empty(), "backed off before retrying");
    let runs = RunStore::list(b.mem.store.as_ref(), &b.conn, None, 1).await.expect("runs");
    assert_eq!(runs[0].counters.failed, 1);

    // Access granted later: the failed file is retried when due, like any failed item.
    gd.clear_file_error(&denied);
    b.mem.clock.advance(std::time::Duration::from_secs(3600));
    b.synced("retried").await;
    assert_eq!(b.items()[&denied].state, ItemState::Imported);
}

#[tokio::test]
async fn a_shared_drive_connection_imports_and_syncs_like_my_drive() {
    let (b, gd) = bench().await;
    let drive = gd.add_shared_drive(&b.account, "Marketing").expect("shared drive");
    let folder = gd.add_folder(&b.account, &drive, "Campaign").expect("folder").id;
    let sub = gd.add_folder(&b.account, &folder, "Banners").expect("folder").id;
    let a = b.add_file(&folder, "a.png", "a");
    b.add_file(&sub, "wide.png", "wide");
    let copy = docx("copy");
    let doc = gd.add_native(&b.account, &folder, "Copy", DOC, Some(copy.clone())).expect("doc").id;
    // The picker offers the shared drive at the top level.
    let top = b.provider.browse_folders(&b.tokens.access_token, None, None).await.expect("browse");
    let entry = top.folders.iter().find(|f| f.name == "Marketing").expect("the shared drive is offered");
    assert_eq!(entry.locator.drive_id.as_deref(), Some(drive.as_str()));
    let inside =
        b.provider.browse_folders(&b.tokens.access_token, Some(&entry.locator), None).await.expect("in");
    let campaign = inside.folders.iter().find(|f| f.name == "Campaign").expect("its folder");
    assert_eq!(campaign.locator, FolderLocator { folder_id: folder.clone(), drive_id: Some(drive.clone()) });

    let conn = b.mem.connect_at(&b.grant, campaign.locator.clone(), "Campaign").await;
    assert_eq!(b.mem.sync(&b.ports, &conn).await, RunStatus::Succeeded);
    let items = |conn| {
        b.mem
            .store
            .all_items(conn)
            .into_iter()
            .map(|i| (i.provider_id.clone(), i))
            .collect::<BTreeMap<_, _>>()
    };
    let live = b.control.list_files(&b.account, &folder).expect("list");
    assert_eq!(live.len(), 3);
    for f in &live {
        let i = &items(&conn)[&f.id];
        assert_eq!(i.state, ItemState::Imported, "{}: {:?}", f.name, i.reason);
    }
    let key = items(&conn)[&doc].asset_key.clone().expect("the doc's asset");
    assert_eq!(b.mem.sink.objects()[&key].meta.original_name, "Copy.docx");

    // Changes in the shared drive reach the connection (its own per-drive change feed).
    let added = b.add_file(&sub, "tall.png", "tall");
    b.control.move_entry(&b.account, &a, None, Some("a-renamed.png")).expect("rename");
    let asset_a = items(&conn)[&a].asset_key.clone();
    b.control.delete(&b.account, &doc).expect("delete");
    gd.reset_counters();
    assert_eq!(b.mem.sync(&b.ports, &conn).await, RunStatus::Succeeded);
    let now = items(&conn);
    assert_eq!(now[&added].state, ItemState::Imported);
    assert_eq!((now[&a].name.as_str(), &now[&a].asset_key), ("a-renamed.png", &asset_a));
    assert_eq!(now[&doc].state, ItemState::SourceDeleted);
    assert!(gd.call_log().iter().all(|c| c.endpoint != Endpoint::FilesList), "incremental: no re-listing");
    // The My Drive connection of the same account does not see the shared drive's files.
    b.synced("my drive, untouched").await;
    assert!(!b.items().contains_key(&added));

    // The whole shared drive, connected at its root (the picker's drive entry is selectable;
    // the API re-reads it with `drives.get` when the connection is created).
    assert!(entry.selectable);
    let root = b.provider.folder(&b.tokens.access_token, &entry.locator).await.expect("drives.get");
    assert_eq!((root.name.as_str(), &root.locator), ("Marketing", &entry.locator));
    let whole = b.mem.connect_at(&b.grant, entry.locator.clone(), "Marketing").await;
    assert_eq!(b.mem.sync(&b.ports, &whole).await, RunStatus::Succeeded);
    let live = b.control.list_files(&b.account, &drive).expect("list");
    let got = items(&whole);
    assert_eq!(live.len(), 3);
    for f in &live {
        assert_eq!(got.get(&f.id).map(|i| i.state), Some(ItemState::Imported), "{}", f.name);
    }
    let late = b.add_file(&drive, "at-the-root.txt", "root");
    assert_eq!(b.mem.sync(&b.ports, &whole).await, RunStatus::Succeeded);
    assert_eq!(items(&whole)[&late].state, ItemState::Imported);
}

#[tokio::test]
async fn download_quota_backs_off_the_file_and_quota_exceeded_the_grant() {
    let (b, gd) = bench().await;
    let popular = b.add_file(&b.folder, "popular.mp4", "downloaded too often");
    let other = b.add_file(&b.folder, "other.jpg", "fine");
    // `downloadQuotaExceeded`: that file waits for a later run, at once; the rest goes on.
    gd.set_file_error(&popular, 403, "downloadQuotaExceeded");
    assert_eq!(b.sync().await, RunStatus::Partial);
    let items = b.items();
    assert_eq!(items[&other].state, ItemState::Imported);
    let p = &items[&popular];
    assert_eq!((p.state, p.reason.as_deref()), (ItemState::Failed, Some("rate_limited")));
    assert!(p.next_attempt_at.is_some(), "retried later");
    assert!(b.mem.clock.sleeps().is_empty(), "no waiting within the run for one file's quota");
    assert_eq!(gd.calls(Endpoint::Download), 2, "one try each: the throttled file is not hammered");

    // `quotaExceeded`: the whole grant is throttled; the run backs off before trying again.
    gd.clear_file_error(&popular);
    let next = b.add_file(&b.folder, "next.jpg", "next");
    gd.set_file_error(&next, 403, "quotaExceeded");
    b.mem.clock.advance(std::time::Duration::from_secs(3600));
    let _ = b.sync().await;
    assert!(!b.mem.clock.sleeps().is_empty(), "the grant's quota is waited out");
    assert_eq!(b.items()[&popular].state, ItemState::Imported, "the file's own backoff ended");
    gd.clear_file_error(&next);
    b.mem.clock.advance(std::time::Duration::from_secs(3600));
    b.synced("quota back").await;
}

/// Drive's `quotaExceeded` throttles the whole account. The run that meets it records a pause
/// on the grant, and another connection of the same account — as if in another worker — waits
/// it out without sending Drive a single request, then both finish as usual.
#[tokio::test]
async fn a_grant_wide_rate_limit_pauses_every_connection_of_the_account() {
    use extconn_core::engine::{Engine, EngineConfig, JobOutcome};
    use extconn_core::ports::{Clock, ConnectionStore, GrantStore};
    use extconn_core::{Job, Trigger};
    let (b, gd) = bench().await;
    let other_folder = b.add_folder(&b.outside, "Other");
    let other = b
        .mem
        .connect_at(&b.grant, FolderLocator { folder_id: other_folder.clone(), drive_id: None }, "Other")
        .await;
    b.synced("initial").await;
    assert_eq!(b.mem.sync(&b.ports, &other).await, RunStatus::Succeeded);

    let hot = b.add_file(&b.folder, "hot.jpg", "throttled");
    let waiting = b.add_file(&other_folder, "waiting.jpg", "waits for the account");
    gd.set_file_error_retry_after(&hot, 403, "quotaExceeded", 3600);
    let engine = Engine::new(b.ports.clone(), EngineConfig::default());
    let job = |conn: &extconn_core::ConnKey| Job::start(conn, Trigger::Schedule);
    let deadline = || b.mem.clock.now() + chrono::Duration::minutes(15);
    let hour = std::time::Duration::from_secs(3600);
    let start = b.mem.clock.now();
    match engine.run_job(&job(&b.conn), deadline()).await.expect("step") {
        JobOutcome::Continued { delay, .. } => {
            assert_eq!(delay, hour, "the hour is waited as a delayed continuation")
        }
        other => panic!("{other:?}"),
    }
    let paused =
        GrantStore::get(b.ports.grants.as_ref(), &b.grant.client_id, &b.grant.id).await.expect("get");
    assert_eq!(
        paused.and_then(|g| g.paused_until),
        Some(start + chrono::Duration::hours(1)),
        "the grant is paused"
    );

    // The other connection's run, a minute later: no Drive request, it waits the rest.
    b.mem.clock.advance(std::time::Duration::from_secs(60));
    gd.reset_counters();
    match engine.run_job(&job(&other), deadline()).await.expect("step") {
        JobOutcome::Continued { delay, .. } => assert_eq!(delay, hour - std::time::Duration::from_secs(60)),
        other => panic!("the other connection did not wait: {other:?}"),
    }
    assert_eq!(gd.call_log().len(), 0, "not one request while the account is paused: {:?}", gd.call_log());
    let o =
        ConnectionStore::get(b.ports.connections.as_ref(), &other).await.expect("get").expect("connection");
    assert_eq!(o.not_before, Some(start + chrono::Duration::hours(1)));

    // The hour over: the queued continuations finish both runs.
    gd.clear_file_error(&hot);
    b.mem.clock.advance(hour);
    let queued = b.mem.queue.drain();
    assert_eq!(queued.len(), 2, "one delayed continuation per connection");
    for (j, _) in queued {
        match engine.run_job(&j, deadline()).await.expect("step") {
            JobOutcome::Finished { status, .. } => assert_eq!(status, RunStatus::Succeeded),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(b.items()[&hot].state, ItemState::Imported);
    let other_items = b.mem.store.all_items(&other);
    assert!(other_items.iter().any(|i| i.provider_id == waiting && i.state == ItemState::Imported));
}

#[tokio::test]
async fn the_initial_import_takes_the_start_token_before_listing() {
    let (b, gd) = bench().await;
    let sub = b.add_folder(&b.folder, "Sub");
    for i in 0..7 {
        b.add_file(&sub, &format!("f{i}.txt"), &format!("{i}"));
    }
    gd.reset_counters();
    b.synced("initial").await;
    let log: Vec<Endpoint> = gd.call_log().into_iter().map(|c| c.endpoint).collect();
    let token = log.iter().position(|e| *e == Endpoint::StartPageToken).expect("a start token");
    let listed = log.iter().position(|e| *e == Endpoint::FilesList).expect("a listing");
    assert!(token < listed, "a change made during the listing is in the feed: {log:?}");
    let last_listed = log.iter().rposition(|e| *e == Endpoint::FilesList).expect("a listing");
    let feed = log.iter().position(|e| *e == Endpoint::ChangesList);
    assert!(feed.is_none_or(|f| f > last_listed), "the feed is read after the listing: {log:?}");
    // 7 files in pages of 3 (the bench's page size), one parent per query: Connected, Sub.
    assert_eq!(log.iter().filter(|e| **e == Endpoint::FilesList).count(), 1 + 3);
}
