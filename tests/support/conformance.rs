//! The provider conformance suite (ARCHITECTURE §7): one suite that every connector, pointed at
//! its sandbox, must pass. It speaks to the sandbox only through the provider-neutral
//! [`ProviderControl`] and to the connector only through the [`Provider`] port, and it runs the
//! real engine on in-memory stores, so each case checks what a user would notice:
//! nothing lost (every live file imported with its exact bytes), nothing duplicated (no object
//! written twice), moved files keep their asset, deleted files are `source_deleted` with the
//! asset kept.
//!
//! A provider joins by adding a row to [`subjects`] (its sandbox service and how to build its
//! connector from the sandbox's URLs); `tests/tests/conformance.rs` runs every case on every row.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use extconn_core::ports::provider::AuthorizeRequest;
use extconn_core::ports::{Clock, EntryKind, FolderEntry, Provider, ProviderError};
use extconn_core::testkit::MemoryBench;
use extconn_core::{
    AssetEventKind, ConnKey, FolderLocator, Grant, Item, ItemState, Ports, ProviderKind, RunStatus, Secret,
    TokenSet,
};
use extconn_sandbox::{Content, Fault, OAuthClient, Op, ProviderControl, Sandbox, SandboxConfig, Service};

pub const CLIENT_ID: &str = "conformance-app";
pub const CLIENT_SECRET: &str = "CANARY-CONFORMANCE-SECRET-51c2";
pub const REDIRECT: &str = "http://127.0.0.1/v1/oauth/callback";

/// Builds a connector from the sandbox's base URLs (by host name) and the test clock.
pub type BuildConnector = fn(&BTreeMap<String, String>, Arc<dyn Clock>) -> Arc<dyn Provider>;

/// A connector under test: its sandbox and how to aim it there.
pub struct Subject {
    pub service: Service,
    pub kind: ProviderKind,
    /// The connector, configured with the sandbox's base URLs, small pages and the test clock.
    pub build: BuildConnector,
    /// The provider can revoke a grant (Microsoft cannot: a disconnect deletes the tokens).
    pub revocable: bool,
}

/// Every connector with a sandbox.
pub fn subjects() -> Vec<Subject> {
    vec![
        Subject {
            service: Service::Dropbox,
            kind: ProviderKind::Dropbox,
            build: |urls, clock| {
                let url =
                    |k: &str| urls.get(k).cloned().unwrap_or_else(|| panic!("the sandbox has no {k} URL"));
                let mut cfg = extconn_providers::DropboxConfig::new(CLIENT_ID, Secret::new(CLIENT_SECRET))
                    .with_bases(url("www"), url("api"), url("content"));
                cfg.page_limit = 3;
                cfg.clock = clock;
                Arc::new(extconn_providers::Dropbox::new(cfg))
            },
            revocable: true,
        },
        Subject {
            service: Service::GoogleDrive,
            kind: ProviderKind::GoogleDrive,
            build: |urls, clock| {
                let url =
                    |k: &str| urls.get(k).cloned().unwrap_or_else(|| panic!("the sandbox has no {k} URL"));
                let mut cfg =
                    extconn_providers::GoogleDriveConfig::new(CLIENT_ID, Secret::new(CLIENT_SECRET))
                        .with_bases(url("accounts"), url("token"), url("api"));
                cfg.page_size = 3;
                cfg.clock = clock;
                Arc::new(extconn_providers::GoogleDrive::new(cfg))
            },
            revocable: true,
        },
        Subject {
            service: Service::Sharepoint,
            kind: ProviderKind::Sharepoint,
            build: |urls, clock| {
                let url =
                    |k: &str| urls.get(k).cloned().unwrap_or_else(|| panic!("the sandbox has no {k} URL"));
                let mut cfg = extconn_providers::SharePointConfig::new(CLIENT_ID, Secret::new(CLIENT_SECRET))
                    .with_bases(url("login"), url("graph"));
                cfg.page_size = 3;
                cfg.clock = clock;
                Arc::new(extconn_providers::SharePoint::new(cfg))
            },
            revocable: false,
        },
    ]
}

/// The row of `service`.
pub fn subject(service: Service) -> Subject {
    subjects().into_iter().find(|s| s.service == service).unwrap_or_else(|| panic!("no subject {service:?}"))
}

