//! The Graph routes: one catch-all under `/sharepoint/graph/v1.0/` parsed into a
//! [`Route`], then `me`, sites, drives, items, children and the delta feed
//! (`/content` lives in `download`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::model::{Drive, Owner};
use super::wire::{self, Render};
use super::{Endpoint, Feed, Inner, Query, SpState, query};
use crate::oauth::AuthFailure;

/// Which drive a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DriveRef {
    /// `/me/drive`.
    Me,
    /// `/drives/{id}`.
    Id(String),
    /// `/sites/{id}/drive` (the default library).
    SiteDefault(String),
}

/// Which item a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemRef {
    Root,
    Id(String),
}

/// A parsed Graph path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    Me,
    Sites,
    Site(String),
    SiteDrives(String),
    Drive(DriveRef),
    Item(DriveRef, ItemRef),
    Children(DriveRef, ItemRef),
    Delta(DriveRef, ItemRef),
    Content(DriveRef, ItemRef),
}

impl Route {
    pub(crate) fn endpoint(&self) -> Endpoint {
        match self {
            Route::Me => Endpoint::Me,
            Route::Sites => Endpoint::Sites,
            Route::Site(_) => Endpoint::Site,
            Route::SiteDrives(_) => Endpoint::SiteDrives,
            Route::Drive(_) => Endpoint::Drive,
            Route::Item(..) => Endpoint::Item,
            Route::Children(..) => Endpoint::Children,
            Route::Delta(..) => Endpoint::Delta,
            Route::Content(..) => Endpoint::Content,
        }
    }

    /// Parses the path after `/v1.0/` (segments percent-decoded).
    pub(crate) fn parse(path: &str) -> Option<Route> {
        let segs: Vec<String> = path.trim_matches('/').split('/').map(percent_decode).collect();
        let segs: Vec<&str> = segs.iter().map(String::as_str).collect();
        match segs.as_slice() {
            ["me"] => Some(Route::Me),
            ["me", "drive", rest @ ..] => drive_rest(DriveRef::Me, rest),
            ["drives", id, rest @ ..] => drive_rest(DriveRef::Id(id.to_string()), rest),
            ["sites"] => Some(Route::Sites),
            ["sites", id] => Some(Route::Site(id.to_string())),
            ["sites", id, "drives"] => Some(Route::SiteDrives(id.to_string())),
            ["sites", id, "drive", rest @ ..] => drive_rest(DriveRef::SiteDefault(id.to_string()), rest),
            _ => None,
        }
    }
}

fn percent_decode(s: &str) -> String {
    // form_urlencoded would turn '+' into a space; path segments keep it.
    let escaped = s.replace('+', "%2B");
    url::form_urlencoded::parse(format!("x={escaped}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn drive_rest(d: DriveRef, rest: &[&str]) -> Option<Route> {
    let (item, tail) = match rest {
        [] => return Some(Route::Drive(d)),
        ["root", tail @ ..] => (ItemRef::Root, tail),
        ["items", id, tail @ ..] => (ItemRef::Id(id.to_string()), tail),
        _ => return None,
    };
    match tail {
        [] => Some(Route::Item(d, item)),
        ["children"] => Some(Route::Children(d, item)),
        ["delta"] | ["delta()"] | ["microsoft.graph.delta()"] => Some(Route::Delta(d, item)),
        ["content"] => Some(Route::Content(d, item)),
        _ => None,
    }
}

/// `GET /sharepoint/graph/v1.0/{*rest}`.
pub(crate) async fn graph(
    State(st): State<Arc<SpState>>,
    Path(rest): Path<String>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let Some(route) = Route::parse(&rest) else {
        let msg =
            format!("Resource not found for the segment '{}'.", rest.split('/').next().unwrap_or_default());
        return wire::error(400, "BadRequest", &msg, st.now());
    };
    let q = query(raw.as_deref());
    st.faults
        .guarded(route.endpoint(), async {
            let now = st.now();
            let account = match authenticate(&st, &headers) {
                Ok(a) => a,
                Err(r) => return r,
            };
            if let Route::Content(d, i) = &route {
                return super::download::content(&st, &account, d, i, now);
            }
            let mut inner = st.lock();
            match handle(&st, &mut inner, &account, &route, &q, &headers, now) {
                Ok(v) => wire::json_ok(&v),
                Err(r) => r,
            }
        })
        .await
}

/// Authenticates the bearer; `Err` is the 401 to send.
pub(crate) fn authenticate(st: &SpState, headers: &HeaderMap) -> Result<String, Response> {
    let now = st.now();
    st.oauth.authenticate(headers, None).map(|b| b.account).map_err(|e| {
        let msg = match e {
            AuthFailure::Missing => "Access token is empty.",
            AuthFailure::Expired => "Lifetime validation failed, the token is expired.",
            AuthFailure::Invalid | AuthFailure::MissingScope(_) => "Access token validation failure.",
        };
        wire::unauthenticated(msg, now)
    })
}

/// The drive a path names, if the caller may read it.
pub(crate) fn resolve_drive<'a>(
    inner: &'a Inner,
    account: &str,
    d: &DriveRef,
    now: SystemTime,
) -> Result<&'a Drive, Response> {
    let id = match d {
        DriveRef::Me => inner.user(account).map(|u| u.drive_id.clone()),
        DriveRef::Id(id) => Some(id.clone()),
        DriveRef::SiteDefault(s) => inner.site(s).and_then(|s| s.drives.first().cloned()),
    };
    let drive = id.and_then(|id| inner.drives.get(&id)).ok_or_else(|| wire::not_found(now))?;
    if let Owner::User(owner) = &drive.owner
        && owner != account
    {
        return Err(wire::access_denied(now));
    }
    Ok(drive)
}

