//! The OAuth connect flow through the admin API, against the Dropbox sandbox.

use std::time::Duration;

use axum::http::{Method, StatusCode};
use extconn_core::ports::{ConnectionPatch, ConnectionStore, GrantStore};
use extconn_core::{ConnectionStatus, GrantStatus, Trigger};
use extconn_system_tests::api::{ApiWorld, CONSOLE};
use extconn_system_tests::{Ep, WorldOptions};
use serde_json::json;

/// A second Dropbox account logs in at the consent page, with a folder to connect.
fn fresh_account(a: &ApiWorld) -> String {
    let acct = a.w.dbx.create_account("Carla Creative", "carla@example.com");
    a.w.dbx.set_login_account(&acct);
    let folder = a.w.dbx.add_folder(&acct, "/Campaign 2026");
    a.w.dbx.add_file(&acct, "/Campaign 2026/hero.jpg", extconn_sandbox::dropbox::Content::text("jpeg"));
    folder.id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_pick_a_folder_and_create() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    let folder_id = fresh_account(&a);
    let (url, cookie) = a.authorize(&a.admin).await;
    assert!(url.contains("code_challenge_method=S256") && url.contains("token_access_type=offline"), "{url}");
    assert!(cookie.starts_with("extconn_oauth_binding="));
    let cb = a.consent(&url).await;
    let r = a.callback(&cb, &cookie).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.raw);
    assert_eq!(r.header("referrer-policy"), "no-referrer");
    assert_eq!(r.header("cache-control"), "no-store");
    assert!(r.header("location").starts_with(&format!("{CONSOLE}?provider=dropbox&grant_id=gra_")));
    let grant = r.header("location").split("grant_id=").nth(1).unwrap().to_owned();

    // Only the admin who authorized may use the unattached grant.
    let other = a.call(Method::GET, &format!("/v1/grants/{grant}/folders"), Some(&a.admin2), None).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let picker = a.call(Method::GET, &format!("/v1/grants/{grant}/folders"), Some(&a.admin), None).await;
    assert_eq!(picker.status, StatusCode::OK, "{}", picker.raw);
    let names: Vec<&str> =
        picker.body["items"].as_array().unwrap().iter().map(|f| f["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Campaign 2026"], "one level of folders, files left out");

    let id = a.create_connection(&a.admin, &grant, &folder_id, true).await;
    let again = a
        .call(
            Method::POST,
            "/v1/connections",
            Some(&a.admin),
            Some(json!({"grant_id": grant, "folder_id": folder_id, "auto_sync": true})),
        )
        .await;
    assert_eq!(
        (again.status, again.problem_type()),
        (StatusCode::CONFLICT, "https://extconn.dev/problems/already-connected")
    );
    // The initial import is queued, with ids only.
    let queued = a.w.queue.bodies();
    assert!(queued.iter().any(|b| b.contains(&id) && b.contains("\"initial\"")), "{queued:?}");
    let details = a.call(Method::GET, &format!("/v1/connections/{id}"), Some(&a.admin), None).await;
    assert_eq!(details.body["folder_name"], "Campaign 2026", "the name comes from the provider");
    assert_eq!(details.body["synced_by"]["display_name"], "ana (display)");
    assert_eq!(details.body["recent_runs"][0]["status"], "queued");
    // Now attached, the grant is usable by the other admin too.
    let picker = a.call(Method::GET, &format!("/v1/grants/{grant}/folders"), Some(&a.admin2), None).await;
    assert_eq!(picker.status, StatusCode::OK);
    // One audit event per mutating call, by the admin who made it.
    let trail: Vec<(String, String)> =
        extconn_core::ports::AuditLog::list(a.w.store.as_ref(), &a.w.grant.client_id, 100)
            .await
            .unwrap()
            .into_iter()
            .rev()
            .map(|e| (e.action, e.actor.to_string()))
            .collect();
    let expected = [("oauth.start", "ana"), ("grant.connect", "ana"), ("connection.create", "ana")];
    assert_eq!(trail, expected.map(|(x, y)| (x.to_owned(), y.to_owned())));
    let audit_dump = format!("{:?}", a.w.store.snapshot());
    a.w.assert_no_leaks(&[details.raw, r.raw, picker.raw, audit_dump]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_replayed_expired_and_mixed_up_callbacks_exchange_nothing() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    fresh_account(&a);
    let before = a.fingerprint();
    let bad = |r: &extconn_system_tests::api::Response, slug: &str| {
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{}", r.raw);
        assert_eq!(r.problem_type(), format!("https://extconn.dev/problems/oauth/{slug}"), "{}", r.raw);
        assert_eq!(r.header("referrer-policy"), "no-referrer");
    };
    bad(&a.callback("/v1/oauth/dropbox/callback?code=abc", "").await, "invalid-state");
    bad(&a.callback("/v1/oauth/dropbox/callback?code=abc&state=random-guess", "").await, "invalid-state");
    assert_eq!(a.fingerprint(), before, "nothing changed, no token exchange");

    // Another admin's state, presented by that other admin's browser (a different binding).
    let (url, _ana_cookie) = a.authorize(&a.admin).await;
    let cb = a.consent(&url).await;
    let (_, bob_cookie) = a.authorize(&a.admin2).await;
    bad(&a.callback(&cb, &bob_cookie).await, "invalid-state");
    // Another client's admin likewise.
    let (url, _) = a.authorize(&a.admin).await;
    let cb = a.consent(&url).await;
    let (_, eve_cookie) = a.authorize(&a.stranger).await;
    bad(&a.callback(&cb, &eve_cookie).await, "invalid-state");
    // Expired.
    let (url, cookie) = a.authorize(&a.admin).await;
    let cb = a.consent(&url).await;
    a.w.clock.advance(Duration::from_secs(601));
    bad(&a.callback(&cb, &cookie).await, "state-expired");
    // A state for Dropbox arriving at Google Drive's callback (mix-up).
    let (url, cookie) = a.authorize(&a.admin).await;
    let cb = a.consent(&url).await;
    bad(&a.callback(&cb.replace("/dropbox/", "/google_drive/"), &cookie).await, "provider-mismatch");
    // The user declined.
    let (url, cookie) = a.authorize(&a.admin).await;
    let state = url.split("state=").nth(1).unwrap().split('&').next().unwrap().to_owned();
    let declined = a
        .callback(
            &format!("/v1/oauth/dropbox/callback?state={state}&error=access_denied&error_description=x"),
            &cookie,
        )
        .await;
    bad(&declined, "access-denied");
    assert!(declined.body["detail"].as_str().unwrap().contains("declined"));
    assert_eq!(a.w.calls(Ep::Token), 0, "no code ever reached the token endpoint");
    let grants = a.w.store.snapshot().matches("Grant {").count();
    assert_eq!(grants, 1, "only the world's own grant exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_callback_100_times_at_once_is_accepted_once() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    fresh_account(&a);
    let (url, cookie) = a.authorize(&a.admin).await;
    let cb = a.consent(&url).await;
    let calls = (0..100).map(|_| a.callback(&cb, &cookie));
    let results = futures::future::join_all(calls).await;
    let accepted = results.iter().filter(|r| r.status == StatusCode::SEE_OTHER).count();
    assert_eq!(accepted, 1);
    assert!(
        results
            .iter()
            .filter(|r| r.status != StatusCode::SEE_OTHER)
            .all(|r| r.problem_type().ends_with("oauth/invalid-state"))
    );
    assert_eq!(a.w.calls(Ep::Token), 1, "one token exchange");
    assert_eq!(a.w.store.snapshot().matches("Grant {").count(), 2, "one new grant");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_the_same_account_updates_its_grant_and_revives_connections() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    // The world's connection uses the world's grant (the sandbox's first account); it broke.
    let tokens = extconn_core::tokens::Tokens::new(a.w.ports.clone(), Default::default());
    tokens.mark_reauth(&a.w.grant).await.unwrap();
    assert_eq!(a.w.connection().await.status, ConnectionStatus::ReauthRequired);
    let queued_before = a.w.queue.len();

    let grant = a.connect_account(&a.admin).await;
    assert_eq!(grant, a.w.grant.id.to_string(), "the same grant, not a second one");
    assert_eq!(a.w.store.snapshot().matches("Grant {").count(), 1);
    let g = GrantStore::get(a.w.store.as_ref(), &a.w.grant.client_id, &a.w.grant.id).await.unwrap().unwrap();
    assert_eq!(g.status, GrantStatus::Active);
    let c = a.w.connection().await;
    assert_eq!(c.status, ConnectionStatus::Active, "back to active");
    let jobs = a.w.queue.drain();
    assert_eq!(jobs.len(), queued_before + 1, "a sync is queued for it");
    let (job, _) = jobs.last().unwrap();
    assert_eq!((job.trigger, job.run_id.clone()), (Trigger::Manual, c.current_run_id.clone()));
    // And the queued sync works with the new tokens.
    let out = a.w.engine().run_job(job, a.w.deadline()).await.unwrap();
    assert!(matches!(out, extconn_core::engine::JobOutcome::Finished { .. }), "{out:?}");
    let _ = ConnectionStore::update(a.w.store.as_ref(), &a.w.conn, &ConnectionPatch::default()).await;
}
