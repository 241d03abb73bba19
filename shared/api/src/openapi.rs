//! The OpenAPI 3.1 document, served at `/v1/openapi.json`. Its paths are generated from
//! [`crate::ROUTES`], the table the router is built from.

use serde_json::{Map, Value, json};

use extconn_core::ProviderKind;

use crate::ROUTES;
use crate::problem::ProblemKind;

/// `a, b or c` / `A, B and C`: the document names the providers the core knows, none itself.
fn listing(words: impl Iterator<Item = &'static str>, last: &str) -> String {
    let words: Vec<&str> = words.collect();
    match words.split_last() {
        Some((tail, head)) if !head.is_empty() => format!("{} {last} {tail}", head.join(", ")),
        Some((only, _)) => (*only).to_owned(),
        None => String::new(),
    }
}

fn provider_ids() -> impl Iterator<Item = &'static str> {
    ProviderKind::ALL.into_iter().map(ProviderKind::as_str)
}

fn problem(description: &str) -> Value {
    json!({ "description": description, "content": { "application/problem+json": { "schema": { "$ref": "#/components/schemas/Problem" } } } })
}

fn ok(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

fn body(schema: &str) -> Value {
    json!({ "required": true, "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } })
}

/// A body that may be left out (no body at all means its defaults).
fn optional_body(schema: &str) -> Value {
    let mut b = body(schema);
    b["required"] = json!(false);
    b
}

fn r(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn path_param(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "path", "required": true, "description": description, "schema": schema })
}

/// A generated id (`extconn_core::ids`): the prefix, `_`, 26 base32 characters. Another shape
/// names nothing (404).
fn generated_id(prefix: &str) -> Value {
    json!({ "type": "string", "pattern": format!("^{prefix}_[a-z2-7]{{26}}$") })
}

/// An optional query parameter as strict as the server: every one of them refuses an empty
/// value (400), so each schema says what a value must be.
fn query(name: &str, description: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": schema })
}

/// A non-empty string of at most `max` bytes.
fn text(max: usize) -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": max })
}

/// A page token as issued (`paging`): non-empty base64url with one `.`.
fn page_token() -> Value {
    json!({ "type": "string", "minLength": 1, "pattern": "^[A-Za-z0-9_-]+\\.[A-Za-z0-9_-]+$" })
}

/// A provider folder id: the union of the shapes the connectors accept (`accepts_id`): Dropbox
/// `id:` + base64url-ish, Google Drive `[A-Za-z0-9_-]`, SharePoint also `!.,`. Only the grant
/// says which service an id must belong to, so another service's id is a 400 naming the field.
fn folder_id() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 512, "pattern": "^(id:[A-Za-z0-9_-]+|[A-Za-z0-9_!.,-]+)$" })
}

/// A drive id: printable ASCII, no spaces.
fn drive_id() -> Value {
    json!({ "type": "string", "minLength": 1, "maxLength": 512, "pattern": "^[!-~]+$" })
}

fn page_of(item: &str) -> Value {
    json!({ "type": "object", "required": ["items", "next_page"], "properties": {
        "items": { "type": "array", "items": r(item) },
        "next_page": { "type": ["string", "null"], "description": "Opaque token for the next page; null on the last page." } } })
}

