//! Shared helpers: a sandbox with registered clients, an account and a token, plain
//! reqwest calls, and the JSON shape comparison used by the golden tests.

use std::time::SystemTime;

use bytes::Bytes;
use extconn_sandbox::{
    AccountId, DropboxControl, DropboxUrls, ManualClock, OAuthClient, Sandbox, SandboxConfig, Service,
};
use reqwest::header::HeaderMap;
use serde_json::Value;

pub const CLIENT_ID: &str = "app-key";
pub const CLIENT_SECRET: &str = "app-secret-CANARY-CS";
pub const PUBLIC_CLIENT_ID: &str = "public-app";
pub const REDIRECT: &str = "http://localhost:8765/callback";

pub struct Env {
    #[allow(dead_code)]
    pub sandbox: Sandbox,
    pub dbx: DropboxControl,
    pub urls: DropboxUrls,
    pub http: reqwest::Client,
    pub acct: AccountId,
    pub token: String,
    pub clock: ManualClock,
}

pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        match serde_json::from_slice(&self.body) {
            Ok(v) => v,
            Err(e) => panic!("not JSON ({e}): status {} body {:?}", self.status, self.text()),
        }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.get(name).map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    }
}

pub fn clients() -> Vec<OAuthClient> {
    vec![
        OAuthClient {
            service: Service::Dropbox,
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            redirect_uris: vec![REDIRECT.into()],
        },
        OAuthClient {
            service: Service::Dropbox,
            client_id: PUBLIC_CLIENT_ID.into(),
            client_secret: String::new(),
            redirect_uris: vec![REDIRECT.into()],
        },
    ]
}

/// A sandbox on a virtual clock (starting at 2025-01-01T00:00:00Z) with one account
/// ("Ada Lovelace") and a minted access token.
pub async fn env() -> Env {
    let clock = ManualClock::new(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_735_689_600));
    let sandbox = Sandbox::start(SandboxConfig {
        clients: clients(),
        now: Some(clock.source()),
        ..SandboxConfig::default()
    })
    .await;
    let dbx = sandbox.dropbox();
    let acct = dbx.create_account("Ada Lovelace", "ada@example.com");
    let (token, _) = dbx.mint_tokens(&acct, CLIENT_ID);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("reqwest client");
    Env { urls: dbx.urls(), sandbox, dbx, http, acct, token, clock }
}

pub async fn reply(resp: reqwest::Response) -> Reply {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.expect("body");
    Reply { status, headers, body }
}

impl Env {
    /// POST an RPC route of the api host with a JSON argument (or none).
    pub async fn rpc(&self, route: &str, arg: Option<Value>) -> Reply {
        self.rpc_as(&self.token, route, arg).await
    }

    pub async fn rpc_as(&self, token: &str, route: &str, arg: Option<Value>) -> Reply {
        let mut req = self.http.post(format!("{}/2/{route}", self.urls.api_base)).bearer_auth(token);
        if let Some(a) = arg {
            req = req.header("Content-Type", "application/json").body(a.to_string());
        }
        reply(req.send().await.expect("send")).await
    }

    /// POST files/download with a JSON argument header.
    pub async fn download(&self, arg: Value, range: Option<&str>) -> Reply {
        let mut req = self
            .http
            .post(format!("{}/2/files/download", self.urls.content_base))
            .bearer_auth(&self.token)
            .header("Dropbox-API-Arg", ascii_json(&arg));
        if let Some(r) = range {
            req = req.header("Range", r);
        }
        reply(req.send().await.expect("send")).await
    }

    /// POST the token endpoint with a form.
    pub async fn token_form(&self, form: &[(&str, &str)]) -> Reply {
        let req = self.http.post(self.urls.token_url()).form(form);
        reply(req.send().await.expect("send")).await
    }

    /// Lists a folder to the end; returns (entries, final cursor).
    pub async fn list_all(&self, arg: Value) -> (Vec<Value>, String) {
        let r = self.rpc("files/list_folder", Some(arg)).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let mut v = r.json();
        let mut entries: Vec<Value> = v["entries"].as_array().cloned().unwrap_or_default();
        while v["has_more"] == Value::Bool(true) {
            let r = self
                .rpc("files/list_folder/continue", Some(serde_json::json!({ "cursor": v["cursor"] })))
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
            v = r.json();
            entries.extend(v["entries"].as_array().cloned().unwrap_or_default());
        }
        (entries, v["cursor"].as_str().unwrap_or_default().to_string())
    }

