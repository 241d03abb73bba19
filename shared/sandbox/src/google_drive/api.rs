//! Metadata routes: `about.get`, `files.list`, `changes.getStartPageToken`,
//! `changes.list`, `drives.list` (`files.get` lives with the download in
//! `download`, as both share one path).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{Value, json};

use super::model::{Account, File};
use super::oauth::authenticate;
use super::{DriveState, Endpoint, Query, flag, query, wire};

/// `files.list` page token prefix (Drive's tokens look like `~!!~AI9…`).
const PAGE_PREFIX: &str = "~!!~";

/// Runs `f` with the caller's account (authenticated) and the parsed query.
fn with_account(
    st: &DriveState,
    headers: &HeaderMap,
    raw: Option<&str>,
    f: impl FnOnce(&super::Inner, &Account, &Query) -> Response,
) -> Response {
    let account = match authenticate(st, headers) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let q = query(raw);
    let inner = st.lock();
    match inner.account(&account) {
        Some(a) => f(&inner, a, &q),
        None => wire::auth_error(),
    }
}

/// `pageSize` between 1 and `max` (capped), `default` when absent.
fn page_size(q: &Query, default: usize, max: usize) -> Result<usize, Response> {
    match q.get("pageSize") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if n >= 1 => Ok(n.min(max)),
            _ => Err(wire::bad_param(
                "pageSize",
                &format!("Invalid value '{v}'. Values must be within the range: [1, {max}]"),
            )),
        },
    }
}

/// `GET /drive/v3/about` (`fields` is required, as on Drive; `user` is what it knows).
pub(crate) async fn about(
    State(st): State<Arc<DriveState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    st.faults
        .guarded(Endpoint::About, async {
            let account = match authenticate(&st, &headers) {
                Ok(a) => a,
                Err(r) => return r,
            };
            let Some(p) = st.oauth.account(&account) else {
                return wire::auth_error();
            };
            // Drive requires `fields` on about.get.
            let q = query(raw.as_deref());
            if !q.contains_key("fields") {
                return wire::error_with(
                    400,
                    "global",
                    "required",
                    "The 'fields' parameter is required for this method.",
                    Some(("parameter", "fields")),
                );
            }
            wire::json_fields(
                json!({
                    "kind": "drive#about",
                    "user": {
                        "kind": "drive#user",
                        "displayName": p.display_name,
                        "emailAddress": p.email,
                        "permissionId": account,
                        "me": true,
                    },
                }),
                wire::Schema::About,
                &q,
            )
        })
        .await
}

/// One condition of a `q` expression.
#[derive(Debug, PartialEq)]
enum Cond {
    InParents(String),
    Trashed(bool),
    MimeIs(String),
    MimeIsNot(String),
    NameIs(String),
}

#[derive(Debug, PartialEq)]
enum Tok {
    Str(String),
    Word(String),
}

fn tokenize(q: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '\'' {
            chars.next();
            let mut s = String::new();
            loop {
                match chars.next() {
                    None => return Err("unterminated string".into()),
                    Some('\\') => match chars.next() {
                        Some(e) => s.push(e),
                        None => return Err("dangling escape".into()),
                    },
                    Some('\'') => break,
                    Some(o) => s.push(o),
                }
            }
            out.push(Tok::Str(s));
        } else if c == '=' {
            chars.next();
            out.push(Tok::Word("=".into()));
        } else if c == '!' {
            chars.next();
            if chars.next() != Some('=') {
                return Err("expected !=".into());
            }
            out.push(Tok::Word("!=".into()));
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '=' || c == '!' || c == '\'' {
                    break;
                }
                w.push(c);
                chars.next();
            }
            out.push(Tok::Word(w));
        }
    }
    Ok(out)
}

