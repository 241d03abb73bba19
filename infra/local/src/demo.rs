//! `extconn-local demo`: the full admin flow, headless, over HTTP with the dev admin token,
//! against the sandbox. It prints each step and the management table, checks every outcome
//! itself against the sandbox's own view of the files, and fails on any mismatch.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use extconn_sandbox::Service;
use extconn_sandbox::dropbox::Content;
use extconn_sandbox::google_drive::{Endpoint, office};
use md5::Md5;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::{DOC_MIME, LocalSystem};

const FOLDER: &str = "/Brand Assets";
const DOCX_MIME: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";

struct Http {
    client: reqwest::Client,
    base: String,
    token: String,
    /// The browser-binding cookie of the OAuth flow (a browser keeps it; so do we).
    cookie: Option<String>,
}

struct Reply {
    status: u16,
    location: Option<String>,
    body: Value,
}

impl Http {
    async fn call(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Reply, String> {
        let url = if path.starts_with("http") { path.to_owned() } else { format!("{}{path}", self.base) };
        let mut req = self.client.request(method, &url).bearer_auth(&self.token);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| format!("{path}: {e}"))?;
        if let Some(c) = resp.headers().get("set-cookie").and_then(|v| v.to_str().ok()) {
            self.cookie = c.split(';').next().map(str::to_owned);
        }
        let status = resp.status().as_u16();
        let location = resp.headers().get("location").and_then(|v| v.to_str().ok()).map(str::to_owned);
        let text = resp.text().await.map_err(|e| e.to_string())?;
        Ok(Reply { status, location, body: serde_json::from_str(&text).unwrap_or(Value::Null) })
    }

    async fn expect(
        &mut self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        status: u16,
    ) -> Result<Value, String> {
        let r = self.call(method.clone(), path, body).await?;
        if r.status != status {
            return Err(format!("{method} {path}: expected {status}, got {} {}", r.status, r.body));
        }
        Ok(r.body)
    }
}

fn step(n: &mut u32, what: &str) {
    *n += 1;
    println!("\n[{n}] {what}");
}

fn ok(what: impl AsRef<str>) {
    println!("    ✓ {}", what.as_ref());
}

fn table(rows: &Value) {
    println!(
        "    {:<18} {:<22} {:<12} {:<9} {:<16} {:>5}",
        "Folder Name", "Last Synced", "Synced by", "Auto sync", "Status", "Files"
    );
    let rows = rows["items"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        println!("    (no connections)");
    }
    for c in &rows {
        let last = c["last_synced_at"]
            .as_str()
            .map(|s| s.get(..19).unwrap_or(s).replace('T', " "))
            .unwrap_or_else(|| "—".into());
        println!(
            "    {:<18} {:<22} {:<12} {:<9} {:<16} {:>5}",
            c["folder_name"].as_str().unwrap_or(""),
            last,
            c["synced_by"]["display_name"].as_str().unwrap_or(""),
            if c["auto_sync"] == json!(true) { "ON" } else { "OFF" },
            c["status"].as_str().unwrap_or(""),
            c["counters"]["files"]
        );
    }
}

impl LocalSystem {
    /// Runs the demo; `Err` describes the first mismatch.
    pub async fn demo(&self) -> Result<(), String> {
        let mut http = Http {
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| e.to_string())?,
            base: self.api_url.clone(),
            token: self.tokens.admin.clone(),
            cookie: None,
        };
        let mut n = 0;
        use reqwest::Method as M;

        let grant = self.authorize(&mut http, &mut n, Service::Dropbox).await?;

