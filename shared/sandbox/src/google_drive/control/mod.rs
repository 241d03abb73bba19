//! In-process control of the Drive emulator: [`GoogleDriveControl`] (accounts, files
//! by id, native docs, shortcuts, trash, shared drives, tokens, faults, counters), its
//! [`crate::ProviderControl`] implementation and its HTTP mirror
//! (`/_control/google_drive/<op>`, see `http`).
//!
//! Every method that can fail returns [`ControlError`]. Content hashes (MD5 and
//! SHA-256) are computed when a file is stored, so adding a multi-GiB generated file
//! takes a few seconds.

pub(crate) mod http;
mod neutral;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use rand::Rng;

use super::model::{self, Account, Body, FOLDER_MIME, ModelError, SHORTCUT_MIME};
use super::{CallRecord, DriveState, Endpoint, FileError, GoogleDriveUrls};
use crate::content::{Blob, Content};
use crate::control::{ControlError, MintedTokens, Node};
use crate::faults::Fault;
use crate::oauth::Principal;
use crate::{SandboxConfig, Service, TimeSource};

fn from_model(e: ModelError) -> ControlError {
    match e {
        ModelError::NotFound(s) => ControlError::NotFound(s),
        ModelError::NotAFolder(s) => ControlError::NotAFolder(s),
        ModelError::NotAFile(s) => ControlError::NotAFile(s),
        ModelError::Conflict(s) => ControlError::Conflict(s),
    }
}

fn check_name(name: &str) -> Result<(), ControlError> {
    if name.is_empty() {
        return Err(ControlError::Malformed("empty name".into()));
    }
    Ok(())
}

/// A blob with both digests computed (blocking).
fn hashed_blob(content: Content) -> Body {
    let blob = Blob::<super::Md5Hex>::new(content);
    blob.native_hash();
    blob.sha256();
    Body::Blob(blob)
}

/// The bytes a sync imports of `f`: a binary file's content, a native doc's export.
fn content(f: &model::File) -> Option<&Arc<Blob<super::Md5Hex>>> {
    match &f.body {
        Body::Blob(b) | Body::Native { export: Some(b) } => Some(b),
        _ => None,
    }
}

/// Whether a sync imports `f`: a binary file or an exportable native doc whose export is within
/// the cap, and the owner has not disabled downloads. (Shortcuts, forms and the rest are
/// `skipped`.)
fn importable(f: &model::File) -> bool {
    f.can_download
        && match &f.body {
            Body::Blob(_) => true,
            Body::Native { export: Some(b) } => b.content.len() <= super::EXPORT_LIMIT,
            _ => false,
        }
}

/// The neutral view of a file (roots have no parent); a native doc's size and digest are its
/// export's.
fn to_node(f: &model::File) -> Node {
    let blob = content(f);
    Node {
        id: f.id.clone(),
        name: f.name.clone(),
        parent_id: f.parent.clone(),
        path: None,
        is_folder: f.is_folder(),
        size: blob.map(|b| b.content.len()),
        sha256: blob.map(|b| b.sha256().to_string()),
    }
}

/// Control handle of the Drive emulator. Cheap to clone; all clones share the state.
#[derive(Clone)]
pub struct GoogleDriveControl {
    state: Arc<DriveState>,
}

impl fmt::Debug for GoogleDriveControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleDriveControl").field("urls", &self.state.urls).finish()
    }
}

impl GoogleDriveControl {
    /// The emulator for `config`'s Google Drive clients, its URLs under `base_url`.
    pub(crate) fn new(base_url: &str, clock: TimeSource, config: &SandboxConfig) -> Self {
        let clients = config.clients.iter().filter(|c| c.service == Service::GoogleDrive).cloned().collect();
        let ttl = config.access_token_ttl.unwrap_or(super::DEFAULT_ACCESS_TOKEN_TTL);
        let oauth = super::oauth::server(clients, ttl, Arc::clone(&clock));
        GoogleDriveControl { state: Arc::new(DriveState::new(base_url, clock, oauth)) }
    }

    pub(crate) fn state(&self) -> Arc<DriveState> {
        Arc::clone(&self.state)
    }

    /// Base URLs of the emulated hosts.
    pub fn urls(&self) -> GoogleDriveUrls {
        self.state.urls.clone()
    }

    // -- accounts -------------------------------------------------------------------