fn parse_q(q: &str) -> Result<Vec<Cond>, String> {
    let toks = tokenize(q)?;
    let mut conds = Vec::new();
    if toks.is_empty() {
        return Ok(conds);
    }
    for part in toks.split(|t| matches!(t, Tok::Word(w) if w.eq_ignore_ascii_case("and"))) {
        let cond = match part {
            [Tok::Str(id), Tok::Word(i), Tok::Word(p)] if i == "in" && p == "parents" => {
                Cond::InParents(id.clone())
            }
            [Tok::Word(f), Tok::Word(eq), Tok::Word(v)] if f == "trashed" && eq == "=" => match v.as_str() {
                "true" => Cond::Trashed(true),
                "false" => Cond::Trashed(false),
                _ => return Err(format!("bad trashed value {v}")),
            },
            [Tok::Word(f), Tok::Word(op), Tok::Str(v)] if f == "mimeType" && op == "=" => {
                Cond::MimeIs(v.clone())
            }
            [Tok::Word(f), Tok::Word(op), Tok::Str(v)] if f == "mimeType" && op == "!=" => {
                Cond::MimeIsNot(v.clone())
            }
            [Tok::Word(f), Tok::Word(op), Tok::Str(v)] if f == "name" && op == "=" => Cond::NameIs(v.clone()),
            _ => return Err(format!("unsupported condition {part:?}")),
        };
        conds.push(cond);
    }
    Ok(conds)
}

fn matches(a: &Account, f: &File, conds: &[Cond]) -> bool {
    conds.iter().all(|c| match c {
        Cond::InParents(p) => f.parent.as_deref() == Some(a.resolve(p)),
        Cond::Trashed(t) => a.trashed(f) == *t,
        Cond::MimeIs(m) => &f.mime_type == m,
        Cond::MimeIsNot(m) => &f.mime_type != m,
        Cond::NameIs(n) => &f.name == n,
    })
}

/// `GET /drive/v3/files`.
pub(crate) async fn files_list(
    State(st): State<Arc<DriveState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    st.faults
        .guarded(Endpoint::FilesList, async {
            with_account(&st, &headers, raw.as_deref(), |_, a, q| {
                let conds = match parse_q(q.get("q").map(String::as_str).unwrap_or_default()) {
                    Ok(c) => c,
                    Err(e) => return wire::bad_param("q", &format!("Invalid Value ({e})")),
                };
                let size = match page_size(q, 100, 1000) {
                    Ok(n) => n,
                    Err(r) => return r,
                };
                let all_drives = flag(q, "includeItemsFromAllDrives") && flag(q, "supportsAllDrives");
                let corpus_drive = match q.get("corpora").map(String::as_str) {
                    None | Some("user") | Some("allDrives") | Some("domain") => None,
                    Some("drive") => match q.get("driveId") {
                        Some(d) if a.drives.iter().any(|x| &x.id == d) => Some(d.clone()),
                        Some(d) => return wire::error_with(404, "global", "notFound", &format!("Shared drive not found: {d}"), Some(("parameter", "driveId"))),
                        None => return wire::bad_param("driveId", "The driveId parameter is required when corpora is drive."),
                    },
                    Some(o) => return wire::bad_param("corpora", &format!("Invalid value '{o}'.")),
                };
                if corpus_drive.is_some() && !all_drives {
                    return wire::error_with(
                        403,
                        "global",
                        "teamDriveIncludeItemsRequired",
                        "The includeItemsFromAllDrives parameter must be set to true when driveId is specified.",
                        Some(("parameter", "includeItemsFromAllDrives")),
                    );
                }
                let offset = match q.get("pageToken") {
                    None => 0,
                    Some(t) => match t.strip_prefix(PAGE_PREFIX).and_then(|n| n.parse::<usize>().ok()) {
                        Some(n) => n,
                        None => return wire::bad_param("pageToken", "Invalid Value"),
                    },
                };
                let mut hits: Vec<&File> = a
                    .files
                    .values()
                    .filter(|f| f.parent.is_some())
                    .filter(|f| match (&corpus_drive, &f.drive_id) {
                        (Some(d), fd) => fd.as_ref() == Some(d),
                        (None, Some(_)) => all_drives,
                        (None, None) => true,
                    })
                    .filter(|f| matches(a, f, &conds))
                    .collect();
                hits.sort_by(|x, y| x.name.cmp(&y.name).then(x.id.cmp(&y.id)));
                let page: Vec<Value> = hits.iter().skip(offset).take(size).map(|f| wire::file_json(a, f)).collect();
                let mut body = json!({ "kind": "drive#fileList", "incompleteSearch": false, "files": page });
                if offset + size < hits.len()
                    && let Some(obj) = body.as_object_mut()
                {
                    obj.insert("nextPageToken".into(), json!(format!("{PAGE_PREFIX}{}", offset + size)));
                }
                wire::json_fields(body, wire::Schema::FileList, q)
            })
        })
        .await
}