/// (summary, parameters, request body, success status, success response) per operation.
fn operation(op: &str) -> (&'static str, Vec<Value>, Option<Value>, &'static str, Value) {
    let conn = || path_param("id", "Connection id", generated_id("con"));
    let paging = || {
        vec![
            query("page", "Page token from the previous page", page_token()),
            query("limit", "1–200, default 50", json!({ "type": "integer", "minimum": 1, "maximum": 200 })),
        ]
    };
    match op {
        "listProviders" => {
            ("Services and whether each is configured", vec![], None, "200", ok("Providers", r("Providers")))
        }
        "startAuthorization" => (
            "Start connecting an account (OAuth authorization code + PKCE)",
            vec![],
            Some(body("AuthorizeRequest")),
            "200",
            ok("Where to send the browser", r("Authorization")),
        ),
        "oauthCallback" => (
            "OAuth redirect target (public): consumes the state, stores the grant, redirects to the folder picker",
            vec![
                path_param("provider", &listing(provider_ids(), "or"), r("Provider")),
                {
                    // Without a state the callback is refused (400 oauth/invalid-state).
                    let mut p = query("state", "The state of the authorization request", text(4096));
                    p["required"] = json!(true);
                    p
                },
                query("code", "Authorization code; required unless error is given", text(4096)),
                query("error", "Provider error code, e.g. access_denied", json!({ "type": "string" })),
                query("error_description", "Provider error text (never shown)", json!({ "type": "string" })),
            ],
            None,
            "303",
            json!({ "description": "Redirect to the console with provider and grant_id (and reconnected=1 when the account's existing grant was reconnected); to a browser's navigation (Accept: text/html) also when it failed, with provider and error=<problem type>, e.g. oauth/access-denied. Other clients get the problem itself" }),
        ),
        "listFolders" => (
            "Folder picker: one level of folders",
            vec![
                path_param("grant", "Grant id", generated_id("gra")),
                query(
                    "parent",
                    "Provider folder id; absent = the top level (account root, drives or sites)",
                    folder_id(),
                ),
                query(
                    "drive",
                    "The parent's drive id, as the picker returned it (SharePoint libraries, shared drives)",
                    drive_id(),
                ),
                query("page", "Page token", page_token()),
            ],
            None,
            "200",
            ok("Folders", page_of("Folder")),
        ),
        "createConnection" => (
            "Connect a folder; queues the initial import",
            vec![],
            Some(body("CreateConnection")),
            "201",
            ok("The new connection", r("ConnectionDetails")),
        ),
        "listConnections" => {
            let mut p = vec![query("provider", "Only this service", r("Provider"))];
            p.extend(paging());
            ("The management table", p, None, "200", ok("Rows", page_of("ConnectionRow")))
        }
        "getConnection" => (
            "Connection details with recent runs",
            vec![conn()],
            None,
            "200",
            ok("Details", r("ConnectionDetails")),
        ),
        "updateConnection" => (
            "Toggle Auto sync",
            vec![conn()],
            Some(body("UpdateConnection")),
            "200",
            ok("Details", r("ConnectionDetails")),
        ),
        "deleteConnection" => (
            "Delete the connection (imported assets stay)",
            vec![conn()],
            None,
            "204",
            json!({ "description": "Deleted" }),
        ),
        "refreshConnection" => (
            "Refresh Items: queue a sync now (only while Auto sync is on); returns the open run if one exists",
            vec![conn()],
            None,
            "202",
            ok("The queued or running run", r("RunRef")),
        ),
        "retryFailed" => (
            "Retry every failed file now, whatever its backoff and whatever Auto sync says: the open run is told to, or a run is queued",
            vec![conn()],
            None,
            "202",
            ok("The queued or running run", r("RunRef")),
        ),
        "confirmDeletions" => (
            "Answer the mass-delete guard of a needs_review connection: apply the held deletions (the default) or discard them and list the folder again in full; queues a run",
            vec![conn()],
            Some(optional_body("ConfirmDeletions")),
            "202",
            ok("The queued or running run", r("RunRef")),
        ),
        "listRuns" => {
            let mut p = vec![conn()];
            p.extend(paging());
            ("Sync history, newest first", p, None, "200", ok("Runs", page_of("Run")))
        }
        "listItems" => {
            let mut p = vec![
                conn(),
                query(
                    "state",
                    "imported, skipped, failed or source_deleted",
                    json!({ "type": "string", "enum": ["imported", "skipped", "failed", "source_deleted"] }),
                ),
            ];
            p.extend(paging());
            ("Per-file state", p, None, "200", ok("Items", page_of("Item")))
        }
        "openapi" => ("This document", vec![], None, "200", ok("OpenAPI 3.1", json!({ "type": "object" }))),
        other => unreachable!("ROUTES names an operation without a description: {other}"),
    }
}

