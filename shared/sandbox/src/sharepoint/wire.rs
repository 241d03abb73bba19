//! Graph v1.0 wire shapes (provider-apis.md §2.2, §2.3, §2.6): driveItem, drive, site,
//! user, and the error body
//! `{"error":{"code","message","innerError":{"code","date","request-id","client-request-id"}}}`.
//!
//! `size` is a JSON number; times are RFC 3339 UTC with whole seconds (`…T10:00:00Z`).

use std::time::SystemTime;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::model::{Drive, Item, Owner, SiteRec, User};
use super::quickxor::hex_to_base64;
use crate::time::format_timestamp;

pub(crate) fn time(t: SystemTime) -> String {
    format_timestamp(t)
}

/// A JSON 200.
pub(crate) fn json_ok(v: &Value) -> Response {
    let mut r = (StatusCode::OK, v.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Graph's error body; the inner error's code repeats the top-level one unless
/// `inner_code` is given. Messages never carry tokens.
pub(crate) fn error_with(
    status: u16,
    code: &str,
    inner_code: Option<&str>,
    message: &str,
    now: SystemTime,
) -> Response {
    let date = time(now);
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "code": inner_code.unwrap_or(code),
                "date": date.trim_end_matches('Z'),
                "request-id": uuid::Uuid::new_v4().to_string(),
                "client-request-id": uuid::Uuid::new_v4().to_string(),
            }
        }
    });
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub(crate) fn error(status: u16, code: &str, message: &str, now: SystemTime) -> Response {
    error_with(status, code, None, message, now)
}

/// 404 `itemNotFound`.
pub(crate) fn not_found(now: SystemTime) -> Response {
    error(404, "itemNotFound", "The resource could not be found.", now)
}

/// 400 `invalidRequest`.
pub(crate) fn invalid_request(message: &str, now: SystemTime) -> Response {
    error(400, "invalidRequest", message, now)
}

/// 403 `accessDenied`.
pub(crate) fn access_denied(now: SystemTime) -> Response {
    error(403, "accessDenied", "Access denied", now)
}

/// 401 `InvalidAuthenticationToken` (with `WWW-Authenticate`).
pub(crate) fn unauthenticated(message: &str, now: SystemTime) -> Response {
    let mut r = error(401, "InvalidAuthenticationToken", message, now);
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
        ),
    );
    r
}

/// 429 `activityLimitReached` / 503 `serviceNotAvailable` with `Retry-After` seconds.
pub(crate) fn throttled(status: u16, retry_after_secs: u64, now: SystemTime) -> Response {
    let mut r = if status == 429 {
        error_with(
            429,
            "activityLimitReached",
            Some("throttledRequest"),
            "The request has been throttled",
            now,
        )
    } else {
        error(status, "serviceNotAvailable", "The service is temporarily unavailable.", now)
    };
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    r
}

/// Keeps the `$select`ed top-level members (comma-separated; unknown names ignored).
pub(crate) fn select(v: &mut Value, select: Option<&str>) {
    let Some(sel) = select.filter(|s| !s.trim().is_empty()) else { return };
    let keep: Vec<&str> = sel.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    if keep.contains(&"*") {
        return;
    }
    if let Value::Object(obj) = v {
        obj.retain(|k, _| keep.iter().any(|s| s.eq_ignore_ascii_case(k)));
    }
}

/// How an item is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Render {
    /// `/children`, `/items/{id}`: everything, `parentReference.path` included.
    Full,
    /// Delta: no `parentReference.path`, no `cTag`.
    Delta,
}

fn url_path(path: &str) -> String {
    path.split('/')
        .map(|s| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>().replace('+', "%20"))
        .collect::<Vec<_>>()
        .join("/")
}

