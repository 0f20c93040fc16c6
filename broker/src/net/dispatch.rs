//! The dispatch table: which APIs and versions the broker serves, and the handler of each.
//!
//! [`APIS`] is the one list: ApiVersions advertises exactly it and [`dispatch`] refuses
//! anything outside it, so what is advertised is what is served.

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::VersionRange;
use strom_protocol::header::{decode_body, decode_request_header, encode_response, RequestPrefix};
use strom_protocol::versions::{api_name, unsupported_api_versions_response};
use strom_protocol::ProtocolError;
use tracing::trace;

use crate::handler;
use crate::quota::Kind;
use crate::state::BrokerState;

/// An API the broker serves, with the versions it advertises.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ApiSpec {
    pub(crate) key: ApiKey,
    pub(crate) min: i16,
    pub(crate) max: i16,
}

const fn spec(key: ApiKey, min: i16, max: i16) -> ApiSpec {
    ApiSpec { key, min, max }
}

/// Every API served, with the advertised version range.
///
/// Produce advertises v0-v2 as Kafka 4 does (KAFKA-18659: librdkafka turns compression off
/// when Produce v0 is missing) but refuses requests below v3, which carry the old message
/// formats this broker does not store.
pub(crate) const APIS: &[ApiSpec] = &[
    spec(ApiKey::Produce, 0, 11),
    spec(ApiKey::Fetch, 4, 16),
    spec(ApiKey::ListOffsets, 1, 9),
    spec(ApiKey::Metadata, 0, 12),
    spec(ApiKey::FindCoordinator, 0, 6),
    spec(ApiKey::ApiVersions, 0, 4),
    spec(ApiKey::CreateTopics, 2, 7),
    spec(ApiKey::DeleteTopics, 1, 6),
    spec(ApiKey::DeleteRecords, 0, 2),
    spec(ApiKey::InitProducerId, 0, 5),
    spec(ApiKey::DescribeConfigs, 1, 4),
    spec(ApiKey::AlterConfigs, 0, 2),
    spec(ApiKey::CreatePartitions, 0, 3),
    spec(ApiKey::IncrementalAlterConfigs, 0, 1),
    spec(ApiKey::DescribeCluster, 0, 1),
    spec(ApiKey::JoinGroup, 0, 9),
    spec(ApiKey::SyncGroup, 0, 5),
    spec(ApiKey::Heartbeat, 0, 4),
    spec(ApiKey::LeaveGroup, 0, 5),
    spec(ApiKey::OffsetCommit, 2, 8),
    spec(ApiKey::OffsetFetch, 1, 8),
    spec(ApiKey::DescribeGroups, 0, 5),
    spec(ApiKey::ListGroups, 0, 4),
    spec(ApiKey::DeleteGroups, 0, 2),
    spec(ApiKey::OffsetDelete, 0, 0),
    spec(ApiKey::DescribeQuorum, 0, 2),
    spec(ApiKey::AllocateProducerIds, 0, 0),
    spec(ApiKey::OffsetForLeaderEpoch, 2, 4),
    spec(ApiKey::ElectLeaders, 0, 2),
    spec(ApiKey::AlterPartitionReassignments, 0, 1),
    spec(ApiKey::ListPartitionReassignments, 0, 0),
    spec(ApiKey::WriteTxnMarkers, 1, 1),
    spec(ApiKey::AddPartitionsToTxn, 0, 3),
    spec(ApiKey::AddOffsetsToTxn, 0, 4),
    spec(ApiKey::EndTxn, 0, 4),
    spec(ApiKey::DescribeTransactions, 0, 0),
    spec(ApiKey::ListTransactions, 0, 1),
    spec(ApiKey::DescribeProducers, 0, 0),
    spec(ApiKey::TxnOffsetCommit, 0, 4),
    // v0 is advertised as Kafka does (librdkafka looks for it) but only v1 is served:
    // v0 would carry the SASL tokens outside Kafka frames.
    spec(ApiKey::SaslHandshake, 0, 1),
    spec(ApiKey::SaslAuthenticate, 0, 2),
    spec(ApiKey::DescribeUserScramCredentials, 0, 0),
    spec(ApiKey::AlterUserScramCredentials, 0, 0),
    spec(ApiKey::AlterClientQuotas, 0, 1),
    spec(ApiKey::DescribeClientQuotas, 0, 1),
    spec(ApiKey::DescribeAcls, 1, 3),
    spec(ApiKey::CreateAcls, 1, 3),
    spec(ApiKey::DeleteAcls, 1, 3),
];

