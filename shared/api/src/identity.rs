//! Who is calling. One [`Identity`] per request, built from JWT claims:
//! - on AWS, from API Gateway's JWT authorizer (`requestContext.authorizer.jwt.claims`), which
//!   has already verified the token; API Gateway turns array claims into strings like
//!   `"[a b]"` and booleans into `"true"`, so both forms are accepted;
//! - locally, by [`DevAuth`], which verifies an HS256 token signed with a dev secret and
//!   injects the same struct.
//!
//! The router never decodes the Authorization header itself; it reads the `Identity`
//! extension, and no extension means 401.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use extconn_core::{ClientId, UserId};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: UserId,
    pub display_name: String,
    pub client_id: ClientId,
    pub is_client_admin: bool,
}

/// Which claims carry what (deployments name them differently).
#[derive(Debug, Clone)]
pub struct ClaimNames {
    pub user_id: String,
    pub display_name: String,
    pub client_id: String,
    /// A boolean claim: true = client admin.
    pub admin_flag: String,
    /// A list claim (e.g. permissions) whose membership of `admin_value` means client admin.
    pub admin_list: String,
    pub admin_value: String,
}

impl Default for ClaimNames {
    fn default() -> Self {
        Self {
            user_id: "sub".into(),
            display_name: "name".into(),
            client_id: "client_id".into(),
            admin_flag: "is_client_admin".into(),
            admin_list: "permissions".into(),
            admin_value: "client_admin".into(),
        }
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s.eq_ignore_ascii_case("true"),
        _ => false,
    }
}

fn contains(v: &Value, wanted: &str) -> bool {
    match v {
        Value::Array(items) => items.iter().any(|i| i.as_str() == Some(wanted)),
        // API Gateway's rendering of an array claim: "[a b c]" (also accept commas).
        Value::String(s) => s
            .trim()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .split(|c: char| c.is_whitespace() || c == ',')
            .any(|p| p.trim_matches('"') == wanted),
        _ => false,
    }
}

impl Identity {
    /// `None` when the user or client claim is missing or malformed (→ 401).
    pub fn from_claims(claims: &Map<String, Value>, names: &ClaimNames) -> Option<Identity> {
        let text = |k: &str| claims.get(k).and_then(Value::as_str);
        let user_id = UserId::parse(text(&names.user_id)?).ok()?;
        let client_id = ClientId::parse(text(&names.client_id)?).ok()?;
        let display_name = text(&names.display_name).unwrap_or(user_id.as_str()).chars().take(200).collect();
        let is_client_admin = claims.get(&names.admin_flag).is_some_and(truthy)
            || claims.get(&names.admin_list).is_some_and(|v| contains(v, &names.admin_value));
        Some(Identity { user_id, display_name, client_id, is_client_admin })
    }
}

/// Local-mode authentication: HS256 JWTs signed with a dev secret.
#[derive(Clone)]
pub struct DevAuth {
    secret: Vec<u8>,
    names: ClaimNames,
}

impl std::fmt::Debug for DevAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevAuth").field("secret", &"***").finish()
    }
}

impl DevAuth {
    pub fn new(secret: impl Into<Vec<u8>>) -> Self {
        Self { secret: secret.into(), names: ClaimNames::default() }
    }

    fn mac(&self, data: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(data);
        mac
    }

    /// A token for `who`, valid for `ttl_secs` from `now` (unix seconds).
    pub fn issue(&self, who: &Identity, now: i64, ttl_secs: i64) -> String {
        let header = B64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = json!({
            self.names.user_id.clone(): who.user_id.as_str(),
            self.names.display_name.clone(): who.display_name,
            self.names.client_id.clone(): who.client_id.as_str(),
            self.names.admin_flag.clone(): who.is_client_admin,
            "iat": now,
            "exp": now + ttl_secs,
        });
        let payload = B64.encode(claims.to_string());
        let signing = format!("{header}.{payload}");
        let sig = B64.encode(self.mac(signing.as_bytes()).finalize().into_bytes());
        format!("{signing}.{sig}")
    }

    /// The identity in a valid, unexpired token; `None` for anything else.
    pub fn verify(&self, token: &str, now: i64) -> Option<Identity> {
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let header: Value = serde_json::from_slice(&B64.decode(h).ok()?).ok()?;
        if header.get("alg").and_then(Value::as_str) != Some("HS256") {
            return None;
        }
        self.mac(format!("{h}.{p}").as_bytes()).verify_slice(&B64.decode(s).ok()?).ok()?;
        let claims: Map<String, Value> = serde_json::from_slice(&B64.decode(p).ok()?).ok()?;
        if claims.get("exp").and_then(Value::as_i64).is_none_or(|exp| exp <= now) {
            return None;
        }
        Identity::from_claims(&claims, &self.names)
    }

    /// Middleware: a valid `Authorization: Bearer` token becomes the request's [`Identity`].
    pub async fn layer(auth: axum::extract::State<DevAuth>, mut req: Request, next: Next) -> Response {
        req.extensions_mut().remove::<Identity>();
        let token = req
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if let Some(id) = token.and_then(|t| auth.verify(t, chrono::Utc::now().timestamp())) {
            req.extensions_mut().insert(id);
        }
        next.run(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn api_gateway_claim_forms() {
        let n = ClaimNames::default();
        let id = Identity::from_claims(
            &claims(json!({"sub":"u1","client_id":"acme","is_client_admin":"true"})),
            &n,
        )
        .unwrap();
        assert!(id.is_client_admin, "stringified boolean");
        let id = Identity::from_claims(
            &claims(json!({"sub":"u1","client_id":"acme","permissions":"[viewer client_admin]"})),
            &n,
        )
        .unwrap();
        assert!(id.is_client_admin, "stringified list");
        let id = Identity::from_claims(
            &claims(json!({"sub":"u1","client_id":"acme","permissions":["client_admin"]})),
            &n,
        )
        .unwrap();
        assert!(id.is_client_admin, "real list");
        let id = Identity::from_claims(
            &claims(json!({"sub":"u1","client_id":"acme","permissions":"[client_administrator]"})),
            &n,
        )
        .unwrap();
        assert!(!id.is_client_admin, "membership is exact");
        assert!(Identity::from_claims(&claims(json!({"sub":"u1"})), &n).is_none(), "no client, no identity");
        assert!(Identity::from_claims(&claims(json!({"sub":"u1","client_id":"a#b"})), &n).is_none());
    }

    #[test]
    fn dev_tokens_verify_and_refuse_tampering_and_expiry() {
        let auth = DevAuth::new("dev-secret");
        let who = Identity {
            user_id: UserId::parse("ana").unwrap(),
            display_name: "Ana".into(),
            client_id: ClientId::parse("acme").unwrap(),
            is_client_admin: true,
        };
        let t = auth.issue(&who, 1000, 60);
        assert_eq!(auth.verify(&t, 1001), Some(who.clone()));
        assert_eq!(auth.verify(&t, 1060), None, "expired");
        assert_eq!(DevAuth::new("other").verify(&t, 1001), None, "wrong key");
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged =
            B64.encode(r#"{"sub":"ana","client_id":"evil","is_client_admin":true,"exp":9999999999}"#);
        parts[1] = &forged;
        assert_eq!(auth.verify(&parts.join("."), 1001), None, "tampered payload");
        let none_alg = format!("{}.{}.", B64.encode(r#"{"alg":"none"}"#), t.split('.').nth(1).unwrap());
        assert_eq!(auth.verify(&none_alg, 1001), None, "alg none");
    }
}
