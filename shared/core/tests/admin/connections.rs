//! Connecting folders, Auto sync, Refresh Items and delete.

use std::time::Duration;

use extconn_core::connections::NewConnection;
use extconn_core::ports::{ConnectionPatch, ConnectionStore};
use extconn_core::tokens::Tokens;
use extconn_core::{ConnectionStatus, FolderLocator, GrantStatus, RunId, RunStatus, Trigger, UseCaseError};
use futures::FutureExt;

use crate::support::{World, actor};

fn new(folder_id: &str) -> NewConnection {
    NewConnection { folder: FolderLocator { folder_id: folder_id.into(), drive_id: None }, auto_sync: true }
}

#[tokio::test]
async fn connecting_a_folder_verifies_it_with_the_grants_token_and_queues_the_initial_import() {
    let w = World::new();
    let ana = actor("acme", "ana");
    w.provider.add_folder("id:photos", "Photos", "/Team/Photos");
    let grant = w.connect_account(&ana, "acct-1").await;
    assert!(!grant.attached);

    let c = w.connect_folder(&ana, &grant, "id:photos").await;
    // The provider was asked with the grant's own token; name and path are the provider's.
    let token = w.tokens(&grant).await.expect("tokens").access_token;
    assert_eq!(w.provider.folder_calls(), [token.expose()]);
    assert_eq!((c.folder_name.as_str(), c.folder_path.as_str()), ("Photos", "/Team/Photos"));
    assert_eq!((c.grant_id.clone(), c.status), (grant.id.clone(), ConnectionStatus::Active));
    assert_eq!(c.synced_by.display_name, "ana (display)");
    assert_eq!(c.next_due_at, Some(w.clock_now() + chrono::Duration::seconds(900)));
    assert!(w.grant(&grant).await.expect("grant").attached, "the grant is attached");

    // The initial import is queued: the connection's current run, with its job.
    let jobs = w.queue.drain();
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0].0;
    assert_eq!((job.trigger, &job.run_id), (Trigger::Initial, &c.current_run_id));
    assert_eq!((&job.connection_id, job.requested_by.as_ref()), (&c.id, Some(&ana.user_id)));
    let details = w.connections.details(c.clone()).await.expect("details");
    assert_eq!(details.recent_runs.len(), 1);
    assert_eq!(
        (Some(&details.recent_runs[0].id), details.recent_runs[0].status),
        (c.current_run_id.as_ref(), RunStatus::Queued)
    );
    assert_eq!(details.grant.map(|g| g.account_id), Some("acct-1".to_owned()));
    assert_eq!(w.trail("acme").await.last(), Some(&("connection.create".to_owned(), "ana".to_owned())));
}

#[tokio::test]
async fn a_folder_the_account_cannot_read_is_refused_and_nothing_is_stored() {
    let w = World::new();
    let ana = actor("acme", "ana");
    let grant = w.connect_account(&ana, "acct-1").await;
    let usable = w.connections.grant(&ana, &grant.id).await.expect("usable");
    let before = w.store.snapshot();

    let err = w.connections.create(&ana, usable, new("id:elsewhere")).await.expect_err("refused");
    assert_eq!(
        err,
        UseCaseError::Invalid { field: "/folder_id", reason: "not a folder this account can read" }
    );
    assert_eq!(w.store.snapshot(), before, "no connection, the grant still unattached");
    assert!(w.queue.is_empty());
}

#[tokio::test]
async fn the_same_folder_twice_is_already_connected() {
    let w = World::new();
    let (ana, bob) = (actor("acme", "ana"), actor("acme", "bob"));
    w.provider.add_folder("id:photos", "Photos", "/Photos");
    let grant = w.connect_account(&ana, "acct-1").await;
    let first = w.connect_folder(&ana, &grant, "id:photos").await;
    w.queue.drain();

    let usable = w.connections.grant(&bob, &grant.id).await.expect("attached: usable by bob");
    let err = w.connections.create(&bob, usable, new("id:photos")).await.expect_err("conflict");
    assert_eq!(err, UseCaseError::AlreadyConnected);
    let all = ConnectionStore::list(w.store.as_ref(), &ana.client_id, None).await.expect("list");
    assert_eq!(all.iter().map(|c| &c.id).collect::<Vec<_>>(), [&first.id]);
    assert!(w.queue.is_empty(), "no second import");
}