fn schemas() -> Value {
    let counters = json!({ "type": "object", "additionalProperties": { "type": "integer" } });
    let ts = json!({ "type": ["string", "null"], "format": "date-time" });
    json!({
        "Problem": { "type": "object", "required": ["type", "title", "status"], "properties": {
            "type": { "type": "string", "enum": ProblemKind::ALL.iter().map(|k| k.type_uri()).collect::<Vec<_>>() },
            "title": { "type": "string" }, "status": { "type": "integer" }, "detail": { "type": "string" },
            "invalid_params": { "type": "array", "items": { "type": "object", "required": ["name", "reason"], "properties": {
                "name": { "type": "string", "description": "JSON Pointer for body fields, the name for query parameters" },
                "reason": { "type": "string" } } } } } },
        "Provider": { "type": "string", "enum": provider_ids().collect::<Vec<_>>() },
        "Providers": { "type": "object", "required": ["providers"], "properties": { "providers": { "type": "array", "items": {
            "type": "object", "required": ["provider", "name", "configured"], "properties": {
                "provider": r("Provider"), "name": { "type": "string" }, "configured": { "type": "boolean" } } } } } },
        "AuthorizeRequest": { "type": "object", "additionalProperties": false, "required": ["provider"], "properties": { "provider": r("Provider") } },
        "Authorization": { "type": "object", "required": ["authorization_url", "expires_at"], "properties": {
            "authorization_url": { "type": "string", "format": "uri" }, "expires_at": { "type": "string", "format": "date-time" } } },
        "Folder": { "type": "object", "required": ["id", "name", "kind", "selectable"], "properties": {
            "id": { "type": "string" }, "drive_id": { "type": "string" }, "name": { "type": "string" }, "path": { "type": "string" },
            "kind": { "type": "string", "enum": ["folder", "drive", "site"] }, "selectable": { "type": "boolean" } } },
        "CreateConnection": { "type": "object", "additionalProperties": false, "required": ["grant_id", "folder_id", "auto_sync"], "properties": {
            "grant_id": generated_id("gra"), "folder_id": folder_id(),
            "drive_id": drive_id(), "auto_sync": { "type": "boolean" } } },
        "UpdateConnection": { "type": "object", "additionalProperties": false, "required": ["auto_sync"], "properties": { "auto_sync": { "type": "boolean" } } },
        "ConnectionRow": { "type": "object", "required": ["id", "provider", "folder_name", "auto_sync", "status"], "properties": {
            "id": { "type": "string" }, "provider": r("Provider"), "folder_name": { "type": "string" }, "folder_path": { "type": "string" },
            "last_synced_at": ts, "synced_by": { "type": "object", "properties": { "user_id": { "type": "string" }, "display_name": { "type": "string" } } },
            "auto_sync": { "type": "boolean" },
            "status": { "type": "string", "enum": ["active", "syncing", "reauth_required", "folder_unavailable", "error", "needs_review"] },
            "status_reason": { "type": ["string", "null"], "description": "error: what failed; needs_review: the held deletions" },
            "held_deletions": { "type": ["integer", "null"], "description": "needs_review: how many files the held run would mark deleted" },
            "current_run_id": { "type": ["string", "null"] }, "counters": counters, "created_at": { "type": "string", "format": "date-time" },
            "account": { "type": ["object", "null"], "description": "The provider account the folder is read with",
                "properties": { "id": { "type": "string" }, "name": { "type": "string" }, "email": { "type": ["string", "null"] } } } } },
        "ConnectionDetails": { "allOf": [ r("ConnectionRow"), { "type": "object", "properties": {
            "approved_deletions": { "type": ["integer", "null"], "description": "Confirmed deletions the next run may apply" },
            "settings": { "type": "object", "description": "v1 settings: fixed, read-only" },
            "recent_runs": { "type": "array", "items": r("Run") }, "failed_items": { "type": "array", "items": r("Item") } } } ] },
        "RunRef": { "type": "object", "required": ["run_id", "status", "started"], "properties": { "run_id": { "type": "string" }, "status": { "type": "string" },
            "started": { "type": "boolean", "description": "true: this call queued the run; false: the run already open" } } },
        "ConfirmDeletions": { "type": "object", "additionalProperties": false, "properties": {
            "action": { "type": "string", "enum": ["apply", "discard"], "default": "apply" } } },
        "Run": { "type": "object", "required": ["id", "trigger", "status"], "properties": {
            "id": { "type": "string" }, "trigger": { "type": "string", "enum": ["initial", "schedule", "manual", "webhook"] },
            "status": { "type": "string", "enum": ["queued", "running", "succeeded", "partial", "failed", "reauth_required", "needs_review"] },
            "actor": { "type": ["string", "null"] }, "queued_at": { "type": "string", "format": "date-time" }, "started_at": ts, "finished_at": ts,
            "counters": counters, "error": { "type": ["string", "null"] },
            "retry_failed": { "type": "boolean", "description": "Retries every failed file whatever its backoff" } } },
        "Item": { "type": "object", "required": ["id", "name", "path", "state"], "properties": {
            "id": { "type": "string" }, "name": { "type": "string" }, "path": { "type": "string" }, "is_folder": { "type": "boolean" },
            "state": { "type": "string", "enum": ["imported", "skipped", "failed", "source_deleted"] },
            "reason": { "type": ["string", "null"], "description": "A stable code, e.g. access_denied, too_large" },
            "error": { "type": ["string", "null"], "description": "The last error in words" },
            "warning": { "type": "string", "description": "imported: kept although the bytes differ from the listing (SharePoint rewrites Office files on download)" },
            "size": { "type": ["integer", "null"] }, "attempts": { "type": "integer" },
            "next_attempt_at": { "type": ["string", "null"], "format": "date-time", "description": "failed: when a later run tries it again" },
            "asset_key": { "type": ["string", "null"] }, "updated_at": { "type": "string", "format": "date-time" } } }
    })
}