    /// Creates an account with an empty My Drive and makes it the consent page's
    /// login; returns its id: 20 digits, the `permissionId` that `about` reports (the id the
    /// connector records for the grant).
    pub fn create_account(&self, display_name: &str, email: &str) -> String {
        let mut rng = rand::rng();
        let id = format!("{:020}", rng.random_range(0..10u128.pow(20)));
        let account = Account::new(id.clone(), self.state.now());
        self.state.lock().accounts.push(account);
        self.state.oauth.add_account(Principal {
            id: id.clone(),
            display_name: display_name.to_string(),
            email: email.to_string(),
        });
        self.state.oauth.set_login(&id);
        id
    }

    /// Chooses the consent page's login account.
    pub fn set_login_account(&self, account: &str) -> Result<(), ControlError> {
        if self.state.oauth.set_login(account) {
            Ok(())
        } else {
            Err(ControlError::UnknownAccount(account.into()))
        }
    }

    /// Auto-approve: the authorize endpoint redirects with a code at once.
    pub fn set_auto_approve(&self, on: bool) {
        self.state.oauth.set_auto_approve(on);
    }

    // -- files ----------------------------------------------------------------------

    /// Runs a mutation on an account (with the global change counter); returns the
    /// file `f` names.
    fn mutate(
        &self,
        account: &str,
        f: impl FnOnce(&mut Account, &mut u64, SystemTime) -> Result<String, ModelError>,
    ) -> Result<Node, ControlError> {
        self.with_account(account, |a, seq, now| {
            let id = f(a, seq, now).map_err(from_model)?;
            a.files.get(&id).map(to_node).ok_or(ControlError::NotFound(id))
        })
    }

    /// Runs `f` on the account, with the change sequence and the time, under the state lock.
    fn with_account<T>(
        &self,
        account: &str,
        f: impl FnOnce(&mut Account, &mut u64, SystemTime) -> Result<T, ControlError>,
    ) -> Result<T, ControlError> {
        let now = self.state.now();
        let mut inner = self.state.lock();
        let inner = &mut *inner;
        let a = inner
            .accounts
            .iter_mut()
            .find(|a| a.id == account)
            .ok_or_else(|| ControlError::UnknownAccount(account.into()))?;
        f(a, &mut inner.seq, now)
    }

    fn read<T>(
        &self,
        account: &str,
        f: impl FnOnce(&Account) -> Result<T, ControlError>,
    ) -> Result<T, ControlError> {
        let inner = self.state.lock();
        let a = inner.account(account).ok_or_else(|| ControlError::UnknownAccount(account.into()))?;
        f(a)
    }

    /// My Drive's root folder id.
    pub fn root(&self, account: &str) -> Result<String, ControlError> {
        self.read(account, |a| Ok(a.root_id.clone()))
    }

    /// Creates a folder in folder `parent` (`root` is My Drive's root; a shared
    /// drive's id is its root). Names need not be unique.
    pub fn add_folder(&self, account: &str, parent: &str, name: &str) -> Result<Node, ControlError> {
        check_name(name)?;
        self.mutate(account, |a, seq, now| a.add(seq, parent, name, FOLDER_MIME, Body::Folder, now))
    }

    /// Creates a binary file (`application/octet-stream`).
    pub fn add_file(
        &self,
        account: &str,
        parent: &str,
        name: &str,
        content: Content,
    ) -> Result<Node, ControlError> {
        self.add_file_typed(account, parent, name, "application/octet-stream", content)
    }

    /// Creates a binary file with a MIME type.
    pub fn add_file_typed(
        &self,
        account: &str,
        parent: &str,
        name: &str,
        mime_type: &str,
        content: Content,
    ) -> Result<Node, ControlError> {
        check_name(name)?;
        if mime_type.starts_with(model::GOOGLE_APPS_PREFIX) {
            return Err(ControlError::Malformed(format!("{mime_type} is a native type: use add_native")));
        }
        let body = hashed_blob(content);
        self.mutate(account, |a, seq, now| a.add(seq, parent, name, mime_type, body, now))
    }

    /// Creates a Google-native file (`application/vnd.google-apps.document`, …) whose
    /// every export format returns `export` (`None`: not exportable, like a Form).
    pub fn add_native(
        &self,
        account: &str,
        parent: &str,
        name: &str,
        mime_type: &str,
        export: Option<Content>,
    ) -> Result<Node, ControlError> {
        check_name(name)?;
        if !mime_type.starts_with(model::GOOGLE_APPS_PREFIX)
            || mime_type == FOLDER_MIME
            || mime_type == SHORTCUT_MIME
        {
            return Err(ControlError::Malformed(format!("{mime_type} is not a native document type")));
        }
        let body = Body::Native { export: export.map(Blob::new) };
        self.mutate(account, |a, seq, now| a.add(seq, parent, name, mime_type, body, now))
    }

