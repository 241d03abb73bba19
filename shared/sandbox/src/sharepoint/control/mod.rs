//! In-process control of the Graph emulator: [`SharePointControl`] (users with their
//! OneDrive for Business, sites and libraries, items by id, tokens, delta-feed quirks,
//! faults, counters), its [`crate::ProviderControl`] implementation and its HTTP mirror
//! (`/_control/sharepoint/<op>`, see `http`).
//!
//! Item ids are unique tenant-wide, so item operations find the drive by the id; the
//! `account` argument must name an existing user (sites' libraries are every account's;
//! a OneDrive only its owner's, which the control API does not check).

pub(crate) mod http;
mod neutral;

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::model::{self, Drive, DriveType, Item, ModelError, Owner, SiteRec, SpBlob, User};
use super::{CallRecord, Endpoint, Inner, SharePointUrls, SpState};
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

/// Graph names: non-empty, no `/` or `\`, none of `"*:<>?|`, no leading/trailing space.
fn check_name(name: &str) -> Result<(), ControlError> {
    if name.is_empty() || name.trim() != name || name.chars().any(|c| "/\\\"*:<>?|".contains(c)) {
        return Err(ControlError::Malformed(format!("invalid name {name:?}")));
    }
    Ok(())
}

/// A MIME type from the extension (what SharePoint reports for common types).
pub(crate) fn mime_for(name: &str) -> &'static str {
    let ext = name.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "txt" => "text/plain",
        "pdf" => "application/pdf",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "svg" => "image/svg+xml",
        "mp4" => "video/mp4",
        "json" => "application/json",
        "docx" => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx" => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx" => "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        _ => "application/octet-stream",
    }
}

/// A blob with both digests computed (blocking).
fn hashed_blob(content: Content) -> Arc<SpBlob> {
    let blob = Blob::new(content);
    blob.native_hash();
    blob.sha256();
    blob
}

fn to_node(drive: &Drive, item: &Item) -> Node {
    Node {
        id: item.id.clone(),
        name: item.name.clone(),
        parent_id: item.parent.clone(),
        path: Some(drive.path(&item.id)).filter(|p| !p.is_empty()).or(Some("/".into())),
        is_folder: item.is_folder(),
        size: item.blob.as_ref().map(|b| b.content.len()),
        sha256: item.blob.as_ref().map(|b| b.sha256().to_string()),
    }
}

/// A site, as [`SharePointControl::add_site`] returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// `contoso.sharepoint.com,<guid>,<guid>`.
    pub id: String,
    /// The URL segment (`Marketing`).
    pub name: String,
    /// `https://contoso.sharepoint.com/sites/Marketing`.
    pub web_url: String,
}

/// A document library (a drive of a site).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Library {
    /// The drive id (`b!…`).
    pub drive_id: String,
    /// Its root item's id.
    pub root_id: String,
}

/// Control handle of the Graph emulator. Cheap to clone; all clones share the state.
#[derive(Clone)]
pub struct SharePointControl {
    state: Arc<SpState>,
}

impl fmt::Debug for SharePointControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharePointControl").field("urls", &self.state.urls).finish()
    }
}

impl SharePointControl {
    /// The emulator for `config`'s SharePoint clients, its URLs under `base_url`.
    pub(crate) fn new(base_url: &str, clock: TimeSource, config: &SandboxConfig) -> Self {
        let clients = config.clients.iter().filter(|c| c.service == Service::Sharepoint).cloned().collect();
        let ttl = config.access_token_ttl.unwrap_or(super::DEFAULT_ACCESS_TOKEN_TTL);
        let oauth = super::oauth::server(clients, ttl, Arc::clone(&clock));
        SharePointControl { state: Arc::new(SpState::new(base_url, clock, oauth)) }
    }

    pub(crate) fn state(&self) -> Arc<SpState> {
        Arc::clone(&self.state)
    }

    /// Base URLs of the emulated hosts and the tenant id.
    pub fn urls(&self) -> SharePointUrls {
        self.state.urls.clone()
    }

    /// The tenant's id (GUID; the id_token's `tid`).
    pub fn tenant_id(&self) -> String {
        self.state.urls.tenant_id.clone()
    }

    // -- users and sites ------------------------------------------------------------

