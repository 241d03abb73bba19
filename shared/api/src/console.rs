//! The admin console: the External Connections page, served by the API router at `/console`
//! (same origin as `/v1`, which the OAuth browser binding needs). It is static: plain HTML,
//! CSS and ES modules compiled into the binary from `shared/api/console/`, plus
//! `/console/config.json`, which tells the page how it gets its user:
//!
//! - **embedded** (a deployment): the DAM frames the page and hands it the user's JWT by
//!   `postMessage` from one of [`ConsolePage::dam_origins`]. The page holds no token of its own,
//!   and only those origins may frame it (`frame-ancestors`).
//! - **local** (`extconn-local serve`): `config.json` lists the demo users and their dev tokens,
//!   for the page's "signed in as" switch. Local mode checks the `Host` header of every request
//!   (DNS rebinding), so only a page of this server can read them.
//!
//! Every answer here carries a strict Content-Security-Policy (no inline script or style, no
//! connection but to this origin), `X-Content-Type-Options: nosniff` and `Cache-Control:
//! no-store`.

use axum::Router;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use extconn_core::secret::Secret;
use http::{HeaderValue, header};
use serde::Serialize;

use crate::AppState;
use crate::problem::Problem;

/// The page's files: (name under `/console/`, content type, body).
const ASSETS: &[(&str, &str, &str)] = &[
    ("index.html", "text/html; charset=utf-8", include_str!("../console/index.html")),
    ("app.js", "text/javascript; charset=utf-8", include_str!("../console/app.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../console/app.css")),
    ("api.js", "text/javascript; charset=utf-8", include_str!("../console/api.js")),
    ("dom.js", "text/javascript; charset=utf-8", include_str!("../console/dom.js")),
    ("words.js", "text/javascript; charset=utf-8", include_str!("../console/words.js")),
    ("picker.js", "text/javascript; charset=utf-8", include_str!("../console/picker.js")),
    ("details.js", "text/javascript; charset=utf-8", include_str!("../console/details.js")),
];

/// How a deployment or local mode sets the page up.
#[derive(Debug, Clone, Default)]
pub struct ConsolePage {
    /// Origins (`https://dam.example.com`) that may embed the page and hand it a token. Empty:
    /// no one may frame it.
    pub dam_origins: Vec<String>,
    /// Local mode only: the users of the "signed in as" switch. Empty in a deployment.
    pub local_users: Vec<LocalUser>,
}

/// A demo user of local mode, with its dev token.
#[derive(Debug, Clone)]
pub struct LocalUser {
    pub id: String,
    /// What the switch shows, e.g. "Ana Admin — admin of acme".
    pub label: String,
    pub token: Secret,
}

impl ConsolePage {
    /// The page's policy. `frame-ancestors` names the DAM origins (or `'none'`); nothing else
    /// than this origin is ever loaded, posted to, or fetched.
    fn csp(&self) -> String {
        let ancestors =
            if self.dam_origins.is_empty() { "'none'".to_owned() } else { self.dam_origins.join(" ") };
        format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors {ancestors}"
        )
    }
}

/// Parses a comma-separated list of DAM origins (`DAM_ORIGINS`, the `DamOrigins` parameter):
/// each `https://host[:port]` exactly (no path, query, wildcard or trailing slash), or
/// `http://localhost[:port]` / `http://127.0.0.1[:port]` for a developer's DAM. Returns the
/// origins lowercased, in order, without duplicates.
pub fn parse_origins(list: &str) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let origin = raw.to_ascii_lowercase();
        let bad = |why: &str| format!("{raw:?} is not an origin: {why}");
        let (scheme, rest) = origin.split_once("://").ok_or_else(|| bad("it has no scheme"))?;
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        if let Some(p) = port {
            p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| bad("its port is not a number"))?;
        }
        let host_ok = !host.is_empty()
            && host.split('.').all(|l| {
                !l.is_empty()
                    && !l.starts_with('-')
                    && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !host_ok {
            return Err(bad("write scheme://host[:port], with no path, wildcard or trailing slash"));
        }
        let local = host == "localhost" || host == "127.0.0.1";
        match scheme {
            "https" => {}
            "http" if local => {}
            _ => return Err(bad("it must be https (http only for localhost)")),
        }
        if !out.contains(&origin) {
            out.push(origin);
        }
    }
    Ok(out)
}

