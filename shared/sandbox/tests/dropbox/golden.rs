//! Golden shape tests: the literal example bodies of provider-apis.md §3.1, §3.2 and
//! §3.6 are the expected *shapes* (same keys, same JSON types, same `.tag` values) of
//! what the sandbox answers.

use extconn_sandbox::{Content, Endpoint, Fault};
use serde_json::json;

use crate::support::*;

// §3.1 token response.
const TOKEN_RESPONSE: &str = r#"{"access_token":"sl.u.AF...","expires_in":14400,"token_type":"bearer",
 "scope":"account_info.read files.content.read files.metadata.read",
 "refresh_token":"nBiM85...","account_id":"dbid:AAH4f99...","uid":"12345"}"#;

// §3.1 refresh response: `{"access_token","token_type","expires_in"}`.
const REFRESH_RESPONSE: &str = r#"{"access_token":"sl.u.AF...","token_type":"bearer","expires_in":14400}"#;

// §3.1 invalid grant.
const INVALID_GRANT: &str = r#"{"error":"invalid_grant","error_description":"..."}"#;

// §3.2 list_folder response.
const LIST_FOLDER_RESPONSE: &str = r#"{"entries":[
  {".tag":"folder","name":"math","id":"id:a4ayc_80_OEAAAAAAAAAXz",
   "path_lower":"/homework/math","path_display":"/Homework/math"},
  {".tag":"file","name":"Prime_Numbers.txt","id":"id:a4ayc_80_OEAAAAAAAAAXw",
   "path_lower":"/homework/math/prime_numbers.txt","path_display":"/Homework/math/Prime_Numbers.txt",
   "client_modified":"2015-05-12T15:50:38Z","server_modified":"2015-05-12T15:50:38Z",
   "rev":"a1c10ce0dd78","size":7212,"is_downloadable":true,
   "content_hash":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}],
 "cursor":"ZtkX9_EHj3x7PMkVuFIhwKYXEpwpLwyxp9vMKomUhllil9q7eWiAu","has_more":false}"#;

// §3.2 DeletedMetadata: `name, path_lower, path_display` — no id.
const DELETED_ENTRY: &str =
    r#"{".tag":"deleted","name":"math","path_lower":"/homework/math","path_display":"/Homework/math"}"#;

// §3.6 error bodies.
const NOT_FOUND_409: &str =
    r#"{"error_summary":"path/not_found/..","error":{".tag":"path","path":{".tag":"not_found"}}}"#;
const RESET_409: &str = r#"{"error_summary":"reset/..","error":{".tag":"reset"}}"#;
const RATE_LIMIT_429: &str = r#"{"error_summary":"too_many_requests/..","error":{"reason":{".tag":"too_many_requests"},"retry_after":300}}"#;
const EXPIRED_401: &str =
    r#"{"error_summary":"expired_access_token/..","error":{".tag":"expired_access_token"}}"#;

#[tokio::test]
async fn token_and_refresh_responses_match_the_documented_shapes() {
    let env = env().await;
    let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    let code = authorize_code(
        &env,
        CLIENT_ID,
        &[
            ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "S256"),
        ],
    )
    .await;
    let r = env
        .token_form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("code_verifier", verifier),
        ])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_shape(TOKEN_RESPONSE, &v);
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 14400);
    assert_eq!(v["account_id"], env.acct.as_str());
    assert_eq!(v["scope"], "account_info.read files.content.read files.metadata.read");

    let rt = v["refresh_token"].as_str().expect("rt").to_string();
    let r = env
        .token_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &rt),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_shape(REFRESH_RESPONSE, &r.json());

    let r = env
        .token_form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("redirect_uri", REDIRECT),
            ("code_verifier", verifier),
        ])
        .await;
    assert_eq!(r.status, 400);
    assert_shape(INVALID_GRANT, &r.json());
    assert_eq!(r.json()["error"], "invalid_grant");
}

