use std::path::PathBuf;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::domain::{AssetEvent, AssetEventKind};
use crate::local::safe_relative_path;
use crate::ports::{AssetEvents, SinkError};

/// Asset events as JSON lines, and the index by source path kept in step with them: imported
/// and updated files get a symlink at their source path, renames move it, deletions at the
/// source remove it (the object itself is kept).
#[derive(Debug)]
pub struct JsonLinesEvents {
    root: PathBuf,
    write: Mutex<()>,
}

fn io(e: std::io::Error) -> SinkError {
    SinkError::Unavailable(e.to_string())
}

impl JsonLinesEvents {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into(), write: Mutex::new(()) }
    }

    pub fn events_file(&self) -> PathBuf {
        self.root.join("events.jsonl")
    }

    /// The index entry of a source path of one connection.
    pub fn index_path(&self, e: &AssetEvent, path: &str) -> PathBuf {
        self.root
            .join("index")
            .join(e.client_id.as_str())
            .join(e.connection_id.as_str())
            .join(safe_relative_path(path))
    }

    async fn link(&self, e: &AssetEvent) -> Result<(), SinkError> {
        let Some(key) = &e.asset_key else { return Ok(()) };
        let at = self.index_path(e, &e.path);
        if let Some(dir) = at.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(io)?;
        }
        let _ = tokio::fs::remove_file(&at).await;
        let target = std::path::absolute(self.root.join("objects").join(key)).map_err(io)?;
        tokio::fs::symlink(target, &at).await.map_err(io)
    }

    async fn unlink(&self, e: &AssetEvent, path: &str) {
        let _ = tokio::fs::remove_file(self.index_path(e, path)).await;
    }
}

#[async_trait]
impl AssetEvents for JsonLinesEvents {
    async fn publish(&self, events: &[AssetEvent]) -> Result<(), SinkError> {
        let _guard = self.write.lock().await;
        tokio::fs::create_dir_all(&self.root).await.map_err(io)?;
        let mut lines = Vec::new();
        for e in events {
            serde_json::to_writer(&mut lines, e).map_err(|x| SinkError::Unavailable(x.to_string()))?;
            lines.push(b'\n');
        }
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.events_file())
            .await
            .map_err(io)?;
        f.write_all(&lines).await.map_err(io)?;
        for e in events {
            match e.kind {
                AssetEventKind::Imported | AssetEventKind::Updated => self.link(e).await?,
                AssetEventKind::MetadataUpdated => {
                    if let Some(prev) = &e.previous_path {
                        self.unlink(e, prev).await;
                    }
                    self.link(e).await?;
                }
                AssetEventKind::SourceDeleted => self.unlink(e, &e.path).await,
            }
        }
        Ok(())
    }
}
