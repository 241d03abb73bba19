//! The SharePoint / OneDrive for Business connector (Microsoft Graph v1.0, provider-apis.md §2):
//! OAuth on the Microsoft identity platform (v2, code + PKCE, rotating refresh tokens), a
//! picker over the user's OneDrive, the tenant's sites and their document libraries, a
//! folder-by-folder listing, the drive-wide delta feed, and verified streaming download
//! through the pre-authenticated redirect.
//!
//! Base URLs are configuration (the sandbox serves both hosts under its own base):
//! `{login_base}/{tenant}/oauth2/v2.0/{authorize,token}` and `{graph_base}/v1.0/…`.
//!
//! # How Graph fits the port
//! - Delta is **root-only** on business drives (`/items/{id}/delta` answers 501
//!   `notSupported`): the feed is the whole drive's, [`FeedScope::Drive`], and the core's scope
//!   tree decides membership from each item's `parentReference.id`. Delta carries no paths.
//! - No recursive listing: `start_cursor` is the deltaLink of `root/delta?token=latest`, then
//!   the engine lists folder by folder (`/items/{id}/children`).
//! - The cursor is the full `@odata.deltaLink` / `@odata.nextLink` URL; every such link (and
//!   every download redirect) is checked against [`SharePoint::check_link`]'s allowlist as it
//!   arrives and again *before* a connection is made, so a forged or foreign link never
//!   receives the bearer, and is never stored as a cursor a later run would resume from.
//! - Locators are `(item id, drive id)`, never paths; a library is connected by its root item.
//! - Identity is the item id. Graph refuses a second item with a taken name in a folder
//!   (case-insensitively), so `unique_paths` is true; with deletions by id there is no path
//!   index, and nothing in the engine depends on paths for Graph.
//!
//! # Decisions where the reference leaves room
//! - A 410 on a delta link is `CursorReset`: the engine re-lists by parent from a fresh
//!   `token=latest` cursor and diffs against what it stored. The 410's `Location` (a link that
//!   re-enumerates the whole drive) is not followed: the port has no drive-wide full listing,
//!   and re-listing only the connected subtree is cheaper.
//! - The drive's root item (the `root` facet) is left out of the change feed: its metadata moves
//!   with every change below it, and its name is `root`, not the library's. `folder` (the
//!   connected folder's identity) names a root after its drive; `item`, which the engine asks
//!   for unknown parents, does not spend that call.
//! - `package` items (OneNote notebooks) are `Other{package}`: not downloadable as one file,
//!   and their inner files are out of scope (their parent is not a folder).
//! - Downloads read the item first (its current hash, size and drive type), like Drive.
//!
//! # Disconnecting
//! The Microsoft identity platform has no per-token revocation (`revokeSignInSessions` would
//! sign the user out of every app): [`Provider::revoke`] is a no-op, and disconnecting means
//! deleting the stored tokens. The user removes the consent at myapps.microsoft.com, or an
//! admin deletes the app's `oauth2PermissionGrant`.

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
use reqwest::header::{ACCEPT, AUTHORIZATION};
use serde::de::DeserializeOwned;
use url::Url;

use crate::http::{
    HttpConfig, MAX_ERROR_BODY, MAX_JSON_BODY, bearer, build_client, read_body, read_error_body, redact,
    transport_error,
};

/// The scopes requested (provider-apis.md §2.1): a refresh token, `/me`, every file the user
/// can read (SharePoint libraries included), and the sites (for `/sites?search=`). Read-only.
pub const SCOPES: [&str; 4] = ["offline_access", "User.Read", "Files.Read.All", "Sites.Read.All"];

/// The hosts Graph links and download redirects may point to (besides the configured bases'
/// own origins): exact names, then domain suffixes.
pub const ALLOWED_HOSTS: [&str; 2] = ["graph.microsoft.com", "login.microsoftonline.com"];
pub const ALLOWED_HOST_SUFFIXES: [&str; 4] =
    [".sharepoint.com", ".sharepoint-df.com", ".1drv.com", ".microsoftpersonalcontent.com"];