#[tokio::test]
async fn list_folder_entries_match_the_documented_shape() {
    let env = env().await;
    env.dbx.add_file(&env.acct, "/Homework/math/Prime_Numbers.txt", Content::text("2 3 5 7 11"));
    let r = env.rpc("files/list_folder", Some(json!({"path": "/homework/math", "recursive": true}))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("content-type").as_deref(), Some("application/json"));
    let v = r.json();
    assert_shape(LIST_FOLDER_RESPONSE, &v);
    let folder = &v["entries"][0];
    assert_eq!(folder["path_display"], "/Homework/math");
    assert_eq!(folder["path_lower"], "/homework/math");
    assert!(is_id(folder["id"].as_str().unwrap_or_default()), "{folder}");
    let file = &v["entries"][1];
    assert_eq!(file["name"], "Prime_Numbers.txt");
    assert_eq!(file["path_display"], "/Homework/math/Prime_Numbers.txt");
    assert_eq!(file["path_lower"], "/homework/math/prime_numbers.txt");
    assert_eq!(file["size"], 10);
    assert!(is_rev(file["rev"].as_str().unwrap_or_default()), "{file}");
    assert!(is_id(file["id"].as_str().unwrap_or_default()), "{file}");
    assert_eq!(file["server_modified"], "2025-01-01T00:00:00Z");
    assert!(is_timestamp(file["client_modified"].as_str().unwrap_or_default()));
    assert_eq!(file["content_hash"], extconn_sandbox::content_hash(b"2 3 5 7 11"));
}

#[tokio::test]
async fn deleted_entries_match_the_documented_shape_and_have_no_id() {
    let env = env().await;
    env.dbx.add_file(&env.acct, "/Homework/math/Prime_Numbers.txt", Content::text("x"));
    let (_, cursor) = env.list_all(json!({"path": "", "recursive": true})).await;
    env.dbx.delete(&env.acct, "/Homework/math");
    let (entries, _, _) = env.cont(&cursor).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_shape(DELETED_ENTRY, &entries[0]);
    assert_eq!(entries[0]["path_display"], "/Homework/math");
    assert!(entries[0].get("id").is_none());
}

#[tokio::test]
async fn conflict_errors_match_the_documented_shapes() {
    let env = env().await;
    let r = env.rpc("files/get_metadata", Some(json!({"path": "/nope"}))).await;
    assert_eq!(r.status, 409);
    assert_shape(NOT_FOUND_409, &r.json());
    assert_eq!(r.json()["error_summary"].as_str().map(|s| s.starts_with("path/not_found/")), Some(true));

    let r = env.rpc("files/list_folder", Some(json!({"path": "/nope"}))).await;
    assert_eq!(r.status, 409);
    assert_shape(NOT_FOUND_409, &r.json());

    let r = env.rpc("files/list_folder", Some(json!({"path": ""}))).await;
    let cursor = r.json()["cursor"].as_str().expect("cursor").to_string();
    env.dbx.reset_cursors();
    let r = env.rpc("files/list_folder/continue", Some(json!({"cursor": cursor}))).await;
    assert_eq!(r.status, 409);
    assert_shape(RESET_409, &r.json());
}

#[tokio::test]
async fn rate_limit_has_both_header_and_body() {
    let env = env().await;
    env.dbx.inject(Endpoint::ListFolder, Fault::RateLimit { retry_after_secs: 7 }, 1);
    let r = env.rpc("files/list_folder", Some(json!({"path": ""}))).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after").as_deref(), Some("7"));
    let v = r.json();
    assert_shape(RATE_LIMIT_429, &v);
    assert_eq!(v["error"]["retry_after"], 7);
}

#[tokio::test]
async fn auth_errors_match_the_documented_shape() {
    let env = env().await;
    env.dbx.expire_access_tokens();
    let r = env.rpc("users/get_current_account", None).await;
    assert_eq!(r.status, 401);
    assert_shape(EXPIRED_401, &r.json());
    assert_eq!(r.json()["error"][".tag"], "expired_access_token");

    for token in ["", "sl.not-a-token"] {
        let r = env.rpc_as(token, "users/get_current_account", None).await;
        assert_eq!(r.status, 401);
        assert_shape(
            r#"{"error_summary":"invalid_access_token/..","error":{".tag":"invalid_access_token"}}"#,
            &r.json(),
        );
    }
}

