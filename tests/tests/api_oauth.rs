//! The OAuth connect flow through the admin API, against the Dropbox sandbox.

use std::collections::BTreeMap;
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
    assert!(cookie.starts_with("extconn_oauth_binding_"), "{cookie}");
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

/// One browser's cookie jar for the API's origin: what `Set-Cookie` stores (`Max-Age=0`
/// removes), sent back whole on every request, as a browser does for `Path=/v1`.
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn take(&mut self, r: &extconn_system_tests::api::Response) {
        for v in r.headers.get_all("set-cookie") {
            let v = v.to_str().expect("ascii");
            let attrs: Vec<&str> = v.split(';').map(str::trim).collect();
            assert!(attrs.contains(&"Path=/v1") && attrs.contains(&"HttpOnly"), "{v}");
            assert!(attrs.contains(&"SameSite=Lax"), "{v}");
            let (name, value) = attrs[0].split_once('=').expect("name=value");
            if attrs.contains(&"Max-Age=0") {
                self.0.remove(name);
            } else {
                assert!(attrs.contains(&"Max-Age=600"), "as long as the state lives: {v}");
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }
    fn header(&self) -> String {
        self.0.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }
    fn bindings(&self) -> usize {
        self.0.keys().filter(|k| k.starts_with("extconn_oauth_binding_")).count()
    }
    /// POST /v1/connections/authorize from this browser; the authorization URL.
    async fn authorize(&mut self, a: &ApiWorld, token: &str) -> String {
        let req = axum::http::Request::builder()
            .method(Method::POST)
            .uri("/v1/connections/authorize")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .header("cookie", self.header())
            .body(axum::body::Body::from(r#"{"provider":"dropbox"}"#))
            .expect("request");
        let r = a.send(req).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
        self.take(&r);
        r.body["authorization_url"].as_str().expect("url").to_owned()
    }
    async fn callback(&mut self, a: &ApiWorld, path_and_query: &str) -> extconn_system_tests::api::Response {
        let r = a.callback(path_and_query, &self.header()).await;
        self.take(&r);
        r
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tabs_of_one_browser_authorize_at_once_and_both_complete() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    fresh_account(&a);
    let mut browser = Jar::default();
    // Tab 1 and tab 2 both start before either comes back.
    let url1 = browser.authorize(&a, &a.admin).await;
    let url2 = browser.authorize(&a, &a.admin).await;
    assert_eq!(browser.bindings(), 2, "one binding per authorization request");
    let cb1 = a.consent(&url1).await;
    let cb2 = a.consent(&url2).await;
    // They come back in the other order; each callback clears its own binding only.
    let r2 = browser.callback(&a, &cb2).await;
    assert_eq!(r2.status, StatusCode::SEE_OTHER, "{}", r2.raw);
    assert_eq!(browser.bindings(), 1, "tab 1's binding is still there");
    let r1 = browser.callback(&a, &cb1).await;
    assert_eq!(r1.status, StatusCode::SEE_OTHER, "{}", r1.raw);
    assert_eq!(browser.bindings(), 0);
    // The same account both times: one grant, reconnected by the second callback.
    let grant = |l: &str| l.split("grant_id=").nth(1).and_then(|g| g.split('&').next()).map(str::to_owned);
    assert_eq!(grant(r1.header("location")), grant(r2.header("location")));
    assert!(r1.header("location").ends_with("&reconnected=1"), "{}", r1.header("location"));
    assert_eq!(a.w.calls(Ep::Token), 2);
    // A replay, even with the cookie it once had, is refused (the state is single-use).
    let r = browser.callback(&a, &cb1).await;
    assert_eq!(r.problem_type(), "https://extconn.dev/problems/oauth/invalid-state", "{}", r.raw);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_holds_a_bounded_number_of_bindings_the_oldest_forgotten() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    fresh_account(&a);
    let mut browser = Jar::default();
    let first = browser.authorize(&a, &a.admin).await;
    let mut last = String::new();
    for _ in 0..10 {
        a.w.clock.advance(Duration::from_secs(1));
        last = browser.authorize(&a, &a.admin).await;
    }
    assert_eq!(browser.bindings(), 8, "at most 8 authorization requests in flight per browser");
    let size = browser.header().len();
    assert!(size < 1024, "the Cookie header stays small: {size} bytes");
    let cb = a.consent(&first).await;
    let r = browser.callback(&a, &cb).await;
    assert_eq!(
        r.problem_type(),
        "https://extconn.dev/problems/oauth/invalid-state",
        "the oldest was forgotten"
    );
    let cb = a.consent(&last).await;
    assert_eq!(browser.callback(&a, &cb).await.status, StatusCode::SEE_OTHER);
    assert_eq!(browser.bindings(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_of_the_callback_route_carries_its_security_headers() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    let before = a.fingerprint();
    let cases = [
        // A query that fails to parse (a repeated parameter).
        (Method::GET, "/v1/oauth/dropbox/callback?state=a&state=b", 400),
        (Method::GET, "/v1/oauth/nowhere/callback?state=a", 404),
        (Method::GET, "/v1/oauth/dropbox/callback", 400),
        (Method::POST, "/v1/oauth/dropbox/callback?state=a", 405),
    ];
    for (method, uri, status) in cases {
        let req =
            axum::http::Request::builder().method(method.clone()).uri(uri).body(axum::body::Body::empty());
        let r = a.send(req.unwrap()).await;
        assert_eq!(r.status.as_u16(), status, "{method} {uri}: {}", r.raw);
        assert_eq!(r.header("content-type"), "application/problem+json", "{method} {uri}");
        assert_eq!(r.header("referrer-policy"), "no-referrer", "{method} {uri}");
        assert_eq!(r.header("cache-control"), "no-store", "{method} {uri}");
    }
    assert_eq!(a.fingerprint(), before);
}
