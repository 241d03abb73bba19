//! Wiring only: configuration and clients once; each invocation's deadline from its context.

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), extconn_lambda::Error> {
    extconn_lambda::init_logging();
    let env = extconn_lambda::Env::from_env()?;
    let sdk = extconn_lambda::sdk_config().await;
    let ports = extconn_lambda::ports(&env, &sdk).await?;
    let defaults = extconn_core::engine::EngineConfig::default();
    let config = extconn_core::engine::EngineConfig {
        worker_id: std::env::var("AWS_LAMBDA_LOG_STREAM_NAME").unwrap_or_else(|_| "sync-worker".into()),
        transfer_concurrency: env.transfer_concurrency.unwrap_or(defaults.transfer_concurrency),
        ..defaults
    };
    let worker = &extconn_sync_worker::Worker::new(ports, config);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let deadline_ms = i64::try_from(event.context.deadline).unwrap_or(i64::MAX);
        let deadline = chrono::DateTime::from_timestamp_millis(deadline_ms).unwrap_or_else(chrono::Utc::now);
        worker.handle(event.payload, deadline).await
    }))
    .await
}