    /// Creates a user (GUID id; `mail` and `userPrincipalName` = `email`) with an empty
    /// OneDrive for Business drive, and makes it the consent page's login; returns its id.
    pub fn create_account(&self, display_name: &str, email: &str) -> String {
        let id = model::new_guid();
        let now = self.state.now();
        let mut inner = self.state.lock();
        let slug: String = email
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' })
            .collect();
        let web_url = format!("https://contoso-my.sharepoint.com/personal/{slug}/Documents");
        let drive = Drive::new("OneDrive", DriveType::Business, Owner::User(id.clone()), web_url, now);
        let drive_id = drive.id.clone();
        inner.item_drive.insert(drive.root_id.clone(), drive_id.clone());
        inner.drives.insert(drive_id.clone(), drive);
        inner.users.push(User {
            id: id.clone(),
            display_name: display_name.to_string(),
            mail: email.to_string(),
            upn: email.to_string(),
            drive_id,
        });
        drop(inner);
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

    /// The user's OneDrive for Business drive id.
    pub fn user_drive(&self, account: &str) -> Result<String, ControlError> {
        let inner = self.state.lock();
        inner
            .user(account)
            .map(|u| u.drive_id.clone())
            .ok_or_else(|| ControlError::UnknownAccount(account.into()))
    }

    /// Creates a site (visible to every account) with its default "Documents" library.
    pub fn add_site(&self, display_name: &str) -> Site {
        let now = self.state.now();
        let mut inner = self.state.lock();
        let name: String = display_name.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '-').collect();
        let name = if name.is_empty() { "site".to_string() } else { name };
        let id = format!("{},{},{}", inner.host, model::new_guid(), model::new_guid());
        let web_url = format!("https://{}/sites/{name}", inner.host);
        inner.sites.push(SiteRec {
            id: id.clone(),
            name: name.clone(),
            display_name: display_name.to_string(),
            web_url: web_url.clone(),
            created: now,
            drives: Vec::new(),
        });
        add_library_locked(&mut inner, &id, "Documents", now);
        Site { id, name, web_url }
    }

    /// Adds a document library to a site.
    pub fn add_library(&self, site_id: &str, name: &str) -> Result<Library, ControlError> {
        check_name(name)?;
        let now = self.state.now();
        let mut inner = self.state.lock();
        let site = inner.site(site_id).ok_or_else(|| ControlError::NotFound(site_id.into()))?;
        let site_id = site.id.clone();
        if site.drives.iter().filter_map(|d| inner.drives.get(d)).any(|d| d.name.eq_ignore_ascii_case(name)) {
            return Err(ControlError::Conflict(format!("the site already has a library {name:?}")));
        }
        Ok(add_library_locked(&mut inner, &site_id, name, now))
    }

    /// A site's libraries, the default "Documents" first.
    pub fn libraries(&self, site_id: &str) -> Result<Vec<Library>, ControlError> {
        let inner = self.state.lock();
        let site = inner.site(site_id).ok_or_else(|| ControlError::NotFound(site_id.into()))?;
        Ok(site
            .drives
            .iter()
            .filter_map(|d| inner.drives.get(d))
            .map(|d| Library { drive_id: d.id.clone(), root_id: d.root_id.clone() })
            .collect())
    }

    /// A site's default "Documents" library.
    pub fn default_library(&self, site_id: &str) -> Result<Library, ControlError> {
        self.libraries(site_id)?.into_iter().next().ok_or_else(|| ControlError::NotFound(site_id.into()))
    }

    /// The root item id of a drive.
    pub fn drive_root(&self, drive_id: &str) -> Result<String, ControlError> {
        let inner = self.state.lock();
        inner
            .drives
            .get(drive_id)
            .map(|d| d.root_id.clone())
            .ok_or_else(|| ControlError::NotFound(drive_id.into()))
    }

    // -- items ----------------------------------------------------------------------

    fn check_account(inner: &Inner, account: &str) -> Result<(), ControlError> {
        inner.user(account).map(|_| ()).ok_or_else(|| ControlError::UnknownAccount(account.into()))
    }

    /// Runs a mutation on the drive holding item `id`; returns the item `f` names.
    fn mutate(
        &self,
        account: &str,
        id: &str,
        f: impl FnOnce(&mut Drive, &mut u64, SystemTime) -> Result<String, ModelError>,
    ) -> Result<Node, ControlError> {
        let now = self.state.now();
        let mut guard = self.state.lock();
        let inner = &mut *guard;
        Self::check_account(inner, account)?;
        let drive_id = inner.item_drive.get(id).cloned().ok_or_else(|| ControlError::NotFound(id.into()))?;
        let drive = inner.drives.get_mut(&drive_id).ok_or_else(|| ControlError::NotFound(id.into()))?;
        let out = f(drive, &mut inner.seq, now).map_err(from_model)?;
        let node =
            drive.items.get(&out).map(|i| to_node(drive, i)).ok_or(ControlError::NotFound(out.clone()))?;
        inner.item_drive.insert(out, drive_id);
        Ok(node)
    }

