//! SharePoint / OneDrive for Business, end to end on the sandbox: the real connector and engine
//! against the Graph emulator, for what Graph does differently — a delta feed only on the drive
//! root (membership by the core's scope tree), renamed folders that report no descendants,
//! deleted items without a name, the same item twice in a feed, a 410 on a stale delta token,
//! a download that is a 302 to a pre-authenticated URL, refresh tokens that rotate on every use,
//! Office files SharePoint rewrites on download, and links that must stay on Microsoft's hosts.
//! (The provider-neutral cases run on SharePoint in `conformance.rs`.)

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use extconn_core::ports::{Clock, ConnectionStore, SystemClock, TokenVault};
use extconn_core::{FolderLocator, ItemState, RunStatus};
use extconn_sandbox::sharepoint::{Endpoint, SharePointControl};
use extconn_sandbox::{Content, Fault, Service};
use extconn_system_tests::conformance::{Bench, subject};

async fn bench() -> (Bench, SharePointControl) {
    let b = Bench::new(&subject(Service::Sharepoint)).await;
    let sp = b.sandbox.sharepoint();
    (b, sp)
}

/// What the last syncs cost at Graph, endpoint by endpoint.
fn calls(sp: &SharePointControl) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for c in sp.call_log() {
        *m.entry(format!("{:?}", c.endpoint)).or_default() += 1;
    }
    m
}

fn downloads(sp: &SharePointControl) -> u64 {
    sp.calls(Endpoint::Download)
}

#[tokio::test]
async fn changes_elsewhere_in_the_library_cost_no_download_and_an_idle_sync_two_calls() {
    let (b, sp) = bench().await;
    b.add_file(&b.folder, "in.jpg", "inside");
    b.synced("initial").await;

    sp.reset_counters();
    b.synced("no change").await;
    let idle = calls(&sp);
    assert!(idle.values().sum::<usize>() <= 2, "a sync that changes nothing: {idle:?}");

    // Busy elsewhere in the same drive: the root delta reports all of it.
    let busy = b.add_folder(&b.outside, "Busy");
    for i in 0..30 {
        let f = b.add_file(&busy, &format!("other-{i}.bin"), &format!("{i}"));
        if i % 3 == 0 {
            b.control.modify_file(&b.account, &f, Content::text("edited")).expect("edit");
        }
    }
    sp.rename(&b.account, &busy, "Busy, renamed").expect("rename");
    sp.reset_counters();
    let objects = b.mem.sink.objects().len();
    b.synced("changes elsewhere").await;
    let cost = calls(&sp);
    assert_eq!(downloads(&sp) + sp.calls(Endpoint::Content), 0, "{cost:?}");
    assert_eq!(b.mem.sink.objects().len(), objects, "nothing imported");
    let recorded: Vec<String> = b.items().into_values().filter(|i| !i.is_folder()).map(|i| i.path).collect();
    assert_eq!(recorded, ["/Connected/in.jpg"], "nothing outside the folder is recorded");
    assert!(cost.keys().all(|e| e == "Delta" || e == "Item"), "only the feed is read: {cost:?}");
    assert!(cost.get("Item").copied().unwrap_or(0) <= 2, "unknown parents looked up once: {cost:?}");
}

#[tokio::test]
async fn a_renamed_folder_keeps_its_files_and_a_moved_one_brings_its_subtree() {
    let (b, sp) = bench().await;
    let photos = b.add_folder(&b.folder, "Photos");
    let deep = b.add_folder(&photos, "2026");
    let hero = b.add_file(&photos, "hero.jpg", "hero");
    let team = b.add_file(&deep, "team.jpg", "team");
    b.synced("initial").await;
    let assets: Vec<_> = [&hero, &team].iter().map(|id| b.items()[id.as_str()].asset_key.clone()).collect();

    // Graph reports the renamed folder alone; its files' paths follow from the scope tree.
    sp.reset_counters();
    sp.rename(&b.account, &photos, "Photos (2026)").expect("rename");
    b.synced("folder renamed").await;
    assert_eq!(downloads(&sp), 0, "a renamed folder re-imports nothing");
    let items = b.items();
    assert_eq!(items[&team].path, "/Connected/Photos (2026)/2026/team.jpg");
    let after: Vec<_> = [&hero, &team].iter().map(|id| items[id.as_str()].asset_key.clone()).collect();
    assert_eq!(after, assets, "same assets");

    // Moved out: gone with its subtree; moved back: the same assets, nothing downloaded.
    b.control.move_entry(&b.account, &photos, Some(&b.outside), None).expect("move out");
    b.synced("moved out").await;
    assert_eq!(b.items()[&team].state, ItemState::SourceDeleted);
    b.control.move_entry(&b.account, &photos, Some(&b.folder), None).expect("move in");
    sp.reset_counters();
    b.synced("moved back in").await;
    assert_eq!(b.items()[&team].state, ItemState::Imported);
    assert_eq!(downloads(&sp), 0, "moved back in: the same content, no download");
}