        step(&mut n, "Folder picker: one level of folders");
        let folders = http.expect(M::GET, &format!("/v1/grants/{grant}/folders"), None, 200).await?;
        let names: Vec<&str> =
            folders["items"].as_array().into_iter().flatten().filter_map(|f| f["name"].as_str()).collect();
        println!("    folders: {}", names.join(", "));
        let folder_id = folders["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["path"] == FOLDER)
            .and_then(|f| f["id"].as_str())
            .ok_or("Brand Assets not offered")?
            .to_owned();

        step(&mut n, &format!("Create the connection on {FOLDER} (initial import)"));
        let created = http
            .expect(
                M::POST,
                "/v1/connections",
                Some(json!({"grant_id": grant, "folder_id": folder_id, "auto_sync": true})),
                201,
            )
            .await?;
        let id = created["id"].as_str().ok_or("no id")?.to_owned();
        let first_run = created["current_run_id"].as_str().unwrap_or_default().to_owned();
        self.wait_run(&mut http, &id, &first_run, self.dropbox_files()).await?;
        self.verify(&mut http, &id, &[]).await?;
        ok("every file's asset matches the source (sha256), findable by source path");
        table(&http.expect(M::GET, "/v1/connections?provider=dropbox", None, 200).await?);

        step(&mut n, "Changes at Dropbox: add, modify, rename, delete");
        let acct = &self.account;
        self.dbx.add_file(acct, &format!("{FOLDER}/Photos/new-shoot.jpg"), Content::generated(345_678, 99));
        self.dbx.modify_file(acct, &format!("{FOLDER}/logo.svg"), Content::text("<svg><!-- v2 --></svg>"));
        let renamed = self.dbx.move_entry(
            acct,
            &format!("{FOLDER}/Photos/hero-2.jpg"),
            &format!("{FOLDER}/Photos/hero-2 (approved).jpg"),
        );
        let deleted = self.dbx.entry(acct, &format!("{FOLDER}/README.txt")).ok_or("README missing")?;
        self.dbx.delete(acct, &format!("{FOLDER}/README.txt"));
        let before = self.items(&mut http, &id).await?;
        println!("    + Photos/new-shoot.jpg   ~ logo.svg   → hero-2.jpg renamed   − README.txt");

        step(&mut n, "Scheduler tick 15 minutes later (Auto sync)");
        let queued = self.tick(chrono::Utc::now() + chrono::Duration::minutes(16)).await;
        if queued != 1 {
            return Err(format!("the tick queued {queued} jobs, expected 1"));
        }
        let run = self.next_run(&mut http, &id, &first_run).await?;
        self.wait_run(&mut http, &id, &run, self.dropbox_files()).await?;
        self.verify(&mut http, &id, &[&deleted.id]).await?;
        let after = self.items(&mut http, &id).await?;
        let key = |items: &BTreeMap<String, Value>, id: &str| {
            items.get(id).and_then(|i| i["asset_key"].as_str()).map(str::to_owned)
        };
        if key(&before, &renamed.id) != key(&after, &renamed.id) {
            return Err("the renamed file got a new asset".into());
        }
        ok("new file imported, modified file re-imported as a new version");
        ok("renamed file: same asset, new path (no re-import)");
        ok("deleted file: source_deleted, its asset kept");

        step(&mut n, "Refresh Items");
        self.dbx.add_file(acct, &format!("{FOLDER}/late-addition.pdf"), Content::generated(77_777, 123));
        let r = http.expect(M::POST, &format!("/v1/connections/{id}/refresh"), None, 202).await?;
        self.wait_run(&mut http, &id, r["run_id"].as_str().unwrap_or_default(), self.dropbox_files()).await?;
        self.verify(&mut http, &id, &[&deleted.id]).await?;
        ok("202 with the run; the late addition is imported");
        table(&http.expect(M::GET, "/v1/connections?provider=dropbox", None, 200).await?);

        step(&mut n, "Toggle Auto sync off, then Refresh Items");
        http.expect(M::PATCH, &format!("/v1/connections/{id}"), Some(json!({"auto_sync": false})), 200)
            .await?;
        let refused = http.expect(M::POST, &format!("/v1/connections/{id}/refresh"), None, 409).await?;
        ok(format!("409 {}", refused["type"].as_str().unwrap_or("")));
        table(&http.expect(M::GET, "/v1/connections?provider=dropbox", None, 200).await?);

        step(&mut n, "Delete the connection");
        let objects = count_files(&self.data_dir.join("objects"));
        http.expect(M::DELETE, &format!("/v1/connections/{id}"), None, 204).await?;
        http.expect(M::GET, &format!("/v1/connections/{id}"), None, 404).await?;
        if count_files(&self.data_dir.join("objects")) != objects {
            return Err("deleting the connection removed assets".into());
        }
        if self.dbx.calls(extconn_sandbox::dropbox::Endpoint::Revoke) != 1 {
            return Err("the grant was not revoked at Dropbox".into());
        }
        ok(format!("deleted; the grant was revoked at Dropbox; the {objects} imported asset files stay"));
        table(&http.expect(M::GET, "/v1/connections?provider=dropbox", None, 200).await?);
        self.google_drive_demo(&mut http, &mut n).await?;
        self.sharepoint_demo(&mut http, &mut n).await?;
        println!(
            "\nAssets: {}/objects   index by source path: {}/index   events: {}/events.jsonl",
            self.data_dir.display(),
            self.data_dir.display(),
            self.data_dir.display()
        );
        Ok(())
    }

