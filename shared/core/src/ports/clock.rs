//! Time, as a port: the engine never reads the system clock itself, so tests can run on a
//! virtual clock (rate-limit waits, lease and token expiry) without real waiting.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::Timestamp;

#[async_trait]
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
    /// Waits `d`. A virtual clock advances its time by `d` instead of waiting.
    async fn sleep(&self, d: Duration);
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}
