//! What the four Lambdas share. Each function's `main.rs` reads [`Env`] once, builds its
//! [`Ports`] once (cold start), and serves its handler.

mod metrics;
mod unavailable;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use extconn_api::{ApiConfig, AppState, ClaimNames, Identity, PageTokens};
use extconn_aws::{DynamoStore, EventBridgeEvents, S3Sink, SecretsVault, SqsQueue};
use extconn_core::ports::{AssetEvents, AssetSink, SystemClock, TokenVault};
use extconn_core::{Ports, Secret};
use extconn_providers::registry::RegistrySettings;
use lambda_http::request::RequestContext;

pub use metrics::{Metric, emit_metrics};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub use aws_config::SdkConfig;

/// The SDK configuration from the environment (region, credentials, `AWS_ENDPOINT_URL`).
pub async fn sdk_config() -> SdkConfig {
    extconn_aws::sdk_config().await
}

/// Configuration from environment variables (names as in template.yaml).
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub table: String,
    pub queue_url: String,
    pub bucket: Option<String>,
    pub event_bus: Option<String>,
    /// Absent for the scheduler, which never touches secrets.
    pub secret_prefix: Option<String>,
    /// The providers' app settings (`EXTCONN_<PROVIDER>_*`, see `extconn_providers::registry`),
    /// validated; client secrets are Secrets Manager ids (`EXTCONN_<PROVIDER>_CLIENT_SECRET_ID`)
    /// fetched by [`ports`].
    pub providers: RegistrySettings,
    pub page_token_secret_id: Option<String>,
    pub public_base_url: Option<String>,
    /// Where the OAuth callback sends the browser; None: this API's own page, `/console`.
    pub console_url: Option<String>,
    /// `DAM_ORIGINS`: the DAM origins that may embed the console and hand it a user's token.
    pub dam_origins: Vec<String>,
    /// The claim names of the identity; `tenant_claim_set` says whether `CLAIM_CLIENT_ID` was
    /// given (the HTTP functions require it: no default names the tenant everywhere).
    pub claims: ClaimNames,
    pub tenant_claim_set: bool,
    /// `TRANSFER_CONCURRENCY` (sync worker): file transfers at once within a sync step,
    /// 1..=[`MAX_TRANSFER_CONCURRENCY`]; absent, the engine's default (8). Memory: each
    /// transfer holds up to ~25 MiB on S3 (three 8 MiB parts and a chunk), and the worker runs
    /// the messages of a batch at once (`BatchSize` 3 in template.yaml), so 3 × this × 25 MiB
    /// must fit the function's 1,024 MB (`EngineConfig::transfer_concurrency`).
    pub transfer_concurrency: Option<usize>,
}

/// The most `TRANSFER_CONCURRENCY` accepts: 3 messages × 12 transfers × ~25 MiB = 900 MiB,
/// inside the worker's 1,024 MB.
pub const MAX_TRANSFER_CONCURRENCY: usize = 12;

fn transfer_concurrency(v: &str) -> Result<usize, String> {
    match v.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_TRANSFER_CONCURRENCY).contains(&n) => Ok(n),
        _ => Err(format!(
            "environment variable TRANSFER_CONCURRENCY: {v:?} is not a whole number from 1 to \
             {MAX_TRANSFER_CONCURRENCY}"
        )),
    }
}

/// Claims that name the OAuth client that requested a token (Cognito and RFC 9068 access
/// tokens), never the DAM client (tenant) the user belongs to.
pub const NOT_TENANT_CLAIMS: [&str; 2] = ["client_id", "azp"];

