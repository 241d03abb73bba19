//! Connections through their life: toggle, Refresh Items, retry failed files, the answer to the
//! mass-delete guard, runs and items, delete; the audit trail of it all.

use axum::http::{Method, StatusCode};
use extconn_core::ports::{
    AuditLog, ConnectionPatch, ConnectionStore, CounterDelta, GrantStore, ItemStore, ItemWrite, RunStore,
    TokenVault,
};
use extconn_core::{ConnectionStatus, GrantStatus, ItemState, RunId, RunStatus, SyncPosition};
use extconn_system_tests::api::ApiWorld;
use extconn_system_tests::{Ep, Fault, WorldOptions};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_toggle_history_and_delete() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    a.w.add("a.jpg", "a");
    a.w.add("b.jpg", "b");
    let conn = a.w.conn.connection_id.to_string();
    let url = |s: &str| format!("/v1/connections/{conn}{s}");

    // Refresh Items: 202 with a queued run; a second click returns the same run, no new job.
    let r1 = a.call(Method::POST, &url("/refresh"), Some(&a.admin), None).await;
    assert_eq!(r1.status, StatusCode::ACCEPTED, "{}", r1.raw);
    let r2 = a.call(Method::POST, &url("/refresh"), Some(&a.admin2), None).await;
    assert_eq!((r2.status, &r2.body["run_id"]), (StatusCode::ACCEPTED, &r1.body["run_id"]));
    let jobs = a.w.queue.drain();
    assert_eq!(jobs.len(), 1, "one job for two clicks");
    // The worker runs it; the table shows Last Synced.
    let out = a.w.engine().run_job(&jobs[0].0, a.w.deadline()).await.unwrap();
    assert!(matches!(out, extconn_core::engine::JobOutcome::Finished { .. }));
    let row = a.call(Method::GET, "/v1/connections?provider=dropbox", Some(&a.admin), None).await;
    let row = &row.body["items"][0];
    assert_eq!((row["id"].as_str(), row["status"].as_str()), (Some(conn.as_str()), Some("active")));
    assert!(row["last_synced_at"].is_string());
    assert_eq!(row["counters"]["files"], 2);
    // After the run, a click (a minute later) queues a new one.
    a.w.clock.advance(std::time::Duration::from_secs(60));
    let r3 = a.call(Method::POST, &url("/refresh"), Some(&a.admin), None).await;
    assert_ne!(r3.body["run_id"], r1.body["run_id"]);
    let runs = a.call(Method::GET, &url("/runs?limit=1"), Some(&a.admin), None).await;
    assert_eq!(runs.body["items"][0]["id"], r3.body["run_id"], "newest first");
    let older = a
        .call(
            Method::GET,
            &url(&format!("/runs?limit=1&page={}", runs.body["next_page"].as_str().unwrap())),
            Some(&a.admin),
            None,
        )
        .await;
    assert_eq!(
        (older.body["items"][0]["id"].clone(), older.body["items"][0]["status"].clone()),
        (r1.body["run_id"].clone(), json!("succeeded"))
    );
    let items = a.call(Method::GET, &url("/items?state=imported"), Some(&a.admin), None).await;
    assert_eq!(items.body["items"].as_array().unwrap().len(), 2);

    // Auto sync off: Refresh Items is refused.
    let off = a.call(Method::PATCH, &url(""), Some(&a.admin), Some(json!({"auto_sync": false}))).await;
    assert_eq!((off.status, &off.body["auto_sync"]), (StatusCode::OK, &json!(false)));
    a.w.queue.drain();
    let refused = a.call(Method::POST, &url("/refresh"), Some(&a.admin), None).await;
    assert_eq!(
        (refused.status, refused.problem_type()),
        (StatusCode::CONFLICT, "https://extconn.dev/problems/auto-sync-off")
    );
    assert!(a.w.queue.is_empty());

    // Delete: the grant is revoked at the provider and its secret deleted (no other user).
    let gone = a.call(Method::DELETE, &url(""), Some(&a.admin), None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT);
    assert_eq!(a.w.calls(Ep::Revoke), 1);
    assert!(a.w.vault.get(&a.w.grant.secret_ref).await.unwrap().is_none(), "secret deleted");
    assert!(
        GrantStore::get(a.w.store.as_ref(), &a.w.grant.client_id, &a.w.grant.id).await.unwrap().is_none()
    );
    assert_eq!(a.call(Method::GET, &url(""), Some(&a.admin), None).await.status, StatusCode::NOT_FOUND);
    assert_eq!(a.w.objects().len(), 2, "imported assets stay");
    // Its item and run records go in the background: the delete queued a purge job.
    let items_left = a.w.items().len();
    let runs_left = RunStore::list(a.w.store.as_ref(), &a.w.conn, None, 10).await.unwrap().len();
    assert!(
        items_left >= 2 && runs_left == 2,
        "the delete itself is one small write: {items_left}, {runs_left}"
    );
    let jobs = a.w.queue.drain();
    assert_eq!(jobs.len(), 1);
    assert!(jobs[0].0.purge, "{:?}", jobs[0].0);
    let out = a.w.engine().run_job(&jobs[0].0, a.w.deadline()).await.unwrap();
    let removed = items_left + runs_left;
    assert_eq!(out, extconn_core::engine::JobOutcome::Purged { removed, done: true });
    assert!(a.w.items().is_empty());
    assert!(RunStore::list(a.w.store.as_ref(), &a.w.conn, None, 10).await.unwrap().is_empty());
    assert_eq!(a.w.objects().len(), 2, "the assets still stay");

    // One audit event per mutating call, with its actor.
    let events = AuditLog::list(a.w.store.as_ref(), &a.w.grant.client_id, 100).await.unwrap();
    let trail: Vec<(String, String)> =
        events.iter().rev().map(|e| (e.action.clone(), e.actor.to_string())).collect();
    let expected = [
        ("connection.refresh", "ana"),
        ("connection.refresh", "ana"),
        ("connection.auto_sync_off", "ana"),
        ("connection.delete", "ana"),
    ];
    assert_eq!(
        trail,
        expected.map(|(a, b)| (a.to_owned(), b.to_owned())),
        "the second click (bob) started nothing, so no event"
    );
    a.w.assert_no_leaks(&[row.to_string(), items.raw]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_revoke_does_not_block_the_delete_and_is_retried() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    let second = a.w.dbx.add_folder(&a.w.account, "/Second");
    let other = a.w.connect(&second.id, "/Second").await;
    let url = |c: &extconn_core::ConnKey| format!("/v1/connections/{}", c.connection_id);

    // Another connection still uses the grant: no revoke.
    assert_eq!(
        a.call(Method::DELETE, &url(&a.w.conn), Some(&a.admin), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(a.w.calls(Ep::Revoke), 0);
    // The last one: the provider fails the revoke; the delete still succeeds.
    a.w.dbx.inject(Ep::Revoke, Fault::ServerError(503), 1);
    assert_eq!(
        a.call(Method::DELETE, &url(&other), Some(&a.admin), None).await.status,
        StatusCode::NO_CONTENT
    );
    let g = GrantStore::get(a.w.store.as_ref(), &a.w.grant.client_id, &a.w.grant.id).await.unwrap().unwrap();
    assert_eq!(g.status, GrantStatus::Revoking);
    assert!(a.w.vault.get(&a.w.grant.secret_ref).await.unwrap().is_some(), "kept until revoked");
    // The sweep retries it.
    let gone = extconn_core::grants::sweep(&a.w.ports, a.w.clock_now()).await.unwrap();
    assert_eq!(gone, 1);
    assert_eq!(a.w.calls(Ep::Revoke), 2);
    assert!(a.w.vault.get(&a.w.grant.secret_ref).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_refresh_clicks_start_one_run() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    let url = format!("/v1/connections/{}/refresh", a.w.conn.connection_id);
    let clicks = (0..20).map(|_| a.call(Method::POST, &url, Some(&a.admin), None));
    let results = futures::future::join_all(clicks).await;
    let ids: std::collections::BTreeSet<String> = results
        .iter()
        .map(|r| {
            assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
            r.body["run_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "one run for 20 simultaneous clicks");
    assert_eq!(a.w.queue.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unattached_grant_expires_after_an_hour_and_is_revoked() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    let acct = a.w.dbx.create_account("Dan", "dan@example.com");
    a.w.dbx.set_login_account(&acct);
    let grant = a.connect_account(&a.admin).await;
    assert_eq!(
        extconn_core::grants::sweep(&a.w.ports, a.w.clock_now()).await.unwrap(),
        0,
        "fresh grants stay"
    );
    a.w.clock.advance(std::time::Duration::from_secs(3601));
    assert_eq!(extconn_core::grants::sweep(&a.w.ports, a.w.clock_now()).await.unwrap(), 1);
    let r = a.call(Method::GET, &format!("/v1/grants/{grant}/folders"), Some(&a.admin), None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(a.w.calls(Ep::Revoke), 1);
}

const P: &str = "https://extconn.dev/problems/";

/// Puts the world's connection in `status` directly through the store port (the engine's
/// part, here the test's).
async fn set_status(
    a: &ApiWorld,
    status: ConnectionStatus,
    reason: Option<&str>,
    held: Option<u64>,
) -> extconn_core::Connection {
    let mut patch = ConnectionPatch::status(status, reason.map(str::to_owned));
    patch.held_deletions = Some(held);
    ConnectionStore::update(a.w.store.as_ref(), &a.w.conn, &patch).await.expect("status set")
}

async fn stored(a: &ApiWorld) -> extconn_core::Connection {
    ConnectionStore::get(a.w.store.as_ref(), &a.w.conn).await.expect("store").expect("connection")
}

/// The audit trail's actions, oldest first.
async fn trail(a: &ApiWorld) -> Vec<String> {
    let events = AuditLog::list(a.w.store.as_ref(), &a.w.grant.client_id, 100).await.expect("audit");
    events.iter().rev().map(|e| e.action.clone()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_failed_runs_whatever_auto_sync_says_and_joins_the_open_run() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    a.w.add("a.jpg", "a");
    let conn = a.w.conn.connection_id.to_string();
    let url = |s: &str| format!("/v1/connections/{conn}{s}");

    // An open Refresh Items run is told to retry every failed file: no second run.
    let refresh = a.call(Method::POST, &url("/refresh"), Some(&a.admin), None).await;
    assert_eq!((refresh.status, &refresh.body["started"]), (StatusCode::ACCEPTED, &json!(true)));
    let run_id: RunId = refresh.body["run_id"].as_str().unwrap().parse().unwrap();
    let open = RunStore::get(a.w.store.as_ref(), &a.w.conn, &run_id).await.unwrap().unwrap();
    assert!(!open.retry_failed);
    let joined = a.call(Method::POST, &url("/retry-failed"), Some(&a.admin2), None).await;
    assert_eq!(joined.status, StatusCode::ACCEPTED, "{}", joined.raw);
    assert_eq!(
        (&joined.body["run_id"], &joined.body["status"], &joined.body["started"]),
        (&refresh.body["run_id"], &json!("queued"), &json!(false))
    );
    let open = RunStore::get(a.w.store.as_ref(), &a.w.conn, &run_id).await.unwrap().unwrap();
    assert!(open.retry_failed, "the open run now retries every failed file");
    let jobs = a.w.queue.drain();
    assert_eq!(jobs.len(), 1);
    a.w.engine().run_job(&jobs[0].0, a.w.deadline()).await.unwrap();

    // Auto sync off: Refresh Items is refused, retry-failed is not.
    a.w.clock.advance(std::time::Duration::from_secs(60));
    let off = a.call(Method::PATCH, &url(""), Some(&a.admin), Some(json!({"auto_sync": false}))).await;
    assert_eq!(off.status, StatusCode::OK);
    a.w.queue.drain();
    let r1 = a.call(Method::POST, &url("/retry-failed"), Some(&a.admin), None).await;
    assert_eq!(r1.status, StatusCode::ACCEPTED, "{}", r1.raw);
    assert_eq!((&r1.body["status"], &r1.body["started"]), (&json!("queued"), &json!(true)));
    assert_ne!(r1.body["run_id"], refresh.body["run_id"]);
    let r2 = a.call(Method::POST, &url("/retry-failed"), Some(&a.admin), None).await;
    assert_eq!(
        (r2.status, &r2.body["run_id"], &r2.body["started"]),
        (StatusCode::ACCEPTED, &r1.body["run_id"], &json!(false))
    );
    let jobs = a.w.queue.drain();
    assert_eq!(jobs.len(), 1, "one job for two clicks");
    let run_id: RunId = r1.body["run_id"].as_str().unwrap().parse().unwrap();
    let run = RunStore::get(a.w.store.as_ref(), &a.w.conn, &run_id).await.unwrap().unwrap();
    assert_eq!((run.status, run.retry_failed), (RunStatus::Queued, true));
    assert_eq!(jobs[0].0.run_id.as_ref(), Some(&run_id));
    let runs = a.call(Method::GET, &url("/runs?limit=1"), Some(&a.admin), None).await;
    assert_eq!(
        (&runs.body["items"][0]["id"], &runs.body["items"][0]["retry_failed"]),
        (&r1.body["run_id"], &json!(true))
    );

    // Another client's id: 404, nothing queued.
    let r = a.call(Method::POST, &url("/retry-failed"), Some(&a.stranger), None).await;
    assert_eq!((r.status.as_u16(), r.problem_type()), (404, format!("{P}not-found").as_str()));
    // A connection whose account must be reconnected.
    set_status(&a, ConnectionStatus::ReauthRequired, None, None).await;
    let r = a.call(Method::POST, &url("/retry-failed"), Some(&a.admin), None).await;
    assert_eq!((r.status.as_u16(), r.problem_type()), (409, format!("{P}reauth-required").as_str()));
    assert!(a.w.queue.is_empty());

    assert_eq!(
        trail(&a).await,
        [
            "connection.refresh",
            "connection.retry_failed",
            "connection.auto_sync_off",
            "connection.retry_failed",
            "connection.retry_failed",
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_deletions_answers_the_mass_delete_guard() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    a.w.add("a.jpg", "a");
    let conn = a.w.conn.connection_id.to_string();
    let url = |s: &str| format!("/v1/connections/{conn}{s}");

    // Nothing held: 409, with or without a body, and nothing changes.
    let before = a.fingerprint();
    for body in [None, Some(json!({})), Some(json!({"action": "discard"}))] {
        let r = a.call(Method::POST, &url("/confirm-deletions"), Some(&a.admin), body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.problem_type()),
            (409, format!("{P}nothing-to-review").as_str()),
            "{body:?}: {}",
            r.raw
        );
        assert_eq!(r.header("content-type"), "application/problem+json");
    }
    assert_eq!(a.fingerprint(), before);

    // The engine's guard held 150 deletions (set here through the store port).
    let reason = "A sync would mark 150 files deleted; confirm or discard.";
    set_status(&a, ConnectionStatus::NeedsReview, Some(reason), Some(150)).await;
    let d = a.call(Method::GET, &url(""), Some(&a.admin), None).await;
    assert_eq!(
        (
            &d.body["status"],
            &d.body["status_reason"],
            &d.body["held_deletions"],
            &d.body["approved_deletions"]
        ),
        (&json!("needs_review"), &json!(reason), &json!(150), &json!(null))
    );
    let rows = a.call(Method::GET, "/v1/connections", Some(&a.admin), None).await;
    assert_eq!(
        (&rows.body["items"][0]["status"], &rows.body["items"][0]["held_deletions"]),
        (&json!("needs_review"), &json!(150))
    );

    // Nothing syncs until the admin answers.
    let before = a.fingerprint();
    for op in ["/refresh", "/retry-failed"] {
        let r = a.call(Method::POST, &url(op), Some(&a.admin), None).await;
        assert_eq!((r.status.as_u16(), r.problem_type()), (409, format!("{P}needs-review").as_str()), "{op}");
        let detail = r.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains("150") && detail.contains("confirm-deletions"), "{op}: {detail}");
    }
    // Bad answers are named and change nothing.
    let cases = [
        (json!({"action": "maybe"}), "/action"),
        (json!({"action": 1}), "/action"),
        (json!({"x": 1}), "/x"),
        (json!({"action": "apply", "held_deletions": 1_000_000}), "/held_deletions"),
    ];
    for (body, name) in cases {
        let r = a.call(Method::POST, &url("/confirm-deletions"), Some(&a.admin), Some(body.clone())).await;
        assert_eq!(
            (r.status.as_u16(), r.problem_type()),
            (400, format!("{P}invalid-request").as_str()),
            "{body}: {}",
            r.raw
        );
        assert_eq!(r.body["invalid_params"][0]["name"], name, "{body}");
    }
    // Another client's admin and a non-admin: as everywhere.
    let r = a.call(Method::POST, &url("/confirm-deletions"), Some(&a.stranger), None).await;
    assert_eq!((r.status.as_u16(), r.problem_type()), (404, format!("{P}not-found").as_str()));
    let r = a.call(Method::POST, &url("/confirm-deletions"), Some(&a.viewer), None).await;
    assert_eq!((r.status.as_u16(), r.problem_type()), (403, format!("{P}forbidden").as_str()));
    assert_eq!(a.fingerprint(), before, "refused calls changed something");

    // Apply (no body): active again, 150 approved, a run queued.
    let r = a.call(Method::POST, &url("/confirm-deletions"), Some(&a.admin), None).await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!((&r.body["status"], &r.body["started"]), (&json!("queued"), &json!(true)));
    let c = stored(&a).await;
    assert_eq!(
        (c.status, c.held_deletions, c.approved_deletions, c.status_reason.as_deref()),
        (ConnectionStatus::Active, None, Some(150), None)
    );
    let d = a.call(Method::GET, &url(""), Some(&a.admin), None).await;
    assert_eq!(
        (&d.body["status"], &d.body["held_deletions"], &d.body["approved_deletions"]),
        (&json!("active"), &json!(null), &json!(150))
    );
    assert_eq!(d.body["current_run_id"], r.body["run_id"]);
    let jobs = a.w.queue.drain();
    assert_eq!(jobs.len(), 1);
    let events = a.w.events.connection_events();
    let last = events.last().expect("a connection event");
    assert_eq!(
        (last.status, last.previous_status, &last.connection_id),
        (ConnectionStatus::Active, ConnectionStatus::NeedsReview, &a.w.conn.connection_id)
    );
    // Answered: a second answer has nothing to review.
    let again = a.call(Method::POST, &url("/confirm-deletions"), Some(&a.admin), None).await;
    assert_eq!(again.problem_type(), format!("{P}nothing-to-review"));
    a.w.engine().run_job(&jobs[0].0, a.w.deadline()).await.unwrap();
    assert_ne!(stored(&a).await.position, SyncPosition::Initial, "the run listed the folder");

    // Discard: nothing approved, the folder listed again in full.
    a.w.clock.advance(std::time::Duration::from_secs(60));
    set_status(&a, ConnectionStatus::NeedsReview, Some(reason), Some(150)).await;
    let r = a
        .call(Method::POST, &url("/confirm-deletions"), Some(&a.admin), Some(json!({"action": "discard"})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(r.body["started"], true);
    let c = stored(&a).await;
    assert_eq!(
        (c.status, c.held_deletions, c.approved_deletions, c.position),
        (ConnectionStatus::Active, None, None, SyncPosition::Initial)
    );
    let jobs = a.w.queue.drain();
    assert_eq!(jobs.len(), 1);
    a.w.engine().run_job(&jobs[0].0, a.w.deadline()).await.unwrap();
    // An explicit apply works as the default does.
    a.w.clock.advance(std::time::Duration::from_secs(60));
    set_status(&a, ConnectionStatus::NeedsReview, Some(reason), Some(7)).await;
    let r = a
        .call(Method::POST, &url("/confirm-deletions"), Some(&a.admin), Some(json!({"action": "apply"})))
        .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{}", r.raw);
    assert_eq!(stored(&a).await.approved_deletions, Some(7));

    assert_eq!(
        trail(&a).await,
        [
            "connection.deletions_confirmed",
            "connection.deletions_discarded",
            "connection.deletions_confirmed"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_in_error_shows_why_and_failed_files_show_when_they_are_retried() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    let conn = a.w.conn.connection_id.to_string();
    let url = |s: &str| format!("/v1/connections/{conn}{s}");
    let reason = "Listing the folder failed 5 times in a row: the service is unavailable.";
    set_status(&a, ConnectionStatus::Error, Some(reason), None).await;

    // A failed file, as the engine records it (under the lease, in a run).
    let run = a.call(Method::POST, &url("/retry-failed"), Some(&a.admin), None).await;
    assert_eq!(run.status, StatusCode::ACCEPTED, "an error connection may be retried: {}", run.raw);
    let run_id: RunId = run.body["run_id"].as_str().unwrap().parse().unwrap();
    let now = a.w.clock_now();
    let next = now + extconn_core::retry_delay(2);
    let mut item = extconn_core::testkit::sample_item("id:locked", "/Brand Assets/locked.psd");
    item.state = ItemState::Failed;
    item.reason = Some("access_denied".into());
    item.error = Some("The account may not read this file.".into());
    item.attempts = 2;
    item.next_attempt_at = Some(next);
    item.failed_in = Some(run_id.clone());
    item.asset_key = None;
    let fence =
        a.w.store
            .acquire_lease(&a.w.conn, "test", now, std::time::Duration::from_secs(60))
            .await
            .unwrap()
            .expect("lease")
            .0;
    let write = ItemWrite {
        item,
        run_id,
        run_delta: Default::default(),
        conn_delta: CounterDelta { failed: 1, ..Default::default() },
    };
    ItemStore::record(a.w.store.as_ref(), &fence, &write).await.unwrap();
    a.w.store.release_lease(&fence, &ConnectionPatch::default()).await.unwrap();

    let d = a.call(Method::GET, &url(""), Some(&a.admin), None).await;
    assert_eq!(d.status, StatusCode::OK, "{}", d.raw);
    assert_eq!((&d.body["status"], &d.body["status_reason"]), (&json!("error"), &json!(reason)));
    let failed = &d.body["failed_items"][0];
    assert_eq!(
        (&failed["id"], &failed["state"], &failed["reason"], &failed["attempts"]),
        (&json!("id:locked"), &json!("failed"), &json!("access_denied"), &json!(2))
    );
    assert_eq!(failed["error"], "The account may not read this file.");
    let at: chrono::DateTime<chrono::Utc> = failed["next_attempt_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(at, next);
    let items = a.call(Method::GET, &url("/items?state=failed"), Some(&a.admin), None).await;
    assert_eq!(items.body["items"][0]["next_attempt_at"], failed["next_attempt_at"]);
    let rows = a.call(Method::GET, "/v1/connections", Some(&a.admin), None).await;
    assert_eq!(
        (&rows.body["items"][0]["status"], &rows.body["items"][0]["status_reason"]),
        (&json!("error"), &json!(reason))
    );
}
