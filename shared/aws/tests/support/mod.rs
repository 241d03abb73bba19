//! The AWS emulator the tests run against (moto, started by `scripts/with-aws-emulator`).
//! Without it the tests fail, never skip: an unreachable emulator is a broken test setup.

#![allow(dead_code)]

use extconn_core::RunId;

pub async fn config() -> aws_config::SdkConfig {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!("AWS tests need an AWS emulator: run them with scripts/with-aws-emulator (scripts/test does)")
    });
    let probe = reqwest_probe(&endpoint).await;
    assert!(probe, "the AWS emulator at {endpoint} is unreachable");
    extconn_aws::sdk_config().await
}

async fn reqwest_probe(endpoint: &str) -> bool {
    let addr = endpoint.trim_start_matches("http://").trim_end_matches('/').to_owned();
    tokio::net::TcpStream::connect(addr).await.is_ok()
}

/// A unique lowercase resource name (tests run in parallel on one emulator).
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", RunId::generate().as_str().trim_start_matches("run_"))
}

pub async fn table(cfg: &aws_config::SdkConfig) -> (aws_sdk_dynamodb::Client, String) {
    let client = aws_sdk_dynamodb::Client::new(cfg);
    let name = unique("extconn");
    extconn_aws::DynamoStore::create_table(&client, &name).await.expect("create table");
    (client, name)
}
