//! Connections: create, the management table, details, toggle, delete, Refresh Items, retry
//! failed files, confirm held deletions, history.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use extconn_core::connections::{NewConnection, RefreshOutcome};
use extconn_core::{Actor, Connection, FolderLocator, Grant, GrantId, ItemState, ProviderKind, RunId};
use serde::Deserialize;

use super::grants::{check_drive_id, check_id};
use super::{Caller, admin, one_of_providers};
use crate::AppState;
use crate::extract::{JsonBody, OptionalJsonBody, PathParams, QueryParams};
use crate::problem::{ApiResult, Problem, ProblemKind};
use crate::views::{ConnectionDetails, ConnectionRow, ItemView, Page, RunView};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    grant_id: String,
    folder_id: String,
    /// The folder's drive, as the picker returned it (absent where the provider has none).
    #[serde(default)]
    drive_id: Option<String>,
    auto_sync: bool,
}

async fn details(st: &AppState, c: Connection) -> ApiResult<ConnectionDetails> {
    let d = st.connections().details(c).await?;
    Ok(ConnectionDetails::new(&d, st.now()))
}

/// POST /v1/connections
pub(crate) async fn create(
    State(st): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<CreateBody>,
) -> ApiResult<Response> {
    let who = admin(caller)?;
    let grant_id: GrantId =
        body.grant_id.parse().map_err(|_| Problem::invalid("/grant_id", "not a grant id"))?;
    let grant = st.connections().grant(&who, &grant_id).await?;
    check_id(&st, grant.grant().provider, &body.folder_id, "/folder_id")?;
    if let Some(d) = &body.drive_id {
        check_drive_id(d, "/drive_id")?;
    }
    // The picker's locator, unchanged.
    let folder = FolderLocator { folder_id: body.folder_id, drive_id: body.drive_id };
    let new = NewConnection { folder, auto_sync: body.auto_sync };
    let conn = st.connections().create(&who, grant, new).await?;
    let location = format!("/v1/connections/{}", conn.id);
    let mut resp = (StatusCode::CREATED, Json(details(&st, conn).await?)).into_response();
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    Ok(resp)
}

/// GET /v1/connections?provider=&page=&limit=
pub(crate) async fn list(
    State(st): State<AppState>,
    caller: Caller,
    q: QueryParams,
) -> ApiResult<impl IntoResponse> {
    let who = admin(caller)?;
    q.only(&["provider", "page", "limit"])?;
    let provider = q
        .get("provider")
        .map(|p| ProviderKind::parse(p).ok_or_else(|| Problem::invalid("provider", one_of_providers())))
        .transpose()?;
    let limit = q.limit()?;
    let scope = format!("connections:{}", q.get("provider").unwrap_or(""));
    let offset = offset(&st, &who, &scope, &q)?;
    let all = st.ports().connections.list(&who.client_id, provider).await?;
    let now = st.now();
    let shown: Vec<&Connection> = all.iter().skip(offset).take(limit).collect();
    // Each row names its account: one read per grant on the page (an admin connects a handful).
    let mut grants: std::collections::BTreeMap<&GrantId, Option<Grant>> = std::collections::BTreeMap::new();
    for c in &shown {
        if !grants.contains_key(&c.grant_id) {
            grants.insert(&c.grant_id, st.ports().grants.get(&who.client_id, &c.grant_id).await?);
        }
    }
    let items: Vec<ConnectionRow> = shown
        .iter()
        .map(|c| ConnectionRow::new(c, grants.get(&c.grant_id).and_then(Option::as_ref), now))
        .collect();
    let next = (all.len() > offset + limit)
        .then(|| st.inner.pages.issue(&who.client_id, &scope, &(offset + limit).to_string()));
    Ok(Json(Page { items, next_page: next }))
}

fn offset(st: &AppState, who: &Actor, scope: &str, q: &QueryParams) -> ApiResult<usize> {
    match q.get("page") {
        None => Ok(0),
        Some(t) => st
            .inner
            .pages
            .open(&who.client_id, scope, t)?
            .parse()
            .map_err(|_| Problem::new(ProblemKind::InvalidPageToken)),
    }
}

