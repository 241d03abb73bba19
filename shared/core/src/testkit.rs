//! Port contract suites: one async function per port, callable on any implementation. The
//! in-memory adapters run them in this crate's tests; the AWS adapters run the same functions
//! against an AWS emulator. Every suite works under fresh random client ids, so one backing
//! instance (one DynamoDB table) can serve many suites running in parallel.
//!
//! The suites panic on the first broken promise, with a message naming it.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;

use crate::domain::*;
use crate::ids::{ClientId, ConnectionId, GrantId, RunId, UserId};
use crate::ports::*;
use crate::secret::Secret;

fn client() -> ClientId {
    ClientId::parse(&format!("kit-{}", ConnectionId::generate().as_str().trim_start_matches("con_")))
        .expect("client id")
}

fn now() -> Timestamp {
    // Whole seconds, so stores with second precision compare equal.
    chrono::DateTime::from_timestamp(Utc::now().timestamp(), 0).unwrap_or_default()
}

/// A connection record with test defaults.
pub fn sample_connection(client: &ClientId, folder: &str) -> Connection {
    let t = now();
    Connection {
        client_id: client.clone(),
        id: ConnectionId::generate(),
        grant_id: GrantId::generate(),
        provider: ProviderKind::Dropbox,
        folder: FolderLocator { folder_id: folder.into(), drive_id: None },
        folder_name: "Photos".into(),
        folder_path: "/Photos".into(),
        auto_sync: true,
        sync_interval_secs: 900,
        status: ConnectionStatus::Active,
        current_run_id: None,
        last_synced_at: None,
        synced_by: SyncedBy { user_id: UserId::parse("u1").expect("user"), display_name: "Ana".into() },
        created_at: t,
        position: SyncPosition::Initial,
        lease: None,
        lease_version: 0,
        counters: ConnectionCounters::default(),
        filters: Filters::default(),
        next_due_at: Some(t),
        not_before: None,
        status_reason: None,
        held_deletions: None,
        approved_deletions: None,
    }
}

pub fn sample_run(conn: &ConnKey) -> SyncRun {
    SyncRun::queued(conn.clone(), Trigger::Manual, None, now())
}

pub fn sample_item(id: &str, path: &str) -> Item {
    Item {
        provider_id: id.into(),
        parent_id: None,
        name: path.rsplit('/').next().unwrap_or(path).into(),
        path: path.into(),
        path_key: Some(crate::domain::path_key(&path.to_lowercase())),
        kind: crate::domain::ItemKind::File,
        mime_type: None,
        revision: Some("a1c10ce0dd78".into()),
        content_hash: None,
        size: Some(10),
        state: ItemState::Imported,
        reason: None,
        attempts: 0,
        next_attempt_at: None,
        error: None,
        failed_in: None,
        warning: None,
        asset_key: Some("k".into()),
        seen_in: None,
        updated_at: now(),
        transfer: None,
    }
}

const TTL: Duration = Duration::from_secs(120);