/// The shared drive a changes call is about (`driveId`), checked.
fn drive_param(a: &Account, q: &Query) -> Result<Option<String>, Response> {
    match q.get("driveId") {
        None => Ok(None),
        Some(d) if a.drives.iter().any(|x| &x.id == d) => {
            if !flag(q, "supportsAllDrives") {
                return Err(wire::error_with(
                    403,
                    "global",
                    "teamDrivesParameterNotSupported",
                    "The driveId parameter requires supportsAllDrives=true.",
                    Some(("parameter", "supportsAllDrives")),
                ));
            }
            Ok(Some(d.clone()))
        }
        Some(d) => Err(wire::error_with(
            404,
            "global",
            "notFound",
            &format!("Shared drive not found: {d}"),
            Some(("parameter", "driveId")),
        )),
    }
}

/// `GET /drive/v3/changes/startPageToken`.
pub(crate) async fn start_page_token(
    State(st): State<Arc<DriveState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    st.faults
        .guarded(Endpoint::StartPageToken, async {
            with_account(&st, &headers, raw.as_deref(), |inner, a, q| {
                if let Err(r) = drive_param(a, q) {
                    return r;
                }
                wire::json_fields(
                    json!({ "kind": "drive#startPageToken", "startPageToken": inner.seq.to_string() }),
                    wire::Schema::StartPageToken,
                    q,
                )
            })
        })
        .await
}

/// `GET /drive/v3/changes`.
pub(crate) async fn changes_list(
    State(st): State<Arc<DriveState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    st.faults
        .guarded(Endpoint::ChangesList, async {
            with_account(&st, &headers, raw.as_deref(), |inner, a, q| {
                let drive = match drive_param(a, q) {
                    Ok(d) => d,
                    Err(r) => return r,
                };
                let Some(token) = q.get("pageToken") else {
                    return wire::error_with(
                        400,
                        "global",
                        "required",
                        "Required parameter: pageToken",
                        Some(("parameter", "pageToken")),
                    );
                };
                let from = match token.parse::<u64>() {
                    Ok(n) if n >= inner.token_floor && n <= inner.seq => n,
                    _ => return wire::bad_param("pageToken", &format!("Invalid Value: {token}")),
                };
                let size = match page_size(q, 100, 1000) {
                    Ok(n) => n,
                    Err(r) => return r,
                };
                let include_removed = q.get("includeRemoved").is_none_or(|v| v != "false");
                let all_drives = flag(q, "includeItemsFromAllDrives") && flag(q, "supportsAllDrives");
                // The latest change per file since `from`, in the order of those changes.
                let mut latest: HashMap<&str, usize> = HashMap::new();
                let relevant: Vec<(usize, &super::model::Change)> = a
                    .changes
                    .iter()
                    .enumerate()
                    .filter(|(_, c)| c.seq >= from)
                    .filter(|(_, c)| match (&drive, &c.drive_id) {
                        (Some(d), cd) => cd.as_ref() == Some(d),
                        (None, Some(_)) => all_drives,
                        (None, None) => true,
                    })
                    .collect();
                for (i, c) in &relevant {
                    latest.insert(c.file_id.as_str(), *i);
                }
                let mut picked: Vec<&super::model::Change> = relevant
                    .iter()
                    .filter(|(i, c)| latest.get(c.file_id.as_str()) == Some(i))
                    .map(|(_, c)| *c)
                    .collect();
                if !include_removed {
                    picked.retain(|c| a.files.contains_key(&c.file_id));
                }
                let more = picked.len() > size;
                let next = picked.get(size).map(|c| c.seq);
                let changes: Vec<Value> = picked
                    .iter()
                    .take(size)
                    .map(|c| {
                        let mut v = json!({
                            "kind": "drive#change",
                            "changeType": "file",
                            "fileId": c.file_id,
                            "time": wire::drive_time(c.time),
                        });
                        if let Some(obj) = v.as_object_mut() {
                            match a.files.get(&c.file_id) {
                                Some(f) => {
                                    obj.insert("removed".into(), json!(false));
                                    obj.insert("file".into(), wire::file_json(a, f));
                                }
                                None => {
                                    obj.insert("removed".into(), json!(true));
                                }
                            }
                            if let Some(d) = &c.drive_id {
                                obj.insert("driveId".into(), json!(d));
                            }
                        }
                        v
                    })
                    .collect();
                let mut body = json!({ "kind": "drive#changeList", "changes": changes });
                if let Some(obj) = body.as_object_mut() {
                    match (more, next) {
                        (true, Some(n)) => obj.insert("nextPageToken".into(), json!(n.to_string())),
                        _ => obj.insert("newStartPageToken".into(), json!(inner.seq.to_string())),
                    };
                }
                wire::json_fields(body, wire::Schema::ChangeList, q)
            })
        })
        .await
}

