//! The Dropbox connector (API v2): OAuth (code + PKCE, offline), folder picker, recursive
//! listing with a folder-scoped change cursor, and verified streaming download.
//!
//! Base URLs are configuration, so the same code talks to the real service or to the sandbox.
//! Every route is a POST (provider-apis.md §3): RPC routes under `api_base` take a JSON body,
//! the download route under `content_base` takes its argument in the `Dropbox-API-Arg` header.

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
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use download::header_safe_json;

use crate::http::{
    HttpConfig, MAX_ERROR_BODY, MAX_JSON_BODY, build_client, read_body, read_error_body, redact,
    transport_error,
};

/// The scopes requested: read-only metadata and content, and the account (for its id and name).
pub const SCOPES: [&str; 3] = ["account_info.read", "files.content.read", "files.metadata.read"];

/// Configuration of the Dropbox connector.
#[derive(Clone)]
pub struct DropboxConfig {
    /// App key.
    pub client_id: String,
    /// App secret (confidential client).
    pub client_secret: Secret,
    /// Authorization host, `https://www.dropbox.com` (the sandbox: `{base}/dropbox/www`).
    pub www_base: String,
    /// RPC and token host, `https://api.dropboxapi.com` (the sandbox: `{base}/dropbox/api`).
    pub api_base: String,
    /// Content host, `https://content.dropboxapi.com` (the sandbox: `{base}/dropbox/content`).
    pub content_base: String,
    /// Timeouts and user agent.
    pub http: HttpConfig,
    /// `limit` of `list_folder` (1..=2000, approximate at Dropbox).
    pub page_limit: u32,
    /// Time source for `expires_at` and `Retry-After` dates.
    pub clock: Arc<dyn Clock>,
}

impl DropboxConfig {
    pub const WWW_BASE: &'static str = "https://www.dropbox.com";
    pub const API_BASE: &'static str = "https://api.dropboxapi.com";
    pub const CONTENT_BASE: &'static str = "https://content.dropboxapi.com";
    pub const DEFAULT_PAGE_LIMIT: u32 = 2000;

    /// The real service's endpoints, default timeouts, 2000-entry pages, the system clock.
    pub fn new(client_id: impl Into<String>, client_secret: Secret) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret,
            www_base: Self::WWW_BASE.to_owned(),
            api_base: Self::API_BASE.to_owned(),
            content_base: Self::CONTENT_BASE.to_owned(),
            http: HttpConfig::default(),
            page_limit: Self::DEFAULT_PAGE_LIMIT,
            clock: Arc::new(SystemClock),
        }
    }

    /// Points the connector at other hosts (the sandbox).
    pub fn with_bases(
        mut self,
        www_base: impl Into<String>,
        api_base: impl Into<String>,
        content_base: impl Into<String>,
    ) -> Self {
        self.www_base = www_base.into();
        self.api_base = api_base.into();
        self.content_base = content_base.into();
        self
    }
}

impl fmt::Debug for DropboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DropboxConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("www_base", &self.www_base)
            .field("api_base", &self.api_base)
            .field("content_base", &self.content_base)
            .field("http", &self.http)
            .field("page_limit", &self.page_limit)
            .finish_non_exhaustive()
    }
}

/// The Dropbox connector. Cheap to clone (the HTTP client is shared).
#[derive(Clone)]
pub struct Dropbox {
    cfg: DropboxConfig,
    http: reqwest::Client,
}

impl fmt::Debug for Dropbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dropbox").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl Dropbox {
    /// Builds the connector.
    ///
    /// # Panics
    /// If the HTTP client cannot be built (only a TLS backend failing to initialise can cause
    /// that); use [`Dropbox::try_new`] to handle it.
    pub fn new(config: DropboxConfig) -> Self {
        match Self::try_new(config) {
            Ok(d) => d,
            Err(e) => panic!("Dropbox connector: {e}"),
        }
    }

    pub fn try_new(mut config: DropboxConfig) -> Result<Self, ProviderError> {
        crate::http::trim_bases([&mut config.www_base, &mut config.api_base, &mut config.content_base]);
        config.page_limit = config.page_limit.clamp(1, 2000);
        let http = build_client(&config.http)?;
        Ok(Self { cfg: config, http })
    }

    pub fn config(&self) -> &DropboxConfig {
        &self.cfg
    }

    fn now(&self) -> SystemTime {
        SystemTime::from(self.cfg.clock.now())
    }

    /// `POST {api_base}/2/{route}` with a JSON argument (or none), bearer auth; the 200 body
    /// parsed as `T`, any other answer classified.
    async fn rpc<A: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        access: &Secret,
        route: &str,
        arg: Option<&A>,
    ) -> Result<T, ProviderError> {
        let url = format!("{}/2/{route}", self.cfg.api_base);
        let mut req =
            self.http.post(url).timeout(self.cfg.http.rpc_timeout).header(AUTHORIZATION, bearer(access)?);
        if let Some(arg) = arg {
            let body = serde_json::to_vec(arg)
                .map_err(|e| ProviderError::Permanent(format!("cannot encode the {route} argument: {e}")))?;
            req = req.header(CONTENT_TYPE, "application/json").body(body);
        }
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
                .map_err(|e| ProviderError::Permanent(format!("unexpected {route} response: {e}")))
        }
        .await;
        result.map_err(|e| redact(e, &[access.expose()]))
    }
}

use crate::http::bearer;

#[async_trait]
impl Provider for Dropbox {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Dropbox
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            feed_scope: FeedScope::Folder,
            recursive_listing: true,
            listing_has_paths: true,
            deletions_by_path: true,
            unique_paths: true,
            hash: HashAlgorithm::DropboxContentHash,
        }
    }

    /// `id:` + URL-safe characters; the account root is not connectable.
    fn accepts_id(&self, id: &str) -> bool {
        id.len() <= 512
            && id.strip_prefix("id:").is_some_and(|r| {
                !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            })
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

    async fn list_full(
        &self,
        access: &Secret,
        folder: &FolderLocator,
        resume: Option<&str>,
    ) -> Result<ListPage, ProviderError> {
        listing::list_full(self, access, folder, resume).await
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
        _folder: &FolderLocator,
        cursor: &str,
    ) -> Result<ListPage, ProviderError> {
        listing::list_changes(self, access, cursor).await
    }

    async fn download(&self, access: &Secret, req: &DownloadRequest) -> Result<Download, ProviderError> {
        download::download(self, access, req).await
    }
}
