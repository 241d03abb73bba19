//! End-to-end tests of the Graph emulator over plain HTTP, as a connector sees it.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use serde_json::Value;

use super::{Endpoint, SharePointControl, SharePointUrls, quick_xor_hash};
use crate::{Content, Fault, ManualClock, OAuthClient, Op, Sandbox, SandboxConfig, Service};

const CLIENT_ID: &str = "11111111-2222-3333-4444-555555555555";
const CLIENT_SECRET: &str = "CANARY-msal-secret";
const REDIRECT: &str = "http://localhost:8765/callback";

struct Env {
    sandbox: Sandbox,
    sp: SharePointControl,
    urls: SharePointUrls,
    clock: ManualClock,
    http: reqwest::Client,
    acct: String,
    drive: String,
    root: String,
    token: String,
}

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!("not JSON ({e}): {} {}", self.status, String::from_utf8_lossy(&self.body)),
        }
    }

    fn code(&self) -> String {
        self.json()["error"]["code"].as_str().unwrap_or_default().to_string()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
    }
}

async fn reply(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    Reply { status, headers, body }
}

async fn env() -> Env {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + Duration::from_secs(1_780_000_000));
    let sandbox = Sandbox::start(SandboxConfig {
        clients: vec![OAuthClient {
            service: Service::Sharepoint,
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: vec![REDIRECT.into()],
        }],
        now: Some(clock.source()),
        ..SandboxConfig::default()
    })
    .await;
    let sp = sandbox.sharepoint();
    let acct = sp.create_account("Ada Lovelace", "ada@contoso.onmicrosoft.com");
    let root = sp.root(&acct).expect("root");
    let drive = sp.user_drive(&acct).expect("drive");
    let token = sp.mint_tokens(&acct, CLIENT_ID).expect("tokens").access_token;
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    Env { urls: sp.urls(), sandbox, sp, clock, http, acct, drive, root, token }
}

impl Env {
    /// `GET {graph_base}/v1.0/{path}` with the bearer.
    async fn get(&self, path: &str) -> Reply {
        self.get_url(&format!("{}/v1.0/{path}", self.urls.graph_base)).await
    }

    async fn get_url(&self, url: &str) -> Reply {
        reply(self.http.get(url).bearer_auth(&self.token).send().await.expect("send")).await
    }

    fn folder(&self, parent: &str, name: &str) -> String {
        self.sp.add_folder(&self.acct, parent, name).expect("folder").id
    }

    fn file(&self, parent: &str, name: &str, text: &str) -> String {
        self.sp.add_file(&self.acct, parent, name, Content::text(text)).expect("file").id
    }

    /// Follows a delta feed from `url` to its deltaLink; returns the items, the deltaLink
    /// and the number of pages. Every page must end with exactly one of the links.
    async fn delta_from(&self, url: &str) -> (Vec<Value>, String, usize) {
        let mut url = url.to_string();
        let mut items = Vec::new();
        let mut pages = 0;
        loop {
            let r = self.get_url(&url).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let v = r.json();
            pages += 1;
            items.extend(v["value"].as_array().cloned().unwrap_or_default());
            match (v["@odata.nextLink"].as_str(), v["@odata.deltaLink"].as_str()) {
                (Some(n), None) => url = n.to_string(),
                (None, Some(d)) => return (items, d.to_string(), pages),
                other => panic!("a delta page has exactly one link: {other:?}"),
            }
        }
    }

    async fn latest(&self) -> String {
        let r = self.get(&format!("drives/{}/root/delta?token=latest", self.drive)).await;
        assert_eq!(r.status, 200);
        let v = r.json();
        assert_eq!(v["value"], serde_json::json!([]));
        assert!(v.get("@odata.nextLink").is_none());
        v["@odata.deltaLink"].as_str().expect("deltaLink").to_string()
    }

    async fn token_request(&self, form: &[(&str, &str)]) -> Reply {
        let url = self.urls.token_url("organizations");
        reply(self.http.post(url).form(form).send().await.expect("send")).await
    }
}