/// One connection on a fresh sandbox account, synced by the real engine on in-memory ports.
pub struct Bench {
    pub name: String,
    pub sandbox: Sandbox,
    pub control: Arc<dyn ProviderControl>,
    pub provider: Arc<dyn Provider>,
    pub account: String,
    /// The connected folder, and a folder outside it.
    pub folder: String,
    pub outside: String,
    pub mem: MemoryBench,
    pub ports: Ports,
    pub conn: ConnKey,
    /// The connection's grant (another connection of the same account reuses it).
    pub grant: Grant,
    pub tokens: TokenSet,
    /// `EngineConfig::transfer_concurrency` of [`Bench::sync`]. 1 by default: the
    /// provider-specific suites queue faults per endpoint (FIFO) and expect them to land on
    /// files in listing order, which only holds one file at a time (with several in flight a
    /// queued fault goes to whichever request arrives first). The model test sets 8.
    pub transfer_concurrency: usize,
}

impl Bench {
    pub async fn new(subject: &Subject) -> Bench {
        let mem = MemoryBench::new();
        let sandbox_clock = mem.clock.clone();
        let now: extconn_sandbox::TimeSource = Arc::new(move || SystemTime::from(sandbox_clock.now()));
        let sandbox = Sandbox::start(SandboxConfig {
            clients: vec![OAuthClient {
                service: subject.service,
                client_id: CLIENT_ID.into(),
                client_secret: CLIENT_SECRET.into(),
                redirect_uris: vec![REDIRECT.into()],
            }],
            now: Some(now),
            ..Default::default()
        })
        .await;
        let control = sandbox.control(subject.service);
        let account = control.create_account("Conformance", "conformance@example.com");
        let root = control.root(&account).expect("root");
        let folder = control.add_folder(&account, &root, "Connected").expect("folder").id;
        let outside = control.add_folder(&account, &root, "Outside").expect("folder").id;
        let provider = (subject.build)(&control.urls(), mem.clock.clone());
        let ports = mem.ports(vec![provider.clone()]);
        let minted = control.mint_tokens(&account, CLIENT_ID).expect("tokens");
        let tokens = TokenSet {
            access_token: Secret::new(minted.access_token.clone()),
            refresh_token: Some(Secret::new(minted.refresh_token.clone())),
            expires_at: Some(mem.clock.now() + chrono::Duration::hours(1)),
        };
        let grant = mem.grant(subject.kind, &account, &tokens).await;
        let locator =
            FolderLocator { folder_id: folder.clone(), drive_id: control.drive_of(&account, &folder) };
        let conn = mem.connect_at(&grant, locator, "Connected").await;
        Bench {
            name: format!("{:?}", subject.service),
            sandbox,
            control,
            provider,
            account,
            folder,
            outside,
            mem,
            ports,
            conn,
            grant,
            tokens,
            transfer_concurrency: 1,
        }
    }

    /// One sync job, run to its end (`Finished`) with a 15-minute deadline.
    pub async fn sync(&self) -> RunStatus {
        let job = extconn_core::Job {
            client_id: self.conn.client_id.clone(),
            connection_id: self.conn.connection_id.clone(),
            trigger: extconn_core::Trigger::Schedule,
            run_id: None,
            requested_by: None,
            continuation: false,
            purge: false,
        };
        let config = extconn_core::engine::EngineConfig {
            transfer_concurrency: self.transfer_concurrency,
            ..Default::default()
        };
        let engine = extconn_core::engine::Engine::new(self.ports.clone(), config);
        let deadline = self.mem.clock.now() + chrono::Duration::minutes(15);
        match engine.run_job(&job, deadline).await.expect("sync step") {
            extconn_core::engine::JobOutcome::Finished { status, .. } => status,
            other => panic!("the sync did not finish: {other:?}"),
        }
    }

    pub fn items(&self) -> BTreeMap<String, Item> {
        self.mem.store.all_items(&self.conn).into_iter().map(|i| (i.provider_id.clone(), i)).collect()
    }

    pub fn add_file(&self, parent: &str, name: &str, text: &str) -> String {
        self.control.add_file(&self.account, parent, name, Content::text(text)).expect("add file").id
    }