    /// The user's OneDrive root item id.
    pub fn root(&self, account: &str) -> Result<String, ControlError> {
        let inner = self.state.lock();
        let u = inner.user(account).ok_or_else(|| ControlError::UnknownAccount(account.into()))?;
        inner
            .drives
            .get(&u.drive_id)
            .map(|d| d.root_id.clone())
            .ok_or_else(|| ControlError::NotFound(u.drive_id.clone()))
    }

    /// Creates a folder in folder `parent` (any drive; names unique per folder,
    /// case-insensitively).
    pub fn add_folder(&self, account: &str, parent: &str, name: &str) -> Result<Node, ControlError> {
        check_name(name)?;
        self.mutate(account, parent, |d, seq, now| d.add(seq, parent, name, None, "", now))
    }

    /// Creates a file (MIME type from the extension).
    pub fn add_file(
        &self,
        account: &str,
        parent: &str,
        name: &str,
        content: Content,
    ) -> Result<Node, ControlError> {
        check_name(name)?;
        let blob = hashed_blob(content);
        self.mutate(account, parent, |d, seq, now| d.add(seq, parent, name, Some(blob), mime_for(name), now))
    }

    /// Replaces a file's content (new `eTag` and `cTag`).
    pub fn modify_file(&self, account: &str, id: &str, content: Content) -> Result<Node, ControlError> {
        let blob = hashed_blob(content);
        self.mutate(account, id, |d, seq, now| d.set_content(seq, id, blob, now))
    }

