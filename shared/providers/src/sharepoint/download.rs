//! Content: the item is read first (its current hash, size and drive type), then
//! `GET /drives/{d}/items/{i}/content` with the bearer and **no automatic redirect**; the
//! `302 Location` (a pre-authenticated URL whose query is a credential: never logged, never
//! queued, never in an error) is checked against the allowlist and fetched **without**
//! `Authorization`, with `Range` from a non-zero offset (a 206 is then required).
//!
//! From offset 0 the bytes are checked while streaming against the `quickXorHash` and size.
//! SharePoint rewrites Office files on download (it embeds document properties), so their
//! bytes may match neither: for an Office file from a `business` / `documentLibrary` drive a
//! mismatch keeps the bytes and sets [`Download::warning`]; for anything else it is
//! `ProviderError::Integrity`. Such an Office file is never continued from an offset: the
//! properties SharePoint embeds may differ from one download to the next (a column edited
//! between two invocations changes no `cTag` or hash), and nothing could tell a tail of
//! another rewrite from the right one. A cut keeps nothing ([`HashMarks::never_resumed`]), and
//! a resume asked all the same is refused as `Integrity`, which starts the file over.

use bytes::Bytes;
use extconn_core::ports::{Download, DownloadRequest, DownloadWarning, HashMarks, ProviderError};
use extconn_core::{FolderLocator, ItemKind, Secret};
use futures::stream::{BoxStream, StreamExt};
use reqwest::StatusCode;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, LOCATION, RANGE};

use super::{SharePoint, drive_of, errors, listing, segment};
use crate::hash::QuickXorHasher;
use crate::http::{MAX_ERROR_BODY, bearer, read_error_body, redact, require_partial, transport_error};
use crate::verify::{Expect, read_ahead, resumed_hash, verified};

/// Extensions of the files SharePoint may rewrite on download (Office documents with
/// properties it can promote/demote; provider-apis.md §2.4, rclone's docs).
const OFFICE_EXTENSIONS: &[&str] = &[
    "doc", "docx", "docm", "dot", "dotx", "dotm", "xls", "xlsx", "xlsm", "xlsb", "xlt", "xltx", "xltm",
    "ppt", "pptx", "pptm", "pot", "potx", "potm", "pps", "ppsx", "ppsm", "one", "vsd", "vsdx", "vsdm", "mpp",
    "pub",
];

/// Whether a mismatch of this file may be SharePoint's own rewrite rather than corruption.
pub(super) fn may_be_rewritten(name: &str, drive_type: Option<&str>) -> bool {
    let office = name
        .rsplit_once('.')
        .is_some_and(|(_, ext)| OFFICE_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()));
    office && matches!(drive_type, Some("business" | "documentLibrary"))
}

const REWRITE_WARNING: &str = "SharePoint served this Office file with a different size or quickXorHash than \
it lists (it rewrites Office documents on download): the served bytes were imported";

pub(super) async fn download(
    sp: &SharePoint,
    access: &Secret,
    req: &DownloadRequest,
) -> Result<Download, ProviderError> {
    start(sp, access, req).await.map_err(|e| redact(e, &[access.expose()]))
}

fn not_importable(reason: &str) -> ProviderError {
    ProviderError::NotImportable { reason: reason.to_owned() }
}

