//! Integration tests of the Dropbox emulator, through plain HTTP (reqwest), as a
//! connector would see it, driven through `DropboxControl`, the provider-neutral
//! `ProviderControl` trait and the HTTP control routes. One test binary with several
//! modules to keep link time low.

mod control_http;
mod cursors;
mod download;
mod faults;
mod golden;
mod oauth;
mod provider_control;
mod support;
