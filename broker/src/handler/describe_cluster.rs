//! DescribeCluster (key 60): versions 0-1. This broker, as the whole cluster and its
//! controller.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    request: DescribeClusterRequest,
    _version: i16,
) -> DescribeClusterResponse {
    let broker = DescribeClusterBroker::default()
        .with_broker_id(BrokerId(state.config.node_id))
        .with_host(str_bytes(state.advertised_host.clone()))
        .with_port(state.advertised_port);
    DescribeClusterResponse::default()
        .with_endpoint_type(request.endpoint_type)
        .with_cluster_id(str_bytes(state.cluster_id.clone()))
        .with_controller_id(BrokerId(state.config.node_id))
        .with_brokers(vec![broker])
}