    /// Replaces a native file's export body (new version).
    pub fn modify_native(&self, account: &str, id: &str, export: Content) -> Result<Node, ControlError> {
        self.mutate(account, |a, seq, now| {
            a.update(seq, id, now, |f| match &mut f.body {
                Body::Native { export: e } => {
                    *e = Some(Blob::new(export));
                    Ok(())
                }
                _ => Err(ModelError::NotAFile(format!("{id} is not a native file"))),
            })
        })
    }

    /// Creates a shortcut to `target_id`.
    pub fn add_shortcut(
        &self,
        account: &str,
        parent: &str,
        name: &str,
        target_id: &str,
    ) -> Result<Node, ControlError> {
        check_name(name)?;
        self.mutate(account, |a, seq, now| {
            let target = a.file(target_id).ok_or_else(|| ModelError::NotFound(target_id.into()))?;
            let body = Body::Shortcut { target_id: target.id.clone(), target_mime: target.mime_type.clone() };
            a.add(seq, parent, name, SHORTCUT_MIME, body, now)
        })
    }

    /// Replaces a binary file's content (same id, new version).
    pub fn modify_file(&self, account: &str, id: &str, content: Content) -> Result<Node, ControlError> {
        let body = hashed_blob(content);
        self.mutate(account, |a, seq, now| {
            a.update(seq, id, now, |f| match f.body {
                Body::Blob(_) => {
                    f.body = body;
                    Ok(())
                }
                _ => Err(ModelError::NotAFile(id.to_string())),
            })
        })
    }

    /// Moves a file to `new_parent` and/or renames it.
    pub fn move_entry(
        &self,
        account: &str,
        id: &str,
        new_parent: Option<&str>,
        new_name: Option<&str>,
    ) -> Result<Node, ControlError> {
        if let Some(n) = new_name {
            check_name(n)?;
        }
        self.mutate(account, |a, seq, now| a.move_to(seq, id, new_parent, new_name, now))
    }

    /// Renames a file.
    pub fn rename(&self, account: &str, id: &str, name: &str) -> Result<Node, ControlError> {
        self.move_entry(account, id, None, Some(name))
    }

    /// Moves a file (a folder with its subtree) to the trash: it stays listed (with
    /// `trashed: true`) and changes as trashed.
    pub fn trash(&self, account: &str, id: &str) -> Result<Node, ControlError> {
        self.mutate(account, |a, seq, now| a.set_trashed(seq, id, true, now))
    }

    /// Restores a trashed file.
    pub fn untrash(&self, account: &str, id: &str) -> Result<Node, ControlError> {
        self.mutate(account, |a, seq, now| a.set_trashed(seq, id, false, now))
    }

    /// Deletes a file (a folder with its subtree) permanently: `removed` changes.
    pub fn delete(&self, account: &str, id: &str) -> Result<(), ControlError> {
        self.with_account(account, |a, seq, now| a.delete(seq, id, now).map_err(from_model))
    }

    /// Creates a shared drive the account is a member of; returns its id (also the
    /// id of its root folder).
    pub fn add_shared_drive(&self, account: &str, name: &str) -> Result<String, ControlError> {
        check_name(name)?;
        self.with_account(account, |a, _, now| Ok(a.add_drive(name, now)))
    }

    /// Whether renames, moves, trashing and capability changes also move `modifiedTime` in
    /// this account (off by default: it follows content only). Drive's documentation leaves
    /// it open; a connector must be right either way.
    pub fn set_metadata_touches_modified(&self, account: &str, on: bool) -> Result<(), ControlError> {
        self.with_account(account, |a, _, _| {
            a.metadata_touches_modified = on;
            Ok(())
        })
    }

    /// Sets `capabilities.canDownload` (a new version; logged as a change).
    pub fn set_can_download(&self, account: &str, id: &str, on: bool) -> Result<Node, ControlError> {
        self.mutate(account, |a, seq, now| {
            a.update_meta(seq, id, now, |f| {
                f.can_download = on;
                Ok(())
            })
        })
    }

