//! Every fault kind, observed from a plain reqwest client; counters and call log.

use std::time::{Duration, Instant};

use extconn_sandbox::{Content, Endpoint, Fault};
use futures::StreamExt;
use serde_json::json;

use crate::support::*;

const SIZE: u64 = 3 * 1024 * 1024 + 17;

async fn raw_download(env: &Env) -> reqwest::Response {
    env.http
        .post(format!("{}/2/files/download", env.urls.content_base))
        .bearer_auth(&env.token)
        .header("Dropbox-API-Arg", r#"{"path":"/f.bin"}"#)
        .send()
        .await
        .expect("send")
}

fn with_file(env: &Env) -> Vec<u8> {
    let c = Content::generated(SIZE, 77);
    let bytes = c.to_vec();
    env.dbx.add_file(&env.acct, "/f.bin", c);
    bytes
}

#[tokio::test]
async fn truncate_cuts_the_connection_after_n_bytes() {
    let env = env().await;
    let all = with_file(&env);
    env.dbx.inject(Endpoint::Download, Fault::Truncate { after_bytes: 1_000_000 }, 1);
    let resp = raw_download(&env).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.content_length(), Some(SIZE), "full Content-Length is announced");
    let mut got = Vec::new();
    let mut stream = resp.bytes_stream();
    let mut failed = false;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(c) => got.extend_from_slice(&c),
            Err(_) => {
                failed = true;
                break;
            }
        }
    }
    assert!(failed, "the body must end in an error");
    // The server pauses before failing, so exactly the first N bytes get through.
    assert_eq!(got.len(), 1_000_000);
    assert_eq!(&got[..], &all[..got.len()], "the bytes that did arrive are correct");
    // Next download is fine.
    let ok = raw_download(&env).await.bytes().await.expect("body");
    assert_eq!(ok.len() as u64, SIZE);
}

#[tokio::test]
async fn corrupt_same_length_flips_one_byte() {
    let env = env().await;
    let all = with_file(&env);
    env.dbx.inject(Endpoint::Download, Fault::CorruptSameLength, 1);
    let resp = raw_download(&env).await;
    assert_eq!(resp.content_length(), Some(SIZE));
    let got = resp.bytes().await.expect("body completes");
    assert_eq!(got.len(), all.len());
    let diffs: Vec<usize> = (0..all.len()).filter(|&i| got[i] != all[i]).collect();
    assert_eq!(diffs, vec![all.len() / 2]);
    assert_ne!(extconn_sandbox::content_hash(&got), extconn_sandbox::content_hash(&all));
}

#[tokio::test]
async fn short_chunked_ends_cleanly_with_half_the_bytes() {
    let env = env().await;
    let all = with_file(&env);
    env.dbx.inject(Endpoint::Download, Fault::ShortChunked, 1);
    let resp = raw_download(&env).await;
    assert_eq!(resp.status().as_u16(), 200);
    assert!(resp.headers().get("content-length").is_none());
    assert_eq!(resp.headers().get("transfer-encoding").map(|v| v.as_bytes()), Some(&b"chunked"[..]));
    let got = resp.bytes().await.expect("body ends cleanly");
    assert_eq!(got.len(), all.len() / 2);
    assert_eq!(&got[..], &all[..got.len()]);
}

#[tokio::test]
async fn server_errors_rate_limits_and_fifo_order() {
    let env = env().await;
    with_file(&env);
    env.dbx.inject(Endpoint::Download, Fault::ServerError(503), 2);
    env.dbx.inject(Endpoint::Download, Fault::RateLimit { retry_after_secs: 2 }, 1);
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let r = reply(raw_download(&env).await).await;
        if r.status == 503 {
            assert!(!r.body.is_empty());
        }
        if r.status == 429 {
            assert_eq!(r.header("retry-after").as_deref(), Some("2"));
            assert_eq!(r.json()["error"]["retry_after"], 2);
        }
        statuses.push(r.status);
    }
    assert_eq!(statuses, [503, 503, 429, 200]);
    assert_eq!(env.dbx.calls(Endpoint::Download), 4);
    let log: Vec<u16> =
        env.dbx.call_log().iter().filter(|c| c.endpoint == Endpoint::Download).map(|c| c.status).collect();
    assert_eq!(log, [503, 503, 429, 200]);
}

#[tokio::test]
async fn invalid_grant_and_expired_token_faults() {
    let env = env().await;
    let (_, rt) = env.dbx.mint_tokens(&env.acct, CLIENT_ID);
    env.dbx.inject(Endpoint::Token, Fault::InvalidGrant, 1);
    let form = [
        ("grant_type", "refresh_token"),
        ("refresh_token", rt.as_str()),
        ("client_id", CLIENT_ID),
        ("client_secret", CLIENT_SECRET),
    ];
    let r = env.token_form(&form).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "invalid_grant");
    assert_eq!(env.token_form(&form).await.status, 200);

    env.dbx.inject(Endpoint::GetMetadata, Fault::ExpiredToken, 1);
    env.dbx.add_file(&env.acct, "/a.txt", Content::text("a"));
    let r = env.rpc("files/get_metadata", Some(json!({"path": "/a.txt"}))).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["error"][".tag"], "expired_access_token");
    assert_eq!(env.rpc("files/get_metadata", Some(json!({"path": "/a.txt"}))).await.status, 200);
}

#[tokio::test]
async fn latency_delays_then_answers_normally() {
    let env = env().await;
    env.dbx.inject(Endpoint::GetCurrentAccount, Fault::Latency(Duration::from_millis(300)), 1);
    let t = Instant::now();
    let r = env.rpc("users/get_current_account", None).await;
    assert_eq!(r.status, 200);
    assert!(t.elapsed() >= Duration::from_millis(300));
}

#[tokio::test]
async fn body_faults_also_apply_to_json_routes_and_counters_reset() {
    let env = env().await;
    env.dbx.inject(Endpoint::ListFolder, Fault::ShortChunked, 1);
    let r = env.rpc("files/list_folder", Some(json!({"path": ""}))).await;
    assert_eq!(r.status, 200);
    assert!(serde_json::from_slice::<serde_json::Value>(&r.body).is_err(), "half a JSON document");
    assert_eq!(env.dbx.calls(Endpoint::ListFolder), 1);

    let t0 = env.clock.now();
    env.clock.advance(Duration::from_secs(5));
    env.dbx.reset_counters();
    assert_eq!(env.dbx.calls(Endpoint::ListFolder), 0);
    env.rpc("files/list_folder", Some(json!({"path": "/missing"}))).await;
    let log = env.dbx.call_log();
    assert_eq!(log.len(), 1);
    assert_eq!(log[0].endpoint, Endpoint::ListFolder);
    assert_eq!(log[0].status, 409);
    assert_eq!(log[0].at, t0 + Duration::from_secs(5), "call log uses the time source");
}