    /// Moves an item to folder `new_parent` (same drive) and/or renames it.
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
        if let Some(p) = new_parent {
            let inner = self.state.lock();
            let (a, b) = (inner.item_drive.get(id), inner.item_drive.get(p));
            if b.is_none() {
                return Err(ControlError::NotFound(p.into()));
            }
            if a.is_some() && a != b {
                return Err(ControlError::Conflict("moves between drives are not emulated".into()));
            }
        }
        self.mutate(account, id, |d, seq, now| d.move_to(seq, id, new_parent, new_name, now))
    }

    /// Renames an item.
    pub fn rename(&self, account: &str, id: &str, name: &str) -> Result<Node, ControlError> {
        self.move_entry(account, id, None, Some(name))
    }

    /// Deletes an item (a folder with its subtree).
    pub fn delete(&self, account: &str, id: &str) -> Result<(), ControlError> {
        let mut guard = self.state.lock();
        let inner = &mut *guard;
        Self::check_account(inner, account)?;
        let drive_id = inner.item_drive.get(id).cloned().ok_or_else(|| ControlError::NotFound(id.into()))?;
        let drive = inner.drives.get_mut(&drive_id).ok_or_else(|| ControlError::NotFound(id.into()))?;
        let gone = drive.delete(&mut inner.seq, id).map_err(from_model)?;
        for g in gone {
            inner.item_drive.remove(&g);
        }
        Ok(())
    }

    fn read<T>(
        &self,
        account: &str,
        id: &str,
        f: impl FnOnce(&Inner, &Drive, &Item) -> T,
    ) -> Result<Option<T>, ControlError> {
        let inner = self.state.lock();
        Self::check_account(&inner, account)?;
        let Some(drive) = inner.drive_of_item(id) else { return Ok(None) };
        Ok(drive.items.get(id).map(|i| f(&inner, drive, i)))
    }

    /// The item's neutral view (`path` is its path in its drive), `None` when gone.
    pub fn node(&self, account: &str, id: &str) -> Result<Option<Node>, ControlError> {
        self.read(account, id, |_, d, i| to_node(d, i))
    }

    /// The item as `GET /drives/{d}/items/{id}` serves it.
    pub fn item_json(&self, account: &str, id: &str) -> Result<serde_json::Value, ControlError> {
        self.read(account, id, |inner, d, i| {
            super::wire::item_json(d, super::api::site_of(inner, d), i, super::wire::Render::Full)
        })?
        .ok_or_else(|| ControlError::NotFound(id.into()))
    }

    /// Every file below folder `folder` (recursive).
    pub fn list_files(&self, account: &str, folder: &str) -> Result<Vec<Node>, ControlError> {
        self.read(account, folder, |_, d, i| {
            if !i.is_folder() {
                return Err(ControlError::NotAFolder(folder.into()));
            }
            Ok(d.subtree(&i.id)
                .iter()
                .filter_map(|id| d.items.get(id))
                .filter(|i| !i.is_folder())
                .map(|i| to_node(d, i))
                .collect())
        })?
        .ok_or_else(|| ControlError::NotFound(folder.into()))?
    }

    /// Lowercase hex SHA-256 of a file.
    pub fn sha256(&self, account: &str, id: &str) -> Result<String, ControlError> {
        let blob = self
            .read(account, id, |_, _, i| i.blob.clone())?
            .ok_or_else(|| ControlError::NotFound(id.into()))?;
        blob.map(|b| b.sha256().to_string()).ok_or_else(|| ControlError::NotAFile(id.into()))
    }

    /// A file's `quickXorHash` (base64), as listed.
    pub fn quick_xor_hash(&self, account: &str, id: &str) -> Result<String, ControlError> {
        let blob = self
            .read(account, id, |_, _, i| i.blob.clone())?
            .ok_or_else(|| ControlError::NotFound(id.into()))?;
        blob.map(|b| super::quickxor::hex_to_base64(b.native_hash()))
            .ok_or_else(|| ControlError::NotAFile(id.into()))
    }

    // -- feed and download quirks ---------------------------------------------------

    /// Builds `@odata` links and download `Location`s from `base` instead of the
    /// sandbox's own base URL (`None`: back to the sandbox's).
    pub fn set_link_base(&self, base: Option<String>) {
        self.state.lock().link_base = base.map(|b| b.trim_end_matches('/').to_string());
    }

    /// Every delta token issued so far (deltaLinks and nextLinks) answers 410.
    pub fn expire_delta_tokens(&self) {
        let mut inner = self.state.lock();
        inner.token_floor = inner.serial + 1;
    }

    /// Delta feeds repeat items: an earlier state first, the latest last.
    pub fn set_duplicate_items(&self, on: bool) {
        self.state.lock().duplicate_items = on;
    }

    /// Downloads of `.docx`/`.xlsx`/`.pptx` serve bytes that differ from the listed
    /// size and hash.
    pub fn set_rewrites_office_files(&self, on: bool) {
        self.state.lock().rewrites_office = on;
    }

    /// Page size of children and delta pages when the request has no `$top` (default 200).
    pub fn set_page_size(&self, size: usize) {
        let mut inner = self.state.lock();
        inner.children_page = size.max(1);
        inner.delta_page = size.max(1);
    }

    // -- tokens, faults, counters ---------------------------------------------------

    /// Mints an offline grant (the default scopes) without the browser flow.
    pub fn mint_tokens(&self, account: &str, client_id: &str) -> Result<MintedTokens, ControlError> {
        self.state.oauth.mint(account, client_id).ok_or_else(|| ControlError::UnknownAccount(account.into()))
    }

    /// Registers (or replaces) an OAuth app with a secret the caller knows (the fidelity
    /// check drives the token endpoint with its own app); the secret becomes a canary.
    pub fn register_client(&self, client_id: String, client_secret: String, redirect_uris: Vec<String>) {
        self.state.oauth.register_client(crate::OAuthClient {
            service: Service::Sharepoint,
            client_id,
            client_secret,
            redirect_uris,
        });
    }

    /// The newest refresh token the token endpoint (or `mint_tokens`) issued for `account`:
    /// with rotation, the one a client must have kept.
    pub fn latest_refresh_token(&self, account: &str) -> Option<String> {
        self.state.oauth.latest_refresh(account)
    }

    /// Every access token issued so far now fails with 401.
    pub fn expire_access_tokens(&self) {
        self.state.oauth.expire_all_access();
    }

    /// Every refresh token issued so far now gets `invalid_grant` `AADSTS700082`.
    pub fn expire_refresh_tokens(&self) {
        self.state.oauth.expire_all_refresh();
    }

    /// Revokes the grant of one access or refresh token (`AADSTS50173` afterwards).
    pub fn revoke_token(&self, token: &str) {
        self.state.oauth.revoke(token);
    }

    /// Revokes every token issued so far.
    pub fn revoke_all(&self) {
        self.state.oauth.revoke_all();
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

    /// Every secret issued or seen (tokens, codes, client secrets, PKCE verifiers,
    /// download `tempauth`s).
    pub fn canaries(&self) -> Vec<String> {
        self.state.oauth.canaries()
    }
}

fn add_library_locked(inner: &mut Inner, site_id: &str, name: &str, now: SystemTime) -> Library {
    let web = inner.site(site_id).map(|s| s.web_url.clone()).unwrap_or_default();
    let segment =
        if name == "Documents" { "Shared%20Documents".to_string() } else { name.replace(' ', "%20") };
    let drive = Drive::new(
        name,
        DriveType::DocumentLibrary,
        Owner::Site(site_id.to_string()),
        format!("{web}/{segment}"),
        now,
    );
    let lib = Library { drive_id: drive.id.clone(), root_id: drive.root_id.clone() };
    inner.item_drive.insert(drive.root_id.clone(), drive.id.clone());
    inner.drives.insert(drive.id.clone(), drive);
    if let Some(s) = inner.sites.iter_mut().find(|s| s.id == site_id) {
        s.drives.push(lib.drive_id.clone());
    }
    lib
}