    /// Downloads and exports of file `id` answer `status` with `reason` (e.g. 403
    /// `insufficientFilePermissions`, `domainPolicy`, `downloadQuotaExceeded`) until
    /// cleared with [`GoogleDriveControl::clear_file_error`].
    pub fn set_file_error(&self, id: &str, status: u16, reason: &str) {
        let e = FileError { status, reason: reason.to_string(), retry_after_secs: None };
        self.state.lock().file_errors.insert(id.to_string(), e);
    }

    /// [`GoogleDriveControl::set_file_error`] with a `Retry-After: secs` header on the answer
    /// (Drive does not document one on its 403s; the connector honours it where present).
    pub fn set_file_error_retry_after(&self, id: &str, status: u16, reason: &str, secs: u64) {
        let e = FileError { status, reason: reason.to_string(), retry_after_secs: Some(secs) };
        self.state.lock().file_errors.insert(id.to_string(), e);
    }

    /// Drops a per-file error.
    pub fn clear_file_error(&self, id: &str) {
        self.state.lock().file_errors.remove(id);
    }

    /// The file's neutral view, `None` when it does not exist (any more).
    pub fn node(&self, account: &str, id: &str) -> Result<Option<Node>, ControlError> {
        self.read(account, |a| Ok(a.file(id).map(to_node)))
    }

    /// The file as `files.get` serves it (every field).
    pub fn file_json(&self, account: &str, id: &str) -> Result<serde_json::Value, ControlError> {
        self.read(account, |a| {
            a.file(id).map(|f| super::wire::file_json(a, f)).ok_or_else(|| ControlError::NotFound(id.into()))
        })
    }

    /// Every non-trashed file below folder `folder` (recursive) that a sync imports: binary
    /// files and native docs with an export within the cap, downloads allowed (see
    /// `importable`).
    pub fn list_files(&self, account: &str, folder: &str) -> Result<Vec<Node>, ControlError> {
        self.read(account, |a| {
            let root = a.file(folder).ok_or_else(|| ControlError::NotFound(folder.into()))?;
            if !root.is_folder() {
                return Err(ControlError::NotAFolder(folder.into()));
            }
            Ok(a.subtree(&root.id)
                .iter()
                .filter_map(|id| a.files.get(id))
                .filter(|f| !f.is_folder() && !a.trashed(f) && importable(f))
                .map(to_node)
                .collect())
        })
    }

    /// Lowercase hex SHA-256 of a binary file (or of a native file's export body).
    pub fn sha256(&self, account: &str, id: &str) -> Result<String, ControlError> {
        let blob = self.read(account, |a| {
            let f = a.file(id).ok_or_else(|| ControlError::NotFound(id.into()))?;
            content(f).cloned().ok_or_else(|| ControlError::NotAFile(id.into()))
        })?;
        Ok(blob.sha256().to_string())
    }

    // -- tokens, faults, counters ---------------------------------------------------

    /// Mints an offline grant (drive.readonly) without the browser flow.
    pub fn mint_tokens(&self, account: &str, client_id: &str) -> Result<MintedTokens, ControlError> {
        self.state.oauth.mint(account, client_id).ok_or_else(|| ControlError::UnknownAccount(account.into()))
    }

    /// Every access token issued so far now fails with 401.
    pub fn expire_access_tokens(&self) {
        self.state.oauth.expire_all_access();
    }

    /// Revokes every token issued so far (refreshing gets `invalid_grant`).
    pub fn revoke_all(&self) {
        self.state.oauth.revoke_all();
    }

    /// Every page token issued so far is rejected (400 `invalid` on `pageToken`).
    pub fn reset_cursors(&self) {
        let mut inner = self.state.lock();
        inner.token_floor = inner.seq;
    }

    /// The next `times` calls of `endpoint` get `fault`.
    pub fn inject(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        self.state.faults.inject(endpoint, fault, times);
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.state.faults.clear();
    }

    /// Calls of `endpoint` since start or the last reset.
    pub fn calls(&self, endpoint: Endpoint) -> u64 {
        self.state.faults.calls(endpoint)
    }

    /// Zeroes the counters and the call log.
    pub fn reset_counters(&self) {
        self.state.faults.reset_counters();
    }

    /// Every call since start or the last reset.
    pub fn call_log(&self) -> Vec<CallRecord> {
        self.state.faults.call_log()
    }

    /// Every secret issued or seen.
    pub fn canaries(&self) -> Vec<String> {
        self.state.oauth.canaries()
    }
}
