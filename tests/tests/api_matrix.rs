//! The admin API's input, authorization and document contracts.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use extconn_api::ROUTES;
use extconn_system_tests::WorldOptions;
use extconn_system_tests::api::ApiWorld;
use serde_json::{Value, json};

const P: &str = "https://extconn.dev/problems/";

fn raw(method: Method, uri: &str, token: &str, content_type: &str, body: impl Into<Body>) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", content_type)
        .body(body.into())
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_a_named_problem_with_no_side_effect() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    let conn = a.w.conn.connection_id.to_string();
    let grant = a.w.grant.id.to_string();
    let t = a.admin.clone();
    let json = "application/json";
    let confirm = format!("/v1/connections/{conn}/confirm-deletions");
    // (request, status, problem slug, invalid param name)
    let cases: Vec<(Request<Body>, u16, &str, Option<&str>)> = vec![
        (
            raw(Method::POST, "/v1/connections/authorize", &t, json, "{\"provider\":"),
            400,
            "malformed-json",
            None,
        ),
        (raw(Method::POST, "/v1/connections/authorize", &t, json, ""), 400, "malformed-json", None),
        (
            raw(Method::POST, "/v1/connections/authorize", &t, json, "{\"provider\":\"dropbox\"} x"),
            400,
            "malformed-json",
            None,
        ),
        (
            raw(Method::POST, "/v1/connections/authorize", &t, json, "{\"provider\":1}"),
            400,
            "invalid-request",
            Some("/provider"),
        ),
        (
            raw(Method::POST, "/v1/connections/authorize", &t, json, "{\"provider\":\"onedrive_personal\"}"),
            400,
            "invalid-request",
            Some("/provider"),
        ),
        (
            raw(
                Method::POST,
                "/v1/connections/authorize",
                &t,
                json,
                "{\"provider\":\"dropbox\",\"client_id\":\"globex\"}",
            ),
            400,
            "invalid-request",
            Some("/client_id"),
        ),
        (
            raw(Method::POST, "/v1/connections/authorize", &t, json, "{}"),
            400,
            "invalid-request",
            Some("/provider"),
        ),
        (
            raw(Method::POST, "/v1/connections/authorize", &t, "text/plain", "{\"provider\":\"dropbox\"}"),
            415,
            "unsupported-media-type",
            None,
        ),
        (
            raw(
                Method::POST,
                "/v1/connections/authorize",
                &t,
                json,
                format!("{{\"provider\":\"{}\"}}", "d".repeat(17 * 1024)),
            ),
            413,
            "payload-too-large",
            None,
        ),
        (
            raw(Method::POST, "/v1/connections/authorize", &t, json, "{\"provider\":\"google_drive\"}"),
            409,
            "provider-not-configured",
            None,
        ),
        (
            raw(
                Method::POST,
                "/v1/connections",
                &t,
                json,
                json!({"grant_id": grant, "folder_id": "id:abc", "auto_sync": "yes"}).to_string(),
            ),
            400,
            "invalid-request",
            Some("/auto_sync"),
        ),
        (
            raw(
                Method::POST,
                "/v1/connections",
                &t,
                json,
                json!({"grant_id": grant, "auto_sync": true}).to_string(),
            ),
            400,
            "invalid-request",
            Some("/folder_id"),
        ),
        (
            raw(
                Method::POST,
                "/v1/connections",
                &t,
                json,
                json!({"grant_id": "../gra_x", "folder_id": "id:abc", "auto_sync": true}).to_string(),
            ),
            400,
            "invalid-request",
            Some("/grant_id"),
        ),
        (
            raw(
                Method::POST,
                "/v1/connections",
                &t,
                json,
                json!({"grant_id": grant, "folder_id": "\" OR attribute_exists(pk)", "auto_sync": true})
                    .to_string(),
            ),
            400,
            "invalid-request",
            Some("/folder_id"),
        ),
        (
            raw(
                Method::POST,
                "/v1/connections",
                &t,
                json,
                json!({"grant_id": grant, "folder_id": "", "auto_sync": true}).to_string(),
            ),
            400,
            "invalid-request",
            Some("/folder_id"),
        ),
        (
            raw(
                Method::POST,
                "/v1/connections",
                &t,
                json,
                json!({"grant_id": grant, "folder_id": format!("id:{}", "a".repeat(600)), "auto_sync": true})
                    .to_string(),
            ),
            400,
            "invalid-request",
            Some("/folder_id"),
        ),
        (
            raw(Method::PATCH, &format!("/v1/connections/{conn}"), &t, json, "{\"auto_sync\":\"no\"}"),
            400,
            "invalid-request",
            Some("/auto_sync"),
        ),
        (
            raw(Method::PATCH, &format!("/v1/connections/{conn}"), &t, json, "{}"),
            400,
            "invalid-request",
            Some("/auto_sync"),
        ),
        (
            raw(
                Method::PATCH,
                &format!("/v1/connections/{conn}"),
                &t,
                json,
                "{\"auto_sync\":true,\"status\":\"active\"}",
            ),
            400,
            "invalid-request",
            Some("/status"),
        ),
        (
            raw(Method::GET, "/v1/connections?provider=bogus", &t, json, ""),
            400,
            "invalid-request",
            Some("provider"),
        ),
        (raw(Method::GET, "/v1/connections?limit=0", &t, json, ""), 400, "invalid-request", Some("limit")),
        (
            raw(Method::GET, "/v1/connections?client_id=globex", &t, json, ""),
            400,
            "invalid-request",
            Some("client_id"),
        ),
        (
            raw(Method::GET, "/v1/connections?page=forged.token", &t, json, ""),
            400,
            "invalid-page-token",
            None,
        ),
        (
            raw(Method::GET, &format!("/v1/connections/{conn}/items?state=lost"), &t, json, ""),
            400,
            "invalid-request",
            Some("state"),
        ),
        (
            raw(Method::POST, &confirm, &t, json, "{\"action\":\"maybe\"}"),
            400,
            "invalid-request",
            Some("/action"),
        ),
        (
            raw(Method::POST, &confirm, &t, json, "{\"action\":null,\"x\":1}"),
            400,
            "invalid-request",
            Some("/x"),
        ),
        (raw(Method::POST, &confirm, &t, json, "{\"action\":"), 400, "malformed-json", None),
        (
            raw(Method::POST, &confirm, &t, "text/plain", "{\"action\":\"apply\"}"),
            415,
            "unsupported-media-type",
            None,
        ),
        (
            raw(Method::POST, &confirm, &t, json, format!("{{\"action\":\"{}\"}}", "a".repeat(17 * 1024))),
            413,
            "payload-too-large",
            None,
        ),
        // A body is an object: an array (which serde would take as the fields in order) or a
        // scalar is refused, naming the body.
        (
            raw(Method::POST, "/v1/connections/authorize", &t, json, "[\"dropbox\"]"),
            400,
            "invalid-request",
            Some("/"),
        ),
        (
            raw(Method::POST, "/v1/connections/authorize", &t, json, "\"dropbox\""),
            400,
            "invalid-request",
            Some("/"),
        ),
        (raw(Method::POST, "/v1/connections/authorize", &t, json, " 42 "), 400, "invalid-request", Some("/")),
        (
            raw(Method::POST, "/v1/connections/authorize", &t, json, "[\"dropbox\""),
            400,
            "malformed-json",
            None,
        ),
        (
            raw(Method::POST, "/v1/connections", &t, json, json!([grant, "id:abc", null, true]).to_string()),
            400,
            "invalid-request",
            Some("/"),
        ),
        (
            raw(Method::PATCH, &format!("/v1/connections/{conn}"), &t, json, "[false]"),
            400,
            "invalid-request",
            Some("/"),
        ),
        (raw(Method::POST, &confirm, &t, json, "[\"discard\"]"), 400, "invalid-request", Some("/")),
        (raw(Method::POST, &confirm, &t, json, "null"), 400, "invalid-request", Some("/")),
        // No body is `apply`; this connection holds nothing to apply.
        (raw(Method::POST, &confirm, &t, json, ""), 409, "nothing-to-review", None),
        (
            raw(Method::GET, &format!("/v1/connections/{conn}/retry-failed"), &t, json, ""),
            405,
            "method-not-allowed",
            None,
        ),
        (raw(Method::GET, "/v1/nope", &t, json, ""), 404, "not-found", None),
        (raw(Method::GET, "/v1/connections/not-an-id", &t, json, ""), 404, "not-found", None),
        (raw(Method::PUT, "/v1/connections", &t, json, "{}"), 405, "method-not-allowed", None),
        (raw(Method::DELETE, "/v1/providers", &t, json, ""), 405, "method-not-allowed", None),
    ];
    let before = a.fingerprint();
    let n = cases.len();
    for (req, status, slug, param) in cases {
        let what = format!("{} {}", req.method(), req.uri());
        let r = a.send(req).await;
        assert_eq!(r.status.as_u16(), status, "{what}: {}", r.raw);
        assert_eq!(r.header("content-type"), "application/problem+json", "{what}");
        assert_eq!(r.problem_type(), format!("{P}{slug}"), "{what}: {}", r.raw);
        assert_eq!(r.body["status"].as_u64(), Some(u64::from(status)), "{what}");
        if let Some(name) = param {
            assert_eq!(r.body["invalid_params"][0]["name"], name, "{what}: {}", r.raw);
        }
        assert!(
            !r.raw.contains("serde") && !r.raw.contains("at line"),
            "{what}: internals leaked: {}",
            r.raw
        );
        assert_eq!(a.fingerprint(), before, "{what} changed something");
    }
    assert!(n >= 25);
}