/// A PKCE verifier and its S256 challenge.
fn pkce_pair() -> (String, String) {
    use sha2::Digest as _;
    let verifier = "sandbox-verifier-0123456789-abcdefghijklmnopqrstuvwxyz".to_string();
    let challenge =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn names(items: &[Value]) -> Vec<String> {
    items.iter().map(|i| i["name"].as_str().unwrap_or("<none>").to_string()).collect()
}

#[tokio::test]
async fn identity_sites_and_drives() {
    let e = env().await;
    let me = e.get("me").await.json();
    assert_eq!(me["id"], e.acct.as_str());
    assert_eq!(me["userPrincipalName"], "ada@contoso.onmicrosoft.com");
    assert_eq!(me["displayName"], "Ada Lovelace");
    let d = e.get("me/drive").await.json();
    assert_eq!((d["id"].as_str(), d["driveType"].as_str()), (Some(e.drive.as_str()), Some("business")));
    assert!(e.drive.starts_with("b!"));

    let site = e.sp.add_site("Marketing");
    e.sp.add_site("Engineering");
    let lib = e.sp.add_library(&site.id, "Campaigns").expect("library");
    assert!(site.id.starts_with("contoso.sharepoint.com,"));
    let found = e.get("sites?search=market").await.json();
    assert_eq!(found["value"].as_array().map(Vec::len), Some(1));
    assert_eq!(found["value"][0]["displayName"], "Marketing");
    assert_eq!(e.get("sites?search=*").await.json()["value"].as_array().map(Vec::len), Some(2));
    assert_eq!(e.get(&format!("sites/{}", site.id)).await.json()["name"], "Marketing");
    let drives = e.get(&format!("sites/{}/drives", site.id)).await.json();
    let libs: Vec<(&str, &str)> = drives["value"]
        .as_array()
        .expect("drives")
        .iter()
        .map(|d| (d["name"].as_str().unwrap_or_default(), d["driveType"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(libs, [("Documents", "documentLibrary"), ("Campaigns", "documentLibrary")]);
    let root = e.get(&format!("drives/{}/root", lib.drive_id)).await.json();
    assert_eq!(root["id"], lib.root_id.as_str());
    assert!(root.get("root").is_some());

    // Another user's OneDrive is not readable; a site's library is.
    let bob = e.sp.create_account("Bob", "bob@contoso.onmicrosoft.com");
    let bob_token = e.sp.mint_tokens(&bob, CLIENT_ID).expect("tokens").access_token;
    let url = format!("{}/v1.0/drives/{}", e.urls.graph_base, e.drive);
    let r = reply(e.http.get(&url).bearer_auth(&bob_token).send().await.expect("send")).await;
    assert_eq!((r.status, r.code()), (403, "accessDenied".to_string()));
    let url = format!("{}/v1.0/drives/{}/root/children", e.urls.graph_base, lib.drive_id);
    let r = reply(e.http.get(&url).bearer_auth(&bob_token).send().await.expect("send")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn items_children_paging_select_and_errors() {
    let e = env().await;
    let docs = e.folder(&e.root, "Docs");
    let sub = e.folder(&docs, "Sub");
    for i in 0..5 {
        e.file(&docs, &format!("f{i}.txt"), &format!("content {i}"));
    }
    let hello = e.file(&sub, "hello.txt", "hello world");
    let item = e.get(&format!("drives/{}/items/{hello}", e.drive)).await.json();
    assert_eq!(item["size"], 11);
    assert_eq!(item["file"]["hashes"]["quickXorHash"], "aCgDG9jwBhDc4Q1yawMZAAAAAAA=");
    assert_eq!(item["parentReference"]["path"], format!("/drives/{}/root:/Docs/Sub", e.drive));
    assert_eq!(item["parentReference"]["id"], sub.as_str());
    assert_eq!(item["parentReference"]["driveType"], "business");
    assert!(item["eTag"].as_str().is_some_and(|t| t.starts_with("\"{")));
    assert!(item["cTag"].as_str().is_some_and(|t| t.starts_with("\"c:{")));

    // Children: 6 entries in pages of 4, `$select` honoured, absolute nextLink.
    let mut url = format!(
        "{}/v1.0/drives/{}/items/{docs}/children?$top=4&$select=id,name,size",
        e.urls.graph_base, e.drive
    );
    let mut got = Vec::new();
    let mut pages = 0;
    loop {
        let v = e.get_url(&url).await.json();
        pages += 1;
        for i in v["value"].as_array().expect("value") {
            let keys: Vec<&String> = i.as_object().expect("object").keys().collect();
            assert!(keys.len() <= 3, "{keys:?}");
            got.push(i["name"].as_str().unwrap_or_default().to_string());
        }
        match v["@odata.nextLink"].as_str() {
            Some(n) => {
                assert!(n.starts_with(&e.urls.graph_base), "{n}");
                url = n.to_string();
            }
            None => break,
        }
    }
    assert_eq!(pages, 2);
    assert_eq!(got, ["f0.txt", "f1.txt", "f2.txt", "f3.txt", "f4.txt", "Sub"]);
    let root_kids = e.get("me/drive/root/children").await.json();
    assert_eq!(names(root_kids["value"].as_array().expect("value")), ["Docs"]);
    assert_eq!(root_kids["value"][0]["folder"]["childCount"], 6);

    // Errors.
    let r = e.get(&format!("drives/{}/items/01NOPE", e.drive)).await;
    assert_eq!((r.status, r.code()), (404, "itemNotFound".to_string()));
    assert!(r.json()["error"]["innerError"]["request-id"].is_string());
    let r = reply(
        e.http.get(format!("{}/v1.0/me", e.urls.graph_base)).bearer_auth("bogus").send().await.expect("send"),
    )
    .await;
    assert_eq!((r.status, r.code()), (401, "InvalidAuthenticationToken".to_string()));
    e.sp.expire_access_tokens();
    let r = e.get("me").await;
    assert_eq!((r.status, r.code()), (401, "InvalidAuthenticationToken".to_string()));
    assert!(!String::from_utf8_lossy(&r.body).contains(&e.token));
}

#[tokio::test]
async fn delta_pages_end_with_one_link_and_report_latest_state() {
    let e = env().await;
    let docs = e.folder(&e.root, "Docs");
    for i in 0..5 {
        e.file(&docs, &format!("f{i}.txt"), "x");
    }
    e.sp.set_page_size(3);
    let start = format!("{}/v1.0/drives/{}/root/delta", e.urls.graph_base, e.drive);
    let (items, delta_link, pages) = e.delta_from(&start).await;
    assert_eq!(pages, 3, "7 items in pages of 3");
    assert_eq!(items.len(), 7);
    assert!(items[0].get("root").is_some(), "the root comes first");
    assert!(delta_link.starts_with(&e.urls.graph_base), "{delta_link}");
    for i in &items {
        assert!(i["parentReference"].get("path").is_none(), "no path in delta: {i}");
        assert!(i["size"].is_number());
    }

    // Nothing changed: empty feed.
    let (items, delta_link, _) = e.delta_from(&delta_link).await;
    assert!(items.is_empty(), "{items:?}");

    // Rename a folder: only the folder (and its ancestors) are reported, not its subtree.
    e.sp.rename(&e.acct, &docs, "Documents").expect("rename");
    let f0 = e.file(&e.root, "new.txt", "new");
    e.sp.modify_file(&e.acct, &f0, Content::text("newer")).expect("modify");
    let (items, delta_link, _) = e.delta_from(&delta_link).await;
    let ids: Vec<&str> = items.iter().filter_map(|i| i["id"].as_str()).collect();
    assert_eq!(ids, [e.root.as_str(), docs.as_str(), f0.as_str()], "{items:?}");
    assert_eq!(items[1]["name"], "Documents");
    assert_eq!(items[2]["size"], 5, "the latest state");

    // `Prefer: deltaExcludeParent` leaves the ancestors out; `/me/drive` and `$select` work.
    let deep = e.file(&docs, "deep.txt", "x");
    let url = format!("{delta_link}&$select=id,name");
    let r = reply(
        e.http
            .get(&url)
            .bearer_auth(&e.token)
            .header("Prefer", "deltaExcludeParent")
            .send()
            .await
            .expect("send"),
    )
    .await;
    let v = r.json();
    let only: Vec<&Value> = v["value"].as_array().expect("value").iter().collect();
    assert_eq!(only.len(), 1, "{v}");
    assert_eq!(only[0]["id"], deep.as_str());
    assert_eq!(only[0].as_object().map(|o| o.len()), Some(2), "$select: {v}");
    let r = e.get("me/drive/root/delta?token=latest").await;
    assert!(
        r.json()["@odata.deltaLink"].as_str().is_some_and(|l| l.contains(&format!("/drives/{}/", e.drive)))
    );

    // `token=latest` skips history.
    e.file(&docs, "skipped.txt", "x");
    let latest = e.latest().await;
    let (items, _, _) = e.delta_from(&latest).await;
    assert!(items.is_empty());
    let _ = delta_link;
}

#[tokio::test]
async fn deleted_items_carry_no_name_and_non_root_delta_is_501() {
    let e = env().await;
    let docs = e.folder(&e.root, "Docs");
    let f = e.file(&docs, "a.txt", "a");
    let latest = e.latest().await;
    e.sp.delete(&e.acct, &docs).expect("delete");
    let (items, _, _) = e.delta_from(&latest).await;
    let gone: Vec<&Value> = items.iter().filter(|i| i.get("deleted").is_some()).collect();
    assert_eq!(gone.len(), 2, "{items:?}");
    assert_eq!(gone[0]["id"], docs.as_str());
    assert_eq!(gone[1]["id"], f.as_str());
    for g in gone {
        assert_eq!(g["deleted"]["state"], "deleted");
        assert!(g.get("name").is_none() && g.get("cTag").is_none() && g.get("size").is_none(), "{g}");
        assert!(g["parentReference"]["id"].is_string());
        assert_eq!(g["parentReference"]["driveId"], e.drive.as_str());
    }

    let sub = e.folder(&e.root, "Sub");
    let r = e.get(&format!("drives/{}/items/{sub}/delta", e.drive)).await;
    assert_eq!((r.status, r.code()), (501, "notSupported".to_string()));
    assert_eq!(r.json()["error"]["message"], "view.delta can only be called on the root.");
    let r = e.get(&format!("drives/{}/items/{}/delta", e.drive, e.root)).await;
    assert_eq!(r.status, 200, "delta on the root item by id is fine");
}

#[tokio::test]
async fn expired_tokens_get_410_with_a_location_that_re_enumerates() {
    let e = env().await;
    let docs = e.folder(&e.root, "Docs");
    e.file(&docs, "a.txt", "a");
    e.sp.set_page_size(2);
    let start = format!("{}/v1.0/drives/{}/root/delta", e.urls.graph_base, e.drive);
    let first = e.get_url(&start).await.json();
    let next = first["@odata.nextLink"].as_str().expect("nextLink").to_string();
    let latest = e.latest().await;
    e.sp.expire_delta_tokens();
    for url in [&latest, &next] {
        let r = e.get_url(url).await;
        assert_eq!((r.status, r.code()), (410, "resyncChangesApplyDifferences".to_string()));
        let location = r.header("location").expect("Location");
        assert!(location.starts_with(&e.urls.graph_base), "{location}");
        let (items, _, _) = e.delta_from(&location).await;
        assert_eq!(names(&items), ["root", "Docs", "a.txt"]);
    }
    let r = e.get(&format!("drives/{}/root/delta?token=garbage", e.drive)).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn duplicate_items_show_an_earlier_state_first() {
    let e = env().await;
    let f = e.file(&e.root, "a.txt", "a");
    let latest = e.latest().await;
    e.sp.set_duplicate_items(true);
    e.sp.rename(&e.acct, &f, "b.txt").expect("rename");
    e.sp.rename(&e.acct, &f, "c.txt").expect("rename");
    let (items, _, _) = e.delta_from(&latest).await;
    let of_f: Vec<&str> =
        items.iter().filter(|i| i["id"] == f.as_str()).filter_map(|i| i["name"].as_str()).collect();
    assert_eq!(of_f, ["b.txt", "c.txt"], "{items:?}");
}

#[tokio::test]
async fn content_redirects_to_an_unauthenticated_ranged_download_that_expires() {
    let e = env().await;
    let f = e.file(&e.root, "hello.txt", "hello world");
    let folder = e.folder(&e.root, "Docs");
    let r = e.get(&format!("drives/{}/items/{f}/content", e.drive)).await;
    assert_eq!(r.status, 302);
    let location = r.header("location").expect("Location");
    assert!(location.starts_with(&e.urls.download_base) && location.contains("tempauth="), "{location}");
    assert!(e.sp.canaries().iter().any(|c| location.contains(c.as_str())), "tempauth is a canary");

    let full = reply(e.http.get(&location).send().await.expect("send")).await;
    assert_eq!((full.status, full.body.as_slice()), (200, b"hello world".as_slice()));
    let part = reply(e.http.get(&location).header("Range", "bytes=6-").send().await.expect("send")).await;
    assert_eq!((part.status, part.body.as_slice()), (206, b"world".as_slice()));
    assert_eq!(part.header("content-range").as_deref(), Some("bytes 6-10/11"));

    let r = e.get(&format!("drives/{}/items/{folder}/content", e.drive)).await;
    assert_eq!(r.status, 404);

    e.clock.advance(Duration::from_secs(301));
    let late = reply(e.http.get(&location).send().await.expect("send")).await;
    assert_eq!(late.status, 401);
    assert!(!String::from_utf8_lossy(&late.body).contains("CANARY"));
    let tampered = location.replace("tempauth=v1.", "tempauth=v2.");
    let r = e.get(&format!("drives/{}/items/{f}/content", e.drive)).await;
    let fresh = r.header("location").expect("Location");
    assert_eq!(reply(e.http.get(&fresh).send().await.expect("send")).await.status, 200);
    assert_eq!(reply(e.http.get(&tampered).send().await.expect("send")).await.status, 401);
}

#[tokio::test]
async fn office_files_can_be_rewritten_on_download() {
    let e = env().await;
    let f = e.file(&e.root, "Plan.DOCX", "pretend this is a docx");
    e.sp.set_rewrites_office_files(true);
    let listed = e.get(&format!("drives/{}/items/{f}", e.drive)).await.json();
    let loc =
        e.get(&format!("drives/{}/items/{f}/content", e.drive)).await.header("location").expect("Location");
    let body = reply(e.http.get(&loc).send().await.expect("send")).await.body;
    assert_ne!(listed["size"].as_u64(), Some(body.len() as u64));
    assert_ne!(listed["file"]["hashes"]["quickXorHash"].as_str(), Some(quick_xor_hash(&body).as_str()));
}

#[tokio::test]
async fn link_base_override_applies_to_every_link() {
    let e = env().await;
    let f = e.file(&e.root, "a.txt", "a");
    e.file(&e.root, "b.txt", "b");
    e.sp.set_link_base(Some("https://graph.evil.example/".into()));
    e.sp.set_page_size(1);
    let v = e.get(&format!("drives/{}/root/delta", e.drive)).await.json();
    let next = v["@odata.nextLink"].as_str().expect("nextLink");
    assert!(next.starts_with("https://graph.evil.example/sharepoint/graph/v1.0/drives/"), "{next}");
    let v = e.get("me/drive/root/children").await.json();
    assert!(v["@odata.nextLink"].as_str().is_some_and(|n| n.starts_with("https://graph.evil.example/")));
    let loc =
        e.get(&format!("drives/{}/items/{f}/content", e.drive)).await.header("location").expect("Location");
    assert!(loc.starts_with("https://graph.evil.example/sharepoint/download/"), "{loc}");
    e.sp.set_link_base(None);
    let v = e.get(&format!("drives/{}/root/delta", e.drive)).await.json();
    assert!(v["@odata.nextLink"].as_str().is_some_and(|n| n.starts_with(&e.urls.graph_base)));
}

#[tokio::test]
async fn faults_carry_retry_after_and_are_counted() {
    let e = env().await;
    e.sp.inject(Endpoint::Delta, Fault::RateLimit { retry_after_secs: 7 }, 1);
    e.sp.inject(Endpoint::Delta, Fault::ServerError(503), 1);
    let path = format!("drives/{}/root/delta", e.drive);
    let r = e.get(&path).await;
    assert_eq!(
        (r.status, r.code(), r.header("retry-after")),
        (429, "activityLimitReached".into(), Some("7".into()))
    );
    let r = e.get(&path).await;
    assert_eq!((r.status, r.code()), (503, "serviceNotAvailable".to_string()));
    assert!(r.header("retry-after").is_some());
    assert_eq!(e.get(&path).await.status, 200);
    assert_eq!(e.sp.calls(Endpoint::Delta), 3);
    let neutral = e.sandbox.control(Service::Sharepoint);
    assert_eq!(neutral.calls(Op::Changes), 3);
    assert!(neutral.inject(Op::Revoke, Fault::ServerError(500), 1).is_err());
}

#[tokio::test]
async fn refresh_rotates_and_old_refresh_tokens_keep_working() {
    let e = env().await;
    let minted = e.sp.mint_tokens(&e.acct, CLIENT_ID).expect("tokens");
    let env_ref = &e;
    let refresh = |rt: String| async move {
        env_ref
            .token_request(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", rt.as_str()),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("scope", "offline_access Files.Read.All"),
            ])
            .await
    };
    let r = refresh(minted.refresh_token.clone()).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    for k in
        ["token_type", "scope", "expires_in", "ext_expires_in", "access_token", "refresh_token", "id_token"]
    {
        assert!(v.get(k).is_some(), "{k} in {v}");
    }
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3599);
    let rt2 = v["refresh_token"].as_str().expect("rt").to_string();
    assert_ne!(rt2, minted.refresh_token, "every refresh returns a new refresh token");
    let claims = v["id_token"].as_str().and_then(|t| t.split('.').nth(1)).expect("jwt");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(claims).expect("b64"),
    )
    .expect("claims");
    assert_eq!(
        (claims["tid"].as_str(), claims["oid"].as_str()),
        (Some(e.sp.tenant_id().as_str()), Some(e.acct.as_str()))
    );
    // The old one still works, and the new one too.
    assert_eq!(refresh(minted.refresh_token.clone()).await.status, 200);
    assert_eq!(refresh(rt2.clone()).await.status, 200);
    assert!(e.sp.canaries().contains(&rt2));

    // 90 days idle: invalid_grant AADSTS700082.
    e.clock.advance(Duration::from_secs(91 * 24 * 3600));
    let r = refresh(rt2).await;
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["error"], "invalid_grant");
    assert_eq!(v["error_codes"], serde_json::json!([700_082]));
    assert!(v["error_description"].as_str().is_some_and(|d| d.starts_with("AADSTS700082:")));
    for k in ["timestamp", "trace_id", "correlation_id", "error_uri"] {
        assert!(v[k].is_string(), "{k}");
    }
    // A wrong secret.
    let r = e
        .token_request(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "x"),
            ("client_id", CLIENT_ID),
            ("client_secret", "wrong"),
        ])
        .await;
    assert_eq!((r.status, r.json()["error"].as_str()), (401, Some("invalid_client")));
}

#[tokio::test]
async fn code_flow_with_pkce_consent_and_deny() {
    let e = env().await;
    let (verifier, challenge) = pkce_pair();
    let authorize = format!(
        "{}?client_id={CLIENT_ID}&response_type=code&redirect_uri={}&response_mode=query\
         &scope=offline_access%20User.Read%20Files.Read.All%20Sites.Read.All&state=s1\
         &code_challenge={challenge}&code_challenge_method=S256",
        e.urls.authorize_url("organizations"),
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
    );
    let page = reply(e.http.get(&authorize).send().await.expect("send")).await;
    assert_eq!(page.status, 200);
    let html = String::from_utf8_lossy(&page.body).to_string();
    assert!(
        html.contains("id=\"allow\"") && html.contains("id=\"deny\"") && html.contains("Microsoft"),
        "{html}"
    );
    let pending =
        html.split("name=\"pending\" value=\"").nth(1).and_then(|s| s.split('"').next()).expect("pending");
    let action = html.split("action=\"").nth(1).and_then(|s| s.split('"').next()).expect("action");
    let decision = format!("{}{action}", e.sandbox.base_url());

    // Deny first (a second page), then allow.
    let r = reply(
        e.http
            .post(&decision)
            .form(&[("pending", pending), ("decision", "deny")])
            .send()
            .await
            .expect("send"),
    )
    .await;
    let loc = r.header("location").expect("redirect");
    assert!(
        loc.starts_with(REDIRECT) && loc.contains("error=access_denied") && loc.contains("state=s1"),
        "{loc}"
    );

    let page = reply(e.http.get(&authorize).send().await.expect("send")).await;
    let html = String::from_utf8_lossy(&page.body).to_string();
    let pending =
        html.split("name=\"pending\" value=\"").nth(1).and_then(|s| s.split('"').next()).expect("pending");
    let r = reply(
        e.http
            .post(&decision)
            .form(&[("pending", pending), ("decision", "allow")])
            .send()
            .await
            .expect("send"),
    )
    .await;
    let loc = r.header("location").expect("redirect");
    let code = url::Url::parse(&loc)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let bad = e
        .token_request(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", REDIRECT),
            ("client_id", CLIENT_ID),
            ("client_secret", CLIENT_SECRET),
            ("code_verifier", "wrong-verifier-wrong-verifier-wrong-verifier-0000"),
        ])
        .await;
    assert_eq!((bad.status, bad.json()["error"].as_str()), (400, Some("invalid_grant")));

    // A fresh code with the right verifier.
    e.sp.set_auto_approve(true);
    let r = reply(e.http.get(&authorize).send().await.expect("send")).await;
    let loc = r.header("location").expect("redirect");
    let code = url::Url::parse(&loc)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("code");
    let tenant_url = e.urls.token_url(&e.sp.tenant_id());
    let ok = reply(
        e.http
            .post(tenant_url)
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", REDIRECT),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("code_verifier", verifier.as_str()),
            ])
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", String::from_utf8_lossy(&ok.body));
    let v = ok.json();
    assert!(v["refresh_token"].is_string());
    assert_eq!(v["scope"], "Files.Read.All Sites.Read.All User.Read");
    let at = v["access_token"].as_str().expect("at");
    let me = reply(
        e.http.get(format!("{}/v1.0/me", e.urls.graph_base)).bearer_auth(at).send().await.expect("send"),
    )
    .await;
    assert_eq!(me.json()["id"], e.acct.as_str());
    let r = reply(
        e.http
            .post(e.urls.token_url("contoso-unknown"))
            .form(&[("grant_type", "x")])
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn the_neutral_control_and_the_http_control_drive_the_same_state() {
    let e = env().await;
    let ctl = e.sandbox.control(Service::Sharepoint);
    let urls = ctl.urls();
    assert_eq!(urls.get("graph"), Some(&e.urls.graph_base));
    assert_eq!(urls.get("login"), Some(&e.urls.login_base));
    let root = ctl.root(&e.acct).expect("root");
    let a = ctl.add_folder(&e.acct, &root, "A").expect("folder");
    assert!(matches!(ctl.add_folder(&e.acct, &root, "a"), Err(crate::ControlError::Conflict(_))));
    let f = ctl.add_file(&e.acct, &a.id, "x.bin", Content::generated(1000, 3)).expect("file");
    assert_eq!(f.path.as_deref(), Some("/A/x.bin"));
    let b = ctl.add_folder(&e.acct, &root, "B").expect("folder");
    let moved = ctl.move_entry(&e.acct, &f.id, Some(&b.id), Some("y.bin")).expect("move");
    assert_eq!(moved.path.as_deref(), Some("/B/y.bin"));
    assert_eq!(ctl.list_files(&e.acct, &root).expect("files").len(), 1);
    ctl.delete(&e.acct, &b.id).expect("delete");
    assert_eq!(ctl.node(&e.acct, &f.id).expect("node"), None);

    // Seed a site over HTTP, as local mode would.
    let http = reqwest::Client::new();
    let control = format!("{}/_control/sharepoint", e.sandbox.base_url());
    let call = |op: &str, body: Value| {
        let req = http.post(format!("{control}/{op}")).body(body.to_string());
        async move {
            let r = reply(req.send().await.expect("send")).await;
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            r.json()
        }
    };
    let site = call("add_site", serde_json::json!({"display_name": "Marketing"})).await;
    let libs = call("libraries", serde_json::json!({"site_id": site["id"]})).await;
    let lib_root = libs[0]["root_id"].as_str().expect("root").to_string();
    let folder = call(
        "add_folder",
        serde_json::json!({"account_id": e.acct, "parent": lib_root, "name": "Campaign assets"}),
    )
    .await;
    assert_eq!(folder["path"], "/Campaign assets");
    let drive = libs[0]["drive_id"].as_str().expect("drive");
    let kids = e.get(&format!("drives/{drive}/root/children")).await.json();
    assert_eq!(kids["value"][0]["name"], "Campaign assets");
    assert!(kids["value"][0]["parentReference"]["siteId"].is_string());
    call("inject", serde_json::json!({"endpoint": "Me", "fault": {"server_error": 503}})).await;
    assert_eq!(e.get("me").await.status, 503);
}