    /// ADD CONNECTION up to the folder picker: the authorization URL, consent at the provider
    /// (the sandbox approves for its seeded account), the callback; returns the grant id.
    async fn authorize(&self, http: &mut Http, n: &mut u32, service: Service) -> Result<String, String> {
        use reqwest::Method as M;
        let name = match service {
            Service::Dropbox => "Dropbox",
            Service::GoogleDrive => "Google Drive",
            Service::Sharepoint => "SharePoint",
            other => other.as_str(),
        };
        step(n, &format!("Ana (client admin of acme) starts connecting {name}"));
        let body = json!({"provider": service.as_str()});
        let start = http.expect(M::POST, "/v1/connections/authorize", Some(body), 200).await?;
        let auth_url = start["authorization_url"].as_str().ok_or("no authorization_url")?.to_owned();
        ok("authorization URL at the sandbox's consent page (PKCE S256, offline access)");

        step(n, &format!("Consent at {name} (the sandbox approves for the demo account)"));
        self.sandbox.control(service).set_auto_approve(true);
        let consent = http.call(M::GET, &auth_url, None).await?;
        let callback =
            consent.location.filter(|_| consent.status == 302).ok_or("consent did not redirect")?;
        ok("redirected back to the API's callback with a code");

        step(n, "The callback exchanges the code and sends the browser to the folder picker");
        let cb = http.call(M::GET, &callback, None).await?;
        let picker_url = cb
            .location
            .filter(|_| cb.status == 303)
            .ok_or(format!("callback answered {} {}", cb.status, cb.body))?;
        let grant = picker_url.split("grant_id=").nth(1).ok_or("no grant id")?.to_owned();
        ok(format!("grant {grant} stored; tokens are in the vault, never in responses"));
        Ok(grant)
    }

    fn dropbox_files(&self) -> usize {
        self.dbx.list_files(&self.account, FOLDER).len()
    }