/// The site id a drive belongs to (libraries only).
pub(crate) fn site_of<'a>(inner: &'a Inner, drive: &Drive) -> Option<&'a str> {
    match &drive.owner {
        Owner::Site(s) => inner.site(s).map(|s| s.id.as_str()),
        Owner::User(_) => None,
    }
}

fn page_size(q: &Query, default: usize, now: SystemTime) -> Result<usize, Response> {
    match q.get("$top") {
        None => Ok(default),
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=1000).contains(&n) => Ok(n),
            _ => Err(wire::invalid_request(&format!("Invalid page size specified: '{v}'."), now)),
        },
    }
}

/// Encodes a query value (a nextLink keeps `$select` and friends verbatim otherwise).
fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

fn handle(
    st: &SpState,
    inner: &mut Inner,
    account: &str,
    route: &Route,
    q: &Query,
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<Value, Response> {
    let sel = q.get("$select").map(String::as_str);
    let selected = |mut v: Value| {
        wire::select(&mut v, sel);
        v
    };
    match route {
        Route::Me => {
            let u = inner.user(account).ok_or_else(|| wire::not_found(now))?;
            Ok(selected(wire::user_json(u)))
        }
        Route::Sites => {
            let search =
                q.get("search").map(|s| s.trim().trim_matches('"').to_lowercase()).unwrap_or_default();
            let value: Vec<Value> = inner
                .sites
                .iter()
                .filter(|s| {
                    search.is_empty()
                        || search == "*"
                        || s.name.to_lowercase().contains(&search)
                        || s.display_name.to_lowercase().contains(&search)
                })
                .map(|s| selected(wire::site_json(s)))
                .collect();
            Ok(json!({ "value": value }))
        }
        Route::Site(id) => {
            let s = inner.site(id).ok_or_else(|| wire::not_found(now))?;
            Ok(selected(wire::site_json(s)))
        }
        Route::SiteDrives(id) => {
            let s = inner.site(id).ok_or_else(|| wire::not_found(now))?;
            let value: Vec<Value> = s
                .drives
                .iter()
                .filter_map(|d| inner.drives.get(d))
                .map(|d| selected(wire::drive_json(d, &inner.users)))
                .collect();
            Ok(json!({ "value": value }))
        }
        Route::Drive(d) => {
            let drive = resolve_drive(inner, account, d, now)?;
            Ok(selected(wire::drive_json(drive, &inner.users)))
        }
        Route::Item(d, i) => {
            let drive = resolve_drive(inner, account, d, now)?;
            let item = item_of(drive, i).ok_or_else(|| wire::not_found(now))?;
            Ok(selected(wire::item_json(drive, site_of(inner, drive), item, Render::Full)))
        }
        Route::Children(d, i) => {
            let drive = resolve_drive(inner, account, d, now)?;
            let item = item_of(drive, i).ok_or_else(|| wire::not_found(now))?;
            let top = page_size(q, inner.children_page, now)?;
            let offset = match q.get("$skiptoken").or_else(|| q.get("$skipToken")) {
                None => 0,
                Some(t) => decode_skip(t).ok_or_else(|| wire::invalid_request("Invalid skip token.", now))?,
            };
            let kids = drive.children(&item.id);
            let site = site_of(inner, drive);
            let value: Vec<Value> = kids
                .iter()
                .skip(offset)
                .take(top)
                .map(|k| selected(wire::item_json(drive, site, k, Render::Full)))
                .collect();
            let mut out = json!({ "value": value });
            if offset + top < kids.len() {
                let mut link = format!(
                    "{}/sharepoint/graph/v1.0/drives/{}/items/{}/children?$top={top}",
                    st.link_base(inner),
                    drive.id,
                    item.id
                );
                if let Some(s) = sel {
                    link.push_str(&format!("&$select={}", enc(s)));
                }
                link.push_str(&format!(
                    "&$skiptoken={}",
                    URL_SAFE_NO_PAD.encode(format!("Paged=TRUE&p_ID={}", offset + top))
                ));
                out["@odata.nextLink"] = json!(link);
            }
            Ok(out)
        }
        Route::Delta(d, i) => delta(st, inner, account, d, i, q, headers, now),
        Route::Content(..) => Err(wire::not_found(now)),
    }
}

fn decode_skip(t: &str) -> Option<usize> {
    let raw = URL_SAFE_NO_PAD.decode(t).ok()?;
    String::from_utf8(raw).ok()?.strip_prefix("Paged=TRUE&p_ID=")?.parse().ok()
}

pub(crate) fn item_of<'a>(drive: &'a Drive, i: &ItemRef) -> Option<&'a super::model::Item> {
    match i {
        ItemRef::Root => drive.items.get(&drive.root_id),
        ItemRef::Id(id) => drive.item(id),
    }
}

