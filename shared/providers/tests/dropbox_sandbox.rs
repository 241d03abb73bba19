//! The Dropbox connector against the in-process Dropbox emulator (`extconn-sandbox`).
//!
//! Every test records the `Debug` text of each error, item and token set the connector hands
//! back, and ends by checking that none contains a secret the sandbox issued or saw
//! (`canaries()`: tokens, codes, PKCE verifiers, the client secret).

use std::fmt::Debug;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use extconn_core::ports::provider::AuthorizeRequest;
use extconn_core::ports::{Change, Download, DownloadRequest, ListPage, Provider, ProviderError, RemoteItem};
use extconn_core::{FolderLocator, ItemKind, Secret, TokenSet};
use extconn_providers::{Dropbox, DropboxConfig};
use extconn_sandbox::{
    AccountId, Content, DropboxControl, Endpoint, Fault, OAuthClient, Sandbox, SandboxConfig, Service,
};
use futures::StreamExt;
use sha2::{Digest, Sha256};

const CLIENT_ID: &str = "app-key-test";
const CLIENT_SECRET: &str = "app-secret-CANARY-client";
const REDIRECT: &str = "http://localhost:8080/v1/oauth/dropbox/callback";
/// RFC 7636 appendix B.
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";

struct Env {
    sandbox: Sandbox,
    sb: DropboxControl,
    dbx: Dropbox,
    acct: AccountId,
    seen: Mutex<Vec<String>>,
}

impl Env {
    async fn new(page_limit: u32) -> Self {
        let sandbox = Sandbox::start(SandboxConfig {
            clients: vec![OAuthClient {
                service: Service::Dropbox,
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.into(),
                redirect_uris: vec![REDIRECT.into()],
            }],
            ..SandboxConfig::default()
        })
        .await;
        let sb = sandbox.dropbox();
        let urls = sb.urls();
        let mut cfg = DropboxConfig::new(CLIENT_ID, Secret::new(CLIENT_SECRET)).with_bases(
            urls.www_base,
            urls.api_base,
            urls.content_base,
        );
        cfg.page_limit = page_limit;
        cfg.http.read_timeout = Duration::from_secs(20);
        let dbx = Dropbox::new(cfg);
        let acct = sb.create_account("Ada Lovelace", "ada@example.com");
        Env { sandbox, sb, dbx, acct, seen: Mutex::new(Vec::new()) }
    }

    /// Records what a caller could log.
    fn see<T: Debug>(&self, v: &T) {
        let text = format!("{v:?}");
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).push(text);
    }

    fn ok<T: Debug>(&self, r: Result<T, ProviderError>, what: &str) -> T {
        self.see(&r);
        match r {
            Ok(v) => v,
            Err(e) => panic!("{what}: {e:?}"),
        }
    }

    fn err<T: Debug>(&self, r: Result<T, ProviderError>, what: &str) -> ProviderError {
        self.see(&r);
        match r {
            Ok(v) => panic!("{what}: expected an error, got {v:?}"),
            Err(e) => {
                self.see(&e.to_string());
                e
            }
        }
    }

    fn minted(&self) -> TokenSet {
        let (at, rt) = self.sb.mint_tokens(&self.acct, CLIENT_ID);
        TokenSet { access_token: Secret::new(at), refresh_token: Some(Secret::new(rt)), expires_at: None }
    }

    fn locator(&self, path: &str) -> FolderLocator {
        let id = self.sb.entry(&self.acct, path).map(|e| e.id).unwrap_or_else(|| panic!("no {path}"));
        FolderLocator { folder_id: id, drive_id: None }
    }

    /// Every page of a full listing.
    async fn full_listing(&self, access: &Secret, folder: &FolderLocator) -> (Vec<Change>, String, usize) {
        let mut resume: Option<String> = None;
        let mut changes = Vec::new();
        let mut pages = 0;
        loop {
            let page: ListPage =
                self.ok(self.dbx.list_full(access, folder, resume.as_deref()).await, "list_full");
            pages += 1;
            changes.extend(page.changes);
            if !page.has_more {
                return (changes, page.cursor, pages);
            }
            resume = Some(page.cursor);
        }
    }

    async fn all_changes(
        &self,
        access: &Secret,
        folder: &FolderLocator,
        cursor: &str,
    ) -> (Vec<Change>, String) {
        let mut cursor = cursor.to_owned();
        let mut changes = Vec::new();
        loop {
            let page = self.ok(self.dbx.list_changes(access, folder, &cursor).await, "list_changes");
            changes.extend(page.changes);
            cursor = page.cursor;
            if !page.has_more {
                return (changes, cursor);
            }
        }
    }

    /// Reads a download to its end: the bytes' SHA-256 and length, and the final error if any.
    async fn drain(&self, d: Download) -> (String, u64, Option<ProviderError>) {
        let Download { item, stream, .. } = d;
        self.see(&item);
        let mut stream = stream;
        let mut h = Sha256::new();
        let mut n = 0u64;
        while let Some(r) = stream.next().await {
            match r {
                Ok(b) => {
                    n += b.len() as u64;
                    h.update(&b);
                }
                Err(e) => {
                    self.see(&e);
                    self.see(&e.to_string());
                    assert!(stream.next().await.is_none(), "the stream must end after its error");
                    return (hex::encode(h.finalize()), n, Some(e));
                }
            }
        }
        (hex::encode(h.finalize()), n, None)
    }

    fn assert_no_leaks(&self) {
        let canaries = self.sb.canaries();
        assert!(!canaries.is_empty(), "the sandbox recorded no canaries");
        let seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        assert!(!seen.is_empty());
        for text in seen.iter() {
            for c in &canaries {
                assert!(!text.contains(c.as_str()), "secret leaked into {text}");
            }
        }
        self.sandbox.shutdown();
    }
}

