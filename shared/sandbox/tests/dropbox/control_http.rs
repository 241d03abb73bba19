//! The HTTP mirror of the control API.

use serde_json::{Value, json};

use crate::support::*;

async fn control(env: &Env, op: &str, body: Value) -> Reply {
    reply(
        env.http
            .post(format!("{}/_control/dropbox/{op}", env.sandbox.base_url()))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("send"),
    )
    .await
}

#[tokio::test]
async fn control_routes_drive_the_same_state() {
    let env = env().await;
    let r = control(&env, "accounts", json!({"display_name": "Carol C", "email": "c@example.com"})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let carol = r.json()["account_id"].as_str().expect("id").to_string();
    assert!(carol.starts_with("dbid:"));

    let r = control(
        &env,
        "add_file",
        json!({"account_id": carol, "path": "/x/y.txt", "content": {"text": "hello world"}}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let info = r.json();
    assert_eq!(info["content_hash"], "bc62d4b80d9e36da29c16c5d4d9f11731f36052c72401a76c23c0fb5a9b74423");
    assert_eq!(info["is_folder"], false);

    let r = control(
        &env,
        "add_file",
        json!({"account_id": carol, "path": "/g.bin", "content": {"generated": {"size": 1000, "seed": 3}}}),
    )
    .await;
    assert_eq!(r.json()["size"], 1000);

    let r = control(&env, "mint_tokens", json!({"account_id": carol, "client_id": CLIENT_ID})).await;
    let at = r.json()["access_token"].as_str().expect("at").to_string();
    let r = env.rpc_as(&at, "files/list_folder", Some(json!({"path": "", "recursive": true}))).await;
    assert_eq!(
        describe(r.json()["entries"].as_array().expect("entries")),
        ["file /g.bin", "folder /x", "file /x/y.txt"]
    );

    let r = control(
        &env,
        "inject",
        json!({"endpoint": "GetMetadata", "fault": {"rate_limit": {"retry_after_secs": 4}}, "times": 1}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = env.rpc_as(&at, "files/get_metadata", Some(json!({"path": "/x/y.txt"}))).await;
    assert_eq!(r.status, 429);
    let r = control(&env, "calls", json!({"endpoint": "GetMetadata"})).await;
    assert_eq!(r.json()["count"], 1);

    let r = control(&env, "sha256", json!({"account_id": carol, "id": info["id"]})).await;
    assert_eq!(r.json()["sha256"], "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");

    let r = control(&env, "canaries", json!(null)).await;
    assert!(r.json().as_array().expect("list").iter().any(|c| c == &json!(at)));

    let r = control(&env, "move_entry", json!({"account_id": carol, "from": "/x", "to": "/z"})).await;
    assert_eq!(r.json()["path_display"], "/z");
    let r = control(&env, "entry", json!({"account_id": carol, "path": "/x/y.txt"})).await;
    assert_eq!(r.json(), Value::Null);

    let r = control(&env, "delete", json!({"account_id": carol, "path": "/nope"})).await;
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].as_str().is_some());
    let r = control(&env, "bogus", json!({})).await;
    assert_eq!(r.status, 400);

    let r = reply(
        env.http.get(format!("{}/_control/dropbox/urls", env.sandbox.base_url())).send().await.expect("send"),
    )
    .await;
    assert_eq!(r.json()["api_base"], env.urls.api_base.as_str());
    let r = control(&env, "urls", json!(null)).await;
    assert_eq!((r.status, r.json()["www_base"].clone()), (200, json!(env.urls.www_base)));
    // A GET never changes state.
    let r = reply(
        env.http
            .get(format!("{}/_control/dropbox/revoke_all", env.sandbox.base_url()))
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 405);
    assert_eq!(env.rpc("users/get_current_account", None).await.status, 200);
}

/// A web page of another origin cannot drive the sandbox (a browser says where it comes from),
/// nor can one reached through a rebound DNS name; tools (no Origin) and the sandbox's own
/// pages can.
#[tokio::test]
async fn web_pages_of_other_origins_are_refused() {
    let env = env().await;
    let port = env.sandbox.addr().port();
    let own = format!("http://127.0.0.1:{port}");
    let revoke = |headers: Vec<(&'static str, String)>| {
        let mut b =
            env.http.post(format!("{}/_control/dropbox/revoke_all", env.sandbox.base_url())).body("{}");
        for (k, v) in headers {
            b = b.header(k, v);
        }
        async move { b.send().await.expect("send").status().as_u16() }
    };
    assert_eq!(revoke(vec![("Origin", "http://127.0.0.1:1".into())]).await, 403);
    assert_eq!(revoke(vec![("Origin", "null".into())]).await, 403);
    assert_eq!(revoke(vec![("Sec-Fetch-Site", "same-site".into())]).await, 403);
    assert_eq!(revoke(vec![("Sec-Fetch-Site", "cross-site".into())]).await, 403);
    assert_eq!(revoke(vec![("Host", format!("evil.example:{port}"))]).await, 403);
    // Refused means not run: the account still works.
    assert_eq!(env.rpc("users/get_current_account", None).await.status, 200);

    assert_eq!(revoke(vec![("Origin", own), ("Sec-Fetch-Site", "same-origin".into())]).await, 200);
    assert_eq!(env.rpc("users/get_current_account", None).await.status, 401);
    assert_eq!(revoke(vec![("Host", format!("localhost:{port}"))]).await, 200);
}
