//! Connections through their life: toggle, Refresh Items, runs and items, delete; the audit
//! trail of it all.

use axum::http::{Method, StatusCode};
use extconn_core::GrantStatus;
use extconn_core::ports::{AuditLog, GrantStore, TokenVault};
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

    // One audit event per mutating call, with its actor.
    let events = a.w.store.list(&a.w.grant.client_id, 100).await.unwrap();
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
