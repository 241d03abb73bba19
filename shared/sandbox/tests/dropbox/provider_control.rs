//! The provider-neutral control trait, driven only through `Arc<dyn ProviderControl>`
//! and observed the way a connector would: over Dropbox's HTTP API.

use std::collections::BTreeSet;
use std::sync::Arc;

use extconn_sandbox::{Content, ControlError, Endpoint, Fault, Node, Op, ProviderControl, Service};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::*;

fn ctl(env: &Env) -> Arc<dyn ProviderControl> {
    env.sandbox.control(Service::Dropbox)
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A fresh account made through the trait, with an access token for it.
fn account(c: &dyn ProviderControl) -> (String, String) {
    let acct = c.create_account("Tess Trait", "tess@example.com");
    let tokens = c.mint_tokens(&acct, CLIENT_ID).expect("mint");
    (acct, tokens.access_token)
}

async fn download_as(env: &Env, token: &str, path_or_id: &str) -> Reply {
    reply(
        env.http
            .post(format!("{}/2/files/download", env.urls.content_base))
            .bearer_auth(token)
            .header("Dropbox-API-Arg", ascii_json(&json!({ "path": path_or_id })))
            .send()
            .await
            .expect("send"),
    )
    .await
}

/// `list_folder` of the whole account to the end; returns the final cursor.
async fn cursor_as(env: &Env, token: &str) -> String {
    let r = env.rpc_as(token, "files/list_folder", Some(json!({"path": "", "recursive": true}))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["has_more"], false);
    v["cursor"].as_str().expect("cursor").to_string()
}

/// One `continue`; returns (described entries, raw entries, next cursor).
async fn changes_as(env: &Env, token: &str, cursor: &str) -> (Vec<String>, Vec<Value>, String) {
    let r = env.rpc_as(token, "files/list_folder/continue", Some(json!({ "cursor": cursor }))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let entries = v["entries"].as_array().cloned().unwrap_or_default();
    (describe(&entries), entries, v["cursor"].as_str().expect("cursor").to_string())
}

#[tokio::test]
async fn the_neutral_handle_shares_the_dropbox_state() {
    let env = env().await;
    let c = ctl(&env);
    assert_eq!(c.service(), Service::Dropbox);
    let urls = c.urls();
    assert_eq!(urls.keys().map(String::as_str).collect::<Vec<_>>(), ["api", "content", "notify", "www"]);
    assert_eq!(urls["www"], env.urls.www_base);
    assert_eq!(urls["api"], env.urls.api_base);
    assert_eq!(urls["content"], env.urls.content_base);
    assert_eq!(urls["notify"], env.urls.notify_base);

    let acct = c.create_account("Nia Neutral", "nia@example.com");
    assert!(acct.starts_with("dbid:"), "{acct}");
    assert!(env.dbx.accounts().iter().any(|a| a.as_str() == acct));
    // A file added by path on the Dropbox handle is seen by id through the trait.
    let info = env.dbx.add_file(&extconn_sandbox::AccountId(acct.clone()), "/x/y.txt", Content::text("y"));
    let node = c.node(&acct, &info.id).expect("known account").expect("present");
    assert_eq!((node.name.as_str(), node.path.as_deref()), ("y.txt", Some("/x/y.txt")));
    assert!(format!("{c:?}").contains(&env.urls.api_base));
}

#[tokio::test]
async fn a_created_account_is_the_consent_login_and_auto_approve_skips_the_page() {
    let env = env().await;
    let c = ctl(&env);
    let bob = c.create_account("Bob Builder", "bob@example.com");
    let authorize = |auto: bool| {
        let (http, url) = (env.http.clone(), env.urls.authorize_url());
        let c = Arc::clone(&c);
        async move {
            c.set_auto_approve(auto);
            let q = [("client_id", CLIENT_ID), ("response_type", "code"), ("redirect_uri", REDIRECT)];
            reply(http.get(url).query(&q).send().await.expect("send")).await
        }
    };
    let page = authorize(false).await;
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(
        page.text().contains(&format!("<option value=\"{bob}\" selected>Bob Builder")),
        "{}",
        page.text()
    );

    let r = authorize(true).await;
    assert_eq!(r.status, 302, "{}", r.text());
    let code = url_query(&r.header("location").expect("location"))["code"].clone();
    let r = env
        .token_form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["account_id"], bob.as_str());

    // The next account takes over the login.
    let carol = c.create_account("Carol C", "carol@example.com");
    let r = authorize(false).await;
    assert!(r.text().contains(&format!("<option value=\"{carol}\" selected>")), "{}", r.text());
}

#[tokio::test]
async fn adds_renames_moves_modifies_and_deletes_show_in_the_change_feed() {
    let env = env().await;
    let c = ctl(&env);
    let (acct, token) = account(&*c);
    let root = c.root(&acct).expect("root");
    assert_eq!(root, "", "Dropbox's root ref");

    let docs = c.add_folder(&acct, &root, "Docs").expect("folder");
    assert_eq!(
        docs,
        Node {
            id: docs.id.clone(),
            name: "Docs".into(),
            parent_id: Some(String::new()),
            path: Some("/Docs".into()),
            is_folder: true,
            size: None,
            sha256: None,
        }
    );
    assert!(is_id(&docs.id), "{}", docs.id);
    let a = c.add_file(&acct, &docs.id, "a.txt", Content::text("alpha")).expect("file");
    assert_eq!(a.parent_id.as_deref(), Some(docs.id.as_str()));
    assert_eq!((a.path.as_deref(), a.size, a.is_folder), (Some("/Docs/a.txt"), Some(5), false));
    assert_eq!(a.sha256.as_deref(), Some(sha(b"alpha").as_str()));
    let cursor = cursor_as(&env, &token).await;

    // Move to another folder and rename in one step: same id, new place.
    let archive = c.add_folder(&acct, &root, "Archive").expect("folder");
    let moved = c.move_entry(&acct, &a.id, Some(&archive.id), Some("b.txt")).expect("move");
    assert_eq!((moved.id.as_str(), moved.parent_id.as_deref()), (a.id.as_str(), Some(archive.id.as_str())));
    assert_eq!(moved.path.as_deref(), Some("/Archive/b.txt"));
    let (seen, raw, cursor) = changes_as(&env, &token, &cursor).await;
    assert_eq!(seen, ["folder /Archive", "deleted /Docs/a.txt", "file /Archive/b.txt"]);
    assert_eq!(raw[2]["id"], a.id.as_str());

    // Rename only, then move only.
    let renamed = c.move_entry(&acct, &a.id, None, Some("c.txt")).expect("rename");
    assert_eq!(renamed.path.as_deref(), Some("/Archive/c.txt"));
    let (seen, _, cursor) = changes_as(&env, &token, &cursor).await;
    assert_eq!(seen, ["deleted /Archive/b.txt", "file /Archive/c.txt"]);
    let to_root = c.move_entry(&acct, &a.id, Some(&root), None).expect("move");
    assert_eq!((to_root.path.as_deref(), to_root.parent_id.as_deref()), (Some("/c.txt"), Some("")));
    let (seen, _, cursor) = changes_as(&env, &token, &cursor).await;
    assert_eq!(seen, ["deleted /Archive/c.txt", "file /c.txt"]);

    // A folder moves with its subtree, ids kept.
    let inner = c.add_file(&acct, &archive.id, "keep.txt", Content::text("k")).expect("file");
    let moved_dir = c.move_entry(&acct, &archive.id, Some(&docs.id), None).expect("move folder");
    assert_eq!(moved_dir.path.as_deref(), Some("/Docs/Archive"));
    let inner_now = c.node(&acct, &inner.id).expect("account").expect("still there");
    assert_eq!(inner_now.path.as_deref(), Some("/Docs/Archive/keep.txt"));
    let (seen, _, cursor) = changes_as(&env, &token, &cursor).await;
    assert_eq!(seen, ["deleted /Archive", "folder /Docs/Archive", "file /Docs/Archive/keep.txt"]);

    // Modify: same id, new content, visible in the feed and at download.
    let modified = c.modify_file(&acct, &a.id, Content::text("beta")).expect("modify");
    assert_eq!((modified.id.as_str(), modified.size), (a.id.as_str(), Some(4)));
    assert_eq!(modified.sha256.as_deref(), Some(sha(b"beta").as_str()));
    let (seen, raw, cursor) = changes_as(&env, &token, &cursor).await;
    assert_eq!(seen, ["file /c.txt"]);
    assert_eq!(raw[0]["content_hash"], extconn_sandbox::content_hash(b"beta").as_str());
    assert_eq!(download_as(&env, &token, &a.id).await.body.as_ref(), b"beta");

    // Delete a folder: one deleted entry, its subtree gone.
    c.delete(&acct, &docs.id).expect("delete");
    let (seen, _, _) = changes_as(&env, &token, &cursor).await;
    assert_eq!(seen, ["deleted /Docs"]);
    assert_eq!(c.node(&acct, &docs.id), Ok(None));
    assert_eq!(c.node(&acct, &inner.id), Ok(None));
}

#[tokio::test]
async fn refused_changes_say_why() {
    let env = env().await;
    let c = ctl(&env);
    let (acct, _) = account(&*c);
    let root = c.root(&acct).expect("root");
    let dir = c.add_folder(&acct, &root, "Dir").expect("folder");
    let sub = c.add_folder(&acct, &dir.id, "Sub").expect("folder");
    let f = c.add_file(&acct, &root, "f.txt", Content::text("f")).expect("file");

    let is = |r: Result<Node, ControlError>, want: fn(&ControlError) -> bool| match r {
        Err(e) => assert!(want(&e), "unexpected error {e:?}"),
        Ok(n) => panic!("expected an error, got {n:?}"),
    };
    is(c.add_file(&acct, &root, "F.TXT", Content::text("x")), |e| matches!(e, ControlError::Conflict(_)));
    is(c.add_folder(&acct, &root, "dir"), |e| matches!(e, ControlError::Conflict(_)));
    is(c.add_file(&acct, &f.id, "x", Content::text("x")), |e| matches!(e, ControlError::NotAFolder(_)));
    is(c.add_folder(&acct, &root, "a/b"), |e| matches!(e, ControlError::Malformed(_)));
    is(c.add_folder(&acct, &root, ""), |e| matches!(e, ControlError::Malformed(_)));
    is(c.add_folder(&acct, "id:AAAAAAAAAAAAAAAAAAAAAA", "x"), |e| matches!(e, ControlError::NotFound(_)));
    is(c.move_entry(&acct, &dir.id, Some(&sub.id), None), |e| matches!(e, ControlError::Conflict(_)));
    is(c.move_entry(&acct, &f.id, Some(&dir.id), Some("Sub")), |e| matches!(e, ControlError::Conflict(_)));
    is(c.move_entry(&acct, &f.id, None, Some("..")), |e| matches!(e, ControlError::Malformed(_)));
    is(c.modify_file(&acct, &dir.id, Content::text("x")), |e| matches!(e, ControlError::NotAFile(_)));
    is(c.add_folder("dbid:nobody", "", "x"), |e| matches!(e, ControlError::UnknownAccount(_)));
    assert!(matches!(c.delete(&acct, "id:AAAAAAAAAAAAAAAAAAAAAA"), Err(ControlError::NotFound(_))));
    assert!(matches!(c.root("dbid:nobody"), Err(ControlError::UnknownAccount(_))));
    assert!(matches!(c.node("dbid:nobody", &f.id), Err(ControlError::UnknownAccount(_))));
    assert!(matches!(c.sha256(&acct, &dir.id), Err(ControlError::NotAFile(_))));
    assert!(matches!(c.mint_tokens("dbid:nobody", CLIENT_ID), Err(ControlError::UnknownAccount(_))));
    // Nothing was changed by the refused calls.
    let files: Vec<String> =
        c.list_files(&acct, &root).expect("list").into_iter().filter_map(|n| n.path).collect();
    assert_eq!(files, ["/f.txt"]);
    assert_eq!(c.node(&acct, &f.id).expect("account").and_then(|n| n.path).as_deref(), Some("/f.txt"));
}

#[tokio::test]
async fn seeded_trees_are_listed_looked_up_and_hashed_like_their_downloads() {
    let env = env().await;
    let c = ctl(&env);
    let (acct, token) = account(&*c);
    let root = c.root(&acct).expect("root");
    let bulk = c.add_folder(&acct, &root, "Bulk").expect("folder");
    let outside = c.add_file(&acct, &root, "outside.txt", Content::text("o")).expect("file");

    let seeded = c.seed_tree(&acct, &bulk.id, 5, 2, 1000).expect("seed");
    assert_eq!(seeded.len(), 5);
    assert!(seeded.iter().all(|n| !n.is_folder && n.size == Some(1000)));
    let distinct: BTreeSet<&Option<String>> = seeded.iter().map(|n| &n.sha256).collect();
    assert_eq!(distinct.len(), 5, "seeded files differ from each other");
    // Files sit in subfolders of the folder, two per subfolder.
    let parents: Vec<&str> = seeded.iter().filter_map(|n| n.parent_id.as_deref()).collect();
    assert_eq!(parents.iter().collect::<BTreeSet<_>>().len(), 3);
    for p in &parents {
        let folder = c.node(&acct, p).expect("account").expect("subfolder");
        assert!(folder.is_folder);
        assert_eq!(folder.parent_id.as_deref(), Some(bulk.id.as_str()));
    }

    assert_eq!(c.list_files(&acct, &bulk.id).expect("list"), seeded);
    let everything = c.list_files(&acct, &root).expect("list");
    assert_eq!(everything.len(), 6);
    assert!(everything.contains(&outside));

    for n in [&seeded[0], &seeded[4]] {
        let r = download_as(&env, &token, &n.id).await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.body.len(), 1000);
        assert_eq!(Some(sha(&r.body)), n.sha256);
        assert_eq!(c.sha256(&acct, &n.id).ok(), n.sha256);
        assert_eq!(c.node(&acct, &n.id).expect("account").as_ref(), Some(n));
    }
    assert_eq!(c.node(&acct, "id:AAAAAAAAAAAAAAAAAAAAAA"), Ok(None));
    // Listing over HTTP sees the same files.
    let r = env.rpc_as(&token, "files/list_folder", Some(json!({"path": bulk.id, "recursive": true}))).await;
    let files =
        r.json()["entries"].as_array().expect("entries").iter().filter(|e| e[".tag"] == "file").count();
    assert_eq!(files, 5);
}

