//! Request extraction with problem+json rejections: JSON bodies, required or optional (media
//! type, 16 KiB limit, unknown fields, field-named errors), path ids and strict query strings.

use std::collections::BTreeMap;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header;
use axum::http::request::Parts;
use serde::Deserialize as _;
use serde::de::DeserializeOwned;

use crate::problem::{ApiResult, Problem, ProblemKind};

/// Largest accepted request body.
pub const BODY_LIMIT: usize = 16 * 1024;

/// A JSON body of type `T` (whose serde derive should say `deny_unknown_fields`).
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

fn pointer(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for seg in path.iter() {
        out.push('/');
        out.push_str(&seg.to_string().replace('~', "~0").replace('/', "~1"));
    }
    out
}

/// The name between backticks in serde's "unknown field `x`" / "missing field `x`".
fn quoted(msg: &str) -> Option<&str> {
    let start = msg.find('`')? + 1;
    let end = start + msg[start..].find('`')?;
    Some(&msg[start..end])
}

fn body_problem(e: serde_path_to_error::Error<serde_json::Error>) -> Problem {
    let inner = e.inner();
    if inner.is_syntax() || inner.is_eof() || inner.is_io() {
        return Problem::new(ProblemKind::MalformedJson).detail("the body must be one JSON object");
    }
    let msg = inner.to_string();
    let mut name = pointer(e.path());
    let reason = if msg.starts_with("unknown field") {
        if let Some(f) = quoted(&msg)
            && !name.ends_with(&format!("/{f}"))
        {
            name = format!("{}/{f}", name.trim_end_matches('/'));
        }
        "unknown field".to_owned()
    } else if msg.starts_with("missing field") || msg.starts_with("duplicate field") {
        if let Some(f) = quoted(&msg) {
            name = format!("{}/{f}", name.trim_end_matches('/'));
        }
        if msg.starts_with("missing") { "required" } else { "given more than once" }.to_owned()
    } else {
        // serde's own wording, without its position suffix and never long.
        let m = msg.split(" at line ").next().unwrap_or_default();
        m.chars().take(120).collect()
    };
    if name.is_empty() {
        name = "/".into();
    }
    Problem::invalid(name, reason)
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, _: &S) -> Result<Self, Problem> {
        if !is_json(&req) {
            return Err(unsupported_media_type());
        }
        let bytes = read_limited(req).await?;
        Ok(JsonBody(parse(&bytes)?))
    }
}

/// A JSON body of type `T` that may be left out: no body at all (empty, whatever the headers
/// say) is `None`; a body present is held to everything [`JsonBody`] requires (media type,
/// 16 KiB, unknown fields, field-named errors).
#[derive(Debug)]
pub struct OptionalJsonBody<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for OptionalJsonBody<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, _: &S) -> Result<Self, Problem> {
        let json = is_json(&req);
        let bytes = read_limited(req).await?;
        if bytes.is_empty() {
            return Ok(OptionalJsonBody(None));
        }
        if !json {
            return Err(unsupported_media_type());
        }
        Ok(OptionalJsonBody(Some(parse(&bytes)?)))
    }
}

fn unsupported_media_type() -> Problem {
    Problem::new(ProblemKind::UnsupportedMediaType).detail("send the body as application/json")
}

fn is_json(req: &Request) -> bool {
    let ct = req.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let media = ct.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json")
}

/// The body, refused past [`BODY_LIMIT`] (declared or actual).
async fn read_limited(req: Request) -> ApiResult<axum::body::Bytes> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(Problem::new(ProblemKind::PayloadTooLarge).detail("the limit is 16 KiB"));
    }
    axum::body::to_bytes(req.into_body(), BODY_LIMIT)
        .await
        .map_err(|_| Problem::new(ProblemKind::PayloadTooLarge).detail("the limit is 16 KiB"))
}

/// Exactly one JSON **object**, of type `T`. Serde's derived structs also accept an array of
/// their fields in order (`["gra_…", "id:…", null, true]`); every body of this API is an object
/// with named fields, so anything else — an array, a string, a number, `true`, `null` — is
/// refused, naming the body (`/`), before `T` sees it.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    // Syntax first, so that a broken document is `malformed-json` whatever it starts with.
    let mut check = serde_json::Deserializer::from_slice(bytes);
    serde::de::IgnoredAny::deserialize(&mut check)
        .and_then(|_| check.end())
        .map_err(|_| Problem::new(ProblemKind::MalformedJson).detail("the body must be one JSON object"))?;
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Problem::invalid("/", "the body must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(&mut de).map_err(body_problem)
}

/// The path parameters as raw strings; a malformed path is a 404 (it cannot name anything).
#[derive(Debug)]
pub struct PathParams(pub Vec<String>);

impl<S: Send + Sync> FromRequestParts<S> for PathParams {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let axum::extract::Path(map) =
            axum::extract::Path::<Vec<(String, String)>>::from_request_parts(parts, state)
                .await
                .map_err(|_| Problem::not_found())?;
        Ok(PathParams(map.into_iter().map(|(_, v)| v).collect()))
    }
}

impl PathParams {
    /// The first parameter parsed as an id; an unparseable id names nothing: 404.
    pub fn id<T: std::str::FromStr>(&self) -> ApiResult<T> {
        self.0.first().and_then(|s| s.parse().ok()).ok_or_else(Problem::not_found)
    }
}

