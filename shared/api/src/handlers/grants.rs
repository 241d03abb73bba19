//! The folder picker.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use extconn_core::{FolderLocator, GrantId, ProviderKind};

use super::{Caller, admin};
use crate::AppState;
use crate::extract::{PathParams, QueryParams};
use crate::problem::{ApiResult, Problem, ProblemKind};

/// Provider ids accepted from clients: bounded, free of control characters, and of the shape
/// the provider's ids have (the connector knows it).
pub(crate) fn check_id(st: &AppState, kind: ProviderKind, id: &str, field: &str) -> Result<(), Problem> {
    let provider =
        st.ports().provider(kind).ok_or_else(|| Problem::new(ProblemKind::ProviderNotConfigured))?;
    let generic = id.len() <= 512 && !id.chars().any(char::is_control);
    if generic && provider.accepts_id(id) {
        Ok(())
    } else {
        Err(Problem::invalid(field, "not a folder id of this service"))
    }
}

/// A drive id from a client: bounded, printable.
pub(crate) fn check_drive_id(id: &str, field: &str) -> Result<(), Problem> {
    let ok = !id.is_empty() && id.len() <= 512 && id.bytes().all(|b| b.is_ascii_graphic());
    if ok { Ok(()) } else { Err(Problem::invalid(field, "not a drive id of this service")) }
}

/// GET /v1/grants/{grant}/folders?parent=&drive=&page=
pub(crate) async fn folders(
    State(st): State<AppState>,
    caller: Caller,
    path: PathParams,
    q: QueryParams,
) -> ApiResult<impl IntoResponse> {
    let who = admin(caller)?;
    q.only(&["parent", "drive", "page"])?;
    let grant = st.connections().grant(&who, &path.id::<GrantId>()?).await?;
    let kind = grant.grant().provider;
    if let Some(parent) = q.get("parent") {
        check_id(&st, kind, parent, "parent")?;
    }
    if let Some(drive) = q.get("drive") {
        check_drive_id(drive, "drive")?;
    }
    let parent = q
        .get("parent")
        .map(|id| FolderLocator { folder_id: id.to_owned(), drive_id: q.get("drive").map(str::to_owned) });
    let scope = format!(
        "folders:{}:{}:{}",
        grant.grant().id,
        q.get("drive").unwrap_or(""),
        q.get("parent").unwrap_or("")
    );
    let page = q.get("page").map(|t| st.inner.pages.open(&who.client_id, &scope, t)).transpose()?;
    let result = st.connections().browse_folders(&grant, parent.as_ref(), page.as_deref()).await?;
    let next = result.next_page.map(|p| st.inner.pages.issue(&who.client_id, &scope, &p));
    // Each entry's locator (id + drive id) goes back unchanged as `parent` / `drive`, or into
    // POST /v1/connections.
    let folders: Vec<serde_json::Value> = result
        .folders
        .into_iter()
        .map(|f| {
            let mut v = serde_json::json!({
                "id": f.locator.folder_id, "name": f.name, "kind": f.kind, "selectable": f.selectable,
            });
            if let Some(d) = f.locator.drive_id {
                v["drive_id"] = d.into();
            }
            if let Some(p) = f.path {
                v["path"] = p.into();
            }
            v
        })
        .collect();
    Ok(Json(serde_json::json!({ "items": folders, "next_page": next })))
}
