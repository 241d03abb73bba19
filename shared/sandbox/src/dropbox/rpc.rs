//! RPC routes of the api host (`users/get_current_account`, `files/list_folder`,
//! `files/list_folder/continue`, `files/list_folder/get_latest_cursor`,
//! `files/get_metadata`) and the notify host's `files/list_folder/longpoll`.
//!
//! Request conventions (provider-apis.md §3): POST, JSON body with
//! `Content-Type: application/json` (`text/plain; charset=dropbox-cors-hack` is also
//! accepted, as by Dropbox); anything else is a 400 plain-text error. Routes without
//! arguments accept an empty body (any content type) or `null`.
//!
//! Listing choices:
//! - a recursive listing of a non-root folder returns the folder's own entry first
//!   (as real Dropbox does); a non-recursive one does not; the root has no entry;
//! - entries are ordered by `path_lower`, so parents precede children;
//! - the initial listing pages by position (not offset), so mutations during a paged
//!   listing neither skip nor repeat entries; changes made after the listing started
//!   are replayed by the first `continue` after the listing is complete;
//! - `continue` reports deleted entries even without `include_deleted` (as observed
//!   by rclone); `include_deleted` only adds tombstones to the *initial* listing;
//! - a cursor whose folder no longer exists gets 409 `path/not_found`;
//! - longpoll waits at most `min(timeout, longpoll_max_wait)` (default 1 s, settable
//!   with `DropboxControl::set_longpoll_max_wait`) instead of 30–480 s, and never
//!   returns `backoff`.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::Response;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::cursor::Cursor;
use super::endpoints::Endpoint;
use super::model::{Account, Entry, ModelError, Scope, Target, lower, split_path};
use super::oauth::authenticate;
use super::{DropboxState, wire};

const LIST_PATH_PATTERN: &str = r"(/(.|[\r\n])*)?|id:.*|(ns:[0-9]+(/.*)?)";
const READ_PATH_PATTERN: &str = r"(/(.|[\r\n])*|id:.*)|(rev:[0-9a-f]{9,})|(ns:[0-9]+(/.*)?)";

// ---------------------------------------------------------------------------------
// Argument parsing

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

fn is_json_content_type(ct: &str) -> bool {
    let ct = ct.trim().to_ascii_lowercase();
    let mime = ct.split(';').next().unwrap_or_default().trim();
    mime == "application/json" || ct.replace(' ', "") == "text/plain;charset=dropbox-cors-hack"
}

fn bad_content_type(route: &str, ct: Option<&str>) -> Response {
    wire::route_error(
        route,
        &format!(
            "Bad HTTP \"Content-Type\" header: \"{}\".  Expecting one of \"application/json\", \
             \"application/json; charset=utf-8\", \"text/plain; charset=dropbox-cors-hack\".",
            ct.unwrap_or_default()
        ),
    )
}

/// Parses the JSON argument of an RPC route.
pub(crate) fn parse_args<T: DeserializeOwned>(
    route: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<T, Response> {
    let ct = content_type(headers);
    if !ct.is_some_and(is_json_content_type) {
        return Err(bad_content_type(route, ct));
    }
    serde_json::from_slice(body).map_err(|e| {
        if e.is_syntax() || e.is_eof() {
            wire::route_error(route, "request body: could not decode input as JSON")
        } else {
            wire::route_error(route, &format!("request body: {e}"))
        }
    })
}

/// Accepts the argument of a route without arguments: no body, or `null`.
pub(crate) fn parse_void_args(route: &str, headers: &HeaderMap, body: &[u8]) -> Result<(), Response> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(());
    }
    let ct = content_type(headers);
    if !ct.is_some_and(is_json_content_type) {
        return Err(bad_content_type(route, ct));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Null) => Ok(()),
        Ok(_) => Err(wire::route_error(route, "request body: expected null, got value")),
        Err(_) => Err(wire::route_error(route, "request body: could not decode input as JSON")),
    }
}

/// Which path syntax a route accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PathKind {
    /// `PathROrId`: `""` (root), `/path`, `id:`, `ns:`.
    List,
    /// `ReadPath` for get_metadata: `/path`, `id:`, `rev:`, `ns:`; root unsupported.
    Metadata,
    /// `ReadPath` for download.
    Download,
}

