//! Connection status changes (ARCHITECTURE §7): every change between `active`,
//! `reauth_required`, `error`, `needs_review` and `folder_unavailable` goes out as a
//! [`ConnectionEvent`] through the events port, beside asset events, so the DAM can tell its
//! admins when a connection needs attention and when it is healthy again.
//!
//! The event follows the store write it describes. A failure to publish is logged, never
//! fatal: the status itself is already visible in the API and the console, and the next change
//! is published again.

use crate::context::Ports;
use crate::domain::{Connection, ConnectionEvent, ConnectionStatus};

/// Publishes `conn`'s move from `previous` to its current status, if it moved.
pub(crate) async fn announce(ports: &Ports, conn: &Connection, previous: ConnectionStatus) {
    if conn.status == previous {
        return;
    }
    let event = ConnectionEvent {
        client_id: conn.client_id.clone(),
        connection_id: conn.id.clone(),
        provider: conn.provider,
        folder_name: conn.folder_name.clone(),
        status: conn.status,
        previous_status: previous,
        reason: conn.status_reason.clone(),
        held_deletions: conn.held_deletions,
        at: ports.clock.now(),
    };
    tracing::info!(
        client = %conn.client_id,
        connection = %conn.id,
        status = conn.status.as_str(),
        previous = previous.as_str(),
        reason = conn.status_reason.as_deref().unwrap_or(""),
        "connection status changed"
    );
    if let Err(e) = ports.events.publish_connection(std::slice::from_ref(&event)).await {
        tracing::warn!(connection = %conn.id, error = %e, "connection event not published");
    }
}