#[tokio::test]
async fn slash_as_root_is_a_400_in_plain_text() {
    let env = env().await;
    let r = env.rpc("files/list_folder", Some(json!({"path": "/"}))).await;
    assert_eq!(r.status, 400);
    assert!(r.header("content-type").unwrap_or_default().starts_with("text/plain"));
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err(), "400 must not be JSON");
    assert!(
        r.text().contains("Specify the root folder as an empty string rather than as \"/\"."),
        "{}",
        r.text()
    );
}

#[tokio::test]
async fn get_current_account_has_the_documented_fields() {
    let env = env().await;
    let r = env.rpc("users/get_current_account", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_shape(
        r#"{"account_id":"dbid:x","name":{"given_name":"","surname":"","familiar_name":"","display_name":"","abbreviated_name":""},
            "email":"","email_verified":true,"disabled":false,"country":"US","locale":"en","referral_link":"",
            "is_paired":false,"account_type":{".tag":"basic"},
            "root_info":{".tag":"user","root_namespace_id":"1","home_namespace_id":"1"}}"#,
        &v,
    );
    assert_eq!(v["account_id"], env.acct.as_str());
    assert_eq!(v["name"]["display_name"], "Ada Lovelace");
    assert_eq!(v["name"]["given_name"], "Ada");
    assert_eq!(v["name"]["surname"], "Lovelace");
    assert_eq!(v["name"]["abbreviated_name"], "AL");
    assert_eq!(v["email"], "ada@example.com");
    assert_eq!(v["root_info"]["root_namespace_id"], v["root_info"]["home_namespace_id"]);

    // `null` body with JSON content type is accepted too; another value is not.
    let r = env.rpc("users/get_current_account", Some(json!(null))).await;
    assert_eq!(r.status, 200);
    let r = env.rpc("users/get_current_account", Some(json!({"x": 1}))).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn longpoll_answers_the_documented_shape_without_auth() {
    let env = env().await;
    let r = env.rpc("files/list_folder", Some(json!({"path": ""}))).await;
    let cursor = r.json()["cursor"].as_str().expect("cursor").to_string();
    env.dbx.add_file(&env.acct, "/x.txt", Content::text("x"));
    let r = reply(
        env.http
            .post(format!("{}/2/files/list_folder/longpoll", env.urls.notify_base))
            .header("Content-Type", "application/json")
            .body(json!({"cursor": cursor, "timeout": 30}).to_string())
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({"changes": true}));
}

// Found by the official SDK's fidelity check (tests/sandbox-fidelity): Dropbox stamps every API
// response with `X-Dropbox-Request-Id`, which the SDKs report in their exceptions.
#[tokio::test]
async fn every_api_response_carries_a_request_id() {
    let env = env().await;
    env.dbx.add_file(&env.acct, "/r/a.txt", Content::text("a"));
    env.dbx.inject(Endpoint::GetMetadata, Fault::RateLimit { retry_after_secs: 1 }, 1);
    let replies = [
        ("200 rpc", env.rpc("users/get_current_account", None).await),
        ("429", env.rpc("files/get_metadata", Some(json!({"path": "/r/a.txt"}))).await),
        ("409", env.rpc("files/get_metadata", Some(json!({"path": "/nope"}))).await),
        ("400", env.rpc("files/list_folder", Some(json!({"path": "/"}))).await),
        ("401", env.rpc_as("sl.not-a-token", "users/get_current_account", None).await),
        ("200 download", env.download(json!({"path": "/r/a.txt"}), None).await),
        ("206 download", env.download(json!({"path": "/r/a.txt"}), Some("bytes=0-0")).await),
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (what, r) in &replies {
        let id =
            r.header("x-dropbox-request-id").unwrap_or_else(|| panic!("{what}: no X-Dropbox-Request-Id"));
        assert!(
            id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{what}: request id {id:?} is not 32 lowercase hex chars"
        );
        assert!(seen.insert(id.clone()), "{what}: request id {id} reused");
    }
    assert_eq!(
        replies.iter().map(|(_, r)| r.status).collect::<Vec<_>>(),
        [200, 429, 409, 400, 401, 200, 206]
    );
}
