//! The Google Drive connector (API v3, provider-apis.md §1): OAuth (code + PKCE, offline),
//! folder picker over My Drive and shared drives, folder-by-folder listing, the drive-wide
//! change feed, and verified streaming download (binary files) or export (Google-native docs).
//!
//! Base URLs are configuration, so the same code talks to the real service or to a sandbox:
//! the authorization host (`{authorize_base}/o/oauth2/v2/auth`), the OAuth host
//! (`{token_base}/token`, `{token_base}/revoke`) and the API host (`{api_base}/drive/v3/…`).
//!
//! # How Drive fits the port
//! - The change feed is **drive-wide** (My Drive plus what is shared with the user, or one
//!   shared drive with `driveId`), never folder-scoped: [`FeedScope::Drive`]; every item
//!   carries its `parents` and the core's scope tree decides membership. A folder connected
//!   inside a shared drive (its locator has a `drive_id`) reads that drive's own feed
//!   (`driveId` on `changes.getStartPageToken` and `changes.list`).
//! - No recursive listing: `files.list` with `'<id>' in parents and trashed = false`, one
//!   parent per query (§1.2), pages of up to 1000.
//! - `removed` changes (no `file`) and trashed files are deletions by id.
//! - `supportsAllDrives=true` on every call that takes it, `includeItemsFromAllDrives=true`
//!   on every listing; `corpora=drive&driveId=` for listings inside a shared drive. (The
//!   discovery document gives `files.export` neither parameter: it is sent without them.)
//! - Identity is the file id: duplicate names in one folder are two items.
//! - Content version: see [`wire::File::into_item`] (md5 for binary files, `modifiedTime` for
//!   native docs, never `version`, which moves on a rename). A doc whose `modifiedTime` moved
//!   with its name or parent is checked against its revisions (`revisions.list`: edits make
//!   revisions, renames do not) before it is exported again.
//!
//! # Decisions where the reference leaves room
//! - One `fields` selector for a `File` everywhere ([`wire::FILE_FIELDS`], §1.2's list), also
//!   inside `changes.list`'s `file(…)`: a change then carries the shortcut target,
//!   `canDownload` and `headRevisionId` like a listing does (§1.3's shorter selector lacks them).
//! - 403 `userRateLimitExceeded` / `rateLimitExceeded` are `RateLimited{Request}` (retried
//!   within the run), `downloadQuotaExceeded` `{File}`, `quotaExceeded` `{Grant}`.
//! - A download reads the item first (one `files.get`), so the bytes are checked against the
//!   current md5 and size, not the listing's; a resumed download whose content version moved
//!   since the transfer began is an `Integrity` error (start over).
//! - Revoke sends the refresh token (ends the whole grant); a 400 (already revoked) is `Ok`.
//! - `admin_policy_enforced` at the token endpoint is `Reauth`, like `invalid_grant`.
//!
//! # Not done yet
//! - The `exportLinks` fallback past the 10 MB export cap (an over-cap doc is
//!   `NotImportable{export_too_large}`), and `acknowledgeAbuse` for flagged files.
//! - `resourceKey` headers for link-shared items outside the user's drive.
//! - Resuming an export from an offset (exports have no `Range`): refused as `Permanent`.

mod auth;
mod download;
pub mod errors;
mod listing;
pub mod wire;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use async_trait::async_trait;
use extconn_core::ports::clock::SystemClock;
use extconn_core::ports::{
    AccountInfo, Capabilities, Clock, Download, DownloadRequest, FeedScope, FolderEntry, FolderPage,
    HashAlgorithm, ListPage, Provider, ProviderError, RemoteItem,
};
use extconn_core::{FolderLocator, ProviderKind, Secret, TokenSet};
use reqwest::header::AUTHORIZATION;
use serde::de::DeserializeOwned;

use crate::http::{
    HttpConfig, MAX_ERROR_BODY, MAX_JSON_BODY, build_client, read_body, read_error_body, redact,
    transport_error,
};

