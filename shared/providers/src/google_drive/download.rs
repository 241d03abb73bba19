//! Content: `GET /drive/v3/files/{id}?alt=media` for binary files (with `Range` from an
//! offset), `GET /drive/v3/files/{id}/export?mimeType=` for Google-native docs; the bytes
//! streamed and verified on the fly.
//!
//! Drive sends no metadata with the bytes, so the item is read first (`files.get`): the
//! download then checks the size and md5 (else sha256) of the content as it is *now*, and a
//! file trashed, turned non-downloadable or replaced by a native doc since the listing is
//! answered for what it is. Exports have no size and no hash: nothing to check but the
//! transport. A shortcut, a folder or an `Other` item is `NotImportable` with its reason.

use extconn_core::ports::{Download, DownloadRequest, ProviderError};
use extconn_core::{FolderLocator, ItemKind, Secret};
use futures::stream::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RANGE};

use super::wire::export_name;
use super::{GoogleDrive, errors, listing, segment};
use crate::hash::{Md5Hasher, Sha256Hasher};
use crate::http::{MAX_ERROR_BODY, read_error_body, redact, transport_error};
use crate::verify::{Expect, resumed_hash, verified};

pub(super) async fn download(
    g: &GoogleDrive,
    access: &Secret,
    req: &DownloadRequest,
) -> Result<Download, ProviderError> {
    start(g, access, req).await.map_err(|e| redact(e, &[access.expose()]))
}

fn not_importable(reason: &str) -> ProviderError {
    ProviderError::NotImportable { reason: reason.to_owned() }
}

async fn start(g: &GoogleDrive, access: &Secret, req: &DownloadRequest) -> Result<Download, ProviderError> {
    let locator = FolderLocator { folder_id: req.item.id.clone(), drive_id: req.item.drive_id.clone() };
    let item = listing::item(g, access, &locator).await?;
    let mut file_name = None;
    let (request, expect) = match &item.kind {
        ItemKind::File => {
            let url = g.api_url(&format!("files/{}", segment(&item.id)));
            let mut request = g.http.get(url).query(&[("alt", "media"), ("supportsAllDrives", "true")]);
            let size = item.size.unwrap_or(0);
            if req.offset > 0 && item.content_version() != req.item.content_version() {
                return Err(ProviderError::Integrity(
                    "the file changed since its transfer began: it must start over".into(),
                ));
            }
            if req.offset > size {
                return Err(ProviderError::Integrity(format!(
                    "offset {} beyond the file's {size} bytes",
                    req.offset
                )));
            }
            // A ranged request on an empty file fails at Drive (§1.4): never send one.
            if req.offset > 0 {
                request = request.header(RANGE, format!("bytes={}-", req.offset));
            }
            let hash = match &item.content_hash {
                Some(h) if h.len() == 32 => resumed_hash::<Md5Hasher>(req, Some(h.clone()))?,
                h => resumed_hash::<Sha256Hasher>(req, h.clone())?,
            };
            if item.content_hash.is_none() {
                tracing::warn!(id = %item.id, "Drive listed a file without a checksum: checking its size only");
            }
            let size = item.size.map(|s| s.saturating_sub(req.offset));
            (request, Expect::for_request(req, size, hash))
        }
        ItemKind::Native { exports } => {
            let Some(format) = exports.first() else {
                return Err(not_importable("not_exportable"));
            };
            if req.offset > 0 {
                return Err(ProviderError::Permanent(
                    "an export cannot be resumed from an offset (Drive exports take no Range)".into(),
                ));
            }
            file_name = Some(export_name(&item.name, format));
            let url = g.api_url(&format!("files/{}/export", segment(&item.id)));
            (g.http.get(url).query(&[("mimeType", format.as_str())]), Expect::default())
        }
        ItemKind::Shortcut { .. } => return Err(not_importable("shortcut")),
        ItemKind::Folder => return Err(not_importable("folder")),
        ItemKind::Other { reason } => return Err(not_importable(reason)),
    };
    let resp = request.header(AUTHORIZATION, super::bearer(access)?).send().await.map_err(transport_error)?;
    let status = resp.status();
    if !status.is_success() {
        let headers = resp.headers().clone();
        let body = read_error_body(resp, MAX_ERROR_BODY).await;
        return Err(errors::classify(status, &headers, &body, g.now()));
    }
    crate::http::require_partial(req.offset, status)?;
    let content_type = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let marks = expect.marks.clone();
    let stream = verified(resp.bytes_stream().boxed(), expect);
    Ok(Download { item, content_type, file_name, stream, warning: Default::default(), marks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures::stream;

    use crate::hash::StreamHasher;
    use crate::verify::verified_stream;

    fn hasher_for(md5: bool) -> Box<dyn StreamHasher> {
        if md5 { Box::new(Md5Hasher::new()) } else { Box::new(Sha256Hasher::default()) }
    }

    async fn run(body: &'static [u8], size: Option<u64>, hash: &str) -> Vec<Result<Bytes, ProviderError>> {
        let inner =
            stream::iter(vec![Ok(Bytes::from_static(&body[..3])), Ok(Bytes::from_static(&body[3..]))]);
        let expect =
            Expect { size, hash: Some((hash.to_owned(), hasher_for(hash.len() == 32))), ..Expect::default() };
        verified_stream(inner.boxed(), expect).collect().await
    }

    #[tokio::test]
    async fn md5_verification_success_and_mismatch() {
        let ok = run(b"hello world", Some(11), "5eb63bbbe01eeed093cb22bb8f5acdc3").await;
        assert!(ok.iter().all(Result::is_ok), "{ok:?}");
        let bad = run(b"hellO world", Some(11), "5eb63bbbe01eeed093cb22bb8f5acdc3").await;
        assert!(
            matches!(bad.last(), Some(Err(ProviderError::Integrity(m))) if m.contains("md5Checksum")),
            "{bad:?}"
        );
        // sha256 when Drive gives no md5.
        let ok =
            run(b"hello world", None, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9")
                .await;
        assert!(ok.iter().all(Result::is_ok), "{ok:?}");
    }
}