// -- delta ---------------------------------------------------------------------------

/// A decoded delta token.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// A deltaLink's: changes from `seq` on.
    Delta { serial: u64, seq: u64, drive: String },
    /// A nextLink's: page `offset` of feed `feed`.
    Page { serial: u64, feed: u64, offset: usize },
}

impl Token {
    fn encode(&self) -> String {
        let raw = match self {
            Token::Delta { serial, seq, drive } => format!("d;{serial};{seq};{drive}"),
            Token::Page { serial, feed, offset } => format!("p;{serial};{feed};{offset}"),
        };
        URL_SAFE_NO_PAD.encode(raw)
    }

    fn decode(t: &str) -> Option<Token> {
        let raw = String::from_utf8(URL_SAFE_NO_PAD.decode(t).ok()?).ok()?;
        let parts: Vec<&str> = raw.splitn(4, ';').collect();
        match parts.as_slice() {
            ["d", serial, seq, drive] => Some(Token::Delta {
                serial: serial.parse().ok()?,
                seq: seq.parse().ok()?,
                drive: drive.to_string(),
            }),
            ["p", serial, feed, offset] => Some(Token::Page {
                serial: serial.parse().ok()?,
                feed: feed.parse().ok()?,
                offset: offset.parse().ok()?,
            }),
            _ => None,
        }
    }

    fn serial(&self) -> u64 {
        match self {
            Token::Delta { serial, .. } | Token::Page { serial, .. } => *serial,
        }
    }
}

fn delta_url(base: &str, drive_id: &str, token: &Token) -> String {
    format!("{base}/sharepoint/graph/v1.0/drives/{drive_id}/root/delta?token={}", token.encode())
}