/// The one scope requested: `drive.readonly`.
///
/// Why read-only: the connector only lists, watches and downloads; it never writes to Drive.
/// Why all of Drive rather than `drive.file`: `drive.file` (non-sensitive) reaches only files
/// this app created or that the user picked one by one in the Google Picker. Picking a folder
/// there is not known to grant its existing children, and certainly not files others add to it
/// later (provider-apis.md §1.8), and `drives.list` needs `drive` or `drive.readonly`; so with
/// `drive.file` a connected folder would not stay in sync. `drive.readonly` is a *restricted*
/// scope (Google verification and a security assessment before production use), which is the
/// documented route for apps that sync or back up users' Drive files.
pub const SCOPE: &str = "https://www.googleapis.com/auth/drive.readonly";

/// Configuration of the Google Drive connector.
#[derive(Clone)]
pub struct GoogleDriveConfig {
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret (a "web application" client is confidential).
    pub client_secret: Secret,
    /// Authorization host, `https://accounts.google.com` (`/o/oauth2/v2/auth` under it).
    pub authorize_base: String,
    /// OAuth token host, `https://oauth2.googleapis.com` (`/token`, `/revoke` under it).
    pub token_base: String,
    /// API host, `https://www.googleapis.com` (`/drive/v3/…` under it).
    pub api_base: String,
    /// Timeouts and user agent.
    pub http: HttpConfig,
    /// `pageSize` of `files.list` and `changes.list` (1..=1000).
    pub page_size: u32,
    /// Time source for `expires_at` and `Retry-After` dates.
    pub clock: Arc<dyn Clock>,
}

impl GoogleDriveConfig {
    pub const AUTHORIZE_BASE: &'static str = "https://accounts.google.com";
    pub const TOKEN_BASE: &'static str = "https://oauth2.googleapis.com";
    pub const API_BASE: &'static str = "https://www.googleapis.com";
    pub const DEFAULT_PAGE_SIZE: u32 = 1000;

    /// The real service's endpoints, default timeouts, 1000-entry pages, the system clock.
    pub fn new(client_id: impl Into<String>, client_secret: Secret) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret,
            authorize_base: Self::AUTHORIZE_BASE.to_owned(),
            token_base: Self::TOKEN_BASE.to_owned(),
            api_base: Self::API_BASE.to_owned(),
            http: HttpConfig::default(),
            page_size: Self::DEFAULT_PAGE_SIZE,
            clock: Arc::new(SystemClock),
        }
    }

    /// Points the connector at other hosts (a sandbox).
    pub fn with_bases(
        mut self,
        authorize_base: impl Into<String>,
        token_base: impl Into<String>,
        api_base: impl Into<String>,
    ) -> Self {
        self.authorize_base = authorize_base.into();
        self.token_base = token_base.into();
        self.api_base = api_base.into();
        self
    }
}

impl fmt::Debug for GoogleDriveConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleDriveConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("authorize_base", &self.authorize_base)
            .field("token_base", &self.token_base)
            .field("api_base", &self.api_base)
            .field("http", &self.http)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

/// The Google Drive connector. Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct GoogleDrive {
    cfg: GoogleDriveConfig,
    http: reqwest::Client,
}

