//! End-to-end tests of the Drive emulator over plain HTTP, as a connector sees it.

use serde_json::{Value, json};

use super::{EXPORT_LIMIT, Endpoint, GoogleDriveControl, GoogleDriveUrls};
use crate::{Content, Fault, OAuthClient, Op, Sandbox, SandboxConfig, Service};

const CLIENT_ID: &str = "drive-app.apps.googleusercontent.com";
const CLIENT_SECRET: &str = "CANARY-GOCSPX-secret";
const REDIRECT: &str = "http://localhost:8765/callback";
const DOC_MIME: &str = "application/vnd.google-apps.document";
const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

struct Env {
    sandbox: Sandbox,
    gd: GoogleDriveControl,
    urls: GoogleDriveUrls,
    http: reqwest::Client,
    acct: String,
    root: String,
    token: String,
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!("not JSON ({e}): {} {}", self.status, String::from_utf8_lossy(&self.body)),
        }
    }

    fn reason(&self) -> String {
        self.json()["error"]["errors"][0]["reason"].as_str().unwrap_or_default().to_string()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

async fn reply(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    Reply { status, headers, body }
}

async fn env() -> Env {
    let sandbox = Sandbox::start(SandboxConfig {
        clients: vec![OAuthClient {
            service: Service::GoogleDrive,
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: vec![REDIRECT.into()],
        }],
        ..SandboxConfig::default()
    })
    .await;
    let gd = sandbox.google_drive();
    let acct = gd.create_account("Ada Lovelace", "ada@example.com");
    let root = gd.root(&acct).expect("root");
    let token = gd.mint_tokens(&acct, CLIENT_ID).expect("tokens").access_token;
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    Env { urls: gd.urls(), sandbox, gd, http, acct, root, token }
}

impl Env {
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Reply {
        let req = self.http.get(format!("{}/drive/v3/{path}", self.urls.api_base)).bearer_auth(&self.token);
        reply(req.query(query).send().await.expect("send")).await
    }

    async fn get_with(&self, path: &str, query: &[(&str, &str)], range: &str) -> Reply {
        let req = self
            .http
            .get(format!("{}/drive/v3/{path}", self.urls.api_base))
            .bearer_auth(&self.token)
            .header("Range", range);
        reply(req.query(query).send().await.expect("send")).await
    }

    /// All children of `parent` (not trashed), following `nextPageToken`; also returns
    /// the number of pages.
    async fn children(&self, parent: &str, page_size: usize, extra: &[(&str, &str)]) -> (Vec<Value>, usize) {
        let q = format!("'{parent}' in parents and trashed = false");
        let size = page_size.to_string();
        let mut token: Option<String> = None;
        let mut out = Vec::new();
        let mut pages = 0;
        loop {
            let mut query = vec![("q", q.as_str()), ("pageSize", size.as_str())];
            query.extend_from_slice(extra);
            if let Some(t) = &token {
                query.push(("pageToken", t.as_str()));
            }
            let r = self.get("files", &query).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let v = r.json();
            pages += 1;
            out.extend(v["files"].as_array().cloned().unwrap_or_default());
            match v["nextPageToken"].as_str() {
                Some(t) => token = Some(t.to_string()),
                None => return (out, pages),
            }
        }
    }

    async fn start_token(&self, extra: &[(&str, &str)]) -> String {
        let r = self.get("changes/startPageToken", extra).await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["kind"], "drive#startPageToken");
        r.json()["startPageToken"].as_str().expect("string token").to_string()
    }

    /// All changes since `token`; returns them and the `newStartPageToken`.
    async fn changes(&self, token: &str, extra: &[(&str, &str)]) -> (Vec<Value>, String) {
        let mut token = token.to_string();
        let mut out = Vec::new();
        loop {
            let mut query = vec![("pageToken", token.as_str()), ("pageSize", "2")];
            query.extend_from_slice(extra);
            let r = self.get("changes", &query).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let v = r.json();
            out.extend(v["changes"].as_array().cloned().unwrap_or_default());
            match (v["nextPageToken"].as_str(), v["newStartPageToken"].as_str()) {
                (Some(n), None) => token = n.to_string(),
                (None, Some(s)) => return (out, s.to_string()),
                other => panic!("a page has exactly one of the tokens: {other:?}"),
            }
        }
    }

    async fn token_form(&self, form: &[(&str, &str)]) -> Reply {
        reply(self.http.post(self.urls.token_url()).form(form).send().await.expect("send")).await
    }
}

