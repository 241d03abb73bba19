//! Stand-ins for adapters a function is not allowed to use (least privilege): every call
//! fails loudly instead of reaching AWS and being denied.

use async_trait::async_trait;
use extconn_core::ports::{
    AssetEvents, AssetMeta, AssetSink, AssetUpload, SinkError, StoreError, TokenVault,
};
use extconn_core::{AssetEvent, TokenSet, VersionedTokens};

#[derive(Debug, Clone, Copy)]
pub struct Unavailable(pub &'static str);

impl Unavailable {
    fn store(self) -> StoreError {
        StoreError::Unavailable(format!("this function has no access to {}", self.0))
    }
    fn sink(self) -> SinkError {
        SinkError::Unavailable(format!("this function has no access to {}", self.0))
    }
}

#[async_trait]
impl TokenVault for Unavailable {
    async fn get(&self, _: &str) -> Result<Option<VersionedTokens>, StoreError> {
        Err(self.store())
    }
    async fn put(&self, _: &str, _: &TokenSet, _: Option<u64>) -> Result<u64, StoreError> {
        Err(self.store())
    }
    async fn delete(&self, _: &str) -> Result<(), StoreError> {
        Err(self.store())
    }
}

#[async_trait]
impl AssetSink for Unavailable {
    async fn begin(&self, _: &str, _: &AssetMeta) -> Result<Box<dyn AssetUpload>, SinkError> {
        Err(self.sink())
    }
}

#[async_trait]
impl AssetEvents for Unavailable {
    async fn publish(&self, _: &[AssetEvent]) -> Result<(), SinkError> {
        Err(self.sink())
    }
    async fn publish_connection(&self, _: &[extconn_core::ConnectionEvent]) -> Result<(), SinkError> {
        Err(self.sink())
    }
}
