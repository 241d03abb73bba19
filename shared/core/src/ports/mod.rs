//! The ports of ARCHITECTURE §7: small traits the use cases depend on. Each has an in-memory
//! implementation in [`crate::memory`] and a contract suite in `testkit` that every
//! implementation (the AWS adapters too) must pass.

pub mod assets;
pub mod clock;
pub mod provider;
pub mod queue;
pub mod store;
pub mod vault;

pub use assets::{
    AssetEvents, AssetMeta, AssetSink, AssetUpload, CommitOutcome, ObjectDigest, SinkError, SinkResume,
};
pub use clock::{Clock, SystemClock};
pub use provider::{
    AccountInfo, AuthorizeRequest, Capabilities, Change, Download, DownloadRequest, DownloadWarning,
    EntryKind, FeedScope, FolderEntry, FolderPage, HashAlgorithm, HashMarks, ListPage, Provider,
    ProviderError, RateScope, RemoteItem,
};
pub use queue::{JobQueue, MAX_QUEUE_DELAY};
pub use store::{
    AuditLog, ConnectionPatch, ConnectionStore, CounterDelta, DuePage, DueRef, GrantStore, ItemStore,
    ItemWrite, OAuthState, OAuthStateStore, RunPatch, RunStore, StoreError,
};
pub use vault::TokenVault;