/// GET /v1/connections/{id}
pub(crate) async fn get(
    State(st): State<AppState>,
    caller: Caller,
    path: PathParams,
) -> ApiResult<impl IntoResponse> {
    let who = admin(caller)?;
    let c = st.connections().get(&who, &path.id()?).await?;
    Ok(Json(details(&st, c).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateBody {
    auto_sync: bool,
}

/// PATCH /v1/connections/{id}
pub(crate) async fn update(
    State(st): State<AppState>,
    caller: Caller,
    path: PathParams,
    JsonBody(body): JsonBody<UpdateBody>,
) -> ApiResult<impl IntoResponse> {
    let who = admin(caller)?;
    let updated = st.connections().set_auto_sync(&who, &path.id()?, body.auto_sync).await?;
    Ok(Json(details(&st, updated).await?))
}

/// DELETE /v1/connections/{id}: the assets stay; the grant is retired with its last connection
/// (see `Connections::delete`).
pub(crate) async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    path: PathParams,
) -> ApiResult<StatusCode> {
    let who = admin(caller)?;
    st.connections().delete(&who, &path.id()?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// POST /v1/connections/{id}/refresh ("Refresh Items"): 202 with the run that will sync, new
/// or already open.
pub(crate) async fn refresh(
    State(st): State<AppState>,
    caller: Caller,
    path: PathParams,
) -> ApiResult<Response> {
    let who = admin(caller)?;
    let out = st.connections().refresh(&who, &path.id()?).await?;
    Ok(accepted(&out))
}

/// 202 `{run_id, status, started}`: the run that will do it, new (`started`) or already open.
fn accepted(out: &RefreshOutcome) -> Response {
    let body = serde_json::json!({
        "run_id": out.run_id.to_string(),
        "status": out.status,
        "started": out.started,
    });
    (StatusCode::ACCEPTED, Json(body)).into_response()
}

/// POST /v1/connections/{id}/retry-failed: every failed file is tried again by the open run or
/// a new one, whatever its backoff (and whatever Auto sync says).
pub(crate) async fn retry_failed(
    State(st): State<AppState>,
    caller: Caller,
    path: PathParams,
) -> ApiResult<Response> {
    let who = admin(caller)?;
    let out = st.connections().retry_failed(&who, &path.id()?).await?;
    Ok(accepted(&out))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConfirmBody {
    /// `apply` (the default) or `discard`.
    #[serde(default)]
    action: Option<String>,
}

/// POST /v1/connections/{id}/confirm-deletions `{action?}`: the admin's answer to the
/// mass-delete guard; no body means `apply`.
pub(crate) async fn confirm_deletions(
    State(st): State<AppState>,
    caller: Caller,
    path: PathParams,
    OptionalJsonBody(body): OptionalJsonBody<ConfirmBody>,
) -> ApiResult<Response> {
    let who = admin(caller)?;
    let apply = match body.unwrap_or_default().action.as_deref() {
        None | Some("apply") => true,
        Some("discard") => false,
        Some(_) => return Err(Problem::invalid("/action", "one of apply, discard")),
    };
    let out = st.connections().confirm_deletions(&who, &path.id()?, apply).await?;
    Ok(accepted(&out))
}

/// GET /v1/connections/{id}/runs?page=&limit=
pub(crate) async fn runs(
    State(st): State<AppState>,
    caller: Caller,
    path: PathParams,
    q: QueryParams,
) -> ApiResult<impl IntoResponse> {
    let who = admin(caller)?;
    q.only(&["page", "limit"])?;
    let c = st.connections().get(&who, &path.id()?).await?;
    let limit = q.limit()?;
    let scope = format!("runs:{}", c.id);
    // The page token holds the last run id shown: the next page is the runs older than it.
    let before = match q.get("page") {
        None => None,
        Some(t) => Some(
            RunId::parse(&st.inner.pages.open(&who.client_id, &scope, t)?)
                .map_err(|_| Problem::new(ProblemKind::InvalidPageToken))?,
        ),
    };
    let mut runs = st.ports().runs.list(&c.key(), before.as_ref(), limit + 1).await?;
    let more = runs.len() > limit;
    runs.truncate(limit);
    let next = more
        .then(|| runs.last().map(|r| st.inner.pages.issue(&who.client_id, &scope, r.id.as_str())))
        .flatten();
    Ok(Json(Page { items: runs.iter().map(RunView::new).collect(), next_page: next }))
}

/// GET /v1/connections/{id}/items?state=&page=&limit=
pub(crate) async fn items(
    State(st): State<AppState>,
    caller: Caller,
    path: PathParams,
    q: QueryParams,
) -> ApiResult<impl IntoResponse> {
    let who = admin(caller)?;
    q.only(&["state", "page", "limit"])?;
    let c = st.connections().get(&who, &path.id()?).await?;
    let state = q
        .get("state")
        .map(|s| {
            serde_json::from_value::<ItemState>(serde_json::Value::String(s.to_owned()))
                .map_err(|_| Problem::invalid("state", "one of imported, skipped, failed, source_deleted"))
        })
        .transpose()?;
    let limit = q.limit()?;
    let scope = format!("items:{}:{}", c.id, q.get("state").unwrap_or(""));
    let after = q.get("page").map(|t| st.inner.pages.open(&who.client_id, &scope, t)).transpose()?;
    // The connected folder itself is the root of the item tree, not one of its items.
    let mut page = st.ports().items.list(&c.key(), state, after.as_deref(), limit + 2).await?;
    page.retain(|i| i.provider_id != c.folder.folder_id);
    let more = page.len() > limit;
    page.truncate(limit);
    let next = more
        .then(|| page.last().map(|i| st.inner.pages.issue(&who.client_id, &scope, &i.provider_id)))
        .flatten();
    Ok(Json(Page { items: page.iter().map(ItemView::new).collect(), next_page: next }))
}
