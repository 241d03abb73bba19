//! Connections: create, the management table, details, toggle, delete, Refresh Items, history.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use extconn_core::ports::{ConnectionPatch, StoreError};
use extconn_core::{
    ConnKey, Connection, ConnectionCounters, ConnectionId, ConnectionStatus, Filters, FolderLocator, GrantId,
    GrantStatus, ItemState, Job, ProviderKind, RunCounters, RunId, RunStatus, SyncPosition, SyncRun,
    SyncedBy, Trigger,
};
use serde::Deserialize;

use super::grants::{check_drive_id, check_id};
use super::{Caller, admin, provider_problem};
use crate::AppState;
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::identity::Identity;
use crate::problem::{ApiResult, Problem, ProblemKind};
use crate::views::{AccountView, ConnectionDetails, ConnectionRow, ItemView, Page, RunView, Settings};

/// v1's fixed sync interval.
const SYNC_INTERVAL_SECS: u64 = 900;

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

fn new_run(conn: &ConnKey, trigger: Trigger, who: &Identity, now: extconn_core::Timestamp) -> SyncRun {
    SyncRun {
        conn: conn.clone(),
        id: RunId::generate(),
        trigger,
        actor: Some(who.user_id.clone()),
        status: RunStatus::Queued,
        queued_at: now,
        started_at: None,
        finished_at: None,
        counters: RunCounters::default(),
        invocations: 0,
        error: None,
    }
}

async fn queue_run(st: &AppState, run: &SyncRun, who: &Identity) -> ApiResult<()> {
    let job = Job {
        client_id: run.conn.client_id.clone(),
        connection_id: run.conn.connection_id.clone(),
        trigger: run.trigger,
        run_id: Some(run.id.clone()),
        requested_by: Some(who.user_id.clone()),
        continuation: false,
    };
    st.ports().runs.create(run).await?;
    st.ports().queue.send(&[job]).await?;
    Ok(())
}