    /// The Google Drive part: the same admin flow on Drive, with what only Drive has — the
    /// picker's "My Drive" and shared drives, a Google Doc imported as its .docx export, two
    /// files with one name — each outcome checked against the sandbox (sha256 and Drive's md5).
    async fn google_drive_demo(&self, http: &mut Http, n: &mut u32) -> Result<(), String> {
        use reqwest::Method as M;
        let (gd, acct) = (&self.drive, self.drive_account.as_str());
        let grant = self.authorize(http, n, Service::GoogleDrive).await?;

        step(n, "Folder picker: My Drive and the shared drives, then drill into My Drive");
        let folders = http.expect(M::GET, &format!("/v1/grants/{grant}/folders"), None, 200).await?;
        let top = folders["items"].as_array().cloned().unwrap_or_default();
        let names: Vec<&str> = top.iter().filter_map(|f| f["name"].as_str()).collect();
        println!("    top level: {}", names.join(", "));
        let my_drive = top.iter().find(|f| f["name"] == "My Drive").ok_or("My Drive not offered")?;
        if !top.iter().any(|f| f["name"] == "Marketing" && f["kind"] == "drive") {
            return Err("the shared drive Marketing is not offered".into());
        }
        let parent = my_drive["id"].as_str().ok_or("no id")?;
        let inside =
            http.expect(M::GET, &format!("/v1/grants/{grant}/folders?parent={parent}"), None, 200).await?;
        let brand = inside["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|f| f["name"] == "Brand Assets")
            .and_then(|f| f["id"].as_str())
            .ok_or("Brand Assets not offered in My Drive")?
            .to_owned();
        println!("    My Drive: {}", names_of(&inside).join(", "));

        step(n, "Before connecting, at Google Drive: a second \"logo.png\" in the same folder");
        let second_logo = gd
            .add_file(acct, &brand, "logo.png", Content::generated(52_001, 808))
            .map_err(|e| e.to_string())?
            .id;
        ok("Drive allows two files with one name in a folder (Dropbox does not)");

        step(n, "Create the connection on My Drive › Brand Assets (initial import)");
        let body = json!({"grant_id": grant, "folder_id": brand, "auto_sync": true});
        let created = http.expect(M::POST, "/v1/connections", Some(body), 201).await?;
        let id = created["id"].as_str().ok_or("no id")?.to_owned();
        let total = || gd.list_files(acct, &brand).map(|f| f.len()).unwrap_or(0);
        let first = created["current_run_id"].as_str().unwrap_or_default().to_owned();
        self.wait_run(http, &id, &first, total()).await?;
        let imported = self.verify_drive(http, &id, &brand).await?;
        ok("every file's asset matches the source: sha256, and Drive's md5Checksum");
        let doc = imported.doc.ok_or("the Google Doc was not imported")?;
        let text = doc.text.as_deref().unwrap_or_default();
        ok(format!(
            "the Google Doc \"Brand brief\" is the asset {:?}, a .docx that opens: {text:?}",
            doc.name
        ));
        let logos: Vec<&DriveAsset> = imported.files.iter().filter(|f| f.name == "logo.png").collect();
        if logos.len() != 2 || logos[0].key == logos[1].key {
            return Err(format!("two logo.png files should be two assets, got {}", logos.len()));
        }
        ok("the two logo.png files are two assets (identity by file id)");
        table(&http.expect(M::GET, "/v1/connections?provider=google_drive", None, 200).await?);

        step(n, "Changes at Google Drive: the Doc renamed, a file added, one logo.png trashed");
        gd.rename(acct, &doc.id, "Brand brief (2026)").map_err(|e| e.to_string())?;
        gd.add_file(acct, &brand, "social-card.png", Content::generated(64_123, 909))
            .map_err(|e| e.to_string())?;
        gd.trash(acct, &second_logo).map_err(|e| e.to_string())?;
        let exports = gd.calls(Endpoint::Export);
        let r = http.expect(M::POST, &format!("/v1/connections/{id}/refresh"), None, 202).await?;
        self.wait_run(http, &id, r["run_id"].as_str().unwrap_or_default(), total()).await?;
        let after = self.verify_drive(http, &id, &brand).await?;
        let renamed = after.doc.ok_or("the Google Doc was lost")?;
        if renamed.key != doc.key || gd.calls(Endpoint::Export) != exports {
            return Err("renaming the Google Doc exported it again".into());
        }
        ok("Refresh Items: the renamed Doc keeps its asset and is not exported again");
        let items = self.items(http, &id).await?;
        if items.get(&second_logo).map(|i| &i["state"]) != Some(&json!("source_deleted")) {
            return Err("the trashed logo.png is not source_deleted".into());
        }
        ok("the trashed logo.png is source_deleted, its asset kept; the new file is imported");
        table(&http.expect(M::GET, "/v1/connections?provider=google_drive", None, 200).await?);

        step(n, "Delete the Google Drive connection");
        http.expect(M::DELETE, &format!("/v1/connections/{id}"), None, 204).await?;
        if gd.calls(Endpoint::Revoke) != 1 {
            return Err("the grant was not revoked at Google".into());
        }
        ok("deleted; the grant was revoked at Google; the imported assets stay");
        Ok(())
    }

    /// The SharePoint part: Microsoft sign-in, the picker's site → document library → folder,
    /// the initial import verified byte for byte (sha256 and Graph's quickXorHash), then a
    /// renamed folder, an addition, a deletion and a change in another team's folder of the same
    /// library, which the library-wide delta reports and which must cost no download.
    async fn sharepoint_demo(&self, http: &mut Http, n: &mut u32) -> Result<(), String> {
        use extconn_sandbox::sharepoint::Endpoint as Graph;
        use reqwest::Method as M;
        let (sp, acct) = (&self.sharepoint, self.sharepoint_account.as_str());
        let grant = self.authorize(http, n, Service::Sharepoint).await?;

        step(n, "Folder picker: the OneDrive and the sites, then site › library › folder");
        let list = |page: &Value| page["items"].as_array().cloned().unwrap_or_default();
        let open = |f: &Value| {
            let mut q = format!("/v1/grants/{grant}/folders?parent={}", f["id"].as_str().unwrap_or_default());
            if let Some(d) = f["drive_id"].as_str() {
                q.push_str(&format!("&drive={d}"));
            }
            q
        };
        let top = list(&http.expect(M::GET, &format!("/v1/grants/{grant}/folders"), None, 200).await?);
        let names: Vec<&str> = top.iter().filter_map(|f| f["name"].as_str()).collect();
        println!("    top level: {}", names.join(", "));
        let site = top
            .iter()
            .find(|f| f["name"] == "Marketing" && f["kind"] == "site")
            .ok_or("the site Marketing is not offered")?;
        let libraries = list(&http.expect(M::GET, &open(site), None, 200).await?);
        println!("    Marketing's libraries: {}", names_of(&json!({ "items": libraries })).join(", "));
        let library = libraries.iter().find(|f| f["name"] == "Documents").ok_or("no Documents library")?;
        let inside = list(&http.expect(M::GET, &open(library), None, 200).await?);
        println!("    Documents: {}", names_of(&json!({ "items": inside })).join(", "));
        let folder = inside
            .iter()
            .find(|f| f["name"] == "Campaign assets" && f["selectable"] == true)
            .ok_or("Campaign assets not offered")?
            .clone();
        let folder_id = folder["id"].as_str().ok_or("no id")?.to_owned();

        step(n, "Create the connection on Marketing › Documents › Campaign assets (initial import)");
        let body = json!({"grant_id": grant, "folder_id": folder_id, "drive_id": folder["drive_id"], "auto_sync": true});
        let created = http.expect(M::POST, "/v1/connections", Some(body), 201).await?;
        let id = created["id"].as_str().ok_or("no id")?.to_owned();
        let total = || sp.list_files(acct, &folder_id).map(|f| f.len()).unwrap_or(0);
        let first = created["current_run_id"].as_str().unwrap_or_default().to_owned();
        self.wait_run(http, &id, &first, total()).await?;
        let assets = self.verify_sharepoint(http, &id, &folder_id).await?;
        ok(format!(
            "{} files; each asset matches the source: sha256, and Graph's quickXorHash",
            assets.len()
        ));
        table(&http.expect(M::GET, "/v1/connections?provider=sharepoint", None, 200).await?);

        step(
            n,
            "Changes at SharePoint: \"Social\" renamed, a file added, one deleted, another team's file edited",
        );
        let files = sp.list_files(acct, &folder_id).map_err(|e| e.to_string())?;
        let social = files
            .iter()
            .find_map(|f| f.parent_id.clone().filter(|p| *p != folder_id))
            .ok_or("no Social folder")?;
        sp.rename(acct, &social, "Social 2026").map_err(|e| e.to_string())?;
        sp.add_file(acct, &folder_id, "press-kit.zip", Content::generated(88_003, 70))
            .map_err(|e| e.to_string())?;
        let deleted = files.iter().find(|f| f.name == "banner-wide.png").ok_or("no banner")?.id.clone();
        sp.delete(acct, &deleted).map_err(|e| e.to_string())?;
        let site_id = site["id"].as_str().ok_or("no site id")?;
        let root = sp.default_library(site_id).map_err(|e| e.to_string())?.root_id;
        let other = sp
            .list_files(acct, &root)
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|f| f.name == "budget.csv")
            .ok_or("no budget.csv")?;
        sp.modify_file(acct, &other.id, Content::generated(9_500, 71)).map_err(|e| e.to_string())?;
        let before = sp.calls(Graph::Download);
        let r = http.expect(M::POST, &format!("/v1/connections/{id}/refresh"), None, 202).await?;
        self.wait_run(http, &id, r["run_id"].as_str().unwrap_or_default(), total()).await?;
        let after = self.verify_sharepoint(http, &id, &folder_id).await?;
        let downloads = sp.calls(Graph::Download) - before;
        if downloads != 1 {
            return Err(format!("the refresh downloaded {downloads} files; only the new one was due"));
        }
        let moved: Vec<&String> =
            files.iter().filter(|f| f.parent_id.as_deref() == Some(social.as_str())).map(|f| &f.id).collect();
        if moved.iter().any(|m| assets.get(*m) != after.get(*m)) {
            return Err("the files of the renamed folder got new assets".into());
        }
        ok("Refresh Items: one download (the new file); the renamed folder's files keep their assets");
        let items = self.items(http, &id).await?;
        if items.get(&deleted).map(|i| &i["state"]) != Some(&json!("source_deleted")) {
            return Err("the deleted banner-wide.png is not source_deleted".into());
        }
        ok("the deleted file is source_deleted, its asset kept; the other team's edit cost nothing");

        step(n, "Refresh Items with nothing changed");
        let graph_calls = sp.call_log().len();
        let r = http.expect(M::POST, &format!("/v1/connections/{id}/refresh"), None, 202).await?;
        self.wait_run(http, &id, r["run_id"].as_str().unwrap_or_default(), total()).await?;
        let idle = sp.call_log().len() - graph_calls;
        if idle > 2 {
            return Err(format!("a sync that changes nothing made {idle} Graph calls"));
        }
        ok(format!("{idle} Graph call(s): one delta page, whatever the library's size"));
        table(&http.expect(M::GET, "/v1/connections?provider=sharepoint", None, 200).await?);

        step(n, "Delete the SharePoint connection");
        let client = extconn_core::ClientId::parse("acme").map_err(|e| e.to_string())?;
        let grant_id = extconn_core::GrantId::parse(&grant).map_err(|e| e.to_string())?;
        let secret = self.ports.grants.get(&client, &grant_id).await.map_err(|e| e.to_string())?;
        let secret = secret.ok_or("the grant is gone before its connection")?.secret_ref;
        http.expect(M::DELETE, &format!("/v1/connections/{id}"), None, 204).await?;
        if self.ports.vault.get(&secret).await.map_err(|e| e.to_string())?.is_some() {
            return Err("the grant's tokens outlived its last connection".into());
        }
        ok(
            "deleted; Microsoft has no per-token revocation: the grant's stored tokens are deleted; the assets stay",
        );
        Ok(())
    }