/// Configuration of the SharePoint connector.
#[derive(Clone)]
pub struct SharePointConfig {
    /// Application (client) id of the Entra app registration.
    pub client_id: String,
    /// Its client secret (a confidential "web" client).
    pub client_secret: Secret,
    /// The authority's tenant segment: `organizations` (work or school accounts: SharePoint),
    /// `common`, `consumers`, a tenant GUID or a verified domain.
    pub tenant: String,
    /// Identity platform host, `https://login.microsoftonline.com`.
    pub login_base: String,
    /// Graph host, `https://graph.microsoft.com` (`/v1.0/…` under it).
    pub graph_base: String,
    /// Timeouts and user agent (Microsoft asks ISVs to decorate traffic: see [`Self::new`]).
    pub http: HttpConfig,
    /// `$top` of children listings (1..=1000).
    pub page_size: u32,
    /// Time source for `expires_at` and `Retry-After` dates.
    pub clock: Arc<dyn Clock>,
}

impl SharePointConfig {
    pub const LOGIN_BASE: &'static str = "https://login.microsoftonline.com";
    pub const GRAPH_BASE: &'static str = "https://graph.microsoft.com";
    pub const DEFAULT_TENANT: &'static str = "organizations";
    pub const DEFAULT_PAGE_SIZE: u32 = 1000;

    /// The real service, tenant `organizations`, default timeouts, the ISV user agent
    /// `ISV|ExternalConnections|extconn/<version>` (Microsoft's throttling guidance), 1000-item
    /// pages, the system clock.
    pub fn new(client_id: impl Into<String>, client_secret: Secret) -> Self {
        Self {
            client_id: client_id.into(),
            client_secret,
            tenant: Self::DEFAULT_TENANT.to_owned(),
            login_base: Self::LOGIN_BASE.to_owned(),
            graph_base: Self::GRAPH_BASE.to_owned(),
            http: HttpConfig {
                user_agent: concat!("ISV|ExternalConnections|extconn/", env!("CARGO_PKG_VERSION")).to_owned(),
                ..HttpConfig::default()
            },
            page_size: Self::DEFAULT_PAGE_SIZE,
            clock: Arc::new(SystemClock),
        }
    }

    /// Points the connector at other hosts (a sandbox).
    pub fn with_bases(mut self, login_base: impl Into<String>, graph_base: impl Into<String>) -> Self {
        self.login_base = login_base.into();
        self.graph_base = graph_base.into();
        self
    }

    pub fn with_tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = tenant.into();
        self
    }
}

/// Whether `tenant` is a valid authority segment: `common`, `organizations`, `consumers`, a
/// GUID, or a domain name (`contoso.onmicrosoft.com`).
pub fn valid_tenant(tenant: &str) -> bool {
    if matches!(tenant, "common" | "organizations" | "consumers") {
        return true;
    }
    let guid = tenant.len() == 36
        && tenant
            .bytes()
            .enumerate()
            .all(|(i, b)| if matches!(i, 8 | 13 | 18 | 23) { b == b'-' } else { b.is_ascii_hexdigit() });
    if guid {
        return true;
    }
    let labels: Vec<&str> = tenant.split('.').collect();
    tenant.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_alphabetic()))
}

impl fmt::Debug for SharePointConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharePointConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("tenant", &self.tenant)
            .field("login_base", &self.login_base)
            .field("graph_base", &self.graph_base)
            .field("http", &self.http)
            .field("page_size", &self.page_size)
            .finish_non_exhaustive()
    }
}

/// The SharePoint / OneDrive for Business connector. Cheap to clone.
#[derive(Clone)]
pub struct SharePoint {
    cfg: SharePointConfig,
    http: reqwest::Client,
    /// `(scheme, host, port)` of the configured bases: links there are followed too.
    origins: Vec<url::Origin>,
}