    pub fn add_folder(&self, parent: &str, name: &str) -> String {
        self.control.add_folder(&self.account, parent, name).expect("add folder").id
    }

    /// The suite's promises, against the sandbox's truth.
    pub fn check(&self, case: &str) {
        let ctx = format!("{} / {case}", self.name);
        let items = self.items();
        let objects = self.mem.sink.objects();
        let live = self.control.list_files(&self.account, &self.folder).expect("list files");
        let live_ids: BTreeSet<&str> = live.iter().map(|n| n.id.as_str()).collect();
        for f in &live {
            let item = items.get(&f.id).unwrap_or_else(|| panic!("{ctx}: lost: {} has no item", f.name));
            assert_eq!(
                item.state,
                ItemState::Imported,
                "{ctx}: {} is {:?} ({:?})",
                f.name,
                item.state,
                item.reason
            );
            assert_eq!(item.name, f.name, "{ctx}: the item's name follows the source");
            if let Some(p) = &f.path {
                assert_eq!(&item.path, p, "{ctx}: the item's path follows the source");
            }
            let key = item.asset_key.as_ref().unwrap_or_else(|| panic!("{ctx}: {} has no asset", f.name));
            let obj = objects
                .get(key)
                .unwrap_or_else(|| panic!("{ctx}: lost: the object of {} is missing", f.name));
            assert_eq!(Some(&obj.sha256), f.sha256.as_ref(), "{ctx}: {} differs from the source", f.name);
        }
        for (id, item) in &items {
            if item.is_folder() || live_ids.contains(id.as_str()) {
                continue;
            }
            assert!(
                matches!(item.state, ItemState::SourceDeleted | ItemState::Skipped),
                "{ctx}: {} left the folder but is {:?}",
                item.path,
                item.state
            );
            if let Some(key) = &item.asset_key {
                assert!(objects.contains_key(key), "{ctx}: the asset of deleted {} was not kept", item.path);
            }
        }
        self.mem.assert_each_object_written_once(&ctx);
    }

    /// Syncs, expects success, checks.
    pub async fn synced(&self, case: &str) {
        assert_eq!(self.sync().await, RunStatus::Succeeded, "{} / {case}", self.name);
        self.check(case);
    }

    fn asset_of(&self, id: &str) -> Option<String> {
        self.items().get(id).and_then(|i| i.asset_key.clone())
    }

    fn state_of(&self, id: &str) -> Option<ItemState> {
        self.items().get(id).map(|i| i.state)
    }
}

/// Authorize (auto-approved consent) → code → exchange → account → refresh → revoke.
pub async fn oauth_round_trip(subject: &Subject) {
    let b = Bench::new(subject).await;
    b.control.set_auto_approve(true);
    let verifier = "conformance-verifier-0123456789-0123456789-0123456789";
    let challenge = {
        use base64::Engine as _;
        use sha2::{Digest, Sha256};
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
    };
    let url = b
        .provider
        .authorize_url(&AuthorizeRequest {
            state: Secret::new("conformance-state"),
            pkce_challenge: challenge,
            redirect_uri: REDIRECT.into(),
        })
        .expect("authorize url");
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let resp = http.get(&url).send().await.expect("authorize");
    let location =
        resp.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let back =
        url::Url::parse(&location).unwrap_or_else(|e| panic!("{}: redirect {location:?}: {e}", b.name));
    assert!(location.starts_with(REDIRECT), "{}: back to the registered redirect URI", b.name);
    let q: BTreeMap<String, String> = back.query_pairs().into_owned().collect();
    assert_eq!(q.get("state").map(String::as_str), Some("conformance-state"), "{}: state echoed", b.name);
    let code = q.get("code").cloned().unwrap_or_else(|| panic!("{}: no code in {location}", b.name));
    let tokens = b
        .provider
        .exchange_code(&Secret::new(code.clone()), &Secret::new(verifier), REDIRECT)
        .await
        .unwrap_or_else(|e| panic!("{}: exchange: {e}", b.name));
    let again = b.provider.exchange_code(&Secret::new(code), &Secret::new(verifier), REDIRECT).await;
    assert!(matches!(again, Err(ProviderError::Reauth(_))), "{}: a code works once: {again:?}", b.name);
    let who =
        b.provider.account(&tokens.access_token).await.unwrap_or_else(|e| panic!("{}: account: {e}", b.name));
    assert_eq!(who.account_id, b.account, "{}: the account behind the token", b.name);
    let fresh = b.provider.refresh(&tokens).await.unwrap_or_else(|e| panic!("{}: refresh: {e}", b.name));
    assert!(fresh.refresh_token.is_some(), "{}: a refresh keeps (or rotates) the refresh token", b.name);
    b.provider.revoke(&fresh).await.unwrap_or_else(|e| panic!("{}: revoke: {e}", b.name));
    let after = b.provider.refresh(&fresh).await;
    if subject.revocable {
        assert!(
            matches!(after, Err(ProviderError::Reauth(_))),
            "{}: revoked means reauth: {after:?}",
            b.name
        );
    } else {
        // Nothing to revoke at the provider: the tokens live until deleted (the grant's secret).
        assert!(after.is_ok(), "{}: revoke is a no-op here: {after:?}", b.name);
    }
}