/// Lowest Produce version actually served.
const PRODUCE_MIN_SERVED: i16 = 3;

pub(crate) fn find(key: i16) -> Option<ApiSpec> {
    APIS.iter().copied().find(|s| s.key as i16 == key)
}

/// The connection a request came on: peer address, listener name, principal.
pub(crate) type Who<'a> = (std::net::SocketAddr, &'a str, &'a str);

/// How a response leaves: encoded into the connection's buffer, or as chunks that include
/// stored record batches by reference (Fetch).
pub(crate) enum Written {
    /// The response (if any) is in the buffer passed to [`dispatch`].
    Buffered,
    /// The whole response frame, in order.
    Chunks(Vec<super::fetch_response::Chunk>),
}

/// Handles one request frame, appending the response frame (if any) to `out` or returning
/// it as chunks, with how long the connection should then stop reading (a quota's
/// throttle time, in milliseconds).
///
/// An error means the connection should be closed (as Kafka does for requests it cannot
/// parse or versions it cannot answer).
pub(crate) async fn dispatch(
    state: &BrokerState,
    frame: Bytes,
    who: Who<'_>,
    out: &mut BytesMut,
) -> Result<(Written, i32), ProtocolError> {
    let mut frame = frame;
    let prefix = RequestPrefix::peek(&frame)?;
    let fetch =
        find(ApiKey::Fetch as i16).is_some_and(|s| (s.min..=s.max).contains(&prefix.api_version));
    if prefix.api_key == ApiKey::Fetch as i16 && fetch {
        let version = prefix.api_version;
        let header = decode_request_header(&mut frame, ApiKey::Fetch, version)?;
        let request: FetchRequest = decode_body(&mut frame, version, "Fetch")?;
        let client = client(&header, who);
        let follower = handler::fetch::replica_of(&request, version) >= 0;
        let (mut output, busy) =
            busy_time(handler::fetch::handle(state, &client, request, version)).await;
        // Fetched bytes count against `consumer_byte_rate`, and the handling (not the long
        // poll) against `request_percentage`; replication is not a client's (Kafka leaves
        // it to replication quotas).
        let throttle = if follower {
            0
        } else {
            charge(state, &client, Kind::Fetch, output.bytes() as f64)
                .max(charge_busy(state, &client, busy))
        };
        output.response.throttle_time_ms = throttle;
        let id = header.correlation_id;
        let written = match super::fetch_response::encode(&output, version, id)? {
            Some(chunks) => Written::Chunks(chunks),
            None => {
                let response = output.materialize()?;
                encode_response(ApiKey::Fetch, version, id, &response, out)?;
                Written::Buffered
            }
        };
        return Ok((written, throttle));
    }
    let produced = (prefix.api_key == ApiKey::Produce as i16).then_some(frame.len());
    let throttle = dispatch_buffered(state, frame, who, produced, out).await?;
    Ok((Written::Buffered, throttle))
}

/// Charges `busy`, the time spent handling a request, to the client's
/// `request_percentage` (percent of one thread); the throttle time in milliseconds. Time
/// spent waiting (a JoinGroup for its rebalance, a Produce for its replicas, a Fetch for
/// records) is not charged, as in Kafka, where such requests wait in purgatory off the
/// request threads.
fn charge_busy(state: &BrokerState, client: &handler::Client, busy: std::time::Duration) -> i32 {
    charge(state, client, Kind::Request, busy.as_secs_f64() * 100.0)
}