/// ConnectionStore: CRUD, uniqueness, leases with fencing, due/claim.
pub async fn connection_store(store: Arc<dyn ConnectionStore>) {
    let c1 = client();
    let conn = sample_connection(&c1, "id:folderA");
    store.create(&conn).await.expect("create");
    let key = conn.key();
    assert_eq!(store.get(&key).await.expect("get").as_ref(), Some(&conn), "get returns what was created");
    let mut same_folder = sample_connection(&c1, "id:folderA");
    same_folder.created_at = conn.created_at;
    assert_eq!(store.create(&same_folder).await, Err(StoreError::Conflict), "one connection per folder");
    let other_client = sample_connection(&client(), "id:folderA");
    store.create(&other_client).await.expect("another client may connect the same folder id");
    let other_key = ConnKey { client_id: client(), connection_id: conn.id.clone() };
    assert_eq!(store.get(&other_key).await.expect("get"), None, "ids are scoped by client");
    assert_eq!(store.list(&c1, None).await.expect("list").len(), 1);
    assert_eq!(store.list(&c1, Some(ProviderKind::GoogleDrive)).await.expect("list").len(), 0);
    assert_eq!(store.list_by_grant(&c1, &conn.grant_id).await.expect("by grant").len(), 1);

    let patch =
        ConnectionPatch { auto_sync: Some(false), folder_name: Some("Renamed".into()), ..Default::default() };
    let updated = store.update(&key, &patch).await.expect("update");
    assert!(!updated.auto_sync && updated.folder_name == "Renamed");
    assert_eq!(store.update(&other_key, &patch).await, Err(StoreError::NotFound));
    // Conditional on the current run: of two clicks starting a run, one wins.
    let run = RunId::generate();
    let start = |r: &RunId| ConnectionPatch {
        current_run_id: Some(Some(r.clone())),
        if_current_run: Some(None),
        ..Default::default()
    };
    assert!(store.update(&key, &start(&run)).await.is_ok());
    assert_eq!(store.update(&key, &start(&RunId::generate())).await, Err(StoreError::Conflict));
    let got = store.get(&key).await.expect("get").expect("exists");
    assert_eq!(got.current_run_id, Some(run.clone()));
    store
        .update(
            &key,
            &ConnectionPatch {
                current_run_id: Some(None),
                if_current_run: Some(Some(run)),
                ..Default::default()
            },
        )
        .await
        .expect("clear with the right expectation");

    // Leases: one holder; takeover only after expiry, with a higher fence.
    let t0 = now();
    let (f1, leased) = store.acquire_lease(&key, "w1", t0, TTL).await.expect("acquire").expect("free lease");
    assert_eq!(leased, store.get(&key).await.expect("get").expect("exists"), "the record as leased");
    assert_eq!((leased.lease_version, leased.lease.map(|l| l.holder)), (f1.version, Some("w1".into())));
    assert_eq!(store.acquire_lease(&key, "w2", t0, TTL).await.expect("acquire"), None, "held lease refused");
    store
        .checkpoint(&f1, &SyncPosition::Incremental { cursor: "c1".into() }, &ConnectionPatch::default())
        .await
        .expect("holder checkpoints");
    let later = t0 + chrono::Duration::seconds(121);
    let f2 = store
        .acquire_lease(&key, "w2", later, TTL)
        .await
        .expect("acquire")
        .expect("expired lease taken over")
        .0;
    assert!(f2.version > f1.version, "fencing version increases");
    let stale = store
        .checkpoint(&f1, &SyncPosition::Incremental { cursor: "stale".into() }, &ConnectionPatch::default())
        .await;
    assert_eq!(stale, Err(StoreError::Fenced), "a stale holder's checkpoint is rejected");
    assert_eq!(store.renew_lease(&f1, later, TTL).await, Err(StoreError::Fenced));
    let got = store.get(&key).await.expect("get").expect("exists");
    assert_eq!(got.position, SyncPosition::Incremental { cursor: "c1".into() }, "stale write left no trace");
    store.renew_lease(&f2, later, TTL).await.expect("renew");
    store
        .release_lease(&f2, &ConnectionPatch { last_synced_at: Some(later), ..Default::default() })
        .await
        .expect("release");
    assert_eq!(
        store.release_lease(&f2, &ConnectionPatch::default()).await,
        Err(StoreError::Fenced),
        "released means not ours"
    );
    let got = store.get(&key).await.expect("get").expect("exists");
    assert!(got.lease.is_none() && got.last_synced_at == Some(later));

    // Concurrency: of many simultaneous acquirers exactly one wins.
    let t1 = later + chrono::Duration::seconds(1);
    let attempts = (0..16).map(|i| {
        let (store, key) = (store.clone(), key.clone());
        tokio::spawn(async move { store.acquire_lease(&key, &format!("racer{i}"), t1, TTL).await })
    });
    let winners = futures::future::join_all(attempts)
        .await
        .into_iter()
        .filter(|r| matches!(r, Ok(Ok(Some(_)))))
        .count();
    assert_eq!(winners, 1, "two lease holders at once");

    // Deleting revokes the lease: fenced writes fail afterwards.
    let f3 = store
        .acquire_lease(&key, "w3", t1 + chrono::Duration::seconds(200), TTL)
        .await
        .expect("acquire")
        .expect("free")
        .0;
    assert!(store.delete(&key).await.expect("delete"));
    assert_eq!(
        store.checkpoint(&f3, &SyncPosition::Initial, &ConnectionPatch::default()).await,
        Err(StoreError::Fenced)
    );
    assert_eq!(store.get(&key).await.expect("get"), None);
    assert!(!store.delete(&key).await.expect("delete twice"));

    // Due connections and the conditional next-due move (a double tick claims once).
    let c2 = client();
    let due = sample_connection(&c2, "id:due");
    let mut off = sample_connection(&c2, "id:off");
    off.auto_sync = false;
    store.create(&due).await.expect("create");
    store.create(&off).await.expect("create");
    let tick = now() + chrono::Duration::seconds(1);
    let listed: Vec<ConnKey> = all_due(store.as_ref(), tick).await.into_iter().map(|d| d.key).collect();
    assert!(
        listed.contains(&due.key()) && !listed.contains(&off.key()),
        "only auto-sync connections are due"
    );
    let expected = due.next_due_at.expect("due");
    let d = all_due(store.as_ref(), tick).await.into_iter().find(|d| d.key == due.key()).expect("listed");
    assert_eq!((d.due_at, d.every_secs), (expected, due.sync_interval_secs), "due time and interval");
    let next = tick + chrono::Duration::seconds(900);
    assert!(store.claim_due(&due.key(), expected, next, "tick_a").await.expect("claim"));
    assert!(
        !store.claim_due(&due.key(), expected, next, "tick_b").await.expect("claim"),
        "second tick claims nothing"
    );
    // The same tick's claim again (a retry whose first attempt was applied): still its own.
    assert!(store.claim_due(&due.key(), expected, next, "tick_a").await.expect("claim"), "a retried claim");
    let later = next + chrono::Duration::seconds(1);
    assert!(
        !store.claim_due(&due.key(), expected, later, "tick_a").await.expect("claim"),
        "a claim to another time is not the one applied"
    );
    // The claim is the connection's next-due time, and a later doc write keeps it.
    assert_eq!(store.get(&due.key()).await.expect("get").expect("there").next_due_at, Some(next));
    store.update(&due.key(), &ConnectionPatch::default()).await.expect("update");
    assert_eq!(store.get(&due.key()).await.expect("get").expect("there").next_due_at, Some(next));
    // Many due connections page through, each listed once.
    // Due at `expected`, before `tick`, however long creating them takes (their own creation
    // second may be after `tick` on a slow store).
    let due_at_expected =
        |folder: &str| Connection { next_due_at: Some(expected), ..sample_connection(&c2, folder) };
    let many: Vec<Connection> = (0..20).map(|i| due_at_expected(&format!("id:many-{i}"))).collect();
    for c in &many {
        store.create(c).await.expect("create");
    }
    let listed = all_due(store.as_ref(), tick).await;
    for c in &many {
        assert_eq!(listed.iter().filter(|d| d.key == c.key()).count(), 1, "{:?} listed once", c.id);
    }
    let listed: Vec<ConnKey> = all_due(store.as_ref(), tick).await.into_iter().map(|d| d.key).collect();
    assert!(!listed.contains(&due.key()));

    // An `error` connection stays due (the next tick retries it); `needs_review` waits.
    let mut failing = due_at_expected("id:error");
    failing.status = ConnectionStatus::Error;
    let review = due_at_expected("id:review");
    store.create(&failing).await.expect("create");
    store.create(&review).await.expect("create");
    store
        .update(&review.key(), &ConnectionPatch::status(ConnectionStatus::NeedsReview, Some("held".into())))
        .await
        .expect("update");
    let listed: Vec<ConnKey> = all_due(store.as_ref(), tick).await.into_iter().map(|d| d.key).collect();
    assert!(listed.contains(&failing.key()), "an error connection is due");
    assert!(!listed.contains(&review.key()), "a connection needing review is not due");
}

