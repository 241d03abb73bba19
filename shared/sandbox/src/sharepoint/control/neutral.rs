//! [`ProviderControl`] for SharePoint / OneDrive for Business.
//!
//! - Accounts are user GUIDs; the root's ref is the user's OneDrive for Business root
//!   item id; entries are Graph item ids (any drive: a site library's items work too).
//! - Names are unique per folder, case-insensitively: a taken name is a
//!   [`ControlError::Conflict`].
//! - [`Node::path`] is the path in its drive (`/A/b.txt`; the root `/`).
//! - Operation classes map to endpoints by [`Endpoint::of`]; `Revoke` has none
//!   ([`ControlError::Unsupported`]).
//! - `reset_cursors` is [`SharePointControl::expire_delta_tokens`] (410 on every token).
//! - `urls` has `login`, `graph` and `download`.
//! - `seed_tree` puts files `dNNNN/fNNNNNN.bin` under the folder.

use std::collections::BTreeMap;

use super::SharePointControl;
use crate::control::{ControlError, MintedTokens, Node, Op, ProviderControl};
use crate::sharepoint::Endpoint;
use crate::{Content, Fault, Service};

impl ProviderControl for SharePointControl {
    fn service(&self) -> Service {
        Service::Sharepoint
    }

    fn urls(&self) -> BTreeMap<String, String> {
        let u = SharePointControl::urls(self);
        BTreeMap::from([
            ("login".to_string(), u.login_base),
            ("graph".to_string(), u.graph_base),
            ("download".to_string(), u.download_base),
        ])
    }

    fn create_account(&self, display_name: &str, email: &str) -> String {
        SharePointControl::create_account(self, display_name, email)
    }

    fn set_auto_approve(&self, on: bool) {
        SharePointControl::set_auto_approve(self, on);
    }

    fn root(&self, account: &str) -> Result<String, ControlError> {
        SharePointControl::root(self, account)
    }

    fn add_folder(&self, account: &str, parent_id: &str, name: &str) -> Result<Node, ControlError> {
        SharePointControl::add_folder(self, account, parent_id, name)
    }

    fn add_file(
        &self,
        account: &str,
        parent_id: &str,
        name: &str,
        content: Content,
    ) -> Result<Node, ControlError> {
        SharePointControl::add_file(self, account, parent_id, name, content)
    }

    fn modify_file(&self, account: &str, id: &str, content: Content) -> Result<Node, ControlError> {
        SharePointControl::modify_file(self, account, id, content)
    }

    fn move_entry(
        &self,
        account: &str,
        id: &str,
        new_parent_id: Option<&str>,
        new_name: Option<&str>,
    ) -> Result<Node, ControlError> {
        SharePointControl::move_entry(self, account, id, new_parent_id, new_name)
    }

    fn delete(&self, account: &str, id: &str) -> Result<(), ControlError> {
        SharePointControl::delete(self, account, id)
    }

    fn seed_tree(
        &self,
        account: &str,
        folder_id: &str,
        files: usize,
        files_per_folder: usize,
        size_each: u64,
    ) -> Result<Vec<Node>, ControlError> {
        let per = files_per_folder.max(1);
        let mut out = Vec::with_capacity(files);
        let mut dir = String::new();
        for i in 0..files {
            if i % per == 0 {
                dir = self.add_folder(account, folder_id, &format!("d{:04}", i / per))?.id;
            }
            let content = Content::generated(size_each, i as u64 + 1);
            out.push(self.add_file(account, &dir, &format!("f{i:06}.bin"), content)?);
        }
        Ok(out)
    }

    fn node(&self, account: &str, id: &str) -> Result<Option<Node>, ControlError> {
        SharePointControl::node(self, account, id)
    }

    fn list_files(&self, account: &str, folder_id: &str) -> Result<Vec<Node>, ControlError> {
        SharePointControl::list_files(self, account, folder_id)
    }

    fn sha256(&self, account: &str, id: &str) -> Result<String, ControlError> {
        SharePointControl::sha256(self, account, id)
    }

    fn mint_tokens(&self, account: &str, client_id: &str) -> Result<MintedTokens, ControlError> {
        SharePointControl::mint_tokens(self, account, client_id)
    }

    fn expire_access_tokens(&self) {
        SharePointControl::expire_access_tokens(self);
    }

    fn revoke_all(&self) {
        SharePointControl::revoke_all(self);
    }

    fn reset_cursors(&self) {
        SharePointControl::expire_delta_tokens(self);
    }

    fn inject(&self, op: Op, fault: Fault, times: u32) -> Result<(), ControlError> {
        let ep = Endpoint::of(op).ok_or_else(|| {
            ControlError::Unsupported(format!("{op:?}: Microsoft Graph has no such endpoint"))
        })?;
        SharePointControl::inject(self, ep, fault, times);
        Ok(())
    }

    fn calls(&self, op: Op) -> u64 {
        Endpoint::of(op).map(|ep| SharePointControl::calls(self, ep)).unwrap_or(0)
    }

    fn reset_counters(&self) {
        SharePointControl::reset_counters(self);
    }

    fn clear_faults(&self) {
        SharePointControl::clear_faults(self);
    }

    fn canaries(&self) -> Vec<String> {
        SharePointControl::canaries(self)
    }
}