async fn start(sp: &SharePoint, access: &Secret, req: &DownloadRequest) -> Result<Download, ProviderError> {
    let locator = FolderLocator { folder_id: req.item.id.clone(), drive_id: req.item.drive_id.clone() };
    let drive = drive_of(&locator)?.to_owned();
    let raw = listing::get_item(sp, access, &locator).await?;
    let mut drive_type = raw.drive_type().map(str::to_owned);
    let item = raw.into_item(&drive);
    match &item.kind {
        ItemKind::File => {}
        ItemKind::Folder => return Err(not_importable("folder")),
        ItemKind::Other { reason } => return Err(not_importable(reason)),
        _ => return Err(not_importable("not_a_file")),
    }
    if drive_type.is_none() && may_be_rewritten(&item.name, Some("business")) {
        // Only an Office file's handling depends on it: ask its drive.
        drive_type = listing::drive(sp, access, item.drive_id.as_deref().unwrap_or(&drive)).await?.drive_type;
    }
    let rewritten = may_be_rewritten(&item.name, drive_type.as_deref());
    if req.offset > 0 && rewritten {
        return Err(ProviderError::Integrity(
            "SharePoint rewrites Office files as they are downloaded: one is never continued from an offset, it starts over".into(),
        ));
    }
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

    // 1. /content with the bearer: a redirect to the pre-authenticated URL.
    let url =
        sp.graph_url(&format!("drives/{}/items/{}/content", segment(&drive), segment(&item.id)), &[])?;
    let resp =
        sp.http.get(url).header(AUTHORIZATION, bearer(access)?).send().await.map_err(transport_error)?;
    let status = resp.status();
    let resp = if status.is_redirection() {
        let location =
            resp.headers().get(LOCATION).and_then(|v| v.to_str().ok()).map(str::to_owned).ok_or_else(
                || ProviderError::Transient(format!("/content answered {status} without a Location")),
            )?;
        // 2. The pre-authenticated URL: allowlisted, no Authorization, Range when resuming.
        let target = sp.check_link(&location)?;
        let mut request = sp.http.get(target);
        if req.offset > 0 {
            request = request.header(RANGE, format!("bytes={}-", req.offset));
        }
        request.send().await.map_err(transport_error)?
    } else {
        // An error, or the bytes served directly (no Range was sent: only a whole download
        // can use them; `require_partial` refuses it for a resumed one).
        resp
    };
    let status = resp.status();
    if !status.is_success() {
        let headers = resp.headers().clone();
        let body = read_error_body(resp, MAX_ERROR_BODY).await;
        return Err(errors::classify(status, &headers, &body, sp.now()));
    }
    if status == StatusCode::PARTIAL_CONTENT && req.offset == 0 {
        return Err(ProviderError::Transient("a whole download was answered 206".into()));
    }
    require_partial(req.offset, status)?;
    let content_type = resp.headers().get(CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = resp.bytes_stream().boxed();

    let warning = DownloadWarning::default();
    let expected_hash = item.content_hash.as_deref().and_then(QuickXorHasher::normalize);
    if item.content_hash.is_some() && expected_hash.is_none() {
        tracing::warn!(id = %item.id, "Graph listed an unreadable quickXorHash: checking the size only");
    } else if item.content_hash.is_none() {
        tracing::warn!(id = %item.id, "Graph listed a file without quickXorHash: checking its size only");
    }
    let marks;
    let stream = if rewritten {
        // From byte 0 only (refused above otherwise).
        marks = HashMarks::never_resumed();
        // Hashed by the reader task, ahead of the engine, as `verified` reads ahead of its hash.
        read_ahead(tolerant(body, item.size, expected_hash, warning.clone()), item.size)
    } else {
        let hash = resumed_hash::<QuickXorHasher>(req, expected_hash)?;
        let expect = Expect::for_request(req, item.size.map(|s| s - req.offset), hash);
        marks = expect.marks.clone();
        verified(body, expect)
    };
    Ok(Download { item, content_type, file_name: None, stream, warning, marks })
}

/// The whole stream of a file SharePoint may have rewritten: passed through; at its end, a
/// size or hash differing from the listing's sets `warning` instead of failing. Transport
/// errors still end it with an error.
fn tolerant(
    inner: BoxStream<'static, reqwest::Result<Bytes>>,
    size: Option<u64>,
    hash: Option<String>,
    warning: DownloadWarning,
) -> BoxStream<'static, Result<Bytes, ProviderError>> {
    struct St {
        inner: BoxStream<'static, reqwest::Result<Bytes>>,
        hasher: QuickXorHasher,
        seen: u64,
    }
    let st = St { inner, hasher: QuickXorHasher::new(), seen: 0 };
    futures::stream::unfold(Some(st), move |state| {
        let (size, hash, warning) = (size, hash.clone(), warning.clone());
        async move {
            let mut st = state?;
            match st.inner.next().await {
                Some(Ok(chunk)) => {
                    st.hasher.update(&chunk);
                    st.seen += chunk.len() as u64;
                    Some((Ok(chunk), Some(st)))
                }
                Some(Err(e)) => Some((Err(transport_error(e)), None)),
                None => {
                    let computed = hex::encode(st.hasher.finalize_bytes());
                    let size_differs = size.is_some_and(|s| s != st.seen);
                    let hash_differs = hash.is_some_and(|h| h != computed);
                    if size_differs || hash_differs {
                        warning.set(REWRITE_WARNING);
                    }
                    None
                }
            }
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::StreamHasher;
    use futures::stream;

    fn body(parts: &[&'static [u8]]) -> BoxStream<'static, reqwest::Result<Bytes>> {
        stream::iter(parts.iter().map(|p| Ok(Bytes::from_static(p))).collect::<Vec<_>>()).boxed()
    }

    fn hex_of(data: &[u8]) -> String {
        QuickXorHasher::normalize(&QuickXorHasher::digest(data)).unwrap_or_default()
    }

    #[test]
    fn which_files_may_be_rewritten() {
        for (name, drive, want) in [
            ("Plan.docx", Some("documentLibrary"), true),
            ("Budget.XLSX", Some("business"), true),
            ("deck.pptx", Some("documentLibrary"), true),
            ("notes.one", Some("business"), true),
            ("Plan.docx", Some("personal"), false),
            ("Plan.docx", None, false),
            ("report.pdf", Some("documentLibrary"), false),
            ("docx", Some("documentLibrary"), false),
        ] {
            assert_eq!(may_be_rewritten(name, drive), want, "{name} {drive:?}");
        }
    }

    #[tokio::test]
    async fn an_office_mismatch_keeps_the_bytes_with_a_warning() {
        let w = DownloadWarning::default();
        let served = b"rewritten by sharepoint";
        let out: Vec<_> = tolerant(
            body(&[b"rewritten ", b"by sharepoint"]),
            Some(11),
            Some(hex_of(b"hello world")),
            w.clone(),
        )
        .collect()
        .await;
        assert!(out.iter().all(Result::is_ok), "{out:?}");
        let bytes: Vec<u8> =
            out.into_iter().flat_map(|r| r.map(|b| b.to_vec()).unwrap_or_default()).collect();
        assert_eq!(bytes, served);
        assert!(w.get().is_some_and(|t| t.contains("rewrites Office")));
        // Matching bytes: no warning.
        let w = DownloadWarning::default();
        let out: Vec<_> =
            tolerant(body(&[b"hello", b" world"]), Some(11), Some(hex_of(b"hello world")), w.clone())
                .collect()
                .await;
        assert!(out.iter().all(Result::is_ok));
        assert_eq!(w.get(), None);
    }

    /// A large Office file is read ahead too (hashed by the reader task): every byte passes, in
    /// order, and the warning is set by the time the stream ends.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_large_office_file_read_ahead_keeps_its_bytes_and_its_warning() {
        let served: Vec<u8> =
            (0..5 * 1024 * 1024 + 5).map(|i: usize| (i.wrapping_mul(7) >> 3) as u8).collect();
        let parts: Vec<reqwest::Result<Bytes>> =
            served.chunks(400_000).map(|c| Ok(Bytes::copy_from_slice(c))).collect();
        let size = Some(served.len() as u64);
        let w = DownloadWarning::default();
        let listed = Some(hex_of(b"what the listing announced"));
        let out: Vec<_> =
            crate::verify::read_ahead(tolerant(stream::iter(parts).boxed(), size, listed, w.clone()), size)
                .collect()
                .await;
        let bytes: Vec<u8> =
            out.into_iter().flat_map(|r| r.map(|b| b.to_vec()).unwrap_or_default()).collect();
        assert!(bytes == served, "the served bytes, whole and in order");
        assert!(w.get().is_some_and(|t| t.contains("rewrites Office")));
    }

    #[tokio::test]
    async fn a_pdf_mismatch_is_an_integrity_error() {
        // The path a non-Office file takes: the shared verifier with the quickXor hasher.
        let expect = Expect {
            size: Some(11),
            hash: Some((hex_of(b"hello world"), Box::new(QuickXorHasher::new()) as Box<dyn StreamHasher>)),
            ..Expect::default()
        };
        let out: Vec<_> = verified(body(&[b"hellO world"]), expect).collect().await;
        assert!(
            matches!(out.last(), Some(Err(ProviderError::Integrity(m))) if m.contains("quickXorHash")),
            "{out:?}"
        );
        let expect = Expect {
            size: Some(11),
            hash: Some((hex_of(b"hello world"), Box::new(QuickXorHasher::new()) as Box<dyn StreamHasher>)),
            ..Expect::default()
        };
        let out: Vec<_> = verified(body(&[b"hello", b" world"]), expect).collect().await;
        assert!(out.iter().all(Result::is_ok), "{out:?}");
    }
}
