//! The OAuth connect flow (ARCHITECTURE §6): start → provider consent → callback.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use extconn_core::oauth::Callback;
use extconn_core::{ProviderKind, Secret};
use serde::Deserialize;

use super::{Caller, admin, one_of_providers};
use crate::AppState;
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::problem::{ApiResult, Problem, ProblemKind};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartBody {
    provider: String,
}

/// The cookie binding authorization requests to the browser that made them. The console and
/// the API must be same-site (it is `SameSite=Lax`, sent on the provider's top-level redirect).
pub const BINDING_COOKIE: &str = "extconn_oauth_binding";

/// The browser's binding value, if its cookie holds a well-formed one (43 base64url characters,
/// as minted by the use case).
fn binding_from(headers: &http::HeaderMap) -> Option<Secret> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| {
            *k == BINDING_COOKIE
                && v.len() == 43
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(|(_, v)| Secret::new(v))
}

/// POST /v1/connections/authorize
pub(crate) async fn start(
    State(st): State<AppState>,
    caller: Caller,
    headers: http::HeaderMap,
    JsonBody(body): JsonBody<StartBody>,
) -> ApiResult<Response> {
    let who = admin(caller)?;
    let kind = ProviderKind::parse(&body.provider)
        .ok_or_else(|| Problem::invalid("/provider", one_of_providers()))?;
    let redirect_uri = st.config().redirect_uri(kind, &headers);
    let started = st.oauth().start(&who, kind, &redirect_uri, binding_from(&headers)).await?;
    let secure = if st.config().public_base_url.starts_with("https://") { "; Secure" } else { "" };
    let cookie = format!(
        "{BINDING_COOKIE}={}; Path=/v1/oauth; Max-Age=600; HttpOnly; SameSite=Lax{secure}",
        started.binding.expose()
    );
    let mut resp = Json(serde_json::json!({
        "authorization_url": started.authorization_url,
        "expires_at": started.expires_at,
    }))
    .into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|e| Problem::internal(&e))?);
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The callback's answers never leak the URL (it carries the code) and are never cached.
fn harden(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// GET /v1/oauth/{provider}/callback (public). Never logs its query.
pub(crate) async fn callback(
    State(st): State<AppState>,
    headers: http::HeaderMap,
    path: PathParams,
    query: QueryParams,
) -> Response {
    harden(match callback_inner(&st, &headers, path, query).await {
        Ok(r) => r,
        Err(p) => p.into_response(),
    })
}

async fn callback_inner(
    st: &AppState,
    headers: &http::HeaderMap,
    path: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let kind = path.0.first().and_then(|p| ProviderKind::parse(p)).ok_or_else(Problem::not_found)?;
    let state =
        q.get("state").filter(|s| !s.is_empty()).ok_or_else(|| Problem::new(ProblemKind::InvalidState))?;
    let callback = Callback {
        provider: kind,
        state: Secret::new(state),
        binding: binding_from(headers),
        error: q.get("error").map(str::to_owned),
        code: q.get("code").filter(|c| !c.is_empty()).map(Secret::new),
        redirect_uri: st.config().redirect_uri(kind, headers),
    };
    let grant = st.oauth().complete(callback).await?.grant;
    let sep = if st.config().console_url.contains('?') { '&' } else { '?' };
    let location = format!("{}{sep}provider={}&grant_id={}", st.config().console_url, kind, grant.id);
    let mut resp = StatusCode::SEE_OTHER.into_response();
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_str(&location).map_err(|e| Problem::internal(&e))?);
    Ok(resp)
}
