//! Events on an EventBridge bus, so the DAM learns of every imported, updated, renamed or
//! source-deleted asset (source `extconn.assets`) and of every connection status change
//! (source `extconn.connections`, detail type `Connection Status Changed`: a connection that
//! needs attention, and when it is healthy again). The detail is the event's JSON.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use extconn_core::ports::{AssetEvents, SinkError};
use extconn_core::{AssetEvent, AssetEventKind, ConnectionEvent};
use serde::Serialize;

pub const SOURCE: &str = "extconn.assets";
pub const CONNECTION_SOURCE: &str = "extconn.connections";
pub const CONNECTION_DETAIL_TYPE: &str = "Connection Status Changed";

#[derive(Debug, Clone)]
pub struct EventBridgeEvents {
    client: Client,
    bus: String,
}

impl EventBridgeEvents {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self { client, bus: bus.into() }
    }

    /// PutEvents in batches of 10 (its limit); every entry must be accepted.
    async fn put<T: Serialize>(
        &self,
        events: &[T],
        source: &str,
        detail_type: impl Fn(&T) -> &'static str,
    ) -> Result<(), SinkError> {
        for chunk in events.chunks(10) {
            let entries = chunk
                .iter()
                .map(|e| {
                    Ok(PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(source)
                        .detail_type(detail_type(e))
                        .detail(serde_json::to_string(e).map_err(|x| SinkError::Unavailable(x.to_string()))?)
                        .build())
                })
                .collect::<Result<Vec<_>, SinkError>>()?;
            let out = self
                .client
                .put_events()
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| SinkError::Unavailable(DisplayErrorContext(&e).to_string()))?;
            if out.failed_entry_count() > 0 {
                return Err(SinkError::Unavailable(format!(
                    "{} events not accepted",
                    out.failed_entry_count()
                )));
            }
        }
        Ok(())
    }
}

pub fn detail_type(kind: AssetEventKind) -> &'static str {
    match kind {
        AssetEventKind::Imported => "Asset Imported",
        AssetEventKind::Updated => "Asset Updated",
        AssetEventKind::MetadataUpdated => "Asset Metadata Updated",
        AssetEventKind::SourceDeleted => "Asset Deleted At Source",
    }
}

#[async_trait]
impl AssetEvents for EventBridgeEvents {
    async fn publish(&self, events: &[AssetEvent]) -> Result<(), SinkError> {
        self.put(events, SOURCE, |e| detail_type(e.kind)).await
    }

    async fn publish_connection(&self, events: &[ConnectionEvent]) -> Result<(), SinkError> {
        self.put(events, CONNECTION_SOURCE, |_| CONNECTION_DETAIL_TYPE).await
    }
}
