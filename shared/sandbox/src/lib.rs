//! # extconn-sandbox: in-process provider emulators
//!
//! A test oracle for the cloud-folder-to-S3 sync product. [`Sandbox::start`] binds an
//! axum server on `127.0.0.1:0` inside the current tokio runtime and returns a cheap,
//! clone-able handle. The server emulates the parts of each provider's API the
//! connectors use, following `shared/reference/provider-apis.md` (wire shapes, error
//! bodies, cursors, OAuth with PKCE). Emulated today: **Dropbox API v2**
//! ([`dropbox`]), **Google Drive API v3** ([`google_drive`]) and **Microsoft Graph**
//! for SharePoint / OneDrive for Business ([`sharepoint`]).
//!
//! This crate depends on no other workspace crate on purpose: it is an independent
//! oracle, so a misunderstanding in a connector cannot be mirrored here.
//!
//! ## Layout
//!
//! The provider-neutral machinery is at the top: the OAuth authorization server
//! (`oauth`: clients, consent page, codes with PKCE, tokens, bearer checks, canaries),
//! fault injection and call counters ([`Fault`], `faults`), generated content
//! ([`Content`]), the control API ([`ProviderControl`], [`Op`], [`Node`]) and the
//! scaffolding of the HTTP control routes, and the clock ([`ManualClock`]). Each
//! provider module configures them with its endpoints, paths and error shapes and
//! keeps only its own wire formats, routes and model.
//!
//! Tests drive an emulator through a provider-neutral handle
//! ([`Sandbox::control`] → `Arc<dyn ProviderControl>`), through its own richer
//! handle ([`Sandbox::dropbox`] → [`DropboxControl`], [`Sandbox::google_drive`],
//! [`Sandbox::sharepoint`] → [`SharePointControl`]), or over HTTP.
//!
//! ## URL layout
//!
//! Every provider is mounted under its own prefix. With `base = sandbox.base_url()`:
//!
//! | Real host | Sandbox prefix | Routes |
//! |---|---|---|
//! | `www.dropbox.com` | `{base}/dropbox/www` | `GET /oauth2/authorize`, `POST /oauth2/authorize/decision` (consent form) |
//! | `api.dropboxapi.com` | `{base}/dropbox/api` | `POST /oauth2/token`, `POST /2/auth/token/revoke`, `/2/users/get_current_account`, `/2/files/list_folder`, `/2/files/list_folder/continue`, `/2/files/list_folder/get_latest_cursor`, `/2/files/get_metadata` |
//! | `content.dropboxapi.com` | `{base}/dropbox/content` | `POST /2/files/download` |
//! | `notify.dropboxapi.com` | `{base}/dropbox/notify` | `POST /2/files/list_folder/longpoll` |
//! | (none) | `{base}/_control/dropbox` | HTTP control API, see [`dropbox::control`] |
//! | `accounts.google.com` | `{base}/google_drive/accounts` | `GET /o/oauth2/v2/auth` (consent page) |
//! | `oauth2.googleapis.com` | `{base}/google_drive/oauth2` | `POST /token`, `POST /revoke` |
//! | `www.googleapis.com` | `{base}/google_drive/www` | `GET /drive/v3/about`, `/drive/v3/files[/{id}[/export]]`, `/drive/v3/changes[/startPageToken]`, `/drive/v3/drives` |
//! | (none) | `{base}/_control/google_drive` | HTTP control API, see [`google_drive::control`] |
//! | `login.microsoftonline.com` | `{base}/sharepoint/login` | `GET /{tenant}/oauth2/v2.0/authorize` (consent page), `POST /{tenant}/oauth2/v2.0/token` |
//! | `graph.microsoft.com` | `{base}/sharepoint/graph` | `GET /v1.0/me`, `/v1.0/me/drive[/root[/children\|/delta]]`, `/v1.0/sites?search=`, `/v1.0/sites/{id}[/drives]`, `/v1.0/drives/{id}[/root[/children\|/delta]]`, `/v1.0/drives/{id}/items/{id}[/children\|/delta\|/content]` |
//! | `{tenant}.sharepoint.com` | `{base}/sharepoint/download` | `GET /{opaque}?…&tempauth=…` (pre-authenticated, `Range`) |
//! | (none) | `{base}/_control/sharepoint` | HTTP control API, see [`sharepoint::control`] |
//!
//! [`DropboxControl::urls`] returns the four bases (and [`ProviderControl::urls`] the
//! same as a map `www`/`api`/`content`/`notify`), so a connector configured with
//! `api_base` appends `/2/files/list_folder` or `/oauth2/token` exactly as it would
//! to `https://api.dropboxapi.com`.
//!
//! ## Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), extconn_sandbox::ControlError> {
//! use extconn_sandbox::{Content, OAuthClient, Op, Fault, Sandbox, SandboxConfig, Service};
//! let sandbox = Sandbox::start(SandboxConfig {
//!     clients: vec![OAuthClient {
//!         service: Service::Dropbox,
//!         client_id: "app-key".into(),
//!         client_secret: "app-secret".into(),
//!         redirect_uris: vec!["http://localhost/cb".into()],
//!     }],
//!     ..SandboxConfig::default()
//! })
//! .await;
//!
//! // Any provider, without naming it:
//! let ctl = sandbox.control(Service::Dropbox);
//! let acct = ctl.create_account("Ada Lovelace", "ada@example.com");
//! let root = ctl.root(&acct)?;
//! let photos = ctl.add_folder(&acct, &root, "Photos")?;
//! let file = ctl.add_file(&acct, &photos.id, "a.jpg", Content::text("hello"))?;
//! ctl.move_entry(&acct, &file.id, Some(&root), Some("b.jpg"))?;
//! ctl.inject(Op::Download, Fault::ServerError(503), 1)?;
//! let tokens = ctl.mint_tokens(&acct, "app-key")?;
//!
//! // Dropbox's own handle, by paths:
//! let dbx = sandbox.dropbox();
//! let ada = dbx.accounts()[0].clone();
//! dbx.add_file(&ada, "/Photos/c.jpg", Content::text("more"));
//! # let _ = tokens;
//! # Ok(())
//! # }
//! ```
//!
//! ## Dropbox names at the root
//!
//! [`AccountId`], [`DropboxControl`], [`DropboxUrls`], [`EntryInfo`], [`Endpoint`],
//! [`DropboxContentHasher`] and [`content_hash`] are Dropbox's, re-exported here for
//! existing callers; new code names them through [`dropbox`].