#[tokio::test]
async fn an_unattached_grant_is_usable_only_by_the_admin_who_authorized_it() {
    let w = World::new();
    let (ana, bob, eve) = (actor("acme", "ana"), actor("acme", "bob"), actor("globex", "eve"));
    w.provider.add_folder("id:photos", "Photos", "/Photos");
    let grant = w.connect_account(&ana, "acct-1").await;

    assert_eq!(w.connections.grant(&bob, &grant.id).await.err(), Some(UseCaseError::NotFound));
    assert_eq!(w.connections.grant(&eve, &grant.id).await.err(), Some(UseCaseError::NotFound));
    let usable = w.connections.grant(&ana, &grant.id).await.expect("ana's");
    let page = w.connections.browse_folders(&usable, None, None).await.expect("picker");
    assert_eq!(page.folders.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["Photos"]);

    let c = w.connect_folder(&ana, &grant, "id:photos").await;
    assert!(w.connections.grant(&bob, &grant.id).await.is_ok(), "attached: any admin of the client");
    assert_eq!(w.connections.grant(&eve, &grant.id).await.err(), Some(UseCaseError::NotFound));
    assert_eq!(w.connections.get(&eve, &c.id).await.err(), Some(UseCaseError::NotFound));
}

#[tokio::test]
async fn a_grant_that_needs_reauthorization_calls_no_provider() {
    let w = World::new();
    let ana = actor("acme", "ana");
    w.provider.add_folder("id:photos", "Photos", "/Photos");
    let grant = w.connect_account(&ana, "acct-1").await;
    Tokens::new(w.ports.clone(), Default::default()).mark_reauth(&grant).await.expect("mark");

    let usable = w.connections.grant(&ana, &grant.id).await.expect("still ana's");
    let err = w.connections.browse_folders(&usable, None, None).await.expect_err("refused");
    assert_eq!(err, UseCaseError::ReauthRequired);
    let err = w.connections.create(&ana, usable, new("id:photos")).await.expect_err("refused");
    assert_eq!(err, UseCaseError::ReauthRequired);
    assert!(w.provider.folder_calls().is_empty());
}

#[tokio::test]
async fn auto_sync_off_unschedules_and_refresh_items_is_refused_until_it_is_on() {
    let w = World::new();
    let ana = actor("acme", "ana");
    w.provider.add_folder("id:photos", "Photos", "/Photos");
    let grant = w.connect_account(&ana, "acct-1").await;
    let c = w.connect_folder(&ana, &grant, "id:photos").await;
    w.finish_run(&c, c.current_run_id.as_ref().expect("initial run")).await;
    w.queue.drain();

    let off = w.connections.set_auto_sync(&ana, &c.id, false).await.expect("off");
    assert_eq!((off.auto_sync, off.next_due_at), (false, None));
    assert_eq!(w.connections.refresh(&ana, &c.id).await.err(), Some(UseCaseError::AutoSyncOff));
    assert!(w.queue.is_empty());

    w.clock.advance(Duration::from_secs(30));
    let on = w.connections.set_auto_sync(&ana, &c.id, true).await.expect("on");
    assert_eq!(on.next_due_at, Some(w.clock_now() + chrono::Duration::seconds(900)));
    assert!(w.connections.refresh(&ana, &c.id).await.expect("refresh").started);
    let trail: Vec<String> = w.trail("acme").await.into_iter().map(|(a, _)| a).collect();
    assert!(trail.ends_with(&[
        "connection.auto_sync_off".to_owned(),
        "connection.auto_sync_on".to_owned(),
        "connection.refresh".to_owned()
    ]));
}

#[tokio::test]
async fn refresh_items_returns_the_open_run_instead_of_queuing_another() {
    let w = World::new();
    let (ana, bob) = (actor("acme", "ana"), actor("acme", "bob"));
    w.provider.add_folder("id:photos", "Photos", "/Photos");
    let grant = w.connect_account(&ana, "acct-1").await;
    let c = w.connect_folder(&ana, &grant, "id:photos").await;
    let initial = c.current_run_id.clone().expect("initial run");
    w.queue.drain();

    // Right after connecting, the initial import is the open run.
    let r = w.connections.refresh(&ana, &c.id).await.expect("refresh");
    assert_eq!((&r.run_id, r.status, r.started), (&initial, RunStatus::Queued, false));
    assert!(w.queue.is_empty());

    w.finish_run(&c, &initial).await;
    let mine = w.connections.refresh(&ana, &c.id).await.expect("refresh");
    assert!(mine.started && mine.run_id != initial);
    let theirs = w.connections.refresh(&bob, &c.id).await.expect("refresh");
    assert_eq!((&theirs.run_id, theirs.started), (&mine.run_id, false), "bob's click joins ana's run");
    let jobs = w.queue.drain();
    assert_eq!(jobs.len(), 1, "one job for two clicks");
    assert_eq!((jobs[0].0.trigger, jobs[0].0.run_id.as_ref()), (Trigger::Manual, Some(&mine.run_id)));
    let refreshes = w.trail("acme").await.into_iter().filter(|(a, _)| a == "connection.refresh").count();
    assert_eq!(refreshes, 1, "a click that started nothing leaves no event");
}

