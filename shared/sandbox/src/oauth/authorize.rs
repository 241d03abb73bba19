//! The browser-facing half of the authorization server: the authorize endpoint (consent
//! page or auto-approve) and the consent form's decision.
//!
//! The consent page's buttons have the ids `allow` and `deny` (a browser test clicks
//! them); the form posts a server-side pending id, the decision, and optionally the
//! chosen account. A validated error goes back to the redirect URI as
//! `error`/`error_description`/`state`; nothing is ever redirected to an unregistered
//! URI.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::{AuthRequest, Challenge, ChallengeMethod, OAuthServer, Params, parse_form};

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    r
}

/// Normalises a space-separated scope list (sorted, de-duplicated).
pub(super) fn normalise_scope(s: &str) -> String {
    let mut v: Vec<&str> = s.split_whitespace().collect();
    v.sort_unstable();
    v.dedup();
    v.join(" ")
}

impl OAuthServer {
    fn error_page(&self, status: StatusCode, msg: &str) -> Response {
        html(
            status,
            format!(
                "<!doctype html><html><head><title>{} (sandbox) - error</title></head>\
                 <body><h1>Error</h1><p id=\"error\">{}</p></body></html>",
                self.settings.provider,
                escape_html(msg)
            ),
        )
    }

    fn redirect_with(&self, uri: &str, params: &[(&str, &str)]) -> Response {
        let Ok(mut u) = url::Url::parse(uri) else {
            return self.error_page(StatusCode::BAD_REQUEST, "redirect_uri is not a valid URL");
        };
        {
            let mut q = u.query_pairs_mut();
            for (k, v) in params {
                q.append_pair(k, v);
            }
        }
        // 302 Found, as the providers answer (axum's `Redirect::to` would be 303).
        match HeaderValue::from_str(u.as_str()) {
            Ok(loc) => {
                let mut r = Response::new(Body::empty());
                *r.status_mut() = StatusCode::FOUND;
                r.headers_mut().insert(header::LOCATION, loc);
                r
            }
            Err(_) => self.error_page(StatusCode::BAD_REQUEST, "redirect_uri is not a valid header value"),
        }
    }

    /// Sends the user agent back with an OAuth error (only after `redirect_uri` has been
    /// validated), or shows it when there is no redirect URI.
    fn deny_redirect(&self, req: &AuthRequest, error: &str, description: &str) -> Response {
        match &req.redirect_uri {
            Some(uri) => {
                let mut params = vec![("error", error), ("error_description", description)];
                if let Some(s) = &req.state {
                    params.push(("state", s.as_str()));
                }
                self.redirect_with(uri, &params)
            }
            None => self.error_page(StatusCode::BAD_REQUEST, &format!("{error}: {description}")),
        }
    }

    fn approve_redirect(&self, req: &AuthRequest, code: &str) -> Response {
        match &req.redirect_uri {
            Some(uri) => {
                let mut params = vec![("code", code)];
                if let Some(s) = &req.state {
                    params.push(("state", s.as_str()));
                }
                self.redirect_with(uri, &params)
            }
            None => html(
                StatusCode::OK,
                format!(
                    "<!doctype html><html><head><title>{} (sandbox) - code</title></head><body>\
                     <p>Enter this code into the app:</p><code id=\"code\">{}</code></body></html>",
                    self.settings.provider,
                    escape_html(code)
                ),
            ),
        }
    }

