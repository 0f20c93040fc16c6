//! DescribeCluster (key 60): versions 0-1. The registered, unfenced brokers of the
//! metadata image, and the active controller (the quorum's leader).

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use strom_protocol::acl::{Operation, ResourceType};
use strom_protocol::ErrorCode;

use super::str_bytes;
use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: DescribeClusterRequest,
    _version: i16,
) -> DescribeClusterResponse {
    if !state.allowed_on_cluster(client, Operation::Describe) {
        return DescribeClusterResponse::default()
            .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code())
            .with_cluster_id(str_bytes(state.cluster_id()))
            .with_controller_id(BrokerId(-1));
    }
    let status = state.quorum.status();
    let brokers = status
        .image
        .live_brokers()
        .map(|b| {
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(b.id))
                .with_host(str_bytes(b.endpoint(&client.listener).0))
                .with_port(b.endpoint(&client.listener).1)
                .with_rack(b.rack.clone().map(str_bytes))
        })
        .collect();
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(state.cluster_id()))
        .with_controller_id(BrokerId(status.leader.unwrap_or(-1)))
        .with_brokers(brokers)
        .with_cluster_authorized_operations(if request.include_cluster_authorized_operations {
            state.authorizer.authorized_operations(
                &status.image,
                client,
                ResourceType::Cluster,
                strom_protocol::acl::CLUSTER_NAME,
            )
        } else {
            i32::MIN
        })
}