/// The picker: the top level shows the folders, drilling down by locator, the folder's identity.
pub async fn picker(subject: &Subject) {
    let b = Bench::new(subject).await;
    let sub = b.add_folder(&b.folder, "Sub");
    b.add_file(&b.folder, "not-a-folder.txt", "x");
    let access = &b.tokens.access_token;
    // The folder sits in the account's root: listed at the top level (Dropbox), or one level
    // below a drive or site entry there (Google Drive's "My Drive", SharePoint's sites).
    let top = browse_all(&b, None).await;
    let mut connected = top.iter().find(|f| f.locator.folder_id == b.folder).cloned();
    for container in top.iter().filter(|f| f.kind != EntryKind::Folder) {
        if connected.is_some() {
            break;
        }
        let inside = browse_all(&b, Some(&container.locator)).await;
        connected = inside.into_iter().find(|f| f.locator.folder_id == b.folder);
    }
    let connected = connected.unwrap_or_else(|| panic!("{}: the picker reaches the folder", b.name));
    assert_eq!(connected.name, "Connected");
    assert!(connected.selectable);
    let inner = b.provider.browse_folders(access, Some(&connected.locator), None).await.expect("browse down");
    let names: Vec<&str> = inner.folders.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["Sub"], "{}: one level of folders only", b.name);
    assert_eq!(inner.folders[0].locator.folder_id, sub);
    let entry = b.provider.folder(access, &connected.locator).await.expect("folder");
    assert_eq!(entry.name, "Connected");
    let item = b.provider.item(access, &connected.locator).await.expect("item");
    assert!(item.is_folder());
}

/// Every entry of one picker level, following its pages.
async fn browse_all(b: &Bench, parent: Option<&FolderLocator>) -> Vec<FolderEntry> {
    let mut entries = Vec::new();
    let mut page = None;
    loop {
        let p = b
            .provider
            .browse_folders(&b.tokens.access_token, parent, page.as_deref())
            .await
            .unwrap_or_else(|e| panic!("{}: browse {parent:?}: {e}", b.name));
        entries.extend(p.folders);
        match p.next_page {
            Some(next) => page = Some(next),
            None => return entries,
        }
    }
}