impl fmt::Debug for GoogleDrive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleDrive").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl GoogleDrive {
    /// Builds the connector.
    ///
    /// # Panics
    /// If the HTTP client cannot be built (only a TLS backend failing to initialise can cause
    /// that); use [`GoogleDrive::try_new`] to handle it.
    pub fn new(config: GoogleDriveConfig) -> Self {
        match Self::try_new(config) {
            Ok(d) => d,
            Err(e) => panic!("Google Drive connector: {e}"),
        }
    }

    pub fn try_new(mut config: GoogleDriveConfig) -> Result<Self, ProviderError> {
        crate::http::trim_bases([&mut config.authorize_base, &mut config.token_base, &mut config.api_base]);
        config.page_size = config.page_size.clamp(1, 1000);
        let http = build_client(&config.http)?;
        Ok(Self { cfg: config, http })
    }

    pub fn config(&self) -> &GoogleDriveConfig {
        &self.cfg
    }

    fn now(&self) -> SystemTime {
        SystemTime::from(self.cfg.clock.now())
    }

    /// `{api_base}/drive/v3/{path}`.
    fn api_url(&self, path: &str) -> String {
        format!("{}/drive/v3/{path}", self.cfg.api_base)
    }

    /// `GET {api_base}/drive/v3/{path}?{query}`, bearer auth; the 200 body parsed as `T`, any
    /// other answer classified.
    async fn get<T: DeserializeOwned>(
        &self,
        access: &Secret,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ProviderError> {
        let req = self
            .http
            .get(self.api_url(path))
            .query(query)
            .timeout(self.cfg.http.rpc_timeout)
            .header(AUTHORIZATION, bearer(access)?);
        let result = async {
            let resp = req.send().await.map_err(transport_error)?;
            let status = resp.status();
            if !status.is_success() {
                let headers = resp.headers().clone();
                let body = read_error_body(resp, MAX_ERROR_BODY).await;
                return Err(errors::classify(status, &headers, &body, self.now()));
            }
            let body = read_body(resp, MAX_JSON_BODY).await?;
            serde_json::from_slice::<T>(&body)
                .map_err(|e| ProviderError::Permanent(format!("unexpected Drive response: {e}")))
        }
        .await;
        result.map_err(|e| redact(e, &[access.expose()]))
    }
}

use crate::http::bearer;