/// The driveItem resource.
pub(crate) fn item_json(drive: &Drive, site_id: Option<&str>, item: &Item, render: Render) -> Value {
    let mut m = Map::new();
    m.insert("id".into(), json!(item.id));
    m.insert("name".into(), json!(item.name));
    m.insert("eTag".into(), json!(format!("\"{{{}}},{}\"", item.guid, item.version)));
    if render == Render::Full {
        m.insert("cTag".into(), json!(format!("\"c:{{{}}},{}\"", item.guid, item.content_version)));
    }
    m.insert("createdDateTime".into(), json!(time(item.created)));
    m.insert("lastModifiedDateTime".into(), json!(time(item.modified)));
    let path = drive.path(&item.id);
    m.insert("webUrl".into(), json!(format!("{}{}", drive.web_url, url_path(&path))));
    let mut parent = Map::new();
    parent.insert("driveType".into(), json!(drive.drive_type.as_str()));
    parent.insert("driveId".into(), json!(drive.id));
    if let Some(p) = &item.parent {
        parent.insert("id".into(), json!(p));
        if render == Render::Full {
            parent.insert("path".into(), json!(format!("/drives/{}/root:{}", drive.id, drive.path(p))));
        }
    }
    if let Some(s) = site_id {
        parent.insert("siteId".into(), json!(s));
    }
    m.insert("parentReference".into(), Value::Object(parent));
    m.insert(
        "fileSystemInfo".into(),
        json!({ "createdDateTime": time(item.created), "lastModifiedDateTime": time(item.content_modified) }),
    );
    match &item.blob {
        Some(b) => {
            m.insert("size".into(), json!(b.content.len()));
            m.insert(
                "file".into(),
                json!({ "mimeType": item.mime_type, "hashes": { "quickXorHash": hex_to_base64(b.native_hash()) } }),
            );
        }
        None => {
            let size: u64 = drive
                .subtree(&item.id)
                .iter()
                .filter_map(|id| drive.items.get(id))
                .filter_map(|i| i.blob.as_ref().map(|b| b.content.len()))
                .sum();
            m.insert("size".into(), json!(size));
            m.insert("folder".into(), json!({ "childCount": drive.children(&item.id).len() }));
        }
    }
    if item.parent.is_none() {
        m.insert("root".into(), json!({}));
    }
    Value::Object(m)
}

/// A deleted item in a business / documentLibrary delta feed: no name, cTag or size.
pub(crate) fn tombstone_json(drive: &Drive, id: &str, parent: &str) -> Value {
    json!({
        "id": id,
        "deleted": { "state": "deleted" },
        "parentReference": { "driveType": drive.drive_type.as_str(), "driveId": drive.id, "id": parent },
    })
}

/// The drive resource.
pub(crate) fn drive_json(drive: &Drive, users: &[User]) -> Value {
    let owner = match &drive.owner {
        Owner::User(uid) => {
            let u = users.iter().find(|u| &u.id == uid);
            json!({ "user": {
                "id": uid,
                "displayName": u.map(|u| u.display_name.as_str()).unwrap_or_default(),
            }})
        }
        // A site's library: Graph's v1.0 `identitySet` has no `group` member (the richer
        // `sharepointIdentitySet` is not what `drive.owner` is typed as), and libraries of
        // sites without a Microsoft 365 group answer with SharePoint's system account.
        Owner::Site(_) => json!({ "user": { "displayName": "System Account" } }),
    };
    json!({
        "id": drive.id,
        "name": drive.name,
        "description": "",
        "driveType": drive.drive_type.as_str(),
        "webUrl": drive.web_url,
        "createdDateTime": time(drive.created),
        "lastModifiedDateTime": time(drive.created),
        "owner": owner,
    })
}

/// The site resource.
pub(crate) fn site_json(s: &SiteRec) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "displayName": s.display_name,
        "webUrl": s.web_url,
        "createdDateTime": time(s.created),
        "lastModifiedDateTime": time(s.created),
        "siteCollection": { "hostname": s.id.split(',').next().unwrap_or_default() },
    })
}

/// The user resource (`/me`).
pub(crate) fn user_json(u: &User) -> Value {
    json!({
        "id": u.id,
        "displayName": u.display_name,
        "mail": u.mail,
        "userPrincipalName": u.upn,
    })
}
