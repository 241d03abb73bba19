use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::domain::{TokenSet, VersionedTokens};
use crate::ports::{StoreError, TokenVault};

#[derive(Debug, Default)]
pub struct MemoryVault {
    secrets: Mutex<HashMap<String, VersionedTokens>>,
    reads: std::sync::atomic::AtomicUsize,
}

impl MemoryVault {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn len(&self) -> usize {
        self.secrets.lock().expect("vault lock").len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// How many `get`s it answered (what Secrets Manager would bill).
    pub fn reads(&self) -> usize {
        self.reads.load(std::sync::atomic::Ordering::SeqCst)
    }
}

#[async_trait]
impl TokenVault for MemoryVault {
    async fn get(&self, secret_ref: &str) -> Result<Option<VersionedTokens>, StoreError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(self.secrets.lock().expect("vault lock").get(secret_ref).cloned())
    }

    async fn put(
        &self,
        secret_ref: &str,
        tokens: &TokenSet,
        expected: Option<u64>,
    ) -> Result<u64, StoreError> {
        let mut secrets = self.secrets.lock().expect("vault lock");
        let current = secrets.get(secret_ref).map(|v| v.version);
        if current != expected {
            return Err(StoreError::Conflict);
        }
        let version = current.map_or(1, |v| v + 1);
        secrets.insert(secret_ref.to_owned(), VersionedTokens { tokens: tokens.clone(), version });
        Ok(version)
    }

    async fn delete(&self, secret_ref: &str) -> Result<(), StoreError> {
        self.secrets.lock().expect("vault lock").remove(secret_ref);
        Ok(())
    }
}