mod content;
mod control;
pub mod dropbox;
mod faults;
pub mod google_drive;
mod oauth;
pub mod sharepoint;
mod time;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

pub use content::{Content, ContentHasher, Sha256Hex};
pub use control::{ControlError, MintedTokens, Node, Op, ProviderControl};
pub use dropbox::{
    AccountId, DropboxContentHasher, DropboxControl, DropboxUrls, Endpoint, EntryInfo, content_hash,
};
pub use faults::{CallRecord, Fault};
pub use google_drive::GoogleDriveControl;
pub use sharepoint::SharePointControl;
pub use time::{ManualClock, format_timestamp};

/// A time source: returns "now". Tests pass a virtual clock (see [`ManualClock`]).
pub type TimeSource = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// An emulated cloud service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Service {
    /// Dropbox API v2.
    Dropbox,
    /// Google Drive API v3.
    GoogleDrive,
    /// Microsoft Graph v1.0 (SharePoint, OneDrive for Business).
    Sharepoint,
}

impl Service {
    /// Every emulated service.
    pub const ALL: &'static [Service] = &[Service::Dropbox, Service::GoogleDrive, Service::Sharepoint];

    /// The service's URL prefix and name: `dropbox`, `google_drive`, `sharepoint`.
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Dropbox => "dropbox",
            Service::GoogleDrive => "google_drive",
            Service::Sharepoint => "sharepoint",
        }
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An OAuth client (an "app") registered with one emulated service.
///
/// `client_secret` may be empty: the client is then *public* and authenticates with
/// `client_id` + PKCE only. A non-empty secret makes it *confidential*: the token
/// endpoint then always requires the secret (body or HTTP Basic), and the PKCE
/// verifier as well when the authorization request carried a challenge.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// The service the app is registered with.
    pub service: Service,
    /// App key / client id.
    pub client_id: String,
    /// App secret; empty for a public (PKCE-only) client. Recorded as a canary.
    pub client_secret: String,
    /// Allowed redirect URIs, compared by exact string equality.
    pub redirect_uris: Vec<String>,
}

impl fmt::Debug for OAuthClient {
    // The secret is a canary: never print it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClient")
            .field("service", &self.service)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uris", &self.redirect_uris)
            .finish()
    }
}

/// Configuration of a [`Sandbox`].
#[derive(Clone, Default)]
pub struct SandboxConfig {
    /// Registered OAuth clients (apps), each with the service it belongs to.
    pub clients: Vec<OAuthClient>,
    /// Time source for token/code expiry, modification times and call-log times.
    /// `None` = `SystemTime::now`.
    pub now: Option<TimeSource>,
    /// Lifetime of issued access tokens; `None` = each provider's own (Dropbox:
    /// 14400 s, Google and Microsoft: 3599 s).
    pub access_token_ttl: Option<Duration>,
}

impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("clients", &self.clients)
            .field("now", &self.now.as_ref().map(|_| "<custom time source>"))
            .field("access_token_ttl", &self.access_token_ttl)
            .finish()
    }
}

/// Handle to a running sandbox server. Cheap to clone. The server runs until
/// [`Sandbox::shutdown`] is called or the tokio runtime it was started on shuts down
/// (dropping the handle does not stop it, so `Sandbox::start(..).await.dropbox()` is
/// fine).
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<SandboxInner>,
}

