//! Request decoding as the broker does it: prefix, header for the API version, then the
//! body of every API the broker serves. Garbage must give an error, never a panic or an
//! allocation larger than the input justifies.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strom_protocol::header::{decode_body, decode_request_header, RequestPrefix};
use strom_protocol::kafka_protocol::messages::*;
use strom_protocol::kafka_protocol::protocol::Message;

macro_rules! body {
    ($frame:expr, $version:expr, $($key:ident => $ty:ty),* $(,)?) => {
        match ApiKey::try_from(RequestPrefix::peek(&$frame).map(|p| p.api_key).unwrap_or(-1)) {
            $(Ok(ApiKey::$key) => {
                if <$ty as Message>::VERSIONS.min <= $version && $version <= <$ty as Message>::VERSIONS.max {
                    let _ = decode_body::<$ty>(&mut $frame, $version, stringify!($key));
                }
            })*
            _ => {}
        }
    };
}

fuzz_target!(|data: &[u8]| {
    let mut frame = Bytes::copy_from_slice(data);
    let Ok(prefix) = RequestPrefix::peek(&frame) else { return };
    let Ok(api) = ApiKey::try_from(prefix.api_key) else { return };
    let version = prefix.api_version;
    let range = api.valid_versions();
    if version < range.min || version > range.max {
        return;
    }
    if decode_request_header(&mut frame, api, version).is_err() {
        return;
    }
    body!(frame, version,
        Produce => ProduceRequest,
        Fetch => FetchRequest,
        ListOffsets => ListOffsetsRequest,
        Metadata => MetadataRequest,
        ApiVersions => ApiVersionsRequest,
        CreateTopics => CreateTopicsRequest,
        DeleteTopics => DeleteTopicsRequest,
        DeleteRecords => DeleteRecordsRequest,
        InitProducerId => InitProducerIdRequest,
        DescribeConfigs => DescribeConfigsRequest,
        AlterConfigs => AlterConfigsRequest,
        CreatePartitions => CreatePartitionsRequest,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
        DescribeCluster => DescribeClusterRequest,
    );
});