impl Env {
    pub fn from_env() -> Result<Env, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Env, String> {
        let opt = |k: &str| get(k).filter(|v| !v.trim().is_empty());
        let req = |k: &str| opt(k).ok_or_else(|| format!("environment variable {k} is required"));
        let mut claims = ClaimNames::default();
        for (k, slot) in [
            ("CLAIM_USER_ID", &mut claims.user_id),
            ("CLAIM_DISPLAY_NAME", &mut claims.display_name),
            ("CLAIM_CLIENT_ID", &mut claims.client_id),
            ("CLAIM_ADMIN_FLAG", &mut claims.admin_flag),
            ("CLAIM_ADMIN_LIST", &mut claims.admin_list),
            ("CLAIM_ADMIN_VALUE", &mut claims.admin_value),
        ] {
            if let Some(v) = opt(k) {
                *slot = v;
            }
        }
        let tenant_claim_set = opt("CLAIM_CLIENT_ID").is_some();
        if tenant_claim_set && NOT_TENANT_CLAIMS.contains(&claims.client_id.as_str()) {
            return Err(format!(
                "environment variable CLAIM_CLIENT_ID is {:?}, which names the OAuth client that requested the \
                 token, not the DAM client (tenant): set it to the claim holding the tenant id (docs/deploy.md)",
                claims.client_id
            ));
        }
        Ok(Env {
            table: req("TABLE_NAME")?,
            queue_url: req("QUEUE_URL")?,
            bucket: opt("BUCKET_NAME"),
            event_bus: opt("EVENT_BUS_NAME"),
            secret_prefix: opt("SECRET_PREFIX"),
            providers: RegistrySettings::from_lookup(&get).map_err(|e| e.to_string())?,
            page_token_secret_id: opt("PAGE_TOKEN_SECRET_ID"),
            public_base_url: opt("PUBLIC_BASE_URL"),
            console_url: opt("CONSOLE_URL"),
            dam_origins: extconn_api::console::parse_origins(&opt("DAM_ORIGINS").unwrap_or_default())
                .map_err(|e| format!("environment variable DAM_ORIGINS: {e}"))?,
            claims,
            tenant_claim_set,
            transfer_concurrency: opt("TRANSFER_CONCURRENCY")
                .map(|v| transfer_concurrency(&v))
                .transpose()?,
        })
    }
}

/// An error and its sources, `: `-separated (the SDK's top-level message alone is "service error").
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

async fn secret_string(sm: &aws_sdk_secretsmanager::Client, id: &str) -> Result<String, Error> {
    let out = sm.get_secret_value().secret_id(id).send().await?;
    out.secret_string.ok_or_else(|| format!("secret {id} has no string value").into())
}

/// The ports of one function, on AWS. Adapters a function has no permission for (the
/// scheduler and secrets, the API and the bucket) answer "unavailable" instead of existing.
pub async fn ports(env: &Env, sdk: &aws_config::SdkConfig) -> Result<Ports, Error> {
    let store = Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(sdk), env.table.clone()));
    let sm = aws_sdk_secretsmanager::Client::new(sdk);
    let vault: Arc<dyn TokenVault> = match &env.secret_prefix {
        Some(prefix) => Arc::new(SecretsVault::new(sm.clone(), prefix.clone())),
        None => Arc::new(unavailable::Unavailable("secrets")),
    };
    let sink: Arc<dyn AssetSink> = match &env.bucket {
        Some(b) => Arc::new(S3Sink::new(extconn_aws::s3_client(sdk), b.clone())),
        None => Arc::new(unavailable::Unavailable("the assets bucket")),
    };
    let events: Arc<dyn AssetEvents> = match &env.event_bus {
        Some(b) => Arc::new(EventBridgeEvents::new(aws_sdk_eventbridge::Client::new(sdk), b.clone())),
        None => Arc::new(unavailable::Unavailable("the event bus")),
    };
    // A function without token secrets (the scheduler) never calls a provider: it gets none,
    // and so never reads an app secret it has no permission for.
    let providers = match &env.secret_prefix {
        Some(_) => {
            let registry = env
                .providers
                .clone()
                .build_resolving(|id| {
                    let sm = sm.clone();
                    async move { secret_string(&sm, &id).await.map(Secret::new).map_err(|e| error_chain(&*e)) }
                })
                .await?;
            for kind in registry.kinds() {
                tracing::info!(provider = %kind, "provider enabled");
            }
            registry.into_map()
        }
        None => BTreeMap::new(),
    };
    Ok(Ports {
        connections: store.clone(),
        grants: store.clone(),
        items: store.clone(),
        runs: store.clone(),
        oauth_states: store.clone(),
        vault,
        sink,
        events,
        queue: Arc::new(SqsQueue::new(aws_sdk_sqs::Client::new(sdk), env.queue_url.clone())),
        audit: store,
        clock: Arc::new(SystemClock),
        providers,
    })
}