#[tokio::test]
async fn a_stale_delta_token_re_enumerates_with_no_duplicate_and_no_loss() {
    let (b, sp) = bench().await;
    let sub = b.add_folder(&b.folder, "Sub");
    for i in 0..7 {
        b.add_file(if i % 2 == 0 { &b.folder } else { &sub }, &format!("f{i}.txt"), &format!("{i}"));
    }
    b.synced("initial").await;
    let gone = b.add_file(&sub, "gone.txt", "gone");
    b.synced("one more").await;
    // While the token goes stale: a delete, an add, an edit, a rename.
    b.control.delete(&b.account, &gone).expect("delete");
    let added = b.add_file(&sub, "added.txt", "added");
    let f0 = b.items().into_values().find(|i| i.name == "f0.txt").expect("f0").provider_id;
    b.control.modify_file(&b.account, &f0, Content::text("f0, edited")).expect("edit");
    sp.rename(&b.account, &sub, "Sub (renamed)").expect("rename");
    sp.expire_delta_tokens();
    sp.reset_counters();
    b.synced("after a 410").await;
    assert!(sp.call_log().iter().any(|c| c.status == 410), "the stored token was refused with a 410");
    assert_eq!(b.items()[&gone].state, ItemState::SourceDeleted);
    assert_eq!(b.items()[&added].state, ItemState::Imported);
    assert_eq!(downloads(&sp), 2, "only the added and the edited file are downloaded");
    // `check` (in `synced`) asserted that no object was written twice and nothing is lost.
    sp.reset_counters();
    b.synced("and then quiet").await;
    assert!(calls(&sp).values().sum::<usize>() <= 2, "the fresh token works: {:?}", calls(&sp));
}

#[tokio::test]
async fn duplicated_items_and_nameless_deletions_in_the_feed() {
    let (b, sp) = bench().await;
    sp.set_duplicate_items(true);
    sp.set_page_size(3);
    let a = b.add_file(&b.folder, "a.txt", "a");
    let c = b.add_file(&b.folder, "c.txt", "c");
    b.synced("initial").await;
    b.control.modify_file(&b.account, &a, Content::text("a, second")).expect("edit");
    sp.rename(&b.account, &a, "a2.txt").expect("rename");
    b.control.modify_file(&b.account, &a, Content::text("a, third")).expect("edit");
    b.control.delete(&b.account, &c).expect("delete");
    b.synced("an item twice in the feed, the last state wins").await;
    assert_eq!(b.items()[&a].name, "a2.txt");
    assert_eq!(b.items()[&c].state, ItemState::SourceDeleted, "a deletion without a name");
}

