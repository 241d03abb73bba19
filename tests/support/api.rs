//! The admin API on top of a [`World`]: the router behind the local dev-JWT layer, called
//! in-process, plus a browser that carries the OAuth binding cookie.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use extconn_api::{ApiConfig, AppState, DevAuth, Identity, PageTokens};
use extconn_core::{ClientId, UserId};
use serde_json::Value;
use tower::ServiceExt;

use crate::{World, WorldOptions};

pub struct Response {
    pub status: StatusCode,
    pub headers: axum::http::HeaderMap,
    pub body: Value,
    pub raw: String,
}

impl Response {
    pub fn problem_type(&self) -> &str {
        self.body["type"].as_str().unwrap_or("")
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

pub struct ApiWorld {
    pub w: World,
    pub app: Router,
    pub dev: DevAuth,
    /// Admin of client `acme` (the world's grant was created by this user).
    pub admin: String,
    /// A second admin of `acme`.
    pub admin2: String,
    /// A non-admin user of `acme`.
    pub viewer: String,
    /// An admin of another client.
    pub stranger: String,
}

pub fn identity(user: &str, client: &str, admin: bool) -> Identity {
    Identity {
        user_id: UserId::parse(user).expect("user"),
        display_name: format!("{user} (display)"),
        client_id: ClientId::parse(client).expect("client"),
        is_client_admin: admin,
    }
}

pub const CONSOLE: &str = "http://127.0.0.1/console/connect";

impl ApiWorld {
    pub async fn new(opts: WorldOptions) -> ApiWorld {
        let w = World::new(opts).await;
        let config = ApiConfig::new("http://127.0.0.1", CONSOLE);
        let state = AppState::new(w.ports.clone(), config, PageTokens::new("test-page-key"));
        let dev = DevAuth::new("dev-secret-for-tests");
        let app = extconn_api::router(state)
            .layer(axum::middleware::from_fn_with_state(dev.clone(), DevAuth::layer));
        let now = chrono::Utc::now().timestamp();
        let tok = |who: Identity| dev.issue(&who, now, 3600);
        ApiWorld {
            admin: tok(identity("ana", "acme", true)),
            admin2: tok(identity("bob", "acme", true)),
            viewer: tok(identity("vic", "acme", false)),
            stranger: tok(identity("eve", "globex", true)),
            w,
            app,
            dev,
        }
    }

    /// One request. `token` None = anonymous; `body` is sent as JSON when given.
    pub async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut b = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        let req = match body {
            Some(v) => b.header("content-type", "application/json").body(Body::from(v.to_string())),
            None => b.body(Body::empty()),
        };
        self.send(req.expect("request")).await
    }

    pub async fn send(&self, req: Request<Body>) -> Response {
        let resp = self.app.clone().oneshot(req).await.expect("infallible");
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX).await.expect("body");
        let raw = String::from_utf8_lossy(&bytes).into_owned();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Response { status, headers, body, raw }
    }

    /// Starts an authorization as `token`; returns (authorization_url, binding cookie).
    pub async fn authorize(&self, token: &str) -> (String, String) {
        let r = self
            .call(
                Method::POST,
                "/v1/connections/authorize",
                Some(token),
                Some(serde_json::json!({"provider":"dropbox"})),
            )
            .await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.raw);
        let cookie = r.header("set-cookie").split(';').next().unwrap_or_default().to_owned();
        (r.body["authorization_url"].as_str().expect("url").to_owned(), cookie)
    }

    /// The provider's consent (auto-approved): the callback URL the browser is sent to.
    pub async fn consent(&self, authorization_url: &str) -> String {
        self.w.dbx.set_auto_approve(true);
        let client =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        let resp = client.get(authorization_url).send().await.expect("authorize");
        assert_eq!(resp.status().as_u16(), 302, "consent redirects back");
        let location = resp.headers()["location"].to_str().expect("location").to_owned();
        location.strip_prefix("http://127.0.0.1").expect("our redirect uri").to_owned()
    }

    /// The browser landing on the callback with its cookie.
    pub async fn callback(&self, path_and_query: &str, cookie: &str) -> Response {
        let req =
            Request::builder().uri(path_and_query).header("cookie", cookie).body(Body::empty()).expect("req");
        self.send(req).await
    }

    /// The whole connect flow as `token`; returns the grant id.
    pub async fn connect_account(&self, token: &str) -> String {
        let (url, cookie) = self.authorize(token).await;
        let cb = self.consent(&url).await;
        let r = self.callback(&cb, &cookie).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.raw);
        let loc = r.header("location");
        let id = loc.split("grant_id=").nth(1).expect("grant id in the redirect");
        id.split('&').next().unwrap_or(id).to_owned()
    }

    /// Creates a connection on the world's folder through the API; returns its id.
    pub async fn create_connection(
        &self,
        token: &str,
        grant: &str,
        folder_id: &str,
        auto_sync: bool,
    ) -> String {
        let r = self
            .call(
                Method::POST,
                "/v1/connections",
                Some(token),
                Some(serde_json::json!({"grant_id": grant, "folder_id": folder_id, "auto_sync": auto_sync})),
            )
            .await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.raw);
        r.body["id"].as_str().expect("id").to_owned()
    }

    /// Everything a rejected request must leave unchanged.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|vault={}|queue={}|token_calls={}",
            self.w.store.snapshot(),
            self.w.vault.len(),
            self.w.queue.len(),
            self.w.calls(crate::Ep::Token)
        )
    }
}