impl fmt::Debug for SharePoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharePoint").field("cfg", &self.cfg).finish_non_exhaustive()
    }
}

impl SharePoint {
    /// Builds the connector.
    ///
    /// # Panics
    /// If the configuration is invalid (see [`SharePoint::try_new`]).
    pub fn new(config: SharePointConfig) -> Self {
        match Self::try_new(config) {
            Ok(s) => s,
            Err(e) => panic!("SharePoint connector: {e}"),
        }
    }

    /// Builds the connector; a base URL that does not parse or an invalid tenant is `Permanent`.
    pub fn try_new(mut config: SharePointConfig) -> Result<Self, ProviderError> {
        crate::http::trim_bases([&mut config.login_base, &mut config.graph_base]);
        if !valid_tenant(&config.tenant) {
            return Err(ProviderError::Permanent(
                "invalid tenant: expected common, organizations, consumers, a GUID or a domain".into(),
            ));
        }
        config.page_size = config.page_size.clamp(1, 1000);
        let mut origins = Vec::new();
        for base in [&config.login_base, &config.graph_base] {
            let url = Url::parse(base)
                .map_err(|e| ProviderError::Permanent(format!("invalid SharePoint base URL: {e}")))?;
            origins.push(url.origin());
        }
        let http = build_client(&config.http)?;
        Ok(Self { cfg: config, http, origins })
    }

    pub fn config(&self) -> &SharePointConfig {
        &self.cfg
    }

    fn now(&self) -> SystemTime {
        SystemTime::from(self.cfg.clock.now())
    }

    /// Whether a link from Graph (nextLink, deltaLink, a download `Location`) may be followed:
    /// `https` on a Microsoft host of [`ALLOWED_HOSTS`] / [`ALLOWED_HOST_SUFFIXES`] on the
    /// default port, or anything on the exact origin of a configured base. Checked before any
    /// connection; a refusal is `Permanent` and names the host only (the query of a download
    /// URL is a credential).
    pub fn check_link(&self, link: &str) -> Result<Url, ProviderError> {
        let url = Url::parse(link).map_err(|_| {
            ProviderError::Permanent("Graph returned a link that is not an absolute URL".into())
        })?;
        let Some(host) = url.host_str().map(str::to_ascii_lowercase) else {
            return Err(ProviderError::Permanent("Graph returned a link without a host".into()));
        };
        let refused = || {
            ProviderError::Permanent(format!(
                "refused to follow a link to the host {host}: not a Microsoft host"
            ))
        };
        if !url.username().is_empty() || url.password().is_some() {
            return Err(refused());
        }
        if self.origins.contains(&url.origin()) {
            return Ok(url);
        }
        let microsoft = ALLOWED_HOSTS.contains(&host.as_str())
            || ALLOWED_HOST_SUFFIXES.iter().any(|s| host.ends_with(s) && host.len() > s.len());
        if url.scheme() == "https" && url.port().is_none() && microsoft { Ok(url) } else { Err(refused()) }
    }

    /// A page whose `@odata.nextLink` / `@odata.deltaLink` pass [`SharePoint::check_link`]:
    /// links are checked when they arrive, so a foreign one is never stored as a cursor (a
    /// later run would resume from it), nor followed.
    pub(crate) fn checked<T>(&self, page: wire::Collection<T>) -> Result<wire::Collection<T>, ProviderError> {
        for link in [&page.next_link, &page.delta_link].into_iter().flatten() {
            self.check_link(link)?;
        }
        Ok(page)
    }

