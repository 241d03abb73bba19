//! [`ProviderControl`] for Dropbox.
//!
//! - Accounts are `dbid:` ids; the root folder's ref is `""`; entries are `id:` ids
//!   (paths and `rev:` refs are accepted too, as by Dropbox's own API).
//! - Dropbox names are unique in a folder, case-insensitively: adding over a taken
//!   name, or moving onto one, is a [`ControlError::Conflict`].
//! - [`Node::path`] is `path_display`; [`Node::parent_id`] is the parent folder's id,
//!   `""` for an entry in the root.
//! - Operation classes map to endpoints by [`Endpoint::of`].
//! - `seed_tree` puts files `dNNNN/fNNNNNN.bin` under the folder.

use std::collections::BTreeMap;
use std::time::SystemTime;

use super::{DropboxControl, from_model};
use crate::control::{ControlError, MintedTokens, Node, Op, ProviderControl};
use crate::dropbox::model::{self, Tree, lower};
use crate::dropbox::{AccountId, Endpoint};
use crate::{Content, Fault, Service};

/// The neutral view of an entry; computes the SHA-256 of a file's content if it is not
/// cached yet (blocking), so call it outside the state lock.
fn to_node(n: &model::Node, parent_ref: String) -> Node {
    let file = n.file();
    Node {
        id: n.id.clone(),
        name: n.name.clone(),
        parent_id: Some(parent_ref),
        path: Some(n.path_display.clone()),
        is_folder: file.is_none(),
        size: file.map(|f| f.blob.content.len()),
        sha256: file.map(|f| f.blob.sha256().to_string()),
    }
}

/// A single path component: not empty, no `/`, not `.` or `..`.
fn check_name(name: &str) -> Result<(), ControlError> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(ControlError::Malformed(format!("not a valid name: {name:?}")));
    }
    Ok(())
}

/// `path_display` of the folder `folder_ref` designates (`""` for the root).
fn folder_path(t: &Tree, folder_ref: &str) -> Result<String, ControlError> {
    let target = t.resolve(folder_ref).map_err(|e| from_model(e, folder_ref))?;
    t.folder_display(&target).map_err(|e| from_model(e, folder_ref))
}

impl DropboxControl {
    /// Runs a mutation returning an entry id on an account's tree, wakes longpolls,
    /// and returns that entry.
    fn change(
        &self,
        account: &str,
        f: impl FnOnce(&mut Tree, SystemTime) -> Result<String, ControlError>,
    ) -> Result<Node, ControlError> {
        let now = self.state.now();
        let changed = {
            let mut inner = self.state.lock();
            let a = inner.account_mut(account).ok_or_else(|| ControlError::UnknownAccount(account.into()))?;
            f(&mut a.tree, now).and_then(|id| {
                let n = a.tree.node(&id).ok_or(ControlError::NotFound(id))?;
                Ok((n.clone(), a.tree.parent_ref(n)))
            })
        };
        // A failed mutation may still have created parent folders.
        self.state.changed.notify_waiters();
        changed.map(|(n, parent)| to_node(&n, parent))
    }

    fn add_child(
        &self,
        account: &str,
        parent_id: &str,
        name: &str,
        content: Option<Content>,
    ) -> Result<Node, ControlError> {
        check_name(name)?;
        self.change(account, |t, now| {
            let path = format!("{}/{name}", folder_path(t, parent_id)?);
            if let Some(n) = t.node_at(&lower(&path)) {
                return Err(ControlError::Conflict(format!("{} already exists", n.path_display)));
            }
            match content {
                None => t.add_folder(&path),
                Some(c) => t.put_file(&path, c, now),
            }
            .map_err(|e| from_model(e, &path))
        })
    }

    /// Runs `f` on an account's tree under the lock.
    fn read<T>(
        &self,
        account: &str,
        f: impl FnOnce(&Tree) -> Result<T, ControlError>,
    ) -> Result<T, ControlError> {
        let inner = self.state.lock();
        let a = inner.account(account).ok_or_else(|| ControlError::UnknownAccount(account.into()))?;
        f(&a.tree)
    }
}

impl ProviderControl for DropboxControl {
    fn service(&self) -> Service {
        Service::Dropbox
    }

    fn urls(&self) -> BTreeMap<String, String> {
        let u = DropboxControl::urls(self);
        BTreeMap::from([
            ("www".to_string(), u.www_base),
            ("api".to_string(), u.api_base),
            ("content".to_string(), u.content_base),
            ("notify".to_string(), u.notify_base),
        ])
    }

    fn create_account(&self, display_name: &str, email: &str) -> String {
        let id = DropboxControl::create_account(self, display_name, email);
        self.state.oauth.set_login(&id.0);
        id.0
    }

