//! Handlers, and what they share: authorization, tenant-scoped loading, audit.

mod connections;
mod grants;
mod oauth;

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, MethodRouter, on};
use extconn_core::ports::Provider;
use extconn_core::{AuditEvent, ConnKey, Connection, ConnectionId, Grant, GrantId, ProviderKind};

use crate::AppState;
use crate::identity::Identity;
use crate::problem::{ApiResult, Problem, ProblemKind};

pub(crate) fn dispatch(op: &str, filter: MethodFilter) -> MethodRouter<AppState> {
    match op {
        "listProviders" => on(filter, providers),
        "startAuthorization" => on(filter, oauth::start),
        "oauthCallback" => on(filter, oauth::callback),
        "listFolders" => on(filter, grants::folders),
        "createConnection" => on(filter, connections::create),
        "listConnections" => on(filter, connections::list),
        "getConnection" => on(filter, connections::get),
        "updateConnection" => on(filter, connections::update),
        "deleteConnection" => on(filter, connections::delete),
        "refreshConnection" => on(filter, connections::refresh),
        "listRuns" => on(filter, connections::runs),
        "listItems" => on(filter, connections::items),
        "openapi" => on(filter, openapi),
        other => unreachable!("ROUTES names an operation without a handler: {other}"),
    }
}

pub(crate) async fn not_found() -> Problem {
    Problem::not_found().detail("no such route")
}

pub(crate) async fn method_not_allowed() -> Problem {
    Problem::new(ProblemKind::MethodNotAllowed)
}

async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::document())
}

type Caller = Option<Extension<Identity>>;

/// The caller, who must be a client admin: none → 401, not an admin → 403.
pub(crate) fn admin(caller: Caller) -> ApiResult<Identity> {
    let Some(Extension(who)) = caller else { return Err(Problem::new(ProblemKind::Unauthenticated)) };
    if !who.is_client_admin {
        return Err(Problem::new(ProblemKind::Forbidden));
    }
    Ok(who)
}

impl AppState {
    pub(crate) fn now(&self) -> extconn_core::Timestamp {
        self.ports().clock.now()
    }

    pub(crate) async fn audit(&self, who: &Identity, action: &str, target: String) -> ApiResult<()> {
        let event = AuditEvent {
            client_id: who.client_id.clone(),
            actor: who.user_id.clone(),
            action: action.into(),
            target,
            at: self.now(),
        };
        self.ports().audit.record(&event).await?;
        Ok(())
    }

    /// The caller's client's connection; anything else is a 404 (existence is never revealed).
    pub(crate) async fn connection(&self, who: &Identity, id: &ConnectionId) -> ApiResult<Connection> {
        let key = ConnKey { client_id: who.client_id.clone(), connection_id: id.clone() };
        self.ports().connections.get(&key).await?.ok_or_else(Problem::not_found)
    }

    /// A grant the caller may use: their client's, and, until attached to a connection, only
    /// the admin who authorized it.
    pub(crate) async fn grant(&self, who: &Identity, id: &GrantId) -> ApiResult<Grant> {
        let g = self.ports().grants.get(&who.client_id, id).await?.ok_or_else(Problem::not_found)?;
        if !g.attached && g.created_by != who.user_id {
            return Err(Problem::not_found());
        }
        Ok(g)
    }

    pub(crate) fn provider(&self, kind: ProviderKind) -> ApiResult<Arc<dyn Provider>> {
        self.ports().provider(kind).ok_or_else(|| Problem::new(ProblemKind::ProviderNotConfigured))
    }

    /// An access token for the grant (refreshed single-flight when needed).
    pub(crate) async fn access(&self, grant: &Grant) -> ApiResult<extconn_core::Secret> {
        use extconn_core::tokens::TokenError;
        match self.inner.tokens.access_token(grant, None).await {
            Ok(t) => Ok(t),
            Err(TokenError::Reauth) => Err(Problem::new(ProblemKind::ReauthRequired)),
            Err(TokenError::NotConfigured) => Err(Problem::new(ProblemKind::ProviderNotConfigured)),
            Err(TokenError::Store(e)) => Err(e.into()),
            Err(TokenError::Provider(_) | TokenError::Busy) => {
                Err(Problem::new(ProblemKind::ProviderUnavailable))
            }
        }
    }
}

/// Maps a provider failure during an admin request.
pub(crate) fn provider_problem(e: extconn_core::ports::ProviderError) -> Problem {
    use extconn_core::ports::ProviderError as E;
    match e {
        E::Reauth(_) => Problem::new(ProblemKind::ReauthRequired),
        E::RateLimited { .. } | E::Transient(_) | E::Integrity(_) | E::Unauthorized => {
            Problem::new(ProblemKind::ProviderUnavailable)
        }
        // Our app refused by the provider: an operator problem, never shown as the user's.
        E::Config(reason) => {
            tracing::error!(%reason, "the provider refused this application's configuration");
            Problem::new(ProblemKind::ProviderUnavailable)
        }
        E::NotFound | E::Permanent(_) | E::CursorReset | E::NotImportable { .. } => {
            Problem::new(ProblemKind::FolderNotAccessible)
        }
    }
}

#[derive(serde::Serialize)]
struct ProviderView {
    provider: ProviderKind,
    name: &'static str,
    configured: bool,
}

/// GET /v1/providers
async fn providers(State(st): State<AppState>, caller: Caller) -> ApiResult<impl IntoResponse> {
    admin(caller)?;
    let list: Vec<ProviderView> = ProviderKind::ALL
        .into_iter()
        .map(|p| ProviderView {
            provider: p,
            name: match p {
                ProviderKind::GoogleDrive => "Google Drive",
                ProviderKind::Sharepoint => "SharePoint",
                ProviderKind::Dropbox => "Dropbox",
            },
            configured: st.ports().provider(p).is_some(),
        })
        .collect();
    Ok(Json(serde_json::json!({ "providers": list })))
}
