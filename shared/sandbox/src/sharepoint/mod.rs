//! Microsoft Graph emulator for SharePoint and OneDrive for Business
//! (provider-apis.md §2, §2.9, §4.2: the team's notes on Graph v1.0; the wire shapes below are
//! also checked against Microsoft's Graph types by `tests/sandbox-fidelity/graph_check.py`).
//!
//! Files:
//! - `model`: the tenant's users (each with a OneDrive for Business drive), sites
//!   with document libraries, items by id, the per-drive change log;
//! - `quickxor`: QuickXorHash ([`QuickXorHash`], [`quick_xor_hash`]);
//! - `wire`: driveItem / drive / site / user JSON, Graph's error body, `$select`;
//! - `api`: the Graph routes (one path parser, see `Route`) and the delta feed;
//! - `download`: `/content` (302) and the unauthenticated download host;
//! - `oauth`: the Microsoft identity platform v2 settings of the shared OAuth server,
//!   its token answer (rotated refresh tokens, `AADSTS…` errors, an unsigned id_token);
//! - [`control`]: [`SharePointControl`], its [`crate::ProviderControl`] implementation
//!   and the HTTP mirror under `/_control/sharepoint`.
//!
//! ## URL layout
//!
//! | Real host | Sandbox prefix | Routes |
//! |---|---|---|
//! | `login.microsoftonline.com` | `{base}/sharepoint/login` | `GET /{tenant}/oauth2/v2.0/authorize` (consent page), `POST /{tenant}/oauth2/v2.0/token` |
//! | `graph.microsoft.com` | `{base}/sharepoint/graph` | `GET /v1.0/me`, `/v1.0/me/drive[/…]`, `/v1.0/sites?search=`, `/v1.0/sites/{id}`, `/v1.0/sites/{id}/drives`, `/v1.0/sites/{id}/drive[/…]`, `/v1.0/drives/{id}`, `/v1.0/drives/{id}/root`, `…/root/children`, `…/root/delta`, `…/items/{id}`, `…/items/{id}/children`, `…/items/{id}/delta` (501), `…/items/{id}/content` (302) |
//! | `{tenant}.sharepoint.com` | `{base}/sharepoint/download` | `GET /{opaque}?UniqueId=…&tempauth=…` (no Authorization; `Range`) |
//!
//! `{tenant}` is `organizations`, `common` or the sandbox tenant's GUID; anything else
//! is a 400 `invalid_request` (`AADSTS90002`).
//!
//! ## Fidelity notes (choices where the reference is silent or unverified)
//!
//! - Links (`@odata.nextLink`, `@odata.deltaLink`, the 410 `Location`, the `/content`
//!   redirect) are absolute and canonical (`/drives/{id}/…`, also when the request
//!   said `/me/drive/…`), built from the sandbox base or the link base override.
//! - Delta: a first page (no token, or a deltaLink's token) computes the whole feed at
//!   once — a consistent snapshot — and the nextLinks page through it; changes made
//!   meanwhile are in the next deltaLink's feed. An incremental feed lists each changed
//!   item once in its latest state, in the order of its last change, preceded by its
//!   ancestor folders (as Graph reports parents of changed items) unless the request
//!   has `Prefer: deltaExcludeParent`. Delta items carry no `parentReference.path` and
//!   no `cTag` (provider-apis.md §2.3: ODB omits `cTag` in delta); deleted items are
//!   `{id, deleted, parentReference{driveId, driveType, id}}` only. A deleted folder is
//!   reported with every item below it (folder first). The first enumeration includes
//!   the root (`root: {}`), no deleted items.
//! - Tokens are opaque and carry a serial number; `expire_delta_tokens()` makes every
//!   token (deltaLinks and nextLinks) issued so far answer 410
//!   `resyncChangesApplyDifferences` with a `Location` that re-enumerates from scratch.
//!   A token that does not decode is a 400 `invalidRequest`. Timestamp tokens are not
//!   emulated (400).
//! - `$select` keeps the listed top-level members (unknown ones are ignored); `$top`
//!   (1..=1000) sets the page size of children and delta pages.
//! - Children are ordered by name (case-insensitive); names are unique per folder,
//!   case-insensitively (the control API refuses a taken name).
//! - `/content` of a folder: 404 `itemNotFound`. The download URL lives 5 minutes of
//!   sandbox time; after that, or with a wrong `tempauth`, 401.
//! - Access: sites' libraries are readable by every account; a OneDrive for Business
//!   drive by its owner only (others get 403 `accessDenied`). Scopes are not enforced
//!   on Graph calls.
//! - Faults: [`crate::Fault::RateLimit`] is 429 `activityLimitReached`; a
//!   [`crate::Fault::ServerError`] is `serviceNotAvailable` (503, with `Retry-After: 1`)
//!   or `generalException`; `ExpiredToken` is 401 `InvalidAuthenticationToken`.

#![allow(clippy::result_large_err)]

