//! sync-scheduler: every tick of the EventBridge schedule enqueues each due auto-sync
//! connection once (a double tick in one window enqueues nothing twice: the core's tick claims
//! each connection with a conditional next-due update). It has no access to secrets.

use extconn_core::Ports;
use extconn_lambda::{Metric, emit_metrics};

/// One tick; returns how many jobs were enqueued.
pub async fn handle(ports: &Ports) -> Result<usize, extconn_lambda::Error> {
    let now = ports.clock.now();
    let sent = extconn_core::scheduler::tick(ports, now).await?;
    tracing::info!(enqueued = sent, "scheduler tick");
    emit_metrics("sync-scheduler", &[Metric { name: "JobsEnqueued", value: sent as f64, unit: "Count" }]);
    Ok(sent)
}
