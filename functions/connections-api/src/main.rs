//! connections-api: the admin endpoints (JWT authorizer routes). Wiring only.

#[tokio::main]
async fn main() -> Result<(), extconn_lambda::Error> {
    extconn_lambda::init_logging();
    let env = extconn_lambda::Env::from_env()?;
    let sdk = extconn_lambda::sdk_config().await;
    let ports = extconn_lambda::ports(&env, &sdk).await?;
    lambda_http::run(extconn_lambda::http_app(&env, ports, &sdk).await?).await
}
