//! External Connections: the core.
//!
//! The domain ([`domain`], [`ids`]), the ports every adapter implements ([`ports`]), their
//! in-memory implementations ([`memory`]), local-mode adapters ([`local`]), and the use cases:
//! the sync engine ([`engine`]), the single-flight token refresh ([`tokens`]), grant retirement
//! ([`grants`]), the scheduler tick ([`scheduler`]), connection status events ([`status`]), and the admin's: connections
//! ([`connections`]) and the OAuth connect flow ([`oauth`]), sharing [`admin`].
//!
//! This crate depends on no AWS SDK, HTTP client or web framework; Cargo enforces it.

pub mod domain;
pub mod ids;
pub mod ports;
pub mod secret;

pub use domain::*;
pub use ids::{ClientId, ConnectionId, GrantId, IdError, RunId, UserId};
pub use secret::Secret;
pub mod admin;
pub mod connections;
pub mod context;
pub mod engine;
#[cfg(any(test, feature = "testkit"))]
pub mod fake_drive;
pub mod grants;
pub mod local;
pub mod memory;
pub mod midstate;
pub mod oauth;
pub mod scheduler;
pub mod status;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod tokens;

pub use admin::{Actor, UseCaseError};
pub use context::Ports;
