//! The console page as the API router serves it, and the parts of the API contract the page
//! relies on: its security headers, its config, and the callback sending a person's browser
//! back to it whatever happened.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use extconn_core::ConnectionStatus;
use extconn_system_tests::WorldOptions;
use extconn_system_tests::api::{ApiWorld, CONSOLE};

const BROWSER_ACCEPT: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_public_static_and_locked_down() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    for path in ["/console", "/console/", "/console/index.html", "/console/app.js", "/console/app.css"] {
        // No token: the page itself holds none and needs none.
        let r = a.call(Method::GET, path, None, None).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.raw);
        let csp = r.header("content-security-policy");
        assert!(csp.contains("script-src 'self';") && csp.contains("connect-src 'self';"), "{path}: {csp}");
        assert!(csp.ends_with("frame-ancestors 'none'"), "no DAM origin configured: {csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval") && !csp.contains('*'),
            "{csp}"
        );
        assert_eq!(r.header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(r.header("cache-control"), "no-store", "{path}");
        assert!(!r.raw.contains("eyJ"), "{path} carries no token");
    }
    assert!(
        a.call(Method::GET, "/console/app.js", None, None)
            .await
            .header("content-type")
            .starts_with("text/javascript")
    );
    let r = a.call(Method::GET, "/console/../Cargo.toml", None, None).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = a.call(Method::GET, "/console/secrets.json", None, None).await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::NOT_FOUND, "https://extconn.dev/problems/not-found")
    );
    assert!(r.header("content-security-policy").contains("frame-ancestors"), "its 404 is locked down too");

    // A deployment's config: no users, no tokens; the page waits for the DAM's.
    let r = a.call(Method::GET, "/console/config.json", None, None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    assert_eq!(r.body["mode"], "embedded");
    assert_eq!(r.body["users"], serde_json::json!([]));
    assert_eq!(r.body["sync_interval_secs"], 900);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_answer_is_never_sniffed_cached_or_framed() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    let ok = a.call(Method::GET, "/v1/connections?provider=dropbox", Some(&a.admin), None).await;
    let denied = a.call(Method::GET, "/v1/connections?provider=dropbox", Some(&a.viewer), None).await;
    let missing = a.call(Method::GET, "/v1/nothing-here", None, None).await;
    let wrong_method = a.call(Method::PUT, "/v1/connections", Some(&a.admin), None).await;
    assert_eq!(
        (ok.status, denied.status, missing.status, wrong_method.status),
        (StatusCode::OK, StatusCode::FORBIDDEN, StatusCode::NOT_FOUND, StatusCode::METHOD_NOT_ALLOWED)
    );
    for r in [&ok, &denied, &missing, &wrong_method] {
        assert_eq!(r.header("x-content-type-options"), "nosniff");
        assert_eq!(r.header("cache-control"), "no-store");
        assert_eq!(r.header("content-security-policy"), "default-src 'none'; frame-ancestors 'none'");
    }
    // A 405 says what the route takes.
    let allow = wrong_method.header("allow");
    assert!(allow.contains("GET") && allow.contains("POST") && !allow.contains("PUT"), "{allow}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_comes_back_to_the_console_whatever_happened_an_api_client_gets_the_problem() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    let callback = |query: String, accept: Option<&'static str>, cookie: String| {
        let mut b =
            Request::builder().uri(format!("/v1/oauth/dropbox/callback?{query}")).header("cookie", cookie);
        if let Some(v) = accept {
            b = b.header("accept", v);
        }
        a.send(b.body(Body::empty()).expect("request"))
    };
    let state_of = |url: &str| url.split("state=").nth(1).unwrap().split('&').next().unwrap().to_owned();

    // The owner declined at the provider.
    let (url, cookie) = a.authorize(&a.admin).await;
    let r =
        callback(format!("state={}&error=access_denied", state_of(&url)), Some(BROWSER_ACCEPT), cookie).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.raw);
    assert_eq!(r.header("location"), format!("{CONSOLE}?provider=dropbox&error=oauth/access-denied"));
    assert_eq!((r.header("cache-control"), r.header("referrer-policy")), ("no-store", "no-referrer"));

    // No state at all, or one this browser never started: back to the console, said plainly.
    let r = callback("code=abc".into(), Some(BROWSER_ACCEPT), String::new()).await;
    assert_eq!(r.header("location"), format!("{CONSOLE}?provider=dropbox&error=oauth/invalid-state"));
    let (url, _) = a.authorize(&a.admin).await;
    let r = callback(format!("state={}&code=abc", state_of(&url)), Some(BROWSER_ACCEPT), String::new()).await;
    assert_eq!(r.header("location"), format!("{CONSOLE}?provider=dropbox&error=oauth/invalid-state"));

    // An API client asking for JSON gets the problem itself.
    let (url, cookie) = a.authorize(&a.admin).await;
    let r =
        callback(format!("state={}&error=access_denied", state_of(&url)), Some("application/json"), cookie)
            .await;
    assert_eq!(
        (r.status, r.problem_type()),
        (StatusCode::BAD_REQUEST, "https://extconn.dev/problems/oauth/access-denied")
    );
    let r = callback("code=abc".into(), None, String::new()).await;
    assert_eq!(r.problem_type(), "https://extconn.dev/problems/oauth/invalid-state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_tells_the_console_so_it_skips_the_picker() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    // The world's grant broke; the same account consents again.
    let tokens = extconn_core::tokens::Tokens::new(a.w.ports.clone(), Default::default());
    tokens.mark_reauth(&a.w.grant).await.unwrap();
    let (url, cookie) = a.authorize(&a.admin).await;
    let cb = a.consent(&url).await;
    let r = a.callback(&cb, &cookie).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.raw);
    assert_eq!(
        r.header("location"),
        format!("{CONSOLE}?provider=dropbox&grant_id={}&reconnected=1", a.w.grant.id)
    );
    assert_eq!(a.w.connection().await.status, ConnectionStatus::Active);

    // Another account: a new grant, and the picker follows.
    let other = a.w.dbx.create_account("Carla Creative", "carla@example.com");
    a.w.dbx.set_login_account(&other);
    let (url, cookie) = a.authorize(&a.admin).await;
    let cb = a.consent(&url).await;
    let r = a.callback(&cb, &cookie).await;
    let location = r.header("location");
    assert!(location.starts_with(&format!("{CONSOLE}?provider=dropbox&grant_id=")), "{location}");
    assert!(!location.contains(&a.w.grant.id.to_string()) && !location.contains("reconnected"), "{location}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_row_of_the_table_names_its_provider_account() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    let r = a.call(Method::GET, "/v1/connections?provider=dropbox", Some(&a.admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
    let row = &r.body["items"][0];
    assert_eq!(row["account"]["id"], a.w.grant.account_id.as_str(), "{row}");
    assert_eq!(row["account"]["name"], a.w.grant.account_name.as_str(), "{row}");
    let d = a
        .call(Method::GET, &format!("/v1/connections/{}", row["id"].as_str().unwrap()), Some(&a.admin), None)
        .await;
    assert_eq!(d.body["account"], row["account"], "the details carry the same account once");
    assert_eq!(d.raw.matches("\"account\"").count(), 1, "{}", d.raw);
}
