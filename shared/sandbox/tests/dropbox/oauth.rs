//! OAuth: authorize page, PKCE, code lifetime, refresh, revoke, expiry, canaries.

use std::time::Duration;

use serde_json::json;

use crate::support::*;

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

fn pkce() -> [(&'static str, &'static str); 2] {
    [("code_challenge", CHALLENGE), ("code_challenge_method", "S256")]
}

async fn exchange(env: &Env, code: &str, verifier: Option<&str>) -> Reply {
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    if let Some(v) = verifier {
        form.push(("code_verifier", v));
    }
    env.token_form(&form).await
}

async fn refresh(env: &Env, rt: &str) -> Reply {
    env.token_form(&[
        ("grant_type", "refresh_token"),
        ("refresh_token", rt),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ])
    .await
}

fn error_of(r: &Reply) -> String {
    r.json()["error"].as_str().unwrap_or_default().to_string()
}

#[tokio::test]
async fn pkce_is_enforced() {
    let env = env().await;
    let code = authorize_code(&env, CLIENT_ID, &pkce()).await;
    let r = exchange(&env, &code, Some("wrong-verifier-wrong-verifier-wrong-verifier-x")).await;
    assert_eq!((r.status, error_of(&r)), (400, "invalid_grant".into()), "{}", r.text());

    let code = authorize_code(&env, CLIENT_ID, &pkce()).await;
    let r = exchange(&env, &code, None).await;
    assert_eq!((r.status, error_of(&r)), (400, "invalid_grant".into()), "{}", r.text());

    let code = authorize_code(&env, CLIENT_ID, &pkce()).await;
    let r = exchange(&env, &code, Some(VERIFIER)).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn public_client_uses_pkce_without_a_secret() {
    let env = env().await;
    let code = authorize_code(&env, PUBLIC_CLIENT_ID, &pkce()).await;
    let r = env
        .token_form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", PUBLIC_CLIENT_ID),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let rt = r.json()["refresh_token"].as_str().expect("rt").to_string();
    let r = env
        .token_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", PUBLIC_CLIENT_ID),
        ])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn confidential_client_must_authenticate() {
    let env = env().await;
    let code = authorize_code(&env, CLIENT_ID, &pkce()).await;
    // Verifier but no secret.
    let r = env
        .token_form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT_ID),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!((r.status, error_of(&r)), (401, "invalid_client".into()));
    // Wrong secret.
    let r = env
        .token_form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", CLIENT_ID),
            ("client_secret", "nope"),
        ])
        .await;
    assert_eq!((r.status, error_of(&r)), (401, "invalid_client".into()));
    // Unknown client.
    let r =
        env.token_form(&[("grant_type", "authorization_code"), ("code", &code), ("client_id", "who")]).await;
    assert_eq!((r.status, error_of(&r)), (401, "invalid_client".into()));
    // HTTP Basic works (and the code was not burnt by the failed client auth).
    let r = reply(
        env.http
            .post(env.urls.token_url())
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ])
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn codes_are_single_use_and_expire_after_ten_minutes() {
    let env = env().await;
    let code = authorize_code(&env, CLIENT_ID, &pkce()).await;
    assert_eq!(exchange(&env, &code, Some(VERIFIER)).await.status, 200);
    let r = exchange(&env, &code, Some(VERIFIER)).await;
    assert_eq!((r.status, error_of(&r)), (400, "invalid_grant".into()));

    let code = authorize_code(&env, CLIENT_ID, &pkce()).await;
    env.clock.advance(Duration::from_secs(601));
    let r = exchange(&env, &code, Some(VERIFIER)).await;
    assert_eq!((r.status, error_of(&r)), (400, "invalid_grant".into()));

    let code = authorize_code(&env, CLIENT_ID, &pkce()).await;
    env.clock.advance(Duration::from_secs(590));
    assert_eq!(exchange(&env, &code, Some(VERIFIER)).await.status, 200);
}

