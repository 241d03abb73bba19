//! A 64 MiB generated file downloads with constant memory and the advertised
//! content_hash. Its own test binary, so no other test allocates concurrently and the
//! resident-set measurement means something.

use extconn_sandbox::{Content, DropboxContentHasher, Sandbox, SandboxConfig};
use futures::StreamExt;

const SIZE: u64 = 64 * 1024 * 1024;

/// Resident set size in bytes (Linux `/proc/self/status`), if available.
fn rss() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[tokio::test]
async fn generated_64_mib_file_streams_with_constant_memory_and_right_hash() {
    let sandbox = Sandbox::start(SandboxConfig::default()).await;
    let dbx = sandbox.dropbox();
    let acct = dbx.create_account("Mem Test", "mem@example.com");
    let (token, _) = dbx.mint_tokens(&acct, "any-client");
    let info = dbx.add_file(&acct, "/big.bin", Content::generated(SIZE, 1234));
    let expected_hash = info.content_hash.clone().expect("hash");
    let expected_sha = dbx.sha256_of(&acct, &info.id);

    let http = reqwest::Client::new();
    let baseline = rss();
    let resp = http
        .post(format!("{}/2/files/download", dbx.urls().content_base))
        .bearer_auth(&token)
        .header("Dropbox-API-Arg", format!("{{\"path\":\"{}\"}}", info.id))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.content_length(), Some(SIZE));
    let mut hasher = DropboxContentHasher::new();
    let mut sha = <sha2::Sha256 as sha2::Digest>::new();
    let mut total = 0u64;
    let mut peak = baseline;
    let mut stream = resp.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        hasher.update(&chunk);
        sha2::Digest::update(&mut sha, &chunk);
        total += chunk.len() as u64;
        if total % (4 * 1024 * 1024) < chunk.len() as u64 {
            peak = peak.max(rss());
        }
    }
    assert_eq!(total, SIZE);
    assert_eq!(hasher.finish_hex(), expected_hash);
    assert_eq!(hex::encode(sha2::Digest::finalize(sha)), expected_sha);
    if let (Some(b), Some(p)) = (baseline, peak) {
        let growth = p.saturating_sub(b);
        assert!(
            growth < 24 * 1024 * 1024,
            "RSS grew by {} MiB while streaming 64 MiB",
            growth / (1024 * 1024)
        );
    }
}