#[allow(clippy::too_many_arguments)]
fn delta(
    st: &SpState,
    inner: &mut Inner,
    account: &str,
    d: &DriveRef,
    i: &ItemRef,
    q: &Query,
    headers: &HeaderMap,
    now: SystemTime,
) -> Result<Value, Response> {
    let drive = resolve_drive(inner, account, d, now)?;
    let drive_id = drive.id.clone();
    if let ItemRef::Id(id) = i {
        let item = drive.item(id).ok_or_else(|| wire::not_found(now))?;
        if item.parent.is_some() {
            // provider-apis.md §2.3: ODB / SharePoint support delta on the root only.
            return Err(wire::error(501, "notSupported", "view.delta can only be called on the root.", now));
        }
    }
    let top = page_size(q, inner.delta_page, now)?;
    let select = q.get("$select").cloned();
    let exclude_parent = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("deltaexcludeparent"));
    let base = st.link_base(inner);
    let feed_id = match q.get("token").map(String::as_str) {
        None => new_feed(inner, &drive_id, None, top, select, exclude_parent),
        Some("latest") => {
            let serial = inner.next_serial();
            let token = Token::Delta { serial, seq: inner.seq, drive: drive_id.clone() };
            return Ok(json!({ "value": [], "@odata.deltaLink": delta_url(&base, &drive_id, &token) }));
        }
        Some(t) => {
            let token = Token::decode(t).ok_or_else(|| wire::invalid_request("Invalid delta token.", now))?;
            if token.serial() < inner.token_floor {
                return Err(resync(inner, &base, &drive_id, top, now));
            }
            match token {
                Token::Delta { seq, drive, .. } => {
                    if drive != drive_id {
                        return Err(wire::invalid_request("The delta token belongs to another drive.", now));
                    }
                    new_feed(inner, &drive_id, Some(seq), top, select, exclude_parent)
                }
                Token::Page { feed, offset, .. } => {
                    let serial = inner.feeds.get(&feed).filter(|f| f.drive_id == drive_id).map(|f| f.serial);
                    let Some(serial) = serial else {
                        return Err(resync(inner, &base, &drive_id, top, now));
                    };
                    return Ok(page(inner, &base, serial, feed, offset));
                }
            }
        }
    };
    let serial = inner.feeds.get(&feed_id).map(|f| f.serial).unwrap_or_default();
    Ok(page(inner, &base, serial, feed_id, 0))
}