/// A query string, parsed strictly: unknown or repeated parameters are a 400.
#[derive(Debug, Default)]
pub struct QueryParams(BTreeMap<String, String>);

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Problem> {
        let mut map = BTreeMap::new();
        for (k, v) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
            if map.insert(k.to_string(), v.to_string()).is_some() {
                return Err(Problem::invalid(k.to_string(), "given more than once"));
            }
        }
        Ok(QueryParams(map))
    }
}

impl QueryParams {
    /// Refuses parameters outside `allowed`.
    pub fn only(&self, allowed: &[&str]) -> ApiResult<()> {
        match self.0.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(Problem::invalid(k.clone(), "unknown parameter")),
            None => Ok(()),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// `limit` in 1..=200, default 50.
    pub fn limit(&self) -> ApiResult<usize> {
        match self.get("limit") {
            None => Ok(50),
            Some(v) => v
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=200).contains(n))
                .ok_or_else(|| Problem::invalid("limit", "an integer from 1 to 200")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        grant_id: String,
        auto_sync: bool,
    }

    fn err(json: &str) -> Problem {
        let mut de = serde_json::Deserializer::from_str(json);
        body_problem(serde_path_to_error::deserialize::<_, Body>(&mut de).unwrap_err())
    }

    #[test]
    fn errors_name_the_field() {
        let p = err(r#"{"grant_id":"g","auto_sync":"yes"}"#);
        assert_eq!(p.invalid_params[0].name, "/auto_sync");
        let p = err(r#"{"grant_id":"g","auto_sync":true,"client_id":"other"}"#);
        assert_eq!(
            (p.invalid_params[0].name.as_str(), p.invalid_params[0].reason.as_str()),
            ("/client_id", "unknown field")
        );
        let p = err(r#"{"auto_sync":true}"#);
        assert_eq!(
            (p.invalid_params[0].name.as_str(), p.invalid_params[0].reason.as_str()),
            ("/grant_id", "required")
        );
        let p = err(r#"{"grant_id":"a","grant_id":"b","auto_sync":true}"#);
        assert_eq!(p.invalid_params[0].name, "/grant_id");
        assert_eq!(err(r#"{"grant_id": "#).kind, ProblemKind::MalformedJson);
        assert_eq!(err("[]").kind, ProblemKind::InvalidRequest);
    }

    /// A body is one JSON object: serde's derive would take an array of the fields in order.
    #[test]
    fn only_an_object_is_a_body() {
        let named = |b: &str| {
            let p = parse::<Body>(b.as_bytes()).unwrap_err();
            (p.kind, p.invalid_params.first().map(|i| i.name.clone()))
        };
        let body = (ProblemKind::InvalidRequest, Some("/".to_owned()));
        for b in [r#"["g", true]"#, r#" "g" "#, "1", "true", "null", "[]"] {
            assert_eq!(named(b), body, "{b}");
        }
        assert_eq!(named(r#"["g", true"#).0, ProblemKind::MalformedJson);
        assert_eq!(named(r#"{"grant_id":"g","auto_sync":true} {}"#).0, ProblemKind::MalformedJson);
        assert!(parse::<Body>(br#" {"grant_id":"g","auto_sync":true} "#).is_ok());
    }

    #[derive(Debug, Default, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Optional {
        #[serde(default)]
        action: Option<String>,
    }

    async fn optional(content_type: Option<&str>, body: String) -> ApiResult<Option<Optional>> {
        let mut b = Request::builder().method("POST").uri("/");
        if let Some(ct) = content_type {
            b = b.header(header::CONTENT_TYPE, ct);
        }
        let req = b.body(axum::body::Body::from(body)).expect("request");
        OptionalJsonBody::<Optional>::from_request(req, &()).await.map(|b| b.0)
    }

    #[tokio::test]
    async fn an_optional_body_may_be_left_out_but_not_bent() {
        assert!(optional(None, String::new()).await.unwrap().is_none(), "no body, no headers");
        assert!(optional(Some("application/json"), String::new()).await.unwrap().is_none());
        let some = optional(Some("application/json; charset=utf-8"), r#"{"action":"discard"}"#.into());
        assert_eq!(some.await.unwrap().and_then(|b| b.action).as_deref(), Some("discard"));
        let kind = |r: ApiResult<Option<Optional>>| r.unwrap_err().kind;
        assert_eq!(kind(optional(None, "{}".into()).await), ProblemKind::UnsupportedMediaType);
        assert_eq!(kind(optional(Some("text/plain"), "{}".into()).await), ProblemKind::UnsupportedMediaType);
        let big = format!(r#"{{"action":"{}"}}"#, "a".repeat(BODY_LIMIT));
        assert_eq!(kind(optional(Some("application/json"), big).await), ProblemKind::PayloadTooLarge);
        let p = optional(Some("application/json"), r#"{"x":1}"#.into()).await.unwrap_err();
        assert_eq!(
            (p.invalid_params[0].name.as_str(), p.invalid_params[0].reason.as_str()),
            ("/x", "unknown field")
        );
        assert_eq!(kind(optional(Some("application/json"), "{".into()).await), ProblemKind::MalformedJson);
    }
}