pub(crate) fn model_error(e: &ModelError) -> Response {
    match e {
        ModelError::NotFound => wire::path_error("not_found"),
        ModelError::NotFolder => wire::path_error("not_folder"),
        ModelError::NotFile => wire::path_error("not_file"),
        ModelError::Conflict(_) => wire::path_error("conflict"),
        ModelError::Malformed(_) => wire::path_error("malformed_path"),
    }
}

/// Resolves a path argument in an account, with Dropbox's validation and errors.
pub(crate) fn lookup(acct: &Account, route: &str, raw: &str, kind: PathKind) -> Result<Target, Response> {
    let pattern = if kind == PathKind::List { LIST_PATH_PATTERN } else { READ_PATH_PATTERN };
    let mismatch = || {
        wire::route_error(route, &format!("request body: path: '{raw}' did not match pattern '{pattern}'"))
    };
    if raw == "/" {
        return Err(match kind {
            PathKind::List => wire::route_error(
                route,
                "request body: path: Specify the root folder as an empty string rather than as \"/\".",
            ),
            _ => wire::route_error(route, "request body: path: The root folder is unsupported."),
        });
    }
    if raw.is_empty() {
        return match kind {
            PathKind::List => Ok(Target::Root),
            PathKind::Metadata => {
                Err(wire::route_error(route, "request body: path: The root folder is unsupported."))
            }
            PathKind::Download => Err(mismatch()),
        };
    }
    let resolved = if let Some(rest) = raw.strip_prefix("ns:") {
        let (ns, sub) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if ns.is_empty() || !ns.bytes().all(|b| b.is_ascii_digit()) {
            return Err(mismatch());
        }
        if ns != acct.namespace_id {
            return Err(wire::path_error("not_found"));
        }
        if sub.is_empty() {
            if kind == PathKind::List {
                return Ok(Target::Root);
            }
            return Err(wire::route_error(route, "request body: path: The root folder is unsupported."));
        }
        acct.tree.resolve(sub)
    } else if let Some(rev) = raw.strip_prefix("rev:") {
        let valid = rev.len() >= 9 && rev.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if kind == PathKind::List || !valid {
            return Err(mismatch());
        }
        acct.tree.resolve(raw)
    } else if raw.starts_with("id:") || raw.starts_with('/') {
        acct.tree.resolve(raw)
    } else {
        return Err(mismatch());
    };
    resolved.map_err(|e| model_error(&e))
}

/// Serialises entries, computing any missing content hash off the async threads.
async fn entries_json(entries: &[Entry]) -> Vec<Value> {
    for e in entries {
        if let Some(b) = e.blob() {
            b.native_hash_async().await;
        }
    }
    entries.iter().map(|e| serde_json::to_value(e.metadata()).unwrap_or(Value::Null)).collect()
}

// ---------------------------------------------------------------------------------
// users/get_current_account

/// `POST /2/users/get_current_account`.
pub(crate) async fn get_current_account(
    State(st): State<Arc<DropboxState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const ROUTE: &str = "users/get_current_account";
    let st2 = Arc::clone(&st);
    st.faults
        .guarded(Endpoint::GetCurrentAccount, async move {
            if let Err(r) = parse_void_args(ROUTE, &headers, &body) {
                return r;
            }
            let account = match authenticate(&st2, &headers, Some("account_info.read")) {
                Ok((a, _)) => a,
                Err(r) => return r,
            };
            let Some(person) = st2.oauth.account(&account.0) else {
                return wire::auth_error("invalid_access_token");
            };
            let inner = st2.lock();
            let Some(a) = inner.account(&account.0) else {
                return wire::auth_error("invalid_access_token");
            };
            let (given, surname) = match person.display_name.split_once(' ') {
                Some((g, s)) => (g.to_string(), s.to_string()),
                None => (person.display_name.clone(), String::new()),
            };
            let abbreviated: String = person
                .display_name
                .split_whitespace()
                .filter_map(|w| w.chars().next())
                .flat_map(char::to_uppercase)
                .collect();
            wire::json_ok(&json!({
                "account_id": a.id.0,
                "name": {
                    "given_name": given,
                    "surname": surname,
                    "familiar_name": given,
                    "display_name": person.display_name,
                    "abbreviated_name": abbreviated,
                },
                "email": person.email,
                "email_verified": true,
                "disabled": false,
                "country": "US",
                "locale": "en",
                "referral_link": format!("https://www.dropbox.com/referrals/{}", a.uid),
                "is_paired": false,
                "account_type": { ".tag": "basic" },
                "root_info": {
                    ".tag": "user",
                    "root_namespace_id": a.namespace_id,
                    "home_namespace_id": a.namespace_id,
                },
            }))
        })
        .await
}