async fn details(st: &AppState, c: &Connection) -> ApiResult<ConnectionDetails> {
    let key = c.key();
    let grant = st.ports().grants.get(&c.client_id, &c.grant_id).await?;
    let runs = st.ports().runs.list(&key, 10).await?;
    let failed = st.ports().items.list(&key, Some(ItemState::Failed), None, 50).await?;
    Ok(ConnectionDetails {
        row: ConnectionRow::new(c, st.now()),
        account: grant.as_ref().map(AccountView::new),
        settings: Settings {
            include_subfolders: c.filters.include_subfolders,
            max_file_size: c.filters.max_file_size,
            sync_interval_secs: c.sync_interval_secs,
        },
        recent_runs: runs.iter().map(RunView::new).collect(),
        failed_items: failed.iter().map(ItemView::new).collect(),
    })
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
    let grant = st.grant(&who, &grant_id).await?;
    let provider = st.provider(grant.provider)?;
    check_id(provider.as_ref(), &body.folder_id, "/folder_id")?;
    if let Some(d) = &body.drive_id {
        check_drive_id(d, "/drive_id")?;
    }
    if grant.status != GrantStatus::Active {
        return Err(Problem::new(ProblemKind::ReauthRequired));
    }
    let access = st.access(&grant).await?;
    // The folder is verified with the grant's own token; its name and path come from the
    // provider. The locator is the picker's, unchanged.
    let locator = FolderLocator { folder_id: body.folder_id.clone(), drive_id: body.drive_id.clone() };
    let folder = provider.folder(&access, &locator).await.map_err(|e| match provider_problem(e) {
        p if p.kind == ProblemKind::FolderNotAccessible => {
            Problem::invalid("/folder_id", "not a folder this account can read")
        }
        p => p,
    })?;
    let now = st.now();
    let id = ConnectionId::generate();
    let key = ConnKey { client_id: who.client_id.clone(), connection_id: id.clone() };
    let run = new_run(&key, Trigger::Initial, &who, now);
    let interval = chrono::Duration::seconds(SYNC_INTERVAL_SECS as i64);
    let conn = Connection {
        client_id: who.client_id.clone(),
        id,
        grant_id: grant.id.clone(),
        provider: grant.provider,
        folder: locator,
        folder_path: folder.path.unwrap_or_else(|| format!("/{}", folder.name)),
        folder_name: folder.name,
        auto_sync: body.auto_sync,
        sync_interval_secs: SYNC_INTERVAL_SECS,
        status: ConnectionStatus::Active,
        current_run_id: Some(run.id.clone()),
        last_synced_at: None,
        synced_by: SyncedBy { user_id: who.user_id.clone(), display_name: who.display_name.clone() },
        created_at: now,
        position: SyncPosition::Initial,
        lease: None,
        lease_version: 0,
        counters: ConnectionCounters::default(),
        filters: Filters::default(),
        next_due_at: body.auto_sync.then_some(now + interval),
        not_before: None,
    };
    match st.ports().connections.create(&conn).await {
        Ok(()) => {}
        Err(StoreError::Conflict) => return Err(Problem::new(ProblemKind::AlreadyConnected)),
        Err(e) => return Err(e.into()),
    }
    if !grant.attached {
        let mut g = grant.clone();
        g.attached = true;
        st.ports().grants.update(&g).await?;
    }
    queue_run(&st, &run, &who).await?;
    st.audit(&who, "connection.create", format!("connection/{}", conn.id)).await?;
    let mut resp = (StatusCode::CREATED, Json(details(&st, &conn).await?)).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/connections/{}", conn.id)) {
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
        .map(|p| {
            ProviderKind::parse(p)
                .ok_or_else(|| Problem::invalid("provider", "one of google_drive, sharepoint, dropbox"))
        })
        .transpose()?;
    let limit = q.limit()?;
    let scope = format!("connections:{}", q.get("provider").unwrap_or(""));
    let offset = offset(&st, &who, &scope, &q)?;
    let all = st.ports().connections.list(&who.client_id, provider).await?;
    let now = st.now();
    let items: Vec<ConnectionRow> =
        all.iter().skip(offset).take(limit).map(|c| ConnectionRow::new(c, now)).collect();
    let next = (all.len() > offset + limit)
        .then(|| st.inner.pages.issue(&who.client_id, &scope, &(offset + limit).to_string()));
    Ok(Json(Page { items, next_page: next }))
}

fn offset(st: &AppState, who: &Identity, scope: &str, q: &QueryParams) -> ApiResult<usize> {
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
    let c = st.connection(&who, &path.id()?).await?;
    Ok(Json(details(&st, &c).await?))
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
    let c = st.connection(&who, &path.id()?).await?;
    let next_due = body.auto_sync.then(|| st.now() + chrono::Duration::seconds(c.sync_interval_secs as i64));
    let patch = ConnectionPatch {
        auto_sync: Some(body.auto_sync),
        next_due_at: Some(next_due),
        ..Default::default()
    };
    let updated = match st.ports().connections.update(&c.key(), &patch).await {
        Err(StoreError::NotFound) => return Err(Problem::not_found()),
        r => r?,
    };
    let action = if body.auto_sync { "connection.auto_sync_on" } else { "connection.auto_sync_off" };
    st.audit(&who, action, format!("connection/{}", c.id)).await?;
    Ok(Json(details(&st, &updated).await?))
}

