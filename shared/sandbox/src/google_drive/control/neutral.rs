//! [`ProviderControl`] for Google Drive.
//!
//! - Accounts are 21-digit ids; the root's ref is My Drive's root folder id (`root`
//!   is accepted as an alias); entries are Drive file ids.
//! - Names need not be unique in a folder (Drive allows duplicates): adding a taken
//!   name creates a second file.
//! - [`Node::path`] is `None` (Drive has no paths); [`Node::parent_id`] is the parent
//!   folder's id.
//! - Operation classes map to endpoints by [`Endpoint::of`].
//! - `seed_tree` puts files `dNNNN/fNNNNNN.bin` under the folder.
//! - `delete` deletes permanently (`removed` changes); trash with
//!   [`GoogleDriveControl::trash`].

use std::collections::BTreeMap;

use super::GoogleDriveControl;
use crate::control::{ControlError, MintedTokens, Node, Op, ProviderControl};
use crate::google_drive::Endpoint;
use crate::{Content, Fault, Service};

impl ProviderControl for GoogleDriveControl {
    fn service(&self) -> Service {
        Service::GoogleDrive
    }

    fn urls(&self) -> BTreeMap<String, String> {
        let u = GoogleDriveControl::urls(self);
        BTreeMap::from([
            ("accounts".to_string(), u.accounts_base),
            ("token".to_string(), u.token_base),
            ("api".to_string(), u.api_base),
        ])
    }

    fn create_account(&self, display_name: &str, email: &str) -> String {
        GoogleDriveControl::create_account(self, display_name, email)
    }

    fn set_auto_approve(&self, on: bool) {
        GoogleDriveControl::set_auto_approve(self, on);
    }

    fn root(&self, account: &str) -> Result<String, ControlError> {
        GoogleDriveControl::root(self, account)
    }

    fn add_folder(&self, account: &str, parent_id: &str, name: &str) -> Result<Node, ControlError> {
        GoogleDriveControl::add_folder(self, account, parent_id, name)
    }

    fn add_file(
        &self,
        account: &str,
        parent_id: &str,
        name: &str,
        content: Content,
    ) -> Result<Node, ControlError> {
        GoogleDriveControl::add_file(self, account, parent_id, name, content)
    }

    fn modify_file(&self, account: &str, id: &str, content: Content) -> Result<Node, ControlError> {
        GoogleDriveControl::modify_file(self, account, id, content)
    }

    fn move_entry(
        &self,
        account: &str,
        id: &str,
        new_parent_id: Option<&str>,
        new_name: Option<&str>,
    ) -> Result<Node, ControlError> {
        GoogleDriveControl::move_entry(self, account, id, new_parent_id, new_name)
    }

    fn delete(&self, account: &str, id: &str) -> Result<(), ControlError> {
        GoogleDriveControl::delete(self, account, id)
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
        GoogleDriveControl::node(self, account, id)
    }

    fn list_files(&self, account: &str, folder_id: &str) -> Result<Vec<Node>, ControlError> {
        GoogleDriveControl::list_files(self, account, folder_id)
    }

    fn sha256(&self, account: &str, id: &str) -> Result<String, ControlError> {
        GoogleDriveControl::sha256(self, account, id)
    }

    fn mint_tokens(&self, account: &str, client_id: &str) -> Result<MintedTokens, ControlError> {
        GoogleDriveControl::mint_tokens(self, account, client_id)
    }

    fn expire_access_tokens(&self) {
        GoogleDriveControl::expire_access_tokens(self);
    }

    fn revoke_all(&self) {
        GoogleDriveControl::revoke_all(self);
    }

    fn reset_cursors(&self) {
        GoogleDriveControl::reset_cursors(self);
    }

    fn inject(&self, op: Op, fault: Fault, times: u32) -> Result<(), ControlError> {
        GoogleDriveControl::inject(self, Endpoint::of(op), fault, times);
        Ok(())
    }

    fn calls(&self, op: Op) -> u64 {
        GoogleDriveControl::calls(self, Endpoint::of(op))
    }

    fn reset_counters(&self) {
        GoogleDriveControl::reset_counters(self);
    }

    fn clear_faults(&self) {
        GoogleDriveControl::clear_faults(self);
    }

    fn canaries(&self) -> Vec<String> {
        GoogleDriveControl::canaries(self)
    }
}