mod api;
pub mod control;
mod download;
mod model;
mod oauth;
mod quickxor;
mod wire;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::response::Response;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::faults::{FaultReplies, Faults};
use crate::oauth::OAuthServer;
use crate::{Op, TimeSource};
use model::{Drive, SiteRec, SpBlob, User};

pub use control::{Library, SharePointControl, Site};
pub use quickxor::{QuickXorHash, quick_xor_hash};

/// One served call of the Graph emulator.
pub type CallRecord = crate::faults::CallRecord<Endpoint>;

/// Lifetime of access tokens unless the configuration says otherwise.
pub(crate) const DEFAULT_ACCESS_TOKEN_TTL: Duration = Duration::from_secs(3599);

/// Lifetime of each refresh token (90 days; rotation makes it an idle timeout).
pub(crate) const REFRESH_TOKEN_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// Lifetime of a `/content` download URL (sandbox time).
pub(crate) const DOWNLOAD_URL_TTL: Duration = Duration::from_secs(300);

/// Default page size of children and delta pages.
pub(crate) const DEFAULT_PAGE_SIZE: usize = 200;

/// An emulated Graph endpoint (for fault injection and counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Endpoint {
    /// `GET /{tenant}/oauth2/v2.0/authorize`.
    Authorize,
    /// `POST /{tenant}/oauth2/v2.0/token`.
    Token,
    /// `GET /v1.0/me`.
    Me,
    /// `GET /v1.0/me/drive`, `/drives/{id}`, `/sites/{id}/drive`.
    Drive,
    /// `GET /v1.0/sites?search=`.
    Sites,
    /// `GET /v1.0/sites/{id}`.
    Site,
    /// `GET /v1.0/sites/{id}/drives`.
    SiteDrives,
    /// `GET …/root/children`, `…/items/{id}/children`.
    Children,
    /// `GET …/root`, `…/items/{id}`.
    Item,
    /// `GET …/root/delta` (every page, `token=latest` too).
    Delta,
    /// `GET …/items/{id}/content` (the 302).
    Content,
    /// `GET {download host}/{opaque}` (the bytes).
    Download,
}

impl Endpoint {
    /// The endpoint an operation class maps to: `List` is a children page,
    /// `StartCursor` and `Changes` are both delta calls, `Download` the bytes (not the
    /// 302); `Revoke` has none (Microsoft has no per-token revocation endpoint).
    pub fn of(op: Op) -> Option<Endpoint> {
        Some(match op {
            Op::Authorize => Endpoint::Authorize,
            Op::Token => Endpoint::Token,
            Op::Revoke => return None,
            Op::Account => Endpoint::Me,
            Op::List => Endpoint::Children,
            Op::StartCursor | Op::Changes => Endpoint::Delta,
            Op::Metadata => Endpoint::Item,
            Op::Download => Endpoint::Download,
        })
    }
}

/// Base URLs of the emulated Microsoft hosts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharePointUrls {
    /// Stands for `https://login.microsoftonline.com` (`/{tenant}/oauth2/v2.0/…`).
    pub login_base: String,
    /// Stands for `https://graph.microsoft.com` (`/v1.0/…`).
    pub graph_base: String,
    /// Stands for the tenant's `https://{tenant}.sharepoint.com` download host.
    pub download_base: String,
    /// The tenant's id (GUID), also accepted as the `{tenant}` path segment.
    pub tenant_id: String,
}

impl SharePointUrls {
    /// `{login_base}/{tenant}/oauth2/v2.0/authorize`.
    pub fn authorize_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/authorize", self.login_base)
    }

    /// `{login_base}/{tenant}/oauth2/v2.0/token`.
    pub fn token_url(&self, tenant: &str) -> String {
        format!("{}/{tenant}/oauth2/v2.0/token", self.login_base)
    }
}

/// A computed delta feed, paged by nextLinks.
#[derive(Debug)]
pub(crate) struct Feed {
    pub(crate) drive_id: String,
    /// Serial of the token that started it (expiry applies to its nextLinks too).
    pub(crate) serial: u64,
    pub(crate) items: Vec<Value>,
    /// The change sequence the feed covers up to (the deltaLink's position).
    pub(crate) upto: u64,
    pub(crate) top: usize,
    pub(crate) select: Option<String>,
}

/// A pre-authenticated download URL's grant.
pub(crate) struct DownloadGrant {
    pub(crate) tempauth: String,
    pub(crate) blob: Arc<SpBlob>,
    pub(crate) mime_type: String,
    pub(crate) expires_at: SystemTime,
}

