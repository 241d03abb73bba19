//! The HTTP mirror of [`GoogleDriveControl`].
//!
//! All `POST {base}/_control/google_drive/<op>` with a JSON body (`GET .../urls` too);
//! they answer JSON, or 400 `{"error": "..."}`. `content` and `fault` have the shapes
//! shared by every provider (see `crate::control::http`). Nodes are the neutral
//! [`crate::Node`] (`id`, `name`, `parent_id`, `is_folder`, `size`, `sha256`).
//!
//! | op | body | answer |
//! |---|---|---|
//! | `urls` | – | `GoogleDriveUrls` |
//! | `accounts` | `{display_name, email}` | `{"account_id", "root_id"}` |
//! | `login_account` | `{account_id}` | `{}` |
//! | `auto_approve` | `{enabled}` | `{}` |
//! | `add_folder` | `{account_id, parent, name}` | node |
//! | `add_file` | `{account_id, parent, name, content, mime_type?}` | node |
//! | `add_native` | `{account_id, parent, name, mime_type, export?: content}` | node |
//! | `add_shortcut` | `{account_id, parent, name, target_id}` | node |
//! | `add_shared_drive` | `{account_id, name}` | `{"drive_id"}` |
//! | `modify_file` | `{account_id, id, content}` | node |
//! | `move_entry` | `{account_id, id, parent?, name?}` | node |
//! | `trash`, `untrash` | `{account_id, id}` | node |
//! | `delete` | `{account_id, id}` | `{}` |
//! | `set_can_download` | `{account_id, id, enabled}` | node |
//! | `set_file_error` | `{id, status, reason}` | `{}` |
//! | `clear_file_error` | `{id}` | `{}` |
//! | `file` | `{account_id, id}` | the `files.get` JSON |
//! | `list_files` | `{account_id, folder}` | `[node]` |
//! | `sha256` | `{account_id, id}` | `{"sha256"}` |
//! | `mint_tokens` | `{account_id, client_id}` | `{"access_token","refresh_token"}` |
//! | `expire_access_tokens`, `revoke_all`, `reset_cursors`, `reset_counters`, `clear_faults` | – | `{}` |
//! | `inject` | `{endpoint, fault, times}` | `{}` |
//! | `calls` | `{endpoint}` | `{"count"}` |
//! | `call_log` | – | `[{"endpoint","at_unix_ms","status"}]` |
//! | `canaries` | – | `["..."]` |
//!
//! `endpoint` is the [`crate::google_drive::Endpoint`] variant name (`"FilesList"`,
//! `"Download"`, …).

use axum::Router;
use serde::Deserialize;
use serde_json::{Value, json};

use super::GoogleDriveControl;
use crate::control::ControlError;
use crate::control::http::{ContentSpec, FaultSpec, arg, call_log_json, to_json};
use crate::google_drive::Endpoint;

/// Routes under `/_control/google_drive` (`GET` for `urls` too).
pub(crate) fn router(ctl: GoogleDriveControl) -> Router {
    crate::control::http::router("/_control/google_drive", ctl, &["urls"], dispatch)
}

#[derive(Deserialize)]
struct AcctId {
    account_id: String,
    id: String,
}

fn one() -> u32 {
    1
}