/// A file id as one path segment: unreserved characters as they are, anything else
/// percent-encoded (Drive ids are `[A-Za-z0-9_-]`, so this only matters for a hostile id).
fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[async_trait]
impl Provider for GoogleDrive {
    fn kind(&self) -> ProviderKind {
        ProviderKind::GoogleDrive
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            feed_scope: FeedScope::Drive,
            recursive_listing: false,
            listing_has_paths: false,
            deletions_by_path: false,
            unique_paths: false,
            hash: HashAlgorithm::Md5,
        }
    }

    /// Drive ids: letters, digits, `-` and `_` (and the alias `root`).
    fn accepts_id(&self, id: &str) -> bool {
        !id.is_empty()
            && id.len() <= 256
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    }

    fn authorize_url(
        &self,
        req: &extconn_core::ports::provider::AuthorizeRequest,
    ) -> Result<String, ProviderError> {
        auth::authorize_url(&self.cfg, req)
    }

    async fn exchange_code(
        &self,
        code: &Secret,
        pkce_verifier: &Secret,
        redirect_uri: &str,
    ) -> Result<TokenSet, ProviderError> {
        auth::exchange_code(self, code, pkce_verifier, redirect_uri).await
    }

    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, ProviderError> {
        auth::refresh(self, tokens).await
    }

    async fn revoke(&self, tokens: &TokenSet) -> Result<(), ProviderError> {
        auth::revoke(self, tokens).await
    }

    async fn account(&self, access: &Secret) -> Result<AccountInfo, ProviderError> {
        listing::account(self, access).await
    }

    async fn browse_folders(
        &self,
        access: &Secret,
        parent: Option<&FolderLocator>,
        page: Option<&str>,
    ) -> Result<FolderPage, ProviderError> {
        listing::browse_folders(self, access, parent, page).await
    }

    async fn folder(&self, access: &Secret, folder: &FolderLocator) -> Result<FolderEntry, ProviderError> {
        listing::folder(self, access, folder).await
    }

    async fn item(&self, access: &Secret, locator: &FolderLocator) -> Result<RemoteItem, ProviderError> {
        listing::item(self, access, locator).await
    }

    async fn start_cursor(&self, access: &Secret, folder: &FolderLocator) -> Result<String, ProviderError> {
        listing::start_cursor(self, access, folder).await
    }

    async fn content_changed_since(
        &self,
        access: &Secret,
        item: &RemoteItem,
        since: &str,
    ) -> Result<Option<bool>, ProviderError> {
        listing::content_changed_since(self, access, item, since).await
    }

    async fn list_children(
        &self,
        access: &Secret,
        parent: &FolderLocator,
        page: Option<&str>,
    ) -> Result<ListPage, ProviderError> {
        listing::list_children(self, access, parent, page).await
    }

    async fn list_changes(
        &self,
        access: &Secret,
        folder: &FolderLocator,
        cursor: &str,
    ) -> Result<ListPage, ProviderError> {
        listing::list_changes(self, access, folder, cursor).await
    }

    async fn download(&self, access: &Secret, req: &DownloadRequest) -> Result<Download, ProviderError> {
        download::download(self, access, req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_segments() {
        let g = GoogleDrive::new(GoogleDriveConfig::new("id", Secret::new("s")));
        assert!(g.accepts_id("1AbC-_x9") && g.accepts_id("root") && g.accepts_id("0AD"));
        assert!(!g.accepts_id("") && !g.accepts_id("a/b") && !g.accepts_id("a'b") && !g.accepts_id("id:x"));
        assert!(!g.accepts_id(&"a".repeat(257)));
        assert_eq!(segment("1AbC-_x"), "1AbC-_x");
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
        let caps = g.capabilities();
        assert_eq!(caps.feed_scope, FeedScope::Drive);
        assert!(
            !caps.recursive_listing
                && !caps.listing_has_paths
                && !caps.deletions_by_path
                && !caps.unique_paths
        );
        assert_eq!(caps.hash, HashAlgorithm::Md5);
    }

    #[test]
    fn bases_lose_trailing_slashes_and_page_size_is_capped() {
        let mut cfg = GoogleDriveConfig::new("id", Secret::new("s")).with_bases(
            "http://127.0.0.1:1/google/accounts/",
            "http://127.0.0.1:1/google/oauth2//",
            "http://127.0.0.1:1/google/api/",
        );
        cfg.page_size = 5000;
        let g = GoogleDrive::new(cfg);
        assert_eq!(g.cfg.authorize_base, "http://127.0.0.1:1/google/accounts");
        assert_eq!(g.cfg.token_base, "http://127.0.0.1:1/google/oauth2");
        assert_eq!(g.api_url("files/x"), "http://127.0.0.1:1/google/api/drive/v3/files/x");
        assert_eq!(g.cfg.page_size, 1000);
        assert!(!format!("{g:?}").contains("\"s\""));
    }
}

/// Request-shape tests against a tiny in-test HTTP stub (one canned answer per connection),
/// until a Drive sandbox exists.
#[cfg(test)]
mod stub_tests {
    use std::sync::{Arc, Mutex};

    use extconn_core::ports::{Change, DownloadRequest, ProviderError};
    use extconn_core::{FolderLocator, ItemKind, Secret, TokenSet};
    use futures::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    /// What the stub received: the request line, the headers (lowercased names) and the body.
    #[derive(Debug, Clone)]
    struct Seen {
        line: String,
        headers: Vec<(String, String)>,
        body: String,
    }

    impl Seen {
        fn query(&self) -> Vec<(String, String)> {
            let target = self.line.split(' ').nth(1).unwrap_or_default();
            url::Url::parse(&format!("http://x{target}"))
                .map(|u| u.query_pairs().into_owned().collect())
                .unwrap_or_default()
        }
        fn param(&self, name: &str) -> Option<String> {
            self.query().into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
        }
        fn path(&self) -> String {
            self.line.split(' ').nth(1).unwrap_or_default().split('?').next().unwrap_or_default().to_owned()
        }
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
        }
    }

    /// Serves `answers` in order, one per connection; returns the base URL and the log.
    async fn stub(answers: Vec<(u16, &'static str)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = log.clone();
        tokio::spawn(async move {
            for (status, body) in answers {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i;
                    }
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let mut lines = head.split("\r\n");
                let line = lines.next().unwrap_or_default().to_owned();
                let headers: Vec<(String, String)> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                    .collect();
                let len: usize = headers
                    .iter()
                    .find(|(k, _)| k == "content-length")
                    .and_then(|(_, v)| v.parse().ok())
                    .unwrap_or(0);
                while buf.len() < head_end + 4 + len {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body_in = String::from_utf8_lossy(&buf[head_end + 4..]).into_owned();
                if let Ok(mut log) = seen.lock() {
                    log.push(Seen { line, headers, body: body_in });
                }
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            }
        });
        (format!("http://{addr}"), log)
    }

    fn drive(base: &str) -> GoogleDrive {
        GoogleDrive::new(GoogleDriveConfig::new("cid", Secret::new("csecret")).with_bases(
            format!("{base}/accounts"),
            format!("{base}/oauth2"),
            base,
        ))
    }

    fn seen(log: &Arc<Mutex<Vec<Seen>>>) -> Vec<Seen> {
        log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    #[tokio::test]
    async fn changes_in_a_shared_drive_carry_every_parameter() {
        let (base, log) = stub(vec![(
            200,
            r#"{"kind":"drive#changeList","newStartPageToken":"12399","changes":[
              {"kind":"drive#change","changeType":"file","fileId":"1Gone","removed":true,"time":"2026-05-03T08:01:00.000Z"}]}"#,
        )])
        .await;
        let g = drive(&base);
        let folder = FolderLocator { folder_id: "1Sub".into(), drive_id: Some("0AD".into()) };
        let page =
            g.list_changes(&Secret::new("ya29.AT"), &folder, "12345").await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(page.cursor, "12399");
        assert!(!page.has_more);
        assert_eq!(page.changes, vec![Change::Deleted { id: Some("1Gone".into()), path_lower: None }]);
        let req = &seen(&log)[0];
        assert!(req.line.starts_with("GET "), "{}", req.line);
        assert_eq!(req.path(), "/drive/v3/changes");
        assert_eq!(req.header("authorization"), Some("Bearer ya29.AT"));
        for (k, v) in [
            ("pageToken", "12345"),
            ("pageSize", "1000"),
            ("supportsAllDrives", "true"),
            ("includeItemsFromAllDrives", "true"),
            ("driveId", "0AD"),
        ] {
            assert_eq!(req.param(k).as_deref(), Some(v), "{k}");
        }
        let fields = req.param("fields").unwrap_or_default();
        assert!(
            fields.starts_with("nextPageToken,newStartPageToken,changes(changeType,removed,fileId"),
            "{fields}"
        );
    }

    #[tokio::test]
    async fn a_doc_over_the_export_cap_is_not_importable() {
        let (base, log) = stub(vec![
            (
                200,
                r#"{"id":"1Doc","name":"Plan","mimeType":"application/vnd.google-apps.document","size":"1024",
                   "modifiedTime":"2026-05-02T09:00:00.000Z","parents":["0BFolder"],"trashed":false,"version":"7"}"#,
            ),
            (
                403,
                r#"{"error":{"code":403,"message":"This file is too large to be exported.","errors":[{"domain":"global","reason":"exportSizeLimitExceeded","message":"This file is too large to be exported."}]}}"#,
            ),
        ])
        .await;
        let g = drive(&base);
        let item = RemoteItem {
            id: "1Doc".into(),
            drive_id: None,
            parent_ids: vec![],
            name: "Plan".into(),
            path: None,
            path_lower: None,
            kind: ItemKind::Native { exports: vec![] },
            mime_type: None,
            revision: None,
            content_hash: None,
            size: None,
            modified_at: None,
        };
        let e = g.download(&Secret::new("AT"), &DownloadRequest::whole(&item)).await.err();
        assert_eq!(e, Some(ProviderError::NotImportable { reason: "export_too_large".into() }));
        let reqs = seen(&log);
        assert_eq!(reqs[0].path(), "/drive/v3/files/1Doc");
        assert_eq!(reqs[0].param("supportsAllDrives").as_deref(), Some("true"));
        assert_eq!(reqs[1].path(), "/drive/v3/files/1Doc/export");
        assert_eq!(
            reqs[1].param("mimeType").as_deref(),
            Some("application/vnd.openxmlformats-officedocument.wordprocessingml.document")
        );
    }

    #[tokio::test]
    async fn a_binary_download_is_md5_verified() {
        let meta = r#"{"id":"1AbC","name":"a.txt","mimeType":"text/plain","size":"11",
            "md5Checksum":"5eb63bbbe01eeed093cb22bb8f5acdc3","parents":["P"],"version":"3"}"#;
        let (base, log) =
            stub(vec![(200, meta), (200, "hello world"), (200, meta), (200, "hellO world")]).await;
        let g = drive(&base);
        let item = serde_json::from_str::<wire::File>(meta).unwrap_or_else(|e| panic!("{e}")).into_item();
        for expect_ok in [true, false] {
            let d = g
                .download(&Secret::new("AT"), &DownloadRequest::whole(&item))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let out: Vec<_> = d.stream.collect().await;
            assert_eq!(out.iter().all(Result::is_ok), expect_ok, "{out:?}");
        }
        let reqs = seen(&log);
        assert_eq!(reqs[1].path(), "/drive/v3/files/1AbC");
        assert_eq!(reqs[1].param("alt").as_deref(), Some("media"));
        assert_eq!(reqs[1].header("range"), None);
    }

    #[tokio::test]
    async fn picker_top_level_and_a_folder_listing() {
        let (base, log) = stub(vec![
            (200, r#"{"id":"0ARootId","name":"My Drive","mimeType":"application/vnd.google-apps.folder"}"#),
            (200, r#"{"kind":"drive#driveList","nextPageToken":"d2","drives":[{"id":"0AD","name":"Team"}]}"#),
            (
                200,
                r#"{"files":[{"id":"1a","name":"same","mimeType":"text/plain","size":"1","md5Checksum":"x","parents":["0AD"],"driveId":"0AD"},
                             {"id":"1b","name":"same","mimeType":"text/plain","size":"2","md5Checksum":"y","parents":["0AD"],"driveId":"0AD"}]}"#,
            ),
        ])
        .await;
        let g = drive(&base);
        let access = Secret::new("AT");
        let top = g.browse_folders(&access, None, None).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(top.next_page.as_deref(), Some("d2"));
        let ids: Vec<_> = top.folders.iter().map(|f| (f.locator.clone(), f.name.as_str())).collect();
        assert_eq!(
            ids,
            [
                (FolderLocator { folder_id: "0ARootId".into(), drive_id: None }, "My Drive"),
                (FolderLocator { folder_id: "0AD".into(), drive_id: Some("0AD".into()) }, "Team"),
            ]
        );
        let shared = &top.folders[1].locator;
        let page = g.list_children(&access, shared, None).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(!page.has_more);
        // Duplicate names are two items (identity by id).
        assert_eq!(page.changes.len(), 2);
        let reqs = seen(&log);
        assert_eq!(reqs[0].path(), "/drive/v3/files/root");
        assert_eq!(reqs[1].path(), "/drive/v3/drives");
        assert_eq!(reqs[1].param("pageSize").as_deref(), Some("100"));
        assert_eq!(reqs[2].path(), "/drive/v3/files");
        for (k, v) in [
            ("q", "'0AD' in parents and trashed = false"),
            ("corpora", "drive"),
            ("driveId", "0AD"),
            ("supportsAllDrives", "true"),
            ("includeItemsFromAllDrives", "true"),
            ("pageSize", "1000"),
        ] {
            assert_eq!(reqs[2].param(k).as_deref(), Some(v), "{k}");
        }
    }

    #[tokio::test]
    async fn revoke_posts_the_refresh_token() {
        let (base, log) = stub(vec![(200, "{}")]).await;
        let g = drive(&base);
        let tokens = TokenSet {
            access_token: Secret::new("AT"),
            refresh_token: Some(Secret::new("1//RT")),
            expires_at: None,
        };
        g.revoke(&tokens).await.unwrap_or_else(|e| panic!("{e}"));
        let req = &seen(&log)[0];
        assert!(req.line.starts_with("POST /oauth2/revoke "), "{}", req.line);
        assert_eq!(req.body, "token=1%2F%2FRT");
    }
}