/// The admin API (connections-api and oauth-callback serve the same router): identity from
/// API Gateway's JWT authorizer claims.
pub async fn http_app(env: &Env, ports: Ports, sdk: &aws_config::SdkConfig) -> Result<axum::Router, Error> {
    if !env.tenant_claim_set {
        return Err("environment variable CLAIM_CLIENT_ID is required: the JWT claim holding the DAM client (tenant) id".into());
    }
    // No PUBLIC_BASE_URL: redirect URIs follow the request's host (the API's own domain).
    let base = env.public_base_url.clone().unwrap_or_default();
    let console = env.console_url.clone().unwrap_or_else(|| "/console".into());
    let pages = match &env.page_token_secret_id {
        Some(id) => {
            PageTokens::new(secret_string(&aws_sdk_secretsmanager::Client::new(sdk), id).await?.into_bytes())
        }
        None => {
            tracing::warn!("PAGE_TOKEN_SECRET_ID not set: page tokens are valid for this instance only");
            PageTokens::random()
        }
    };
    let mut config = ApiConfig::new(base, console);
    config.console.dam_origins = env.dam_origins.clone();
    let state = AppState::new(ports, config, pages);
    Ok(extconn_api::router(state)
        .layer(axum::middleware::from_fn_with_state(Arc::new(env.claims.clone()), identity_from_authorizer)))
}

/// Middleware: the API Gateway JWT authorizer's claims become the request's [`Identity`].
/// API Gateway has verified the token; this never decodes the Authorization header.
pub async fn identity_from_authorizer(
    State(names): State<Arc<ClaimNames>>,
    mut req: Request,
    next: Next,
) -> Response {
    req.extensions_mut().remove::<Identity>();
    let claims = match req.extensions().get::<RequestContext>() {
        Some(RequestContext::ApiGatewayV2(ctx)) => {
            ctx.authorizer.as_ref().and_then(|a| a.jwt.as_ref()).map(|j| {
                j.claims
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                    .collect::<serde_json::Map<_, _>>()
            })
        }
        _ => None,
    };
    if let Some(id) = claims.and_then(|c| Identity::from_claims(&c, &names)) {
        tracing::debug!(client = %id.client_id, user = %id.user_id, "request identity");
        req.extensions_mut().insert(id);
    }
    next.run(req).await
}

/// Crates that log whole HTTP requests and responses at TRACE/DEBUG (the AWS SDK's body logs
/// include token secrets and OAuth state records; HTTP clients log headers). They are capped at
/// INFO whatever `RUST_LOG` says: a more specific directive wins in an `EnvFilter`.
const QUIET: &[&str] = &[
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
    "aws_smithy_http",
    "aws_smithy_http_client",
    "aws_sdk_dynamodb",
    "aws_sdk_secretsmanager",
    "aws_sdk_sqs",
    "aws_sdk_s3",
    "aws_sdk_eventbridge",
    "aws_config",
    "aws_runtime",
    "hyper",
    "hyper_util",
    "h2",
    "reqwest",
    "rustls",
];

/// The log filter: `base` (e.g. `RUST_LOG`) plus the caps above.
pub fn log_filter(base: &str) -> String {
    let mut f = if base.trim().is_empty() { "info".to_owned() } else { base.to_owned() };
    for t in QUIET {
        f.push_str(&format!(",{t}=info"));
    }
    f
}

/// Structured JSON logs (one object per line, as Lambda's JSON log format expects) at
/// `RUST_LOG`'s level, with the SDK's and HTTP clients' body logs capped (see [`log_filter`]).
/// Tokens are never logged: they are `Secret`s, and request ids / connection / run ids are
/// fields of the spans and events that carry them.
pub fn init_logging() {
    let filter = log_filter(&std::env::var("RUST_LOG").unwrap_or_default());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_current_span(true)
        .without_time()
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_with(concurrency: Option<&str>) -> Result<Env, String> {
        Env::from_lookup(|k| match k {
            "TABLE_NAME" => Some("t".into()),
            "QUEUE_URL" => Some("http://127.0.0.1:9/q".into()),
            "TRANSFER_CONCURRENCY" => concurrency.map(str::to_owned),
            _ => None,
        })
    }

    #[test]
    fn transfer_concurrency_is_validated_at_start_up() {
        assert_eq!(env_with(None).unwrap().transfer_concurrency, None, "absent: the engine's default");
        assert_eq!(env_with(Some("")).unwrap().transfer_concurrency, None);
        assert_eq!(env_with(Some("1")).unwrap().transfer_concurrency, Some(1));
        assert_eq!(env_with(Some(" 12 ")).unwrap().transfer_concurrency, Some(12));
        for bad in ["0", "13", "-1", "eight", "2.5"] {
            let e = env_with(Some(bad)).map(|_| ()).unwrap_err();
            assert!(e.starts_with("environment variable TRANSFER_CONCURRENCY: "), "{bad}: {e}");
        }
    }
}
