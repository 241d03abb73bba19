//! AWS adapters of the core ports (ARCHITECTURE §2, §8): DynamoDB ([`dynamo`]), Secrets
//! Manager ([`secrets`]), SQS ([`queue`]), S3 ([`s3`]) and EventBridge ([`events`]). Each runs
//! the same contract suites as the in-memory adapters (see `tests/`).

pub mod dynamo;
pub mod events;
pub mod queue;
pub mod s3;
pub mod secrets;

pub use dynamo::DynamoStore;
pub use events::EventBridgeEvents;
pub use queue::SqsQueue;
pub use s3::S3Sink;
pub use secrets::SecretsVault;

/// The SDK configuration from the environment (`AWS_ENDPOINT_URL` points it at an emulator).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await
}

/// An S3 client; path-style addressing when an endpoint override is set (emulators).
pub fn s3_client(config: &aws_config::SdkConfig) -> aws_sdk_s3::Client {
    let mut b = aws_sdk_s3::config::Builder::from(config);
    if std::env::var_os("AWS_ENDPOINT_URL").is_some() || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some() {
        b = b.force_path_style(true);
    }
    aws_sdk_s3::Client::from_conf(b.build())
}
