//! The token vault on Secrets Manager: one secret per grant, named `{prefix}{secret_ref}`
//! (the ref starts with the client id), tagged with the client, holding the token set only.
//!
//! Compare-and-set without a conditional write API: version N+1 of a secret is written with a
//! `ClientRequestToken` derived from (secret, N+1). Secrets Manager refuses a second, different
//! value under an existing token, so of two writers that both read version N exactly one
//! creates N+1, and a stale writer (who read N-1) collides with the existing N.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::Tag;
use extconn_core::ports::{StoreError, TokenVault};
use extconn_core::{TokenSet, VersionedTokens};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct SecretsVault {
    client: Client,
    prefix: String,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    version: u64,
    tokens: TokenSet,
}

fn err<E: std::error::Error + 'static>(e: SdkError<E>) -> StoreError {
    StoreError::Unavailable(DisplayErrorContext(&e).to_string())
}

fn code<E: ProvideErrorMetadata>(e: &SdkError<E>) -> Option<&str> {
    e.as_service_error().and_then(|s| s.code())
}

impl SecretsVault {
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self { client, prefix: prefix.into() }
    }

    fn name(&self, secret_ref: &str) -> String {
        format!("{}{secret_ref}", self.prefix)
    }

    /// The idempotency token of version `v` of a secret (32–64 characters, as required).
    fn token(&self, secret_ref: &str, v: u64) -> String {
        let d = hex::encode(&Sha256::digest(self.name(secret_ref).as_bytes())[..12]);
        format!("v{v:020}-{d}")
    }

    fn value(tokens: &TokenSet, version: u64) -> Result<String, StoreError> {
        serde_json::to_string(&Stored { version, tokens: tokens.clone() })
            .map_err(|e| StoreError::Unavailable(e.to_string()))
    }
}

#[async_trait]
impl TokenVault for SecretsVault {
    async fn get(&self, secret_ref: &str) -> Result<Option<VersionedTokens>, StoreError> {
        match self.client.get_secret_value().secret_id(self.name(secret_ref)).send().await {
            Ok(out) => {
                let raw = out.secret_string().unwrap_or_default();
                let s: Stored = serde_json::from_str(raw)
                    .map_err(|_| StoreError::Unavailable("unreadable token secret".into()))?;
                Ok(Some(VersionedTokens { tokens: s.tokens, version: s.version }))
            }
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(err(e)),
        }
    }

    async fn put(
        &self,
        secret_ref: &str,
        tokens: &TokenSet,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let version = expected.map_or(1, |v| v + 1);
        let value = Self::value(tokens, version)?;
        let client_id = secret_ref.split('/').next().unwrap_or_default();
        match expected {
            None => {
                let r = self
                    .client
                    .create_secret()
                    .name(self.name(secret_ref))
                    // A fresh token: creating an existing secret must fail, not be idempotent.
                    .client_request_token(format!("create-{}", extconn_core::RunId::generate()))
                    .secret_string(value)
                    .description("External Connections: OAuth token set of one provider grant")
                    .tags(Tag::builder().key("extconn:client").value(client_id).build())
                    .send()
                    .await;
                match r {
                    Ok(_) => Ok(version),
                    Err(e) if code(&e) == Some("ResourceExistsException") => Err(StoreError::Conflict),
                    Err(e) => Err(err(e)),
                }
            }
            Some(_) => {
                // Refuse early when the secret already moved past `expected` (the common stale
                // case), then rely on the token collision for the racing case.
                let current = self.get(secret_ref).await?.ok_or(StoreError::Conflict)?;
                if Some(current.version) != expected {
                    return Err(StoreError::Conflict);
                }
                let r = self
                    .client
                    .put_secret_value()
                    .secret_id(self.name(secret_ref))
                    .client_request_token(self.token(secret_ref, version))
                    .secret_string(value)
                    .send()
                    .await;
                match r {
                    Ok(_) => Ok(version),
                    Err(e)
                        if matches!(
                            code(&e),
                            Some("ResourceExistsException" | "InvalidRequestException")
                        ) =>
                    {
                        Err(StoreError::Conflict)
                    }
                    Err(e) => Err(err(e)),
                }
            }
        }
    }

    async fn delete(&self, secret_ref: &str) -> Result<(), StoreError> {
        match self
            .client
            .delete_secret()
            .secret_id(self.name(secret_ref))
            .force_delete_without_recovery(true)
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if code(&e) == Some("ResourceNotFoundException") => Ok(()),
            Err(e) => Err(err(e)),
        }
    }
}