    /// Every live file below `folder` at SharePoint: imported, its asset's bytes those of the
    /// source (sha256, and the quickXorHash Graph lists, computed here over the stored bytes).
    /// Returns each file's asset key.
    async fn verify_sharepoint(
        &self,
        http: &mut Http,
        id: &str,
        folder: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        let (sp, acct) = (&self.sharepoint, self.sharepoint_account.as_str());
        let items = self.items(http, id).await?;
        let mut out = BTreeMap::new();
        for f in sp.list_files(acct, folder).map_err(|e| e.to_string())? {
            let item = items.get(&f.id).ok_or(format!("{} was not imported", f.name))?;
            if item["state"] != "imported" {
                return Err(format!("{} is {}", f.name, item["state"]));
            }
            let key = item["asset_key"].as_str().ok_or("no asset key")?.to_owned();
            let bytes = std::fs::read(self.data_dir.join("objects").join(&key)).map_err(|e| e.to_string())?;
            if Some(hex::encode(Sha256::digest(&bytes))) != f.sha256 {
                return Err(format!("{}: the asset differs from the source", f.name));
            }
            let listed = sp.quick_xor_hash(acct, &f.id).map_err(|e| e.to_string())?;
            let computed = extconn_providers::hash::QuickXorHasher::digest(&bytes);
            if computed != listed {
                return Err(format!("{}: quickXorHash {computed} is not Graph's {listed}", f.name));
            }
            out.insert(f.id, key);
        }
        Ok(out)
    }

