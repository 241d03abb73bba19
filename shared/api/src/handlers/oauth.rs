//! The OAuth connect flow (ARCHITECTURE §6, §7): start → provider consent → callback.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use extconn_core::oauth::Callback;
use extconn_core::{ProviderKind, Secret};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Caller, admin, one_of_providers};
use crate::AppState;
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::problem::{ApiResult, Problem, ProblemKind};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartBody {
    provider: String,
}

/// The browser binding (RFC 9700 §4.7.1): one cookie **per authorization request**, so that
/// several tabs of one browser can authorize at once without one overwriting another's.
///
/// - Name: this prefix + the first 32 hex digits of `sha256("extconn-oauth-binding:" + state)`
///   ([`binding_cookie_name`]): the callback finds its own cookie from the `state` it receives,
///   and the name reveals nothing of the state (nor of the store's key, `sha256(state)`).
/// - Value: `{issued_at_unix}.{binding}`, the binding being 43 base64url characters minted
///   fresh per request (the store keeps only its digest). The time lets `authorize` evict the
///   oldest when a browser holds too many.
/// - `Path=/v1` (so `POST /v1/connections/authorize` sees them too, to bound their count),
///   `Max-Age` = the state's lifetime, `HttpOnly`, `SameSite=Lax` (sent on the provider's
///   top-level redirect; the console and the API must be same-site), `Secure` when the public
///   base URL is https.
/// - At most [`MAX_BINDINGS`] per browser: `authorize` expires the oldest beyond that.
/// - The callback clears its own cookie (and only it) once the state has been consumed,
///   whatever the outcome: a consumed state never works again.
pub const BINDING_COOKIE_PREFIX: &str = "extconn_oauth_binding_";

/// Authorization requests one browser may have in flight; starting one more forgets the oldest.
pub const MAX_BINDINGS: usize = 8;

/// The cookie path: every API route, `authorize` and the callbacks included.
const BINDING_PATH: &str = "/v1";

/// The binding cookie's name for `state`.
pub fn binding_cookie_name(state: &str) -> String {
    let h = Sha256::digest(format!("extconn-oauth-binding:{state}").as_bytes());
    let hex: String = h.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("{BINDING_COOKIE_PREFIX}{hex}")
}

/// Every `name=value` pair of the request's `Cookie` headers.
fn cookies(headers: &http::HeaderMap) -> impl Iterator<Item = (&str, &str)> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
}

/// A binding cookie's value as `(issued_at, binding)`, if well formed (the binding as minted
/// by the use case: 43 base64url characters).
fn parse_binding(value: &str) -> Option<(i64, &str)> {
    let (issued, binding) = value.split_once('.')?;
    let issued = issued.parse::<i64>().ok()?;
    let ok =
        binding.len() == 43 && binding.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    ok.then_some((issued, binding))
}

/// The binding the browser holds for `state`, if it presented a well-formed one.
fn binding_for(headers: &http::HeaderMap, state: &str) -> Option<Secret> {
    let name = binding_cookie_name(state);
    cookies(headers)
        .filter(|(k, _)| *k == name)
        .find_map(|(_, v)| parse_binding(v))
        .map(|(_, b)| Secret::new(b))
}

/// `Set-Cookie` for a binding cookie; `None` clears it.
fn binding_cookie(st: &AppState, name: &str, value: Option<&str>) -> ApiResult<HeaderValue> {
    let secure = if st.config().public_base_url.starts_with("https://") { "; Secure" } else { "" };
    let (value, max_age) = match value {
        Some(v) => (v, st.config().state_ttl.num_seconds().max(1)),
        None => ("", 0),
    };
    let cookie =
        format!("{name}={value}; Path={BINDING_PATH}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}");
    HeaderValue::from_str(&cookie).map_err(|e| Problem::internal(&e))
}

