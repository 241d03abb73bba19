//! `GET /drive/v3/files/{id}/revisions`: a file's content revisions, oldest first, paged by
//! `pageSize` (default 200, at most 1000) and `nextPageToken`. A rename or a move makes no
//! revision, which is what lets a connector tell a renamed Google Doc from an edited one.

use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::json;

use super::oauth::authenticate;
use super::wire::drive_time;
use super::{DriveState, Endpoint, query, wire};

const DEFAULT_PAGE: usize = 200;
const MAX_PAGE: usize = 1000;

pub(crate) async fn revisions_list(
    State(st): State<Arc<DriveState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    st.faults
        .guarded(Endpoint::RevisionsList, async {
            let q = query(raw.as_deref());
            let size = match q.get("pageSize").map(|v| v.parse::<usize>()) {
                None => DEFAULT_PAGE,
                Some(Ok(n)) if n >= 1 => n.min(MAX_PAGE),
                Some(_) => return wire::bad_param("pageSize", "Values must be within the range: [1, 1000]"),
            };
            let start = match q.get("pageToken").map(|t| t.parse::<usize>()) {
                None => 0,
                Some(Ok(n)) => n,
                Some(Err(_)) => return wire::bad_param("pageToken", "Invalid page token."),
            };
            let account = match authenticate(&st, &headers) {
                Ok(a) => a,
                Err(r) => return r,
            };
            let inner = st.lock();
            let Some(a) = inner.account(&account) else { return wire::auth_error() };
            let Some(f) = a.file(&id) else { return wire::not_found(&id) };
            let revisions: Vec<_> = f
                .revisions
                .iter()
                .enumerate()
                .skip(start)
                .take(size)
                .map(|(i, t)| {
                    json!({
                        "kind": "drive#revision",
                        "id": (i + 1).to_string(),
                        "mimeType": f.mime_type,
                        "modifiedTime": drive_time(*t),
                    })
                })
                .collect();
            let mut body = json!({"kind": "drive#revisionList", "revisions": revisions});
            if start + size < f.revisions.len() {
                body["nextPageToken"] = json!((start + size).to_string());
            }
            wire::json_fields(body, wire::Schema::RevisionList, &q)
        })
        .await
}
