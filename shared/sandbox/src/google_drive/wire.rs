//! Wire shapes of Drive v3 (provider-apis.md §1.2–§1.6): `File`, `Change`, `Drive`
//! resources and the two-level error body
//! `{"error":{"code","message","errors":[{"domain","reason","message"}],"status"}}`.
//!
//! `size` and `version` are int64 values and go out as JSON **strings**.

use std::collections::BTreeMap;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::model::{Account, Body, File};
use crate::time::format_timestamp;

/// RFC 3339 with milliseconds, as Drive writes times (`2026-05-01T10:00:00.000Z`).
pub(crate) fn drive_time(t: std::time::SystemTime) -> String {
    let base = format_timestamp(t);
    let ms = t.duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_millis()).unwrap_or(0);
    match base.strip_suffix('Z') {
        Some(b) => format!("{b}.{ms:03}Z"),
        None => base,
    }
}

/// A `fields` partial-response selector (`nextPageToken,files(id,capabilities/canDownload)`,
/// `*`): member name → the mask of that member (empty: the whole member).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct FieldMask(BTreeMap<String, FieldMask>);

impl FieldMask {
    /// Parses Google's partial-response syntax: comma-separated paths, `a/b` for a
    /// sub-member, `a(b,c)` for several sub-members, `*` for all members.
    pub(crate) fn parse(text: &str) -> Result<FieldMask, String> {
        let mut chars = text.chars().peekable();
        let mask = Self::parse_list(&mut chars, 0)?;
        match chars.next() {
            None => Ok(mask),
            Some(c) => Err(format!("unexpected {c:?}")),
        }
    }

    fn parse_list(
        chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
        depth: usize,
    ) -> Result<FieldMask, String> {
        let mut mask = FieldMask::default();
        loop {
            let mut path = String::new();
            while let Some(&c) = chars.peek() {
                if matches!(c, ',' | '(' | ')') {
                    break;
                }
                path.push(c);
                chars.next();
            }
            let path = path.trim();
            if path.is_empty() || path.split('/').any(|p| p.trim().is_empty()) {
                return Err("empty field name".into());
            }
            let mut node = &mut mask;
            for part in path.split('/') {
                node = node.0.entry(part.trim().to_string()).or_default();
            }
            if chars.peek() == Some(&'(') {
                chars.next();
                let sub = Self::parse_list(chars, depth + 1)?;
                if chars.next() != Some(')') {
                    return Err("unclosed '('".into());
                }
                node.0.extend(sub.0);
            }
            match chars.peek() {
                None if depth == 0 => return Ok(mask),
                None => return Err("unclosed '('".into()),
                Some(')') if depth > 0 => return Ok(mask),
                Some(')') => return Err("unbalanced ')'".into()),
                Some(_) => {
                    chars.next(); // ','
                }
            }
        }
    }

    /// Keeps only the selected members of `v` (arrays: of each element).
    pub(crate) fn apply(&self, v: &mut Value) {
        if self.0.is_empty() || self.0.contains_key("*") {
            return;
        }
        match v {
            Value::Array(items) => items.iter_mut().for_each(|item| self.apply(item)),
            Value::Object(obj) => {
                obj.retain(|k, _| self.0.contains_key(k));
                for (k, member) in obj.iter_mut() {
                    if let Some(sub) = self.0.get(k) {
                        sub.apply(member);
                    }
                }
            }
            _ => {}
        }
    }
}

/// The Drive v3 resources a `fields` selector is checked against, with their member
/// names as Google's discovery document lists them (`drive.v3.json`, revision 20261106).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schema {
    File,
    FileList,
    Change,
    ChangeList,
    About,
    User,
    Drive,
    DriveList,
    StartPageToken,
    Revision,
    RevisionList,
}