fn upserts(changes: &[Change]) -> Vec<&RemoteItem> {
    changes
        .iter()
        .filter_map(|c| match c {
            Change::Upsert(i) => Some(i),
            Change::Deleted { .. } => None,
        })
        .collect()
}

fn auth_request() -> AuthorizeRequest {
    AuthorizeRequest {
        state: Secret::new("state-4f1c2a"),
        pkce_challenge: CHALLENGE.into(),
        redirect_uri: REDIRECT.into(),
    }
}

/// Follows the authorize URL as a browser would, without following the redirect: returns
/// the `code` and `state` of the `Location`.
async fn authorize_in_sandbox(url: &str) -> (String, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("{e}"));
    let resp = client.get(url).send().await.unwrap_or_else(|e| panic!("{e}"));
    assert!(resp.status().is_redirection(), "authorize answered {}", resp.status());
    let location = resp
        .headers()
        .get(reqwest::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("no Location"))
        .to_owned();
    assert!(location.starts_with(REDIRECT), "{location}");
    let loc = url::Url::parse(&location).unwrap_or_else(|e| panic!("{e}"));
    let get = |k: &str| loc.query_pairs().find(|(n, _)| n == k).map(|(_, v)| v.into_owned());
    (get("code").unwrap_or_else(|| panic!("no code in {location}")), get("state").unwrap_or_default())
}