#[tokio::test]
async fn redirect_uri_must_match_exactly() {
    let env = env().await;
    env.dbx.set_auto_approve(true);
    for bad in [
        "http://localhost:8765/callback/",
        "http://evil.example/callback",
        "http://localhost:8765/callback?x=1",
    ] {
        let r = reply(
            env.http
                .get(env.urls.authorize_url())
                .query(&[
                    ("client_id", CLIENT_ID),
                    ("response_type", "code"),
                    ("redirect_uri", bad),
                    ("state", "s"),
                ])
                .send()
                .await
                .expect("send"),
        )
        .await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.header("location").is_none(), "must never redirect to an unregistered URI");
    }
    let r = reply(
        env.http
            .get(env.urls.authorize_url())
            .query(&[("client_id", "unknown"), ("response_type", "code"), ("redirect_uri", REDIRECT)])
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.header("location").is_none());

    // The token request must repeat the authorize redirect_uri.
    let code = authorize_code(&env, CLIENT_ID, &pkce()).await;
    let r = env
        .token_form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://localhost:8765/other"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!((r.status, error_of(&r)), (400, "invalid_grant".into()));
}

#[tokio::test]
async fn consent_page_allow_and_deny() {
    let env = env().await;
    let bob = env.dbx.create_account("Bob Builder", "bob@example.com");
    env.dbx.set_login_account(&bob);
    let page = |state: &'static str| {
        let http = env.http.clone();
        let url = env.urls.authorize_url();
        async move {
            reply(
                http.get(url)
                    .query(&[
                        ("client_id", CLIENT_ID),
                        ("response_type", "code"),
                        ("redirect_uri", REDIRECT),
                        ("state", state),
                        ("token_access_type", "offline"),
                    ])
                    .send()
                    .await
                    .expect("send"),
            )
            .await
        }
    };
    let pending_of = |html: &str| -> String {
        let marker = "name=\"pending\" value=\"";
        let start = html.find(marker).expect("pending field") + marker.len();
        html[start..].split('"').next().expect("value").to_string()
    };

    // Allow: shows the app and the login account, then redirects with a code.
    let r = page("s1").await;
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(
        html.contains(CLIENT_ID)
            && html.contains("Bob Builder")
            && html.contains("Allow")
            && html.contains("Deny")
    );
    let pending = pending_of(&html);
    let r = reply(
        env.http
            .post(format!("{}/oauth2/authorize/decision", env.urls.www_base))
            .form(&[("pending", pending.as_str()), ("decision", "allow")])
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 302, "{}", r.text());
    let q = url_query(&r.header("location").expect("location"));
    assert_eq!(q.get("state").map(String::as_str), Some("s1"));
    let code = q.get("code").expect("code").clone();
    assert!(code.starts_with("CANARY-CODE-"));
    let r = exchange(&env, &code, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["account_id"], bob.as_str());

    // The pending id is single use.
    let r = reply(
        env.http
            .post(format!("{}/oauth2/authorize/decision", env.urls.www_base))
            .form(&[("pending", pending.as_str()), ("decision", "allow")])
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 400);

    // Deny: redirect with access_denied and the state.
    let pending = pending_of(&page("s2").await.text());
    let r = reply(
        env.http
            .post(format!("{}/oauth2/authorize/decision", env.urls.www_base))
            .form(&[("pending", pending.as_str()), ("decision", "deny")])
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 302);
    let q = url_query(&r.header("location").expect("location"));
    assert_eq!(q.get("error").map(String::as_str), Some("access_denied"));
    assert!(q.contains_key("error_description"));
    assert_eq!(q.get("state").map(String::as_str), Some("s2"));
    assert!(!q.contains_key("code"));
}

#[tokio::test]
async fn refresh_token_never_rotates() {
    let env = env().await;
    let code = authorize_code(&env, CLIENT_ID, &pkce()).await;
    let v = exchange(&env, &code, Some(VERIFIER)).await.json();
    let rt = v["refresh_token"].as_str().expect("rt").to_string();
    let first_at = v["access_token"].as_str().expect("at").to_string();
    let mut seen = vec![first_at];
    for _ in 0..3 {
        let r = refresh(&env, &rt).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        assert!(v.get("refresh_token").is_none(), "refresh must not return a refresh token: {v}");
        let at = v["access_token"].as_str().expect("at").to_string();
        assert!(!seen.contains(&at));
        seen.push(at);
    }
    // Every access token still works.
    for at in &seen {
        assert_eq!(env.rpc_as(at, "users/get_current_account", None).await.status, 200);
    }
}