    /// `{graph_base}/v1.0/{path}` with `query`.
    fn graph_url(&self, path: &str, query: &[(&str, &str)]) -> Result<Url, ProviderError> {
        let mut url = Url::parse(&format!("{}/v1.0/{path}", self.cfg.graph_base))
            .map_err(|e| ProviderError::Permanent(format!("invalid Graph URL: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        Ok(url)
    }

    /// `GET {graph_base}/v1.0/{path}?{query}` (see [`Self::get_url`]).
    async fn get<T: DeserializeOwned>(
        &self,
        access: &Secret,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<T, ProviderError> {
        let url = self.graph_url(path, query)?;
        self.get_url(access, url).await
    }

    /// Follows a link Graph gave (a page or delta link): checked against the allowlist first.
    async fn get_link<T: DeserializeOwned>(&self, access: &Secret, link: &str) -> Result<T, ProviderError> {
        let url = self.check_link(link)?;
        self.get_url(access, url).await
    }

    /// `GET url` with the bearer; the 200 body parsed as `T`, anything else classified.
    async fn get_url<T: DeserializeOwned>(&self, access: &Secret, url: Url) -> Result<T, ProviderError> {
        let req = self
            .http
            .get(url)
            .timeout(self.cfg.http.rpc_timeout)
            .header(ACCEPT, "application/json")
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
                .map_err(|e| ProviderError::Permanent(format!("unexpected Graph response: {e}")))
        }
        .await;
        result.map_err(|e| redact(e, &[access.expose()]))
    }
}

/// An id as one path segment: Graph ids are `[A-Za-z0-9!._-]`, site ids add `,`; anything
/// else is percent-encoded (only a hostile id has any).
fn segment(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'!' | b',') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The drive a locator's item lives in: every item locator carries one (a site's does not).
fn drive_of(locator: &FolderLocator) -> Result<&str, ProviderError> {
    locator
        .drive_id
        .as_deref()
        .ok_or_else(|| ProviderError::Permanent("a SharePoint item locator needs its drive id".into()))
}

#[async_trait]
impl Provider for SharePoint {
    fn kind(&self) -> ProviderKind {
        ProviderKind::Sharepoint
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            feed_scope: FeedScope::Drive,
            recursive_listing: false,
            listing_has_paths: false,
            deletions_by_path: false,
            // Graph refuses a second item with a name taken in its folder (case-insensitively);
            // items are still tracked by id (no path index: deletions come by id).
            unique_paths: true,
            hash: HashAlgorithm::QuickXor,
        }
    }

    /// Graph item ids (`01BYE5RZ…`, personal `D4648F06C91D9D3D!54927`) and site ids
    /// (`contoso.sharepoint.com,<guid>,<guid>`): letters, digits and `! . , - _`.
    fn accepts_id(&self, id: &str) -> bool {
        !id.is_empty()
            && id.len() <= 512
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'!' | b'.' | b',' | b'-' | b'_'))
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

    /// The result carries the rotated refresh token (Microsoft sends a new one every time).
    async fn refresh(&self, tokens: &TokenSet) -> Result<TokenSet, ProviderError> {
        auth::refresh(self, tokens).await
    }

