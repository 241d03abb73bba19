//! In-memory implementations of every port. One [`MemoryStore`] holds all state records behind
//! one lock, so the fenced multi-record writes (item + run + connection counters) are atomic the
//! same way a DynamoDB transaction is. Used by tests and by local mode (state does not survive a
//! restart).

mod clock;
mod queue;
mod sink;
mod store;
mod vault;

pub use clock::ManualClock;
pub use queue::MemoryQueue;
pub use sink::{MemoryEvents, MemorySink, StoredObject};
pub use store::MemoryStore;
pub use vault::MemoryVault;