#[tokio::test]
async fn revoke_kills_the_refresh_token_and_its_access_tokens() {
    let env = env().await;
    let code = authorize_code(&env, CLIENT_ID, &pkce()).await;
    let v = exchange(&env, &code, Some(VERIFIER)).await.json();
    let rt = v["refresh_token"].as_str().expect("rt").to_string();
    let at1 = v["access_token"].as_str().expect("at").to_string();
    let at2 = refresh(&env, &rt).await.json()["access_token"].as_str().expect("at").to_string();

    let r = env.rpc_as(&at2, "auth/token/revoke", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text(), "null");
    for at in [&at1, &at2] {
        let r = env.rpc_as(at, "users/get_current_account", None).await;
        assert_eq!(r.status, 401);
        assert_eq!(r.json()["error"][".tag"], "invalid_access_token");
    }
    let r = refresh(&env, &rt).await;
    assert_eq!((r.status, error_of(&r)), (400, "invalid_grant".into()));
    // Other grants are untouched.
    assert_eq!(env.rpc("users/get_current_account", None).await.status, 200);
}

#[tokio::test]
async fn access_tokens_expire_on_the_time_source() {
    let env = env().await;
    let (at, rt) = env.dbx.mint_tokens(&env.acct, CLIENT_ID);
    env.clock.advance(Duration::from_secs(14_399));
    assert_eq!(env.rpc_as(&at, "users/get_current_account", None).await.status, 200);
    env.clock.advance(Duration::from_secs(1));
    let r = env.rpc_as(&at, "users/get_current_account", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"][".tag"], "expired_access_token");
    let fresh = refresh(&env, &rt).await.json()["access_token"].as_str().expect("at").to_string();
    assert_eq!(env.rpc_as(&fresh, "users/get_current_account", None).await.status, 200);

    env.dbx.revoke_all();
    assert_eq!(env.rpc_as(&fresh, "users/get_current_account", None).await.status, 401);
    let r = refresh(&env, &rt).await;
    assert_eq!((r.status, error_of(&r)), (400, "invalid_grant".into()));
}

#[tokio::test]
async fn online_access_type_gets_no_refresh_token_and_scopes_are_enforced() {
    let env = env().await;
    let code = authorize_code(
        &env,
        CLIENT_ID,
        &[("token_access_type", "online"), ("scope", "files.metadata.read account_info.read")],
    )
    .await;
    // `token_access_type=offline` came first in the query; the later value wins.
    let r = exchange(&env, &code, None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert!(v.get("refresh_token").is_none(), "{v}");
    assert_eq!(v["scope"], "account_info.read files.metadata.read");
    let at = v["access_token"].as_str().expect("at").to_string();
    assert_eq!(env.rpc_as(&at, "files/list_folder", Some(json!({"path": ""}))).await.status, 200);
    env.dbx.add_file(&env.acct, "/a.txt", extconn_sandbox::Content::text("a"));
    let r = reply(
        env.http
            .post(format!("{}/2/files/download", env.urls.content_base))
            .bearer_auth(&at)
            .header("Dropbox-API-Arg", r#"{"path":"/a.txt"}"#)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"][".tag"], "missing_scope");
    assert_eq!(r.json()["error"]["required_scope"], "files.content.read");
}

#[tokio::test]
async fn token_endpoint_rejects_bad_requests_in_oauth_json() {
    let env = env().await;
    let r = env
        .token_form(&[("grant_type", "password"), ("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)])
        .await;
    assert_eq!((r.status, error_of(&r)), (400, "unsupported_grant_type".into()));
    let r = env
        .token_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "bogus"),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    assert_eq!((r.status, error_of(&r)), (400, "invalid_grant".into()));
    let r = reply(
        env.http
            .post(env.urls.token_url())
            .header("Content-Type", "application/json")
            .body("{}")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!((r.status, error_of(&r)), (400, "invalid_request".into()));
}

#[tokio::test]
async fn every_secret_is_a_recorded_canary() {
    let env = env().await;
    let code = authorize_code(&env, CLIENT_ID, &pkce()).await;
    let v = exchange(&env, &code, Some(VERIFIER)).await.json();
    let at = v["access_token"].as_str().expect("at");
    let rt = v["refresh_token"].as_str().expect("rt");
    assert!(at.starts_with("sl.CANARY-AT-"), "{at}");
    assert!(rt.starts_with("CANARY-RT-"), "{rt}");
    assert!(code.starts_with("CANARY-CODE-"), "{code}");
    let canaries = env.dbx.canaries();
    for secret in [at, rt, code.as_str(), VERIFIER, CLIENT_SECRET, env.token.as_str()] {
        assert!(canaries.iter().any(|c| c == secret), "{secret} not recorded in {canaries:?}");
    }
    // The public client's empty secret is not a canary.
    assert!(canaries.iter().all(|c| !c.is_empty()));
}