/// The binding cookies `authorize` must clear so that, with the one it adds, the browser holds
/// at most [`MAX_BINDINGS`]: malformed ones first, then the oldest.
fn bindings_to_evict(headers: &http::HeaderMap) -> Vec<String> {
    // One entry per name (a browser sends each once; a repeat counts once).
    let by_name: std::collections::BTreeMap<&str, Option<i64>> = cookies(headers)
        .filter(|(k, _)| k.starts_with(BINDING_COOKIE_PREFIX))
        .map(|(k, v)| (k, parse_binding(v).map(|(t, _)| t)))
        .collect();
    let mut held: Vec<(Option<i64>, &str)> = by_name.into_iter().map(|(k, t)| (t, k)).collect();
    held.sort(); // None (malformed) first, then the oldest.
    let excess = (held.len() + 1).saturating_sub(MAX_BINDINGS);
    held.into_iter().take(excess).map(|(_, k)| k.to_owned()).collect()
}

/// POST /v1/connections/authorize
pub(crate) async fn start(
    State(st): State<AppState>,
    caller: Caller,
    headers: http::HeaderMap,
    JsonBody(body): JsonBody<StartBody>,
) -> ApiResult<Response> {
    let who = admin(caller)?;
    let kind = ProviderKind::parse(&body.provider)
        .ok_or_else(|| Problem::invalid("/provider", one_of_providers()))?;
    let redirect_uri = st.config().redirect_uri(kind, &headers);
    // A fresh binding per request (never the one of another tab's request).
    let started = st.oauth().start(&who, kind, &redirect_uri, None).await?;
    let state = state_of(&started.authorization_url)
        .ok_or_else(|| Problem::internal(&"the authorization URL carries no state"))?;
    let value = format!("{}.{}", st.now().timestamp(), started.binding.expose());
    let mut resp = Json(serde_json::json!({
        "authorization_url": started.authorization_url,
        "expires_at": started.expires_at,
    }))
    .into_response();
    let h = resp.headers_mut();
    // The new binding first: clients that read one Set-Cookie read this one.
    h.append(header::SET_COOKIE, binding_cookie(&st, &binding_cookie_name(&state), Some(&value))?);
    for old in bindings_to_evict(&headers) {
        h.append(header::SET_COOKIE, binding_cookie(&st, &old, None)?);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The `state` parameter of an authorization URL (every provider's carries it, as minted).
fn state_of(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1.split('#').next()?;
    form_urlencoded::parse(query.as_bytes()).find(|(k, _)| k == "state").map(|(_, v)| v.into_owned())
}

/// The callback route's answers never leak the URL (it carries the code) and are never cached.
/// A layer of the route ([`crate::handlers::dispatch`]), so that every answer carries them: the
/// handler's, and the route's own rejections (a query that does not parse, another method).
pub(crate) async fn harden(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// GET /v1/oauth/{provider}/callback (public). Never logs its query.
pub(crate) async fn callback(
    State(st): State<AppState>,
    headers: http::HeaderMap,
    path: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let kind = path.0.first().and_then(|p| ProviderKind::parse(p)).ok_or_else(Problem::not_found)?;
    let Some(state) = q.get("state").filter(|s| !s.is_empty()) else {
        let lost = Problem::new(ProblemKind::InvalidState);
        if wants_html(&headers) {
            return to_console(&st, &format!("provider={kind}&error={}", lost.kind.slug()));
        }
        return Err(lost);
    };
    let cookie = binding_cookie_name(state);
    let binding = binding_for(&headers, state);
    let callback = Callback {
        provider: kind,
        state: Secret::new(state),
        binding: binding.clone(),
        error: q.get("error").map(str::to_owned),
        code: q.get("code").filter(|c| !c.is_empty()).map(Secret::new),
        redirect_uri: st.config().redirect_uri(kind, &headers),
    };
    let outcome = st.oauth().complete(callback).await;
    // The state is consumed now, whatever the outcome: its binding is of no further use, and
    // only its own is cleared (another tab's flow keeps its cookie).
    let clear = match binding {
        Some(_) => Some(binding_cookie(&st, &cookie, None)?),
        None => None,
    };
    let mut resp = match outcome {
        Ok(done) => {
            let again = if done.reconnected { "&reconnected=1" } else { "" };
            to_console(&st, &format!("provider={kind}&grant_id={}{again}", done.grant.id))?
        }
        // A person's browser goes back to the console, which says what happened in plain words;
        // an API client gets the problem itself.
        Err(e) if wants_html(&headers) => {
            to_console(&st, &format!("provider={kind}&error={}", Problem::from(e).kind.slug()))?
        }
        Err(e) => Problem::from(e).into_response(),
    };
    if let Some(c) = clear {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(resp)
}

/// A 303 to the console with `query` (made of slugs and ids: nothing to escape).
fn to_console(st: &AppState, query: &str) -> ApiResult<Response> {
    let console = &st.config().console_url;
    let sep = if console.contains('?') { '&' } else { '?' };
    let mut resp = StatusCode::SEE_OTHER.into_response();
    let location =
        HeaderValue::from_str(&format!("{console}{sep}{query}")).map_err(|e| Problem::internal(&e))?;
    resp.headers_mut().insert(header::LOCATION, location);
    Ok(resp)
}

/// Whether the request is a browser's navigation (it asks for HTML), not an API client's.
fn wants_html(headers: &http::HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        v.split(',').any(|m| m.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("text/html")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jar(pairs: &[(&str, String)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        let v: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        h.insert(header::COOKIE, v.join("; ").parse().unwrap());
        h
    }

    #[test]
    fn a_browser_is_told_by_its_accept_header() {
        let h = |v: &str| {
            let mut m = http::HeaderMap::new();
            m.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
            m
        };
        assert!(wants_html(&h("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8")));
        assert!(wants_html(&h("Text/HTML; q=1")));
        assert!(!wants_html(&h("application/json")));
        assert!(!wants_html(&h("*/*")));
        assert!(!wants_html(&http::HeaderMap::new()));
    }

    #[test]
    fn each_state_has_its_own_cookie() {
        let (a, b) = (binding_cookie_name("state-a"), binding_cookie_name("state-b"));
        assert_ne!(a, b);
        assert_eq!(a.len(), BINDING_COOKIE_PREFIX.len() + 32);
        assert!(!a.contains("state"), "the name does not carry the state");
        let bind = "b".repeat(43);
        let h =
            jar(&[(&b, format!("1.{}", "x".repeat(43))), (&a, format!("7.{bind}")), ("other", "1".into())]);
        assert_eq!(binding_for(&h, "state-a").map(|s| s.expose().to_owned()), Some(bind.clone()));
        assert!(binding_for(&h, "state-c").is_none());
        let h = jar(&[(&a, bind.clone())]);
        assert!(binding_for(&h, "state-a").is_none(), "no issue time: not ours");
        let h = jar(&[(&a, format!("7.{}", "b".repeat(42)))]);
        assert!(binding_for(&h, "state-a").is_none(), "not a minted binding");
    }

    #[test]
    fn the_oldest_and_the_malformed_are_evicted_beyond_the_bound() {
        let names: Vec<String> = (0..10).map(|i| binding_cookie_name(&format!("s{i}"))).collect();
        let bind = "b".repeat(43);
        let few: Vec<(&str, String)> =
            names[..7].iter().map(|n| (n.as_str(), format!("100.{bind}"))).collect();
        assert!(bindings_to_evict(&jar(&few)).is_empty(), "7 + the new one fit");
        let mut many: Vec<(&str, String)> =
            names[..9].iter().enumerate().map(|(i, n)| (n.as_str(), format!("{}.{bind}", 200 - i))).collect();
        many.push((names[9].as_str(), "garbage".into()));
        // 10 held + 1 new: 3 go, the malformed first, then the two oldest (issued 192, 193).
        let out = bindings_to_evict(&jar(&many));
        assert_eq!(out, [names[9].clone(), names[8].clone(), names[7].clone()]);
    }

    #[test]
    fn the_state_is_read_from_the_authorization_url() {
        let url = "https://www.dropbox.com/oauth2/authorize?client_id=x&state=ab-c_d&code_challenge=y";
        assert_eq!(state_of(url).as_deref(), Some("ab-c_d"));
        assert_eq!(state_of("https://x/?client_id=1"), None);
    }
}