/// Runs `future` to its end; its output and the time spent polling it (the time it was
/// working, not waiting).
async fn busy_time<F: std::future::Future>(future: F) -> (F::Output, std::time::Duration) {
    let mut future = std::pin::pin!(future);
    let mut busy = std::time::Duration::ZERO;
    let output = std::future::poll_fn(|cx| {
        let started = std::time::Instant::now();
        let polled = future.as_mut().poll(cx);
        busy += started.elapsed();
        polled
    })
    .await;
    (output, busy)
}

/// Charges `amount` to the client's quota of `kind`; the throttle time in milliseconds.
fn charge(state: &BrokerState, client: &handler::Client, kind: Kind, amount: f64) -> i32 {
    let now = u64::try_from(crate::state::now_ms()).unwrap_or(0);
    state
        .quotas
        .record(&state.quorum.image(), client, kind, amount, now)
}

/// Handles a request answered from memory; the throttle time its quotas earned (a
/// Produce of `produced` bytes its `producer_byte_rate`, any request its handling time),
/// also given in the response.
async fn dispatch_buffered(
    state: &BrokerState,
    mut frame: Bytes,
    who: Who<'_>,
    produced: Option<usize>,
    out: &mut BytesMut,
) -> Result<i32, ProtocolError> {
    let prefix = RequestPrefix::peek(&frame)?;
    let api = ApiKey::try_from(prefix.api_key)
        .map_err(|_| ProtocolError::UnknownApiKey(prefix.api_key))?;
    let Some(spec) = find(prefix.api_key) else {
        return Err(unsupported(
            api,
            prefix.api_version,
            VersionRange { min: 0, max: -1 },
        ));
    };
    let version = prefix.api_version;
    let served_min = if api == ApiKey::Produce {
        PRODUCE_MIN_SERVED
    } else {
        spec.min
    };
    if version < served_min || version > spec.max {
        if api == ApiKey::ApiVersions {
            // KIP-511: answer in v0 with the range we speak, so the client can retry.
            let body = unsupported_api_versions_response(VersionRange {
                min: spec.min,
                max: spec.max,
            });
            return encode_response(api, 0, prefix.correlation_id, &body, out).map(|()| 0);
        }
        return Err(unsupported(
            api,
            version,
            VersionRange {
                min: served_min,
                max: spec.max,
            },
        ));
    }
    let header = decode_request_header(&mut frame, api, version)?;
    let id = header.correlation_id;
    let client = &client(&header, who);
    // Produced bytes count against `producer_byte_rate`.
    let mut throttle = produced.map_or(0, |bytes| {
        charge(state, client, Kind::Produce, bytes as f64)
    });
    trace!(api = api_name(api), version, correlation_id = id, "request");
    // A response with a throttle time carries the longest its quotas earned; those without
    // one (answers to other brokers) are not charged.
    macro_rules! serve {
        ($req:ty, $handler:path) => {{
            let request: $req = decode_body(&mut frame, version, api_name(api))?;
            let (response, busy) = busy_time($handler(state, client, request, version)).await;
            throttle = throttle.max(charge_busy(state, client, busy));
            let response = response.with_throttle_time_ms(throttle);
            encode_response(api, version, id, &response, out)
        }};
        (unthrottled $req:ty, $handler:path) => {{
            let request: $req = decode_body(&mut frame, version, api_name(api))?;
            let response = $handler(state, client, request, version).await;
            encode_response(api, version, id, &response, out)
        }};
    }
    let served = match api {
        ApiKey::Produce => {
            let request: ProduceRequest = decode_body(&mut frame, version, "Produce")?;
            let (produced, busy) =
                busy_time(handler::produce::handle(state, client, request, version)).await;
            throttle = throttle.max(charge_busy(state, client, busy));
            match produced {
                handler::produce::Produced::Respond(response) => {
                    let response = response.with_throttle_time_ms(throttle);
                    encode_response(api, version, id, &response, out)
                }
                handler::produce::Produced::Silent => Ok(()),
                handler::produce::Produced::Failed(code) => Err(ProtocolError::Broker(code)),
            }
        }
        // Served by `dispatch`, with records sent from the log.
        ApiKey::Fetch => Err(unsupported(api, version, VersionRange { min: 0, max: -1 })),
        ApiKey::ListOffsets => serve!(ListOffsetsRequest, handler::list_offsets::handle),
        ApiKey::FindCoordinator => {
            serve!(FindCoordinatorRequest, handler::find_coordinator::handle)
        }
        ApiKey::Metadata => serve!(MetadataRequest, handler::metadata::handle),
        ApiKey::ApiVersions => serve!(ApiVersionsRequest, handler::api_versions::handle),
        ApiKey::CreateTopics => serve!(CreateTopicsRequest, handler::create_topics::handle),
        ApiKey::DeleteTopics => serve!(DeleteTopicsRequest, handler::delete_topics::handle),
        ApiKey::DeleteRecords => serve!(DeleteRecordsRequest, handler::delete_records::handle),
        ApiKey::OffsetForLeaderEpoch => serve!(
            OffsetForLeaderEpochRequest,
            handler::offset_for_leader_epoch::handle
        ),
        ApiKey::AllocateProducerIds => {
            serve!(
                unthrottled AllocateProducerIdsRequest,
                handler::allocate_producer_ids::handle
            )
        }
        ApiKey::DescribeQuorum => {
            serve!(unthrottled DescribeQuorumRequest, handler::describe_quorum::handle)
        }
        ApiKey::ElectLeaders => serve!(ElectLeadersRequest, handler::elect_leaders::handle),
        ApiKey::AlterPartitionReassignments => serve!(
            AlterPartitionReassignmentsRequest,
            handler::partition_reassignments::alter
        ),
        ApiKey::ListPartitionReassignments => serve!(
            ListPartitionReassignmentsRequest,
            handler::partition_reassignments::list
        ),
        ApiKey::WriteTxnMarkers => {
            serve!(unthrottled WriteTxnMarkersRequest, handler::write_txn_markers::handle)
        }
        ApiKey::AddPartitionsToTxn => serve!(
            AddPartitionsToTxnRequest,
            handler::txn_requests::add_partitions
        ),
        ApiKey::AddOffsetsToTxn => {
            serve!(AddOffsetsToTxnRequest, handler::txn_requests::add_offsets)
        }
        ApiKey::EndTxn => serve!(EndTxnRequest, handler::txn_requests::end),
        ApiKey::DescribeTransactions => serve!(
            DescribeTransactionsRequest,
            handler::describe_transactions::describe
        ),
        ApiKey::ListTransactions => {
            serve!(
                ListTransactionsRequest,
                handler::describe_transactions::list
            )
        }
        ApiKey::DescribeProducers => {
            serve!(
                DescribeProducersRequest,
                handler::describe_producers::handle
            )
        }
        // The exchange itself is the connection's (net/sasl.rs); here it is out of place.
        ApiKey::SaslHandshake | ApiKey::SaslAuthenticate => {
            super::sasl::illegal_state(api, version, id, out)
        }
        ApiKey::DescribeUserScramCredentials => serve!(
            DescribeUserScramCredentialsRequest,
            handler::user_scram_credentials::describe
        ),
        ApiKey::AlterUserScramCredentials => serve!(
            AlterUserScramCredentialsRequest,
            handler::user_scram_credentials::alter
        ),
        ApiKey::DescribeClientQuotas => serve!(
            DescribeClientQuotasRequest,
            handler::client_quotas::describe
        ),
        ApiKey::AlterClientQuotas => {
            serve!(AlterClientQuotasRequest, handler::client_quotas::alter)
        }
        ApiKey::DescribeAcls => serve!(DescribeAclsRequest, handler::acls::describe),
        ApiKey::CreateAcls => serve!(CreateAclsRequest, handler::acls::create),
        ApiKey::DeleteAcls => serve!(DeleteAclsRequest, handler::acls::delete),
        ApiKey::TxnOffsetCommit => {
            serve!(TxnOffsetCommitRequest, handler::txn_offset_commit::handle)
        }
        ApiKey::InitProducerId => serve!(InitProducerIdRequest, handler::init_producer_id::handle),
        ApiKey::DescribeConfigs => {
            serve!(DescribeConfigsRequest, handler::describe_configs::handle)
        }
        ApiKey::AlterConfigs => serve!(AlterConfigsRequest, handler::alter_configs::handle),
        ApiKey::CreatePartitions => {
            serve!(CreatePartitionsRequest, handler::create_partitions::handle)
        }
        ApiKey::IncrementalAlterConfigs => serve!(
            IncrementalAlterConfigsRequest,
            handler::incremental_alter_configs::handle
        ),
        ApiKey::DescribeCluster => {
            serve!(DescribeClusterRequest, handler::describe_cluster::handle)
        }
        ApiKey::JoinGroup => serve!(JoinGroupRequest, handler::join_group::handle),
        ApiKey::SyncGroup => serve!(SyncGroupRequest, handler::sync_group::handle),
        ApiKey::Heartbeat => serve!(HeartbeatRequest, handler::heartbeat::handle),
        ApiKey::LeaveGroup => serve!(LeaveGroupRequest, handler::leave_group::handle),
        ApiKey::OffsetCommit => serve!(OffsetCommitRequest, handler::offset_commit::handle),
        ApiKey::OffsetFetch => serve!(OffsetFetchRequest, handler::offset_fetch::handle),
        ApiKey::DescribeGroups => {
            serve!(DescribeGroupsRequest, handler::describe_groups::handle)
        }
        ApiKey::ListGroups => serve!(ListGroupsRequest, handler::list_groups::handle),
        ApiKey::DeleteGroups => serve!(DeleteGroupsRequest, handler::delete_groups::handle),
        ApiKey::OffsetDelete => serve!(OffsetDeleteRequest, handler::offset_delete::handle),
        other => Err(unsupported(
            other,
            version,
            VersionRange { min: 0, max: -1 },
        )),
    };
    served.map(|()| throttle)
}