impl fmt::Debug for DownloadGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DownloadGrant").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// The tenant's mutable state (one mutex, never held across an `.await`).
#[derive(Debug)]
pub(crate) struct Inner {
    /// `contoso.sharepoint.com`.
    pub(crate) host: String,
    pub(crate) users: Vec<User>,
    pub(crate) sites: Vec<SiteRec>,
    pub(crate) drives: BTreeMap<String, Drive>,
    /// Item id → drive id (item ids are unique tenant-wide).
    pub(crate) item_drive: HashMap<String, String>,
    /// The next change's sequence number (tenant-wide).
    pub(crate) seq: u64,
    pub(crate) link_base: Option<String>,
    pub(crate) duplicate_items: bool,
    pub(crate) rewrites_office: bool,
    pub(crate) children_page: usize,
    pub(crate) delta_page: usize,
    /// The next token serial; tokens below `token_floor` are expired.
    pub(crate) serial: u64,
    pub(crate) token_floor: u64,
    pub(crate) feeds: HashMap<u64, Feed>,
    pub(crate) next_feed: u64,
    pub(crate) downloads: HashMap<String, DownloadGrant>,
}

impl Inner {
    pub(crate) fn user(&self, id: &str) -> Option<&User> {
        self.users.iter().find(|u| u.id == id)
    }

    pub(crate) fn site(&self, id: &str) -> Option<&SiteRec> {
        self.sites.iter().find(|s| s.id.eq_ignore_ascii_case(id))
    }

    pub(crate) fn next_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    /// The drive holding item `id` (`None` for an unknown item).
    pub(crate) fn drive_of_item(&self, id: &str) -> Option<&Drive> {
        self.item_drive.get(id).and_then(|d| self.drives.get(d))
    }
}

/// Server-side state shared by the routes and the control handle.
pub(crate) struct SpState {
    /// The sandbox's own base (`http://127.0.0.1:PORT`).
    pub(crate) base_url: String,
    pub(crate) urls: SharePointUrls,
    clock: TimeSource,
    pub(crate) oauth: OAuthServer,
    pub(crate) faults: Faults<Endpoint>,
    inner: Mutex<Inner>,
}

impl fmt::Debug for SpState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpState").field("urls", &self.urls).finish_non_exhaustive()
    }
}

impl SpState {
    pub(crate) fn new(base_url: &str, clock: TimeSource, oauth: OAuthServer) -> Self {
        let tenant_id = model::new_guid();
        SpState {
            base_url: base_url.to_string(),
            urls: SharePointUrls {
                login_base: format!("{base_url}/sharepoint/login"),
                graph_base: format!("{base_url}/sharepoint/graph"),
                download_base: format!("{base_url}/sharepoint/download"),
                tenant_id,
            },
            faults: Faults::new(Arc::clone(&clock), SpFaultReplies { clock: Arc::clone(&clock) }),
            clock,
            oauth,
            inner: Mutex::new(Inner {
                host: "contoso.sharepoint.com".into(),
                users: Vec::new(),
                sites: Vec::new(),
                drives: BTreeMap::new(),
                item_drive: HashMap::new(),
                seq: 1,
                link_base: None,
                duplicate_items: false,
                rewrites_office: false,
                children_page: DEFAULT_PAGE_SIZE,
                delta_page: DEFAULT_PAGE_SIZE,
                serial: 0,
                token_floor: 0,
                feeds: HashMap::new(),
                next_feed: 1,
                downloads: HashMap::new(),
            }),
        }
    }

    pub(crate) fn now(&self) -> SystemTime {
        (self.clock)()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The base links are built from: the override, else the sandbox's own.
    pub(crate) fn link_base(&self, inner: &Inner) -> String {
        inner.link_base.clone().unwrap_or_else(|| self.base_url.clone())
    }
}

struct SpFaultReplies {
    clock: TimeSource,
}

impl FaultReplies for SpFaultReplies {
    fn rate_limited(&self, retry_after_secs: u64) -> Response {
        wire::throttled(429, retry_after_secs, (self.clock)())
    }

    fn server_error(&self, status: u16) -> Response {
        let now = (self.clock)();
        match status {
            429 => wire::throttled(429, 1, now),
            503 => wire::throttled(503, 1, now),
            401 => wire::unauthenticated("Access token validation failure.", now),
            s => wire::error(s, "generalException", "An unspecified error has occurred.", now),
        }
    }

    fn invalid_grant(&self) -> Response {
        oauth::invalid_grant_response(700_082, (self.clock)())
    }

    fn expired_token(&self) -> Response {
        wire::unauthenticated("Lifetime validation failed, the token is expired.", (self.clock)())
    }
}

/// All Graph, login and download routes.
pub(crate) fn router(state: Arc<SpState>) -> Router {
    Router::new()
        .route("/sharepoint/login/{tenant}/oauth2/v2.0/authorize", get(oauth::authorize))
        .route(oauth::DECISION_PATH, post(oauth::decision))
        .route("/sharepoint/login/{tenant}/oauth2/v2.0/token", post(oauth::token))
        .route("/sharepoint/graph/v1.0/{*rest}", get(api::graph))
        .route("/sharepoint/download/{opaque}", get(download::download))
        .with_state(state)
}

/// Query parameters (last value wins).
pub(crate) type Query = HashMap<String, String>;

pub(crate) fn query(raw: Option<&str>) -> Query {
    url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes()).into_owned().collect()
}