    /// One `continue` call; returns (entries, cursor, has_more).
    pub async fn cont(&self, cursor: &str) -> (Vec<Value>, String, bool) {
        let r = self.rpc("files/list_folder/continue", Some(serde_json::json!({ "cursor": cursor }))).await;
        assert_eq!(r.status, 200, "{}", r.text());
        let v = r.json();
        (
            v["entries"].as_array().cloned().unwrap_or_default(),
            v["cursor"].as_str().unwrap_or_default().to_string(),
            v["has_more"].as_bool().unwrap_or(false),
        )
    }
}

/// JSON with every non-ASCII char escaped (what an SDK puts in Dropbox-API-Arg).
pub fn ascii_json(v: &Value) -> String {
    let mut out = String::new();
    for c in v.to_string().chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out
}

/// `"file /a/b.txt"`, `"folder /a"`, `"deleted /a/c"` summaries of entries.
pub fn describe(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            format!("{} {}", e[".tag"].as_str().unwrap_or("?"), e["path_display"].as_str().unwrap_or("?"))
        })
        .collect()
}

/// Same keys, same JSON types, same `.tag` values, recursively; arrays element-wise.
pub fn shape_eq(expected: &Value, actual: &Value) -> Result<(), String> {
    fn walk(path: &str, e: &Value, a: &Value) -> Result<(), String> {
        match (e, a) {
            (Value::Object(eo), Value::Object(ao)) => {
                let ek: std::collections::BTreeSet<&String> = eo.keys().collect();
                let ak: std::collections::BTreeSet<&String> = ao.keys().collect();
                if ek != ak {
                    return Err(format!("{path}: keys differ: expected {ek:?}, got {ak:?}"));
                }
                for (k, ev) in eo {
                    if k == ".tag" && ev != &ao[k] {
                        return Err(format!("{path}: .tag expected {ev}, got {}", ao[k]));
                    }
                    walk(&format!("{path}.{k}"), ev, &ao[k])?;
                }
                Ok(())
            }
            (Value::Array(ea), Value::Array(aa)) => {
                if ea.len() != aa.len() {
                    return Err(format!("{path}: array length expected {}, got {}", ea.len(), aa.len()));
                }
                for (i, (ev, av)) in ea.iter().zip(aa).enumerate() {
                    walk(&format!("{path}[{i}]"), ev, av)?;
                }
                Ok(())
            }
            (Value::String(_), Value::String(_))
            | (Value::Bool(_), Value::Bool(_))
            | (Value::Null, Value::Null) => Ok(()),
            (Value::Number(en), Value::Number(an)) => {
                if en.is_u64() == an.is_u64() && en.is_f64() == an.is_f64() {
                    Ok(())
                } else {
                    Err(format!("{path}: number kinds differ: {en} vs {an}"))
                }
            }
            _ => Err(format!("{path}: type differs: expected {e}, got {a}")),
        }
    }
    walk("$", expected, actual)
}

#[track_caller]
pub fn assert_shape(expected: &str, actual: &Value) {
    let expected: Value = serde_json::from_str(expected).expect("expected shape is JSON");
    if let Err(e) = shape_eq(&expected, actual) {
        panic!("shape mismatch: {e}\nexpected {expected}\nactual   {actual}");
    }
}

pub fn is_rev(s: &str) -> bool {
    s.len() >= 9 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

pub fn is_id(s: &str) -> bool {
    s.strip_prefix("id:").is_some_and(|r| {
        r.len() == 22 && r.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

pub fn is_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

/// Runs the browser-less authorize step in auto-approve mode; returns the code.
pub async fn authorize_code(env: &Env, client_id: &str, extra: &[(&str, &str)]) -> String {
    env.dbx.set_auto_approve(true);
    let mut params = vec![
        ("client_id", client_id),
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("state", "st4te"),
        ("token_access_type", "offline"),
    ];
    params.extend_from_slice(extra);
    let r = reply(env.http.get(env.urls.authorize_url()).query(&params).send().await.expect("send")).await;
    assert_eq!(r.status, 302, "{}", r.text());
    let loc = r.header("location").expect("location");
    let url = url_query(&loc);
    assert_eq!(url.get("state").map(String::as_str), Some("st4te"));
    url.get("code").cloned().expect("code in redirect")
}

pub fn url_query(loc: &str) -> std::collections::HashMap<String, String> {
    let q = loc.split_once('?').map(|(_, q)| q).unwrap_or_default();
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                let h = u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap_or(b'?');
                out.push(h);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
