//! Asset events on an EventBridge bus (source `extconn.assets`), so the DAM learns of every
//! imported, updated, renamed or source-deleted asset.

use async_trait::async_trait;
use aws_sdk_eventbridge::Client;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use extconn_core::ports::{AssetEvents, SinkError};
use extconn_core::{AssetEvent, AssetEventKind};

pub const SOURCE: &str = "extconn.assets";

#[derive(Debug, Clone)]
pub struct EventBridgeEvents {
    client: Client,
    bus: String,
}

impl EventBridgeEvents {
    pub fn new(client: Client, bus: impl Into<String>) -> Self {
        Self { client, bus: bus.into() }
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
        for chunk in events.chunks(10) {
            let entries = chunk
                .iter()
                .map(|e| {
                    Ok(PutEventsRequestEntry::builder()
                        .event_bus_name(&self.bus)
                        .source(SOURCE)
                        .detail_type(detail_type(e.kind))
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