/// Every due connection, over all shards and pages (the store may hold other tests' too).
async fn all_due(store: &dyn ConnectionStore, now: Timestamp) -> Vec<DueRef> {
    let mut out = Vec::new();
    for shard in 0..store.due_shards() {
        let mut after = None;
        loop {
            let page = store.due(shard, now, after.as_deref(), 7).await.expect("due");
            assert!(page.due.len() <= 7, "a page holds at most its limit");
            out.extend(page.due);
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    out
}

/// ItemStore + RunStore: fenced atomic item records, path lookups, paging, run history.
pub async fn item_and_run_store(
    conns: Arc<dyn ConnectionStore>,
    items: Arc<dyn ItemStore>,
    runs: Arc<dyn RunStore>,
) {
    let c = client();
    let conn = sample_connection(&c, "id:items");
    conns.create(&conn).await.expect("create");
    let key = conn.key();
    let run = sample_run(&key);
    runs.create(&run).await.expect("create run");
    assert_eq!(runs.create(&run).await, Err(StoreError::Conflict));
    let fence = conns.acquire_lease(&key, "w", now(), TTL).await.expect("acquire").expect("free").0;

    let write = |item: Item, files: i64| ItemWrite {
        item,
        run_id: run.id.clone(),
        run_delta: RunCounters { imported: 1, bytes: 10, ..Default::default() },
        conn_delta: CounterDelta { files, bytes: 10 * files, failed: 0 },
    };
    for (id, parent, path) in [
        ("id:1", "id:photos", "/Photos/A.jpg"),
        ("id:2", "id:sub", "/Photos/Sub/b.jpg"),
        ("id:3", "id:sub", "/Photos/Sub/c.jpg"),
        ("id:4", "id:photos", "/Photos/Subway.jpg"),
    ] {
        let mut item = sample_item(id, path);
        item.parent_id = Some(parent.into());
        items.record(&fence, &write(item, 1)).await.expect("record");
    }
    assert_eq!(items.get(&key, "id:1").await.expect("get").map(|i| i.path), Some("/Photos/A.jpg".into()));
    let ids = |v: Vec<Item>| v.into_iter().map(|i| i.provider_id).collect::<Vec<_>>();
    // A page's worth at once: the ones that exist, whatever the number asked (past one
    // request's 100 keys on DynamoDB), repeats and unknown ids included.
    let asked: Vec<String> = (0..150).map(|i| format!("id:none{i}")).collect();
    let mut asked: Vec<&str> = asked.iter().map(String::as_str).collect();
    asked.extend(["id:3", "id:1", "id:3"]);
    let mut found = ids(items.get_many(&key, &asked).await.expect("get_many"));
    found.sort();
    found.dedup();
    assert_eq!(found, ["id:1", "id:3"]);
    assert_eq!(items.get_many(&key, &[]).await.expect("get_many"), Vec::new());
    let by_path = items.by_path_key(&key, &crate::domain::path_key("/photos/sub/b.jpg")).await.expect("path");
    assert_eq!(ids(by_path), ["id:2"], "the path index finds the item at exactly that path");
    let none = items.by_path_key(&key, &crate::domain::path_key("/photos/sub")).await.expect("path");
    assert!(none.is_empty(), "the path index is exact, not a prefix");
    let kids = items.children(&key, "id:sub", None, 10).await.expect("children");
    assert_eq!(ids(kids), ["id:2", "id:3"], "the children index lists direct children in id order");
    let kids = items.children(&key, "id:sub", Some("id:2"), 10).await.expect("children");
    assert_eq!(ids(kids), ["id:3"], "children page after a provider id");
    let kids = items.children(&key, "id:sub", None, 1).await.expect("children");
    assert_eq!(ids(kids), ["id:2"], "children pages honour the limit");
    let mut gone = sample_item("id:6", "/Photos/Sub/gone.jpg");
    gone.parent_id = Some("id:sub".into());
    gone.state = ItemState::SourceDeleted;
    let quiet = ItemWrite {
        item: gone,
        run_id: run.id.clone(),
        run_delta: RunCounters::default(),
        conn_delta: CounterDelta::default(),
    };
    items.record(&fence, &quiet).await.expect("record");
    let kids = items.children(&key, "id:sub", None, 10).await.expect("children");
    assert_eq!(ids(kids), ["id:2", "id:3"], "a source-deleted item leaves the children index");
    let gone = items.by_path_key(&key, &crate::domain::path_key("/photos/sub/gone.jpg")).await.expect("path");
    assert!(gone.is_empty(), "a source-deleted item leaves the path index");
    assert!(items.get(&key, "id:6").await.expect("get").is_some(), "but its record stays");
    let page1 = items.list(&key, None, None, 2).await.expect("list");
    let page2 = items.list(&key, None, Some(&page1[1].provider_id), 10).await.expect("list");
    assert_eq!(page1.len() + page2.len(), 5, "paging covers every item once");
    let mut failed = sample_item("id:5", "/Photos/f.jpg");
    failed.state = ItemState::Failed;
    items.record(&fence, &write(failed, 0)).await.expect("record");
    assert_eq!(items.list(&key, Some(ItemState::Failed), None, 10).await.expect("list").len(), 1);
    // By state, in provider-id order, paged after a provider id; a state change moves an item
    // from one listing to the other. (Written without counter changes.)
    let uncounted = |item: Item| ItemWrite {
        item,
        run_id: run.id.clone(),
        run_delta: RunCounters::default(),
        conn_delta: CounterDelta::default(),
    };
    for id in ["id:s1", "id:s2", "id:s3"] {
        let mut skipped = sample_item(id, &format!("/Photos/{id}.psd"));
        skipped.state = ItemState::Skipped;
        items.record(&fence, &uncounted(skipped)).await.expect("record");
    }
    let skipped = |after: Option<&str>, limit: usize| {
        let items = items.clone();
        let (key, after) = (key.clone(), after.map(str::to_owned));
        async move {
            ids(items.list(&key, Some(ItemState::Skipped), after.as_deref(), limit).await.expect("list"))
        }
    };
    assert_eq!(skipped(None, 2).await, ["id:s1", "id:s2"]);
    assert_eq!(skipped(Some("id:s2"), 2).await, ["id:s3"]);
    assert_eq!(skipped(None, 0).await, Vec::<String>::new());
    let sd = ids(items.list(&key, Some(ItemState::SourceDeleted), None, 10).await.expect("list"));
    assert_eq!(sd, ["id:6"]);
    let mut back = items.get(&key, "id:s2").await.expect("get").expect("item");
    back.state = ItemState::Imported;
    items.record(&fence, &uncounted(back)).await.expect("record");
    assert_eq!(skipped(None, 10).await, ["id:s1", "id:s3"]);
    let imported = ids(items.list(&key, Some(ItemState::Imported), None, 10).await.expect("list"));
    assert!(
        imported.contains(&"id:s2".to_owned()) && !imported.contains(&"id:s1".to_owned()),
        "{imported:?}"
    );

    let got = runs.get(&key, &run.id).await.expect("get").expect("run");
    assert_eq!((got.counters.imported, got.counters.bytes), (5, 50), "run counters follow item writes");
    let got = conns.get(&key).await.expect("get").expect("conn");
    assert_eq!((got.counters.files, got.counters.bytes), (4, 40), "connection counters follow item writes");

    // A stale fence writes nothing: not the item, not the counters.
    let takeover = now() + chrono::Duration::seconds(500);
    let fence2 = conns.acquire_lease(&key, "w2", takeover, TTL).await.expect("acquire").expect("expired").0;
    let stale = items.record(&fence, &write(sample_item("id:9", "/Photos/z.jpg"), 1)).await;
    assert_eq!(stale, Err(StoreError::Fenced));
    assert_eq!(items.get(&key, "id:9").await.expect("get"), None, "stale item write left no item");
    let got = runs.get(&key, &run.id).await.expect("get").expect("run");
    assert_eq!(got.counters.imported, 5, "stale item write left the run counters alone");
    let stale_run = runs
        .update(
            &key,
            &run.id,
            &RunPatch { status: Some(RunStatus::Failed), ..Default::default() },
            Some(&fence),
        )
        .await;
    assert_eq!(stale_run, Err(StoreError::Fenced));
    let done = runs
        .update(
            &key,
            &run.id,
            &RunPatch {
                status: Some(RunStatus::Succeeded),
                finished_at: Some(takeover),
                add_invocation: true,
                ..Default::default()
            },
            Some(&fence2),
        )
        .await
        .expect("update");
    assert_eq!((done.status, done.invocations), (RunStatus::Succeeded, 1));

    let newer =
        SyncRun::queued(key.clone(), Trigger::Manual, None, run.queued_at + chrono::Duration::seconds(5));
    runs.create(&newer).await.expect("create");
    let newest =
        SyncRun::queued(key.clone(), Trigger::Manual, None, run.queued_at + chrono::Duration::hours(1));
    runs.create(&newest).await.expect("create");
    // Another connection's runs sit in the same store and never show.
    let other_conn = ConnKey { client_id: key.client_id.clone(), connection_id: ConnectionId::generate() };
    runs.create(&SyncRun::queued(other_conn.clone(), Trigger::Manual, None, run.queued_at))
        .await
        .expect("create");
    let ids = |v: Vec<SyncRun>| v.into_iter().map(|r| r.id).collect::<Vec<RunId>>();
    let listed = ids(runs.list(&key, None, 10).await.expect("list"));
    assert_eq!(listed, [newest.id.clone(), newer.id.clone(), run.id.clone()], "runs newest first");
    assert_eq!(ids(runs.list(&key, None, 2).await.expect("list")), [newest.id.clone(), newer.id.clone()]);
    let page2 = ids(runs.list(&key, Some(&newer.id), 2).await.expect("list"));
    assert_eq!(page2, std::slice::from_ref(&run.id), "older than the cursor, the cursor itself excluded");
    assert_eq!(runs.list(&key, Some(&run.id), 2).await.expect("list"), Vec::new());
    assert_eq!(runs.list(&key, None, 0).await.expect("list"), Vec::new());
    let other = ConnKey { client_id: client(), connection_id: key.connection_id.clone() };
    assert_eq!(runs.get(&other, &run.id).await.expect("get"), None, "runs are scoped by client");
    assert_eq!(items.get(&other, "id:1").await.expect("get"), None, "items are scoped by client");

    // Deleting the connection leaves its records; purging removes them, `limit` at a time,
    // and nothing of another connection.
    assert!(conns.delete(&key).await.expect("delete"));
    assert!(items.get(&key, "id:1").await.expect("get").is_some(), "a delete is one small write");
    assert_eq!(items.purge(&key, 2).await.expect("purge"), 2, "a full page: maybe more");
    let rest = items.purge(&key, 100).await.expect("purge");
    assert!((3..100).contains(&rest), "the rest of the items and the 3 runs in one page: {rest}");
    assert_eq!(items.purge(&key, 100).await.expect("purge"), 0, "nothing left");
    for id in ["id:1", "id:2", "id:3", "id:4"] {
        assert_eq!(items.get(&key, id).await.expect("get"), None);
    }
    assert_eq!(runs.list(&key, None, 10).await.expect("list"), Vec::new());
    assert_eq!(runs.get(&key, &run.id).await.expect("get"), None);
    assert_eq!(
        runs.list(&other_conn, None, 10).await.expect("list").len(),
        1,
        "another connection's run stays"
    );
}

/// A worker's run: `start` creates it as the connection's current run under the lease, and
/// `finish` ends it and releases the lease in one write, refused — nothing written — when the
/// lease is lost or, if asked, when the run was flagged `retry_failed` meanwhile.
pub async fn run_lifecycle(conns: Arc<dyn ConnectionStore>, runs: Arc<dyn RunStore>) {
    let c = client();
    let conn = sample_connection(&c, "id:lifecycle");
    conns.create(&conn).await.expect("create");
    let key = conn.key();
    let (fence, _) = conns.acquire_lease(&key, "w1", now(), TTL).await.expect("acquire").expect("free");
    let takeover = now() + chrono::Duration::seconds(500);
    let (fence2, _) =
        conns.acquire_lease(&key, "w2", takeover, TTL).await.expect("acquire").expect("expired");
    let mut run = SyncRun::queued(key.clone(), Trigger::Schedule, None, takeover);
    run.status = RunStatus::Running;
    run.started_at = Some(takeover);
    run.invocations = 1;
    assert_eq!(runs.start(&fence, &run).await, Err(StoreError::Fenced), "a stale holder starts nothing");
    assert_eq!(runs.get(&key, &run.id).await.expect("get"), None);
    runs.start(&fence2, &run).await.expect("start");
    assert_eq!(runs.start(&fence2, &run).await, Err(StoreError::Conflict), "the id exists");
    assert_eq!(runs.get(&key, &run.id).await.expect("get").as_ref(), Some(&run));
    let got = conns.get(&key).await.expect("get").expect("conn");
    assert_eq!(got.current_run_id.as_ref(), Some(&run.id), "the connection's current run");
    // An admin's change while the worker holds the lease survives the worker's later writes
    // (a store that writes from a copy it remembers must notice the copy is stale).
    let admin = ConnectionPatch { auto_sync: Some(false), ..Default::default() };
    conns.update(&key, &admin).await.expect("admin toggles Auto sync off");
    let pos = SyncPosition::Incremental { cursor: "after-toggle".into() };
    conns.checkpoint(&fence2, &pos, &ConnectionPatch::default()).await.expect("checkpoint");
    let got = conns.get(&key).await.expect("get").expect("conn");
    assert_eq!((got.auto_sync, &got.position), (false, &pos), "both the admin's change and the checkpoint");

    let flag = RunPatch { retry_failed: Some(true), ..Default::default() };
    runs.update(&key, &run.id, &flag, None).await.expect("an admin flags the run");
    let finish = RunPatch {
        status: Some(RunStatus::Succeeded),
        finished_at: Some(takeover),
        transferring: Some(0),
        unless_retry_flagged: true,
        ..Default::default()
    };
    let release =
        ConnectionPatch { current_run_id: Some(None), last_synced_at: Some(takeover), ..Default::default() };
    assert_eq!(runs.finish(&fence2, &run.id, &finish, &release).await, Err(StoreError::Conflict));
    let got = conns.get(&key).await.expect("get").expect("conn");
    assert!(
        got.lease.is_some() && got.current_run_id.as_ref() == Some(&run.id),
        "a refused finish releases nothing"
    );
    assert_eq!(runs.get(&key, &run.id).await.expect("get").map(|r| r.status), Some(RunStatus::Running));
    assert_eq!(
        runs.update(&key, &run.id, &finish, None).await,
        Err(StoreError::Conflict),
        "update checks it too"
    );

    assert_eq!(runs.finish(&fence, &run.id, &RunPatch::default(), &release).await, Err(StoreError::Fenced));
    let missing = RunId::generate();
    assert_eq!(
        runs.finish(&fence2, &missing, &RunPatch::default(), &release).await,
        Err(StoreError::NotFound)
    );
    let unconditional = RunPatch { unless_retry_flagged: false, ..finish.clone() };
    runs.finish(&fence2, &run.id, &unconditional, &release).await.expect("finish");
    let done = runs.get(&key, &run.id).await.expect("get").expect("run");
    assert_eq!(
        (done.status, done.finished_at, done.retry_failed),
        (RunStatus::Succeeded, Some(takeover), true)
    );
    let got = conns.get(&key).await.expect("get").expect("conn");
    assert_eq!((got.lease, got.current_run_id, got.last_synced_at), (None, None, Some(takeover)));
    assert_eq!((got.auto_sync, &got.position), (false, &pos), "the finish kept what others wrote");
    assert_eq!(
        runs.finish(&fence2, &run.id, &unconditional, &release).await,
        Err(StoreError::Fenced),
        "released: no longer ours"
    );
    // Leased again: the record comes back with the lease, the rest as last written.
    let (_, leased) =
        conns.acquire_lease(&key, "w3", takeover, TTL).await.expect("acquire").expect("released lease");
    assert_eq!((leased.last_synced_at, leased.current_run_id), (Some(takeover), None));
}

/// ItemStore::failed_due: failed items only, ordered by (next attempt, provider id), up to
/// `due_by`, after a cursor; an item leaves it once imported or deleted at the source.
pub async fn failed_due(conns: Arc<dyn ConnectionStore>, items: Arc<dyn ItemStore>, runs: Arc<dyn RunStore>) {
    let c = client();
    let conn = sample_connection(&c, "id:failed");
    conns.create(&conn).await.expect("create");
    let key = conn.key();
    let run = sample_run(&key);
    runs.create(&run).await.expect("create run");
    let fence = conns.acquire_lease(&key, "w", now(), TTL).await.expect("acquire").expect("free").0;
    let t0 = now();
    let at = |mins: i64| t0 + chrono::Duration::minutes(mins);
    let item = |id: &str, state: ItemState, next: Option<Timestamp>| {
        let mut i = sample_item(id, &format!("/Failed/{id}.jpg"));
        i.state = state;
        i.attempts = 1;
        i.next_attempt_at = next;
        i.error = Some("the provider refused the download".into());
        i.failed_in = Some(run.id.clone());
        ItemWrite {
            item: i,
            run_id: run.id.clone(),
            run_delta: RunCounters::default(),
            conn_delta: CounterDelta::default(),
        }
    };
    use ItemState::{Failed, Imported, Skipped, SourceDeleted};
    for w in [
        item("id:b", Failed, Some(at(-10))),
        item("id:a", Failed, Some(at(-10))),
        item("id:c", Failed, Some(at(-30))),
        item("id:d", Failed, None),
        item("id:e", Failed, Some(at(0))),
        item("id:ms", Failed, Some(at(0) + chrono::Duration::milliseconds(1))),
        item("id:f", Failed, Some(at(5))),
        item("id:g", Imported, Some(at(-60))),
        item("id:h", Skipped, Some(at(-60))),
    ] {
        items.record(&fence, &w).await.expect("record");
    }
    let ids = |v: Vec<Item>| v.into_iter().map(|i| i.provider_id).collect::<Vec<_>>();
    let due = |by: Timestamp, after: Option<(Timestamp, &'static str)>, limit: usize| {
        let items = items.clone();
        let key = key.clone();
        async move { ids(items.failed_due(&key, by, after, limit).await.expect("failed_due")) }
    };
    assert_eq!(
        due(at(0), None, 100).await,
        ["id:d", "id:c", "id:a", "id:b", "id:e"],
        "failed items due by then, by (next attempt, id); no time = the epoch; only failed ones"
    );
    assert_eq!(due(at(-10), None, 100).await, ["id:d", "id:c", "id:a", "id:b"], "due_by is inclusive");
    assert_eq!(due(at(5), None, 100).await, ["id:d", "id:c", "id:a", "id:b", "id:e", "id:ms", "id:f"]);
    assert_eq!(due(at(0), None, 2).await, ["id:d", "id:c"], "the limit");
    assert_eq!(due(at(0), Some((at(-10), "id:a")), 100).await, ["id:b", "id:e"], "strictly after the cursor");
    assert_eq!(due(at(0), Some((at(-10), "id:aa")), 100).await, ["id:b", "id:e"], "a cursor between items");
    assert_eq!(due(at(0), Some((at(10), "id:z")), 100).await, Vec::<String>::new(), "a cursor past due_by");
    assert_eq!(due(at(0), None, 0).await, Vec::<String>::new());
    // Paging with the last item as the cursor visits every due item once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<(Timestamp, String)> = None;
    loop {
        let page = items
            .failed_due(&key, at(5), cursor.as_ref().map(|(t, id)| (*t, id.as_str())), 2)
            .await
            .expect("failed_due");
        let Some(last) = page.last() else { break };
        cursor = Some((last.next_attempt_at.unwrap_or_default(), last.provider_id.clone()));
        seen.extend(ids(page));
    }
    assert_eq!(seen, ["id:d", "id:c", "id:a", "id:b", "id:e", "id:ms", "id:f"], "pages cover each once");

    // Imported and source-deleted items leave the index; a new failure moves an item in it.
    for w in [
        item("id:a", Imported, None),
        item("id:c", SourceDeleted, Some(at(-30))),
        item("id:b", Failed, Some(at(60))),
    ] {
        items.record(&fence, &w).await.expect("record");
    }
    assert_eq!(due(at(0), None, 100).await, ["id:d", "id:e"]);
    assert_eq!(due(at(60), None, 100).await, ["id:d", "id:e", "id:ms", "id:f", "id:b"]);
    let other = ConnKey { client_id: client(), connection_id: key.connection_id.clone() };
    assert!(
        items.failed_due(&other, at(60), None, 100).await.expect("failed_due").is_empty(),
        "scoped by client"
    );
}

/// OAuthStateStore: consumed exactly once, even under a race.
pub async fn oauth_state_store(store: Arc<dyn OAuthStateStore>) {
    let st = OAuthState {
        client_id: client(),
        user_id: UserId::parse("admin").expect("user"),
        provider: ProviderKind::Dropbox,
        pkce_verifier: Secret::new("verifier-verifier-verifier-verifier-verifier"),
        browser_binding: "b".repeat(64),
        created_at: now(),
        expires_at: now() + chrono::Duration::minutes(10),
    };
    let k = format!("state-{}", RunId::generate());
    store.put(&k, &st).await.expect("put");
    assert_eq!(store.put(&k, &st).await, Err(StoreError::Conflict));
    let consumers = (0..50).map(|_| {
        let (store, k) = (store.clone(), k.clone());
        tokio::spawn(async move { store.consume(&k).await })
    });
    let results = futures::future::join_all(consumers).await;
    let winners: Vec<OAuthState> =
        results.into_iter().filter_map(|r| r.ok().and_then(|r| r.ok()).flatten()).collect();
    assert_eq!(winners.len(), 1, "a state is consumed exactly once");
    assert_eq!(winners[0], st);
    assert_eq!(store.consume(&k).await.expect("consume"), None);
}

/// GrantStore: one grant per account, the refresh lock.
pub async fn grant_store(store: Arc<dyn GrantStore>) {
    let c = client();
    let g = Grant {
        client_id: c.clone(),
        id: GrantId::generate(),
        provider: ProviderKind::Dropbox,
        account_id: "dbid:AAH4f99".into(),
        account_name: "Ana".into(),
        account_email: Some("ana@example.com".into()),
        secret_ref: "ref".into(),
        created_by: UserId::parse("admin").expect("user"),
        created_at: now(),
        status: GrantStatus::Active,
        attached: false,
        paused_until: None,
    };
    store.create(&g).await.expect("create");
    let mut twin = g.clone();
    twin.id = GrantId::generate();
    assert_eq!(
        store.create(&twin).await,
        Err(StoreError::Conflict),
        "one grant per (client, provider, account)"
    );
    assert_eq!(
        store.find_by_account(&c, ProviderKind::Dropbox, "dbid:AAH4f99").await.expect("find").map(|x| x.id),
        Some(g.id.clone())
    );
    assert_eq!(
        store.find_by_account(&client(), ProviderKind::Dropbox, "dbid:AAH4f99").await.expect("find"),
        None
    );
    let mut changed = g.clone();
    changed.status = GrantStatus::ReauthRequired;
    store.update(&changed).await.expect("update");
    assert_eq!(store.get(&c, &g.id).await.expect("get"), Some(changed.clone()));

    // The pause: only ever later, kept by `update`, no error for a missing grant.
    let until = now() + chrono::Duration::minutes(5);
    store.pause(&c, &g.id, until).await.expect("pause");
    let paused = |g: Option<Grant>| g.expect("grant").paused_until.map(|t| t.timestamp_millis());
    assert_eq!(paused(store.get(&c, &g.id).await.expect("get")), Some(until.timestamp_millis()));
    store.pause(&c, &g.id, until - chrono::Duration::minutes(1)).await.expect("pause");
    assert_eq!(
        paused(store.get(&c, &g.id).await.expect("get")),
        Some(until.timestamp_millis()),
        "a shorter pause does not shorten a longer one"
    );
    store.update(&changed).await.expect("update");
    assert_eq!(
        paused(store.get(&c, &g.id).await.expect("get")),
        Some(until.timestamp_millis()),
        "a record update (a token refresh) keeps the pause"
    );
    let later = until + chrono::Duration::minutes(5);
    store.pause(&c, &g.id, later).await.expect("pause");
    assert_eq!(paused(store.get(&c, &g.id).await.expect("get")), Some(later.timestamp_millis()));
    let missing = GrantId::generate();
    store.pause(&c, &missing, later).await.expect("a missing grant is no error");
    assert_eq!(store.get(&c, &missing).await.expect("get"), None, "and pausing it creates nothing");

    let t = now();
    let racers = (0..16).map(|i| {
        let (store, c, id) = (store.clone(), c.clone(), g.id.clone());
        tokio::spawn(async move {
            store.try_lock_refresh(&c, &id, &format!("h{i}"), t, Duration::from_secs(10)).await
        })
    });
    let holders =
        futures::future::join_all(racers).await.into_iter().filter(|r| matches!(r, Ok(Ok(true)))).count();
    assert_eq!(holders, 1, "one refresh lock holder at a time");
    assert!(
        store
            .try_lock_refresh(&c, &g.id, "late", t + chrono::Duration::seconds(11), Duration::from_secs(10))
            .await
            .expect("lock"),
        "an expired lock can be taken"
    );
    store.unlock_refresh(&c, &g.id, "not-the-holder").await.expect("unlock");
    assert!(
        !store
            .try_lock_refresh(&c, &g.id, "other", t + chrono::Duration::seconds(12), Duration::from_secs(10))
            .await
            .expect("lock"),
        "only the holder unlocks"
    );
    store.unlock_refresh(&c, &g.id, "late").await.expect("unlock");
    assert!(
        store
            .try_lock_refresh(&c, &g.id, "other", t + chrono::Duration::seconds(12), Duration::from_secs(10))
            .await
            .expect("lock")
    );
    // Stale grants: revoking ones, and unattached ones past the cutoff.
    let stale: Vec<GrantId> = store
        .list_stale(t + chrono::Duration::seconds(1), 10_000)
        .await
        .expect("stale")
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert!(stale.contains(&g.id), "an unattached grant older than the cutoff is stale");
    assert!(
        !store
            .list_stale(t - chrono::Duration::hours(1), 10_000)
            .await
            .expect("stale")
            .iter()
            .any(|x| x.id == g.id)
    );
    let mut attached = store.get(&c, &g.id).await.expect("get").expect("grant");
    attached.attached = true;
    store.update(&attached).await.expect("update");
    assert!(
        !store
            .list_stale(t + chrono::Duration::seconds(1), 10_000)
            .await
            .expect("stale")
            .iter()
            .any(|x| x.id == g.id),
        "attached grants are not stale"
    );
    attached.status = GrantStatus::Revoking;
    store.update(&attached).await.expect("update");
    assert!(
        store
            .list_stale(t - chrono::Duration::hours(1), 10_000)
            .await
            .expect("stale")
            .iter()
            .any(|x| x.id == g.id),
        "revoking grants are stale"
    );
    store.delete(&c, &g.id).await.expect("delete");
    assert_eq!(store.get(&c, &g.id).await.expect("get"), None);
}

/// AuditLog: per-client, newest first.
pub async fn audit_log(log: Arc<dyn AuditLog>) {
    let (a, b) = (client(), client());
    let ev = |c: &ClientId, action: &str, secs: i64| AuditEvent {
        client_id: c.clone(),
        actor: UserId::parse("admin").expect("user"),
        action: action.into(),
        target: "connection/x".into(),
        at: now() + chrono::Duration::seconds(secs),
    };
    log.record(&ev(&a, "connection.create", 0)).await.expect("record");
    log.record(&ev(&b, "connection.delete", 1)).await.expect("record");
    log.record(&ev(&a, "connection.refresh", 2)).await.expect("record");
    let got: Vec<String> = log.list(&a, 10).await.expect("list").into_iter().map(|e| e.action).collect();
    assert_eq!(got, ["connection.refresh", "connection.create"], "own client only, newest first");
}

/// TokenVault: compare-and-set versions; a stale writer cannot overwrite a newer token set.
pub async fn token_vault(vault: Arc<dyn TokenVault>) {
    let r = format!("kit/{}", GrantId::generate());
    let t1 = TokenSet {
        access_token: Secret::new("a1"),
        refresh_token: Some(Secret::new("r1")),
        expires_at: Some(now()),
    };
    let v1 = vault.put(&r, &t1, None).await.expect("create");
    assert_eq!(
        vault.put(&r, &t1, None).await,
        Err(StoreError::Conflict),
        "create refuses an existing secret"
    );
    let t2 = TokenSet { access_token: Secret::new("a2"), ..t1.clone() };
    let v2 = vault.put(&r, &t2, Some(v1)).await.expect("cas");
    assert!(v2 > v1);
    let t3 = TokenSet { access_token: Secret::new("stale"), ..t1.clone() };
    assert_eq!(vault.put(&r, &t3, Some(v1)).await, Err(StoreError::Conflict), "stale version refused");
    let got = vault.get(&r).await.expect("get").expect("present");
    assert_eq!((got.tokens, got.version), (t2, v2));
    vault.delete(&r).await.expect("delete");
    vault.delete(&r).await.expect("delete is idempotent");
    assert_eq!(vault.get(&r).await.expect("get"), None);
}

fn meta() -> AssetMeta {
    AssetMeta {
        content_type: "image/jpeg".into(),
        size: Some(11),
        original_name: "naïve \"name\"\r\n../x.jpg".into(),
        source_path: "/Photos/naïve.jpg".into(),
        provider: ProviderKind::Dropbox,
        provider_id: "id:x".into(),
        content_version: "v1".into(),
        provider_hash: None,
    }
}

async fn put(
    sink: &dyn AssetSink,
    key: &str,
    chunks: &[&'static [u8]],
    claimed: &ObjectDigest,
) -> Result<CommitOutcome, SinkError> {
    let mut up = sink.begin(key, &meta()).await?;
    for c in chunks {
        up.write(Bytes::from_static(c)).await?;
    }
    up.commit(claimed).await
}

/// AssetSink: create-only, identical redelivery is success, integrity checked, abort leaves
/// nothing (observed through the next commit to the same key).
pub async fn asset_sink(sink: Arc<dyn AssetSink>) {
    let base = format!("kit/{}", RunId::generate());
    let k = format!("{base}/a");
    let hello = ObjectDigest::of(b"hello world");
    assert_eq!(put(sink.as_ref(), &k, &[b"hello ", b"world"], &hello).await, Ok(CommitOutcome::Created));
    assert_eq!(
        put(sink.as_ref(), &k, &[b"hello world"], &hello).await,
        Ok(CommitOutcome::AlreadyExists),
        "identical object = success"
    );
    assert_eq!(
        put(sink.as_ref(), &k, &[b"HELLO WORLD"], &ObjectDigest::of(b"HELLO WORLD")).await,
        Err(SinkError::Conflict),
        "create-only"
    );

    let k2 = format!("{base}/b");
    let bad = put(sink.as_ref(), &k2, &[b"hello world"], &ObjectDigest::of(b"something else")).await;
    assert!(matches!(bad, Err(SinkError::Integrity { .. })), "bytes must match the claimed digest: {bad:?}");
    // One byte lost between the caller and the sink: the CRC the sink computes tells.
    let bad = put(sink.as_ref(), &k2, &[b"hello", b"world"], &hello).await;
    assert!(matches!(bad, Err(SinkError::Integrity { .. })), "a lost byte is refused: {bad:?}");
    assert_eq!(
        put(sink.as_ref(), &k2, &[b"other"], &ObjectDigest::of(b"other")).await,
        Ok(CommitOutcome::Created),
        "a failed commit left nothing"
    );

    let k3 = format!("{base}/c");
    let mut up = sink.begin(&k3, &meta()).await.expect("begin");
    up.write(Bytes::from_static(b"partial")).await.expect("write");
    up.abort().await;
    assert_eq!(
        put(sink.as_ref(), &k3, &[b"whole"], &ObjectDigest::of(b"whole")).await,
        Ok(CommitOutcome::Created),
        "abort left nothing"
    );

    let k4 = format!("{base}/empty");
    assert_eq!(
        put(sink.as_ref(), &k4, &[], &ObjectDigest::of(b"")).await,
        Ok(CommitOutcome::Created),
        "empty files are assets too"
    );
}

/// AssetSink, resumable: an upload suspended after two and a half granules keeps a multiple of
/// the granule (and keeps it when suspended again with less than a granule more); resumed from
/// there with the rest of the bytes, it commits the whole object
/// (the sink's own hash, continued from its saved state, must match the whole content's).
/// Less than a granule written keeps nothing; a discarded upload cannot be resumed. Returns
/// the key and the content of the resumed object, for the adapter to read back.
pub async fn asset_sink_resume(sink: Arc<dyn AssetSink>) -> (String, Vec<u8>) {
    let granule = sink.granule(Some(3 * 8 * 1024 * 1024)).expect("a resumable sink has a granule");
    let size = usize::try_from(granule * 5 / 2).expect("size");
    let data: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(31) ^ (i >> 11)) as u8).collect();
    let mut m = meta();
    m.size = Some(size as u64);
    let base = format!("kit/{}", RunId::generate());

    let key = format!("{base}/resumed");
    let mut up = sink.begin(&key, &m).await.expect("begin");
    // Odd chunk sizes: granule boundaries fall inside chunks.
    for chunk in data.chunks(1_000_003) {
        up.write(Bytes::copy_from_slice(chunk)).await.expect("write");
    }
    let kept = up.suspend(Duration::from_secs(30)).await.expect("two granules are kept");
    assert_eq!(kept.offset, 2 * granule, "the durable prefix is a multiple of the granule");
    // Resumed and suspended again before another granule: what it had is still kept.
    let mut up = sink.resume(&key, &m, &kept).await.expect("resume");
    let at = usize::try_from(kept.offset).expect("offset");
    up.write(Bytes::copy_from_slice(&data[at..at + 1000])).await.expect("write");
    let kept = up.suspend(Duration::from_secs(30)).await.expect("the same prefix is kept");
    assert_eq!(kept.offset, 2 * granule, "no progress, nothing lost");
    let mut up = sink.resume(&key, &m, &kept).await.expect("resume again");
    for chunk in data[at..].chunks(777_777) {
        up.write(Bytes::copy_from_slice(chunk)).await.expect("write");
    }
    assert_eq!(
        up.commit(&ObjectDigest::of(&data)).await,
        Ok(CommitOutcome::Created),
        "the whole object, once"
    );

    let lost = format!("{base}/discarded");
    let mut up = sink.begin(&lost, &m).await.expect("begin");
    up.write(Bytes::copy_from_slice(&data[..usize::try_from(granule).expect("granule") + 5]))
        .await
        .expect("write");
    let kept2 = up.suspend(Duration::from_secs(30)).await.expect("one granule kept");
    assert_eq!(kept2.offset, granule);
    sink.discard(&lost, &kept2).await;
    assert!(sink.resume(&lost, &m, &kept2).await.is_err(), "a discarded upload is gone");

    let short = format!("{base}/short");
    let mut up = sink.begin(&short, &m).await.expect("begin");
    up.write(Bytes::from_static(b"less than a granule")).await.expect("write");
    assert_eq!(up.suspend(Duration::from_secs(30)).await, None, "nothing durable, nothing kept");
    assert_eq!(
        put(sink.as_ref(), &short, &[b"whole"], &ObjectDigest::of(b"whole")).await,
        Ok(CommitOutcome::Created),
        "the unsuspended upload left nothing"
    );
    (key, data)
}

/// JobQueue: batches of any size, delays clamped. `drain` reads back what was sent (how is
/// adapter-specific: SQS receive, the memory queue's drain).
pub async fn job_queue<F, Fut>(queue: Arc<dyn JobQueue>, drain: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<Job>>,
{
    let c = client();
    let jobs: Vec<Job> = (0..23)
        .map(|_| Job {
            client_id: c.clone(),
            connection_id: ConnectionId::generate(),
            trigger: Trigger::Schedule,
            run_id: None,
            requested_by: None,
            continuation: false,
            purge: false,
        })
        .collect();
    queue.send(&jobs).await.expect("batch send of more than 10");
    queue.send_delayed(&jobs[0], Duration::from_secs(0)).await.expect("delayed 0");
    queue
        .send_delayed(&jobs[1], Duration::from_secs(3600))
        .await
        .expect("a delay over 900 s is clamped, not refused");
    let mut got = drain().await;
    got.retain(|j| j.client_id == c);
    assert!(got.len() >= 24, "every sent job arrives: {}", got.len());
    for j in &jobs {
        assert!(got.contains(j), "job lost");
    }
}

/// The in-memory ports a sync test runs on: one store for every state port, a vault, a sink,
/// asset events, a queue and a virtual clock. Scope, model and conformance tests share it.
#[derive(Debug, Clone, Default)]
pub struct MemoryBench {
    pub store: Arc<crate::memory::MemoryStore>,
    pub vault: Arc<crate::memory::MemoryVault>,
    pub sink: crate::memory::MemorySink,
    pub events: Arc<crate::memory::MemoryEvents>,
    pub queue: Arc<crate::memory::MemoryQueue>,
    pub clock: Arc<crate::memory::ManualClock>,
}

impl MemoryBench {
    pub fn new() -> Self {
        Self::default()
    }

    /// The ports, with these connectors.
    pub fn ports(&self, providers: Vec<Arc<dyn Provider>>) -> crate::Ports {
        crate::Ports {
            connections: self.store.clone(),
            grants: self.store.clone(),
            items: self.store.clone(),
            runs: self.store.clone(),
            oauth_states: self.store.clone(),
            vault: self.vault.clone(),
            sink: Arc::new(self.sink.clone()),
            events: self.events.clone(),
            queue: self.queue.clone(),
            audit: self.store.clone(),
            clock: self.clock.clone(),
            providers: providers.into_iter().map(|p| (p.kind(), p)).collect(),
        }
    }

    /// An attached grant of client `acme` on `account`, its tokens in the vault.
    pub async fn grant(&self, provider: ProviderKind, account: &str, tokens: &TokenSet) -> Grant {
        let grant = Grant {
            client_id: ClientId::parse("acme").expect("client"),
            id: GrantId::generate(),
            provider,
            account_id: account.into(),
            account_name: account.into(),
            account_email: None,
            secret_ref: format!("acme/{}", GrantId::generate()),
            created_by: UserId::parse("ana").expect("user"),
            created_at: self.clock.now(),
            status: GrantStatus::Active,
            attached: true,
            paused_until: None,
        };
        GrantStore::create(self.store.as_ref(), &grant).await.expect("grant");
        self.vault.put(&grant.secret_ref, tokens, None).await.expect("vault");
        grant
    }

    /// A new auto-sync connection of `grant` on folder `folder_id` (named `name`), due now.
    pub async fn connect(&self, grant: &Grant, folder_id: &str, name: &str) -> ConnKey {
        self.connect_at(grant, FolderLocator { folder_id: folder_id.into(), drive_id: None }, name).await
    }

    /// The same on any locator (a folder in a shared drive carries its drive id).
    pub async fn connect_at(&self, grant: &Grant, folder: FolderLocator, name: &str) -> ConnKey {
        let mut c = sample_connection(&grant.client_id, &folder.folder_id);
        c.folder = folder;
        c.grant_id = grant.id.clone();
        c.provider = grant.provider;
        c.folder_name = name.into();
        c.folder_path = format!("/{name}");
        c.created_at = self.clock.now();
        c.next_due_at = Some(self.clock.now());
        ConnectionStore::create(self.store.as_ref(), &c).await.expect("connection");
        c.key()
    }

    /// One sync job run to its end (15-minute deadline); the run's final status.
    pub async fn sync(&self, ports: &crate::Ports, conn: &ConnKey) -> RunStatus {
        let job = Job::start(conn, Trigger::Schedule);
        let engine = crate::engine::Engine::new(ports.clone(), crate::engine::EngineConfig::default());
        let deadline = self.clock.now() + chrono::Duration::minutes(15);
        match engine.run_job(&job, deadline).await.expect("sync step") {
            crate::engine::JobOutcome::Finished { status, .. } => status,
            other => panic!("the sync did not finish: {other:?}"),
        }
    }

    /// One sync job and its continuations (each delivered after its delay on the virtual
    /// clock, at most `max_steps`), as a queue would redeliver them; the run's final status.
    pub async fn sync_to_end(&self, ports: &crate::Ports, conn: &ConnKey, max_steps: usize) -> RunStatus {
        let mut job = Job::start(conn, Trigger::Schedule);
        let engine = crate::engine::Engine::new(ports.clone(), crate::engine::EngineConfig::default());
        for _ in 0..max_steps {
            let deadline = self.clock.now() + chrono::Duration::minutes(15);
            match engine.run_job(&job, deadline).await.expect("sync step") {
                crate::engine::JobOutcome::Finished { status, .. } => return status,
                crate::engine::JobOutcome::Continued { run_id, delay } => {
                    self.clock.advance(delay);
                    job.run_id = Some(run_id);
                    job.continuation = true;
                }
                other => panic!("the sync stopped: {other:?}"),
            }
        }
        panic!("the sync did not finish in {max_steps} steps")
    }

    /// No object was written twice (every stored object was created exactly once; a
    /// redelivered import finds it already there), and the DAM heard of every stored object
    /// (events are at least once: a crash between an event and its item write repeats it).
    pub fn assert_each_object_written_once(&self, context: &str) {
        let objects = self.sink.objects();
        assert_eq!(self.sink.created() as usize, objects.len(), "{context}: an object was written twice");
        let announced: std::collections::BTreeSet<String> = self
            .events
            .all()
            .into_iter()
            .filter(|e| matches!(e.kind, AssetEventKind::Imported | AssetEventKind::Updated))
            .filter_map(|e| e.asset_key)
            .collect();
        for key in objects.keys() {
            assert!(announced.contains(key), "{context}: object {key} was stored without an import event");
        }
    }
}
