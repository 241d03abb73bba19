//! The admin use cases (`extconn_core::connections`, `extconn_core::oauth`) on the in-memory
//! ports and a fake provider: no router, no HTTP.

mod connections;
mod oauth;
mod support;