#[tokio::test]
async fn oauth_round_trip_account_and_browse() {
    let env = Env::new(2000).await;
    env.sb.set_auto_approve(true);

    let url = env.ok(env.dbx.authorize_url(&auth_request()), "authorize_url");
    let parsed = url::Url::parse(&url).unwrap_or_else(|e| panic!("{e}"));
    let q: Vec<(String, String)> = parsed.query_pairs().into_owned().collect();
    for (k, v) in [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("redirect_uri", REDIRECT),
        ("state", "state-4f1c2a"),
        ("token_access_type", "offline"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
        ("scope", "account_info.read files.content.read files.metadata.read"),
    ] {
        assert!(q.contains(&(k.to_owned(), v.to_owned())), "{k}={v} missing from {url}");
    }
    assert!(url.starts_with(&env.sb.urls().authorize_url()), "{url}");

    let (code, state) = authorize_in_sandbox(&url).await;
    assert_eq!(state, "state-4f1c2a");
    let before = chrono::Utc::now();
    let tokens = env.ok(
        env.dbx.exchange_code(&Secret::new(code.clone()), &Secret::new(VERIFIER), REDIRECT).await,
        "exchange",
    );
    assert!(tokens.refresh_token.is_some(), "offline access gives a refresh token");
    let lifetime = (tokens.expires_at.unwrap_or(before) - before).num_seconds();
    assert!((14_390..=14_410).contains(&lifetime), "expires_in 14400 → {lifetime}");

    // A code is single use.
    let again = env.dbx.exchange_code(&Secret::new(code), &Secret::new(VERIFIER), REDIRECT).await;
    assert!(matches!(env.err(again, "code reuse"), ProviderError::Reauth(_)));

    // A wrong PKCE verifier is refused.
    let (code2, _) = authorize_in_sandbox(&url).await;
    let wrong = "x".repeat(43);
    let r = env.dbx.exchange_code(&Secret::new(code2), &Secret::new(wrong), REDIRECT).await;
    assert!(matches!(env.err(r, "wrong verifier"), ProviderError::Reauth(_)));

    let account = env.ok(env.dbx.account(&tokens.access_token).await, "account");
    assert_eq!(account.account_id, env.acct.as_str());
    assert_eq!(account.display_name, "Ada Lovelace");
    assert_eq!(account.email.as_deref(), Some("ada@example.com"));

    // Folder picker: folders only, one level, drill down by id.
    env.sb.add_folder(&env.acct, "/Photos");
    env.sb.add_file(&env.acct, "/Docs/Sub/deep.txt", Content::text("deep"));
    env.sb.add_file(&env.acct, "/Docs/readme.txt", Content::text("readme"));
    env.sb.add_file(&env.acct, "/top.txt", Content::text("top"));
    let root = env.ok(env.dbx.browse_folders(&tokens.access_token, None, None).await, "browse root");
    let mut names: Vec<&str> = root.folders.iter().map(|f| f.name.as_str()).collect();
    names.sort_unstable();
    assert_eq!(names, ["Docs", "Photos"]);
    assert_eq!(root.next_page, None);
    let docs = root.folders.iter().find(|f| f.name == "Docs").unwrap_or_else(|| panic!("Docs"));
    assert_eq!(docs.path.as_deref(), Some("/Docs"));
    assert_eq!(Some(docs.locator.folder_id.clone()), env.sb.entry(&env.acct, "/Docs").map(|e| e.id));
    let sub =
        env.ok(env.dbx.browse_folders(&tokens.access_token, Some(&docs.locator), None).await, "browse Docs");
    assert_eq!(sub.folders.len(), 1);
    assert_eq!(
        (sub.folders[0].name.as_str(), sub.folders[0].path.as_deref().unwrap_or_default()),
        ("Sub", "/Docs/Sub")
    );

    // The connected folder's identity, by id; a file is not a folder; the root is answered.
    let entry = env.ok(env.dbx.folder(&tokens.access_token, &env.locator("/Docs/Sub")).await, "folder");
    assert_eq!((entry.name.as_str(), entry.path.as_deref().unwrap_or_default()), ("Sub", "/Docs/Sub"));
    let r = env.dbx.folder(&tokens.access_token, &env.locator("/top.txt")).await;
    assert!(matches!(env.err(r, "file as folder"), ProviderError::Permanent(_)));
    let root_loc = FolderLocator { folder_id: String::new(), drive_id: None };
    env.ok(env.dbx.folder(&tokens.access_token, &root_loc).await, "root folder");

    // A token the sandbox never issued.
    let r = env.dbx.account(&Secret::new("sl.not-a-real-token")).await;
    assert_eq!(env.err(r, "bad token"), ProviderError::Unauthorized);
    env.see(&tokens);
    env.assert_no_leaks();
}

#[tokio::test]
async fn browse_pages_through_many_entries() {
    let env = Env::new(3).await;
    let t = env.minted();
    for i in 0..7 {
        env.sb.add_file(&env.acct, &format!("/Pick/a{i}.txt"), Content::text("x"));
        env.sb.add_folder(&env.acct, &format!("/Pick/f{i}"));
    }
    let pick = env.locator("/Pick");
    let mut page = None::<String>;
    let mut names = Vec::new();
    let mut calls = 0;
    loop {
        let p = env.ok(env.dbx.browse_folders(&t.access_token, Some(&pick), page.as_deref()).await, "browse");
        calls += 1;
        names.extend(p.folders.into_iter().map(|f| f.name));
        match p.next_page {
            Some(next) => page = Some(next),
            None => break,
        }
        assert!(calls < 20, "paging does not end");
    }
    names.sort();
    assert_eq!(names, ["f0", "f1", "f2", "f3", "f4", "f5", "f6"]);
    assert!(calls > 1, "a limit of 3 must page");
    env.assert_no_leaks();
}

#[tokio::test]
async fn full_listing_pages_then_changes() {
    let env = Env::new(7).await;
    let t = env.minted();
    let seeded = env.sb.seed_tree(&env.acct, "/Sync", 30, 6, 1000);
    env.sb.add_file(&env.acct, "/Elsewhere/not-in-scope.txt", Content::text("outside"));
    let folder = env.locator("/Sync");

    let (changes, cursor, pages) = env.full_listing(&t.access_token, &folder).await;
    assert!(pages >= 5, "30 files + 6 folders at 7 per page: {pages} pages");
    assert!(changes.iter().all(|c| matches!(c, Change::Upsert(_))));
    let items = upserts(&changes);
    // The connected folder's own entry comes first, then its subtree, parents before children.
    assert_eq!(items[0].id, folder.folder_id);
    assert!(items[0].is_folder());
    assert_eq!(items.iter().filter(|i| i.is_folder()).count(), 1 + 5);
    assert!(
        items.iter().all(|i| i.path_lower.as_deref().unwrap_or_default().starts_with("/sync")),
        "nothing out of scope"
    );
    for f in &seeded {
        let item =
            items.iter().find(|i| i.id == f.id).unwrap_or_else(|| panic!("{} not listed", f.path_display));
        assert_eq!(item.path.as_deref(), Some(f.path_display.as_str()));
        assert_eq!(item.path_lower.as_deref(), Some(f.path_lower.as_str()));
        assert_eq!(item.name, f.name);
        assert_eq!(item.revision, f.rev);
        assert_eq!(item.content_hash, f.content_hash);
        assert_eq!(item.size, Some(1000));
        assert!(item.kind == ItemKind::File && item.modified_at.is_some());
        assert!(item.parent_ids.is_empty(), "Dropbox reports no parent ids");
    }
    for (pos, item) in items.iter().enumerate().skip(1) {
        let parent = item
            .path_lower
            .as_deref()
            .unwrap_or_default()
            .rsplit_once('/')
            .map(|(p, _)| p)
            .unwrap_or_default();
        let parent_pos = items.iter().position(|i| i.path_lower.as_deref() == Some(parent));
        assert!(parent_pos.is_some_and(|pp| pp < pos), "{:?} listed before its parent", item.path_lower);
    }

    // Nothing changed: an empty page.
    let (none, cursor) = env.all_changes(&t.access_token, &folder, &cursor).await;
    assert!(none.is_empty(), "{none:?}");

    // add / modify / rename / delete a file / delete a folder.
    let added = env.sb.add_file(&env.acct, "/Sync/new/added.txt", Content::text("added"));
    let modified_before = &seeded[0];
    let modified = env.sb.modify_file(&env.acct, &modified_before.id, Content::text("changed content"));
    let renamed_before = &seeded[1];
    let renamed = env.sb.move_entry(&env.acct, &renamed_before.id, "/Sync/d0000/renamed.bin");
    let deleted = &seeded[2];
    env.sb.delete(&env.acct, &deleted.id);
    env.sb.delete(&env.acct, "/Sync/d0004");
    env.sb.add_file(&env.acct, "/Elsewhere/also-outside.txt", Content::text("outside"));

    let (changes, cursor) = env.all_changes(&t.access_token, &folder, &cursor).await;
    let deletions: Vec<&Option<String>> = changes
        .iter()
        .filter_map(|c| match c {
            Change::Deleted { id, path_lower } => {
                assert_eq!(id, &None, "Dropbox deletions carry no id");
                Some(path_lower)
            }
            Change::Upsert(_) => None,
        })
        .collect();
    for gone in [&renamed_before.path_lower, &deleted.path_lower, &"/sync/d0004".to_owned()] {
        assert!(deletions.contains(&&Some(gone.clone())), "no deletion of {gone}: {changes:?}");
    }
    assert!(
        !deletions.iter().any(|d| d.as_deref().is_some_and(|p| p.starts_with("/sync/d0004/"))),
        "a deleted folder is one entry: {deletions:?}"
    );
    let ups = upserts(&changes);
    let find = |id: &str| ups.iter().find(|i| i.id == id).copied();
    let a = find(&added.id).unwrap_or_else(|| panic!("added file missing: {changes:?}"));
    assert_eq!(a.path.as_deref(), Some("/Sync/new/added.txt"));
    assert_eq!(
        a.content_hash.as_deref(),
        Some(extconn_providers::DropboxContentHasher::digest(b"added").as_str())
    );
    let m = find(&modified.id).unwrap_or_else(|| panic!("modified file missing"));
    assert_eq!(m.revision, modified.rev);
    assert_ne!(m.revision, modified_before.rev);
    assert_eq!(m.size, Some(15));
    let r = find(&renamed.id).unwrap_or_else(|| panic!("renamed file missing"));
    assert_eq!(
        (r.path.as_deref().unwrap_or_default(), r.name.as_str()),
        ("/Sync/d0000/renamed.bin", "renamed.bin")
    );
    assert_eq!(r.content_hash, renamed_before.content_hash, "a rename keeps the content");
    assert!(
        ups.iter().all(|i| i.path_lower.as_deref().unwrap_or_default().starts_with("/sync/")),
        "nothing out of scope"
    );

    // Drained: nothing more.
    let (none, _) = env.all_changes(&t.access_token, &folder, &cursor).await;
    assert!(none.is_empty());
    env.assert_no_leaks();
}

#[tokio::test]
async fn cursor_reset_and_folder_gone() {
    let env = Env::new(4).await;
    let t = env.minted();
    env.sb.seed_tree(&env.acct, "/Sync", 10, 5, 10);
    let folder = env.locator("/Sync");
    let first = env.ok(env.dbx.list_full(&t.access_token, &folder, None).await, "first page");
    assert!(first.has_more);
    let (_, cursor, _) = env.full_listing(&t.access_token, &folder).await;

    env.sb.reset_cursors();
    let r = env.dbx.list_changes(&t.access_token, &folder, &cursor).await;
    assert_eq!(env.err(r, "stale cursor"), ProviderError::CursorReset);
    let r = env.dbx.list_full(&t.access_token, &folder, Some(&first.cursor)).await;
    assert_eq!(env.err(r, "stale page cursor"), ProviderError::CursorReset);
    let r = env.dbx.list_changes(&t.access_token, &folder, "garbage-cursor").await;
    let e = env.err(r, "garbage cursor");
    assert!(matches!(e, ProviderError::CursorReset | ProviderError::Permanent(_)), "{e:?}");

    // Start over, then the connected folder disappears.
    let (_, cursor, _) = env.full_listing(&t.access_token, &folder).await;
    env.sb.delete(&env.acct, "/Sync");
    let r = env.dbx.folder(&t.access_token, &folder).await;
    assert_eq!(env.err(r, "folder gone"), ProviderError::NotFound);
    let r = env.dbx.list_full(&t.access_token, &folder, None).await;
    assert_eq!(env.err(r, "list gone folder"), ProviderError::NotFound);
    let r = env.dbx.list_changes(&t.access_token, &folder, &cursor).await;
    assert_eq!(env.err(r, "changes of gone folder"), ProviderError::NotFound);
    env.assert_no_leaks();
}

#[tokio::test]
async fn download_is_verified_and_names_survive_the_header() {
    let env = Env::new(2000).await;
    let t = env.minted();
    let name = "Ünïcødé 日本 😀.bin";
    let content = Content::generated(9 * 1024 * 1024 + 17, 42);
    let info = env.sb.add_file(&env.acct, &format!("/Sync/{name}"), content);
    let folder = env.locator("/Sync");
    let (changes, _, _) = env.full_listing(&t.access_token, &folder).await;
    let listed = upserts(&changes).into_iter().find(|i| i.id == info.id).cloned();
    let listed = listed.unwrap_or_else(|| panic!("not listed"));
    assert_eq!(listed.name, name);

    let d = env.ok(env.dbx.download(&t.access_token, &DownloadRequest::whole(&listed)).await, "download");
    assert_eq!(d.item.id, info.id);
    assert_eq!(d.item.name, name, "Dropbox-API-Result decoded");
    assert_eq!(d.item.path, Some(format!("/Sync/{name}")));
    assert_eq!(d.item.content_hash, info.content_hash);
    assert_eq!(d.item.size, info.size);
    assert_eq!(d.item.revision, info.rev);
    let (sha, n, err) = env.drain(d).await;
    assert_eq!(err, None);
    assert_eq!(n, 9 * 1024 * 1024 + 17);
    assert_eq!(sha, env.sb.sha256_of(&env.acct, &info.id));

    // The served metadata wins over the listing's: modified since listed.
    let newer = env.sb.modify_file(&env.acct, &info.id, Content::text("newer"));
    let d =
        env.ok(env.dbx.download(&t.access_token, &DownloadRequest::whole(&listed)).await, "download newer");
    assert_eq!(d.item.revision, newer.rev);
    let (_, n, err) = env.drain(d).await;
    assert_eq!((n, err), (5, None));

    // An empty file.
    let empty = env.sb.add_file(&env.acct, "/Sync/empty.txt", Content::text(""));
    let item = RemoteItem { id: empty.id.clone(), ..listed.clone() };
    let d = env.ok(env.dbx.download(&t.access_token, &DownloadRequest::whole(&item)).await, "download empty");
    let (_, n, err) = env.drain(d).await;
    assert_eq!((n, err), (0, None));

    // Gone → NotFound; a folder → Permanent.
    env.sb.delete(&env.acct, &info.id);
    let r = env.dbx.download(&t.access_token, &DownloadRequest::whole(&listed)).await;
    assert_eq!(env.err(r, "deleted file"), ProviderError::NotFound);
    let as_folder = RemoteItem { id: folder.folder_id.clone(), ..listed.clone() };
    let r = env.dbx.download(&t.access_token, &DownloadRequest::whole(&as_folder)).await;
    assert!(matches!(env.err(r, "folder download"), ProviderError::Permanent(_)));
    env.assert_no_leaks();
}

#[tokio::test]
async fn broken_bodies_never_end_cleanly() {
    let env = Env::new(2000).await;
    let t = env.minted();
    let size = 3 * 1024 * 1024 + 5;
    let info = env.sb.add_file(&env.acct, "/Sync/f.bin", Content::generated(size, 7));
    let item = RemoteItem {
        id: info.id.clone(),
        drive_id: None,
        parent_ids: vec![],
        name: info.name.clone(),
        path: Some(info.path_display.clone()),
        path_lower: Some(info.path_lower.clone()),
        kind: ItemKind::File,
        mime_type: None,
        revision: info.rev.clone(),
        content_hash: info.content_hash.clone(),
        size: info.size,
        modified_at: None,
    };

    // Connection cut mid-body (Content-Length promised more).
    env.sb.inject(Endpoint::Download, Fault::Truncate { after_bytes: 1024 * 1024 }, 1);
    let d = env.ok(env.dbx.download(&t.access_token, &DownloadRequest::whole(&item)).await, "truncated");
    let (_, n, err) = env.drain(d).await;
    assert!(n < size, "{n}");
    assert!(
        matches!(err, Some(ProviderError::Transient(_) | ProviderError::Integrity(_))),
        "truncated body must end in an error: {err:?}"
    );

    // Same length, one byte flipped: only the hash can tell.
    env.sb.inject(Endpoint::Download, Fault::CorruptSameLength, 1);
    let d = env.ok(env.dbx.download(&t.access_token, &DownloadRequest::whole(&item)).await, "corrupt");
    let (_, n, err) = env.drain(d).await;
    assert_eq!(n, size);
    assert!(matches!(&err, Some(ProviderError::Integrity(m)) if m.contains("content_hash")), "{err:?}");

    // Chunked, no Content-Length, ends cleanly half-way: only the size can tell.
    env.sb.inject(Endpoint::Download, Fault::ShortChunked, 1);
    let d = env.ok(env.dbx.download(&t.access_token, &DownloadRequest::whole(&item)).await, "short chunked");
    let (_, n, err) = env.drain(d).await;
    assert!(n < size);
    assert!(matches!(&err, Some(ProviderError::Integrity(m)) if m.contains("short")), "{err:?}");

    // And the next, healthy download verifies.
    let d = env.ok(env.dbx.download(&t.access_token, &DownloadRequest::whole(&item)).await, "healthy");
    let (sha, n, err) = env.drain(d).await;
    assert_eq!((n, err), (size, None));
    assert_eq!(sha, env.sb.sha256_of(&env.acct, &info.id));
    env.assert_no_leaks();
}

#[tokio::test]
async fn rate_limits_and_server_errors() {
    let env = Env::new(2000).await;
    let t = env.minted();
    env.sb.add_file(&env.acct, "/Sync/a.txt", Content::text("a"));
    let folder = env.locator("/Sync");

    env.sb.inject(Endpoint::ListFolder, Fault::RateLimit { retry_after_secs: 17 }, 1);
    let r = env.dbx.list_full(&t.access_token, &folder, None).await;
    assert_eq!(env.err(r, "429"), ProviderError::rate_limited(Some(Duration::from_secs(17))));

    env.sb.inject(Endpoint::ListFolder, Fault::ServerError(503), 1);
    let r = env.dbx.list_full(&t.access_token, &folder, None).await;
    assert!(matches!(env.err(r, "503"), ProviderError::RateLimited { .. }));

    env.sb.inject(Endpoint::ListFolder, Fault::ServerError(500), 1);
    let r = env.dbx.list_full(&t.access_token, &folder, None).await;
    assert!(matches!(env.err(r, "500"), ProviderError::Transient(_)));

    let (_, cursor, _) = env.full_listing(&t.access_token, &folder).await;
    env.sb.inject(Endpoint::ListFolderContinue, Fault::RateLimit { retry_after_secs: 3 }, 1);
    let r = env.dbx.list_changes(&t.access_token, &folder, &cursor).await;
    assert_eq!(env.err(r, "429 continue"), ProviderError::rate_limited(Some(Duration::from_secs(3))));

    let entry = env.sb.entry(&env.acct, "/Sync/a.txt").unwrap_or_else(|| panic!("a.txt"));
    let item = RemoteItem {
        id: entry.id,
        drive_id: None,
        parent_ids: vec![],
        name: entry.name,
        path: Some(entry.path_display),
        path_lower: Some(entry.path_lower),
        kind: ItemKind::File,
        mime_type: None,
        revision: entry.rev,
        content_hash: entry.content_hash,
        size: entry.size,
        modified_at: None,
    };
    env.sb.inject(Endpoint::Download, Fault::RateLimit { retry_after_secs: 60 }, 1);
    let r = env.dbx.download(&t.access_token, &DownloadRequest::whole(&item)).await;
    assert_eq!(env.err(r, "429 download"), ProviderError::rate_limited(Some(Duration::from_secs(60))));

    env.sb.inject(Endpoint::GetCurrentAccount, Fault::ExpiredToken, 1);
    let r = env.dbx.account(&t.access_token).await;
    assert_eq!(env.err(r, "expired"), ProviderError::Unauthorized);

    // The token endpoint: the adapter surfaces the status instead of a parse error.
    env.sb.inject(Endpoint::Token, Fault::ServerError(503), 1);
    let r = env.dbx.refresh(&t).await;
    assert!(matches!(env.err(r, "token 503"), ProviderError::RateLimited { .. }));
    env.sb.inject(Endpoint::Token, Fault::ServerError(500), 1);
    let r = env.dbx.refresh(&t).await;
    assert!(matches!(env.err(r, "token 500"), ProviderError::Transient(_)));
    env.sb.inject(Endpoint::Token, Fault::RateLimit { retry_after_secs: 9 }, 1);
    let r = env.dbx.refresh(&t).await;
    assert_eq!(env.err(r, "token 429"), ProviderError::rate_limited(Some(Duration::from_secs(9))));
    env.sb.inject(Endpoint::Token, Fault::InvalidGrant, 1);
    let r = env.dbx.refresh(&t).await;
    assert_eq!(env.err(r, "invalid_grant"), ProviderError::Reauth("invalid_grant".into()));

    // Transport failure: a server that is gone.
    let gone = Dropbox::new(DropboxConfig::new(CLIENT_ID, Secret::new(CLIENT_SECRET)).with_bases(
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
        "http://127.0.0.1:9",
    ));
    let r = gone.account(&t.access_token).await;
    assert!(matches!(env.err(r, "no server"), ProviderError::Transient(_)));
    let r = gone.refresh(&t).await;
    assert!(matches!(env.err(r, "no token server"), ProviderError::Transient(_)));
    env.assert_no_leaks();
}

#[tokio::test]
async fn refresh_keeps_the_refresh_token_and_revoke_ends_the_grant() {
    let env = Env::new(2000).await;
    let t = env.minted();
    env.sb.expire_access_tokens();
    let r = env.dbx.account(&t.access_token).await;
    assert_eq!(env.err(r, "expired token"), ProviderError::Unauthorized);

    let fresh = env.ok(env.dbx.refresh(&t).await, "refresh");
    assert_eq!(fresh.refresh_token, t.refresh_token, "Dropbox does not rotate refresh tokens");
    assert_ne!(fresh.access_token, t.access_token);
    assert!(fresh.expires_at.is_some());
    env.ok(env.dbx.account(&fresh.access_token).await, "account after refresh");

    env.ok(env.dbx.revoke(&fresh).await, "revoke");
    let r = env.dbx.account(&fresh.access_token).await;
    assert_eq!(env.err(r, "revoked access"), ProviderError::Unauthorized);
    let r = env.dbx.refresh(&fresh).await;
    assert_eq!(env.err(r, "refresh after revoke"), ProviderError::Reauth("invalid_grant".into()));
    // Revoking again (access refused, grant dead) is not an error.
    env.ok(env.dbx.revoke(&fresh).await, "revoke again");

    let no_rt = TokenSet { refresh_token: None, ..fresh.clone() };
    let r = env.dbx.refresh(&no_rt).await;
    assert!(matches!(env.err(r, "no refresh token"), ProviderError::Reauth(_)));

    // Revoke with an expired access token still ends the grant (refresh, then revoke).
    let t2 = env.minted();
    env.sb.expire_access_tokens();
    env.ok(env.dbx.revoke(&t2).await, "revoke with expired access");
    let r = env.dbx.refresh(&t2).await;
    assert_eq!(env.err(r, "refresh after revoke 2"), ProviderError::Reauth("invalid_grant".into()));
    env.assert_no_leaks();
}

/// Resident set size of this process, from /proc (Linux). `None` elsewhere.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_256_mib_download_streams_in_bounded_memory() {
    const SIZE: u64 = 256 * 1024 * 1024;
    let env = Env::new(2000).await;
    let t = env.minted();
    let info = env.sb.add_file(&env.acct, "/Big/huge.bin", Content::generated(SIZE, 0xB16));
    let item = RemoteItem {
        id: info.id.clone(),
        drive_id: None,
        parent_ids: vec![],
        name: info.name.clone(),
        path: Some(info.path_display.clone()),
        path_lower: Some(info.path_lower.clone()),
        kind: ItemKind::File,
        mime_type: None,
        revision: info.rev.clone(),
        content_hash: info.content_hash.clone(),
        size: info.size,
        modified_at: None,
    };
    let baseline = rss_bytes();
    let d = env.ok(env.dbx.download(&t.access_token, &DownloadRequest::whole(&item)).await, "download");
    let mut stream = d.stream;
    let mut n = 0u64;
    let mut peak = baseline.unwrap_or(0);
    let mut chunks = 0u64;
    let mut last: Option<Result<Bytes, ProviderError>> = None;
    while let Some(r) = stream.next().await {
        match &r {
            Ok(b) => n += b.len() as u64,
            Err(e) => env.see(e),
        }
        chunks += 1;
        if chunks.is_multiple_of(64) {
            peak = peak.max(rss_bytes().unwrap_or(0));
        }
        let failed = r.is_err();
        last = Some(r);
        if failed {
            break;
        }
    }
    assert!(matches!(last, Some(Ok(_))), "the download must end cleanly: {last:?}");
    assert_eq!(n, SIZE);
    if let Some(base) = baseline {
        let growth = peak.saturating_sub(base);
        assert!(growth < 64 * 1024 * 1024, "RSS grew by {} MiB while streaming 256 MiB", growth >> 20);
    }
    env.assert_no_leaks();
}
