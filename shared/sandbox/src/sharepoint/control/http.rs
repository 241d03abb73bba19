//! The HTTP mirror of [`SharePointControl`].
//!
//! All `POST {base}/_control/sharepoint/<op>` with a JSON body (`GET .../urls` too);
//! they answer JSON, or 400 `{"error": "..."}`. `content` and `fault` have the shapes
//! shared by every provider (see `crate::control::http`). Nodes are the neutral
//! [`crate::Node`] (`id`, `name`, `parent_id`, `path`, `is_folder`, `size`, `sha256`).
//!
//! | op | body | answer |
//! |---|---|---|
//! | `urls` | – | `SharePointUrls` (`login_base`, `graph_base`, `download_base`, `tenant_id`) |
//! | `accounts` | `{display_name, email}` | `{"account_id", "drive_id", "root_id"}` |
//! | `login_account` | `{account_id}` | `{}` |
//! | `auto_approve` | `{enabled}` | `{}` |
//! | `add_site` | `{display_name}` | `{"id","name","web_url"}` |
//! | `add_library` | `{site_id, name}` | `{"drive_id","root_id"}` |
//! | `libraries` | `{site_id}` | `[{"drive_id","root_id"}]` |
//! | `add_folder` | `{account_id, parent, name}` | node |
//! | `add_file` | `{account_id, parent, name, content}` | node |
//! | `modify_file` | `{account_id, id, content}` | node |
//! | `move_entry` | `{account_id, id, parent?, name?}` | node |
//! | `delete` | `{account_id, id}` | `{}` |
//! | `node` | `{account_id, id}` | node or `null` |
//! | `item` | `{account_id, id}` | the driveItem JSON |
//! | `list_files` | `{account_id, folder}` | `[node]` |
//! | `sha256` | `{account_id, id}` | `{"sha256"}` |
//! | `quick_xor_hash` | `{account_id, id}` | `{"quick_xor_hash"}` |
//! | `set_link_base` | `{base: "https://…" \| null}` | `{}` |
//! | `set_duplicate_items`, `set_rewrites_office_files` | `{enabled}` | `{}` |
//! | `set_page_size` | `{size}` | `{}` |
//! | `mint_tokens` | `{account_id, client_id}` | `{"access_token","refresh_token"}` |
//! | `revoke_token` | `{token}` | `{}` |
//! | `expire_delta_tokens`, `expire_access_tokens`, `expire_refresh_tokens`, `revoke_all`, `reset_counters`, `clear_faults` | – | `{}` |
//! | `inject` | `{endpoint, fault, times}` | `{}` |
//! | `calls` | `{endpoint}` | `{"count"}` |
//! | `call_log` | – | `[{"endpoint","at_unix_ms","status"}]` |
//! | `canaries` | – | `["..."]` |
//! | `register_client` | `{client_id, client_secret, redirect_uris?}` | `{}`: an app whose secret the caller knows |
//!
//! `endpoint` is the [`crate::sharepoint::Endpoint`] variant name (`"Delta"`,
//! `"Download"`, …).

use axum::Router;
use serde::Deserialize;
use serde_json::{Value, json};

use super::SharePointControl;
use crate::control::ControlError;
use crate::control::http::{ContentSpec, FaultSpec, arg, call_log_json, to_json};
use crate::sharepoint::Endpoint;

/// Routes under `/_control/sharepoint` (`GET` for `urls` too).
pub(crate) fn router(ctl: SharePointControl) -> Router {
    crate::control::http::router("/_control/sharepoint", ctl, &["urls"], dispatch)
}

#[derive(Deserialize)]
struct AcctId {
    account_id: String,
    id: String,
}

#[derive(Deserialize)]
struct Enabled {
    enabled: bool,
}

fn one() -> u32 {
    1
}

fn dispatch(ctl: &SharePointControl, op: &str, body: &[u8]) -> Result<Value, String> {
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
            Ok(json!({
                "root_id": ctl.root(&id).map_err(err)?,
                "drive_id": ctl.user_drive(&id).map_err(err)?,
                "account_id": id,
            }))
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
            ctl.set_auto_approve(arg::<Enabled>(body)?.enabled);
            done
        }
        "add_site" => {
            #[derive(Deserialize)]
            struct A {
                display_name: String,
            }
            to_json(ctl.add_site(&arg::<A>(body)?.display_name))
        }
        "add_library" => {
            #[derive(Deserialize)]
            struct A {
                site_id: String,
                name: String,
            }
            let a: A = arg(body)?;
            to_json(ctl.add_library(&a.site_id, &a.name).map_err(err)?)
        }
        "libraries" => {
            #[derive(Deserialize)]
            struct A {
                site_id: String,
            }
            to_json(ctl.libraries(&arg::<A>(body)?.site_id).map_err(err)?)
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
            }
            let a: A = arg(body)?;
            to_json(ctl.add_file(&a.account_id, &a.parent, &a.name, a.content.into_content()?).map_err(err)?)
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
        "delete" => {
            let a: AcctId = arg(body)?;
            ctl.delete(&a.account_id, &a.id).map_err(err)?;
            done
        }
        "node" => {
            let a: AcctId = arg(body)?;
            to_json(ctl.node(&a.account_id, &a.id).map_err(err)?)
        }
        "item" => {
            let a: AcctId = arg(body)?;
            ctl.item_json(&a.account_id, &a.id).map_err(err)
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
        "quick_xor_hash" => {
            let a: AcctId = arg(body)?;
            Ok(json!({ "quick_xor_hash": ctl.quick_xor_hash(&a.account_id, &a.id).map_err(err)? }))
        }
        "set_link_base" => {
            #[derive(Deserialize)]
            struct A {
                base: Option<String>,
            }
            ctl.set_link_base(arg::<A>(body)?.base);
            done
        }
        "set_duplicate_items" => {
            ctl.set_duplicate_items(arg::<Enabled>(body)?.enabled);
            done
        }
        "set_rewrites_office_files" => {
            ctl.set_rewrites_office_files(arg::<Enabled>(body)?.enabled);
            done
        }
        "set_page_size" => {
            #[derive(Deserialize)]
            struct A {
                size: usize,
            }
            ctl.set_page_size(arg::<A>(body)?.size);
            done
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
        "revoke_token" => {
            #[derive(Deserialize)]
            struct A {
                token: String,
            }
            ctl.revoke_token(&arg::<A>(body)?.token);
            done
        }
        "expire_delta_tokens" | "reset_cursors" => {
            ctl.expire_delta_tokens();
            done
        }
        "expire_access_tokens" => {
            ctl.expire_access_tokens();
            done
        }
        "expire_refresh_tokens" => {
            ctl.expire_refresh_tokens();
            done
        }
        "revoke_all" => {
            ctl.revoke_all();
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
        "register_client" => {
            #[derive(Deserialize)]
            struct A {
                client_id: String,
                client_secret: String,
                #[serde(default)]
                redirect_uris: Vec<String>,
            }
            let a: A = arg(body)?;
            ctl.register_client(a.client_id, a.client_secret, a.redirect_uris);
            done
        }
        other => Err(format!("unknown control operation {other:?}")),
    }
}