/// Routes that need no identity.
pub fn is_public(op: &str) -> bool {
    matches!(op, "oauthCallback" | "openapi")
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for (method, path, op) in ROUTES {
        let (summary, parameters, request, status, success) = operation(op);
        let mut responses = Map::new();
        responses.insert(status.into(), success);
        // What every operation can answer: the HTTP layer's limits (`handlers::limits`) included.
        for (code, what) in [
            ("400", "Invalid request"),
            ("404", "Not found"),
            ("414", "Path and query over 8 KiB"),
            ("431", "Headers over 16 KiB or 64 fields"),
            ("500", "Internal error"),
        ] {
            responses.insert(code.into(), problem(what));
        }
        if !is_public(op) {
            responses.insert("401".into(), problem("No identity"));
            responses.insert("403".into(), problem("Not a client admin"));
        }
        if request.is_some() {
            responses.insert("413".into(), problem("Body over 16 KiB"));
            responses.insert("415".into(), problem("Not application/json"));
        }
        if matches!(
            *op,
            "startAuthorization"
                | "createConnection"
                | "refreshConnection"
                | "retryFailed"
                | "confirmDeletions"
                | "listFolders"
                | "oauthCallback"
        ) {
            responses.insert("409".into(), problem("Conflict with the current state"));
        }
        // The operations that call the provider (`extconn_core`: the code exchange and account,
        // a folder listing, the folder check; a token refresh on the way).
        if matches!(*op, "oauthCallback" | "listFolders" | "createConnection") {
            responses.insert("502".into(), problem("The service is unavailable or rate limiting"));
        }
        let mut operation = json!({ "operationId": op, "summary": summary, "responses": responses });
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if let Some(b) = request {
            operation["requestBody"] = b;
        }
        if is_public(op) {
            operation["security"] = json!([]);
        }
        let entry = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        entry[method.as_str().to_ascii_lowercase()] = operation;
    }
    json!({
        "openapi": "3.1.0",
        "info": { "title": "External Connections admin API", "version": "1.0.0",
                  "description": format!(
                      "Connect {} folders and import their files as DAM assets. Errors are RFC 9457 problem+json.",
                      listing(ProviderKind::ALL.into_iter().map(ProviderKind::display_name), "and")) },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "paths": paths,
        "components": { "schemas": schemas(), "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" } } }
    })
}