    /// Every live file below `folder` at Drive: imported, its asset's bytes those of the source
    /// (sha256; binary files also Drive's md5Checksum); a Google Doc's asset a .docx that opens.
    async fn verify_drive(&self, http: &mut Http, id: &str, folder: &str) -> Result<DriveImport, String> {
        let (gd, acct) = (&self.drive, self.drive_account.as_str());
        let items = self.items(http, id).await?;
        let mut out = DriveImport { files: Vec::new(), doc: None };
        for f in gd.list_files(acct, folder).map_err(|e| e.to_string())? {
            let item = items.get(&f.id).ok_or(format!("{} was not imported", f.name))?;
            if item["state"] != "imported" {
                return Err(format!("{} is {}", f.name, item["state"]));
            }
            let key = item["asset_key"].as_str().ok_or("no asset key")?.to_owned();
            let bytes = std::fs::read(self.data_dir.join("objects").join(&key)).map_err(|e| e.to_string())?;
            if Some(hex::encode(Sha256::digest(&bytes))) != f.sha256 {
                return Err(format!("{}: the asset differs from the source", f.name));
            }
            let meta = gd.file_json(acct, &f.id).map_err(|e| e.to_string())?;
            let asset = DriveAsset { id: f.id.clone(), name: f.name.clone(), key, text: None };
            if meta["mimeType"] == DOC_MIME {
                let text = office::docx_text(&bytes).map_err(|e| format!("{}: not a .docx: {e}", f.name))?;
                // The asset's metadata, as the sink stored it beside the object.
                let path = self.data_dir.join("meta").join(format!("{}.json", asset.key));
                let stored: Value = std::fs::read(&path)
                    .ok()
                    .and_then(|b| serde_json::from_slice(&b).ok())
                    .ok_or(format!("{}: no metadata at {}", f.name, path.display()))?;
                let name = stored["original_name"].as_str().unwrap_or_default().to_owned();
                // (The name at import: a later rename updates the item, not the stored object.)
                if !name.ends_with(".docx") || stored["content_type"] != DOCX_MIME {
                    return Err(format!("{}: stored as {name:?}, {}", f.name, stored["content_type"]));
                }
                out.doc = Some(DriveAsset { name, text: Some(text), ..asset });
                continue;
            }
            let md5 = hex::encode(<Md5 as md5::Digest>::digest(&bytes));
            if meta["md5Checksum"].as_str() != Some(md5.as_str()) {
                return Err(format!("{}: md5 {md5} is not Drive's {}", f.name, meta["md5Checksum"]));
            }
            out.files.push(asset);
        }
        Ok(out)
    }