#[tokio::test]
async fn a_link_to_a_foreign_host_is_refused_before_any_connection() {
    let (b, sp) = bench().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let foreign = format!("http://{}", listener.local_addr().expect("addr"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while listener.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    for i in 0..4 {
        b.add_file(&b.folder, &format!("f{i}.txt"), &format!("{i}"));
    }
    // Small pages: the children listing needs a nextLink, which now points elsewhere.
    sp.set_page_size(2);
    sp.set_link_base(Some(foreign.clone()));
    // The listing fails the same way on each step until the run gives up.
    let status = b.mem.sync_to_end(&b.ports, &b.conn, 10).await;
    assert_eq!(status, RunStatus::Failed, "a listing cannot follow a foreign link");
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "the foreign host got no connection");
    let conn = ConnectionStore::get(b.mem.store.as_ref(), &b.conn).await.expect("store").expect("connection");
    let reason = conn.status_reason.unwrap_or_default();
    let host = foreign.trim_start_matches("http://");
    assert!(reason.contains("not a Microsoft host") || reason.contains(host), "{reason}");

    // Links back home: the run completes. A foreign link in a later change feed fails that
    // run the same way, and nothing was stored from it: back home, the next run recovers.
    // (A download redirect to a foreign host is refused the same way: the connector's tests.)
    sp.set_link_base(None);
    assert_eq!(b.mem.sync_to_end(&b.ports, &b.conn, 10).await, RunStatus::Succeeded);
    b.check("links at the sandbox again");
    let late = b.add_file(&b.folder, "late.txt", "late");
    sp.set_link_base(Some(foreign));
    assert_eq!(b.mem.sync_to_end(&b.ports, &b.conn, 10).await, RunStatus::Failed);
    assert_eq!(accepted.load(Ordering::SeqCst), 0, "the foreign host got no connection");
    sp.set_link_base(None);
    assert_eq!(b.mem.sync_to_end(&b.ports, &b.conn, 10).await, RunStatus::Succeeded);
    assert_eq!(b.items()[&late].state, ItemState::Imported);
    b.check("recovered");
}

#[tokio::test]
async fn office_files_rewritten_by_sharepoint_are_kept_with_a_warning() {
    let (b, sp) = bench().await;
    sp.set_rewrites_office_files(true);
    let docx = b.add_file(&b.folder, "Q3 plan.docx", "a word document");
    let pdf = b.add_file(&b.folder, "Q3 plan.pdf", "a pdf");
    assert_eq!(b.sync().await, RunStatus::Succeeded);
    let items = b.items();
    assert_eq!(items[&docx].state, ItemState::Imported, "{:?}", items[&docx]);
    let warning = items[&docx].warning.clone().unwrap_or_default();
    assert!(warning.contains("SharePoint"), "the rewritten Office file carries a warning: {warning:?}");
    assert_eq!(items[&pdf].state, ItemState::Imported);
    assert_eq!(items[&pdf].warning, None);
    // The warning belongs to the asset: a rename keeps both.
    sp.rename(&b.account, &docx, "Q3 plan (final).docx").expect("rename");
    assert_eq!(b.sync().await, RunStatus::Succeeded);
    let renamed = &b.items()[&docx];
    assert_eq!(
        (renamed.asset_key.clone(), renamed.warning.clone()),
        (items[&docx].asset_key.clone(), Some(warning))
    );
}

#[tokio::test]
async fn a_hash_mismatch_on_other_files_is_a_failed_file() {
    let (b, sp) = bench().await;
    b.add_file(&b.folder, "fine.txt", "fine");
    let bad = b.add_file(&b.folder, "bad.bin", "will be corrupted");
    sp.inject(Endpoint::Download, Fault::CorruptSameLength, 3);
    assert_eq!(b.sync().await, RunStatus::Partial);
    let items = b.items();
    assert_eq!(items[&bad].state, ItemState::Failed, "{:?}", items[&bad]);
    assert_eq!(items[&bad].reason.as_deref(), Some("hash_mismatch"), "{:?}", items[&bad]);
}

#[tokio::test]
async fn throttling_with_retry_after_is_waited_out() {
    let (b, sp) = bench().await;
    b.add_file(&b.folder, "a.txt", "a");
    b.synced("before").await;
    b.add_file(&b.folder, "b.txt", "b");
    sp.inject(Endpoint::Delta, Fault::RateLimit { retry_after_secs: 7 }, 1);
    sp.inject(Endpoint::Content, Fault::RateLimit { retry_after_secs: 4 }, 1);
    b.synced("throttled").await;
    sp.inject(Endpoint::Delta, Fault::ServerError(503), 1);
    b.add_file(&b.folder, "c.txt", "c");
    b.synced("unavailable once").await;
    let waits = b.mem.clock.sleeps();
    for s in [7, 4] {
        assert!(waits.contains(&std::time::Duration::from_secs(s)), "Retry-After {s} s honoured: {waits:?}");
    }
}

/// A site's document library, picked site → library → folder, synced like the user's OneDrive.
#[tokio::test]
async fn a_site_library_folder_picked_and_synced() {
    let (b, sp) = bench().await;
    let site = sp.add_site("Marketing");
    let library = sp.default_library(&site.id).expect("library");
    let campaign = sp.add_folder(&b.account, &library.root_id, "Campaign").expect("folder").id;
    let poster =
        sp.add_file(&b.account, &campaign, "poster.png", Content::generated(70_001, 3)).expect("file").id;
    let access = &b.tokens.access_token;
    let top = b.provider.browse_folders(access, None, None).await.expect("top");
    let entry = top.folders.iter().find(|f| f.name == "Marketing").expect("the site is offered");
    let libraries = b.provider.browse_folders(access, Some(&entry.locator), None).await.expect("libraries");
    let docs =
        libraries.folders.iter().find(|f| f.locator.drive_id.as_deref() == Some(library.drive_id.as_str()));
    let docs = docs.expect("the library is offered");
    let inside = b.provider.browse_folders(access, Some(&docs.locator), None).await.expect("folders");
    let picked = inside.folders.iter().find(|f| f.name == "Campaign").expect("the folder");
    assert_eq!(
        picked.locator,
        FolderLocator { folder_id: campaign.clone(), drive_id: Some(library.drive_id.clone()) }
    );

    let conn = b.mem.connect_at(&b.grant, picked.locator.clone(), "Campaign").await;
    assert_eq!(b.mem.sync(&b.ports, &conn).await, RunStatus::Succeeded);
    let items: BTreeMap<_, _> =
        b.mem.store.all_items(&conn).into_iter().map(|i| (i.provider_id.clone(), i)).collect();
    assert_eq!(items[&poster].state, ItemState::Imported);
    let key = items[&poster].asset_key.clone().expect("asset");
    let obj = b.mem.sink.objects().remove(&key).expect("object");
    assert_eq!(Some(obj.sha256), Some(sp.sha256(&b.account, &poster).expect("sha")));
    assert_eq!(obj.meta.provider_hash, Some(sp.quick_xor_hash(&b.account, &poster).expect("qxh")));
}

/// Twenty connections on one grant sync at once with an expired access token: one refresh, and
/// the rotated refresh token is the one stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_syncs_on_one_grant_refresh_once_and_keep_the_rotated_token() {
    let (b, sp) = bench().await;
    // Real time for the token use case: waiters poll while the holder's HTTP refresh is in flight.
    let mut ports = b.ports.clone();
    ports.clock = Arc::new(SystemClock);
    let mut conns = Vec::new();
    for i in 0..20 {
        let folder = b.add_folder(&b.outside, &format!("Shared {i}"));
        b.add_file(&folder, "a.txt", &format!("{i}"));
        let locator =
            FolderLocator { folder_id: folder.clone(), drive_id: b.control.drive_of(&b.account, &folder) };
        conns.push(b.mem.connect_at(&b.grant, locator, &format!("Shared {i}")).await);
    }
    let expire = || async {
        let current = b.mem.vault.get(&b.grant.secret_ref).await.expect("vault").expect("tokens");
        let mut expired = current.tokens.clone();
        expired.expires_at = Some(SystemClock.now() - chrono::Duration::minutes(1));
        b.mem.vault.put(&b.grant.secret_ref, &expired, Some(current.version)).await.expect("put");
        sp.expire_access_tokens();
        current.tokens.refresh_token.expect("a refresh token")
    };
    let original = expire().await;
    sp.reset_counters();
    let runs = futures::future::join_all(conns.iter().map(|c| b.mem.sync(&ports, c))).await;
    assert!(runs.iter().all(|s| *s == RunStatus::Succeeded), "{runs:?}");
    assert_eq!(sp.calls(Endpoint::Token), 1, "exactly one refresh for 20 concurrent syncs");
    let stored = b.mem.vault.get(&b.grant.secret_ref).await.expect("vault").expect("tokens");
    let rotated = stored.tokens.refresh_token.clone().expect("refresh token");
    assert_ne!(
        rotated.expose(),
        original.expose(),
        "Microsoft rotated the refresh token; the new one is stored"
    );
    assert_eq!(Some(rotated.expose().to_owned()), sp.latest_refresh_token(&b.account), "the newest one");

    // The next expiry: one more refresh, made with the rotated token.
    let second = expire().await;
    assert_eq!(second.expose(), rotated.expose());
    let runs = futures::future::join_all(conns.iter().map(|c| b.mem.sync(&ports, c))).await;
    assert!(runs.iter().all(|s| *s == RunStatus::Succeeded), "{runs:?}");
    assert_eq!(sp.calls(Endpoint::Token), 2, "one refresh per expiry");
    let third = b.mem.vault.get(&b.grant.secret_ref).await.expect("vault").expect("tokens");
    assert_eq!(
        third.tokens.refresh_token.map(|t| t.expose().to_owned()),
        sp.latest_refresh_token(&b.account)
    );
}