/// Initial listing, then every change kind, each checked.
pub async fn changes(subject: &Subject) {
    let b = Bench::new(subject).await;
    let caps = b.provider.capabilities();
    let sub = b.add_folder(&b.folder, "Sub");
    let a = b.add_file(&b.folder, "a.jpg", "a");
    let c = b.add_file(&sub, "c.jpg", "c");
    b.control.seed_tree(&b.account, &sub, 7, 3, 100).expect("seed");
    b.synced("initial listing").await;

    let added = b.add_file(&sub, "added.png", "added");
    b.synced("add").await;
    assert_eq!(b.state_of(&added), Some(ItemState::Imported));

    let before = b.asset_of(&a);
    b.control.modify_file(&b.account, &a, Content::text("a, modified")).expect("modify");
    b.synced("modify").await;
    assert_ne!(b.asset_of(&a), before, "{}: a new content version is a new asset", b.name);

    let before = b.asset_of(&c);
    b.control.move_entry(&b.account, &c, None, Some("c-renamed.jpg")).expect("rename");
    b.synced("rename").await;
    assert_eq!(b.asset_of(&c), before, "{}: a renamed file keeps its asset", b.name);

    let inner = b.add_folder(&b.folder, "Inner");
    b.control.move_entry(&b.account, &c, Some(&inner), None).expect("move within");
    b.synced("move within").await;
    assert_eq!(b.asset_of(&c), before, "{}: a moved file keeps its asset", b.name);

    b.control.move_entry(&b.account, &sub, Some(&b.outside), None).expect("move out");
    b.synced("move a folder out").await;
    assert_eq!(b.state_of(&added), Some(ItemState::SourceDeleted), "{}: moved out with its folder", b.name);

    b.control.move_entry(&b.account, &sub, Some(&b.folder), None).expect("move in");
    let objects = b.mem.sink.objects().len();
    b.synced("move a folder in with its subtree").await;
    assert_eq!(b.state_of(&added), Some(ItemState::Imported));
    assert_eq!(b.mem.sink.objects().len(), objects, "{}: moved back in: the same assets", b.name);

    let elsewhere = b.add_folder(&b.outside, "Incoming");
    let incoming = b.add_file(&elsewhere, "new-from-outside.jpg", "incoming");
    b.synced("unrelated change outside").await;
    assert_eq!(b.state_of(&incoming), None, "{}: nothing outside the folder is recorded", b.name);
    b.control.move_entry(&b.account, &elsewhere, Some(&b.folder), None).expect("move in");
    b.synced("move a new folder in").await;
    assert_eq!(
        b.state_of(&incoming),
        Some(ItemState::Imported),
        "{}: a folder moved in brings its subtree",
        b.name
    );

    b.control.delete(&b.account, &a).expect("delete");
    b.synced("delete a file").await;
    assert_eq!(b.state_of(&a), Some(ItemState::SourceDeleted));

    b.control.delete(&b.account, &inner).expect("delete folder");
    b.synced("delete a folder").await;
    assert_eq!(
        b.state_of(&c),
        Some(ItemState::SourceDeleted),
        "{}: a deleted folder takes its files",
        b.name
    );

    let logo = b.add_file(&b.folder, "logo.png", "old logo");
    b.synced("before a path is reused").await;
    b.control.delete(&b.account, &logo).expect("delete");
    let new_logo = b.add_file(&b.folder, "logo.png", "new logo");
    b.synced("a path reused by a new file").await;
    assert_eq!(b.state_of(&logo), Some(ItemState::SourceDeleted), "{}: the old file is gone", b.name);
    assert_eq!(b.state_of(&new_logo), Some(ItemState::Imported));

    let dup = b.control.add_file(&b.account, &b.folder, "logo.png", Content::text("a second logo"));
    if caps.unique_paths {
        assert!(dup.is_err(), "{}: a unique-path provider refuses a duplicate name", b.name);
    } else {
        let dup = dup.expect("duplicate name").id;
        b.synced("duplicate names").await;
        assert_eq!(b.state_of(&dup), Some(ItemState::Imported), "{}: two files, one name: two items", b.name);
        assert_eq!(b.state_of(&new_logo), Some(ItemState::Imported));
    }
}

/// Two files swap names between syncs: two renames, no deletion, no new asset.
pub async fn swapped_names(subject: &Subject) {
    let b = Bench::new(subject).await;
    let x = b.add_file(&b.folder, "x.txt", "first");
    let y = b.add_file(&b.folder, "y.txt", "second");
    b.synced("before the swap").await;
    let (ax, ay) = (b.asset_of(&x), b.asset_of(&y));
    b.control.move_entry(&b.account, &x, None, Some("tmp.txt")).expect("rename");
    b.control.move_entry(&b.account, &y, None, Some("x.txt")).expect("rename");
    b.control.move_entry(&b.account, &x, None, Some("y.txt")).expect("rename");
    b.synced("swapped names").await;
    assert_eq!((b.asset_of(&x), b.asset_of(&y)), (ax, ay), "{}: renames keep their assets", b.name);
    let deleted = b.mem.events.all().into_iter().filter(|e| e.kind == AssetEventKind::SourceDeleted).count();
    assert_eq!(deleted, 0, "{}: a rename is never reported as a deletion", b.name);
}

