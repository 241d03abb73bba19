//! Integration tests of the Dropbox emulator, through plain HTTP (reqwest), as a
//! connector would see it. One test binary with several modules to keep link time low.

mod control_http;
mod cursors;
mod download;
mod faults;
mod golden;
mod oauth;
mod support;
