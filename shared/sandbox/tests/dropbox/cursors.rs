//! list_folder / continue / get_latest_cursor / get_metadata / longpoll semantics.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use extconn_sandbox::Content;
use serde_json::{Value, json};

use crate::support::*;

fn recursive(path: &str) -> Value {
    json!({"path": path, "recursive": true})
}

#[tokio::test]
async fn recursive_listing_puts_parents_first_and_pages_with_small_limits() {
    let env = env().await;
    env.dbx.seed_tree(&env.acct, "/Root", 23, 4, 100);
    env.dbx.add_file(&env.acct, "/Root b/outside.txt", Content::text("o"));
    let root_id = env.dbx.entry(&env.acct, "/root").expect("root").id;

    let mut pages = 0;
    let r = env.rpc("files/list_folder", Some(json!({"path": root_id, "recursive": true, "limit": 5}))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut v = r.json();
    let mut all: Vec<Value> = Vec::new();
    loop {
        pages += 1;
        let entries = v["entries"].as_array().cloned().unwrap_or_default();
        assert!(entries.len() <= 5);
        all.extend(entries);
        if v["has_more"] != json!(true) {
            break;
        }
        let r = env.rpc("files/list_folder/continue", Some(json!({"cursor": v["cursor"]}))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        v = r.json();
    }
    // 1 (the folder itself) + 6 sub-folders + 23 files.
    assert_eq!(all.len(), 30);
    assert_eq!(pages, 6);
    assert_eq!(all[0][".tag"], "folder");
    assert_eq!(all[0]["path_display"], "/Root");
    let mut seen = HashSet::new();
    for e in &all {
        let p = e["path_lower"].as_str().expect("path").to_string();
        assert!(p == "/root" || p.starts_with("/root/"), "{p} is outside the folder");
        if let Some((parent, _)) = p.rsplit_once('/') {
            assert!(parent.is_empty() || seen.contains(parent), "{p} listed before its parent");
        }
        assert!(seen.insert(p.clone()), "{p} listed twice");
    }
    // The cursor after the listing sees nothing new.
    let (entries, _, more) = env.cont(v["cursor"].as_str().expect("cursor")).await;
    assert!(entries.is_empty() && !more);
}

#[tokio::test]
async fn non_recursive_listing_shows_direct_children_only() {
    let env = env().await;
    env.dbx.add_file(&env.acct, "/a/b/c.txt", Content::text("c"));
    env.dbx.add_file(&env.acct, "/top.txt", Content::text("t"));
    let (entries, _) = env.list_all(json!({"path": ""})).await;
    let mut d = describe(&entries);
    d.sort();
    assert_eq!(d, ["file /top.txt", "folder /a"]);
    let (entries, _) = env.list_all(json!({"path": "/A"})).await;
    assert_eq!(describe(&entries), ["folder /a/b"]);
}

#[tokio::test]
async fn continue_reports_adds_and_modifications_with_current_metadata() {
    let env = env().await;
    let f = env.dbx.add_file(&env.acct, "/sync/one.txt", Content::text("1"));
    env.dbx.add_file(&env.acct, "/elsewhere/x.txt", Content::text("x"));
    let (_, cursor) = env.list_all(recursive("/sync")).await;

    let modified = env.dbx.modify_file(&env.acct, &f.id, Content::text("1 again"));
    env.dbx.modify_file(&env.acct, &f.id, Content::text("1 final"));
    env.dbx.add_file(&env.acct, "/sync/new/two.txt", Content::text("2"));
    env.dbx.add_file(&env.acct, "/elsewhere/y.txt", Content::text("y"));

    let (entries, cursor, more) = env.cont(&cursor).await;
    assert!(!more);
    assert_eq!(describe(&entries), ["file /sync/one.txt", "folder /sync/new", "file /sync/new/two.txt"]);
    let one = &entries[0];
    assert_eq!(one["id"], f.id.as_str());
    assert_ne!(one["rev"], json!(f.rev));
    assert_ne!(one["rev"], json!(modified.rev), "collapsed to the current state");
    assert_eq!(one["content_hash"], extconn_sandbox::content_hash(b"1 final"));
    assert_eq!(one["size"], 7);

    // Nothing more: empty page, has_more false, and the cursor keeps working.
    let (entries, cursor2, more) = env.cont(&cursor).await;
    assert!(entries.is_empty() && !more);
    let (entries, _, _) = env.cont(&cursor2).await;
    assert!(entries.is_empty());
}

#[tokio::test]
async fn rename_is_deleted_old_path_plus_entry_at_new_path_with_same_id() {
    let env = env().await;
    let f = env.dbx.add_file(&env.acct, "/sync/old name.txt", Content::text("1"));
    let (_, cursor) = env.list_all(recursive("/sync")).await;
    env.dbx.move_entry(&env.acct, "/sync/old name.txt", "/sync/New Name.txt");
    let (entries, _, _) = env.cont(&cursor).await;
    assert_eq!(describe(&entries), ["deleted /sync/old name.txt", "file /sync/New Name.txt"]);
    assert!(entries[0].get("id").is_none());
    assert_eq!(entries[0]["name"], "old name.txt");
    assert_eq!(entries[1]["id"], f.id.as_str());
}

#[tokio::test]
async fn folder_move_reports_the_subtree_at_its_new_path() {
    let env = env().await;
    let sub = env.dbx.add_folder(&env.acct, "/sync/sub");
    let f = env.dbx.add_file(&env.acct, "/sync/sub/a.txt", Content::text("a"));
    let (_, cursor) = env.list_all(recursive("/sync")).await;
    env.dbx.move_entry(&env.acct, "/sync/sub", "/sync/moved/sub2");
    let (entries, _, _) = env.cont(&cursor).await;
    assert_eq!(
        describe(&entries),
        // The destination's new parent is created first, then the move is journaled.
        ["folder /sync/moved", "deleted /sync/sub", "folder /sync/moved/sub2", "file /sync/moved/sub2/a.txt"]
    );
    assert_eq!(entries[2]["id"], sub.id.as_str());
    assert_eq!(entries[3]["id"], f.id.as_str());
}

#[tokio::test]
async fn moving_out_of_the_folder_is_only_a_deletion_and_moving_in_an_addition() {
    let env = env().await;
    env.dbx.add_file(&env.acct, "/sync/leaving.txt", Content::text("l"));
    env.dbx.add_file(&env.acct, "/outside/arriving.txt", Content::text("a"));
    let (_, cursor) = env.list_all(recursive("/sync")).await;
    env.dbx.move_entry(&env.acct, "/sync/leaving.txt", "/outside/leaving.txt");
    env.dbx.move_entry(&env.acct, "/outside/arriving.txt", "/sync/arriving.txt");
    let (entries, _, _) = env.cont(&cursor).await;
    assert_eq!(describe(&entries), ["deleted /sync/leaving.txt", "file /sync/arriving.txt"]);
}

#[tokio::test]
async fn a_deleted_folder_is_one_deleted_entry() {
    let env = env().await;
    env.dbx.seed_tree(&env.acct, "/sync/big", 10, 3, 10);
    env.dbx.add_file(&env.acct, "/sync/keep.txt", Content::text("k"));
    let (_, cursor) = env.list_all(recursive("/sync")).await;
    env.dbx.modify_file(&env.acct, "/sync/big/d0000/f000000.bin", Content::text("changed first"));
    env.dbx.delete(&env.acct, "/sync/big");
    let (entries, _, _) = env.cont(&cursor).await;
    assert_eq!(describe(&entries), ["deleted /sync/big"]);
}

#[tokio::test]
async fn changes_page_with_the_cursor_limit() {
    let env = env().await;
    env.dbx.add_folder(&env.acct, "/sync");
    let r = env.rpc("files/list_folder", Some(json!({"path": "/sync", "recursive": true, "limit": 3}))).await;
    let mut cursor = r.json()["cursor"].as_str().expect("cursor").to_string();
    for i in 0..8 {
        env.dbx.add_file(&env.acct, &format!("/sync/f{i}.txt"), Content::text("x"));
    }
    let mut got = Vec::new();
    let mut calls = 0;
    loop {
        let (entries, next, more) = env.cont(&cursor).await;
        calls += 1;
        assert!(entries.len() <= 3);
        got.extend(describe(&entries));
        cursor = next;
        if !more {
            break;
        }
    }
    assert_eq!(calls, 3);
    assert_eq!(got.len(), 8);
}

#[tokio::test]
async fn get_latest_cursor_sees_only_later_changes() {
    let env = env().await;
    env.dbx.add_file(&env.acct, "/sync/before.txt", Content::text("b"));
    let r = env.rpc("files/list_folder/get_latest_cursor", Some(recursive("/sync"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v.as_object().map(|o| o.len()), Some(1), "{v}");
    env.dbx.add_file(&env.acct, "/sync/after.txt", Content::text("a"));
    let (entries, _, _) = env.cont(v["cursor"].as_str().expect("cursor")).await;
    assert_eq!(describe(&entries), ["file /sync/after.txt"]);
}

#[tokio::test]
async fn an_id_cursor_follows_its_folder_across_renames() {
    let env = env().await;
    let folder = env.dbx.add_folder(&env.acct, "/Photos");
    env.dbx.add_file(&env.acct, "/Photos/a.jpg", Content::text("a"));
    let (_, cursor) = env.list_all(json!({"path": folder.id, "recursive": true})).await;
    env.dbx.move_entry(&env.acct, "/Photos", "/Archive/Photos 2020");
    let (entries, cursor, _) = env.cont(&cursor).await;
    assert_eq!(describe(&entries), ["folder /Archive/Photos 2020", "file /Archive/Photos 2020/a.jpg"]);
    env.dbx.add_file(&env.acct, "/archive/photos 2020/b.jpg", Content::text("b"));
    let (entries, cursor, _) = env.cont(&cursor).await;
    assert_eq!(describe(&entries), ["file /Archive/Photos 2020/b.jpg"]);

    // Once the folder itself is gone, continue answers path/not_found.
    env.dbx.delete(&env.acct, &folder.id);
    let r = env.rpc("files/list_folder/continue", Some(json!({"cursor": cursor}))).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"]["path"][".tag"], "not_found");
}

#[tokio::test]
async fn reset_cursors_invalidates_every_issued_cursor() {
    let env = env().await;
    env.dbx.add_file(&env.acct, "/a.txt", Content::text("a"));
    env.dbx.add_file(&env.acct, "/b.txt", Content::text("b"));
    let r = env.rpc("files/list_folder", Some(json!({"path": "", "limit": 1}))).await;
    assert_eq!(r.json()["has_more"], true);
    let mid_listing = r.json()["cursor"].as_str().expect("cursor").to_string();
    let (_, done) = env.list_all(json!({"path": ""})).await;
    env.dbx.reset_cursors();
    for c in [&mid_listing, &done] {
        let r = env.rpc("files/list_folder/continue", Some(json!({"cursor": c}))).await;
        assert_eq!(r.status, 409);
        assert_eq!(r.json()["error"][".tag"], "reset");
        assert_eq!(r.json()["error_summary"], "reset/..");
    }
    // New cursors work.
    let (entries, cursor) = env.list_all(json!({"path": ""})).await;
    assert_eq!(entries.len(), 2);
    assert_eq!(env.cont(&cursor).await.0.len(), 0);
    // A cursor that was never issued is a 400 (plain text).
    let r = env.rpc("files/list_folder/continue", Some(json!({"cursor": "garbage"}))).await;
    assert_eq!(r.status, 400);
    assert!(r.header("content-type").unwrap_or_default().starts_with("text/plain"));
}

#[tokio::test]
async fn include_deleted_lists_tombstones_in_the_initial_listing() {
    let env = env().await;
    env.dbx.add_file(&env.acct, "/d/gone.txt", Content::text("g"));
    env.dbx.add_file(&env.acct, "/d/here.txt", Content::text("h"));
    env.dbx.delete(&env.acct, "/d/gone.txt");
    let (entries, _) = env.list_all(json!({"path": "/d"})).await;
    assert_eq!(describe(&entries), ["file /d/here.txt"]);
    let (entries, _) = env.list_all(json!({"path": "/d", "include_deleted": true})).await;
    assert_eq!(describe(&entries), ["deleted /d/gone.txt", "file /d/here.txt"]);
}

#[tokio::test]
async fn listing_errors_use_dropbox_shapes() {
    let env = env().await;
    env.dbx.add_file(&env.acct, "/file.txt", Content::text("f"));
    let r = env.rpc("files/list_folder", Some(json!({"path": "/file.txt"}))).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"]["path"][".tag"], "not_folder");
    assert_eq!(r.json()["error_summary"], "path/not_folder/..");
    let r = env.rpc("files/list_folder", Some(json!({"path": "id:AAAAAAAAAAAAAAAAAAAAAA"}))).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"]["path"][".tag"], "not_found");
    for bad in [
        json!({"path": "no-slash"}),
        json!({"path": "", "limit": 0}),
        json!({"path": "", "limit": 2001}),
        json!({}),
    ] {
        let r = env.rpc("files/list_folder", Some(bad.clone())).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.header("content-type").unwrap_or_default().starts_with("text/plain"), "{bad}");
    }
    // Wrong content type.
    let r = reply(
        env.http
            .post(format!("{}/2/files/list_folder", env.urls.api_base))
            .bearer_auth(&env.token)
            .header("Content-Type", "text/plain")
            .body(r#"{"path":""}"#)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("Content-Type"), "{}", r.text());
    // Trailing slash is a malformed path.
    let r = env.rpc("files/list_folder", Some(json!({"path": "/a/"}))).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"]["path"][".tag"], "malformed_path");
    // ns: paths resolve in the account's namespace.
    let ns = env.rpc("users/get_current_account", None).await.json()["root_info"]["root_namespace_id"]
        .as_str()
        .expect("ns")
        .to_string();
    let (entries, _) = env.list_all(json!({"path": format!("ns:{ns}")})).await;
    assert_eq!(describe(&entries), ["file /file.txt"]);
}

#[tokio::test]
async fn get_metadata_returns_tagged_metadata() {
    let env = env().await;
    let f = env.dbx.add_file(&env.acct, "/Docs/Report.PDF", Content::text("pdf"));
    let r = env.rpc("files/get_metadata", Some(json!({"path": "/docs/report.pdf"}))).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v[".tag"], "file");
    assert_eq!(v["id"], f.id.as_str());
    assert_eq!(v["rev"], json!(f.rev));
    assert_eq!(v["content_hash"], json!(f.content_hash));
    let by_id = env.rpc("files/get_metadata", Some(json!({"path": f.id}))).await.json();
    assert_eq!(by_id, v);
    let by_rev = env
        .rpc(
            "files/get_metadata",
            Some(json!({"path": format!("rev:{}", f.rev.clone().unwrap_or_default())})),
        )
        .await
        .json();
    assert_eq!(by_rev, v);
    let folder = env.rpc("files/get_metadata", Some(json!({"path": "/DOCS"}))).await.json();
    assert_eq!(folder[".tag"], "folder");
    assert_eq!(folder.as_object().map(|o| o.len()), Some(5), "{folder}");

    let r = env.rpc("files/get_metadata", Some(json!({"path": ""}))).await;
    assert_eq!(r.status, 400);
    env.dbx.delete(&env.acct, "/Docs/Report.PDF");
    let r = env.rpc("files/get_metadata", Some(json!({"path": "/docs/report.pdf"}))).await;
    assert_eq!(r.status, 409);
    let r = env
        .rpc("files/get_metadata", Some(json!({"path": "/docs/report.pdf", "include_deleted": true})))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json(),
        json!({".tag": "deleted", "name": "Report.PDF", "path_lower": "/docs/report.pdf", "path_display": "/Docs/Report.PDF"})
    );
}

async fn longpoll(env: &Env, cursor: &str, timeout: u64) -> Reply {
    reply(
        env.http
            .post(format!("{}/2/files/list_folder/longpoll", env.urls.notify_base))
            .header("Content-Type", "application/json")
            .body(json!({"cursor": cursor, "timeout": timeout}).to_string())
            .send()
            .await
            .expect("send"),
    )
    .await
}

#[tokio::test]
async fn longpoll_waits_for_a_change_in_scope_or_times_out_quickly() {
    let env = env().await;
    env.dbx.add_folder(&env.acct, "/sync");
    env.dbx.set_longpoll_max_wait(Duration::from_millis(300));
    let r = env.rpc("files/list_folder/get_latest_cursor", Some(recursive("/sync"))).await;
    let cursor = r.json()["cursor"].as_str().expect("cursor").to_string();

    // No change (one outside the folder does not count): changes=false after the cap.
    env.dbx.add_file(&env.acct, "/other.txt", Content::text("o"));
    let t = Instant::now();
    let r = longpoll(&env, &cursor, 30).await;
    assert_eq!(r.json(), json!({"changes": false}));
    assert!(t.elapsed() >= Duration::from_millis(250));

    // A change during the wait wakes it up.
    env.dbx.set_longpoll_max_wait(Duration::from_secs(20));
    let dbx = env.dbx.clone();
    let acct = env.acct.clone();
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        dbx.add_file(&acct, "/sync/new.txt", Content::text("n"));
    });
    let t = Instant::now();
    let r = longpoll(&env, &cursor, 30).await;
    assert_eq!(r.json(), json!({"changes": true}));
    assert!(t.elapsed() < Duration::from_secs(10));
    writer.await.expect("writer");

    // Timeout bounds and reset.
    assert_eq!(longpoll(&env, &cursor, 10).await.status, 400);
    env.dbx.reset_cursors();
    let r = longpoll(&env, &cursor, 30).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"][".tag"], "reset");
}
