//! The provider-neutral control API: one trait, [`ProviderControl`], that every
//! emulated provider implements, so a conformance suite or a system test can drive
//! any provider's emulator without naming it (get one with
//! [`crate::Sandbox::control`]).
//!
//! Conventions:
//! - accounts and entries are named by **opaque ids** (strings), never by paths:
//!   every provider has ids, not every provider has paths. The account's root folder
//!   has a ref too ([`ProviderControl::root`]; Dropbox: `""`), usable wherever a
//!   parent or folder id is expected;
//! - names are single path components (no `/`);
//! - methods that can fail return [`ControlError`] (the provider-specific handles,
//!   such as `DropboxControl`, also offer panicking helpers);
//! - operation classes ([`Op`]) stand for the provider's endpoints in fault injection
//!   and call counters; each provider documents its mapping.
//!
//! Digests reported here are SHA-256 (the provider's own hash stays in its own API),
//! computed by streaming and cached per content, so the first lookup of a multi-GiB
//! generated file takes a few seconds.

pub(crate) mod http;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Service;
use crate::content::Content;
use crate::faults::Fault;

/// Why a control operation failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlError {
    /// No account with that id.
    UnknownAccount(String),
    /// Nothing at that path or id.
    NotFound(String),
    /// A folder was required.
    NotAFolder(String),
    /// A file was required.
    NotAFile(String),
    /// Something is in the way (existing entry, file as parent, move into itself…).
    Conflict(String),
    /// Invalid path or name syntax.
    Malformed(String),
    /// The provider has no endpoint for this operation class.
    Unsupported(String),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::UnknownAccount(a) => write!(f, "unknown account {a}"),
            ControlError::NotFound(p) => write!(f, "not found: {p}"),
            ControlError::NotAFolder(p) => write!(f, "not a folder: {p}"),
            ControlError::NotAFile(p) => write!(f, "not a file: {p}"),
            ControlError::Conflict(d) => write!(f, "conflict: {d}"),
            ControlError::Malformed(d) => write!(f, "malformed path: {d}"),
            ControlError::Unsupported(d) => write!(f, "unsupported: {d}"),
        }
    }
}

impl std::error::Error for ControlError {}

/// A class of provider operations, for fault injection and call counters. Each
/// provider maps a class to one of its endpoints (Dropbox: see
/// `dropbox::Endpoint::of`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Op {
    /// The browser-facing authorize endpoint (consent page or auto-approve redirect).
    Authorize,
    /// The token endpoint (code exchange and refresh).
    Token,
    /// Token revocation.
    Revoke,
    /// The signed-in account's identity.
    Account,
    /// The first call of a full listing.
    List,
    /// Taking a cursor without listing (the "start cursor" of a change feed).
    StartCursor,
    /// Changes since a cursor.
    Changes,
    /// One entry's metadata by id or path.
    Metadata,
    /// A file's bytes.
    Download,
}

impl Op {
    /// Every operation class.
    pub const ALL: [Op; 9] = [
        Op::Authorize,
        Op::Token,
        Op::Revoke,
        Op::Account,
        Op::List,
        Op::StartCursor,
        Op::Changes,
        Op::Metadata,
        Op::Download,
    ];
}

/// A file or folder, as the control API sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// The provider's id (Dropbox: `id:` + 22 chars); stable across renames and moves.
    pub id: String,
    /// Name in its folder, display case.
    pub name: String,
    /// The parent folder's ref (the root's ref, such as Dropbox's `""`, for an entry
    /// directly in the root); `None` only for a root itself.
    pub parent_id: Option<String>,
    /// Display path, where the provider has paths (Dropbox: `path_display`).
    pub path: Option<String>,
    /// Folder or file.
    pub is_folder: bool,
    /// Files: size in bytes; folders: `None`.
    pub size: Option<u64>,
    /// Files: lowercase hex SHA-256 of the content; folders: `None`.
    pub sha256: Option<String>,
}

/// An access token and its refresh token, minted without the browser flow. `Debug`
/// does not show them.
#[derive(Clone, PartialEq, Eq)]
pub struct MintedTokens {
    /// Bearer token for API calls.
    pub access_token: String,
    /// Refresh token (for the client id it was minted for).
    pub refresh_token: String,
}

impl fmt::Debug for MintedTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedTokens")
            .field("access_token", &"<redacted>")
            .field("refresh_token", &"<redacted>")
            .finish()
    }
}

/// Drives one emulated provider: accounts, files, tokens, faults, counters. Obtain it
/// with [`crate::Sandbox::control`]; all handles of a provider share one state, and
/// every change is visible at once through the provider's HTTP API (change feeds,
/// listings, downloads).
pub trait ProviderControl: Send + Sync + fmt::Debug {
    /// Which provider this is.
    fn service(&self) -> Service;

