//! The admin HTTP API (ARCHITECTURE §5, §6) as one axum router, served by the
//! `connections-api` and `oauth-callback` Lambdas (through lambda_http) and by local mode.
//!
//! - [`router`] builds it from [`ROUTES`], the single table the OpenAPI document is built from
//!   too, so the two cannot disagree.
//! - Identity comes from a request extension ([`identity`]); errors are problem+json
//!   ([`problem`]); bodies, paths and queries are extracted strictly ([`extract`]).

pub mod console;
pub mod extract;
mod handlers;
pub mod identity;
pub mod openapi;
pub mod paging;
pub mod problem;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::routing::MethodFilter;
use extconn_core::Ports;
use extconn_core::connections::Connections;
use extconn_core::oauth::OAuthFlow;
use extconn_core::tokens::{TokenPolicy, Tokens};
use http::Method;

pub use console::{ConsolePage, LocalUser};
pub use identity::{ClaimNames, DevAuth, Identity};
pub use paging::PageTokens;
pub use problem::{Problem, ProblemKind};

/// Deployment settings of the API.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// The API's public origin, e.g. `https://api.example.com`: OAuth redirect URIs are
    /// `{public_base_url}/v1/oauth/{provider}/callback` (registered exactly at each provider).
    /// Empty: `https://` + the request's `Host` (behind API Gateway, the API's own domain; a
    /// forged Host only yields a redirect URI the provider refuses).
    pub public_base_url: String,
    /// Where the callback sends the browser (the console, [`console`]): `?provider=…&grant_id=…`
    /// (and `&reconnected=1` when an existing grant was reconnected) after consent, or
    /// `?provider=…&error=<problem type slug>` when a browser's authorization failed.
    pub console_url: String,
    /// Lifetime of an authorization request (state + PKCE verifier).
    pub state_ttl: chrono::Duration,
    /// Seconds between two auto syncs of a new connection.
    pub sync_interval_secs: u64,
    /// The console page's setup.
    pub console: ConsolePage,
}

impl ApiConfig {
    pub fn new(public_base_url: impl Into<String>, console_url: impl Into<String>) -> Self {
        Self {
            public_base_url: public_base_url.into().trim_end_matches('/').to_owned(),
            console_url: console_url.into(),
            state_ttl: extconn_core::oauth::DEFAULT_STATE_TTL,
            sync_interval_secs: extconn_core::connections::SYNC_INTERVAL_SECS,
            console: ConsolePage::default(),
        }
    }

    pub fn redirect_uri(&self, provider: extconn_core::ProviderKind, headers: &http::HeaderMap) -> String {
        let base = if self.public_base_url.is_empty() {
            let host = headers.get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("localhost");
            format!("https://{host}")
        } else {
            self.public_base_url.clone()
        };
        format!("{base}/v1/oauth/{}/callback", provider.as_str())
    }
}

/// What every handler shares: the core's admin use cases, and the ports for read-only queries.
#[derive(Clone, Debug)]
pub struct AppState {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    ports: Ports,
    connections: Connections,
    oauth: OAuthFlow,
    config: ApiConfig,
    pages: PageTokens,
}

impl AppState {
    pub fn new(ports: Ports, config: ApiConfig, pages: PageTokens) -> Self {
        let tokens = Tokens::new(ports.clone(), TokenPolicy::default());
        let connections =
            Connections::new(ports.clone(), tokens).with_sync_interval(config.sync_interval_secs);
        let oauth = OAuthFlow::new(ports.clone(), config.state_ttl);
        Self { inner: Arc::new(Inner { ports, connections, oauth, config, pages }) }
    }
    fn ports(&self) -> &Ports {
        &self.inner.ports
    }
    fn connections(&self) -> &Connections {
        &self.inner.connections
    }
    fn oauth(&self) -> &OAuthFlow {
        &self.inner.oauth
    }
    fn config(&self) -> &ApiConfig {
        &self.inner.config
    }
}

/// Every route: (method, path template, operation id). The router and the OpenAPI document
/// are both built from this table.
pub const ROUTES: &[(Method, &str, &str)] = &[
    (Method::GET, "/v1/providers", "listProviders"),
    (Method::POST, "/v1/connections/authorize", "startAuthorization"),
    (Method::GET, "/v1/oauth/{provider}/callback", "oauthCallback"),
    (Method::GET, "/v1/grants/{grant}/folders", "listFolders"),
    (Method::POST, "/v1/connections", "createConnection"),
    (Method::GET, "/v1/connections", "listConnections"),
    (Method::GET, "/v1/connections/{id}", "getConnection"),
    (Method::PATCH, "/v1/connections/{id}", "updateConnection"),
    (Method::DELETE, "/v1/connections/{id}", "deleteConnection"),
    (Method::POST, "/v1/connections/{id}/refresh", "refreshConnection"),
    (Method::POST, "/v1/connections/{id}/retry-failed", "retryFailed"),
    (Method::POST, "/v1/connections/{id}/confirm-deletions", "confirmDeletions"),
    (Method::GET, "/v1/connections/{id}/runs", "listRuns"),
    (Method::GET, "/v1/connections/{id}/items", "listItems"),
    (Method::GET, "/v1/openapi.json", "openapi"),
];

/// The one router: the API and the console page. Identity must be put in the request
/// extensions by an outer layer ([`DevAuth::layer`] locally, the Lambda adapter on AWS).
pub fn router(state: AppState) -> Router {
    let mut r = Router::new();
    for (method, path, op) in ROUTES {
        let filter = MethodFilter::try_from(method.clone()).unwrap_or(MethodFilter::GET);
        r = r.route(path, handlers::dispatch(op, filter));
    }
    r.merge(console::router())
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::method_not_allowed)
        .with_state(state)
        .layer(axum::middleware::from_fn(handlers::limits))
        .layer(axum::middleware::map_response(handlers::security_headers))
}
