//! files/download: bytes, result header, ranges, errors.

use extconn_sandbox::Content;
use serde_json::{Value, json};

use crate::support::*;

#[tokio::test]
async fn download_streams_bytes_with_metadata_header() {
    let env = env().await;
    let f = env.dbx.add_file(&env.acct, "/Docs/a.txt", Content::text("hello world"));
    let r = env.download(json!({"path": "/docs/A.TXT"}), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(&r.body[..], b"hello world");
    assert_eq!(r.header("content-length").as_deref(), Some("11"));
    assert_eq!(r.header("content-type").as_deref(), Some("application/octet-stream"));
    let result: Value =
        serde_json::from_str(&r.header("dropbox-api-result").expect("result header")).expect("json");
    let meta = env.rpc("files/get_metadata", Some(json!({"path": f.id}))).await.json();
    assert_eq!(result, meta);
    assert_eq!(result["content_hash"], "bc62d4b80d9e36da29c16c5d4d9f11731f36052c72401a76c23c0fb5a9b74423");
    // By id and by rev too.
    assert_eq!(&env.download(json!({"path": f.id}), None).await.body[..], b"hello world");
    let rev = f.rev.clone().unwrap_or_default();
    assert_eq!(&env.download(json!({"path": format!("rev:{rev}")}), None).await.body[..], b"hello world");
}

#[tokio::test]
async fn ranges_give_206_with_content_range() {
    let env = env().await;
    let content = Content::generated(1_000_000, 9);
    let all = content.to_vec();
    env.dbx.add_file(&env.acct, "/big.bin", content);
    let r = env.download(json!({"path": "/big.bin"}), Some("bytes=10-19")).await;
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range").as_deref(), Some("bytes 10-19/1000000"));
    assert_eq!(r.header("content-length").as_deref(), Some("10"));
    assert_eq!(&r.body[..], &all[10..20]);
    let r = env.download(json!({"path": "/big.bin"}), Some("bytes=999990-")).await;
    assert_eq!(r.status, 206);
    assert_eq!(&r.body[..], &all[999_990..]);
    let r = env.download(json!({"path": "/big.bin"}), Some("bytes=-5")).await;
    assert_eq!(r.header("content-range").as_deref(), Some("bytes 999995-999999/1000000"));
    let r = env.download(json!({"path": "/big.bin"}), Some("bytes=1000000-")).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range").as_deref(), Some("bytes */1000000"));
    // Metadata header is present on ranged answers too.
    let r = env.download(json!({"path": "/big.bin"}), Some("bytes=0-0")).await;
    let meta: Value = serde_json::from_str(&r.header("dropbox-api-result").expect("header")).expect("json");
    assert_eq!(meta["size"], 1_000_000);
}

#[tokio::test]
async fn non_ascii_names_use_header_safe_json() {
    let env = env().await;
    env.dbx.add_file(&env.acct, "/Fotos/café 😀.txt", Content::text("x"));
    let r = env.download(json!({"path": "/fotos/café 😀.txt"}), None).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let raw = r.headers.get("dropbox-api-result").expect("header").as_bytes().to_vec();
    assert!(raw.is_ascii());
    let raw = String::from_utf8(raw).expect("ascii");
    assert!(raw.contains("caf\\u00e9 \\ud83d\\ude00.txt"), "{raw}");
    let v: Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(v["name"], "café 😀.txt");

    // Raw UTF-8 bytes in the argument header are rejected with a plain-text 400.
    let value = reqwest::header::HeaderValue::from_bytes("{\"path\":\"/fotos/café 😀.txt\"}".as_bytes())
        .expect("value");
    let r = reply(
        env.http
            .post(format!("{}/2/files/download", env.urls.content_base))
            .bearer_auth(&env.token)
            .header("Dropbox-API-Arg", value)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(r.header("content-type").unwrap_or_default().starts_with("text/plain"));
}

#[tokio::test]
async fn download_errors() {
    let env = env().await;
    env.dbx.add_folder(&env.acct, "/folder");
    let r = env.download(json!({"path": "/missing.txt"}), None).await;
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json(),
        json!({"error_summary": "path/not_found/..", "error": {".tag": "path", "path": {".tag": "not_found"}}})
    );
    let r = env.download(json!({"path": "/folder"}), None).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["error"]["path"][".tag"], "not_file");
    assert_eq!(r.json()["error_summary"], "path/not_file/..");
    // No argument header.
    let r = reply(
        env.http
            .post(format!("{}/2/files/download", env.urls.content_base))
            .bearer_auth(&env.token)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 400);
    // Bad JSON in the header.
    let r = reply(
        env.http
            .post(format!("{}/2/files/download", env.urls.content_base))
            .bearer_auth(&env.token)
            .header("Dropbox-API-Arg", "{path:")
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 400);
    // No token.
    let r = reply(
        env.http
            .post(format!("{}/2/files/download", env.urls.content_base))
            .header("Dropbox-API-Arg", r#"{"path":"/folder"}"#)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"][".tag"], "invalid_access_token");
}