    /// The run after `previous`: the connection's current run once a worker has opened it, or
    /// (if it already finished) the newest run. The scheduled job opens its run only when a
    /// worker takes it, so until then the newest run is still `previous`: wait for it.
    async fn next_run(&self, http: &mut Http, id: &str, previous: &str) -> Result<String, String> {
        let started = Instant::now();
        loop {
            let d = http.expect(reqwest::Method::GET, &format!("/v1/connections/{id}"), None, 200).await?;
            if let Some(r) = d["current_run_id"].as_str().filter(|r| *r != previous) {
                return Ok(r.to_owned());
            }
            let runs = http
                .expect(reqwest::Method::GET, &format!("/v1/connections/{id}/runs?limit=1"), None, 200)
                .await?;
            if let Some(r) = runs["items"][0]["id"].as_str().filter(|r| *r != previous) {
                return Ok(r.to_owned());
            }
            if started.elapsed() > Duration::from_secs(30) {
                return Err("no run started after the tick in 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls the API until the run ends, printing progress.
    async fn wait_run(&self, http: &mut Http, id: &str, run: &str, total: usize) -> Result<(), String> {
        let started = Instant::now();
        let mut last = String::new();
        loop {
            let d = http.expect(reqwest::Method::GET, &format!("/v1/connections/{id}"), None, 200).await?;
            let r = d["recent_runs"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["id"] == run)
                .cloned()
                .unwrap_or(Value::Null);
            let status = r["status"].as_str().unwrap_or("queued").to_owned();
            let c = &r["counters"];
            let line = format!(
                "    … run {status}: {} files in the folder, {} imported, {} updated, {} removed at source",
                total, c["imported"], c["updated"], c["source_deleted"]
            );
            if line != last {
                println!("{line}");
                last = line;
            }
            match status.as_str() {
                "succeeded" => return Ok(()),
                "partial" | "failed" | "reauth_required" | "needs_review" => {
                    return Err(format!("run {run} ended {status}: {r}"));
                }
                _ => {}
            }
            if started.elapsed() > Duration::from_secs(120) {
                return Err(format!("run {run} did not finish in 2 minutes"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn items(&self, http: &mut Http, id: &str) -> Result<BTreeMap<String, Value>, String> {
        let page = http
            .expect(reqwest::Method::GET, &format!("/v1/connections/{id}/items?limit=200"), None, 200)
            .await?;
        Ok(page["items"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| (i["id"].as_str().unwrap_or("").to_owned(), i.clone()))
            .collect())
    }

    /// Every live file: imported, its asset's sha256 equals the source's, and the index by source
    /// path leads to it. Every id in `deleted`: `source_deleted` with its asset still present.
    async fn verify(&self, http: &mut Http, id: &str, deleted: &[&str]) -> Result<(), String> {
        let items = self.items(http, id).await?;
        let index = self.data_dir.join("index/acme").join(id);
        for f in self.dbx.list_files(&self.account, FOLDER) {
            let item = items.get(&f.id).ok_or(format!("{} was not imported", f.path_display))?;
            if item["state"] != "imported" {
                return Err(format!("{} is {}", f.path_display, item["state"]));
            }
            let key = item["asset_key"].as_str().ok_or("no asset key")?;
            let stored = sha256_file(&self.data_dir.join("objects").join(key))?;
            if stored != self.dbx.sha256_of(&self.account, &f.id) {
                return Err(format!("{}: the asset differs from the source", f.path_display));
            }
            let by_path = index.join(f.path_display.trim_start_matches('/'));
            if sha256_file(&by_path)? != stored {
                return Err(format!(
                    "{}: not findable by source path under {}",
                    f.path_display,
                    index.display()
                ));
            }
        }
        for d in deleted {
            let item = items.get(*d).ok_or("deleted file has no item")?;
            if item["state"] != "source_deleted" {
                return Err(format!("deleted file is {}", item["state"]));
            }
            let key = item["asset_key"].as_str().ok_or("deleted file lost its asset key")?;
            sha256_file(&self.data_dir.join("objects").join(key))
                .map_err(|_| "the deleted file's asset is gone")?;
        }
        Ok(())
    }
}

/// What [`LocalSystem::verify_drive`] found: the binary files' assets and the Google Doc's.
struct DriveImport {
    files: Vec<DriveAsset>,
    doc: Option<DriveAsset>,
}

struct DriveAsset {
    id: String,
    name: String,
    key: String,
    /// A document's text, as a word processor reads it.
    text: Option<String>,
}

fn names_of(page: &Value) -> Vec<&str> {
    page["items"].as_array().into_iter().flatten().filter_map(|f| f["name"].as_str()).collect()
}

fn sha256_file(p: &std::path::Path) -> Result<String, String> {
    let bytes = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
    Ok(hex::encode(Sha256::digest(&bytes)))
}

fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|d| d.flatten().map(|e| if e.path().is_dir() { count_files(&e.path()) } else { 1 }).sum())
        .unwrap_or(0)
}
