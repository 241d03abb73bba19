//! Handlers, and what they share: the admin check. They only translate HTTP: extract and
//! validate, call a core use case (`extconn_core::connections`, `extconn_core::oauth`) as the
//! calling admin, and build the response; every outcome of a use case maps to a problem type
//! (`From<UseCaseError> for Problem`).

mod connections;
mod grants;
mod oauth;

use axum::Extension;
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::{MethodFilter, MethodRouter, on};
use extconn_core::{Actor, ProviderKind};

use crate::AppState;
use crate::identity::Identity;
use crate::problem::{ApiResult, Problem, ProblemKind};

pub(crate) fn dispatch(op: &str, filter: MethodFilter) -> MethodRouter<AppState> {
    match op {
        "listProviders" => on(filter, providers),
        "startAuthorization" => on(filter, oauth::start),
        // Every answer of the callback route carries its security headers: the extractors'
        // rejections, and its 405 (the route's own fallback, set here so that the layer wraps
        // it; the router's `method_not_allowed_fallback` only fills in routes without one).
        "oauthCallback" => on(filter, oauth::callback)
            .fallback(method_not_allowed)
            .layer(axum::middleware::map_response(oauth::harden)),
        "listFolders" => on(filter, grants::folders),
        "createConnection" => on(filter, connections::create),
        "listConnections" => on(filter, connections::list),
        "getConnection" => on(filter, connections::get),
        "updateConnection" => on(filter, connections::update),
        "deleteConnection" => on(filter, connections::delete),
        "refreshConnection" => on(filter, connections::refresh),
        "retryFailed" => on(filter, connections::retry_failed),
        "confirmDeletions" => on(filter, connections::confirm_deletions),
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
    Problem::new(ProblemKind::MethodNotAllowed).detail("this route does not take this method")
}

/// Longest accepted request target (path and query), in bytes.
pub const MAX_URI: usize = 8 * 1024;
/// Largest accepted header section (names and values, in bytes) and most header fields.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
pub const MAX_HEADERS: usize = 64;

/// The HTTP layer's own limits, answered as problem+json (414, 431) before any route runs.
/// They sit below the server's (hyper answers 414 / 431 itself, with no body, past a 64 KiB
/// URI, 100 header fields or its ~400 KiB read buffer; API Gateway answers its own past its
/// 10 KiB of request line and headers), so that what reaches the router is refused in the
/// catalog's words.
pub(crate) async fn limits(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > MAX_URI {
        return Problem::new(ProblemKind::UriTooLong)
            .detail("the limit is 8 KiB of path and query")
            .into_response();
    }
    let headers = req.headers();
    let bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len()).sum();
    if headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Problem::new(ProblemKind::HeadersTooLarge)
            .detail("the limits are 16 KiB of headers and 64 header fields")
            .into_response();
    }
    next.run(req).await
}

/// What every answer carries unless its route set its own (the console page sets a CSP of its
/// own, [`crate::console`]): never sniffed, never cached (answers name users, folders and
/// accounts), never rendered or framed.
pub(crate) async fn security_headers(mut resp: axum::response::Response) -> axum::response::Response {
    use http::{HeaderValue, header};
    let h = resp.headers_mut();
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    resp
}

async fn openapi() -> impl IntoResponse {
    Json(crate::openapi::document())
}

type Caller = Option<Extension<Identity>>;

/// The caller, who must be a client admin: none → 401, not an admin → 403. The use cases act
/// as the returned [`Actor`].
pub(crate) fn admin(caller: Caller) -> ApiResult<Actor> {
    let Some(Extension(who)) = caller else { return Err(Problem::new(ProblemKind::Unauthenticated)) };
    if !who.is_client_admin {
        return Err(Problem::new(ProblemKind::Forbidden));
    }
    Ok(Actor { client_id: who.client_id, user_id: who.user_id, display_name: who.display_name })
}

/// The reason given for a provider string that is not one of ours.
pub(crate) fn one_of_providers() -> String {
    let names: Vec<&str> = ProviderKind::ALL.iter().map(|k| k.as_str()).collect();
    format!("one of {}", names.join(", "))
}

impl AppState {
    pub(crate) fn now(&self) -> extconn_core::Timestamp {
        self.ports().clock.now()
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
            name: p.display_name(),
            configured: st.ports().provider(p).is_some(),
        })
        .collect();
    Ok(Json(serde_json::json!({ "providers": list })))
}