impl Schema {
    fn members(self) -> &'static [&'static str] {
        match self {
            Schema::File => &[
                "appProperties",
                "capabilities",
                "clientEncryptionDetails",
                "contentHints",
                "contentRestrictions",
                "copyRequiresWriterPermission",
                "createdTime",
                "description",
                "downloadRestrictions",
                "driveId",
                "explicitlyTrashed",
                "exportLinks",
                "fileExtension",
                "folderColorRgb",
                "fullFileExtension",
                "hasAugmentedPermissions",
                "hasThumbnail",
                "headRevisionId",
                "iconLink",
                "id",
                "imageMediaMetadata",
                "inheritedPermissionsDisabled",
                "isAppAuthorized",
                "kind",
                "labelInfo",
                "lastModifyingUser",
                "linkShareMetadata",
                "md5Checksum",
                "mimeType",
                "modifiedByMe",
                "modifiedByMeTime",
                "modifiedTime",
                "name",
                "originalFilename",
                "ownedByMe",
                "owners",
                "parents",
                "permissionIds",
                "permissions",
                "properties",
                "quotaBytesUsed",
                "resourceKey",
                "sha1Checksum",
                "sha256Checksum",
                "shared",
                "sharedWithMeTime",
                "sharingUser",
                "shortcutDetails",
                "size",
                "spaces",
                "starred",
                "teamDriveId",
                "thumbnailLink",
                "thumbnailVersion",
                "trashed",
                "trashedTime",
                "trashingUser",
                "version",
                "videoMediaMetadata",
                "viewedByMe",
                "viewedByMeTime",
                "viewersCanCopyContent",
                "webContentLink",
                "webViewLink",
                "writersCanShare",
            ],
            Schema::FileList => &["files", "incompleteSearch", "kind", "nextPageToken"],
            Schema::Change => &[
                "changeType",
                "drive",
                "driveId",
                "file",
                "fileId",
                "kind",
                "removed",
                "teamDrive",
                "teamDriveId",
                "time",
                "type",
            ],
            Schema::ChangeList => &["changes", "kind", "newStartPageToken", "nextPageToken"],
            Schema::About => &[
                "appInstalled",
                "canCreateDrives",
                "canCreateTeamDrives",
                "driveThemes",
                "exportFormats",
                "folderColorPalette",
                "importFormats",
                "kind",
                "maxImportSizes",
                "maxUploadSize",
                "storageQuota",
                "teamDriveThemes",
                "user",
            ],
            Schema::User => &["displayName", "emailAddress", "kind", "me", "permissionId", "photoLink"],
            Schema::Drive => &[
                "backgroundImageFile",
                "backgroundImageLink",
                "capabilities",
                "colorRgb",
                "createdTime",
                "hidden",
                "id",
                "kind",
                "name",
                "orgUnitId",
                "restrictions",
                "themeId",
            ],
            Schema::DriveList => &["drives", "kind", "nextPageToken"],
            Schema::StartPageToken => &["kind", "startPageToken"],
            Schema::Revision => &[
                "exportLinks",
                "id",
                "keepForever",
                "kind",
                "lastModifyingUser",
                "md5Checksum",
                "mimeType",
                "modifiedTime",
                "originalFilename",
                "publishAuto",
                "published",
                "publishedLink",
                "publishedOutsideDomain",
                "size",
            ],
            Schema::RevisionList => &["kind", "nextPageToken", "revisions"],
        }
    }

    /// The resource a member holds, when the emulator checks names inside it too.
    fn child(self, member: &str) -> Option<Schema> {
        match (self, member) {
            (Schema::FileList, "files") | (Schema::Change, "file") => Some(Schema::File),
            (Schema::ChangeList, "changes") => Some(Schema::Change),
            (Schema::DriveList, "drives") | (Schema::Change, "drive") => Some(Schema::Drive),
            (Schema::RevisionList, "revisions") => Some(Schema::Revision),
            (Schema::About, "user")
            | (Schema::File, "lastModifyingUser" | "owners" | "sharingUser" | "trashingUser") => {
                Some(Schema::User)
            }
            _ => None,
        }
    }
}

impl FieldMask {
    /// The first selected name that `schema` does not have (Drive answers 400
    /// "Invalid field selection" for it); members of objects the emulator does not
    /// model (`capabilities/…`, `shortcutDetails/…`) are not checked.
    pub(crate) fn unknown(&self, schema: Schema) -> Option<String> {
        for (name, sub) in &self.0 {
            if name == "*" {
                continue;
            }
            if !schema.members().contains(&name.as_str()) {
                return Some(name.clone());
            }
            if let Some(child) = schema.child(name)
                && let Some(bad) = sub.unknown(child)
            {
                return Some(bad);
            }
        }
        None
    }
}

/// A 200 JSON answer of `schema` with the request's `fields` applied (all members
/// without `fields`); a malformed selector, or one naming a member `schema` does not
/// have, is Drive's 400 `invalidParameter` on `fields`.
pub(crate) fn json_fields(mut v: Value, schema: Schema, q: &super::Query) -> Response {
    if let Some(f) = q.get("fields") {
        let bad = match FieldMask::parse(f) {
            Ok(mask) => match mask.unknown(schema) {
                None => {
                    mask.apply(&mut v);
                    None
                }
                Some(name) => Some(name),
            },
            Err(_) => Some(f.clone()),
        };
        if let Some(name) = bad {
            return error_with(
                400,
                "global",
                "invalidParameter",
                &format!("Invalid field selection {name}"),
                Some(("parameter", "fields")),
            );
        }
    }
    json_ok(&v)
}

/// A 200 JSON answer.
pub(crate) fn json_ok(v: &Value) -> Response {
    let mut r = (StatusCode::OK, v.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=UTF-8"));
    r
}

fn status_name(code: u16) -> &'static str {
    match code {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        416 => "OUT_OF_RANGE",
        429 => "RESOURCE_EXHAUSTED",
        500 => "INTERNAL",
        501 => "UNIMPLEMENTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "UNKNOWN",
    }
}

