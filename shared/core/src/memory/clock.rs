use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;

use crate::domain::Timestamp;
use crate::ports::Clock;

/// A virtual clock: `sleep` advances time instead of waiting, and every sleep is recorded so a
/// test can check that a rate-limit wait really happened before the retry.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Timestamp>,
    sleeps: Mutex<Vec<Duration>>,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self { now: Mutex::new(start), sleeps: Mutex::new(Vec::new()) }
    }

    pub fn advance(&self, d: Duration) {
        let mut now = self.now.lock().expect("clock lock");
        *now += chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
    }

    pub fn set(&self, t: Timestamp) {
        *self.now.lock().expect("clock lock") = t;
    }

    /// Every `sleep` so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().expect("clock lock").clone()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new(chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default())
    }
}

#[async_trait]
impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.now.lock().expect("clock lock")
    }
    async fn sleep(&self, d: Duration) {
        self.sleeps.lock().expect("clock lock").push(d);
        self.advance(d);
        tokio::task::yield_now().await;
    }
}