/// An expired cursor: a full re-listing, diffed against the items — no duplicates, no mass delete.
pub async fn cursor_reset(subject: &Subject) {
    let b = Bench::new(subject).await;
    for i in 0..5 {
        b.add_file(&b.folder, &format!("f{i}.txt"), &format!("{i}"));
    }
    b.synced("before the reset").await;
    let gone = b.add_file(&b.folder, "gone.txt", "gone");
    b.synced("one more").await;
    b.control.delete(&b.account, &gone).expect("delete");
    b.add_file(&b.folder, "after.txt", "after");
    b.control.reset_cursors();
    b.synced("after a cursor reset").await;
    assert_eq!(b.state_of(&gone), Some(ItemState::SourceDeleted));
}

/// A 429 with Retry-After on the change feed and on a download: waited out, nothing lost.
pub async fn rate_limit(subject: &Subject) {
    let b = Bench::new(subject).await;
    b.add_file(&b.folder, "a.txt", "a");
    b.synced("before").await;
    b.add_file(&b.folder, "b.txt", "b");
    b.control.inject(Op::Changes, Fault::RateLimit { retry_after_secs: 3 }, 1).expect("inject");
    b.control.inject(Op::Download, Fault::RateLimit { retry_after_secs: 2 }, 1).expect("inject");
    b.synced("rate limited").await;
    let waits = b.mem.clock.sleeps();
    assert!(waits.contains(&Duration::from_secs(3)), "{}: Retry-After honoured: {waits:?}", b.name);
}

/// A grant revoked at the provider: the run ends `reauth_required`, nothing is lost or marked deleted.
pub async fn revoke(subject: &Subject) {
    let b = Bench::new(subject).await;
    b.add_file(&b.folder, "a.txt", "a");
    b.synced("before").await;
    b.control.revoke_all();
    b.add_file(&b.folder, "b.txt", "b");
    assert_eq!(b.sync().await, RunStatus::ReauthRequired, "{}: a revoked grant needs reauth", b.name);
    assert!(
        b.items().values().all(|i| i.state != ItemState::SourceDeleted),
        "{}: nothing marked deleted",
        b.name
    );
}

/// A download from a byte offset (a resumed transfer) serves exactly the rest of the file; the
/// whole download ends clean only when the bytes match the provider's hash.
pub async fn ranged_download(subject: &Subject) {
    use extconn_core::ports::DownloadRequest;
    use futures::StreamExt;
    let b = Bench::new(subject).await;
    let size = 5 * 1024 * 1024 + 3;
    let node =
        b.control.add_file(&b.account, &b.folder, "big.bin", Content::generated(size, 42)).expect("add file");
    let access = &b.tokens.access_token;
    let loc =
        FolderLocator { folder_id: node.id.clone(), drive_id: b.control.drive_of(&b.account, &node.id) };
    let item = b.provider.item(access, &loc).await.expect("item");
    assert_eq!(item.size, Some(size), "{}: the item's size", b.name);
    let read = |req: DownloadRequest| {
        let p = b.provider.clone();
        async move {
            let d = p.download(access, &req).await.unwrap_or_else(|e| panic!("download: {e}"));
            let mut bytes = Vec::new();
            let mut s = d.stream;
            while let Some(chunk) = s.next().await {
                bytes.extend_from_slice(&chunk.unwrap_or_else(|e| panic!("stream: {e}")));
            }
            bytes
        }
    };
    let whole = read(DownloadRequest::whole(&item)).await;
    assert_eq!(whole.len() as u64, size);
    {
        use sha2::{Digest, Sha256};
        assert_eq!(Some(hex::encode(Sha256::digest(&whole))), node.sha256, "{}: the whole file", b.name);
    }
    let offset = 4 * 1024 * 1024 + 1;
    let rest = read(DownloadRequest { offset, ..DownloadRequest::whole(&item) }).await;
    assert_eq!(rest.as_slice(), &whole[offset as usize..], "{}: the rest from the offset", b.name);
}
