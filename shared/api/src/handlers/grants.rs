//! The folder picker.

use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use extconn_core::GrantId;

use super::{Caller, admin};
use crate::AppState;
use crate::extract::{PathParams, QueryParams};
use crate::problem::{ApiResult, Problem};

/// Provider folder ids accepted from clients: bounded and free of control characters. Each
/// provider's own shape is checked too (Dropbox: `id:` + url-safe characters; the root is "no parent").
pub(crate) fn check_folder_id(
    provider: extconn_core::ProviderKind,
    id: &str,
    field: &str,
) -> Result<(), Problem> {
    let generic = id.len() <= 512 && !id.chars().any(char::is_control);
    let shaped = match provider {
        extconn_core::ProviderKind::Dropbox => id.strip_prefix("id:").is_some_and(|r| {
            !r.is_empty() && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        }),
        _ => !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-!.".contains(&b)),
    };
    if generic && shaped { Ok(()) } else { Err(Problem::invalid(field, "not a folder id of this service")) }
}

/// GET /v1/grants/{grant}/folders?parent=&page=
pub(crate) async fn folders(
    State(st): State<AppState>,
    caller: Caller,
    path: PathParams,
    q: QueryParams,
) -> ApiResult<impl IntoResponse> {
    let who = admin(caller)?;
    q.only(&["parent", "page"])?;
    let grant = st.connections().grant(&who, &path.id::<GrantId>()?).await?;
    if let Some(parent) = q.get("parent") {
        check_folder_id(grant.grant().provider, parent, "parent")?;
    }
    let scope = format!("folders:{}:{}", grant.grant().id, q.get("parent").unwrap_or(""));
    let page = q.get("page").map(|t| st.inner.pages.open(&who.client_id, &scope, t)).transpose()?;
    let result = st.connections().browse_folders(&grant, q.get("parent"), page.as_deref()).await?;
    let next = result.next_page.map(|p| st.inner.pages.issue(&who.client_id, &scope, &p));
    let folders: Vec<serde_json::Value> = result
        .folders
        .into_iter()
        .map(|f| serde_json::json!({ "id": f.id, "name": f.name, "path": f.path }))
        .collect();
    Ok(Json(serde_json::json!({ "items": folders, "next_page": next })))
}