/// DELETE /v1/connections/{id}: the assets stay; the grant is revoked and its secret deleted
/// when no other connection uses it (a failed revoke is retried later, never blocking).
pub(crate) async fn delete(
    State(st): State<AppState>,
    caller: Caller,
    path: PathParams,
) -> ApiResult<StatusCode> {
    let who = admin(caller)?;
    let c = st.connection(&who, &path.id()?).await?;
    // Deleting the record revokes the lease: a running worker writes nothing afterwards.
    if !st.ports().connections.delete(&c.key()).await? {
        return Err(Problem::not_found());
    }
    st.audit(&who, "connection.delete", format!("connection/{}", c.id)).await?;
    if st.ports().connections.list_by_grant(&c.client_id, &c.grant_id).await?.is_empty()
        && let Some(grant) = st.ports().grants.get(&c.client_id, &c.grant_id).await?
    {
        extconn_core::grants::retire(st.ports(), &grant).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// POST /v1/connections/{id}/refresh ("Refresh Items")
pub(crate) async fn refresh(
    State(st): State<AppState>,
    caller: Caller,
    path: PathParams,
) -> ApiResult<Response> {
    let who = admin(caller)?;
    let c = st.connection(&who, &path.id()?).await?;
    if !c.auto_sync {
        return Err(Problem::new(ProblemKind::AutoSyncOff)
            .detail("Refresh Items is available while Auto sync is on."));
    }
    if c.status == ConnectionStatus::ReauthRequired {
        return Err(Problem::new(ProblemKind::ReauthRequired));
    }
    let accepted = |run_id: &RunId, status: RunStatus| {
        (StatusCode::ACCEPTED, Json(serde_json::json!({ "run_id": run_id.to_string(), "status": status })))
            .into_response()
    };
    if let Some(open) = open_run(&st, &c).await? {
        return Ok(accepted(&open.0, open.1));
    }
    let run = new_run(&c.key(), Trigger::Manual, &who, st.now());
    let patch = ConnectionPatch {
        current_run_id: Some(Some(run.id.clone())),
        if_current_run: Some(c.current_run_id.clone()),
        ..Default::default()
    };
    match st.ports().connections.update(&c.key(), &patch).await {
        Ok(_) => {}
        // Another click (or a worker) changed the current run meanwhile: answer with that one.
        Err(StoreError::Conflict) => {
            let now = st.connection(&who, &c.id).await?;
            return match open_run(&st, &now).await? {
                Some((id, status)) => Ok(accepted(&id, status)),
                None => Err(Problem::internal(&"refresh lost a race without an open run")),
            };
        }
        Err(StoreError::NotFound) => return Err(Problem::not_found()),
        Err(e) => return Err(e.into()),
    }
    queue_run(&st, &run, &who).await?;
    st.audit(&who, "connection.refresh", format!("connection/{}", c.id)).await?;
    Ok(accepted(&run.id, RunStatus::Queued))
}

/// The connection's queued or running run. A current run id whose record is not written yet
/// belongs to a click being processed right now: it counts as queued.
async fn open_run(st: &AppState, c: &Connection) -> ApiResult<Option<(RunId, RunStatus)>> {
    let Some(id) = &c.current_run_id else { return Ok(None) };
    Ok(match st.ports().runs.get(&c.key(), id).await? {
        Some(r) if r.status.is_open() => Some((r.id, r.status)),
        Some(_) => None,
        None => Some((id.clone(), RunStatus::Queued)),
    })
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
    let c = st.connection(&who, &path.id()?).await?;
    let limit = q.limit()?;
    let scope = format!("runs:{}", c.id);
    let offset = offset(&st, &who, &scope, &q)?;
    let mut all = st.ports().runs.list(&c.key(), offset + limit + 1).await?;
    let more = all.len() > offset + limit;
    let items: Vec<RunView> = all.drain(..).skip(offset).take(limit).map(|r| RunView::new(&r)).collect();
    let next = more.then(|| st.inner.pages.issue(&who.client_id, &scope, &(offset + limit).to_string()));
    Ok(Json(Page { items, next_page: next }))
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
    let c = st.connection(&who, &path.id()?).await?;
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
    let mut page = st.ports().items.list(&c.key(), state, after.as_deref(), limit + 1).await?;
    let more = page.len() > limit;
    page.truncate(limit);
    let next = more
        .then(|| page.last().map(|i| st.inner.pages.issue(&who.client_id, &scope, &i.provider_id)))
        .flatten();
    Ok(Json(Page { items: page.iter().map(ItemView::new).collect(), next_page: next }))
}