#[tokio::test]
async fn minted_tokens_expire_refresh_and_revoke() {
    let env = env().await;
    let c = ctl(&env);
    let acct = c.create_account("Tok Tester", "tok@example.com");
    let t = c.mint_tokens(&acct, CLIENT_ID).expect("mint");
    let debug = format!("{t:?}");
    assert!(!debug.contains(&t.access_token) && !debug.contains(&t.refresh_token), "{debug}");
    let r = env.rpc_as(&t.access_token, "users/get_current_account", None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["account_id"], acct.as_str());
    assert_eq!(r.json()["email"], "tok@example.com");

    let refresh = || async {
        env.token_form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", t.refresh_token.as_str()),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
        ])
        .await
    };
    c.expire_access_tokens();
    let r = env.rpc_as(&t.access_token, "users/get_current_account", None).await;
    assert_eq!((r.status, r.json()["error"][".tag"].clone()), (401, json!("expired_access_token")));
    let r = refresh().await;
    assert_eq!(r.status, 200, "{}", r.text());
    let fresh = r.json()["access_token"].as_str().expect("at").to_string();
    assert_eq!(env.rpc_as(&fresh, "users/get_current_account", None).await.status, 200);

    for secret in [&t.access_token, &t.refresh_token, &fresh] {
        assert!(c.canaries().contains(secret));
        assert!(env.sandbox.canaries().contains(secret));
    }
    assert!(c.canaries().iter().any(|s| s == CLIENT_SECRET));

    c.revoke_all();
    let r = env.rpc_as(&fresh, "users/get_current_account", None).await;
    assert_eq!((r.status, r.json()["error"][".tag"].clone()), (401, json!("invalid_access_token")));
    let r = refresh().await;
    assert_eq!((r.status, r.json()["error"].clone()), (400, json!("invalid_grant")));
}