// ---------------------------------------------------------------------------------
// files/list_folder and friends

fn default_true() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // accepted for fidelity, no effect here
struct ListFolderArg {
    path: String,
    #[serde(default)]
    recursive: bool,
    #[serde(default)]
    include_deleted: bool,
    #[serde(default)]
    include_has_explicit_shared_members: bool,
    #[serde(default = "default_true")]
    include_mounted_folders: bool,
    limit: Option<u32>,
    #[serde(default = "default_true")]
    include_non_downloadable_files: bool,
    shared_link: Option<Value>,
    include_property_groups: Option<Value>,
}

/// Dropbox's maximum (and default) page size.
const MAX_LIMIT: u32 = 2000;

fn check_limit(route: &str, limit: Option<u32>) -> Result<u32, Response> {
    match limit {
        None => Ok(MAX_LIMIT),
        Some(0) => {
            Err(wire::route_error(route, "request body: limit: 0 is not a valid value (must be at least 1)"))
        }
        Some(l) if l > MAX_LIMIT => Err(wire::route_error(
            route,
            &format!("request body: limit: {l} is not a valid value (must be at most {MAX_LIMIT})"),
        )),
        Some(l) => Ok(l),
    }
}

/// Validated `list_folder`-style request: account, folder target and scope.
struct ListTarget {
    account: String,
    folder_id: String,
    scope: Scope,
    limit: u32,
    include_deleted: bool,
    epoch: u64,
}