fn dispatch(ctl: &GoogleDriveControl, op: &str, body: &[u8]) -> Result<Value, String> {
    let err = |e: ControlError| e.to_string();
    let done = Ok(json!({}));
    match op {
        "urls" => to_json(ctl.urls()),
        "accounts" => {
            #[derive(Deserialize)]
            struct A {
                display_name: String,
                email: String,
            }
            let a: A = arg(body)?;
            let id = ctl.create_account(&a.display_name, &a.email);
            Ok(json!({ "root_id": ctl.root(&id).map_err(err)?, "account_id": id }))
        }
        "login_account" => {
            #[derive(Deserialize)]
            struct A {
                account_id: String,
            }
            ctl.set_login_account(&arg::<A>(body)?.account_id).map_err(err)?;
            done
        }
        "auto_approve" => {
            #[derive(Deserialize)]
            struct A {
                enabled: bool,
            }
            ctl.set_auto_approve(arg::<A>(body)?.enabled);
            done
        }
        "add_folder" => {
            #[derive(Deserialize)]
            struct A {
                account_id: String,
                parent: String,
                name: String,
            }
            let a: A = arg(body)?;
            to_json(ctl.add_folder(&a.account_id, &a.parent, &a.name).map_err(err)?)
        }
        "add_file" => {
            #[derive(Deserialize)]
            struct A {
                account_id: String,
                parent: String,
                name: String,
                content: ContentSpec,
                mime_type: Option<String>,
            }
            let a: A = arg(body)?;
            let mime = a.mime_type.as_deref().unwrap_or("application/octet-stream");
            to_json(
                ctl.add_file_typed(&a.account_id, &a.parent, &a.name, mime, a.content.into_content()?)
                    .map_err(err)?,
            )
        }
        "add_native" => {
            #[derive(Deserialize)]
            struct A {
                account_id: String,
                parent: String,
                name: String,
                mime_type: String,
                export: Option<ContentSpec>,
            }
            let a: A = arg(body)?;
            let export = a.export.map(ContentSpec::into_content).transpose()?;
            to_json(ctl.add_native(&a.account_id, &a.parent, &a.name, &a.mime_type, export).map_err(err)?)
        }
        "add_shortcut" => {
            #[derive(Deserialize)]
            struct A {
                account_id: String,
                parent: String,
                name: String,
                target_id: String,
            }
            let a: A = arg(body)?;
            to_json(ctl.add_shortcut(&a.account_id, &a.parent, &a.name, &a.target_id).map_err(err)?)
        }
        "add_shared_drive" => {
            #[derive(Deserialize)]
            struct A {
                account_id: String,
                name: String,
            }
            let a: A = arg(body)?;
            Ok(json!({ "drive_id": ctl.add_shared_drive(&a.account_id, &a.name).map_err(err)? }))
        }
        "modify_file" => {
            #[derive(Deserialize)]
            struct A {
                account_id: String,
                id: String,
                content: ContentSpec,
            }
            let a: A = arg(body)?;
            to_json(ctl.modify_file(&a.account_id, &a.id, a.content.into_content()?).map_err(err)?)
        }
        "move_entry" => {
            #[derive(Deserialize)]
            struct A {
                account_id: String,
                id: String,
                parent: Option<String>,
                name: Option<String>,
            }
            let a: A = arg(body)?;
            to_json(
                ctl.move_entry(&a.account_id, &a.id, a.parent.as_deref(), a.name.as_deref()).map_err(err)?,
            )
        }
        "trash" => {
            let a: AcctId = arg(body)?;
            to_json(ctl.trash(&a.account_id, &a.id).map_err(err)?)
        }
        "untrash" => {
            let a: AcctId = arg(body)?;
            to_json(ctl.untrash(&a.account_id, &a.id).map_err(err)?)
        }
        "delete" => {
            let a: AcctId = arg(body)?;
            ctl.delete(&a.account_id, &a.id).map_err(err)?;
            done
        }
        "set_can_download" => {
            #[derive(Deserialize)]
            struct A {
                account_id: String,
                id: String,
                enabled: bool,
            }
            let a: A = arg(body)?;
            to_json(ctl.set_can_download(&a.account_id, &a.id, a.enabled).map_err(err)?)
        }
        "set_file_error" => {
            #[derive(Deserialize)]
            struct A {
                id: String,
                status: u16,
                reason: String,
            }
            let a: A = arg(body)?;
            ctl.set_file_error(&a.id, a.status, &a.reason);
            done
        }
        "clear_file_error" => {
            #[derive(Deserialize)]
            struct A {
                id: String,
            }
            ctl.clear_file_error(&arg::<A>(body)?.id);
            done
        }
        "file" => {
            let a: AcctId = arg(body)?;
            ctl.file_json(&a.account_id, &a.id).map_err(err)
        }
        "list_files" => {
            #[derive(Deserialize)]
            struct A {
                account_id: String,
                folder: String,
            }
            let a: A = arg(body)?;
            to_json(ctl.list_files(&a.account_id, &a.folder).map_err(err)?)
        }
        "sha256" => {
            let a: AcctId = arg(body)?;
            Ok(json!({ "sha256": ctl.sha256(&a.account_id, &a.id).map_err(err)? }))
        }
        "mint_tokens" => {
            #[derive(Deserialize)]
            struct A {
                account_id: String,
                client_id: String,
            }
            let a: A = arg(body)?;
            let t = ctl.mint_tokens(&a.account_id, &a.client_id).map_err(err)?;
            Ok(json!({ "access_token": t.access_token, "refresh_token": t.refresh_token }))
        }
        "expire_access_tokens" => {
            ctl.expire_access_tokens();
            done
        }
        "revoke_all" => {
            ctl.revoke_all();
            done
        }
        "reset_cursors" => {
            ctl.reset_cursors();
            done
        }
        "reset_counters" => {
            ctl.reset_counters();
            done
        }
        "clear_faults" => {
            ctl.clear_faults();
            done
        }
        "inject" => {
            #[derive(Deserialize)]
            struct A {
                endpoint: Endpoint,
                fault: FaultSpec,
                #[serde(default = "one")]
                times: u32,
            }
            let a: A = arg(body)?;
            ctl.inject(a.endpoint, a.fault.into(), a.times);
            done
        }
        "calls" => {
            #[derive(Deserialize)]
            struct A {
                endpoint: Endpoint,
            }
            Ok(json!({ "count": ctl.calls(arg::<A>(body)?.endpoint) }))
        }
        "call_log" => Ok(call_log_json(ctl.call_log())),
        "canaries" => to_json(ctl.canaries()),
        other => Err(format!("unknown control operation {other:?}")),
    }
}
