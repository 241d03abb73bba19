//! Local mode end to end: the demo's checks, and progress visible through the API mid-run.

use std::time::Duration;

use extconn_local::{LocalSystem, Options};
use extconn_sandbox::dropbox::{Content, Endpoint, Fault};
use serde_json::{Value, json};

async fn start() -> (LocalSystem, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let system = LocalSystem::start(Options {
        port: 0,
        data_dir: dir.path().to_owned(),
        workers: 2,
        tick_every: None,
        sync_interval_secs: None,
        dam_origins: Vec::new(),
        providers: Default::default(),
    })
    .await
    .expect("local system starts");
    (system, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_passes_its_own_checks() {
    let (system, _dir) = start().await;
    system.demo().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_is_visible_through_the_api_mid_run() {
    let (s, _dir) = start().await;
    let folder = s.dbx.add_folder(&s.account, "/Big Shoot");
    for i in 0..60 {
        s.dbx.add_file(&s.account, &format!("/Big Shoot/img-{i:03}.jpg"), Content::generated(10_000, i));
    }
    s.dbx.inject(Endpoint::Download, Fault::Latency(Duration::from_millis(25)), 60);
    s.dbx.set_auto_approve(true);

    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let api = |p: &str| format!("{}{p}", s.api_url);
    let start = http
        .post(api("/v1/connections/authorize"))
        .bearer_auth(&s.tokens.admin)
        .json(&json!({"provider": "dropbox"}))
        .send()
        .await
        .unwrap();
    let cookie = start.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_owned();
    let url = start.json::<Value>().await.unwrap()["authorization_url"].as_str().unwrap().to_owned();
    let consent = http.get(url).send().await.unwrap();
    let callback = consent.headers()["location"].to_str().unwrap().to_owned();
    let cb = http.get(callback).header("cookie", cookie).send().await.unwrap();
    assert_eq!(cb.status().as_u16(), 303);
    let grant = cb.headers()["location"].to_str().unwrap().split("grant_id=").nth(1).unwrap().to_owned();
    let created: Value = http
        .post(api("/v1/connections"))
        .bearer_auth(&s.tokens.admin)
        .json(&json!({"grant_id": grant, "folder_id": folder.id, "auto_sync": true}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();

    let mut seen_mid_run = false;
    for _ in 0..400 {
        let d: Value = http
            .get(api(&format!("/v1/connections/{id}")))
            .bearer_auth(&s.tokens.admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let files = d["counters"]["files"].as_u64().unwrap();
        if files > 0 && files < 60 {
            assert_eq!(d["status"], "syncing", "a held lease shows as syncing");
            seen_mid_run = true;
        }
        if files == 60 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen_mid_run, "the API showed 0 < imported < total during the run");
}

/// Local mode's console holds dev tokens (its "signed in as" switch), so the server answers
/// only requests addressed to it: a page of another site whose name resolves to 127.0.0.1 (DNS
/// rebinding) gets 421, never the tokens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_requests_for_this_host_are_answered() {
    let (s, _dir) = start().await;
    let port = s.api_url.rsplit(':').next().unwrap().to_owned();
    let http = reqwest::Client::new();
    let get = |host: String| {
        let r = http.get(format!("{}/console/config.json", s.api_url)).header("Host", host);
        async move {
            let resp = r.send().await.unwrap();
            (resp.status().as_u16(), resp.text().await.unwrap())
        }
    };
    let (status, body) = get(format!("127.0.0.1:{port}")).await;
    assert_eq!(status, 200, "{body}");
    let config: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(config["mode"], "local");
    let users: Vec<&str> =
        config["users"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap()).collect();
    assert_eq!(users, ["ana", "vic", "eve"]);
    assert_eq!(config["users"][0]["token"], s.tokens.admin.as_str());
    assert_eq!(get(format!("localhost:{port}")).await.0, 200);
    for host in [
        format!("evil.example:{port}"),
        "127.0.0.1".into(),
        format!("127.0.0.1.evil.example:{port}"),
        String::new(),
    ] {
        let (status, body) = get(host.clone()).await;
        assert_eq!(status, 421, "{host}: {body}");
        assert!(body.contains("wrong-host") && !body.contains(s.tokens.admin.as_str()), "{body}");
    }
}
