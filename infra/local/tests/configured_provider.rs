// Test harness code: a failed step (or a poisoned output buffer) is meant to panic the test.
#![allow(clippy::unwrap_used)]

//! Local mode talking to a provider app configured in its environment instead of its built-in
//! sandbox: the real `extconn-local serve` binary, with `EXTCONN_DROPBOX_*` pointing at a second
//! Dropbox server on loopback (a sandbox started by this test, standing in for dropbox.com),
//! connects a folder through the public API and imports it.
//!
//! Bounded in time, loopback only; the child is killed on every path (its guard's `Drop`).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use extconn_sandbox::dropbox::{Content, Endpoint};
use extconn_sandbox::{OAuthClient, Sandbox, SandboxConfig, Service};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

const CLIENT_ID: &str = "outside-app-key";
const FOLDER: &str = "/Outside Folder";

/// The `serve` child process: killed and reaped when dropped (test end, panic or timeout).
struct Serve {
    child: Child,
    /// Everything it printed, stdout and stderr.
    output: Arc<Mutex<String>>,
    stdout_lines: mpsc::UnboundedReceiver<String>,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Serve {
    fn spawn(port: u16, data_dir: &Path, env: &[(&str, String)]) -> Serve {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_extconn-local"));
        cmd.args(["serve", "--port", &port.to_string(), "--data-dir"])
            .arg(data_dir)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Whatever the developer's shell holds, only this test's settings count.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("EXTCONN_DROPBOX_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn extconn-local serve");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, stdout_lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let out = output.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                out.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let mut stderr = child.stderr.take().expect("piped stderr");
        let err = output.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stderr.read(&mut buf) {
                err.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Serve { child, output, stdout_lines }
    }

    /// The exit status, if it exits within `limit`.
    async fn exit_within(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// The rest of the first stdout line starting with `prefix` (after trimming).
    async fn line_after(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.stdout_lines.recv()).await {
                Ok(Some(line)) => {
                    if let Some(rest) = line.trim().strip_prefix(prefix) {
                        return rest.trim().to_owned();
                    }
                }
                Ok(None) => panic!("serve exited before printing {prefix:?}:\n{}", self.output()),
                Err(_) => panic!("serve did not print {prefix:?} within 60 s:\n{}", self.output()),
            }
        }
    }
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("addr").port()
}

fn sha256_file(p: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_connects_a_folder_at_the_dropbox_app_configured_in_its_environment() {
    // The serve port is chosen up front: the outside app must allow its callback exactly.
    let port = free_port();
    let api = format!("http://127.0.0.1:{port}");
    let redirect_uri = format!("{api}/v1/oauth/dropbox/callback");
    let client_secret = format!("CANARY-outside-secret-{port}");

    // "Dropbox": a second sandbox, with the app registered and a folder to connect.
    let outside = Sandbox::start(SandboxConfig {
        clients: vec![OAuthClient {
            service: Service::Dropbox,
            client_id: CLIENT_ID.into(),
            client_secret: client_secret.clone(),
            redirect_uris: vec![redirect_uri.clone()],
        }],
        ..Default::default()
    })
    .await;
    let dbx = outside.dropbox();
    let acct = dbx.create_account("Olga Outside", "olga@example.com");
    let folder = dbx.add_folder(&acct, FOLDER);
    dbx.add_file(&acct, &format!("{FOLDER}/readme.txt"), Content::text("configured, not sandboxed\n"));
    dbx.add_file(&acct, &format!("{FOLDER}/photos/one.jpg"), Content::generated(200_000, 1));
    // More than one 4 MiB content-hash block.
    dbx.add_file(&acct, &format!("{FOLDER}/photos/two.jpg"), Content::generated(4 * 1024 * 1024 + 17, 2));
    dbx.add_file(&acct, "/Elsewhere/not-connected.txt", Content::text("outside the folder\n"));
    dbx.set_login_account(&acct);
    dbx.set_auto_approve(true);
    let urls = dbx.urls();

    let data = tempfile::tempdir().expect("tempdir");
    let mut serve = Serve::spawn(
        port,
        data.path(),
        &[
            ("EXTCONN_DROPBOX_CLIENT_ID", CLIENT_ID.into()),
            ("EXTCONN_DROPBOX_CLIENT_SECRET", client_secret.clone()),
            ("EXTCONN_DROPBOX_AUTHORIZE_BASE", urls.www_base.clone()),
            ("EXTCONN_DROPBOX_API_BASE", urls.api_base.clone()),
            ("EXTCONN_DROPBOX_CONTENT_BASE", urls.content_base.clone()),
        ],
    );
    let flow = async {
        // The banner says where Dropbox traffic goes, and which redirect URI to allow.
        let builtin = serve.line_after("Sandbox").await;
        let builtin = builtin.split_whitespace().next().expect("built-in sandbox URL").to_owned();
        let dropbox = serve.line_after("dropbox").await;
        assert!(dropbox.contains(&format!("client id {CLIENT_ID}, NOT the sandbox")), "{dropbox}");
        assert_eq!(
            serve.line_after("EXTCONN_DROPBOX_AUTHORIZE_BASE =").await,
            urls.www_base,
            "the configured base, as given"
        );
        serve.line_after("EXTCONN_DROPBOX_API_BASE =").await;
        serve.line_after("EXTCONN_DROPBOX_CONTENT_BASE =").await;
        assert_eq!(serve.line_after("redirect URI the app must allow:").await, redirect_uri);
        let admin = serve.line_after("Ana, admin of acme:").await;

        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()
            .expect("client");
        let get = |path: &str| http.get(format!("{api}{path}")).bearer_auth(&admin);
        let post =
            |path: &str, body: Value| http.post(format!("{api}{path}")).bearer_auth(&admin).json(&body);

        // The provider list: Dropbox configured.
        let providers: Value = get("/v1/providers").send().await.unwrap().json().await.unwrap();
        let listed = providers["providers"].as_array().unwrap().iter().find(|p| p["provider"] == "dropbox");
        assert_eq!(listed.map(|p| &p["configured"]), Some(&json!(true)), "{providers}");

        // Authorize: the URL is the outside app's consent page; the state is bound to this
        // browser by a cookie, which the callback must carry.
        let start = post("/v1/connections/authorize", json!({"provider": "dropbox"})).send().await.unwrap();
        assert_eq!(start.status().as_u16(), 200);
        let cookie = start.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
        let auth_url = start.json::<Value>().await.unwrap()["authorization_url"].as_str().unwrap().to_owned();
        assert!(auth_url.starts_with(&urls.authorize_url()), "{auth_url}");

        let consent = http.get(&auth_url).send().await.unwrap();
        assert_eq!(consent.status().as_u16(), 302, "the outside app approves and redirects back");
        let callback = consent.headers()["location"].to_str().unwrap().to_owned();
        assert!(callback.starts_with(&format!("{redirect_uri}?")), "{callback}");
        let cb = http.get(&callback).header("cookie", &cookie).send().await.unwrap();
        assert_eq!(cb.status().as_u16(), 303, "{}", cb.text().await.unwrap_or_default());
        let picker = cb.headers()["location"].to_str().unwrap().to_owned();
        let grant = picker.split("grant_id=").nth(1).expect("grant id").to_owned();

        // The folder picker lists the outside account's folders.
        let folders: Value =
            get(&format!("/v1/grants/{grant}/folders")).send().await.unwrap().json().await.unwrap();
        let offered = folders["items"].as_array().unwrap().iter().find(|f| f["path"] == FOLDER).cloned();
        assert_eq!(offered.as_ref().and_then(|f| f["id"].as_str()), Some(folder.id.as_str()), "{folders}");

        let created =
            post("/v1/connections", json!({"grant_id": grant, "folder_id": folder.id, "auto_sync": false}))
                .send()
                .await
                .unwrap();
        assert_eq!(created.status().as_u16(), 201);
        let created: Value = created.json().await.unwrap();
        let id = created["id"].as_str().unwrap().to_owned();
        let run = created["current_run_id"].as_str().expect("the initial import is queued").to_owned();

        // The initial import, bounded.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let d: Value = get(&format!("/v1/connections/{id}")).send().await.unwrap().json().await.unwrap();
            let status = d["recent_runs"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["id"] == run.as_str())
                .and_then(|r| r["status"].as_str())
                .unwrap_or("queued")
                .to_owned();
            match status.as_str() {
                "succeeded" => break,
                "partial" | "failed" | "reauth_required" | "needs_review" => {
                    panic!("the initial import ended {status}: {d}")
                }
                _ => {}
            }
            assert!(Instant::now() < deadline, "the initial import did not finish in 60 s: {d}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // Every file of the folder (and nothing else) is imported, its asset equal to the source,
        // findable by source path under the data folder.
        let page: Value =
            get(&format!("/v1/connections/{id}/items?limit=200")).send().await.unwrap().json().await.unwrap();
        let items: Vec<&Value> =
            page["items"].as_array().unwrap().iter().filter(|i| i["is_folder"] == false).collect();
        let sources = dbx.list_files(&acct, FOLDER);
        assert_eq!(sources.len(), 3);
        assert_eq!(items.len(), sources.len(), "only the folder's files (not /Elsewhere's): {page}");
        for f in &sources {
            let item = items
                .iter()
                .find(|i| i["id"] == f.id.as_str())
                .unwrap_or_else(|| panic!("{} missing", f.path_display));
            assert_eq!(item["state"], "imported", "{item}");
            let stored = sha256_file(&data.path().join("objects").join(item["asset_key"].as_str().unwrap()));
            assert_eq!(stored, dbx.sha256_of(&acct, &f.id), "{}", f.path_display);
            let by_path =
                data.path().join("index/acme").join(&id).join(f.path_display.trim_start_matches('/'));
            assert_eq!(sha256_file(&by_path), stored, "{}", f.path_display);
        }

        // The calls went to the configured server...
        for endpoint in
            [Endpoint::Authorize, Endpoint::Token, Endpoint::GetCurrentAccount, Endpoint::ListFolder]
        {
            assert!(dbx.calls(endpoint) >= 1, "no {endpoint:?} call reached the configured server");
        }
        assert_eq!(dbx.calls(Endpoint::Download), 3, "one download per file, at the configured server");
        // ...and none to serve's built-in sandbox.
        let builtin_calls: Value = http
            .post(format!("{builtin}/_control/dropbox/call_log"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(builtin_calls, json!([]), "the built-in sandbox was called");
    };
    if tokio::time::timeout(Duration::from_secs(180), flow).await.is_err() {
        panic!("the flow did not finish in 180 s:\n{}", serve.output());
    }

    // Nothing the outside server issued or saw (the app secret, codes, tokens, verifiers)
    // appears in what serve printed.
    let printed = serve.output();
    for canary in outside.canaries() {
        assert!(!printed.contains(&canary), "serve printed a secret:\n{printed}");
    }
    assert!(outside.canaries().contains(&client_secret), "the canary list covers the app secret");
    drop(serve);
    outside.shutdown();
}

/// Only an app key and secret: the real Dropbox hosts, over https. Nothing here reaches the
/// internet; it shows that the binary accepts https bases (it is built with TLS: without it the
/// registry refuses them at startup) and that the authorization URL is Dropbox's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_defaults_to_the_real_dropbox_hosts_over_tls() {
    let port = free_port();
    let data = tempfile::tempdir().expect("tempdir");
    let mut serve = Serve::spawn(
        port,
        data.path(),
        &[
            ("EXTCONN_DROPBOX_CLIENT_ID", CLIENT_ID.into()),
            ("EXTCONN_DROPBOX_CLIENT_SECRET", "CANARY-real-app-secret".into()),
        ],
    );
    let flow = async {
        for (var, default) in [
            ("EXTCONN_DROPBOX_AUTHORIZE_BASE", "https://www.dropbox.com"),
            ("EXTCONN_DROPBOX_API_BASE", "https://api.dropboxapi.com"),
            ("EXTCONN_DROPBOX_CONTENT_BASE", "https://content.dropboxapi.com"),
        ] {
            assert_eq!(serve.line_after(&format!("{var} =")).await, default);
        }
        let admin = serve.line_after("Ana, admin of acme:").await;
        let start: Value = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{port}/v1/connections/authorize"))
            .bearer_auth(&admin)
            .json(&json!({"provider": "dropbox"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let url = start["authorization_url"].as_str().unwrap_or_default();
        assert!(url.starts_with("https://www.dropbox.com/oauth2/authorize?"), "{start}");
        let redirect =
            format!("redirect_uri=http%3A%2F%2F127.0.0.1%3A{port}%2Fv1%2Foauth%2Fdropbox%2Fcallback");
        assert!(url.contains(&redirect), "{url}");
    };
    if tokio::time::timeout(Duration::from_secs(60), flow).await.is_err() {
        panic!("no answer in 60 s:\n{}", serve.output());
    }
    assert!(!serve.output().contains("CANARY-real-app-secret"), "{}", serve.output());
}

/// An app key without its secret stops `serve` at startup, naming the missing variable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_refuses_a_half_configured_provider_naming_the_variable() {
    let data = tempfile::tempdir().expect("tempdir");
    let mut serve =
        Serve::spawn(free_port(), data.path(), &[("EXTCONN_DROPBOX_CLIENT_ID", CLIENT_ID.into())]);
    let status = serve.exit_within(Duration::from_secs(30)).await.expect("serve exits");
    assert!(!status.success());
    // The reader threads may still be draining the pipes.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !serve.output().contains("EXTCONN_DROPBOX_CLIENT_SECRET") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        serve.output().contains(
            "EXTCONN_DROPBOX_CLIENT_SECRET (or EXTCONN_DROPBOX_CLIENT_SECRET_ID) is not set, but \
             EXTCONN_DROPBOX_CLIENT_ID is"
        ),
        "{}",
        serve.output()
    );
}
