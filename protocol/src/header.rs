//! Request and response headers, with the header version each API version uses.
//!
//! Request header v1 (client id) is used by non-flexible API versions, v2 (plus tagged fields)
//! by flexible ones; response header v0 and v1 likewise. ApiVersions responses always use
//! header v0, whatever the request version, so that a client can read the answer before it
//! knows which versions the server speaks.

use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::frame::{begin_frame, finish_frame};
use crate::ProtocolError;

/// The fixed start of every request header: enough to route a request and to answer it with an
/// error, read without decoding the rest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestPrefix {
    /// The raw API key.
    pub api_key: i16,
    /// The requested API version.
    pub api_version: i16,
    /// The correlation id to echo in the response.
    pub correlation_id: i32,
}

impl RequestPrefix {
    /// Reads the first eight bytes of a request frame body.
    pub fn peek(frame: &[u8]) -> Result<Self, ProtocolError> {
        let Some(mut head) = frame.get(..8) else {
            return Err(ProtocolError::Decode {
                what: "RequestHeader",
                version: -1,
                reason: format!("request of {} bytes is shorter than a header", frame.len()),
            });
        };
        Ok(RequestPrefix {
            api_key: head.get_i16(),
            api_version: head.get_i16(),
            correlation_id: head.get_i32(),
        })
    }
}

/// Decodes a request header for `api` at `version`, consuming it from `frame`.
pub fn decode_request_header(
    frame: &mut Bytes,
    api: ApiKey,
    version: i16,
) -> Result<RequestHeader, ProtocolError> {
    let header_version = api.request_header_version(version);
    RequestHeader::decode(frame, header_version).map_err(|e| ProtocolError::Decode {
        what: "RequestHeader",
        version: header_version,
        reason: e.to_string(),
    })
}

/// Decodes a message body of type `M` at `version`. Bytes left over after the body are
/// ignored, as Kafka brokers do.
pub fn decode_body<M: Decodable>(
    frame: &mut Bytes,
    version: i16,
    what: &'static str,
) -> Result<M, ProtocolError> {
    M::decode(frame, version).map_err(|e| ProtocolError::Decode {
        what,
        version,
        reason: e.to_string(),
    })
}

/// Encodes a whole response frame (length prefix, response header, body).
pub fn encode_response<M: Encodable>(
    api: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &M,
    out: &mut BytesMut,
) -> Result<(), ProtocolError> {
    let at = begin_frame(out);
    let header_version = api.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    header
        .encode(out, header_version)
        .map_err(|e| encode_error("ResponseHeader", header_version, e))?;
    body.encode(out, version)
        .map_err(|e| encode_error(api_name(api), version, e))?;
    finish_frame(out, at)
}

/// Encodes a whole request frame (length prefix, request header, body).
pub fn encode_request<M: Encodable>(
    header: &RequestHeader,
    body: &M,
    out: &mut BytesMut,
) -> Result<(), ProtocolError> {
    let api = ApiKey::try_from(header.request_api_key)
        .map_err(|_| ProtocolError::UnknownApiKey(header.request_api_key))?;
    let version = header.request_api_version;
    let at = begin_frame(out);
    let header_version = api.request_header_version(version);
    header
        .encode(out, header_version)
        .map_err(|e| encode_error("RequestHeader", header_version, e))?;
    body.encode(out, version)
        .map_err(|e| encode_error(api_name(api), version, e))?;
    finish_frame(out, at)
}

/// Decodes a response header for `api` at `version` and returns its correlation id.
pub fn decode_response_header(
    frame: &mut Bytes,
    api: ApiKey,
    version: i16,
) -> Result<i32, ProtocolError> {
    let header_version = api.response_header_version(version);
    let header =
        ResponseHeader::decode(frame, header_version).map_err(|e| ProtocolError::Decode {
            what: "ResponseHeader",
            version: header_version,
            reason: e.to_string(),
        })?;
    Ok(header.correlation_id)
}