#[tokio::test]
async fn two_clicks_racing_start_one_run() {
    let w = World::new();
    let (ana, bob) = (actor("acme", "ana"), actor("acme", "bob"));
    w.provider.add_folder("id:photos", "Photos", "/Photos");
    let grant = w.connect_account(&ana, "acct-1").await;
    let c = w.connect_folder(&ana, &grant, "id:photos").await;
    w.finish_run(&c, c.current_run_id.as_ref().expect("initial run")).await;
    w.queue.drain();

    // Both clicks read the connection with no open run; bob's completes just before ana's
    // conditional write.
    let (connections, id) = (w.connections.clone(), c.id.clone());
    let (tx, rx) = tokio::sync::oneshot::channel();
    w.before_conditional_update(
        async move {
            let _ = tx.send(connections.refresh(&bob, &id).await);
        }
        .boxed(),
    );
    let ana_r = w.connections.refresh(&ana, &c.id).await.expect("ana");
    w.assert_hooks_fired();
    let bob_r = rx.await.expect("bob clicked").expect("bob");
    assert!(bob_r.started && !ana_r.started);
    assert_eq!(ana_r.run_id, bob_r.run_id, "ana is answered with bob's run");
    assert_eq!(w.queue.drain().len(), 1);
    let runs = extconn_core::ports::RunStore::list(w.store.as_ref(), &c.key(), None, 10).await.expect("runs");
    assert_eq!(runs.iter().filter(|r| r.status.is_open()).count(), 1);
}

#[tokio::test]
async fn a_run_id_whose_record_is_not_written_yet_counts_as_queued() {
    let w = World::new();
    let ana = actor("acme", "ana");
    w.provider.add_folder("id:photos", "Photos", "/Photos");
    let grant = w.connect_account(&ana, "acct-1").await;
    let c = w.connect_folder(&ana, &grant, "id:photos").await;
    w.finish_run(&c, c.current_run_id.as_ref().expect("initial run")).await;
    w.queue.drain();

    // Another request has set its run id on the connection and not yet written the run.
    let (store, key, theirs) = (w.store.clone(), c.key(), RunId::generate());
    let expected = theirs.clone();
    w.before_conditional_update(
        async move {
            let patch = ConnectionPatch { current_run_id: Some(Some(theirs)), ..Default::default() };
            ConnectionStore::update(store.as_ref(), &key, &patch).await.expect("their id");
        }
        .boxed(),
    );
    let r = w.connections.refresh(&ana, &c.id).await.expect("refresh");
    w.assert_hooks_fired();
    assert_eq!((r.run_id, r.status, r.started), (expected, RunStatus::Queued, false));
    assert!(w.queue.is_empty(), "their request queues it, not this one");
}

#[tokio::test]
async fn refresh_items_on_a_connection_that_needs_reauthorization_is_refused() {
    let w = World::new();
    let ana = actor("acme", "ana");
    w.provider.add_folder("id:photos", "Photos", "/Photos");
    let grant = w.connect_account(&ana, "acct-1").await;
    let c = w.connect_folder(&ana, &grant, "id:photos").await;
    w.finish_run(&c, c.current_run_id.as_ref().expect("initial run")).await;
    w.queue.drain();
    Tokens::new(w.ports.clone(), Default::default()).mark_reauth(&grant).await.expect("mark");

    assert_eq!(w.connections.refresh(&ana, &c.id).await.err(), Some(UseCaseError::ReauthRequired));
    assert!(w.queue.is_empty());
}

#[tokio::test]
async fn deleting_the_last_connection_of_a_grant_retires_the_grant() {
    let w = World::new();
    let (ana, eve) = (actor("acme", "ana"), actor("globex", "eve"));
    w.provider.add_folder("id:photos", "Photos", "/Photos");
    w.provider.add_folder("id:videos", "Videos", "/Videos");
    let grant = w.connect_account(&ana, "acct-1").await;
    let photos = w.connect_folder(&ana, &grant, "id:photos").await;
    let videos = w.connect_folder(&ana, &grant, "id:videos").await;
    let token = w.tokens(&grant).await.expect("tokens").access_token;

    // Another client's admin cannot reach it.
    assert_eq!(w.connections.delete(&eve, &photos.id).await.err(), Some(UseCaseError::NotFound));
    assert!(w.connection(&photos).await.is_some());

    // Another connection still uses the grant: it stays.
    w.connections.delete(&ana, &photos.id).await.expect("delete");
    assert!(w.connection(&photos).await.is_none());
    assert_eq!(w.grant(&grant).await.map(|g| g.status), Some(GrantStatus::Active));
    assert!(w.provider.revoked().is_empty());

    // The last one: revoked at the provider, secret and record gone.
    w.connections.delete(&ana, &videos.id).await.expect("delete");
    assert_eq!(w.provider.revoked(), [token.expose()]);
    assert!(w.tokens(&grant).await.is_none(), "secret deleted");
    assert!(w.grant(&grant).await.is_none(), "grant deleted");
    assert_eq!(w.connections.delete(&ana, &videos.id).await.err(), Some(UseCaseError::NotFound));
    let deletes = w.trail("acme").await.into_iter().filter(|(a, _)| a == "connection.delete").count();
    assert_eq!(deletes, 2);
}