/// The 410 for an expired token: its `Location` starts a fresh enumeration.
fn resync(inner: &mut Inner, base: &str, drive_id: &str, top: usize, now: SystemTime) -> Response {
    let feed = new_feed(inner, drive_id, None, top, None, false);
    let serial = inner.feeds.get(&feed).map(|f| f.serial).unwrap_or_default();
    let location = delta_url(base, drive_id, &Token::Page { serial, feed, offset: 0 });
    let mut r = wire::error(
        410,
        "resyncChangesApplyDifferences",
        "Resync required. Replace any local items with the server's version (including deletes) if you're sure that the service was up to date with your local changes when you last sync'd. Upload any local changes that the server doesn't know about.",
        now,
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

/// One page of a feed: nextLink while items remain, else the deltaLink.
fn page(inner: &mut Inner, base: &str, serial: u64, feed_id: u64, offset: usize) -> Value {
    let (value, more, drive_id, upto) = {
        let Some(f) = inner.feeds.get(&feed_id) else { return json!({ "value": [] }) };
        let value: Vec<Value> = f
            .items
            .iter()
            .skip(offset)
            .take(f.top)
            .map(|v| {
                let mut v = v.clone();
                wire::select(&mut v, f.select.as_deref());
                v
            })
            .collect();
        (value, offset + f.top < f.items.len(), f.drive_id.clone(), f.upto)
    };
    let top = inner.feeds.get(&feed_id).map(|f| f.top).unwrap_or(1);
    if more {
        let next = Token::Page { serial, feed: feed_id, offset: offset + top };
        json!({ "value": value, "@odata.nextLink": delta_url(base, &drive_id, &next) })
    } else {
        let serial = inner.next_serial();
        let token = Token::Delta { serial, seq: upto, drive: drive_id.clone() };
        json!({ "value": value, "@odata.deltaLink": delta_url(base, &drive_id, &token) })
    }
}

/// Computes a feed: the whole tree (`since: None`) or the changes from `since` on.
fn new_feed(
    inner: &mut Inner,
    drive_id: &str,
    since: Option<u64>,
    top: usize,
    select: Option<String>,
    exclude_parent: bool,
) -> u64 {
    let items = match inner.drives.get(drive_id) {
        Some(drive) => {
            let site = site_of(inner, drive);
            feed_items(drive, site, since, inner.duplicate_items, exclude_parent)
        }
        None => Vec::new(),
    };
    let serial = inner.next_serial();
    let id = inner.next_feed;
    inner.next_feed += 1;
    inner
        .feeds
        .insert(id, Feed { drive_id: drive_id.to_string(), serial, items, upto: inner.seq, top, select });
    id
}

fn feed_items(
    drive: &Drive,
    site: Option<&str>,
    since: Option<u64>,
    duplicates: bool,
    exclude_parent: bool,
) -> Vec<Value> {
    let render = |id: &str| -> Option<Value> {
        match drive.items.get(id) {
            Some(item) => Some(wire::item_json(drive, site, item, Render::Delta)),
            None => drive.tombstones.get(id).map(|p| wire::tombstone_json(drive, id, p)),
        }
    };
    let Some(since) = since else {
        let order = drive.tree_order();
        let latest: Vec<Value> = order.iter().filter_map(|id| render(id)).collect();
        if duplicates {
            // Every item twice; both copies are the current state here.
            return latest.iter().chain(latest.iter()).cloned().collect();
        }
        return latest;
    };
    let changes: Vec<&super::model::Change> = drive.changes.iter().filter(|c| c.seq >= since).collect();
    // Items in the order of their last change.
    let mut last_pos: Vec<(usize, &str)> = Vec::new();
    let mut seen_changed = HashSet::new();
    for (pos, c) in changes.iter().enumerate().rev() {
        if seen_changed.insert(c.item_id.as_str()) {
            last_pos.push((pos, c.item_id.as_str()));
        }
    }
    last_pos.reverse();
    let mut out = Vec::new();
    if duplicates {
        // An earlier state of each changed item (its first change in the range), before
        // the latest states below.
        let mut firsts = HashSet::new();
        for c in &changes {
            if firsts.insert(c.item_id.as_str()) {
                let v = match &c.snapshot {
                    Some(snap) => wire::item_json(drive, site, snap, Render::Delta),
                    None => wire::tombstone_json(
                        drive,
                        &c.item_id,
                        drive.tombstones.get(&c.item_id).map(String::as_str).unwrap_or_default(),
                    ),
                };
                out.push(v);
            }
        }
    }
    let mut emitted = HashSet::new();
    for (_, id) in last_pos {
        if !exclude_parent && drive.items.contains_key(id) {
            for a in drive.ancestors(id) {
                if emitted.insert(a.clone())
                    && let Some(v) = render(&a)
                {
                    out.push(v);
                }
            }
        }
        if emitted.insert(id.to_string())
            && let Some(v) = render(id)
        {
            out.push(v);
        }
    }
    out
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn paths_parse() {
        assert_eq!(Route::parse("me"), Some(Route::Me));
        assert_eq!(
            Route::parse("me/drive/root/children"),
            Some(Route::Children(DriveRef::Me, ItemRef::Root))
        );
        assert_eq!(
            Route::parse("drives/b!x-_/items/01AB/delta"),
            Some(Route::Delta(DriveRef::Id("b!x-_".into()), ItemRef::Id("01AB".into())))
        );
        assert_eq!(
            Route::parse("sites/contoso.sharepoint.com,a,b/drives"),
            Some(Route::SiteDrives("contoso.sharepoint.com,a,b".into()))
        );
        assert_eq!(
            Route::parse("drives/b%21x/root"),
            Some(Route::Item(DriveRef::Id("b!x".into()), ItemRef::Root))
        );
        assert_eq!(Route::parse("drives/x/root/permissions"), None);
    }

    #[test]
    fn tokens_round_trip() {
        for t in [
            Token::Delta { serial: 3, seq: 99, drive: "b!abc".into() },
            Token::Page { serial: 1, feed: 2, offset: 400 },
        ] {
            assert_eq!(Token::decode(&t.encode()), Some(t));
        }
        assert_eq!(Token::decode("garbage!"), None);
    }
}
