//! The S3 sink's conditional-write paths on a mocked S3 client: the emulator never answers
//! 409 (ConditionalRequestConflict), and real S3's 412 has to be told apart from a conflict.

use aws_sdk_s3::Client;
use aws_sdk_s3::operation::complete_multipart_upload::CompleteMultipartUploadOutput;
use aws_sdk_s3::operation::create_multipart_upload::CreateMultipartUploadOutput;
use aws_sdk_s3::operation::get_object::GetObjectOutput;
use aws_sdk_s3::operation::put_object::PutObjectOutput;
use aws_sdk_s3::operation::upload_part::UploadPartOutput;
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use bytes::Bytes;
use extconn_aws::S3Sink;
use extconn_core::ProviderKind;
use extconn_core::ports::{AssetMeta, AssetSink, CommitOutcome, ObjectDigest, SinkError};

const CONFLICT: &str = "<Error><Code>ConditionalRequestConflict</Code><Message>A conflicting conditional operation is in progress.</Message></Error>";
const EXISTS: &str = "<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message></Error>";

fn meta(size: u64) -> AssetMeta {
    AssetMeta {
        content_type: "image/png".into(),
        size: Some(size),
        original_name: "a.png".into(),
        source_path: "/a.png".into(),
        provider: ProviderKind::Dropbox,
        provider_id: "id:1".into(),
        content_version: "v".into(),
        provider_hash: None,
    }
}

async fn put(sink: &S3Sink, data: &[u8]) -> Result<CommitOutcome, SinkError> {
    let mut up = sink.begin("acme/c/k/v", &meta(data.len() as u64)).await?;
    for c in data.chunks(1 << 20) {
        up.write(Bytes::copy_from_slice(c)).await?;
    }
    up.commit(&ObjectDigest::of(data)).await
}

#[tokio::test]
async fn small_object_409_is_retried_then_created() {
    let put_rule = mock!(Client::put_object)
        .sequence()
        .http_status(409, Some(CONFLICT.into()))
        .output(|| PutObjectOutput::builder().build())
        .build();
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&put_rule]);
    assert_eq!(put(&S3Sink::new(s3, "b"), b"hello").await, Ok(CommitOutcome::Created));
    assert_eq!(put_rule.num_calls(), 2, "the 409 was retried once");
}

#[tokio::test]
async fn small_object_412_with_other_bytes_is_a_conflict() {
    let put_rule = mock!(Client::put_object).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(412).unwrap(),
            aws_smithy_types::body::SdkBody::from(EXISTS),
        )
    });
    let get_rule = mock!(Client::get_object)
        .then_output(|| GetObjectOutput::builder().body(ByteStream::from_static(b"other")).build());
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&put_rule, &get_rule]);
    assert_eq!(put(&S3Sink::new(s3, "b"), b"hello").await, Err(SinkError::Conflict));
}

#[tokio::test]
async fn multipart_409_then_412_on_identical_bytes_is_already_exists() {
    let data: Vec<u8> = (0..9 * 1024 * 1024).map(|i| (i % 7) as u8).collect();
    let same = data.clone();
    let create = mock!(Client::create_multipart_upload)
        .then_output(|| CreateMultipartUploadOutput::builder().upload_id("u1").build());
    let part =
        mock!(Client::upload_part).then_output(|| UploadPartOutput::builder().e_tag("\"etag\"").build());
    let complete = mock!(Client::complete_multipart_upload)
        .sequence()
        .http_status(409, Some(CONFLICT.into()))
        .http_status(412, Some(EXISTS.into()))
        .output(|| CompleteMultipartUploadOutput::builder().build())
        .build();
    let get = mock!(Client::get_object)
        .then_output(move || GetObjectOutput::builder().body(ByteStream::from(same.clone())).build());
    let abort = mock!(Client::abort_multipart_upload).then_output(|| {
        aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadOutput::builder().build()
    });
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&create, &part, &complete, &get, &abort]);
    assert_eq!(put(&S3Sink::new(s3, "b"), &data).await, Ok(CommitOutcome::AlreadyExists));
    assert_eq!(part.num_calls(), 2, "9 MiB = an 8 MiB part and the rest");
    assert_eq!(complete.num_calls(), 2, "409 retried, then 412 resolved by comparing bytes");
    assert_eq!(abort.num_calls(), 1, "the upload that did not complete is aborted");
}

#[tokio::test]
async fn a_failed_part_aborts_the_upload() {
    let data: Vec<u8> = vec![1; 17 * 1024 * 1024];
    let create = mock!(Client::create_multipart_upload)
        .then_output(|| CreateMultipartUploadOutput::builder().upload_id("u1").build());
    let part = mock!(Client::upload_part).then_http_response(|| {
        aws_smithy_runtime_api::http::Response::new(
            aws_smithy_runtime_api::http::StatusCode::try_from(403).unwrap(),
            aws_smithy_types::body::SdkBody::from("<Error><Code>AccessDenied</Code></Error>"),
        )
    });
    let abort = mock!(Client::abort_multipart_upload).then_output(|| {
        aws_sdk_s3::operation::abort_multipart_upload::AbortMultipartUploadOutput::builder().build()
    });
    let s3 = mock_client!(aws_sdk_s3, RuleMode::MatchAny, [&create, &part, &abort]);
    assert!(matches!(put(&S3Sink::new(s3, "b"), &data).await, Err(SinkError::Unavailable(_))));
    assert!(abort.num_calls() >= 1, "nothing half-written is left behind");
}