/// (method, uri, body) for every admin route, with ids of client `acme`.
fn every_admin_route(a: &ApiWorld) -> Vec<(Method, String, Option<Value>)> {
    let conn = a.w.conn.connection_id.to_string();
    let grant = a.w.grant.id.to_string();
    let mut out = Vec::new();
    for (method, path, op) in ROUTES {
        if extconn_api::openapi::is_public(op) {
            continue;
        }
        let uri = path.replace("{id}", &conn).replace("{grant}", &grant);
        let body = match *op {
            "startAuthorization" => Some(json!({"provider": "dropbox"})),
            "createConnection" => {
                Some(json!({"grant_id": grant, "folder_id": "id:someFolder", "auto_sync": true}))
            }
            "updateConnection" => Some(json!({"auto_sync": false})),
            "confirmDeletions" => Some(json!({"action": "apply"})),
            _ => None,
        };
        out.push((method.clone(), uri, body));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_matrix_over_every_endpoint() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    let before = a.fingerprint();
    let routes = every_admin_route(&a);
    assert_eq!(routes.len(), ROUTES.len() - 2);
    for (method, uri, body) in &routes {
        let r = a.call(method.clone(), uri, None, body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.problem_type()),
            (401, format!("{P}unauthenticated").as_str()),
            "{method} {uri}"
        );
        let forged = a.dev.issue(&extconn_system_tests::api::identity("ana", "acme", true), 0, 60);
        let r = a.call(method.clone(), uri, Some(&forged), body.clone()).await;
        assert_eq!(r.status.as_u16(), 401, "expired token: {method} {uri}");
        let r = a.call(method.clone(), uri, Some(&a.viewer), body.clone()).await;
        assert_eq!(
            (r.status.as_u16(), r.problem_type()),
            (403, format!("{P}forbidden").as_str()),
            "{method} {uri}"
        );
        // Another client's admin: acme's ids do not exist for them.
        if uri.contains("con_")
            || uri.contains("gra_")
            || body.as_ref().is_some_and(|b| b.get("grant_id").is_some())
        {
            let r = a.call(method.clone(), uri, Some(&a.stranger), body.clone()).await;
            assert_eq!(
                (r.status.as_u16(), r.problem_type()),
                (404, format!("{P}not-found").as_str()),
                "{method} {uri}: {}",
                r.raw
            );
        }
        assert_eq!(a.fingerprint(), before, "{method} {uri} changed something");
    }
    // Another client's page token.
    a.w.connect("id:second", "/Second").await;
    let page = a.call(Method::GET, "/v1/connections?limit=1", Some(&a.admin), None).await;
    let token = page.body["next_page"].as_str().expect("a second page").to_owned();
    let before = a.fingerprint();
    let r =
        a.call(Method::GET, &format!("/v1/connections?limit=1&page={token}"), Some(&a.stranger), None).await;
    assert_eq!((r.status.as_u16(), r.problem_type()), (400, format!("{P}invalid-page-token").as_str()));
    let r = a.call(Method::GET, &format!("/v1/connections?limit=1&page={token}"), Some(&a.admin), None).await;
    assert_eq!(r.status, StatusCode::OK, "the owner's token works");
    assert_eq!(r.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(a.fingerprint(), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_lists_exactly_the_routes() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    let doc = a.call(Method::GET, "/v1/openapi.json", None, None).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let mut documented: Vec<(String, String)> = Vec::new();
    for (path, ops) in doc.body["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.push((method.to_uppercase(), path.clone()));
        }
    }
    let mut routed: Vec<(String, String)> =
        ROUTES.iter().map(|(m, p, _)| (m.to_string(), p.to_string())).collect();
    documented.sort();
    routed.sort();
    assert_eq!(documented, routed);
    // As strict as the server: the provider's outage where a provider is called, the HTTP
    // layer's limits everywhere, and no query parameter that may be empty.
    let paths = &doc.body["paths"];
    for (path, method) in [
        ("/v1/oauth/{provider}/callback", "get"),
        ("/v1/grants/{grant}/folders", "get"),
        ("/v1/connections", "post"),
    ] {
        assert!(paths[path][method]["responses"]["502"].is_object(), "{method} {path}: 502 documented");
    }
    for (path, ops) in paths.as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            for code in ["400", "404", "414", "431", "500"] {
                assert!(op["responses"][code].is_object(), "{method} {path}: {code} documented");
            }
            for p in op["parameters"].as_array().into_iter().flatten() {
                let s = &p["schema"];
                let bounded = s["minLength"].as_u64().is_some_and(|n| n >= 1)
                    || s["minimum"].is_number()
                    || s["enum"].is_array()
                    || s["pattern"].is_string()
                    || s["$ref"].is_string()
                    || ["error", "error_description"].contains(&p["name"].as_str().unwrap());
                assert!(bounded, "{method} {path}: {} may not be empty", p["name"]);
            }
        }
    }
    // Every documented route reaches a handler (not the router's fallback).
    for (method, uri, body) in every_admin_route(&a) {
        let r = a.call(method.clone(), &uri, Some(&a.admin), body).await;
        assert_ne!(r.body["detail"], "no such route", "{method} {uri}");
        assert_ne!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
    }
    // The validator in scripts/test reads this file.
    if let Ok(out) = std::env::var("EXTCONN_OPENAPI_OUT") {
        std::fs::write(out, serde_json::to_vec_pretty(&doc.body).unwrap()).unwrap();
    }
}

