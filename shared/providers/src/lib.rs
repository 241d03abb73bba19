//! Provider connectors: each implements [`extconn_core::ports::Provider`] over HTTP.
//!
//! - [`dropbox`]: Dropbox API v2 ([`Dropbox`], configured by [`DropboxConfig`]).
//! - [`google_drive`]: Google Drive API v3 ([`GoogleDrive`], configured by [`GoogleDriveConfig`]).
//! - [`sharepoint`]: SharePoint / OneDrive for Business over Microsoft Graph v1.0
//!   ([`SharePoint`], configured by [`SharePointConfig`]).
//! - [`hash`]: provider content hashes computed while streaming ([`DropboxContentHasher`],
//!   [`hash::Md5Hasher`], [`hash::Sha256Hasher`], [`hash::QuickXorHasher`]).
//! - [`retry`]: `Retry-After` parsing ([`parse_retry_after`]).
//! - [`http`]: the shared `reqwest` client and the error classification common to providers.
//! - [`oauth`]: the token-endpoint adapter, token-error classification and token sets every
//!   connector's OAuth uses.
//! - [`verify`]: verified streaming (size and the provider's hash checked while streaming).
//! - [`registry`]: the enabled providers and their app credentials, from configuration.
//!
//! A connector only speaks HTTP to one provider and classifies what it hears into
//! [`ProviderError`](extconn_core::ports::ProviderError); when to refresh, retry or stop is the
//! core's decision. Tokens travel as [`Secret`](extconn_core::Secret) and never appear in an
//! error message or a `Debug` output. Base URLs are configuration, so the same code talks to
//! the real provider or to the sandbox. HTTPS needs the `rustls` feature.

pub mod dropbox;
pub mod google_drive;
pub mod hash;
pub mod http;
pub mod oauth;
pub mod registry;
pub mod retry;
pub mod sharepoint;
pub mod verify;

pub use dropbox::{Dropbox, DropboxConfig};
pub use google_drive::{GoogleDrive, GoogleDriveConfig};
pub use hash::DropboxContentHasher;
pub use http::HttpConfig;
pub use retry::parse_retry_after;
pub use sharepoint::{SharePoint, SharePointConfig};