    /// Validates an authorize request. `Err` is the response to send (not boxed, like
    /// the provider route helpers).
    #[allow(clippy::result_large_err)]
    fn parse_authorize(&self, q: &Params) -> Result<AuthRequest, Response> {
        let client_id = q.get("client_id").map(String::as_str).unwrap_or_default();
        let Some(client) = self.client(client_id) else {
            return Err(
                self.error_page(StatusCode::BAD_REQUEST, &format!("Invalid client_id: \"{client_id}\"."))
            );
        };
        let redirect_uri = q.get("redirect_uri").cloned();
        if let Some(uri) = &redirect_uri
            && !client.redirect_uris.iter().any(|r| r == uri)
        {
            return Err(self.error_page(
                StatusCode::BAD_REQUEST,
                &format!(
                    "Invalid redirect_uri: \"{uri}\". It must exactly match one of the redirect URIs you've pre-configured for your app (including the path)."
                ),
            ));
        }
        let mut req = AuthRequest {
            client_id: client_id.to_string(),
            redirect_uri,
            state: q.get("state").cloned(),
            challenge: None,
            scope: self.settings.default_scope.to_string(),
            offline: false,
            prompt: q.get("prompt").cloned(),
        };
        if q.get("response_type").map(String::as_str) != Some("code") {
            return Err(self.deny_redirect(
                &req,
                "unsupported_response_type",
                "Only response_type=code is supported.",
            ));
        }
        req.offline = match (self.settings.offline)(q) {
            Ok(offline) => offline,
            Err(description) => return Err(self.deny_redirect(&req, "invalid_request", &description)),
        };
        if let Some(scope) = q.get("scope").filter(|s| !s.trim().is_empty()) {
            req.scope = normalise_scope(scope);
        }
        if let Some(value) = q.get("code_challenge") {
            let method = match q.get("code_challenge_method").map(String::as_str) {
                Some("S256") => ChallengeMethod::S256,
                Some("plain") | None => ChallengeMethod::Plain,
                Some(other) => {
                    return Err(self.deny_redirect(
                        &req,
                        "invalid_request",
                        &format!("Invalid code_challenge_method: \"{other}\"."),
                    ));
                }
            };
            let ok_chars = value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b));
            if !(43..=128).contains(&value.len()) || !ok_chars {
                return Err(self.deny_redirect(
                    &req,
                    "invalid_request",
                    "code_challenge must be 43-128 chars of [A-Za-z0-9-._~].",
                ));
            }
            req.challenge = Some(Challenge { value: value.clone(), method });
        }
        Ok(req)
    }

    /// The authorize endpoint (`GET`, raw query string): a consent page, or with
    /// auto-approve a redirect with a code for the login account.
    pub(crate) fn authorize(&self, raw_query: &str) -> Response {
        let q = parse_form(raw_query.as_bytes());
        let req = match self.parse_authorize(&q) {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        let now = self.now();
        let provider = self.settings.provider;
        let mut st = self.lock();
        let Some(login) = st.login().map(|a| a.id.clone()) else {
            return self.error_page(
                StatusCode::BAD_REQUEST,
                &format!("The sandbox has no {provider} account to log in with; create one first."),
            );
        };
        if st.auto_approve {
            let code = st.new_code(self.settings.code_prefix, req.clone(), login, now);
            return self.approve_redirect(&req, &code);
        }
        let pending_id = uuid::Uuid::new_v4().simple().to_string();
        let options: String = st
            .accounts
            .iter()
            .map(|a| {
                format!(
                    "<option value=\"{}\"{}>{} &lt;{}&gt;</option>",
                    escape_html(&a.id),
                    if a.id == login { " selected" } else { "" },
                    escape_html(&a.display_name),
                    escape_html(&a.email)
                )
            })
            .collect();
        let scope = escape_html(&req.scope);
        let app = escape_html(&req.client_id);
        let action = escape_html(&self.settings.decision_path);
        st.pending.insert(pending_id.clone(), req);
        html(
            StatusCode::OK,
            format!(
                "<!doctype html><html><head><title>{provider} (sandbox) - authorize</title></head><body>\
                 <h1>Allow the app \"{app}\" to access your {provider}?</h1>\
                 <p>It asks for: <span id=\"scope\">{scope}</span></p>\
                 <form method=\"post\" action=\"{action}\">\
                 <input type=\"hidden\" name=\"pending\" value=\"{pending_id}\">\
                 <p><label>Signed in as <select name=\"account\">{options}</select></label></p>\
                 <button type=\"submit\" name=\"decision\" value=\"allow\" id=\"allow\">Allow</button> \
                 <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button>\
                 </form></body></html>"
            ),
        )
    }

    /// The consent form's `POST` (form: `pending`, `decision=allow|deny`, optional
    /// `account`).
    pub(crate) fn decision(&self, body: &[u8]) -> Response {
        let form = parse_form(body);
        let now = self.now();
        let mut st = self.lock();
        let Some(req) = form.get("pending").and_then(|p| st.pending.remove(p)) else {
            return self.error_page(
                StatusCode::BAD_REQUEST,
                "This authorization request is unknown or was already answered.",
            );
        };
        match form.get("decision").map(String::as_str) {
            Some("allow") => {
                let chosen = match form.get("account") {
                    Some(id) => st.account(id).map(|a| a.id.clone()),
                    None => st.login().map(|a| a.id.clone()),
                };
                let Some(account) = chosen else {
                    return self.error_page(StatusCode::BAD_REQUEST, "Unknown account.");
                };
                let code = st.new_code(self.settings.code_prefix, req.clone(), account, now);
                self.approve_redirect(&req, &code)
            }
            _ => self.deny_redirect(&req, "access_denied", self.settings.denied_description),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::server;
    use super::*;
    use crate::OAuthClient;

    fn client() -> OAuthClient {
        OAuthClient {
            service: crate::Service::Dropbox,
            client_id: "app".into(),
            client_secret: String::new(),
            redirect_uris: vec!["http://localhost/cb".into()],
        }
    }

    fn location(r: &Response) -> Option<String> {
        r.headers().get(header::LOCATION).and_then(|v| v.to_str().ok()).map(str::to_string)
    }

    #[test]
    fn scope_is_normalised() {
        assert_eq!(
            normalise_scope("files.metadata.read  account_info.read files.metadata.read"),
            "account_info.read files.metadata.read"
        );
    }

    #[tokio::test]
    async fn the_provider_offline_rule_wording_and_decision_path_are_used() {
        let s = server(vec![client()]);
        let r = s.authorize("client_id=app&response_type=code&redirect_uri=http%3A%2F%2Flocalhost%2Fcb&access_type=weird&state=x");
        assert_eq!(r.status(), StatusCode::FOUND);
        let loc = location(&r).expect("redirect");
        assert!(loc.contains("error=invalid_request") && loc.contains("bad+access_type+weird"), "{loc}");
        assert!(loc.contains("state=x"), "{loc}");

        let r = s.authorize("client_id=app&response_type=code&redirect_uri=http%3A%2F%2Fevil%2Fcb");
        assert_eq!((r.status(), location(&r)), (StatusCode::BAD_REQUEST, None));

        let r = s.authorize("client_id=app&response_type=code&redirect_uri=http%3A%2F%2Flocalhost%2Fcb");
        assert_eq!(r.status(), StatusCode::OK);
        let body = axum::body::to_bytes(r.into_body(), usize::MAX).await.expect("body");
        let page = String::from_utf8_lossy(&body);
        assert!(page.contains("action=\"/acme/decide\""), "{page}");
        assert!(
            page.contains("to access your Acme?") && page.contains("Acme (sandbox) - authorize"),
            "{page}"
        );
        assert!(page.contains("id=\"allow\"") && page.contains("id=\"deny\""), "{page}");
    }
}