/// An array body carrying a valid connection, field by field, creates nothing; the same as an
/// object does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_array_body_is_refused_and_creates_nothing() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    let folder = a.w.dbx.add_folder(&a.w.account, "/Other");
    let grant = a.w.grant.id.to_string();
    let before = a.fingerprint();
    let array = json!([grant, folder.id, null, true]).to_string();
    let r = a.send(raw(Method::POST, "/v1/connections", &a.admin, "application/json", array)).await;
    assert_eq!(
        (r.status.as_u16(), r.problem_type()),
        (400, format!("{P}invalid-request").as_str()),
        "{}",
        r.raw
    );
    assert_eq!(r.header("content-type"), "application/problem+json");
    assert_eq!(r.body["invalid_params"][0]["name"], "/", "{}", r.raw);
    assert_eq!(a.fingerprint(), before, "nothing created, nothing queued");
    let object = json!({"grant_id": grant, "folder_id": folder.id, "auto_sync": true});
    let r = a.call(Method::POST, "/v1/connections", Some(&a.admin), Some(object)).await;
    assert_eq!(r.status, StatusCode::CREATED, "the same fields as an object: {}", r.raw);
}

/// The HTTP layer's own refusals are problem+json in the catalog's words.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_layers_refusals_are_problems() {
    let a = ApiWorld::new(WorldOptions::default()).await;
    let t = a.admin.clone();
    let get = |uri: &str| raw(Method::GET, uri, &t, "application/json", "");
    let mut big_header = get("/v1/connections");
    big_header.headers_mut().insert("x-padding", "p".repeat(17 * 1024).parse().unwrap());
    let mut many_headers = get("/v1/connections");
    for i in 0..70 {
        many_headers
            .headers_mut()
            .insert(format!("x-h{i}").parse::<axum::http::HeaderName>().unwrap(), "1".parse().unwrap());
    }
    let cases = [
        (get(&format!("/v1/connections?page={}", "a".repeat(9 * 1024))), 414, "uri-too-long"),
        (get(&format!("/v1/{}", "a".repeat(9 * 1024))), 414, "uri-too-long"),
        (big_header, 431, "headers-too-large"),
        (many_headers, 431, "headers-too-large"),
        (get("/v1/nothing-here"), 404, "not-found"),
        (get("/"), 404, "not-found"),
        (raw(Method::PUT, "/v1/providers", &t, "application/json", "{}"), 405, "method-not-allowed"),
        (raw(Method::OPTIONS, "/v1/connections", &t, "application/json", ""), 405, "method-not-allowed"),
        (raw(Method::POST, "/v1/connections", &t, "application/xml", "<a/>"), 415, "unsupported-media-type"),
        (raw(Method::POST, "/v1/connections", &t, "application/json", "{"), 400, "malformed-json"),
    ];
    for (req, status, slug) in cases {
        let uri = req.uri().to_string();
        let what = format!("{} {}", req.method(), &uri[..uri.len().min(60)]);
        let r = a.send(req).await;
        assert_eq!(r.status.as_u16(), status, "{what}: {}", r.raw);
        assert_eq!(r.header("content-type"), "application/problem+json", "{what}");
        assert_eq!(r.problem_type(), format!("{P}{slug}"), "{what}");
        assert_eq!(r.body["status"].as_u64(), Some(u64::from(status)), "{what}");
        assert!(r.body["title"].as_str().is_some_and(|s| !s.is_empty()), "{what}: {}", r.raw);
        assert!(r.body["detail"].as_str().is_some_and(|s| !s.is_empty()), "{what}: {}", r.raw);
    }
}