#[tokio::test]
async fn reset_cursors_forces_the_reset_answer() {
    let env = env().await;
    let c = ctl(&env);
    let (acct, token) = account(&*c);
    let root = c.root(&acct).expect("root");
    let cursor = cursor_as(&env, &token).await;
    c.reset_cursors();
    c.add_file(&acct, &root, "after.txt", Content::text("a")).expect("file");
    let r = env.rpc_as(&token, "files/list_folder/continue", Some(json!({ "cursor": cursor }))).await;
    assert_eq!(r.status, 409, "{}", r.text());
    assert_eq!(r.json()["error"][".tag"], "reset");
    // A new listing works and its cursor is good.
    let fresh = cursor_as(&env, &token).await;
    assert_eq!(changes_as(&env, &token, &fresh).await.0, Vec::<String>::new());
}

#[tokio::test]
async fn every_operation_class_maps_to_its_endpoint_for_faults_and_counters() {
    let env = env().await;
    let c = ctl(&env);
    let (acct, token) = account(&*c);
    let root = c.root(&acct).expect("root");
    c.add_file(&acct, &root, "x.txt", Content::text("x")).expect("file");
    let cursor = cursor_as(&env, &token).await;
    let spare = c.mint_tokens(&acct, CLIENT_ID).expect("mint");
    c.reset_counters();
    assert!(Op::ALL.iter().all(|op| c.calls(*op) == 0));

    for op in Op::ALL {
        c.inject(op, Fault::RateLimit { retry_after_secs: 7 }, 1).expect("inject");
        let call = || async {
            match op {
                Op::Authorize => {
                    let q = [("client_id", CLIENT_ID), ("response_type", "code"), ("redirect_uri", REDIRECT)];
                    reply(env.http.get(env.urls.authorize_url()).query(&q).send().await.expect("send")).await
                }
                Op::Token => {
                    env.token_form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", spare.refresh_token.as_str()),
                        ("client_id", CLIENT_ID),
                        ("client_secret", CLIENT_SECRET),
                    ])
                    .await
                }
                Op::Revoke => env.rpc_as(&spare.access_token, "auth/token/revoke", None).await,
                Op::Account => env.rpc_as(&token, "users/get_current_account", None).await,
                Op::List => env.rpc_as(&token, "files/list_folder", Some(json!({"path": ""}))).await,
                Op::StartCursor => {
                    env.rpc_as(&token, "files/list_folder/get_latest_cursor", Some(json!({"path": ""}))).await
                }
                Op::Changes => {
                    env.rpc_as(&token, "files/list_folder/continue", Some(json!({ "cursor": cursor }))).await
                }
                Op::Metadata => {
                    env.rpc_as(&token, "files/get_metadata", Some(json!({"path": "/x.txt"}))).await
                }
                Op::Download => download_as(&env, &token, "/x.txt").await,
            }
        };
        let first = call().await;
        assert_eq!(first.status, 429, "{op:?}: {}", first.text());
        assert_eq!(first.header("retry-after").as_deref(), Some("7"), "{op:?}");
        let second = call().await;
        assert!(second.status < 400, "{op:?}: the fault is used up: {} {}", second.status, second.text());
        assert_eq!(c.calls(op), 2, "{op:?}");
        assert_eq!(env.dbx.calls(Endpoint::of(op)), 2, "{op:?}");
    }
    // Each class counted only its own calls.
    assert!(Op::ALL.iter().all(|op| c.calls(*op) == 2));
    assert_eq!(env.dbx.calls(Endpoint::Longpoll), 0);
}

