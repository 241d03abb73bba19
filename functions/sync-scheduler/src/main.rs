//! Wiring only: configuration and clients once, then one tick per scheduled event.

use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), extconn_lambda::Error> {
    extconn_lambda::init_logging();
    let env = extconn_lambda::Env::from_env()?;
    let sdk = extconn_lambda::sdk_config().await;
    let ports = extconn_lambda::ports(&env, &sdk).await?;
    let ports = &ports;
    lambda_runtime::run(service_fn(move |_: LambdaEvent<serde_json::Value>| async move {
        extconn_sync_scheduler::handle(ports).await.map(|n| serde_json::json!({ "enqueued": n }))
    }))
    .await
}