/// Kafka's name of an API, e.g. `Produce`.
pub fn api_name(api: ApiKey) -> &'static str {
    crate::versions::api_name(api)
}

fn encode_error(what: &'static str, version: i16, e: anyhow::Error) -> ProtocolError {
    ProtocolError::Encode {
        what,
        version,
        reason: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;

    fn request_frame<M: Encodable>(api: ApiKey, version: i16, body: &M) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        let mut out = BytesMut::new();
        encode_request(&header, body, &mut out).unwrap();
        out.freeze().slice(4..)
    }

    #[test]
    fn flexible_and_classic_headers_round_trip() {
        for version in [0, 9, 12] {
            let mut frame = request_frame(ApiKey::Metadata, version, &MetadataRequest::default());
            let prefix = RequestPrefix::peek(&frame).unwrap();
            assert_eq!(prefix.correlation_id, 42);
            let header = decode_request_header(&mut frame, ApiKey::Metadata, version).unwrap();
            assert_eq!(header.client_id.as_deref(), Some("t"));
            let _: MetadataRequest = decode_body(&mut frame, version, "Metadata").unwrap();
        }
    }

    #[test]
    fn api_versions_response_header_is_always_v0() {
        let mut out = BytesMut::new();
        let body = kafka_protocol::messages::ApiVersionsResponse::default();
        encode_response(ApiKey::ApiVersions, 3, 7, &body, &mut out).unwrap();
        // length, correlation id, then the body's error code: no tagged-field byte in between.
        assert_eq!(&out[4..8], &7i32.to_be_bytes());
        assert_eq!(&out[8..10], &0i16.to_be_bytes());
    }

    macro_rules! decode_any {
        ($api:expr, $frame:expr, $version:expr, $($key:ident => $ty:ty),* $(,)?) => {
            match $api {
                $(ApiKey::$key => {
                    let _ = decode_body::<$ty>(&mut $frame, $version, stringify!($key));
                })*
                _ => {}
            }
        };
    }

    proptest::proptest! {
        /// What the fuzz target `request` does, on every test run: garbage after a valid
        /// prefix is an error, never a panic or a huge allocation.
        #[test]
        fn garbage_requests_never_panic(
            api in proptest::sample::select(vec![0i16, 1, 2, 3, 18, 19, 20, 21, 22, 32, 33, 37, 44, 60]),
            version in 0i16..20,
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256),
        ) {
            let Ok(key) = ApiKey::try_from(api) else { return Ok(()) };
            let range = key.valid_versions();
            proptest::prop_assume!(range.min <= version && version <= range.max);
            let mut frame = BytesMut::new();
            frame.extend_from_slice(&api.to_be_bytes());
            frame.extend_from_slice(&version.to_be_bytes());
            frame.extend_from_slice(&1i32.to_be_bytes());
            frame.extend_from_slice(&body);
            let mut frame = frame.freeze();
            if decode_request_header(&mut frame, key, version).is_ok() {
                decode_any!(key, frame, version,
                    Produce => ProduceRequest, Fetch => FetchRequest, ListOffsets => ListOffsetsRequest,
                    Metadata => MetadataRequest, ApiVersions => ApiVersionsRequest,
                    CreateTopics => CreateTopicsRequest, DeleteTopics => DeleteTopicsRequest,
                    DeleteRecords => DeleteRecordsRequest, InitProducerId => InitProducerIdRequest,
                    DescribeConfigs => DescribeConfigsRequest, AlterConfigs => AlterConfigsRequest,
                    CreatePartitions => CreatePartitionsRequest,
                    IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
                    DescribeCluster => DescribeClusterRequest,
                );
            }
        }
    }

    #[test]
    fn short_prefix_is_an_error() {
        assert!(RequestPrefix::peek(&[0, 1, 0]).is_err());
    }
}