#[tokio::test]
async fn injected_download_faults_hit_the_next_downloads_and_can_be_cleared() {
    let env = env().await;
    let c = ctl(&env);
    let (acct, token) = account(&*c);
    let root = c.root(&acct).expect("root");
    let f = c.add_file(&acct, &root, "big.bin", Content::generated(300_000, 5)).expect("file");

    c.inject(Op::Download, Fault::ServerError(503), 2).expect("inject");
    c.inject(Op::Download, Fault::CorruptSameLength, 1).expect("inject");
    let mut statuses = Vec::new();
    for _ in 0..2 {
        statuses.push(download_as(&env, &token, &f.id).await.status);
    }
    assert_eq!(statuses, [503, 503]);
    let corrupt = download_as(&env, &token, &f.id).await;
    assert_eq!((corrupt.status, corrupt.body.len()), (200, 300_000));
    assert_ne!(Some(sha(&corrupt.body)), f.sha256, "one byte flipped");
    let good = download_as(&env, &token, &f.id).await;
    assert_eq!(Some(sha(&good.body)), f.sha256);
    assert_eq!(c.calls(Op::Download), 4);

    c.inject(Op::Metadata, Fault::ServerError(500), 3).expect("inject");
    c.clear_faults();
    let r = env.rpc_as(&token, "files/get_metadata", Some(json!({"path": f.id}))).await;
    assert_eq!(r.status, 200, "{}", r.text());

    c.reset_counters();
    assert_eq!((c.calls(Op::Download), c.calls(Op::Metadata)), (0, 0));
    assert!(env.dbx.call_log().is_empty());
}