/// The two-level error body; `location` adds `locationType`/`location` to the inner
/// error (`("parameter", "alt")`).
pub(crate) fn error_with(
    code: u16,
    domain: &str,
    reason: &str,
    message: &str,
    location: Option<(&str, &str)>,
) -> Response {
    let mut inner = json!({ "domain": domain, "reason": reason, "message": message });
    if let (Some((ty, loc)), Some(obj)) = (location, inner.as_object_mut()) {
        obj.insert("locationType".into(), json!(ty));
        obj.insert("location".into(), json!(loc));
    }
    let body = json!({ "error": {
        "code": code,
        "message": message,
        "errors": [inner],
        "status": status_name(code),
    }});
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=UTF-8"));
    r
}

pub(crate) fn error(code: u16, domain: &str, reason: &str, message: &str) -> Response {
    error_with(code, domain, reason, message, None)
}

/// 400 `badRequest` / `invalid` on a parameter.
pub(crate) fn bad_param(param: &str, message: &str) -> Response {
    error_with(400, "global", "invalid", message, Some(("parameter", param)))
}

/// 404 `notFound` ("File not found: {id}.").
pub(crate) fn not_found(id: &str) -> Response {
    let msg = format!("File not found: {id}.");
    error_with(404, "global", "notFound", &msg, Some(("parameter", "fileId")))
}

/// 401 `authError` (invalid or expired credentials).
pub(crate) fn auth_error() -> Response {
    let mut r =
        error_with(401, "global", "authError", "Invalid Credentials", Some(("header", "Authorization")));
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"https://accounts.google.com/\""),
    );
    r
}

/// 403 `userRateLimitExceeded` (usageLimits).
pub(crate) fn user_rate_limited() -> Response {
    error(403, "usageLimits", "userRateLimitExceeded", "User Rate Limit Exceeded")
}

/// 429 `rateLimitExceeded` with `Retry-After`.
pub(crate) fn too_many_requests(retry_after_secs: u64) -> Response {
    let mut r = error(429, "usageLimits", "rateLimitExceeded", "Rate Limit Exceeded");
    r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
    r
}

/// The reason and message a status gets when injected.
pub(crate) fn server_error(code: u16) -> Response {
    match code {
        403 => user_rate_limited(),
        429 => too_many_requests(1),
        401 => auth_error(),
        c if c >= 500 => error(c, "global", "backendError", "Backend Error"),
        c => error(c, "global", "badRequest", "Bad Request"),
    }
}

/// OAuth token-endpoint error `{"error","error_description"}`.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    let mut r =
        (status, json!({ "error": error, "error_description": description }).to_string()).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    r
}

/// The `File` resource (every field the connector may ask for; `fields` is not applied).
pub(crate) fn file_json(acct: &Account, f: &File) -> Value {
    let mut m = Map::new();
    m.insert("kind".into(), json!("drive#file"));
    m.insert("id".into(), json!(f.id));
    m.insert("name".into(), json!(f.name));
    m.insert("mimeType".into(), json!(f.mime_type));
    if let Some(p) = &f.parent {
        m.insert("parents".into(), json!([p]));
    }
    let trashed = acct.trashed(f);
    m.insert("trashed".into(), json!(trashed));
    m.insert("explicitlyTrashed".into(), json!(f.explicitly_trashed));
    if let Some(d) = &f.drive_id {
        m.insert("driveId".into(), json!(d));
        if trashed {
            m.insert("trashedTime".into(), json!(drive_time(f.modified)));
        }
    }
    m.insert("version".into(), json!(f.version.to_string()));
    m.insert("modifiedTime".into(), json!(drive_time(f.modified)));
    m.insert("createdTime".into(), json!(drive_time(f.modified)));
    match &f.body {
        Body::Folder => {}
        Body::Blob(b) => {
            m.insert("size".into(), json!(b.content.len().to_string()));
            m.insert("md5Checksum".into(), json!(b.native_hash()));
            m.insert("sha256Checksum".into(), json!(b.sha256()));
            m.insert("headRevisionId".into(), json!(format!("0B{}", f.version)));
        }
        Body::Native { export } => {
            // Docs Editors files have a size ("first party editor files") that is not
            // their export size.
            let size = export.as_ref().map(|e| e.content.len() / 2 + 1024).unwrap_or(1024);
            m.insert("size".into(), json!(size.to_string()));
            if export.is_some() {
                let links: Map<String, Value> = super::model::export_formats(&f.mime_type)
                    .iter()
                    .map(|fmt| {
                        let enc: String = url::form_urlencoded::byte_serialize(fmt.as_bytes()).collect();
                        (
                            fmt.to_string(),
                            json!(format!(
                                "https://docs.google.com/feeds/download/export?id={}&exportFormat={enc}",
                                f.id
                            )),
                        )
                    })
                    .collect();
                m.insert("exportLinks".into(), Value::Object(links));
            }
        }
        Body::Shortcut { target_id, target_mime } => {
            m.insert(
                "shortcutDetails".into(),
                json!({ "targetId": target_id, "targetMimeType": target_mime }),
            );
        }
    }
    m.insert(
        "capabilities".into(),
        json!({ "canDownload": f.can_download, "canListChildren": f.is_folder() }),
    );
    Value::Object(m)
}