    fn set_auto_approve(&self, on: bool) {
        DropboxControl::set_auto_approve(self, on);
    }

    fn root(&self, account: &str) -> Result<String, ControlError> {
        self.read(account, |_| Ok(String::new()))
    }

    fn add_folder(&self, account: &str, parent_id: &str, name: &str) -> Result<Node, ControlError> {
        self.add_child(account, parent_id, name, None)
    }

    fn add_file(
        &self,
        account: &str,
        parent_id: &str,
        name: &str,
        content: Content,
    ) -> Result<Node, ControlError> {
        self.add_child(account, parent_id, name, Some(content))
    }

    fn modify_file(&self, account: &str, id: &str, content: Content) -> Result<Node, ControlError> {
        self.change(account, |t, now| {
            let node_id = t.resolve_node(id).map_err(|e| from_model(e, id))?.id.clone();
            t.set_content(&node_id, content, now).map_err(|e| from_model(e, id))?;
            Ok(node_id)
        })
    }

    fn move_entry(
        &self,
        account: &str,
        id: &str,
        new_parent_id: Option<&str>,
        new_name: Option<&str>,
    ) -> Result<Node, ControlError> {
        if let Some(name) = new_name {
            check_name(name)?;
        }
        self.change(account, |t, now| {
            let n = t.resolve_node(id).map_err(|e| from_model(e, id))?;
            let (node_id, name) = (n.id.clone(), new_name.unwrap_or(&n.name).to_string());
            let parent = match new_parent_id {
                Some(p) => folder_path(t, p)?,
                None => n.path_display.rsplit_once('/').map(|(p, _)| p.to_string()).unwrap_or_default(),
            };
            let to = format!("{parent}/{name}");
            t.move_entry(&node_id, &to, now).map_err(|e| from_model(e, &to))?;
            Ok(node_id)
        })
    }

    fn delete(&self, account: &str, id: &str) -> Result<(), ControlError> {
        self.try_delete(&AccountId(account.to_string()), id)
    }

    fn seed_tree(
        &self,
        account: &str,
        folder_id: &str,
        files: usize,
        files_per_folder: usize,
        size_each: u64,
    ) -> Result<Vec<Node>, ControlError> {
        let root = self.read(account, |t| folder_path(t, folder_id))?;
        let nodes =
            self.seed_nodes(&AccountId(account.to_string()), &root, files, files_per_folder, size_each)?;
        Ok(nodes.into_iter().map(|(n, parent)| to_node(&n, parent)).collect())
    }

    fn node(&self, account: &str, id: &str) -> Result<Option<Node>, ControlError> {
        let found = self.read(account, |t| match t.resolve_node(id) {
            Ok(n) => Ok(Some((n.clone(), t.parent_ref(n)))),
            Err(model::ModelError::NotFound) => Ok(None),
            Err(e) => Err(from_model(e, id)),
        })?;
        Ok(found.map(|(n, parent)| to_node(&n, parent)))
    }

    fn list_files(&self, account: &str, folder_id: &str) -> Result<Vec<Node>, ControlError> {
        let files = self.read(account, |t| {
            let target = t.resolve(folder_id).map_err(|e| from_model(e, folder_id))?;
            let folder_lower = t.folder_lower(&target).map_err(|e| from_model(e, folder_id))?;
            Ok(t.files_under(&folder_lower)
                .into_iter()
                .map(|n| (n.clone(), t.parent_ref(n)))
                .collect::<Vec<_>>())
        })?;
        Ok(files.into_iter().map(|(n, parent)| to_node(&n, parent)).collect())
    }

    fn sha256(&self, account: &str, id: &str) -> Result<String, ControlError> {
        self.try_sha256_of(&AccountId(account.to_string()), id)
    }

    fn mint_tokens(&self, account: &str, client_id: &str) -> Result<MintedTokens, ControlError> {
        self.state.oauth.mint(account, client_id).ok_or_else(|| ControlError::UnknownAccount(account.into()))
    }

    fn expire_access_tokens(&self) {
        DropboxControl::expire_access_tokens(self);
    }

    fn revoke_all(&self) {
        DropboxControl::revoke_all(self);
    }

    fn reset_cursors(&self) {
        DropboxControl::reset_cursors(self);
    }

    fn inject(&self, op: Op, fault: Fault, times: u32) -> Result<(), ControlError> {
        DropboxControl::inject(self, Endpoint::of(op), fault, times);
        Ok(())
    }

    fn calls(&self, op: Op) -> u64 {
        DropboxControl::calls(self, Endpoint::of(op))
    }

    fn reset_counters(&self) {
        DropboxControl::reset_counters(self);
    }

    fn clear_faults(&self) {
        DropboxControl::clear_faults(self);
    }

    fn canaries(&self) -> Vec<String> {
        DropboxControl::canaries(self)
    }
}