struct SandboxInner {
    base_url: String,
    addr: SocketAddr,
    dropbox: DropboxControl,
    google_drive: GoogleDriveControl,
    sharepoint: SharePointControl,
    shutdown: Mutex<Option<oneshot::Sender<()>>>,
}

impl fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sandbox").field("base_url", &self.inner.base_url).finish()
    }
}

impl Sandbox {
    /// Binds `127.0.0.1:0`, spawns the server on the current tokio runtime and returns
    /// the handle.
    ///
    /// # Panics
    /// If the listener cannot be bound (use [`Sandbox::try_start`] to handle that) or
    /// when called outside a tokio runtime.
    pub async fn start(config: SandboxConfig) -> Sandbox {
        match Self::try_start(config).await {
            Ok(s) => s,
            Err(e) => panic!("extconn-sandbox: cannot bind 127.0.0.1:0: {e}"),
        }
    }

    /// Like [`Sandbox::start`] but returns the bind error.
    pub async fn try_start(config: SandboxConfig) -> io::Result<Sandbox> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let base_url = format!("http://{addr}");
        let clock: TimeSource = config.now.clone().unwrap_or_else(|| Arc::new(SystemTime::now));
        let dropbox = DropboxControl::new(&base_url, Arc::clone(&clock), &config);
        let google_drive = GoogleDriveControl::new(&base_url, Arc::clone(&clock), &config);
        let sharepoint = SharePointControl::new(&base_url, clock, &config);
        let app = axum::Router::new()
            .merge(dropbox::router(dropbox.state()))
            .merge(dropbox::control::router(dropbox.clone()))
            .merge(google_drive::router(google_drive.state()))
            .merge(google_drive::control::http::router(google_drive.clone()))
            .merge(sharepoint::router(sharepoint.state()))
            .merge(sharepoint::control::http::router(sharepoint.clone()));
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await;
            if let Err(e) = served {
                tracing::warn!(error = %e, "sandbox server stopped with an error");
            }
        });
        tracing::debug!(%base_url, "sandbox started");
        Ok(Sandbox {
            inner: Arc::new(SandboxInner {
                base_url,
                addr,
                dropbox,
                google_drive,
                sharepoint,
                shutdown: Mutex::new(Some(tx)),
            }),
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The Dropbox emulator's own control handle (URLs, accounts, files by path,
    /// tokens, faults by endpoint).
    pub fn dropbox(&self) -> DropboxControl {
        self.inner.dropbox.clone()
    }

    /// The Google Drive emulator's own control handle (native docs, shortcuts, trash,
    /// shared drives, per-file errors, faults by endpoint).
    pub fn google_drive(&self) -> GoogleDriveControl {
        self.inner.google_drive.clone()
    }

    /// The Microsoft Graph (SharePoint / OneDrive for Business) emulator's own control
    /// handle (sites, libraries, delta-feed quirks, link base, tokens, faults by endpoint).
    pub fn sharepoint(&self) -> SharePointControl {
        self.inner.sharepoint.clone()
    }

    /// A provider-neutral control handle of one service's emulator (same state as the
    /// provider's own handle).
    pub fn control(&self, service: Service) -> Arc<dyn ProviderControl> {
        match service {
            Service::Dropbox => Arc::new(self.inner.dropbox.clone()),
            Service::GoogleDrive => Arc::new(self.inner.google_drive.clone()),
            Service::Sharepoint => Arc::new(self.inner.sharepoint.clone()),
        }
    }

    /// Every secret issued or seen by any emulated provider (see
    /// [`ProviderControl::canaries`]), for scanning logs and bodies for leaks.
    pub fn canaries(&self) -> Vec<String> {
        Service::ALL.iter().flat_map(|s| self.control(*s).canaries()).collect()
    }

    /// Stops accepting connections (graceful: in-flight requests finish).
    pub fn shutdown(&self) {
        let tx = self.inner.shutdown.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(tx) = tx {
            let _ = tx.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_hides_client_secrets() {
        let config = SandboxConfig {
            clients: vec![OAuthClient {
                service: Service::Dropbox,
                client_id: "app".into(),
                client_secret: "CANARY-SECRET".into(),
                redirect_uris: vec!["http://localhost/cb".into()],
            }],
            ..SandboxConfig::default()
        };
        let text = format!("{config:?}");
        assert!(text.contains("app") && text.contains("Dropbox"), "{text}");
        assert!(!text.contains("CANARY-SECRET"), "{text}");
        assert_eq!(config.access_token_ttl, None);
    }

    #[test]
    fn service_names() {
        assert_eq!(Service::Dropbox.to_string(), "dropbox");
        assert_eq!(serde_json::to_value(Service::Dropbox).ok(), Some(serde_json::json!("dropbox")));
        assert!(Service::ALL.contains(&Service::Dropbox));
        assert_eq!(Service::Sharepoint.to_string(), "sharepoint");
        assert_eq!(serde_json::to_value(Service::Sharepoint).ok(), Some(serde_json::json!("sharepoint")));
    }
}
