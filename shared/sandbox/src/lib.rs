//! # extconn-sandbox: in-process provider emulators (Dropbox API v2)
//!
//! A test oracle for the cloud-folder-to-S3 sync product. [`Sandbox::start`] binds an
//! axum server on `127.0.0.1:0` inside the current tokio runtime and returns a cheap,
//! clone-able handle. The server emulates the parts of the Dropbox API v2 the connector
//! uses, following `shared/reference/provider-apis.md` §3 (wire shapes, `.tag` unions,
//! error bodies, cursors, OAuth with PKCE), and is driven by tests through an
//! in-process control API ([`DropboxControl`]) or the equivalent HTTP control routes.
//!
//! This crate depends on no other workspace crate on purpose: it is an independent
//! oracle, so a misunderstanding in the connector cannot be mirrored here.
//!
//! ## URL layout
//!
//! Every provider is mounted under its own prefix so Google Drive and Microsoft Graph
//! can later join the same server. With `base = sandbox.base_url()`:
//!
//! | Real host | Sandbox prefix | Routes |
//! |---|---|---|
//! | `www.dropbox.com` | `{base}/dropbox/www` | `GET /oauth2/authorize`, `POST /oauth2/authorize/decision` (consent form) |
//! | `api.dropboxapi.com` | `{base}/dropbox/api` | `POST /oauth2/token`, `POST /2/auth/token/revoke`, `/2/users/get_current_account`, `/2/files/list_folder`, `/2/files/list_folder/continue`, `/2/files/list_folder/get_latest_cursor`, `/2/files/get_metadata` |
//! | `content.dropboxapi.com` | `{base}/dropbox/content` | `POST /2/files/download` |
//! | `notify.dropboxapi.com` | `{base}/dropbox/notify` | `POST /2/files/list_folder/longpoll` |
//! | (none) | `{base}/_control/dropbox` | HTTP control API, see [`dropbox::control`] |
//!
//! [`DropboxControl::urls`] returns the four bases, so a connector configured with
//! `api_base` appends `/2/files/list_folder` or `/oauth2/token` exactly as it would to
//! `https://api.dropboxapi.com`.
//!
//! ## Example
//!
//! ```no_run
//! # async fn demo() {
//! use extconn_sandbox::{Content, OAuthClient, Sandbox, SandboxConfig};
//! let sandbox = Sandbox::start(SandboxConfig {
//!     dropbox_clients: vec![OAuthClient {
//!         client_id: "app-key".into(),
//!         client_secret: "app-secret".into(),
//!         redirect_uris: vec!["http://localhost/cb".into()],
//!     }],
//!     ..SandboxConfig::default()
//! })
//! .await;
//! let dbx = sandbox.dropbox();
//! let acct = dbx.create_account("Ada Lovelace", "ada@example.com");
//! dbx.add_file(&acct, "/Photos/a.jpg", Content::text("hello"));
//! let (access, _refresh) = dbx.mint_tokens(&acct, "app-key");
//! # let _ = access;
//! # }
//! ```

pub mod dropbox;
mod time;

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::oneshot;

pub use dropbox::{
    AccountId, CallRecord, Content, ControlError, DropboxControl, DropboxUrls, Endpoint, EntryInfo, Fault,
    content::DropboxContentHasher, content_hash,
};
pub use time::{ManualClock, format_timestamp};

/// A time source: returns "now". Tests pass a virtual clock (see [`ManualClock`]).
pub type TimeSource = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// An OAuth client (a Dropbox "app") registered with the sandbox.
///
/// `client_secret` may be empty: the client is then *public* and authenticates with
/// `client_id` + PKCE only. A non-empty secret makes it *confidential*: the token
/// endpoint then always requires the secret (body or HTTP Basic), and the PKCE
/// verifier as well when the authorization request carried a challenge.
#[derive(Clone, PartialEq, Eq)]
pub struct OAuthClient {
    /// App key.
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
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .field("redirect_uris", &self.redirect_uris)
            .finish()
    }
}

/// Configuration of a [`Sandbox`].
#[derive(Clone)]
pub struct SandboxConfig {
    /// Registered Dropbox OAuth clients (apps).
    pub dropbox_clients: Vec<OAuthClient>,
    /// Time source for token/code expiry, `server_modified` and call-log times.
    /// `None` = `SystemTime::now`.
    pub now: Option<TimeSource>,
    /// Lifetime of issued access tokens (default 14400 s, as Dropbox).
    pub access_token_ttl: Duration,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            dropbox_clients: Vec::new(),
            now: None,
            access_token_ttl: Duration::from_secs(14_400),
        }
    }
}

impl fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("dropbox_clients", &self.dropbox_clients)
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
        let dropbox = DropboxControl::new(base_url.clone(), clock, &config);
        let app = axum::Router::new()
            .merge(dropbox::router(dropbox.state()))
            .merge(dropbox::control::router(dropbox.clone()));
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
            inner: Arc::new(SandboxInner { base_url, addr, dropbox, shutdown: Mutex::new(Some(tx)) }),
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

    /// The Dropbox emulator's control handle (URLs, accounts, files, tokens, faults).
    pub fn dropbox(&self) -> DropboxControl {
        self.inner.dropbox.clone()
    }

    /// Every secret issued or seen by any emulated provider (see
    /// [`DropboxControl::canaries`]), for scanning logs and bodies for leaks.
    pub fn canaries(&self) -> Vec<String> {
        self.inner.dropbox.canaries()
    }

    /// Stops accepting connections (graceful: in-flight requests finish).
    pub fn shutdown(&self) {
        let tx = self.inner.shutdown.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(tx) = tx {
            let _ = tx.send(());
        }
    }
}