/// Who is asking: for ACLs and quotas, and group APIs (Kafka names members and shows them
/// by client id and host).
fn client(header: &RequestHeader, (peer, listener, principal): Who<'_>) -> handler::Client {
    handler::Client {
        listener: listener.to_owned(),
        client_id: header
            .client_id
            .as_ref()
            .map_or_else(String::new, |c| c.to_string()),
        host: format!("/{}", peer.ip()),
        ip: peer.ip().to_string(),
        principal: principal.to_owned(),
    }
}

fn unsupported(api: ApiKey, version: i16, range: VersionRange) -> ProtocolError {
    ProtocolError::UnsupportedVersion {
        api: api_name(api),
        version,
        min: range.min,
        max: range.max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every advertised version must be one the message types can decode and encode.
    #[test]
    fn advertised_versions_are_codable() {
        for spec in APIS {
            let known = spec.key.valid_versions();
            let min = if spec.key == ApiKey::Produce {
                PRODUCE_MIN_SERVED
            } else {
                spec.min
            };
            assert!(
                min >= known.min && spec.max <= known.max,
                "{:?} {}..{} outside {}",
                spec.key,
                min,
                spec.max,
                known
            );
        }
        use kafka_protocol::protocol::Message;
        assert_eq!(ApiVersionsRequest::VERSIONS.max, 4);
    }

    /// Waiting is not busy time; work done while polled is.
    #[tokio::test]
    async fn busy_time_counts_polls_not_waits() {
        let wait = std::time::Duration::from_millis(200);
        let (_, busy) = busy_time(tokio::time::sleep(wait)).await;
        assert!(busy < wait / 4, "{busy:?} busy in a {wait:?} sleep");
        let work = std::time::Duration::from_millis(30);
        let (value, busy) = busy_time(async {
            tokio::time::sleep(wait).await;
            // Work the poll does: the thread is held for `work`.
            std::thread::sleep(work);
            7
        })
        .await;
        assert_eq!(value, 7);
        assert!(busy >= work && busy < wait, "{busy:?}");
    }
}
