//! ListGroups (key 16): versions 0-4.
//!
//! Every group with its protocol type; v4 adds the state and a filter by state.

use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use strom_protocol::acl::Operation;

use super::str_bytes;
use crate::state::BrokerState;

pub(crate) async fn handle(
    state: &BrokerState,
    client: &crate::handler::Client,
    request: ListGroupsRequest,
    version: i16,
) -> ListGroupsResponse {
    let filter: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_lowercase())
        .collect();
    let all = state.allowed_on_cluster(client, Operation::Describe);
    let groups = state
        .groups
        .list()
        .await
        .into_iter()
        .filter(|(_, d)| filter.is_empty() || filter.contains(&d.state.to_lowercase()))
        // DESCRIBE on the cluster lists every group; otherwise those it may describe.
        .filter(|(group_id, _)| {
            all || super::group_check(state, client, group_id, Operation::Describe).is_ok()
        })
        .map(|(group_id, d)| {
            let listed = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(group_id)))
                .with_protocol_type(str_bytes(d.protocol_type));
            if version >= 4 {
                listed.with_group_state(str_bytes(d.state))
            } else {
                listed
            }
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