fn ids(v: &[Value]) -> Vec<String> {
    v.iter().map(|f| f["id"].as_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test]
async fn file_resource_has_string_sizes_and_versions_and_real_hashes() {
    let env = env().await;
    let f = env.gd.add_file(&env.acct, "root", "hello.txt", Content::text("hello world")).expect("add");
    let r = env.get(&format!("files/{}", f.id), &[]).await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["kind"], "drive#file");
    assert_eq!(v["size"], json!("11"));
    assert!(v["version"].is_string(), "{v}");
    assert_eq!(v["md5Checksum"], "5eb63bbbe01eeed093cb22bb8f5acdc3");
    assert_eq!(v["sha256Checksum"], "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9");
    assert_eq!(v["parents"], json!([env.root]));
    assert_eq!(v["trashed"], false);
    assert_eq!(v["capabilities"]["canDownload"], true);
    let modified = v["modifiedTime"].as_str().unwrap_or_default();
    assert_eq!((modified.len(), modified.as_bytes().get(19)), (24, Some(&b'.')), "RFC 3339 with millis: {v}");
    let v1: u64 = v["version"].as_str().and_then(|s| s.parse().ok()).expect("numeric version");
    env.gd.rename(&env.acct, &f.id, "renamed.txt").expect("rename");
    let v2 = env.get(&format!("files/{}", f.id), &[]).await.json();
    assert!(v2["version"].as_str().and_then(|s| s.parse::<u64>().ok()).expect("numeric") > v1);

    // The two-level error body.
    let r = env.get("files/nope", &[]).await;
    assert_eq!(r.status, 404);
    let e = r.json();
    assert_eq!(e["error"]["code"], 404);
    assert_eq!(e["error"]["status"], "NOT_FOUND");
    assert_eq!(e["error"]["errors"][0]["domain"], "global");
    assert_eq!(e["error"]["errors"][0]["reason"], "notFound");
    assert!(e["error"]["message"].is_string() && e["error"]["errors"][0]["message"].is_string());

    // Identity.
    let about = env.get("about", &[("fields", "user")]).await.json();
    assert_eq!(about["user"]["emailAddress"], "ada@example.com");
    assert_eq!(about["user"]["displayName"], "Ada Lovelace");

    // Bad token → 401 authError.
    let r = reply(
        env.http
            .get(format!("{}/drive/v3/about", env.urls.api_base))
            .bearer_auth("nope")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!((r.status, r.reason()), (401, "authError".to_string()));
}

#[tokio::test]
async fn listing_pages_filters_trash_and_keeps_duplicate_names() {
    let env = env().await;
    let dir = env.gd.add_folder(&env.acct, &env.root, "Photos").expect("dir");
    for i in 0..5 {
        env.gd.add_file(&env.acct, &dir.id, &format!("p{i}.jpg"), Content::text("x")).expect("add");
    }
    let dup = env.gd.add_file(&env.acct, &dir.id, "p0.jpg", Content::text("y")).expect("dup");
    let gone = env.gd.add_file(&env.acct, &dir.id, "trash-me", Content::text("z")).expect("add");
    env.gd.trash(&env.acct, &gone.id).expect("trash");
    let (files, pages) = env.children(&dir.id, 2, &[]).await;
    assert_eq!(files.len(), 6);
    assert_eq!(pages, 3);
    assert!(ids(&files).contains(&dup.id));
    assert_eq!(files.iter().filter(|f| f["name"] == "p0.jpg").count(), 2);
    assert!(!ids(&files).contains(&gone.id));
    // Without trashed = false, trashed files are listed.
    let q = format!("'{}' in parents", dir.id);
    let all = env.get("files", &[("q", q.as_str()), ("pageSize", "1000")]).await.json();
    let trashed: Vec<&Value> =
        all["files"].as_array().expect("files").iter().filter(|f| f["trashed"] == true).collect();
    assert_eq!(trashed.len(), 1);
    // `root` alias and the folder filter.
    let q = "'root' in parents and mimeType = 'application/vnd.google-apps.folder' and trashed = false";
    let folders = env.get("files", &[("q", q)]).await.json();
    assert_eq!(ids(folders["files"].as_array().expect("files")), vec![dir.id.clone()]);
    // pageSize above 1000 is capped, below 1 rejected; an unsupported q is a 400.
    assert_eq!(env.get("files", &[("pageSize", "5000")]).await.status, 200);
    assert_eq!(env.get("files", &[("pageSize", "0")]).await.status, 400);
    assert_eq!(env.get("files", &[("q", "fullText contains 'x'")]).await.status, 400);
}

#[tokio::test]
async fn changes_are_account_wide_and_report_removed_and_trashed() {
    let env = env().await;
    let synced = env.gd.add_folder(&env.acct, "root", "Synced").expect("dir");
    let elsewhere = env.gd.add_folder(&env.acct, "root", "Elsewhere").expect("dir");
    let a = env.gd.add_file(&env.acct, &synced.id, "a.txt", Content::text("a")).expect("add");
    let b = env.gd.add_file(&env.acct, &synced.id, "b.txt", Content::text("b")).expect("add");
    let start = env.start_token(&[]).await;
    let (none, same) = env.changes(&start, &[]).await;
    assert!(none.is_empty());
    assert_eq!(same, start);

    let c = env.gd.add_file(&env.acct, &elsewhere.id, "c.txt", Content::text("c")).expect("add");
    env.gd.modify_file(&env.acct, &a.id, Content::text("a2")).expect("modify");
    env.gd.modify_file(&env.acct, &a.id, Content::text("a3")).expect("modify");
    env.gd.trash(&env.acct, &b.id).expect("trash");
    env.gd.delete(&env.acct, &c.id).expect("delete");
    let (changes, next) = env.changes(&start, &[]).await;
    assert_ne!(next, start);
    // One change per file, latest state.
    let by_id = |id: &str| changes.iter().find(|c| c["fileId"] == id).cloned().expect("change");
    assert_eq!(changes.len(), 3, "{changes:?}");
    let ca = by_id(&a.id);
    assert_eq!((ca["removed"].clone(), ca["file"]["size"].clone()), (json!(false), json!("2")));
    assert_eq!(ca["kind"], "drive#change");
    assert_eq!(ca["changeType"], "file");
    let cb = by_id(&b.id);
    assert_eq!((cb["removed"].clone(), cb["file"]["trashed"].clone()), (json!(false), json!(true)));
    let cc = by_id(&c.id);
    assert_eq!(cc["removed"], true);
    assert!(cc.get("file").is_none(), "{cc}");
    // includeRemoved=false drops removals.
    let (kept, _) = env.changes(&start, &[("includeRemoved", "false")]).await;
    assert_eq!(kept.len(), 2);

    // Moving a folder logs only the folder; trashing one logs its subtree as trashed.
    env.gd.move_entry(&env.acct, &synced.id, Some(&elsewhere.id), None).expect("move");
    let (moved, next2) = env.changes(&next, &[]).await;
    assert_eq!(ids(&moved.iter().map(|c| c["file"].clone()).collect::<Vec<_>>()), vec![synced.id.clone()]);
    assert_eq!(moved[0]["file"]["parents"], json!([elsewhere.id]));
    env.gd.trash(&env.acct, &elsewhere.id).expect("trash");
    let (trashed, _) = env.changes(&next2, &[]).await;
    assert!(trashed.iter().all(|c| c["file"]["trashed"] == true), "{trashed:?}");
    assert!(trashed.iter().any(|c| c["fileId"] == a.id.as_str()));

    // Tokens are required and checked; reset_cursors invalidates old ones.
    assert_eq!(env.get("changes", &[]).await.status, 400);
    env.gd.reset_cursors();
    assert_eq!(env.get("changes", &[("pageToken", start.as_str())]).await.status, 400);
}

#[tokio::test]
async fn native_docs_are_exported_not_downloaded_with_a_size_cap() {
    let env = env().await;
    let doc = env
        .gd
        .add_native(&env.acct, "root", "Plan", DOC_MIME, Some(Content::text("PK-docx-bytes")))
        .expect("doc");
    let meta = env.get(&format!("files/{}", doc.id), &[]).await.json();
    assert_eq!(meta["mimeType"], DOC_MIME);
    assert!(meta["size"].is_string());
    assert!(meta.get("md5Checksum").is_none() && meta.get("sha256Checksum").is_none());
    assert!(meta["exportLinks"][DOCX].is_string());

    let r = env.get(&format!("files/{}", doc.id), &[("alt", "media")]).await;
    assert_eq!((r.status, r.reason()), (403, "fileNotDownloadable".to_string()));
    assert_eq!(r.json()["error"]["errors"][0]["location"], "alt");

    let r = env.get(&format!("files/{}/export", doc.id), &[("mimeType", DOCX)]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"PK-docx-bytes");
    assert_eq!(r.header("content-type").as_deref(), Some(DOCX));
    let r = env.get(&format!("files/{}/export", doc.id), &[("mimeType", "text/csv")]).await;
    assert_eq!(r.status, 400);

    let big = env
        .gd
        .add_native(&env.acct, "root", "Big", DOC_MIME, Some(Content::generated(EXPORT_LIMIT + 1, 7)))
        .expect("doc");
    let r = env.get(&format!("files/{}/export", big.id), &[("mimeType", DOCX)]).await;
    assert_eq!((r.status, r.reason()), (403, "exportSizeLimitExceeded".to_string()));

    let form = env
        .gd
        .add_native(&env.acct, "root", "Survey", "application/vnd.google-apps.form", None)
        .expect("form");
    let r = env.get(&format!("files/{}/export", form.id), &[("mimeType", "application/pdf")]).await;
    assert_eq!((r.status, r.reason()), (403, "fileNotExportable".to_string()));

    let bin = env.gd.add_file(&env.acct, "root", "bin", Content::text("bytes")).expect("bin");
    let cut = env.gd.add_shortcut(&env.acct, "root", "to-bin", &bin.id).expect("shortcut");
    let meta = env.get(&format!("files/{}", cut.id), &[]).await.json();
    assert_eq!(meta["mimeType"], "application/vnd.google-apps.shortcut");
    assert_eq!(meta["shortcutDetails"]["targetId"], json!(bin.id));
    assert_eq!(meta["shortcutDetails"]["targetMimeType"], "application/octet-stream");
    assert!(meta.get("size").is_none());
}

#[tokio::test]
async fn downloads_honour_range_can_download_and_per_file_errors() {
    let env = env().await;
    let f = env.gd.add_file(&env.acct, "root", "digits", Content::text("0123456789")).expect("add");
    let path = format!("files/{}", f.id);
    let r = env.get(&path, &[("alt", "media")]).await;
    assert_eq!((r.status, r.body.as_slice()), (200, b"0123456789".as_slice()));
    let r = env.get_with(&path, &[("alt", "media")], "bytes=2-4").await;
    assert_eq!((r.status, r.body.as_slice()), (206, b"234".as_slice()));
    assert_eq!(r.header("content-range").as_deref(), Some("bytes 2-4/10"));
    assert_eq!(env.get_with(&path, &[("alt", "media")], "bytes=20-").await.status, 416);

    env.gd.set_file_error(&f.id, 403, "insufficientFilePermissions");
    let r = env.get(&path, &[("alt", "media")]).await;
    assert_eq!((r.status, r.reason()), (403, "insufficientFilePermissions".to_string()));
    env.gd.clear_file_error(&f.id);
    env.gd.set_can_download(&env.acct, &f.id, false).expect("flag");
    assert_eq!(env.get(&path, &[]).await.json()["capabilities"]["canDownload"], false);
    assert_eq!(env.get(&path, &[("alt", "media")]).await.status, 403);
}

#[tokio::test]
async fn shared_drives_list_and_change_apart_from_my_drive() {
    let env = env().await;
    let drive = env.gd.add_shared_drive(&env.acct, "Team").expect("drive");
    let drives = env.get("drives", &[("pageSize", "100")]).await.json();
    assert_eq!(drives["kind"], "drive#driveList");
    assert_eq!(drives["drives"][0]["id"], json!(drive));
    assert_eq!(drives["drives"][0]["name"], "Team");

    let sd_start = env.start_token(&[("driveId", drive.as_str()), ("supportsAllDrives", "true")]).await;
    let my_start = env.start_token(&[]).await;
    let dir = env.gd.add_folder(&env.acct, &drive, "Specs").expect("dir");
    let f = env.gd.add_file(&env.acct, &dir.id, "s.pdf", Content::text("pdf")).expect("add");
    let mine = env.gd.add_file(&env.acct, "root", "mine.txt", Content::text("m")).expect("add");

    let all = [("supportsAllDrives", "true"), ("includeItemsFromAllDrives", "true")];
    let (files, _) = env
        .children(&dir.id, 100, &[all[0], all[1], ("corpora", "drive"), ("driveId", drive.as_str())])
        .await;
    assert_eq!(ids(&files), vec![f.id.clone()]);
    assert_eq!(files[0]["driveId"], json!(drive));
    // Shared-drive items need the all-drives flags.
    let (hidden, _) = env.children(&dir.id, 100, &[]).await;
    assert!(hidden.is_empty());
    assert_eq!(env.get(&format!("files/{}", f.id), &[]).await.status, 404);
    assert_eq!(env.get(&format!("files/{}", f.id), &[("supportsAllDrives", "true")]).await.status, 200);

    let sd = [("driveId", drive.as_str()), all[0], all[1]];
    let (sd_changes, _) = env.changes(&sd_start, &sd).await;
    let changed: Vec<&str> = sd_changes.iter().filter_map(|c| c["fileId"].as_str()).collect();
    assert_eq!(changed, vec![dir.id.as_str(), f.id.as_str()]);
    assert!(sd_changes.iter().all(|c| c["driveId"] == json!(drive)));
    let (my_changes, _) = env.changes(&my_start, &[]).await;
    let changed: Vec<&str> = my_changes.iter().filter_map(|c| c["fileId"].as_str()).collect();
    assert_eq!(changed, vec![mine.id.as_str()]);

    // The drive's root folder id is the drive id.
    let (top, _) =
        env.children(&drive, 100, &[all[0], all[1], ("corpora", "drive"), ("driveId", drive.as_str())]).await;
    assert_eq!(ids(&top), vec![dir.id.clone()]);
    // drives.list pages.
    let second = env.gd.add_shared_drive(&env.acct, "Ops").expect("drive");
    let p1 = env.get("drives", &[("pageSize", "1")]).await.json();
    assert_eq!(p1["drives"].as_array().map(Vec::len), Some(1));
    let t = p1["nextPageToken"].as_str().expect("more").to_string();
    let p2 = env.get("drives", &[("pageSize", "1"), ("pageToken", t.as_str())]).await.json();
    assert_eq!(p2["drives"][0]["id"], json!(second));
    assert!(p2.get("nextPageToken").is_none());
}

#[tokio::test]
async fn oauth_round_trip_with_pkce_refresh_without_rotation_and_revoke() {
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    let env = env().await;
    let auth = [
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("response_type", "code"),
        ("scope", "https://www.googleapis.com/auth/drive.readonly"),
        ("access_type", "offline"),
        ("prompt", "consent"),
        ("state", "xyz"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    // The consent page first.
    let r = reply(env.http.get(env.urls.authorize_url()).query(&auth).send().await.expect("send")).await;
    assert_eq!(r.status, 200);
    assert!(String::from_utf8_lossy(&r.body).contains("Google"));
    // Auto-approve: straight back with a code.
    env.gd.set_auto_approve(true);
    let r = reply(env.http.get(env.urls.authorize_url()).query(&auth).send().await.expect("send")).await;
    assert_eq!(r.status, 302);
    let loc = url::Url::parse(&r.header("location").expect("location")).expect("url");
    let q: std::collections::HashMap<String, String> = loc.query_pairs().into_owned().collect();
    assert_eq!(q.get("state").map(String::as_str), Some("xyz"));
    let code = q.get("code").cloned().expect("code");

    let r = env
        .token_form(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("code_verifier", VERIFIER),
        ])
        .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let t = r.json();
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["scope"], "https://www.googleapis.com/auth/drive.readonly");
    assert!(t["expires_in"].as_u64().is_some_and(|s| s > 3000));
    let rt = t["refresh_token"].as_str().expect("refresh token").to_string();
    let at = t["access_token"].as_str().expect("access token").to_string();
    let who = reply(
        env.http
            .get(format!("{}/drive/v3/about", env.urls.api_base))
            .query(&[("fields", "user")])
            .bearer_auth(&at)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(who.json()["user"]["emailAddress"], "ada@example.com");

    // Authorizing again: a refresh token only with prompt=consent (§1.9).
    for (prompt, expect_rt) in [(None, false), (Some("consent"), true)] {
        let mut q: Vec<(&str, &str)> = auth.iter().filter(|(k, _)| *k != "prompt").copied().collect();
        if let Some(p) = prompt {
            q.push(("prompt", p));
        }
        let r = reply(env.http.get(env.urls.authorize_url()).query(&q).send().await.expect("send")).await;
        let loc = url::Url::parse(&r.header("location").expect("location")).expect("url");
        let code = loc.query_pairs().find(|(k, _)| k == "code").map(|(_, v)| v.into_owned()).expect("code");
        let r = env
            .token_form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("code_verifier", VERIFIER),
            ])
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.json().get("refresh_token").is_some(), expect_rt, "prompt {prompt:?}");
    }

    let refresh = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    let r = env.token_form(&refresh).await;
    assert_eq!(r.status, 200);
    assert!(r.json().get("refresh_token").is_none(), "refresh tokens are not rotated");
    assert!(r.json()["access_token"].is_string());

    let r = reply(
        env.http.post(env.urls.revoke_url()).form(&[("token", rt.as_str())]).send().await.expect("send"),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = env.token_form(&refresh).await;
    assert_eq!((r.status, r.json()["error"].clone()), (400, json!("invalid_grant")));
    let r = reply(
        env.http.post(env.urls.revoke_url()).form(&[("token", rt.as_str())]).send().await.expect("send"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(env.sandbox.canaries().contains(&rt));
}

#[tokio::test]
async fn faults_counters_and_the_neutral_control() {
    let env = env().await;
    let ctl = env.sandbox.control(Service::GoogleDrive);
    assert_eq!(ctl.service(), Service::GoogleDrive);
    assert_eq!(ctl.root(&env.acct).ok(), Some(env.root.clone()));
    let dir = ctl.add_folder(&env.acct, &env.root, "D").expect("dir");
    let f = ctl.add_file(&env.acct, &dir.id, "f", Content::text("hello world")).expect("file");
    assert_eq!(f.parent_id.as_deref(), Some(dir.id.as_str()));
    assert_eq!(ctl.list_files(&env.acct, &env.root).map(|v| v.len()), Ok(1));
    assert_eq!(
        ctl.sha256(&env.acct, &f.id).as_deref(),
        Ok("b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9")
    );

    ctl.inject(Op::List, Fault::ServerError(403), 1).expect("inject");
    ctl.inject(Op::List, Fault::RateLimit { retry_after_secs: 2 }, 1).expect("inject");
    ctl.inject(Op::List, Fault::ServerError(503), 1).expect("inject");
    let r = env.get("files", &[]).await;
    assert_eq!((r.status, r.reason()), (403, "userRateLimitExceeded".to_string()));
    assert_eq!(r.json()["error"]["errors"][0]["domain"], "usageLimits");
    let r = env.get("files", &[]).await;
    assert_eq!(
        (r.status, r.reason(), r.header("retry-after")),
        (429, "rateLimitExceeded".into(), Some("2".into()))
    );
    let r = env.get("files", &[]).await;
    assert_eq!((r.status, r.reason()), (503, "backendError".to_string()));
    assert_eq!(env.get("files", &[]).await.status, 200);
    assert_eq!(ctl.calls(Op::List), 4);
    assert_eq!(env.gd.calls(Endpoint::FilesList), 4);

    ctl.expire_access_tokens();
    assert_eq!(env.get("about", &[]).await.status, 401);

    // The HTTP control routes.
    let base = env.sandbox.base_url();
    let r =
        reply(env.http.get(format!("{base}/_control/google_drive/urls")).send().await.expect("send")).await;
    assert_eq!(r.json()["api_base"], json!(env.urls.api_base));
    let r = reply(
        env.http
            .post(format!("{base}/_control/google_drive/add_native"))
            .header("content-type", "application/json")
            .body(json!({ "account_id": env.acct, "parent": env.root, "name": "Doc", "mime_type": DOC_MIME, "export": { "text": "x" } }).to_string())
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["name"], "Doc");
}

/// The connector's `File` selector (shared/providers/src/google_drive/wire.rs `FILE_FIELDS`).
const CONNECTOR_FILE_FIELDS: &str = "id,name,mimeType,size,md5Checksum,sha256Checksum,modifiedTime,parents,\
trashed,driveId,version,headRevisionId,shortcutDetails,capabilities/canDownload,exportLinks,resourceKey";

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    k.sort();
    k
}

#[test]
fn field_masks_parse_google_partial_response_syntax() {
    use super::wire::FieldMask;
    let mask =
        FieldMask::parse("nextPageToken,files(id,capabilities/canDownload,file(id,name))").expect("mask");
    let mut v = json!({
        "kind": "drive#fileList",
        "nextPageToken": "t",
        "incompleteSearch": false,
        "files": [{"id": "1", "name": "n", "capabilities": {"canDownload": true, "canEdit": false},
                   "file": {"id": "2", "name": "m", "size": "3"}}],
    });
    mask.apply(&mut v);
    assert_eq!(
        v,
        json!({"nextPageToken": "t", "files": [{"id": "1", "capabilities": {"canDownload": true},
               "file": {"id": "2", "name": "m"}}]})
    );
    let mut all = json!({"a": 1, "b": {"c": 2}});
    FieldMask::parse("*").expect("star").apply(&mut all);
    assert_eq!(all, json!({"a": 1, "b": {"c": 2}}));
    for bad in ["files(id", "id,,name", "id)", "", "files()", "a//b"] {
        assert!(FieldMask::parse(bad).is_err(), "{bad:?} parsed");
    }
}

#[tokio::test]
async fn fields_selects_exactly_the_members_asked_for() {
    let env = env().await;
    let f = env.gd.add_file(&env.acct, "root", "hello.txt", Content::text("hello world")).expect("add");
    let folder = env.gd.add_folder(&env.acct, "root", "Folder").expect("folder");

    // files.get: only the selected members; those that do not apply (a folder's size) are absent.
    let v = env.get(&format!("files/{}", f.id), &[("fields", "id,size")]).await.json();
    assert_eq!(v, json!({"id": f.id, "size": "11"}));
    let v = env.get(&format!("files/{}", f.id), &[("fields", CONNECTOR_FILE_FIELDS)]).await.json();
    let want = [
        "capabilities",
        "headRevisionId",
        "id",
        "md5Checksum",
        "mimeType",
        "modifiedTime",
        "name",
        "parents",
        "sha256Checksum",
        "size",
        "trashed",
        "version",
    ];
    assert_eq!(keys(&v), want);
    assert_eq!(v["capabilities"], json!({"canDownload": true}));
    let v = env.get(&format!("files/{}", folder.id), &[("fields", "id,size,md5Checksum")]).await.json();
    assert_eq!(v, json!({"id": folder.id}));

    // files.list: the page's members and each file's.
    let q = format!("'{}' in parents", env.root);
    let fields = format!("nextPageToken,incompleteSearch,files({CONNECTOR_FILE_FIELDS})");
    let v =
        env.get("files", &[("q", q.as_str()), ("pageSize", "1"), ("fields", fields.as_str())]).await.json();
    assert_eq!(keys(&v), ["files", "incompleteSearch", "nextPageToken"]);
    assert!(v["files"][0].get("kind").is_none() && v["files"][0].get("explicitlyTrashed").is_none(), "{v}");
    let v = env.get("files", &[("q", q.as_str()), ("fields", "files(id)")]).await.json();
    assert_eq!(v, json!({"files": [{"id": folder.id}, {"id": f.id}]}));

    // changes.list: `changes(…,file(…))`.
    let token = env.start_token(&[]).await;
    env.gd.modify_file(&env.acct, &f.id, Content::text("v2")).expect("modify");
    let fields = "newStartPageToken,changes(fileId,removed,file(id,size))";
    let v = env.get("changes", &[("pageToken", token.as_str()), ("fields", fields)]).await.json();
    assert_eq!(keys(&v), ["changes", "newStartPageToken"]);
    assert_eq!(v["changes"], json!([{"fileId": f.id, "removed": false, "file": {"id": f.id, "size": "2"}}]));

    // drives.list and startPageToken.
    env.gd.add_shared_drive(&env.acct, "Team").expect("drive");
    let v = env.get("drives", &[("fields", "nextPageToken,drives(id,name)")]).await.json();
    assert_eq!(keys(&v["drives"][0]), ["id", "name"]);
    let v = env.get("changes/startPageToken", &[("fields", "startPageToken")]).await.json();
    assert_eq!(keys(&v), ["startPageToken"]);

    // Without `fields`, every member the emulator knows; a malformed selector is a 400.
    assert_eq!(env.get(&format!("files/{}", f.id), &[]).await.json()["kind"], "drive#file");
    let r = env.get("files", &[("fields", "files(id")]).await;
    assert_eq!((r.status, r.reason()), (400, "invalidParameter".to_string()));
    assert_eq!(r.json()["error"]["errors"][0]["location"], "fields");
}

#[tokio::test]
async fn about_requires_fields_like_drive() {
    let env = env().await;
    let r = env.get("about", &[]).await;
    assert_eq!((r.status, r.reason()), (400, "required".to_string()));
    assert_eq!(r.json()["error"]["errors"][0]["location"], "fields");
    let v = env.get("about", &[("fields", "user")]).await.json();
    assert_eq!(keys(&v), ["user"]);
    assert_eq!(v["user"]["permissionId"], json!(env.acct));
    let v = env.get("about", &[("fields", "user/emailAddress")]).await.json();
    assert_eq!(v, json!({"user": {"emailAddress": "ada@example.com"}}));
}

#[tokio::test]
async fn media_is_served_as_the_files_own_type() {
    let env = env().await;
    let txt =
        env.gd.add_file_typed(&env.acct, "root", "a.txt", "text/plain", Content::text("hi")).expect("add");
    let bin = env.gd.add_file(&env.acct, "root", "b.bin", Content::text("hi")).expect("add");
    let r = env.get(&format!("files/{}", txt.id), &[("alt", "media")]).await;
    assert_eq!((r.status, r.header("content-type").as_deref()), (200, Some("text/plain")));
    let r = env.get_with(&format!("files/{}", txt.id), &[("alt", "media")], "bytes=0-0").await;
    assert_eq!((r.status, r.header("content-type").as_deref()), (206, Some("text/plain")));
    let r = env.get(&format!("files/{}", bin.id), &[("alt", "media")]).await;
    assert_eq!(r.header("content-type").as_deref(), Some("application/octet-stream"));
}

#[tokio::test]
async fn fields_naming_an_unknown_member_is_invalid_like_drive() {
    let env = env().await;
    let f = env.gd.add_file(&env.acct, "root", "a.txt", Content::text("hi")).expect("add");
    for (path, fields, bad) in [
        (format!("files/{}", f.id), "id,nmae", "nmae"),
        ("files".to_string(), "nextPageToken,files(id,md5checksum)", "md5checksum"),
        ("files".to_string(), "fileList", "fileList"),
        ("drives".to_string(), "drives(id,title)", "title"),
        ("about".to_string(), "user(email)", "email"),
    ] {
        let r = env.get(&path, &[("fields", fields)]).await;
        assert_eq!((r.status, r.reason()), (400, "invalidParameter".to_string()), "{path} {fields}");
        assert_eq!(r.json()["error"]["message"], format!("Invalid field selection {bad}"));
    }
    let token = env.start_token(&[]).await;
    let r =
        env.get("changes", &[("pageToken", token.as_str()), ("fields", "changes(file(id,sizeBytes))")]).await;
    assert_eq!((r.status, r.reason()), (400, "invalidParameter".to_string()));
    // Every name Drive has is accepted, populated or not; sub-members of unmodelled
    // objects are not checked; `*` selects everything.
    let ok = [
        "id,description,starred,owners(displayName),capabilities/canDownload,shortcutDetails/targetId",
        "*",
        "kind,files/id",
    ];
    for fields in ok {
        let path = if fields.contains("files") { "files".to_string() } else { format!("files/{}", f.id) };
        assert_eq!(env.get(&path, &[("fields", fields)]).await.status, 200, "{fields}");
    }
    let v = env.get(&format!("files/{}", f.id), &[("fields", "id,description,starred")]).await.json();
    assert_eq!(v, json!({"id": f.id}));
}
