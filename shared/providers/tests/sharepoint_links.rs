//! The SharePoint connector against tiny local HTTP servers (one playing Graph and its download
//! host, one playing a foreign host): links Graph hands out are checked before any connection,
//! and the download follows the redirect without the bearer.
//!
//! The Graph sandbox tests come with the sandbox; these need no emulator.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use extconn_core::ports::{DownloadRequest, Provider, ProviderError, RemoteItem};
use extconn_core::{FolderLocator, ItemKind, Secret};
use extconn_providers::hash::QuickXorHasher;
use extconn_providers::{SharePoint, SharePointConfig};
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const TOKEN: &str = "CANARY-access-token";
const TEMPAUTH: &str = "CANARY-tempauth";

/// A request as the server saw it: the path with its query, and lowercase header names.
#[derive(Debug, Clone)]
struct Seen {
    target: String,
    headers: BTreeMap<String, String>,
    body: String,
}

type Reply = (u16, Vec<(String, String)>, Vec<u8>);
type Handler = Arc<dyn Fn(&Seen) -> Reply + Send + Sync>;

struct Server {
    base: String,
    connections: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Server {
    /// One request per connection (`Connection: close`), answered by `handler`.
    async fn start(handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap_or_else(|e| panic!("{e}"));
        let port = listener.local_addr().map(|a| a.port()).unwrap_or_default();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (c, s) = (connections.clone(), seen.clone());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let (handler, s) = (handler.clone(), s.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
                    let text = String::from_utf8_lossy(&buf[..end]).into_owned();
                    let mut lines = text.split("\r\n");
                    let target = lines.next().and_then(|l| l.split(' ').nth(1)).unwrap_or("").to_owned();
                    let headers: BTreeMap<String, String> = lines
                        .take_while(|l| !l.is_empty())
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect();
                    let length: usize =
                        headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
                    while buf.len() < end + length {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = String::from_utf8_lossy(&buf[end..]).into_owned();
                    let req = Seen { target, headers, body };
                    s.lock().unwrap_or_else(|p| p.into_inner()).push(req.clone());
                    let (status, headers, body) = handler(&req);
                    let mut out = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                        body.len()
                    );
                    for (k, v) in headers {
                        out.push_str(&format!("{k}: {v}\r\n"));
                    }
                    out.push_str("\r\n");
                    let _ = sock.write_all(out.as_bytes()).await;
                    let _ = sock.write_all(&body).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        Server { base: format!("http://127.0.0.1:{port}"), connections, seen }
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

fn json(status: u16, v: serde_json::Value) -> Reply {
    (status, vec![("Content-Type".into(), "application/json".into())], v.to_string().into_bytes())
}

/// A listener that must never be reached.
async fn foreign() -> Server {
    Server::start(Arc::new(|_: &Seen| json(200, serde_json::json!({"value": []})))).await
}

fn connector(graph: &Server) -> SharePoint {
    let mut cfg = SharePointConfig::new("app", Secret::new("secret"))
        .with_bases(format!("{}/sharepoint/login", graph.base), format!("{}/sharepoint/graph", graph.base));
    cfg.http.read_timeout = Duration::from_secs(10);
    SharePoint::new(cfg)
}

fn drive_loc(id: &str) -> FolderLocator {
    FolderLocator { folder_id: id.into(), drive_id: Some("b!d".into()) }
}

fn assert_refused(e: &ProviderError) {
    let text = format!("{e} {e:?}");
    assert!(matches!(e, ProviderError::Permanent(m) if m.contains("127.0.0.1")), "{text}");
    assert!(!text.contains("token=") && !text.contains("CANARY"), "{text}");
}

#[tokio::test]
async fn links_to_a_foreign_host_are_refused_before_connecting() {
    let other = foreign().await;
    let next = format!("{}/sharepoint/graph/v1.0/drives/b!d/root/delta?token=CANARY-next", other.base);
    let n = next.clone();
    let graph = Server::start(Arc::new(move |_: &Seen| {
        json(200, serde_json::json!({"value": [], "@odata.nextLink": n}))
    }))
    .await;
    let sp = connector(&graph);
    let access = Secret::new(TOKEN);

    // start_cursor follows nextLinks to the deltaLink: the foreign one is refused.
    let e = sp.start_cursor(&access, &drive_loc("ROOT")).await.expect_err("refused");
    assert_refused(&e);
    // A stored cursor (or a page token) pointing there is refused too.
    let e = sp.list_changes(&access, &drive_loc("ROOT"), &next).await.expect_err("refused");
    assert_refused(&e);
    let e = sp.list_children(&access, &drive_loc("F"), Some(&next)).await.expect_err("refused");
    assert_refused(&e);
    let e = sp.browse_folders(&access, None, Some(&next)).await.expect_err("refused");
    assert_refused(&e);

    // A page from the configured base that carries the foreign link is refused as it
    // arrives: the link never becomes a stored cursor a later run would resume from.
    let e = sp
        .list_changes(
            &access,
            &drive_loc("ROOT"),
            &format!("{}/sharepoint/graph/v1.0/drives/b!d/root/delta?token=1", graph.base),
        )
        .await
        .expect_err("a page linking to a foreign host");
    assert_refused(&e);
    // The first request went to the configured base, with the bearer.
    let seen = graph.seen();
    assert!(
        seen[0].target.starts_with("/sharepoint/graph/v1.0/drives/b!d/root/delta?token=latest"),
        "{seen:?}"
    );
    assert_eq!(seen[0].headers.get("authorization").map(String::as_str), Some("Bearer CANARY-access-token"));
    assert!(
        seen[0].headers.get("user-agent").is_some_and(|u| u.starts_with("ISV|ExternalConnections|extconn/"))
    );
    assert_eq!(other.connections.load(Ordering::SeqCst), 0, "the foreign listener was reached");
}

const CONTENT: &[u8] = b"hello world";

fn item_json(name: &str, hash: &str) -> serde_json::Value {
    serde_json::json!({
        "id": "F1", "name": name, "size": CONTENT.len(), "eTag": "\"{E},1\"", "cTag": "\"c:{E},1\"",
        "lastModifiedDateTime": "2026-05-01T10:00:00Z",
        "parentReference": {"driveId": "b!d", "driveType": "documentLibrary", "id": "P"},
        "file": {"mimeType": "application/octet-stream", "hashes": {"quickXorHash": hash}}
    })
}

/// Graph (item, `/content` → 302) and the download host on one server, as the sandbox has them.
async fn graph_with_download(
    name: &'static str,
    served: &'static [u8],
    location_base: Option<String>,
) -> Server {
    let hash = QuickXorHasher::digest(CONTENT);
    let loc_base = Arc::new(Mutex::new(location_base));
    let self_base: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let sb = self_base.clone();
    let server = Server::start(Arc::new(move |req: &Seen| {
        let path = req.target.split('?').next().unwrap_or("");
        match path {
            "/sharepoint/graph/v1.0/drives/b!d/items/F1" => json(200, item_json(name, &hash)),
            "/sharepoint/graph/v1.0/drives/b!d/items/F1/content" => {
                let base = loc_base
                    .lock()
                    .ok()
                    .and_then(|b| b.clone())
                    .or_else(|| sb.lock().ok().and_then(|b| b.clone()));
                let location =
                    format!("{}/sharepoint/download/blob1?tempauth={TEMPAUTH}", base.unwrap_or_default());
                (302, vec![("Location".into(), location)], Vec::new())
            }
            "/sharepoint/download/blob1" => match req.headers.get("range") {
                Some(r) => {
                    let from: usize =
                        r.trim_start_matches("bytes=").trim_end_matches('-').parse().unwrap_or(0);
                    let rest = served[from.min(served.len())..].to_vec();
                    let range = format!("bytes {from}-{}/{}", served.len() - 1, served.len());
                    (206, vec![("Content-Range".into(), range)], rest)
                }
                None => {
                    (200, vec![("Content-Type".into(), "application/octet-stream".into())], served.to_vec())
                }
            },
            _ => json(404, serde_json::json!({"error": {"code": "itemNotFound", "message": "no"}})),
        }
    }))
    .await;
    *self_base.lock().unwrap_or_else(|p| p.into_inner()) = Some(server.base.clone());
    server
}

fn listed(name: &str) -> RemoteItem {
    RemoteItem {
        id: "F1".into(),
        drive_id: Some("b!d".into()),
        parent_ids: vec!["P".into()],
        name: name.into(),
        path: None,
        path_lower: None,
        kind: ItemKind::File,
        mime_type: None,
        revision: Some("\"c:{E},1\"".into()),
        content_hash: Some(QuickXorHasher::digest(CONTENT)),
        size: Some(CONTENT.len() as u64),
        modified_at: None,
    }
}

async fn read_all(d: extconn_core::ports::Download) -> (Vec<u8>, Option<ProviderError>) {
    let mut bytes = Vec::new();
    let mut stream = d.stream;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(b) => bytes.extend_from_slice(&b),
            Err(e) => return (bytes, Some(e)),
        }
    }
    (bytes, None)
}

#[tokio::test]
async fn the_download_follows_the_redirect_without_the_bearer() {
    let graph = graph_with_download("a.bin", CONTENT, None).await;
    let sp = connector(&graph);
    let access = Secret::new(TOKEN);
    let d = sp
        .download(&access, &DownloadRequest::whole(&listed("a.bin")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!format!("{d:?}").contains(TEMPAUTH));
    let warning = d.warning.clone();
    let (bytes, err) = read_all(d).await;
    assert_eq!((bytes.as_slice(), err), (CONTENT, None));
    assert_eq!(warning.get(), None);
    let seen = graph.seen();
    let content = seen.iter().find(|s| s.target.ends_with("/content")).unwrap_or_else(|| panic!("{seen:?}"));
    assert!(content.headers.contains_key("authorization"));
    let blob = seen
        .iter()
        .find(|s| s.target.contains("/sharepoint/download/"))
        .unwrap_or_else(|| panic!("{seen:?}"));
    assert!(!blob.headers.contains_key("authorization"), "the bearer went to the download URL: {blob:?}");
    assert!(blob.target.ends_with(&format!("tempauth={TEMPAUTH}")), "the query is kept verbatim");

    // Resumed: Range on the download URL, 206 required.
    let req = DownloadRequest { offset: 6, ..DownloadRequest::whole(&listed("a.bin")) };
    let d = sp.download(&access, &req).await.unwrap_or_else(|e| panic!("{e}"));
    let (bytes, err) = read_all(d).await;
    assert_eq!((bytes.as_slice(), err), (&CONTENT[6..], None));
    let seen = graph.seen();
    let last =
        seen.iter().rev().find(|s| s.target.contains("/sharepoint/download/")).unwrap_or_else(|| panic!());
    assert_eq!(last.headers.get("range").map(String::as_str), Some("bytes=6-"));
    assert!(!last.headers.contains_key("authorization"));
}

#[tokio::test]
async fn a_redirect_to_a_foreign_host_is_refused() {
    let other = foreign().await;
    let graph = graph_with_download("a.bin", CONTENT, Some(other.base.clone())).await;
    let sp = connector(&graph);
    let e = sp
        .download(&Secret::new(TOKEN), &DownloadRequest::whole(&listed("a.bin")))
        .await
        .expect_err("refused");
    assert_refused(&e);
    assert_eq!(other.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_rewritten_office_file_is_kept_with_a_warning_and_a_pdf_is_not() {
    let graph = graph_with_download("Plan.docx", b"hello world, with properties", None).await;
    let sp = connector(&graph);
    let d = sp
        .download(&Secret::new(TOKEN), &DownloadRequest::whole(&listed("Plan.docx")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let warning = d.warning.clone();
    let (bytes, err) = read_all(d).await;
    assert_eq!((bytes.as_slice(), err), (&b"hello world, with properties"[..], None));
    assert!(warning.get().is_some());

    let graph = graph_with_download("report.pdf", b"hellO world", None).await;
    let sp = connector(&graph);
    let d = sp
        .download(&Secret::new(TOKEN), &DownloadRequest::whole(&listed("report.pdf")))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let warning = d.warning.clone();
    let (_, err) = read_all(d).await;
    assert!(matches!(err, Some(ProviderError::Integrity(_))), "{err:?}");
    assert_eq!(warning.get(), None);
}

#[tokio::test]
async fn an_office_file_sharepoint_may_rewrite_is_never_continued_from_an_offset() {
    let graph = graph_with_download("Plan.docx", b"hello world, with properties", None).await;
    let sp = connector(&graph);
    let req = DownloadRequest { mark_every: 4, ..DownloadRequest::whole(&listed("Plan.docx")) };
    let d = sp.download(&Secret::new(TOKEN), &req).await.unwrap_or_else(|e| panic!("{e}"));
    let marks = d.marks.clone();
    let (bytes, err) = read_all(d).await;
    assert_eq!((bytes.as_slice(), err), (&b"hello world, with properties"[..], None));
    // A cut would keep nothing: a resume needs the hash's state at its offset, and none is
    // recorded (the engine then starts the file over in the next invocation).
    assert!(marks.verifies(), "a resume must carry a state");
    assert!((1..=7).all(|k| marks.at(4 * k).is_none()), "and none is ever recorded");

    // A resume asked all the same (a transfer cut before this rule) is refused before any byte
    // is fetched: the engine starts the file over from byte 0.
    let fetched = |g: &Server| g.seen().iter().filter(|s| s.target.contains("/sharepoint/download/")).count();
    let before = fetched(&graph);
    let resumed = DownloadRequest { offset: 8, ..DownloadRequest::whole(&listed("Plan.docx")) };
    let e = sp.download(&Secret::new(TOKEN), &resumed).await.expect_err("refused");
    assert!(matches!(&e, ProviderError::Integrity(m) if m.contains("starts over")), "{e:?}");
    assert_eq!(fetched(&graph), before);
}

fn form(body: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes()).into_owned().collect()
}

#[tokio::test]
async fn refresh_rotates_and_oauth_errors_are_classified() {
    let server = Server::start(Arc::new(|req: &Seen| {
        let f = form(&req.body);
        if req.target != "/sharepoint/login/organizations/oauth2/v2.0/token" {
            return json(404, serde_json::json!({}));
        }
        let error = |status: u16, code: &str| {
            json(status, serde_json::json!({"error": code, "error_description": "AADSTS700082: expired",
                "error_codes": [700082], "timestamp": "t", "trace_id": "x", "correlation_id": "y"}))
        };
        match f.get("refresh_token").map(String::as_str) {
            Some("rt-expired") => error(400, "invalid_grant"),
            Some("rt-mfa") => error(400, "interaction_required"),
            Some("rt-badapp") => error(401, "invalid_client"),
            _ => json(200, serde_json::json!({"token_type": "Bearer", "scope": "Files.Read.All Sites.Read.All User.Read",
                "expires_in": 3599, "ext_expires_in": 3599, "access_token": "at-2", "refresh_token": "rt-2", "id_token": "x.y.z"})),
        }
    }))
    .await;
    let sp = connector(&server);
    let tokens = |rt: &str| extconn_core::TokenSet {
        access_token: Secret::new("at-1"),
        refresh_token: Some(Secret::new(rt)),
        expires_at: None,
    };
    let fresh = sp.refresh(&tokens("rt-1")).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(fresh.access_token.expose(), "at-2");
    assert_eq!(fresh.refresh_token.as_ref().map(Secret::expose), Some("rt-2"), "the rotated refresh token");
    assert!(fresh.expires_at.is_some());
    let sent = form(&server.seen()[0].body);
    assert_eq!(sent.get("grant_type").map(String::as_str), Some("refresh_token"));
    assert_eq!(
        sent.get("scope").map(String::as_str),
        Some("offline_access User.Read Files.Read.All Sites.Read.All")
    );
    assert_eq!(sent.get("client_id").map(String::as_str), Some("app"));

    assert!(matches!(sp.refresh(&tokens("rt-expired")).await, Err(ProviderError::Reauth(_))));
    assert!(matches!(sp.refresh(&tokens("rt-mfa")).await, Err(ProviderError::Reauth(_))));
    assert!(matches!(sp.refresh(&tokens("rt-badapp")).await, Err(ProviderError::Config(_))));
    // No per-token revocation: a no-op.
    assert_eq!(sp.revoke(&tokens("rt-1")).await, Ok(()));
}

#[tokio::test]
async fn account_and_picker_levels() {
    let server = Server::start(Arc::new(|req: &Seen| {
        let path = req.target.split('?').next().unwrap_or("");
        match path {
            "/sharepoint/graph/v1.0/me" => json(200, serde_json::json!({"id": "u-1", "displayName": "Megan Bowen",
                "mail": null, "userPrincipalName": "megan@contoso.onmicrosoft.com"})),
            "/sharepoint/graph/v1.0/me/drive" => json(200, serde_json::json!({"id": "b!me", "name": "OneDrive", "driveType": "business"})),
            "/sharepoint/graph/v1.0/drives/b!me/root" => json(200, serde_json::json!({"id": "ROOT-ME"})),
            "/sharepoint/graph/v1.0/drives/b!lib/root" => json(200, serde_json::json!({"id": "ROOT-LIB"})),
            "/sharepoint/graph/v1.0/sites" => json(200, serde_json::json!({"value": [
                {"id": "contoso.sharepoint.com,g1,g2", "name": "mkt", "displayName": "Marketing", "webUrl": "https://contoso.sharepoint.com/sites/mkt"}]})),
            "/sharepoint/graph/v1.0/sites/contoso.sharepoint.com,g1,g2/drives" => json(200, serde_json::json!({"value": [
                {"id": "b!lib", "name": "Documents", "driveType": "documentLibrary"}]})),
            "/sharepoint/graph/v1.0/drives/b!lib/items/ROOT-LIB/children" => json(200, serde_json::json!({"value": [
                {"id": "F", "name": "Reports", "folder": {"childCount": 1}, "parentReference": {"driveId": "b!lib", "id": "ROOT-LIB"}},
                {"id": "N", "name": "Notebook", "package": {"type": "oneNote"}, "parentReference": {"driveId": "b!lib", "id": "ROOT-LIB"}},
                {"id": "X", "name": "x.pdf", "file": {}, "size": 3, "parentReference": {"driveId": "b!lib", "id": "ROOT-LIB"}}]})),
            _ => json(404, serde_json::json!({"error": {"code": "itemNotFound", "message": "no"}})),
        }
    }))
    .await;
    let sp = connector(&server);
    let access = Secret::new(TOKEN);
    let me = sp.account(&access).await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (me.account_id.as_str(), me.display_name.as_str(), me.email.as_deref()),
        ("u-1", "Megan Bowen", Some("megan@contoso.onmicrosoft.com"))
    );
    let top = sp.browse_folders(&access, None, None).await.unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<_> = top.folders.iter().map(|f| (f.name.as_str(), f.kind, f.selectable)).collect();
    use extconn_core::ports::EntryKind;
    assert_eq!(names, [("OneDrive", EntryKind::Drive, true), ("Marketing", EntryKind::Site, false)]);
    assert_eq!(
        top.folders[0].locator,
        FolderLocator { folder_id: "ROOT-ME".into(), drive_id: Some("b!me".into()) }
    );
    let sites_query =
        server.seen().into_iter().find(|s| s.target.starts_with("/sharepoint/graph/v1.0/sites?"));
    assert_eq!(sites_query.map(|s| s.target), Some("/sharepoint/graph/v1.0/sites?search=*".to_owned()));
    let libs = sp
        .browse_folders(&access, Some(&top.folders[1].locator), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(libs.folders.len(), 1);
    assert_eq!(
        libs.folders[0].locator,
        FolderLocator { folder_id: "ROOT-LIB".into(), drive_id: Some("b!lib".into()) }
    );
    let inside = sp
        .browse_folders(&access, Some(&libs.folders[0].locator), None)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<_> = inside.folders.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["Reports"], "folders only, no package, no file");
    assert_eq!(inside.next_page, None);
}
