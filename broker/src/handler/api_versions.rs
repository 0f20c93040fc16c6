//! ApiVersions (key 18): versions 0-4.
//!
//! Lists exactly the dispatch table. From v3 the response could carry tagged fields
//! (supported and finalized features); none are sent, because librdkafka 2.0 (kcat in
//! Debian 12) mis-skips non-empty tagged fields in this response. The response header is
//! always v0 (see `strom_protocol::header`).

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use crate::net::dispatch::APIS;
use crate::state::BrokerState;

pub(crate) async fn handle(
    _state: &BrokerState,
    _client: &crate::handler::Client,
    _request: ApiVersionsRequest,
    _version: i16,
) -> ApiVersionsResponse {
    let api_keys = APIS
        .iter()
        .map(|spec| {
            ApiVersion::default()
                .with_api_key(spec.key as i16)
                .with_min_version(spec.min)
                .with_max_version(spec.max)
        })
        .collect();
    ApiVersionsResponse::default().with_api_keys(api_keys)
}
