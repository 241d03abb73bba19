//! The OAuth connect flow (ARCHITECTURE §6): start → provider consent → callback.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use extconn_core::ports::{AuthorizeRequest, ConnectionPatch, OAuthState, ProviderError};
use extconn_core::{
    ConnectionStatus, Grant, GrantId, GrantStatus, Job, ProviderKind, RunCounters, RunId, RunStatus, Secret,
    SyncRun, Trigger,
};
use rand::RngCore;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Caller, admin};
use crate::AppState;
use crate::extract::{JsonBody, PathParams, QueryParams};
use crate::identity::Identity;
use crate::problem::{ApiResult, Problem, ProblemKind};

fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    B64.encode(b)
}

/// Store key of a state value: its digest, never the value.
fn state_key(state: &str) -> String {
    hex::encode(Sha256::digest(state.as_bytes()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StartBody {
    provider: String,
}

/// The cookie binding authorization requests to the browser that made them. The console and
/// the API must be same-site (it is `SameSite=Lax`, sent on the provider's top-level redirect).
pub const BINDING_COOKIE: &str = "extconn_oauth_binding";

fn binding_from(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, v)| {
            *k == BINDING_COOKIE
                && v.len() == 43
                && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(|(_, v)| v.to_owned())
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
        .ok_or_else(|| Problem::invalid("/provider", "one of google_drive, sharepoint, dropbox"))?;
    let provider = st.provider(kind)?;
    // 256-bit state and a 43-character PKCE verifier, both fresh per request.
    let state = random_token();
    let verifier = random_token();
    let challenge = B64.encode(Sha256::digest(verifier.as_bytes()));
    let now = st.now();
    let expires_at = now + st.config().state_ttl;
    let url = provider
        .authorize_url(&AuthorizeRequest {
            state: Secret::new(state.clone()),
            pkce_challenge: challenge,
            redirect_uri: st.config().redirect_uri(kind, &headers),
        })
        .map_err(|e| Problem::internal(&e))?;
    // One binding per browser, reused, so two tabs can authorize at once.
    let binding = binding_from(&headers).unwrap_or_else(random_token);
    let record = OAuthState {
        client_id: who.client_id.clone(),
        user_id: who.user_id.clone(),
        provider: kind,
        pkce_verifier: Secret::new(verifier),
        browser_binding: state_key(&binding),
        created_at: now,
        expires_at,
    };
    st.ports().oauth_states.put(&state_key(&state), &record).await?;
    st.audit(&who, "oauth.start", format!("provider/{kind}")).await?;
    let secure = if st.config().public_base_url.starts_with("https://") { "; Secure" } else { "" };
    let cookie =
        format!("{BINDING_COOKIE}={binding}; Path=/v1/oauth; Max-Age=600; HttpOnly; SameSite=Lax{secure}");
    let mut resp =
        Json(serde_json::json!({ "authorization_url": url, "expires_at": expires_at })).into_response();
    resp.headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_str(&cookie).map_err(|e| Problem::internal(&e))?);
    resp.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(resp)
}

/// The callback's answers never leak the URL (it carries the code) and are never cached.
fn harden(mut resp: Response) -> Response {
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
    query: QueryParams,
) -> Response {
    harden(match callback_inner(&st, &headers, path, query).await {
        Ok(r) => r,
        Err(p) => p.into_response(),
    })
}

async fn callback_inner(
    st: &AppState,
    headers: &http::HeaderMap,
    path: PathParams,
    q: QueryParams,
) -> ApiResult<Response> {
    let kind = path.0.first().and_then(|p| ProviderKind::parse(p)).ok_or_else(Problem::not_found)?;
    let state =
        q.get("state").filter(|s| !s.is_empty()).ok_or_else(|| Problem::new(ProblemKind::InvalidState))?;
    // Consumed atomically whatever happens next: a state works once.
    let record = st
        .ports()
        .oauth_states
        .consume(&state_key(state))
        .await?
        .ok_or_else(|| Problem::new(ProblemKind::InvalidState))?;
    // Another browser's state (another admin's, another client's): as if unknown.
    if binding_from(headers).map(|b| state_key(&b)) != Some(record.browser_binding.clone()) {
        return Err(Problem::new(ProblemKind::InvalidState));
    }
    if st.now() >= record.expires_at {
        return Err(Problem::new(ProblemKind::StateExpired));
    }
    if record.provider != kind {
        return Err(Problem::new(ProblemKind::ProviderMismatch));
    }
    if let Some(error) = q.get("error") {
        return Err(if error == "access_denied" {
            Problem::new(ProblemKind::AccessDenied)
                .detail("The account owner declined access. Nothing was connected.")
        } else {
            let code: String =
                error.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(64).collect();
            Problem::new(ProblemKind::ProviderError)
                .detail(format!("The service answered '{code}'. Nothing was connected."))
        });
    }
    let code = q.get("code").filter(|c| !c.is_empty()).ok_or_else(|| Problem::invalid("code", "required"))?;
    let provider = st.provider(kind)?;
    let tokens = provider
        .exchange_code(&Secret::new(code), &record.pkce_verifier, &st.config().redirect_uri(kind, headers))
        .await
        .map_err(|e| match e {
            ProviderError::RateLimited { .. } | ProviderError::Transient(_) => {
                Problem::new(ProblemKind::ProviderUnavailable)
            }
            _ => Problem::new(ProblemKind::ExchangeFailed),
        })?;
    let account = provider.account(&tokens.access_token).await.map_err(super::provider_problem)?;
    let who = Identity {
        user_id: record.user_id.clone(),
        display_name: record.user_id.to_string(),
        client_id: record.client_id.clone(),
        is_client_admin: true,
    };
    let grant = match st.ports().grants.find_by_account(&who.client_id, kind, &account.account_id).await? {
        Some(existing) => reconnect(st, &who, existing, &account, &tokens).await?,
        None => {
            let g = Grant {
                client_id: who.client_id.clone(),
                id: GrantId::generate(),
                provider: kind,
                account_id: account.account_id.clone(),
                account_name: account.display_name.clone(),
                account_email: account.email.clone(),
                secret_ref: format!("{}/{}", who.client_id, GrantId::generate()),
                created_by: who.user_id.clone(),
                created_at: st.now(),
                status: GrantStatus::Active,
                attached: false,
            };
            st.ports().vault.put(&g.secret_ref, &tokens, None).await?;
            match st.ports().grants.create(&g).await {
                Ok(()) => {
                    st.audit(&who, "grant.connect", format!("grant/{}", g.id)).await?;
                    g
                }
                // The same account connected concurrently through another state: reconnect it.
                Err(extconn_core::ports::StoreError::Conflict) => {
                    st.ports().vault.delete(&g.secret_ref).await?;
                    let existing = st
                        .ports()
                        .grants
                        .find_by_account(&who.client_id, kind, &account.account_id)
                        .await?
                        .ok_or_else(Problem::not_found)?;
                    reconnect(st, &who, existing, &account, &tokens).await?
                }
                Err(e) => return Err(e.into()),
            }
        }
    };
    let sep = if st.config().console_url.contains('?') { '&' } else { '?' };
    let location = format!("{}{sep}provider={}&grant_id={}", st.config().console_url, kind, grant.id);
    let mut resp = StatusCode::SEE_OTHER.into_response();
    resp.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_str(&location).map_err(|e| Problem::internal(&e))?);
    Ok(resp)
}

/// The same provider account authorized again: new tokens for the existing grant, and its
/// `reauth_required` connections back to `active`, each with a queued sync.
async fn reconnect(
    st: &AppState,
    who: &Identity,
    mut grant: Grant,
    account: &extconn_core::ports::AccountInfo,
    tokens: &extconn_core::TokenSet,
) -> ApiResult<Grant> {
    let current = st.ports().vault.get(&grant.secret_ref).await?.map(|v| v.version);
    st.ports().vault.put(&grant.secret_ref, tokens, current).await?;
    grant.status = GrantStatus::Active;
    grant.account_name = account.display_name.clone();
    grant.account_email = account.email.clone();
    st.ports().grants.update(&grant).await?;
    for c in st.ports().connections.list_by_grant(&grant.client_id, &grant.id).await? {
        if c.status != ConnectionStatus::ReauthRequired {
            continue;
        }
        let run = SyncRun {
            conn: c.key(),
            id: RunId::generate(),
            trigger: Trigger::Manual,
            actor: Some(who.user_id.clone()),
            status: RunStatus::Queued,
            queued_at: st.now(),
            started_at: None,
            finished_at: None,
            counters: RunCounters::default(),
            invocations: 0,
            error: None,
        };
        let patch = ConnectionPatch {
            status: Some(ConnectionStatus::Active),
            current_run_id: Some(Some(run.id.clone())),
            ..Default::default()
        };
        st.ports().connections.update(&c.key(), &patch).await?;
        st.ports().runs.create(&run).await?;
        st.ports()
            .queue
            .send(&[Job {
                client_id: c.client_id.clone(),
                connection_id: c.id.clone(),
                trigger: Trigger::Manual,
                run_id: Some(run.id),
                requested_by: Some(who.user_id.clone()),
                continuation: false,
            }])
            .await?;
    }
    st.audit(who, "grant.reconnect", format!("grant/{}", grant.id)).await?;
    Ok(grant)
}
