//! The HTTP mirror of [`DropboxControl`].
//!
//! All `POST {base}/_control/dropbox/<op>` with a JSON body (`GET .../urls` too); they
//! answer JSON, or 400 `{"error": "..."}`. `account_id` is the `dbid:` string;
//! `content` is `{"text": ".."}`, `{"base64": ".."}` or `{"generated": {"size": N,
//! "seed": S}}`.
//!
//! | op | body | answer |
//! |---|---|---|
//! | `urls` | – | `DropboxUrls` |
//! | `accounts` | `{display_name, email}` | `{"account_id"}` |
//! | `account` | `{account_id}` | `{"account_id","display_name","email"}` |
//! | `login_account` | `{account_id}` | `{}` |
//! | `auto_approve` | `{enabled}` | `{}` |
//! | `longpoll_max_wait` | `{millis}` | `{}` |
//! | `add_folder` | `{account_id, path}` | `EntryInfo` |
//! | `add_file` | `{account_id, path, content}` | `EntryInfo` |
//! | `modify_file` | `{account_id, path, content}` (`path` may be `id:`) | `EntryInfo` |
//! | `move_entry` | `{account_id, from, to}` | `EntryInfo` |
//! | `delete` | `{account_id, path}` | `{}` |
//! | `seed_tree` | `{account_id, root, files, files_per_folder, size_each}` | `[EntryInfo]` |
//! | `entry` | `{account_id, path}` | `EntryInfo` or `null` |
//! | `list_files` | `{account_id, under}` | `[EntryInfo]` |
//! | `sha256` | `{account_id, id}` | `{"sha256"}` |
//! | `mint_tokens` | `{account_id, client_id}` | `{"access_token","refresh_token"}` |
//! | `expire_access_tokens`, `revoke_all`, `reset_cursors`, `reset_counters`, `clear_faults` | – | `{}` |
//! | `inject` | `{endpoint, fault, times}` | `{}` |
//! | `calls` | `{endpoint}` | `{"count"}` |
//! | `call_log` | – | `[{"endpoint","at_unix_ms","status"}]` |
//! | `canaries` | – | `["..."]` |
//!
//! `endpoint` is the [`Endpoint`] variant name (`"ListFolder"`, `"Download"`, …).
//! `fault` is one of `{"rate_limit":{"retry_after_secs":N}}`, `{"server_error":503}`,
//! `{"truncate":{"after_bytes":N}}`, `"corrupt_same_length"`, `"short_chunked"`,
//! `"invalid_grant"`, `"expired_token"`, `{"latency_ms":N}` (the shapes shared by every
//! provider's control routes, see `crate::control::http`).

use std::time::Duration;

use axum::Router;
use serde::Deserialize;
use serde_json::{Value, json};

use super::DropboxControl;
use crate::control::ControlError;
use crate::control::http::{ContentSpec, FaultSpec, arg, call_log_json, to_json};
use crate::dropbox::{AccountId, Endpoint};

/// Routes under `/_control/dropbox` (`GET` for `urls` too).
pub(crate) fn router(ctl: DropboxControl) -> Router {
    crate::control::http::router("/_control/dropbox", ctl, &["urls"], dispatch)
}

fn dispatch(ctl: &DropboxControl, op: &str, body: &[u8]) -> Result<Value, String> {
    #[derive(Deserialize)]
    struct Acct {
        account_id: AccountId,
    }
    #[derive(Deserialize)]
    struct AcctPath {
        account_id: AccountId,
        path: String,
    }
    #[derive(Deserialize)]
    struct AcctContent {
        account_id: AccountId,
        path: String,
        content: ContentSpec,
    }
    let err = |e: ControlError| e.to_string();
    let done = Ok(json!({}));
    match op {
        "accounts" => {
            #[derive(Deserialize)]
            struct A {
                display_name: String,
                email: String,
            }
            let a: A = arg(body)?;
            Ok(json!({ "account_id": ctl.create_account(&a.display_name, &a.email) }))
        }
        "login_account" => {
            let a: Acct = arg(body)?;
            ctl.try_set_login_account(&a.account_id).map_err(err)?;
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
        "longpoll_max_wait" => {
            #[derive(Deserialize)]
            struct A {
                millis: u64,
            }
            ctl.set_longpoll_max_wait(Duration::from_millis(arg::<A>(body)?.millis));
            done
        }
        "add_folder" => {
            let a: AcctPath = arg(body)?;
            to_json(ctl.try_add_folder(&a.account_id, &a.path).map_err(err)?)
        }
        "add_file" => {
            let a: AcctContent = arg(body)?;
            to_json(ctl.try_add_file(&a.account_id, &a.path, a.content.into_content()?).map_err(err)?)
        }
        "modify_file" => {
            let a: AcctContent = arg(body)?;
            to_json(ctl.try_modify_file(&a.account_id, &a.path, a.content.into_content()?).map_err(err)?)
        }
        "move_entry" => {
            #[derive(Deserialize)]
            struct A {
                account_id: AccountId,
                from: String,
                to: String,
            }
            let a: A = arg(body)?;
            to_json(ctl.try_move_entry(&a.account_id, &a.from, &a.to).map_err(err)?)
        }
        "delete" => {
            let a: AcctPath = arg(body)?;
            ctl.try_delete(&a.account_id, &a.path).map_err(err)?;
            done
        }
        "seed_tree" => {
            #[derive(Deserialize)]
            struct A {
                account_id: AccountId,
                root: String,
                files: usize,
                files_per_folder: usize,
                size_each: u64,
            }
            let a: A = arg(body)?;
            to_json(
                ctl.try_seed_tree(&a.account_id, &a.root, a.files, a.files_per_folder, a.size_each)
                    .map_err(err)?,
            )
        }
        "entry" => {
            let a: AcctPath = arg(body)?;
            to_json(ctl.entry(&a.account_id, &a.path))
        }
        "list_files" => {
            #[derive(Deserialize)]
            struct A {
                account_id: AccountId,
                #[serde(default)]
                under: String,
            }
            let a: A = arg(body)?;
            to_json(ctl.list_files(&a.account_id, &a.under))
        }
        "sha256" => {
            #[derive(Deserialize)]
            struct A {
                account_id: AccountId,
                id: String,
            }
            let a: A = arg(body)?;
            Ok(json!({ "sha256": ctl.try_sha256_of(&a.account_id, &a.id).map_err(err)? }))
        }
        "mint_tokens" => {
            #[derive(Deserialize)]
            struct A {
                account_id: AccountId,
                client_id: String,
            }
            let a: A = arg(body)?;
            let (at, rt) = ctl.try_mint_tokens(&a.account_id, &a.client_id).map_err(err)?;
            Ok(json!({ "access_token": at, "refresh_token": rt }))
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
            fn one() -> u32 {
                1
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
        "urls" => to_json(ctl.urls()),
        "account" => {
            let a: Acct = arg(body)?;
            let p = ctl
                .state()
                .oauth
                .account(&a.account_id.0)
                .ok_or_else(|| format!("unknown account {}", a.account_id))?;
            Ok(json!({ "account_id": p.id, "display_name": p.display_name, "email": p.email }))
        }
        other => Err(format!("unknown control operation {other:?}")),
    }
}
