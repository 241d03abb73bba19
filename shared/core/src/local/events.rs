use std::path::PathBuf;

use async_trait::async_trait;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

use crate::domain::{AssetEvent, AssetEventKind, ConnectionEvent};
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

    /// Connection status changes, one JSON object per line, beside the asset events.
    pub fn connection_events_file(&self) -> PathBuf {
        self.root.join("connection-events.jsonl")
    }

    async fn append<T: serde::Serialize>(&self, file: PathBuf, events: &[T]) -> Result<(), SinkError> {
        tokio::fs::create_dir_all(&self.root).await.map_err(io)?;
        let mut lines = Vec::new();
        for e in events {
            serde_json::to_writer(&mut lines, e).map_err(|x| SinkError::Unavailable(x.to_string()))?;
            lines.push(b'\n');
        }
        let mut f = tokio::fs::OpenOptions::new().create(true).append(true).open(file).await.map_err(io)?;
        f.write_all(&lines).await.map_err(io)
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
        self.append(self.events_file(), events).await?;
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

    async fn publish_connection(&self, events: &[ConnectionEvent]) -> Result<(), SinkError> {
        let _guard = self.write.lock().await;
        self.append(self.connection_events_file(), events).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::ProviderKind;
    use crate::ids::{ClientId, ConnectionId};

    fn event(kind: AssetEventKind, path: &str, previous: Option<&str>) -> AssetEvent {
        AssetEvent {
            kind,
            client_id: ClientId::parse("acme").unwrap(),
            connection_id: ConnectionId::parse("con_aaaaaaaaaaaaaaaaaaaaaaaaaa").unwrap(),
            provider: ProviderKind::Dropbox,
            provider_id: "id:1".into(),
            asset_key: Some("acme/con_aaaaaaaaaaaaaaaaaaaaaaaaaa/k/v".into()),
            name: path.rsplit('/').next().unwrap().into(),
            path: path.into(),
            previous_path: previous.map(Into::into),
            size: Some(3),
            content_hash: None,
            at: chrono::Utc::now(),
        }
    }

    #[tokio::test]
    async fn events_are_json_lines_and_the_index_follows_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let object = dir.path().join("objects/acme/con_aaaaaaaaaaaaaaaaaaaaaaaaaa/k/v");
        std::fs::create_dir_all(object.parent().unwrap()).unwrap();
        std::fs::write(&object, b"abc").unwrap();
        let ev = JsonLinesEvents::new(dir.path());

        let imported = event(AssetEventKind::Imported, "/Photos/../a.jpg", None);
        ev.publish(std::slice::from_ref(&imported)).await.unwrap();
        let at = ev.index_path(&imported, "/Photos/../a.jpg");
        assert!(at.starts_with(dir.path().join("index/acme")), "hostile names stay inside the index");
        assert_eq!(std::fs::read(&at).unwrap(), b"abc", "findable by source path");

        let renamed = event(AssetEventKind::MetadataUpdated, "/Photos/b.jpg", Some("/Photos/../a.jpg"));
        ev.publish(std::slice::from_ref(&renamed)).await.unwrap();
        assert!(!at.exists(), "the old path is gone from the index");
        let at_b = ev.index_path(&renamed, "/Photos/b.jpg");
        assert_eq!(std::fs::read(&at_b).unwrap(), b"abc");

        ev.publish(&[event(AssetEventKind::SourceDeleted, "/Photos/b.jpg", None)]).await.unwrap();
        assert!(!at_b.exists(), "deleted at the source: out of the index");
        assert!(object.exists(), "the asset itself is kept");

        let lines: Vec<AssetEvent> = std::fs::read_to_string(ev.events_file())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let kinds: Vec<AssetEventKind> = lines.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [AssetEventKind::Imported, AssetEventKind::MetadataUpdated, AssetEventKind::SourceDeleted]
        );
    }
}