/// The start of every metadata RPC: its JSON arguments, then the caller's account.
fn metadata_call<T: DeserializeOwned>(
    st: &DropboxState,
    route: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(T, super::AccountId), Response> {
    let arg = parse_args(route, headers, body)?;
    let (account, _) = authenticate(st, headers, Some("files.metadata.read"))?;
    Ok((arg, account))
}

fn prepare_listing(
    st: &DropboxState,
    route: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(ListTarget, ListFolderArg), Response> {
    let arg: ListFolderArg = parse_args(route, headers, body)?;
    let limit = check_limit(route, arg.limit)?;
    let (account, _) = authenticate(st, headers, Some("files.metadata.read"))?;
    let inner = st.lock();
    let acct = inner.account(&account.0).ok_or_else(|| wire::auth_error("invalid_access_token"))?;
    let target = lookup(acct, route, &arg.path, PathKind::List)?;
    let folder_lower = acct.tree.folder_lower(&target).map_err(|e| model_error(&e))?;
    let folder_id = match &target {
        Target::Root => String::new(),
        Target::Node(id) => id.clone(),
    };
    let lt = ListTarget {
        account: account.0,
        folder_id,
        scope: Scope { folder_lower, recursive: arg.recursive },
        limit,
        include_deleted: arg.include_deleted,
        epoch: inner.epoch,
    };
    Ok((lt, arg))
}

fn list_result(entries: Vec<Value>, cursor: &Cursor, has_more: bool) -> Response {
    wire::json_ok(&json!({ "entries": entries, "cursor": cursor.encode(), "has_more": has_more }))
}

/// `POST /2/files/list_folder`.
pub(crate) async fn list_folder(
    State(st): State<Arc<DropboxState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const ROUTE: &str = "files/list_folder";
    let st2 = Arc::clone(&st);
    st.faults
        .guarded(Endpoint::ListFolder, async move {
            let (lt, _) = match prepare_listing(&st2, ROUTE, &headers, &body) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let (page, seq) = {
                let inner = st2.lock();
                let Some(acct) = inner.account(&lt.account) else {
                    return wire::auth_error("invalid_access_token");
                };
                let page = acct.tree.list_page(&lt.scope, lt.include_deleted, None, lt.limit as usize);
                (page, acct.tree.seq())
            };
            let cursor = Cursor {
                account: lt.account,
                folder: lt.folder_id,
                recursive: lt.scope.recursive,
                include_deleted: lt.include_deleted,
                limit: lt.limit,
                seq,
                pos: page.next.clone(),
                epoch: lt.epoch,
            };
            let has_more = page.next.is_some();
            list_result(entries_json(&page.entries).await, &cursor, has_more)
        })
        .await
}

/// `POST /2/files/list_folder/get_latest_cursor` (same arguments as `list_folder`).
pub(crate) async fn get_latest_cursor(
    State(st): State<Arc<DropboxState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const ROUTE: &str = "files/list_folder/get_latest_cursor";
    let st2 = Arc::clone(&st);
    st.faults
        .guarded(Endpoint::GetLatestCursor, async move {
            let (lt, _) = match prepare_listing(&st2, ROUTE, &headers, &body) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let seq = st2.lock().account(&lt.account).map(|a| a.tree.seq()).unwrap_or(0);
            let cursor = Cursor {
                account: lt.account,
                folder: lt.folder_id,
                recursive: lt.scope.recursive,
                include_deleted: lt.include_deleted,
                limit: lt.limit,
                seq,
                pos: None,
                epoch: lt.epoch,
            };
            wire::json_ok(&json!({ "cursor": cursor.encode() }))
        })
        .await
}

#[derive(Debug, Deserialize)]
struct CursorArg {
    cursor: String,
}

fn invalid_cursor(route: &str) -> Response {
    wire::route_error(
        route,
        "request body: cursor: invalid cursor (not issued by this server or for this user)",
    )
}

/// Checks a cursor against the current state: account, epoch, folder. Returns the
/// scope to follow.
fn cursor_scope(inner: &super::Inner, route: &str, c: &Cursor) -> Result<Scope, Response> {
    let acct = inner.account(&c.account).ok_or_else(|| invalid_cursor(route))?;
    if c.epoch != inner.epoch {
        return Err(wire::reset_error());
    }
    let folder_lower = if c.folder.is_empty() {
        String::new()
    } else {
        match acct.tree.node(&c.folder) {
            Some(n) if n.is_folder() => n.path_lower.clone(),
            _ => return Err(wire::path_error("not_found")),
        }
    };
    Ok(Scope { folder_lower, recursive: c.recursive })
}

/// `POST /2/files/list_folder/continue`.
pub(crate) async fn list_folder_continue(
    State(st): State<Arc<DropboxState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const ROUTE: &str = "files/list_folder/continue";
    let st2 = Arc::clone(&st);
    st.faults
        .guarded(Endpoint::ListFolderContinue, async move {
            let (arg, account): (CursorArg, _) = match metadata_call(&st2, ROUTE, &headers, &body) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let Some(mut cursor) = Cursor::decode(&arg.cursor).filter(|c| c.account == account.0) else {
                return invalid_cursor(ROUTE);
            };
            let (entries, has_more) = {
                let inner = st2.lock();
                let scope = match cursor_scope(&inner, ROUTE, &cursor) {
                    Ok(s) => s,
                    Err(r) => return r,
                };
                let Some(acct) = inner.account(&cursor.account) else {
                    return invalid_cursor(ROUTE);
                };
                let limit = cursor.limit.clamp(1, MAX_LIMIT) as usize;
                match cursor.pos.take() {
                    Some(pos) => {
                        let page = acct.tree.list_page(&scope, cursor.include_deleted, Some(&pos), limit);
                        cursor.pos = page.next.clone();
                        (page.entries, cursor.pos.is_some())
                    }
                    None => {
                        let page = acct.tree.changes(&scope, cursor.seq, limit);
                        cursor.seq = page.seq;
                        (page.entries, page.has_more)
                    }
                }
            };
            list_result(entries_json(&entries).await, &cursor, has_more)
        })
        .await
}

// ---------------------------------------------------------------------------------
// files/get_metadata

#[derive(Debug, Deserialize)]
#[allow(dead_code)] // accepted for fidelity, no effect here
struct GetMetadataArg {
    path: String,
    #[serde(default)]
    include_media_info: bool,
    #[serde(default)]
    include_deleted: bool,
    #[serde(default)]
    include_has_explicit_shared_members: bool,
    include_property_groups: Option<Value>,
}

/// `POST /2/files/get_metadata`. With `include_deleted`, a deleted path answers its
/// `deleted` metadata instead of `path/not_found`.
pub(crate) async fn get_metadata(
    State(st): State<Arc<DropboxState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const ROUTE: &str = "files/get_metadata";
    let st2 = Arc::clone(&st);
    st.faults
        .guarded(Endpoint::GetMetadata, async move {
            let (arg, account): (GetMetadataArg, _) = match metadata_call(&st2, ROUTE, &headers, &body) {
                Ok(v) => v,
                Err(r) => return r,
            };
            let entry = {
                let inner = st2.lock();
                let Some(acct) = inner.account(&account.0) else {
                    return wire::auth_error("invalid_access_token");
                };
                match lookup(acct, ROUTE, &arg.path, PathKind::Metadata) {
                    Ok(Target::Node(id)) => match acct.tree.node(&id) {
                        Some(n) => Entry::Live(n.clone()),
                        None => return wire::path_error("not_found"),
                    },
                    Ok(Target::Root) => {
                        return wire::route_error(
                            ROUTE,
                            "request body: path: The root folder is unsupported.",
                        );
                    }
                    Err(r) => {
                        let tomb =
                            arg.include_deleted && arg.path.starts_with('/') && split_path(&arg.path).is_ok();
                        match tomb.then(|| acct.tree.tombstone(&lower(&arg.path))).flatten() {
                            Some(display) => {
                                Entry::Deleted { path_lower: lower(&arg.path), path_display: display.clone() }
                            }
                            None => return r,
                        }
                    }
                }
            };
            let mut v = entries_json(std::slice::from_ref(&entry)).await;
            wire::json_ok(&v.pop().unwrap_or(Value::Null))
        })
        .await
}

// ---------------------------------------------------------------------------------
// files/list_folder/longpoll (notify host, no auth)

#[derive(Debug, Deserialize)]
struct LongpollArg {
    cursor: String,
    #[serde(default = "default_timeout")]
    timeout: u64,
}

fn default_timeout() -> u64 {
    30
}

/// `Some(true)` when the cursor has something to fetch now, `Some(false)` when not,
/// `Err` for an invalid or reset cursor.
fn longpoll_check(st: &DropboxState, route: &str, c: &Cursor) -> Result<bool, Response> {
    let inner = st.lock();
    let scope = match cursor_scope(&inner, route, c) {
        Ok(s) => s,
        // A vanished folder: report "changes" so the client calls continue and sees
        // the error there.
        Err(_) if inner.epoch == c.epoch && inner.account(&c.account).is_some() => return Ok(true),
        Err(r) => return Err(r),
    };
    if c.pos.is_some() {
        return Ok(true);
    }
    Ok(inner.account(&c.account).is_some_and(|a| a.tree.has_changes(&scope, c.seq)))
}

/// `POST /2/files/list_folder/longpoll`.
pub(crate) async fn longpoll(
    State(st): State<Arc<DropboxState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    const ROUTE: &str = "files/list_folder/longpoll";
    let st2 = Arc::clone(&st);
    st.faults.guarded(Endpoint::Longpoll, async move {
        let arg: LongpollArg = match parse_args(ROUTE, &headers, &body) {
            Ok(a) => a,
            Err(r) => return r,
        };
        if !(30..=480).contains(&arg.timeout) {
            return wire::route_error(
                ROUTE,
                &format!(
                    "request body: timeout: {} is not a valid value (must be between 30 and 480)",
                    arg.timeout
                ),
            );
        }
        let Some(cursor) = Cursor::decode(&arg.cursor) else {
            return invalid_cursor(ROUTE);
        };
        let max_wait = st2.lock().longpoll_max_wait;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(arg.timeout).min(max_wait);
        loop {
            let notified = st2.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            match longpoll_check(&st2, ROUTE, &cursor) {
                Err(r) => return r,
                Ok(true) => return wire::json_ok(&json!({ "changes": true })),
                Ok(false) => {}
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep_until(deadline) => return wire::json_ok(&json!({ "changes": false })),
            }
        }
    })
    .await
}