#[derive(Serialize)]
struct Config<'a> {
    /// `embedded` (a deployment: the token comes from the DAM) or `local`.
    mode: &'static str,
    dam_origins: &'a [String],
    /// Local mode's users (empty in a deployment).
    users: Vec<UserView<'a>>,
    /// Seconds between two auto syncs of a connection.
    sync_interval_secs: u64,
}

#[derive(Serialize)]
struct UserView<'a> {
    id: &'a str,
    label: &'a str,
    token: &'a str,
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(index))
        .route("/console/", get(index))
        .route("/console/config.json", get(config))
        .route("/console/{asset}", get(asset))
}

async fn index(State(st): State<AppState>) -> Response {
    serve(&st, "index.html")
}

async fn asset(State(st): State<AppState>, Path(name): Path<String>) -> Response {
    serve(&st, &name)
}

fn serve(st: &AppState, name: &str) -> Response {
    let page = &st.config().console;
    let Some((_, kind, body)) = ASSETS.iter().find(|(n, _, _)| *n == name) else {
        return harden(page, Problem::not_found().detail("no such file of the console").into_response());
    };
    let mut resp = (*body).into_response();
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    harden(page, resp)
}

async fn config(State(st): State<AppState>) -> Response {
    let page = &st.config().console;
    let body = Config {
        mode: if page.local_users.is_empty() { "embedded" } else { "local" },
        dam_origins: &page.dam_origins,
        users: page
            .local_users
            .iter()
            .map(|u| UserView { id: &u.id, label: &u.label, token: u.token.expose() })
            .collect(),
        sync_interval_secs: st.config().sync_interval_secs,
    };
    harden(page, axum::Json(body).into_response())
}

fn harden(page: &ConsolePage, mut resp: Response) -> Response {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&page.csp()) {
        h.insert(header::CONTENT_SECURITY_POLICY, v);
    }
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_exact_and_https() {
        assert_eq!(
            parse_origins(" https://DAM.example.com, http://localhost:5173,https://dam.example.com ")
                .unwrap(),
            vec!["https://dam.example.com", "http://localhost:5173"]
        );
        assert_eq!(parse_origins("").unwrap(), Vec::<String>::new());
        for bad in [
            "dam.example.com",
            "http://dam.example.com",
            "https://dam.example.com/",
            "https://dam.example.com/console",
            "https://*.example.com",
            "https://dam.example.com:0",
            "https://dam.example.com:99999",
            "https://dam.example.com?x=1",
            "javascript://x",
        ] {
            let e = parse_origins(bad).expect_err(bad);
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn frame_ancestors_names_the_dam_or_none() {
        let none = ConsolePage::default().csp();
        assert!(none.ends_with("frame-ancestors 'none'"), "{none}");
        assert!(none.contains("script-src 'self';") && !none.contains("unsafe"), "{none}");
        let dam = ConsolePage {
            dam_origins: vec!["https://a.example".into(), "https://b.example".into()],
            ..Default::default()
        }
        .csp();
        assert!(dam.ends_with("frame-ancestors https://a.example https://b.example"), "{dam}");
    }

    #[test]
    fn every_asset_the_page_names_is_served() {
        let index = ASSETS[0].2;
        for (name, _, _) in &ASSETS[1..] {
            assert!(
                index.contains(name) || ASSETS.iter().any(|(_, _, b)| b.contains(name)),
                "{name} is never loaded"
            );
        }
    }
}