/// `GET /drive/v3/drives/{id}`: a shared drive the account is a member of (404 otherwise).
pub(crate) async fn drives_get(
    State(st): State<Arc<DriveState>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    st.faults
        .guarded(Endpoint::DrivesGet, async {
            with_account(&st, &headers, raw.as_deref(), |_, a, q| {
                match a.drives.iter().find(|d| d.id == id) {
                    Some(d) => {
                        let body = json!({ "kind": "drive#drive", "id": d.id, "name": d.name });
                        wire::json_fields(body, wire::Schema::Drive, q)
                    }
                    None => wire::error_with(
                        404,
                        "global",
                        "notFound",
                        &format!("Shared drive not found: {id}"),
                        Some(("parameter", "driveId")),
                    ),
                }
            })
        })
        .await
}

/// `GET /drive/v3/drives` (default 10, max 100 per page).
pub(crate) async fn drives_list(
    State(st): State<Arc<DriveState>>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    st.faults
        .guarded(Endpoint::DrivesList, async {
            with_account(&st, &headers, raw.as_deref(), |_, a, q| {
                let size = match page_size(q, 10, 100) {
                    Ok(n) => n,
                    Err(r) => return r,
                };
                let offset = match q.get("pageToken") {
                    None => 0,
                    Some(t) => match t.strip_prefix(PAGE_PREFIX).and_then(|n| n.parse::<usize>().ok()) {
                        Some(n) => n,
                        None => return wire::bad_param("pageToken", "Invalid Value"),
                    },
                };
                let drives: Vec<Value> = a
                    .drives
                    .iter()
                    .skip(offset)
                    .take(size)
                    .map(|d| json!({ "kind": "drive#drive", "id": d.id, "name": d.name }))
                    .collect();
                let mut body = json!({ "kind": "drive#driveList", "drives": drives });
                if offset + size < a.drives.len()
                    && let Some(obj) = body.as_object_mut()
                {
                    obj.insert("nextPageToken".into(), json!(format!("{PAGE_PREFIX}{}", offset + size)));
                }
                wire::json_fields(body, wire::Schema::DriveList, q)
            })
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q_parses_the_connector_queries() {
        assert_eq!(
            parse_q("'abc' in parents and trashed = false"),
            Ok(vec![Cond::InParents("abc".into()), Cond::Trashed(false)])
        );
        assert_eq!(
            parse_q("'root' in parents and mimeType='application/vnd.google-apps.folder' and trashed=false"),
            Ok(vec![
                Cond::InParents("root".into()),
                Cond::MimeIs("application/vnd.google-apps.folder".into()),
                Cond::Trashed(false)
            ])
        );
        assert_eq!(parse_q("name = 'it\\'s and more'"), Ok(vec![Cond::NameIs("it's and more".into())]));
        assert_eq!(parse_q(""), Ok(vec![]));
        assert!(parse_q("fullText contains 'x'").is_err());
    }
}