    /// Base URLs of the emulated hosts, by name (Dropbox: `www`, `api`, `content`,
    /// `notify`, standing for `www.dropbox.com`, `api.dropboxapi.com`, …).
    fn urls(&self) -> BTreeMap<String, String>;

    /// Creates an account with an empty drive and makes it the consent page's login;
    /// returns its id.
    fn create_account(&self, display_name: &str, email: &str) -> String;

    /// Auto-approve: the authorize endpoint redirects with a code for the login
    /// account at once, without showing the consent page.
    fn set_auto_approve(&self, on: bool);

    /// The ref of the account's root folder (Dropbox: `""`).
    fn root(&self, account: &str) -> Result<String, ControlError>;

    /// The drive an entry lives in, where the provider addresses items by drive and id
    /// (Graph's `driveId`, which a connection's locator carries); `None` elsewhere.
    fn drive_of(&self, _account: &str, _id: &str) -> Option<String> {
        None
    }

    /// Creates a folder `name` in folder `parent_id`. Where names are unique in a
    /// folder (Dropbox), a taken name is a [`ControlError::Conflict`].
    fn add_folder(&self, account: &str, parent_id: &str, name: &str) -> Result<Node, ControlError>;

    /// Creates a file `name` in folder `parent_id`. Where names are unique in a folder
    /// (Dropbox), a taken name is a [`ControlError::Conflict`] (use
    /// [`ProviderControl::modify_file`] to change a file).
    fn add_file(
        &self,
        account: &str,
        parent_id: &str,
        name: &str,
        content: Content,
    ) -> Result<Node, ControlError>;

    /// Replaces a file's content (same id, new revision).
    fn modify_file(&self, account: &str, id: &str, content: Content) -> Result<Node, ControlError>;

    /// Moves an entry to folder `new_parent_id` and/or renames it to `new_name`
    /// (`None` keeps the current one). A folder moves with its subtree; ids are kept.
    fn move_entry(
        &self,
        account: &str,
        id: &str,
        new_parent_id: Option<&str>,
        new_name: Option<&str>,
    ) -> Result<Node, ControlError>;

    /// Deletes a file, or a folder with its subtree.
    fn delete(&self, account: &str, id: &str) -> Result<(), ControlError>;

    /// Creates `files` files of `size_each` generated bytes under folder `folder_id`,
    /// `files_per_folder` per subfolder (names are the provider's choice; contents
    /// differ from each other). Returns the files in creation order.
    fn seed_tree(
        &self,
        account: &str,
        folder_id: &str,
        files: usize,
        files_per_folder: usize,
        size_each: u64,
    ) -> Result<Vec<Node>, ControlError>;

    /// The entry with this id, or `None` when there is none (any more).
    fn node(&self, account: &str, id: &str) -> Result<Option<Node>, ControlError>;

    /// Every live file under folder `folder_id`, recursively (the root's ref: all).
    fn list_files(&self, account: &str, folder_id: &str) -> Result<Vec<Node>, ControlError>;

    /// Lowercase hex SHA-256 of a file's content.
    fn sha256(&self, account: &str, id: &str) -> Result<String, ControlError>;

    /// Mints an offline grant (access + refresh token, the default scopes) for an
    /// account and a client id, without the browser flow.
    fn mint_tokens(&self, account: &str, client_id: &str) -> Result<MintedTokens, ControlError>;

    /// Every access token issued so far now fails as expired; refresh tokens stay valid.
    fn expire_access_tokens(&self);

    /// Revokes every access and refresh token issued so far.
    fn revoke_all(&self);

    /// Every cursor issued so far gets the provider's "cursor reset" answer (Dropbox:
    /// 409 `reset`), forcing a full listing.
    fn reset_cursors(&self);

    /// The next `times` calls of the operation class get `fault` (FIFO after faults
    /// already queued). [`ControlError::Unsupported`] when the provider has no such
    /// endpoint.
    fn inject(&self, op: Op, fault: Fault, times: u32) -> Result<(), ControlError>;

    /// Calls of the operation class since start or the last reset (0 when the provider
    /// has no such endpoint).
    fn calls(&self, op: Op) -> u64;

    /// Zeroes the call counters (and the provider's call log).
    fn reset_counters(&self);

    /// Drops every queued fault.
    fn clear_faults(&self);

    /// Every secret issued or seen (tokens, codes, client secrets, PKCE verifiers), for
    /// scanning logs and outputs for leaks.
    fn canaries(&self) -> Vec<String>;
}