    /// No per-token revocation exists at Microsoft: see the module docs ("Disconnecting").
    async fn revoke(&self, _tokens: &TokenSet) -> Result<(), ProviderError> {
        Ok(())
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

    fn sp() -> SharePoint {
        SharePoint::new(
            SharePointConfig::new("app", Secret::new("s")).with_bases(
                "http://127.0.0.1:4000/sharepoint/login/",
                "http://127.0.0.1:4000/sharepoint/graph",
            ),
        )
    }

    #[test]
    fn ids_segments_and_capabilities() {
        let s = sp();
        for id in
            ["01BYE5RZ6QN3ZWBTUFOFD3GSPGOHDJD36K", "D4648F06C91D9D3D!54927", "contoso.sharepoint.com,a-b,c-d"]
        {
            assert!(s.accepts_id(id), "{id}");
        }
        for id in ["", "a/b", "a b", "a?b", "a%2F", "root:/x"] {
            assert!(!s.accepts_id(id), "{id}");
        }
        assert!(!s.accepts_id(&"a".repeat(513)));
        assert_eq!(segment("D4!5,x.y"), "D4!5,x.y");
        assert_eq!(segment("a/b?c"), "a%2Fb%3Fc");
        let caps = s.capabilities();
        assert_eq!(caps.feed_scope, FeedScope::Drive);
        assert!(
            !caps.recursive_listing
                && !caps.listing_has_paths
                && !caps.deletions_by_path
                && caps.unique_paths
        );
        assert_eq!(caps.hash, HashAlgorithm::QuickXor);
        assert_eq!(s.config().graph_base, "http://127.0.0.1:4000/sharepoint/graph");
        assert!(s.config().http.user_agent.starts_with("ISV|ExternalConnections|extconn/"));
    }

    #[test]
    fn the_link_allowlist() {
        let s = sp();
        for ok in [
            "https://graph.microsoft.com/v1.0/drives/b!x/root/delta?token=abc",
            "https://GRAPH.microsoft.com/v1.0/x",
            "https://login.microsoftonline.com/organizations/oauth2/v2.0/token",
            "https://contoso.sharepoint.com/_layouts/15/download.aspx?UniqueId=1&tempauth=x",
            "https://contoso-my.sharepoint.com/personal/x",
            "https://contoso.sharepoint-df.com/x",
            "https://public.bn.files.1drv.com/y",
            "https://my.microsoftpersonalcontent.com/z",
            // The configured bases' origin, whatever the path.
            "http://127.0.0.1:4000/sharepoint/download/abc?tempauth=x",
            "http://127.0.0.1:4000/elsewhere",
        ] {
            assert!(s.check_link(ok).is_ok(), "{ok}");
        }
        for (bad, host) in [
            ("http://graph.microsoft.com/v1.0/x", "graph.microsoft.com"),
            ("https://graph.microsoft.com:8443/v1.0/x", "graph.microsoft.com"),
            ("https://graph.microsoft.com.evil.example/v1.0/x", "graph.microsoft.com.evil.example"),
            ("https://evilsharepoint.com/x?tempauth=SECRET", "evilsharepoint.com"),
            ("https://sharepoint.com/x", "sharepoint.com"),
            ("https://user:pw@contoso.sharepoint.com/x", "contoso.sharepoint.com"),
            ("http://127.0.0.1:4001/sharepoint/graph/v1.0/x?token=SECRET", "127.0.0.1"),
            ("http://localhost:4000/sharepoint/graph", "localhost"),
            ("https://127.0.0.1:4000/sharepoint/graph", "127.0.0.1"),
        ] {
            let e = s.check_link(bad).expect_err(bad);
            let text = e.to_string();
            assert!(matches!(e, ProviderError::Permanent(_)), "{bad}: {e:?}");
            assert!(text.contains(host) && !text.contains("SECRET") && !text.contains("/x"), "{text}");
        }
        assert!(matches!(s.check_link("/v1.0/relative"), Err(ProviderError::Permanent(_))));
    }

    #[test]
    fn tenants() {
        for t in [
            "organizations",
            "common",
            "consumers",
            "contoso.onmicrosoft.com",
            "contoso.com",
            "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "72F988BF-86F1-41AF-91AB-2D7CD011DB47",
        ] {
            assert!(valid_tenant(t), "{t}");
        }
        for t in [
            "",
            "Organizations ",
            "contoso",
            "a/b",
            "x.-y.com",
            "72f988bf86f141af91ab2d7cd011db47",
            "contoso.com/oauth2",
            "c?.com",
            "12.34",
        ] {
            assert!(!valid_tenant(t), "{t}");
        }
        let e = SharePoint::try_new(SharePointConfig::new("a", Secret::new("s")).with_tenant("../x")).err();
        assert!(matches!(e, Some(ProviderError::Permanent(m)) if m.contains("tenant")));
    }
}
